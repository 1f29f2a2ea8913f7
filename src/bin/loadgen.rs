//! A load generator for the signalling relay (a benchmark, not a test): opens WSS clients in
//! rooms, pumps offers and candidates between room-mates, and reports delivered messages per
//! second, latency percentiles (each message carries its send time), errors and the server's
//! memory. `--idle N` opens N idle connections and reports the server's memory instead.
//! Works against peerbox and against the seed's protocol (bench/seed-server).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

type Ws = WebSocketStream<TlsStream<TcpStream>>;

#[derive(Parser, Clone)]
#[command(about = "Load generator for the peerbox signalling relay")]
struct Args {
    /// wss://HOST:PORT/PATH
    #[arg(long)]
    url: String,
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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match args.idle {
            Some(n) => idle(&args, n).await,
            None => relay(&args).await,
        }
    })
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
        let rest = args
            .url
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
            url: args.url.clone(),
            addr,
            name: ServerName::try_from(host.to_owned())?,
            tls: TlsConnector::from(Arc::new(config)),
            sources: args.sources.max(1),
        }))
    }

    async fn connect(&self, i: usize) -> anyhow::Result<Ws> {
        let socket = TcpSocket::new_v4()?;
        if self.sources > 1 {
            let last = 1 + (i % usize::from(self.sources)) as u8;
            socket.bind(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
                0,
            ))?;
        }
        let tcp = socket.connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = self.tls.connect(self.name.clone(), tcp).await?;
        let (ws, _) = tokio_tungstenite::client_async(self.url.as_str(), tls).await?;
        Ok(ws)
    }
}

/// Opens `n` connections, at most `concurrency` at a time.
async fn connect_all(target: &Arc<Target>, n: usize, concurrency: usize) -> Vec<Ws> {
    let results: Vec<(usize, anyhow::Result<Ws>)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let t = target.clone();
            async move { (i, t.connect(i).await) }
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

/// What every receiver adds up.
#[derive(Default)]
struct Stats {
    latencies_us: Mutex<Vec<u32>>,
    errors: AtomicU64,
    other: AtomicU64,
}

async fn relay(args: &Args) -> anyhow::Result<()> {
    if args.room_size < 2 {
        bail!("--room-size must be at least 2");
    }
    let target = Target::new(args).await?;
    let mut conns = connect_all(&target, args.clients, args.connect_concurrency).await;
    let n = conns.len();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    // Log everyone in; collect the session ids centrally (the seed's `joined` lists no members).
    let mut ids = Vec::with_capacity(n);
    for (i, ws) in conns.iter_mut().enumerate() {
        let room = format!("bench-{tag}-{}", i / args.room_size);
        let login = json!({"type": "login", "from": "", "to": "",
                           "data": {"roomrequest": room, "username": format!("u{i}")}});
        ws.send(Message::text(login.to_string())).await?;
        ids.push(wait_joined(ws).await?);
    }
    let stats = Arc::new(Stats::default());
    let windows: Arc<Vec<Semaphore>> =
        Arc::new((0..n).map(|_| Semaphore::new(args.window)).collect());
    let base = Instant::now();
    let start_us = 200_000u64;
    let warm_us = start_us + (args.warmup * 1e6) as u64;
    let end_us = start_us + (args.duration * 1e6) as u64;
    let cpu_before = args.pid.and_then(proc_cpu_secs);
    let offer = fake_sdp(args.offer_bytes);
    let cand_pad = "x".repeat(args.candidate_bytes.saturating_sub(170));
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (i, ws) in conns.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let room = i / args.room_size;
        let mates: Vec<(usize, String)> = (room * args.room_size
            ..((room + 1) * args.room_size).min(n))
            .filter(|&j| j != i)
            .map(|j| (j, ids[j].clone()))
            .collect();
        let (stats2, windows2) = (stats.clone(), windows.clone());
        receivers.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(t) = msg else { continue };
                match (number_after(&t, "\"ts\":"), number_after(&t, "\"src\":")) {
                    (Some(ts), Some(src)) => {
                        let now = base.elapsed().as_micros() as u64;
                        if (warm_us..end_us).contains(&ts) {
                            let lat = now.saturating_sub(ts).min(u64::from(u32::MAX)) as u32;
                            if let Ok(mut l) = stats2.latencies_us.lock() {
                                l.push(lat);
                            }
                        }
                        if let Some(w) = windows2.get(src as usize) {
                            w.add_permits(1);
                        }
                    }
                    _ if t.contains("\"error\"") => {
                        stats2.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        stats2.other.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
        if mates.is_empty() {
            continue;
        }
        let windows = windows.clone();
        let (offer, cand_pad) = (offer.clone(), cand_pad.clone());
        let (every, rate, clients) = (args.offer_every.max(1), args.rate, n as f64);
        senders.push(tokio::spawn(async move {
            let mut tick = (rate > 0.0).then(|| {
                let period = Duration::from_secs_f64(clients / rate);
                // Spread the clients' first ticks over one period.
                let offset = period.mul_f64(i as f64 / clients);
                tokio::time::interval_at(base + Duration::from_micros(start_us) + offset, period)
            });
            tokio::time::sleep_until(base + Duration::from_micros(start_us)).await;
            let mut k = 0usize;
            let mut sent = 0u64;
            loop {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let Ok(permit) = windows[i].acquire().await else { break };
                permit.forget();
                let ts = base.elapsed().as_micros() as u64;
                if ts >= end_us {
                    break;
                }
                let (_, to) = &mates[k % mates.len()];
                let text = if k % every == 0 {
                    format!(
                        r#"{{"type":"offer","from":"","to":"{to}","username":"bench","data":{{"ts":{ts},"src":{i},"type":"offer","sdp":{offer}}}}}"#
                    )
                } else {
                    format!(
                        r#"{{"type":"candidate","from":"","to":"{to}","data":{{"ts":{ts},"src":{i},"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0 {cand_pad}","sdpMid":"0","sdpMLineIndex":0}}}}"#
                    )
                };
                k += 1;
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
                sent += 1;
            }
            (sink, sent)
        }));
    }
    let mut sent = 0;
    let mut sinks = Vec::new();
    for s in senders {
        if let Ok((sink, n)) = s.await {
            sent += n;
            sinks.push(sink);
        }
    }
    // Let what is in flight arrive, then measure the server before closing anything.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let cpu = match (cpu_before, args.pid.and_then(proc_cpu_secs)) {
        (Some(a), Some(b)) => Some((b - a) / (args.duration + 1.0)),
        _ => None,
    };
    let rss = args.pid.and_then(|p| proc_status(p, "VmRSS"));
    let hwm = args.pid.and_then(|p| proc_status(p, "VmHWM"));
    let mut lat = stats
        .latencies_us
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let idx = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[idx]) / 1000.0
    };
    let window_secs = args.duration - args.warmup;
    println!(
        "RESULT mode=relay clients={n} room_size={} rate={} sent={sent} \
         delivered_per_s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} errors={} \
         rss_mb={} hwm_mb={} server_cpu={}",
        args.room_size,
        args.rate,
        lat.len() as f64 / window_secs,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        stats.errors.load(Ordering::Relaxed),
        mb(rss),
        mb(hwm),
        cpu.map_or("-".into(), |c| format!("{:.0}%", c * 100.0)),
    );
    drop(sinks);
    for r in receivers {
        r.abort();
    }
    Ok(())
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
