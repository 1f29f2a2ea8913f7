//! Turns SIGTERM/SIGINT into the root cancellation token and SIGHUP into a certificate reload.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::Handle;

/// Waits for OS signals until the token is cancelled. SIGTERM and SIGINT cancel `shutdown`;
/// SIGHUP reloads the certificates.
pub async fn watch_signals(handle: Handle, shutdown: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = term.recv() => {
                tracing::info!("SIGTERM received");
                shutdown.cancel();
            }
            _ = int.recv() => {
                tracing::info!("SIGINT received");
                shutdown.cancel();
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP received: reloading certificates");
                handle.certs.reload();
            }
        }
    }
}
