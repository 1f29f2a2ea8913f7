//! A load generator for the signalling relay (a benchmark, not a test): opens WSS clients in
//! rooms, pumps offers and candidates between room-mates, and reports delivered messages per
//! second, latency percentiles (each message carries its send time), errors and the server's
//! memory. `--idle N` opens N idle connections and reports the server's memory instead;
//! `--hostile N` measures a legitimate pair while N hostile sockets flood (`hostile.rs`).
//! Against a cluster, `--also-url` names the other nodes: client i connects to the (i mod n)-th
//! node, so the members of each room are spread over them; `--joins N` measures how long a
//! login takes to be `joined`, for the room's first member and for a second one on the next
//! node (`joins.rs`).
//! Works against peerbox and against the seed's protocol (bench/seed-server).

mod e2ee;
mod hostile;
mod janus;
mod joins;
mod sfu;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Ws = WebSocketStream<TlsStream<TcpStream>>;

#[derive(Parser, Clone)]
#[command(about = "Load generator for the peerbox signalling relay")]
struct Args {
    /// wss://HOST:PORT/PATH
    #[arg(long)]
    url: String,
    /// Other nodes of a cluster (wss://...; repeatable): client i connects to the (i mod n)-th
    /// of `--url` and these (relay load and `--joins`).
    #[arg(long)]
    also_url: Vec<String>,
    /// The process ids of those nodes (and of anything else the server side runs, such as
    /// Redis): their CPU time and memory are added to `--pid`'s.
    #[arg(long)]
    also_pid: Vec<u32>,
    /// Measure N logins' time to `joined`: each in a new room, then a second member on the
    /// next node (`joins.rs`).
    #[arg(long)]
    joins: Option<usize>,
    /// Accept any server certificate (self-signed test servers).
    #[arg(long)]
    insecure: bool,
    /// Trust this PEM certificate instead.
    #[arg(long)]
    ca: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    clients: usize,
    #[arg(long, default_value_t = 4)]
    room_size: usize,
    /// Seconds of load, warm-up included.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds at the start not counted.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Messages per second in total; 0: as fast as the window allows.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Messages in flight (sent, not yet delivered) per client.
    #[arg(long, default_value_t = 8)]
    window: usize,
    #[arg(long, default_value_t = 3500)]
    offer_bytes: usize,
    #[arg(long, default_value_t = 200)]
    candidate_bytes: usize,
    /// One offer in this many messages; the rest are candidates.
    #[arg(long, default_value_t = 10)]
    offer_every: usize,
    /// The server's process id, for its memory (VmRSS) and CPU time.
    #[arg(long)]
    pid: Option<u32>,
    /// Open this many idle connections and report the server's memory.
    #[arg(long)]
    idle: Option<usize>,
    /// Spread client connections over 127.0.0.1..=127.0.0.N.
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// Connections opened at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Seconds to hold idle connections before measuring.
    #[arg(long, default_value_t = 3.0)]
    hold: f64,
    /// Measure a legitimate pair (a candidate each way every `--interval-ms`) while N
    /// unauthenticated and N logged-in sockets send the costliest frames they can, from
    /// 127.0.0.2 up (`--sources` addresses); N = 0 gives the quiet figure.
    #[arg(long)]
    hostile: Option<usize>,
    #[arg(long, default_value_t = 50)]
    interval_ms: u64,
    /// R rooms of one sender and nine receivers that never read (see `hostile.rs`).
    #[arg(long)]
    silent: Option<usize>,
    /// Load threads, each a single-threaded runtime with whole rooms of its own; by default
    /// one per CPU this process may run on (see `taskset`).
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    threads: usize,
    /// N members in one SFU room, each publishing `--media` and receiving the others
    /// (`sfu.rs`); `--url` is wss://... for peerbox, http://HOST:8088/janus for Janus.
    #[arg(long)]
    sfu: Option<usize>,
    #[arg(long, value_enum, default_value = "peerbox")]
    backend: sfu::Backend,
    /// The VP8 IVF file every SFU member publishes, looped.
    #[arg(long)]
    media: Option<PathBuf>,
    /// Simulcast: the `m` and `l` layers' IVF files, comma-separated; each member then
    /// publishes `--media` as rid `h` with these as `m` and `l`, and shows every other
    /// member's video in a small tile (peerbox: `sfu-view` 160x90; Janus: `configure`
    /// `substream` 0), so the server sends `l`.
    #[arg(long)]
    simulcast: Option<String>,
    /// The address the members' media sockets bind to.
    #[arg(long, default_value = "127.0.0.1")]
    media_ip: String,
    /// The peerbox room the SFU members join.
    #[arg(long, default_value = "sfu-bench")]
    room: String,
    /// The Janus VideoRoom room number the members join (made if missing).
    #[arg(long, default_value_t = 4242)]
    janus_room: u64,
    /// The room's secret (the fragment of its link): SFU members then encrypt their video
    /// end to end as the web app does, so browsers in the room show it (`e2ee.rs`).
    #[arg(long)]
    room_key: Option<String>,
    /// SFU members show no one (`sfu-view` 0x0 for every video): they publish and receive
    /// nothing, the crowd around browsers that watch (tests/e2e u-big-room).
    #[arg(long)]
    hidden_views: bool,
    /// Milliseconds between two SFU members' arrivals.
    #[arg(long, default_value_t = 200)]
    join_gap_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    if let Some(n) = args.sfu {
        if let Some(secret) = &args.room_key {
            e2ee::use_room_key(secret, &args.room)?;
        }
        return rt()?.block_on(sfu::run(&args, n));
    }
    if let Some(n) = args.joins {
        return rt()?.block_on(joins::run(&args, n));
    }
    match (args.idle, args.hostile, args.silent) {
        (Some(n), _, _) => rt()?.block_on(idle(&args, n)),
        (None, Some(n), _) => rt()?.block_on(hostile::run(&args, n)),
        (None, None, Some(r)) => rt()?.block_on(hostile::silent(&args, r)),
        (None, None, None) => relay(&args),
    }
}

