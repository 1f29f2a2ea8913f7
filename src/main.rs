//! The `peerbox` command: parse arguments, load the config, bind every port, serve.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use peerbox::{Config, Listeners, Server, tls};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// mimalloc: the relay allocates a few small buffers per message, and glibc's malloc was ~5 % of
/// its CPU under load (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// At most this often per worker thread, an idle worker asks mimalloc to return the pages it
/// freed to the OS. Without it, memory freed after a flood stays in the thread's heap for as long
/// as the thread is idle (about 20 MB after `loadgen --silent 5`, BENCHMARKS.md).
const COLLECT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Called by tokio each time a worker thread runs out of work: a cheap clock read, and a heap
/// collection when the last one on this thread is older than [`COLLECT_EVERY`].
fn collect_when_idle() {
    use std::cell::Cell;
    use std::time::Instant;
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    let due = LAST.with(|last| match last.get() {
        Some(t) if now.duration_since(t) < COLLECT_EVERY => false,
        _ => {
            last.set(Some(now));
            true
        }
    });
    if due {
        #[allow(unsafe_code)]
        // SAFETY: `mi_collect` takes no pointers and has no preconditions; it only walks and
        // purges the calling thread's own mimalloc heap, which is the global allocator here.
        unsafe {
            libmimalloc_sys::mi_collect(true)
        };
    }
}

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
        return check_config(&cli.config, &config);
    }
    tracing::info!(
        version = %env!("CARGO_PKG_VERSION"),
        config = %cli.config.display(),
        "peerbox starting"
    );
    for w in config.warnings() {
        tracing::warn!(key = w.key, problem = %w.message, "config needs attention");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(collect_when_idle)
        .build()
    {
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

/// `check-config`: what start would refuse is an error (exit 2), what would hurt a warning.
fn check_config(path: &Path, config: &Config) -> ExitCode {
    let dir = config.tls.dir.display();
    match tls::inspect(&config.tls.dir) {
        Ok(tls::Found::Certificate {
            fingerprint,
            validity,
        }) => {
            println!(
                "certificate in {dir}: sha256 {fingerprint}, valid until {}",
                tls::date(validity.not_after)
            );
            if let Some(problem) = validity.problem(tls::now()) {
                eprintln!("warning: the certificate in {dir} {problem}");
            }
        }
        Ok(tls::Found::Nothing) => println!(
            "no certificate in {dir}: start writes a self-signed one for {} there",
            config.hostname
        ),
        Err(e) => {
            eprintln!("peerbox: TLS certificates in {dir}: {e}");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = peerbox::acme::check(config) {
        eprintln!("peerbox: {e}");
        return ExitCode::from(2);
    }
    if let Some(line) = peerbox::acme::summary(config) {
        println!("{line}");
    }
    for w in config.warnings() {
        eprintln!("warning: {w}");
    }
    println!("{}: configuration is valid", path.display());
    ExitCode::SUCCESS
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server =
        Server::new(config.clone())?.with_watchdog(peerbox::watchdog::Watchdog::from_env());
    let mut listeners = Listeners::default();
    for addr in &config.https.listen {
        listeners.https.push(bind_tcp(*addr, "https.listen")?);
    }
    for addr in &config.http.listen {
        listeners.http.push(bind_tcp(*addr, "http.listen")?);
    }
    for addr in &config.turn.listen {
        listeners.turn_udp.extend(
            peerbox::turn::bind_udp(*addr)
                .map_err(|e| bind_error(e, *addr, "turn.listen", "udp"))?,
        );
        listeners.turn_tcp.push(bind_tcp(*addr, "turn.listen")?);
    }
    for addr in &config.metrics.listen {
        listeners.metrics.push(bind_tcp(*addr, "metrics.listen")?);
    }
    for addr in &config.turn.udp_listen {
        listeners.turn_udp.extend(
            peerbox::turn::bind_udp(*addr)
                .map_err(|e| bind_error(e, *addr, "turn.udp_listen", "udp"))?,
        );
    }
    if config.sfu.enabled {
        let addr = config.sfu.listen;
        let socket =
            peerbox::sfu::bind_udp(addr).map_err(|e| bind_error(e, addr, "sfu.listen", "udp"))?;
        listeners.sfu_udp = Some(socket);
    }
    for l in listeners.https.iter() {
        // turn=true: TURN over TLS and over TCP on this port too.
        tracing::info!(addr = %l.local_addr()?, turn = config.https.turn, "listening for https and wss");
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
    for l in listeners.metrics.iter() {
        tracing::info!(addr = %l.local_addr()?, "listening for /metrics, /healthz, /readyz");
    }
    if let Some(url) = url(&config.hostname, &listeners.https) {
        tracing::info!(%url, "open this address in a browser");
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

/// The address people open: the hostname, with the first HTTPS port unless it is 443.
fn url(hostname: &str, https: &[TcpListener]) -> Option<String> {
    let port = https.first()?.local_addr().ok()?.port();
    let host = match hostname.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{hostname}]"),
        _ => hostname.to_owned(),
    };
    Some(match port {
        443 => format!("https://{host}/"),
        _ => format!("https://{host}:{port}/"),
    })
}

/// A listening TCP socket; `[::]` is bound IPv6-only (as UDP's is), so that `0.0.0.0:P` and
/// `[::]:P` can be listed side by side instead of the second failing with "address in use".
fn bind_tcp(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    let bind = || -> std::io::Result<TcpListener> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        // As tokio's own bind does: a restart can take the port while old connections linger
        // in TIME_WAIT.
        s.set_reuse_address(true)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        s.listen(1024)?;
        TcpListener::from_std(s.into())
    };
    bind().map_err(|e| bind_error(e, addr, key, "tcp"))
}

/// A sentence for a port peerbox could not take. Clashes between peerbox's own listeners are
/// refused by the config check before anything is bound, so "in use" here is someone else.
fn bind_error(e: std::io::Error, addr: SocketAddr, key: &str, proto: &str) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "cannot listen on {addr} ({key}): permission denied. Ports below 1024 need the \
             CAP_NET_BIND_SERVICE capability: run peerbox through systemd/peerbox.service \
             (AmbientCapabilities=CAP_NET_BIND_SERVICE), or `sudo setcap cap_net_bind_service=+ep \
             $(command -v peerbox)`, or choose ports above 1024 in the config"
        ),
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "cannot listen on {addr}/{proto} ({key}): another process holds that port (another \
             peerbox, or a web server); `ss -{}lnp 'sport = :{}'` shows which. Stop it, or \
             choose another port in the config",
            if proto == "udp" { "u" } else { "t" },
            addr.port()
        ),
        _ => anyhow::anyhow!("cannot listen on {addr} ({key}): {e}"),
    }
}
