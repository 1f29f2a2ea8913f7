//! The `peerbox` command: parse arguments, load the config, bind every port, serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use peerbox::{Config, Listeners, Server};
use tokio_util::sync::CancellationToken;

/// mimalloc: the relay allocates a few small buffers per message, and glibc's malloc was ~5 % of
/// its CPU under load (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "peerbox",
    version,
    about = "Self-hosted WebRTC rooms: HTTPS + WSS signalling + STUN/TURN in one binary"
)]
struct Cli {
    /// Path of the configuration file.
    #[arg(long, short, global = true, default_value = "config.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check the configuration file and exit (0 when it is valid).
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEERBOX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("peerbox: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        println!("{}: configuration is valid", cli.config.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("peerbox: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peerbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = Server::new(config.clone())?;
    let mut listeners = Listeners::default();
    for addr in &config.https.listen {
        listeners.https.push(bind_tcp(*addr, "https.listen").await?);
    }
    for addr in &config.http.listen {
        listeners.http.push(bind_tcp(*addr, "http.listen").await?);
    }
    for addr in &config.turn.listen {
        listeners.turn_udp.extend(
            peerbox::turn::bind_udp(*addr).map_err(|e| bind_error(e, *addr, "turn.listen"))?,
        );
        listeners
            .turn_tcp
            .push(bind_tcp(*addr, "turn.listen").await?);
    }
    for addr in &config.turn.udp_listen {
        listeners.turn_udp.extend(
            peerbox::turn::bind_udp(*addr).map_err(|e| bind_error(e, *addr, "turn.udp_listen"))?,
        );
    }
    for l in listeners.https.iter() {
        if config.https.turn {
            tracing::info!(addr = %l.local_addr()?, "listening for https and wss, turn over tls and tcp");
        } else {
            tracing::info!(addr = %l.local_addr()?, "listening for https and wss");
        }
    }
    for addr in &config.turn.udp_listen {
        tracing::info!(%addr, "listening for stun/turn (udp only)");
    }
    for l in listeners.http.iter() {
        tracing::info!(addr = %l.local_addr()?, "listening for http (redirect, acme)");
    }
    for l in listeners.turn_tcp.iter() {
        tracing::info!(addr = %l.local_addr()?, "listening for stun/turn (udp and tcp)");
    }
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(peerbox::shutdown::watch_signals(
        server.handle(),
        shutdown.clone(),
    ));
    // READY=1 only once every listener is bound; harmless outside systemd.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let result = server.run(listeners, shutdown.clone()).await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    shutdown.cancel();
    signals
        .await
        .context("signal watcher")?
        .context("signal watcher")?;
    result
}

/// Binds a TCP listener; an IPv6 one is IPv6 only, so that `0.0.0.0:P` and `[::]:P` can
/// both be listed (as the UDP sockets are).
async fn bind_tcp(addr: SocketAddr, key: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let bind = || -> std::io::Result<tokio::net::TcpListener> {
        let s = if addr.is_ipv6() {
            let s = tokio::net::TcpSocket::new_v6()?;
            socket2::SockRef::from(&s).set_only_v6(true)?;
            s
        } else {
            tokio::net::TcpSocket::new_v4()?
        };
        s.set_reuseaddr(true)?;
        s.bind(addr)?;
        s.listen(1024)
    };
    bind().map_err(|e| bind_error(e, addr, key))
}

fn bind_error(e: std::io::Error, addr: SocketAddr, key: &str) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "cannot listen on {addr} ({key}): permission denied. Ports below 1024 need the \
             CAP_NET_BIND_SERVICE capability: run peerbox through systemd/peerbox.service \
             (AmbientCapabilities=CAP_NET_BIND_SERVICE), or `sudo setcap cap_net_bind_service=+ep \
             $(command -v peerbox)`, or choose ports above 1024 in the config"
        ),
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "cannot listen on {addr} ({key}): the address is already in use by another program \
             (see `ss -ltnup`), or choose another port in the config"
        ),
        _ => anyhow::anyhow!("cannot listen on {addr} ({key}): {e}"),
    }
}