/// Where to connect and how.
struct Target {
    url: String,
    addr: SocketAddr,
    name: ServerName<'static>,
    tls: TlsConnector,
    sources: u8,
}

impl Target {
    async fn new(args: &Args) -> anyhow::Result<Arc<Target>> {
        Target::at(args, &args.url).await
    }

    /// `--url` and every `--also-url`, in that order.
    async fn all(args: &Args) -> anyhow::Result<Vec<Arc<Target>>> {
        let mut all = vec![Target::new(args).await?];
        for url in &args.also_url {
            all.push(Target::at(args, url).await?);
        }
        Ok(all)
    }

    async fn at(args: &Args, url: &str) -> anyhow::Result<Arc<Target>> {
        let rest = url
            .strip_prefix("wss://")
            .context("--url must start with wss://")?;
        let hostport = rest.split('/').next().unwrap_or(rest);
        let host = hostport
            .rsplit_once(':')
            .map_or(hostport, |(h, _)| h)
            .trim_matches(['[', ']']);
        let addr = tokio::net::lookup_host(hostport)
            .await?
            .next()
            .context("cannot resolve the host")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let config = if args.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth()
        } else {
            let path = args
                .ca
                .as_ref()
                .context("give --insecure or --ca CERT.pem")?;
            let mut roots = rustls::RootCertStore::empty();
            let pem = std::fs::read(path)?;
            for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
                roots.add(cert?)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Ok(Arc::new(Target {
            url: url.to_owned(),
            addr,
            name: ServerName::try_from(host.to_owned())?,
            tls: TlsConnector::from(Arc::new(config)),
            sources: args.sources.max(1),
        }))
    }

    async fn connect(&self, i: usize) -> anyhow::Result<Ws> {
        let source = (self.sources > 1).then(|| 1 + (i % usize::from(self.sources)) as u8);
        self.connect_from(source).await
    }

    /// A connection from 127.0.0.`last` (the kernel's choice when `None`).
    async fn connect_from(&self, last: Option<u8>) -> anyhow::Result<Ws> {
        let socket = TcpSocket::new_v4()?;
        if let Some(last) = last {
            socket.bind(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
                0,
            ))?;
        }
        let tcp = socket.connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = self.tls.connect(self.name.clone(), tcp).await?;
        // tungstenite zero-fills its whole read buffer before every read: at the default
        // 128 KiB that was a sixth of the load generator's CPU. 8 KiB, as the server uses.
        let mut config = WebSocketConfig::default();
        config.read_buffer_size = 8 * 1024;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(self.url.as_str(), tls, Some(config))
                .await?;
        Ok(ws)
    }
}

