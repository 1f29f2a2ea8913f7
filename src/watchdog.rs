//! The systemd watchdog (`WatchdogSec=` in the unit): `WATCHDOG=1` to the notify socket at
//! half the interval systemd asked for, from a task on the server's runtime that first takes
//! the signalling and TURN locks in a fresh task. A runtime whose workers are all stuck, or a
//! lock held forever, stops the pings, and systemd restarts peerbox.

use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Where and how often to ping.
#[derive(Debug, Clone)]
pub struct Watchdog {
    /// `NOTIFY_SOCKET`: a path, or `@name` for Linux's abstract namespace.
    pub socket: OsString,
    /// `WATCHDOG_USEC`: systemd restarts peerbox when no ping came for this long.
    pub timeout: Duration,
}

impl Watchdog {
    /// From the environment systemd gives a unit with `WatchdogSec=` (None without one, or
    /// when `WATCHDOG_PID` names another process).
    pub fn from_env() -> Option<Watchdog> {
        let timeout = sd_notify::watchdog_enabled()?;
        let socket = std::env::var_os("NOTIFY_SOCKET")?;
        Some(Watchdog { socket, timeout })
    }

    /// The ping period: half the timeout, as sd_watchdog_enabled(3) advises.
    pub fn every(&self) -> Duration {
        (self.timeout / 2).max(Duration::from_millis(10))
    }

    fn send(&self, text: &str) -> std::io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        let bytes = self.socket.as_encoded_bytes();
        #[cfg(target_os = "linux")]
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(text.as_bytes(), &addr)?;
            return Ok(());
        }
        let _ = bytes;
        sock.send_to(text.as_bytes(), &self.socket)?;
        Ok(())
    }
}

/// Pings until `shutdown`. `probe` is what must answer for the server to count as alive; it
/// runs in a new task each time, so that the ping also proves the runtime still schedules.
pub async fn run(dog: Watchdog, probe: Arc<dyn Fn() + Send + Sync>, shutdown: CancellationToken) {
    let every = dog.every();
    tracing::info!(timeout = ?dog.timeout, ?every, "systemd watchdog on");
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failures = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let probe = probe.clone();
        let answered = tokio::time::timeout(every, tokio::spawn(async move { probe() })).await;
        if !matches!(answered, Ok(Ok(()))) {
            tracing::error!("the liveness probe did not answer; not pinging the watchdog");
            continue;
        }
        match dog.send("WATCHDOG=1\n") {
            Ok(()) => failures = 0,
            Err(e) => {
                // Said once and then every 100th time: the socket is systemd's, not ours.
                if failures % 100 == 0 {
                    tracing::warn!(error = %e, "cannot ping the systemd watchdog");
                }
                failures += 1;
            }
        }
    }
}