/// Opens `n` connections, at most `concurrency` at a time.
async fn connect_all(target: &Arc<Target>, n: usize, concurrency: usize) -> Vec<Ws> {
    let indices: Vec<usize> = (0..n).collect();
    connect_spread(std::slice::from_ref(target), &indices, concurrency).await
}

/// Opens a connection for each client of `clients` (global client numbers), client i to the
/// (i mod n)-th of `targets`, at most `concurrency` at a time; in the order of `clients`.
async fn connect_spread(targets: &[Arc<Target>], clients: &[usize], concurrency: usize) -> Vec<Ws> {
    let n = clients.len();
    let results: Vec<(usize, anyhow::Result<Ws>)> = futures_util::stream::iter(0..n)
        .map(|k| {
            let i = clients[k];
            let t = targets[i % targets.len()].clone();
            async move { (k, t.connect(i).await) }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut ok: Vec<(usize, Ws)> = Vec::with_capacity(n);
    let mut failed = 0;
    for (i, r) in results {
        match r {
            Ok(ws) => ok.push((i, ws)),
            Err(e) => {
                if failed == 0 {
                    eprintln!("connect failed: {e:#}");
                }
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {n} connections failed");
    }
    ok.sort_by_key(|(i, _)| *i);
    ok.into_iter().map(|(_, ws)| ws).collect()
}

async fn idle(args: &Args, n: usize) -> anyhow::Result<()> {
    let target = Target::new(args).await?;
    let rss_before = args.pid.and_then(|p| proc_status(p, "VmRSS"));
    let started = Instant::now();
    let conns = connect_all(&target, n, args.connect_concurrency).await;
    let opened = conns.len();
    let connect_secs = started.elapsed().as_secs_f64();
    // Poll every connection so that pings are answered, as a browser would.
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} }))
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let rss = args.pid.and_then(|p| proc_status(p, "VmRSS"));
    let still_open = tasks.iter().filter(|t| !t.is_finished()).count();
    println!(
        "RESULT mode=idle requested={n} opened={opened} open_after_hold={still_open} \
         connect_secs={connect_secs:.1} rss_before_mb={} rss_mb={}",
        mb(rss_before),
        mb(rss)
    );
    Ok(())
}

/// What one load thread measured.
#[derive(Default)]
struct Tally {
    /// Latencies of messages sent inside the measured window, in µs.
    latencies_us: Vec<u32>,
    /// Every relayed message that arrived, warm-up and drain included.
    delivered: u64,
    sent: u64,
    errors: u64,
}

/// The clock and the phases every thread shares.
struct Plan {
    /// Set by the main thread once every client is logged in.
    base: OnceLock<std::time::Instant>,
    /// Every thread logged in; then every thread done sending and drained; then measured.
    ready: Barrier,
    drained: Barrier,
    measured: Barrier,
    tallies: Mutex<Vec<Tally>>,
}

const START_US: u64 = 200_000;

/// Runs the relay load on `--threads` threads, each a current-thread runtime with whole rooms
/// of its own, so that no message crosses threads inside the load generator.
fn relay(args: &Args) -> anyhow::Result<()> {
    if args.room_size < 2 {
        bail!("--room-size must be at least 2");
    }
    let threads = args.threads.max(1);
    let plan = Arc::new(Plan {
        base: OnceLock::new(),
        ready: Barrier::new(threads + 1),
        drained: Barrier::new(threads + 1),
        measured: Barrier::new(threads + 1),
        tallies: Mutex::new(Vec::new()),
    });
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let rooms = args.clients.div_ceil(args.room_size);
    let mut handles = Vec::new();
    for t in 0..threads {
        let (args, plan, tag) = (args.clone(), plan.clone(), tag.clone());
        handles.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(load_thread(&args, &plan, &tag, (t..rooms).step_by(threads)))
        }));
    }
    plan.ready.wait();
    let _ = plan.base.set(std::time::Instant::now());
    let pids: Vec<u32> = args.pid.iter().chain(&args.also_pid).copied().collect();
    let cpu_of = || -> Option<f64> { pids.iter().map(|&p| proc_cpu_secs(p)).sum() };
    let kb_of = |field| -> Option<u64> { pids.iter().map(|&p| proc_status(p, field)).sum() };
    let cpu_before = cpu_of();
    plan.drained.wait();
    let cpu = match (cpu_before, cpu_of()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let rss = kb_of("VmRSS");
    let hwm = kb_of("VmHWM");
    plan.measured.wait();
    for h in handles {
        match h.join() {
            Ok(r) => r?,
            Err(_) => bail!("a load thread panicked"),
        }
    }
    let tallies = std::mem::take(&mut *plan.tallies.lock().unwrap_or_else(|e| e.into_inner()));
    let mut lat: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    let delivered: u64 = tallies.iter().map(|t| t.delivered).sum();
    let sent: u64 = tallies.iter().map(|t| t.sent).sum();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    lat.sort_unstable();
    let pct = |p: f64| percentile_ms(&lat, p);
    let window_secs = args.duration - args.warmup;
    // The load runs `duration` seconds plus one to drain; the CPU share is over that span.
    let span_secs = args.duration + 1.0 + START_US as f64 / 1e6;
    println!(
        "RESULT mode=relay clients={} room_size={} rate={} threads={threads} sent={sent} \
         delivered={delivered} delivered_per_s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} \
         errors={errors} rss_mb={} hwm_mb={} server_cpu={} server_cpu_s={} cpu_us_per_msg={}",
        args.clients,
        args.room_size,
        args.rate,
        lat.len() as f64 / window_secs,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        mb(rss),
        mb(hwm),
        cpu.map_or("-".into(), |c| format!("{:.0}%", c / span_secs * 100.0)),
        cpu.map_or("-".into(), |c| format!("{c:.3}")),
        cpu.map_or("-".into(), |c| format!(
            "{:.2}",
            c * 1e6 / delivered.max(1) as f64
        )),
    );
    Ok(())
}

/// One thread's share: connect and log in its rooms, wait for the common start, pump, drain.
async fn load_thread(
    args: &Args,
    plan: &Plan,
    tag: &str,
    rooms: impl Iterator<Item = usize>,
) -> anyhow::Result<()> {
    let target = Target::all(args).await;
    let members: Vec<usize> = rooms
        .flat_map(|room| room * args.room_size..((room + 1) * args.room_size).min(args.clients))
        .collect();
    let mut clients: Vec<(usize, Ws)> = Vec::new();
    if let Ok(targets) = &target {
        let conns = connect_spread(targets, &members, args.connect_concurrency).await;
        if conns.len() < members.len() {
            bail!(
                "only {} of {} connections opened",
                conns.len(),
                members.len()
            );
        }
        clients = members.into_iter().zip(conns).collect();
    }
    // Log everyone in; the session ids come from `joined` (the seed's lists no members).
    let mut ids = Vec::with_capacity(clients.len());
    let mut failed = None;
    for (i, ws) in clients.iter_mut() {
        let room = format!("bench-{tag}-{}", *i / args.room_size);
        match login(ws, &room, &format!("u{i}")).await {
            Ok(id) => ids.push(id),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    // Every thread reaches every barrier, whatever failed, so that none waits forever.
    plan.ready.wait();
    let base = tokio::time::Instant::from_std(
        plan.base
            .get()
            .copied()
            .unwrap_or_else(std::time::Instant::now),
    );
    let result = match (target, failed) {
        (Err(e), _) | (_, Some(e)) => Err(e),
        _ => Ok(pump(args, base, clients, ids).await),
    };
    let tally = match result {
        Ok(t) => t,
        Err(e) => {
            plan.drained.wait();
            plan.measured.wait();
            return Err(e);
        }
    };
    let (tally, streams) = tally;
    plan.tallies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(tally);
    plan.drained.wait();
    plan.measured.wait();
    drop(streams);
    Ok(())
}

/// Sends and receives until the end of the load plus a second to drain; returns the tally and
/// the still-open connections, closed only after the server has been measured.
async fn pump(
    args: &Args,
    base: Instant,
    clients: Vec<(usize, Ws)>,
    ids: Vec<String>,
) -> (Tally, Halves) {
    let warm_us = START_US + (args.warmup * 1e6) as u64;
    let end_us = START_US + (args.duration * 1e6) as u64;
    let offer = fake_sdp(args.offer_bytes);
    let cand_pad = "x".repeat(args.candidate_bytes.saturating_sub(170));
    let local: HashMap<usize, usize> = clients
        .iter()
        .enumerate()
        .map(|(k, (i, _))| (*i, k))
        .collect();
    let windows: Arc<Vec<Semaphore>> = Arc::new(
        (0..clients.len())
            .map(|_| Semaphore::new(args.window))
            .collect(),
    );
    let ids_by_global: HashMap<usize, &str> = clients
        .iter()
        .zip(&ids)
        .map(|((i, _), id)| (*i, id.as_str()))
        .collect();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    let clients_f = args.clients as f64;
    for (k, (i, ws)) in clients.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let room = i / args.room_size;
        // Each message is the text before the send time and the text after it, made once.
        let templates: Vec<(String, String)> = (room * args.room_size
            ..((room + 1) * args.room_size).min(args.clients))
            .filter(|&j| j != i)
            .filter_map(|j| ids_by_global.get(&j))
            .flat_map(|to| {
                let offer = (
                    format!(r#"{{"type":"offer","from":"","to":"{to}","username":"bench","data":{{"ts":"#),
                    format!(r#","src":{i},"type":"offer","sdp":{offer}}}}}"#),
                );
                let cand = (
                    format!(r#"{{"type":"candidate","from":"","to":"{to}","data":{{"ts":"#),
                    format!(r#","src":{i},"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0 {cand_pad}","sdpMid":"0","sdpMLineIndex":0}}}}"#),
                );
                [offer, cand]
            })
            .collect();
        let (windows2, local2) = (windows.clone(), local.clone());
        let args_window = args.window;
        receivers.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let deadline = base + Duration::from_micros(end_us) + Duration::from_secs(1);
            let deadline = tokio::time::sleep_until(deadline);
            tokio::pin!(deadline);
            loop {
                let msg = tokio::select! {
                    m = stream.next() => m,
                    () = &mut deadline => break,
                };
                let Some(Ok(Message::Text(text))) = msg else {
                    if msg.is_none() {
                        break;
                    }
                    continue;
                };
                match (
                    number_after(&text, "\"ts\":"),
                    number_after(&text, "\"src\":"),
                ) {
                    (Some(ts), Some(src)) => {
                        t.delivered += 1;
                        if (warm_us..end_us).contains(&ts) {
                            let now = base.elapsed().as_micros() as u64;
                            t.latencies_us
                                .push(now.saturating_sub(ts).min(u64::from(u32::MAX)) as u32);
                        }
                        if let Some(w) = local2.get(&(src as usize)).and_then(|&s| windows2.get(s))
                        {
                            w.add_permits(1);
                        }
                    }
                    _ if text.contains("\"error\"") => t.errors += 1,
                    _ => {}
                }
            }
            (t, stream)
        }));
        if templates.is_empty() {
            continue;
        }
        let windows = windows.clone();
        let (every, rate) = (args.offer_every.max(1), args.rate);
        senders.push(tokio::spawn(async move {
            // At a fixed rate each client sends every `period`, the clients' send times spread
            // evenly over one period. tokio's timers fire on whole milliseconds, which would send
            // the ~10 messages due in each millisecond as one burst; the last few microseconds are
            // waited out by yielding, so messages leave at their own times.
            let period = (rate > 0.0).then(|| Duration::from_secs_f64(clients_f / rate));
            let start = base + Duration::from_micros(START_US);
            let mut due = period.map(|p| start + p.mul_f64(i as f64 / clients_f));
            tokio::time::sleep_until(start).await;
            let end_at = base + Duration::from_micros(end_us);
            // A server that stopped reading (its rate limits pause a socket) holds a write;
            // the receivers give up a second after the end, and so do the writes.
            let stop_at = end_at + Duration::from_secs(1);
            let mates = templates.len() / 2;
            let (mut n, mut sent) = (0usize, 0u64);
            let make = |n: usize, ts: u64| {
                let pick = 2 * (n % mates) + usize::from(n % every != 0);
                let (head, tail) = &templates[pick];
                let mut text = String::with_capacity(head.len() + tail.len() + 20);
                text.push_str(head);
                text.push_str(&ts.to_string());
                text.push_str(tail);
                Message::text(text)
            };
            'run: loop {
                if let (Some(at), Some(p)) = (due.as_mut(), period) {
                    tokio::time::sleep_until(*at - Duration::from_millis(1).min(p)).await;
                    while Instant::now() < *at {
                        tokio::task::yield_now().await;
                    }
                    *at += p;
                }
                // The window's permits come back through the receivers, which stop at the
                // deadline: a sender still waiting for one then would wait forever.
                let acquire = tokio::time::timeout_at(end_at, windows[k].acquire());
                let Ok(Ok(permit)) = acquire.await else {
                    break;
                };
                permit.forget();
                let mut batch = 0;
                loop {
                    let ts = base.elapsed().as_micros() as u64;
                    if ts >= end_us {
                        break 'run;
                    }
                    let fed = tokio::time::timeout_at(stop_at, sink.feed(make(n, ts))).await;
                    if !matches!(fed, Ok(Ok(()))) {
                        break 'run;
                    }
                    n += 1;
                    sent += 1;
                    batch += 1;
                    // As fast as the window allows: what is ready goes out in one write, as a
                    // browser's socket sends what queued while it was busy.
                    if period.is_some() || batch == args_window {
                        break;
                    }
                    match windows[k].try_acquire() {
                        Ok(p) => p.forget(),
                        Err(_) => break,
                    }
                }
                if !matches!(
                    tokio::time::timeout_at(stop_at, sink.flush()).await,
                    Ok(Ok(()))
                ) {
                    break;
                }
            }
            let _ = tokio::time::timeout_at(stop_at, sink.flush()).await;
            (sink, sent)
        }));
    }
    let mut total = Tally::default();
    let mut open = (Vec::new(), Vec::new());
    for s in senders {
        if let Ok((sink, n)) = s.await {
            total.sent += n;
            open.0.push(sink);
        }
    }
    for r in receivers {
        if let Ok((t, stream)) = r.await {
            total.delivered += t.delivered;
            total.errors += t.errors;
            total.latencies_us.extend(t.latencies_us);
            open.1.push(stream);
        }
    }
    (total, open)
}

/// The halves of every connection, kept open until the server has been measured.
type Halves = (
    Vec<futures_util::stream::SplitSink<Ws, Message>>,
    Vec<futures_util::stream::SplitStream<Ws>>,
);

/// Sends a login to `room` and returns the session id `joined` gives.
async fn login(ws: &mut Ws, room: &str, name: &str) -> anyhow::Result<String> {
    let login = json!({"type": "login", "from": "", "to": "",
                       "data": {"roomrequest": room, "username": name}});
    ws.send(Message::text(login.to_string())).await?;
    wait_joined(ws).await
}

/// Reads until `joined` and returns the session id it gives.
async fn wait_joined(ws: &mut Ws) -> anyhow::Result<String> {
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    loop {
        let msg = tokio::select! {
            _ = &mut deadline => bail!("no joined within 10 s"),
            m = ws.next() => m.context("closed before joined")??,
        };
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t)?;
            match v["type"].as_str() {
                Some("joined") => {
                    return v["data"]
                        .as_str()
                        .map(str::to_owned)
                        .context("joined without an id");
                }
                Some("error") => bail!("login refused: {v}"),
                _ => {}
            }
        }
    }
}

/// A JSON string literal shaped like an SDP offer of about `bytes` bytes.
fn fake_sdp(bytes: usize) -> String {
    let head = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
                a=group:BUNDLE 0 1\r\na=msid-semantic: WMS stream\r\n";
    let line = "a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n\
                a=fmtp:111 minptime=10;useinbandfec=1\r\n";
    let mut sdp = head.to_owned();
    while sdp.len() < bytes {
        sdp.push_str(line);
    }
    sdp.truncate(bytes);
    Value::String(sdp).to_string()
}

/// The unsigned number right after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits: &str = &text[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The `p` quantile (0..=1) of sorted µs latencies, in ms; NaN when there are none.
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted_us.len() as f64 * p).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[idx]) / 1000.0
}

/// A `kB` field of /proc/PID/status.
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// User + system CPU seconds of the process.
fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// Accepts every certificate: for self-signed benchmark servers only (`--insecure`).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
