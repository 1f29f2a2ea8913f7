//! `--sfu N`: N members in one SFU room, each publishing a pre-encoded VP8 file (IVF, made
//! with ffmpeg by bench/sfu.sh) and receiving everyone else's video, as browsers would. The
//! media side is str0m (ICE, DTLS-SRTP, VP8 packetising), one `Rtc` and one UDP socket per
//! peer connection, each in its own task. Two backends drive the signalling: peerbox (WSS,
//! the server makes the offers) and Janus's VideoRoom (HTTP API, `janus.rs`).
//!
//! It reports, for the measured window: video frames received against the frames expected
//! (every member gets every other member's every frame: the delivery ratio, 1.0 = no loss),
//! the same against the frames of the videos not paused (`delivery_forwarded`: peerbox
//! pauses whole videos a member's bandwidth cannot carry and says so, `sfu-paused`; the
//! paused ones are sampled every 100 ms, `paused_avg` over all members),
//! RTP/RTCP datagrams received by the members (the SFU's forwarded packets), the server's CPU
//! per forwarded packet and RSS per subscription (`--pid`), and join-to-first-frame.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::{Args, Target, proc_cpu_secs, proc_status};

/// One encoded VP8 frame of the file.
pub struct Frame {
    pub data: Vec<u8>,
    /// A key frame (bit 0 of the VP8 frame tag clear).
    pub key: bool,
}

/// The frames of an IVF file and its frame rate.
pub struct Video {
    pub frames: Vec<Frame>,
    pub fps: f64,
}

impl Video {
    /// Reads an IVF file (32-byte header, then a 12-byte header before each frame).
    pub fn load(path: &Path) -> anyhow::Result<Video> {
        let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if b.len() < 32 || &b[0..4] != b"DKIF" || &b[8..12] != b"VP80" {
            bail!("{} is not a VP8 IVF file", path.display());
        }
        let le32 = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let (rate, scale) = (le32(16), le32(20));
        let fps = if scale > 0 {
            rate as f64 / scale as f64
        } else {
            30.0
        };
        let mut frames = Vec::new();
        let mut at = usize::from(u16::from_le_bytes([b[6], b[7]]));
        while at + 12 <= b.len() {
            let size = le32(at) as usize;
            at += 12;
            let Some(data) = b.get(at..at + size) else {
                break;
            };
            frames.push(Frame {
                key: data.first().is_some_and(|t| t & 1 == 0),
                data: data.to_vec(),
            });
            at += size;
        }
        if frames.is_empty() {
            bail!("{} has no frames", path.display());
        }
        Ok(Video {
            frames,
            fps: fps.clamp(1.0, 120.0),
        })
    }
}

/// Counts shared by every peer connection of the run.
#[derive(Default)]
pub struct Counters {
    /// Video frames received, while `counting`.
    pub frames: AtomicU64,
    /// RTP and RTCP datagrams received, while `counting`.
    pub datagrams: AtomicU64,
    pub counting: std::sync::atomic::AtomicBool,
    /// Videos the server paused for members' bandwidth now (peerbox's `sfu-paused`), over
    /// all members.
    pub paused: AtomicU64,
}

impl Counters {
    fn on(&self) -> bool {
        self.counting.load(Ordering::Relaxed)
    }
}

/// What a peer connection's task is told by its signalling.
pub enum PcIn {
    /// Apply this offer, answer it (`PcOut::Answer`); publish video on `publish` if given.
    Offer {
        sdp: String,
        publish: Option<String>,
    },
    /// Make an offer to publish one sendonly video (`PcOut::Offer`): with simulcast (rids
    /// h, m, l in that order, as browsers list them) when the peer connection has the
    /// lower layers.
    MakePublishOffer,
    /// The answer to our offer.
    Answer { sdp: String },
}

/// What a peer connection's task tells its signalling.
pub enum PcOut {
    Answer(String),
    Offer(String),
    /// The first video frame from the far end arrived.
    FirstFrame,
    Failed(String),
}

/// Spawns a peer connection on a UDP socket of `ip`: str0m driven like a browser's
/// RTCPeerConnection, publishing `video` once told where.
pub async fn spawn_pc(
    ip: IpAddr,
    video: Arc<Video>,
    lower: Arc<Vec<Video>>,
    counters: Arc<Counters>,
) -> anyhow::Result<(mpsc::Sender<PcIn>, mpsc::Receiver<PcOut>)> {
    let socket = UdpSocket::bind((ip, 0)).await?;
    let local = socket.local_addr()?;
    let now = Instant::now();
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(now);
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let (in_tx, in_rx) = mpsc::channel(8);
    let (out_tx, out_rx) = mpsc::channel(8);
    let pc = Pc {
        rtc,
        socket,
        local,
        video,
        lower,
        next_lower: [0; 2],
        counters,
        publish: None,
        pending: None,
        connected: false,
        disconnected: None,
        next_frame: now,
        sent: 0,
        next: 0,
        last_key_jump: [None; 3],
        first_frame: false,
        seal: crate::e2ee::Sealer::for_run()?,
        out: out_tx,
    };
    tokio::spawn(pc.run(in_rx));
    Ok((in_tx, out_rx))
}

/// How long ICE may stay Disconnected before the member gives up (Chrome's Failed).
const ICE_FAILED: Duration = Duration::from_secs(30);

struct Pc {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    video: Arc<Video>,
    /// Simulcast: the `m` and `l` layers (then `video` is `h`), and where each is in its file.
    lower: Arc<Vec<Video>>,
    next_lower: [usize; 2],
    counters: Arc<Counters>,
    publish: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    connected: bool,
    /// Since when ICE is Disconnected: a browser waits (checks may come back, as on a loaded
    /// machine they do) and gives up only once it is Failed, [`ICE_FAILED`] later.
    disconnected: Option<Instant>,
    next_frame: Instant,
    /// Frames written, and the index in the file of the next one.
    sent: usize,
    next: usize,
    /// When a keyframe request last made each layer (h or the only one, m, l) jump to its
    /// file's next key frame.
    last_key_jump: [Option<Instant>; 3],
    /// A key frame from the far end arrived (what a browser could first show).
    first_frame: bool,
    /// `--room-key`: frames go out end-to-end encrypted, as the web app's (`e2ee.rs`).
    seal: Option<crate::e2ee::Sealer>,
    out: mpsc::Sender<PcOut>,
}

impl Pc {
    async fn run(mut self, mut inbox: mpsc::Receiver<PcIn>) {
        if let Err(e) = self.drive(&mut inbox).await {
            let _ = self.out.send(PcOut::Failed(format!("{e:#}"))).await;
        }
    }

    async fn drive(&mut self, inbox: &mut mpsc::Receiver<PcIn>) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 2048];
        let frame_gap = Duration::from_secs_f64(1.0 / self.video.fps);
        loop {
            let timeout = self.poll().await?;
            let now = Instant::now();
            let publishing = self.connected && self.publish.is_some();
            if publishing && now >= self.next_frame {
                self.write_frame(now);
                // Keep the cadence without bursting after a stall.
                self.next_frame = (self.next_frame + frame_gap).max(now);
                continue;
            }
            let mut wake = timeout;
            if publishing {
                wake = wake.min(self.next_frame);
            }
            tokio::select! {
                m = inbox.recv() => match m {
                    Some(m) => self.on_signal(m).await?,
                    None => return Ok(()),
                },
                r = self.socket.recv_from(&mut buf) => {
                    let (n, source) = r?;
                    if self.counters.on() && (128..192).contains(&buf[0]) {
                        self.counters.datagrams.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(r) = Receive::new(Protocol::Udp, source, self.local, &buf[..n]) {
                        let _ = self.rtc.handle_input(Input::Receive(Instant::now(), r));
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now()))?;
                }
            }
        }
    }

    /// Sends what str0m has to send and handles its events; returns when it next wants time.
    async fn poll(&mut self) -> anyhow::Result<Instant> {
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Output::Timeout(t) => {
                    if self.disconnected.is_some_and(|d| d.elapsed() >= ICE_FAILED) {
                        bail!("ICE disconnected for {} s", ICE_FAILED.as_secs());
                    }
                    return Ok(t);
                }
                Output::Event(e) => match e {
                    Event::Connected => self.connected = true,
                    Event::KeyframeRequest(r) => self.jump_to_key_frame(r.rid.as_deref()),
                    Event::MediaData(d) => {
                        let video = self
                            .rtc
                            .media(d.mid)
                            .is_some_and(|m| m.kind() == MediaKind::Video);
                        if video {
                            let key = d.data.first().is_some_and(|t| t & 1 == 0);
                            if key && !self.first_frame {
                                self.first_frame = true;
                                let _ = self.out.send(PcOut::FirstFrame).await;
                            }
                            if self.counters.on() {
                                self.counters.frames.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Event::IceConnectionStateChange(state) => {
                        let down = state == str0m::IceConnectionState::Disconnected;
                        self.disconnected =
                            down.then(|| self.disconnected.unwrap_or_else(Instant::now));
                    }
                    _ => {}
                },
            }
        }
    }

    async fn on_signal(&mut self, m: PcIn) -> anyhow::Result<()> {
        match m {
            PcIn::Offer { sdp, publish } => {
                let offer = SdpOffer::from_sdp_string(&sdp).context("offer does not parse")?;
                let answer = self.rtc.sdp_api().accept_offer(offer)?;
                if let Some(mid) = publish {
                    self.publish = Some(mid.as_str().into());
                }
                let _ = self.out.send(PcOut::Answer(answer.to_sdp_string())).await;
            }
            PcIn::MakePublishOffer => {
                let simulcast = (self.lower.len() == 2).then(|| {
                    let mut s = Simulcast::new();
                    for rid in ["h", "m", "l"] {
                        s.add_send_layer(SimulcastLayer::new(rid));
                    }
                    s
                });
                let mut api = self.rtc.sdp_api();
                let mid =
                    api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
                let (offer, pending) = api.apply().context("nothing to offer")?;
                self.publish = Some(mid);
                self.pending = Some(pending);
                let _ = self.out.send(PcOut::Offer(offer.to_sdp_string())).await;
            }
            PcIn::Answer { sdp } => {
                let answer = SdpAnswer::from_sdp_string(&sdp).context("answer does not parse")?;
                let pending = self.pending.take().context("an answer with no offer")?;
                self.rtc.sdp_api().accept_answer(pending, answer)?;
            }
        }
        Ok(())
    }

    fn write_frame(&mut self, now: Instant) {
        let Some(mid) = self.publish else { return };
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Vp8)
            .map(|p| p.pt())
        else {
            return;
        };
        let video = &self.video;
        let frame = &video.frames[self.next % video.frames.len()];
        let ticks = (self.sent as f64 * 90_000.0 / video.fps) as u64;
        let time = MediaTime::from_90khz(ticks);
        if self.lower.len() == 2 {
            for (i, rid) in ["m", "l"].into_iter().enumerate() {
                let v = &self.lower[i];
                let f = &v.frames[self.next_lower[i] % v.frames.len()];
                let Some(w) = self.rtc.writer(mid) else {
                    return;
                };
                let data = seal(&mut self.seal, &f.data);
                if w.rid(rid.into()).write(pt, now, time, data).is_ok() {
                    self.next_lower[i] = (self.next_lower[i] + 1) % v.frames.len();
                }
            }
            let data = seal(&mut self.seal, &frame.data);
            let Some(w) = self.rtc.writer(mid) else {
                return;
            };
            if w.rid("h".into()).write(pt, now, time, data).is_ok() {
                self.sent += 1;
                self.next = (self.next + 1) % video.frames.len();
            }
            return;
        }
        let data = seal(&mut self.seal, &frame.data);
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        if writer.write(pt, now, time, data).is_ok() {
            self.sent += 1;
            self.next = (self.next + 1) % video.frames.len();
        }
    }

    /// Answers a keyframe request as an encoder would, from a file: the next frame written
    /// is the file's next key frame (at most one jump per 300 ms per layer, as libwebrtc's
    /// encoder feedback ignores requests closer together).
    /// A simulcast request names its layer (`rid`), each with its own throttle.
    fn jump_to_key_frame(&mut self, rid: Option<&str>) {
        let now = Instant::now();
        let layer = match rid {
            Some("m") => 1,
            Some("l") => 2,
            _ => 0,
        };
        if self.last_key_jump[layer].is_some_and(|t| now < t + Duration::from_millis(300)) {
            return;
        }
        self.last_key_jump[layer] = Some(now);
        let (frames, next) = match layer {
            0 => (&self.video.frames, &mut self.next),
            l => match self.lower.get(l - 1) {
                Some(v) => (&v.frames, &mut self.next_lower[l - 1]),
                None => return,
            },
        };
        let ahead = (0..frames.len()).map(|i| (*next + i) % frames.len());
        if let Some(k) = ahead.into_iter().find(|&i| frames[i].key) {
            *next = k;
        }
    }
}

/// The frame as it goes out: sealed with the room key when the run has one.
fn seal(sealer: &mut Option<crate::e2ee::Sealer>, frame: &[u8]) -> Vec<u8> {
    match sealer {
        // Sealing fails only without randomness for a new IV prefix: send nothing then.
        Some(s) => s.seal(frame).unwrap_or_default(),
        None => frame.to_vec(),
    }
}

/// Which SFU the members talk to.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Peerbox,
    Janus,
}

/// Runs `n` members and prints one RESULT line.
pub async fn run(args: &Args, n: usize) -> anyhow::Result<()> {
    let path = args
        .media
        .as_ref()
        .context("--sfu needs --media FILE.ivf")?;
    let video = Arc::new(Video::load(path)?);
    let lower = match &args.simulcast {
        Some(files) => {
            let v: Vec<Video> = files
                .split(',')
                .map(|f| Video::load(Path::new(f)))
                .collect::<anyhow::Result<_>>()?;
            if v.len() != 2 {
                bail!("--simulcast takes two files (m,l)");
            }
            v
        }
        None => Vec::new(),
    };
    let lower = Arc::new(lower);
    let counters = Arc::new(Counters::default());
    let ip: IpAddr = args.media_ip.parse().context("--media-ip")?;
    let rss_before = args.pid.and_then(|p| proc_status(p, "VmRSS"));
    let (joined_tx, mut joined_rx) = mpsc::channel::<Duration>(n.max(1));
    let started = Instant::now();
    let mut members = Vec::new();
    for i in 0..n {
        let member = Member {
            name: format!("load{i}"),
            ip,
            video: video.clone(),
            lower: lower.clone(),
            counters: counters.clone(),
            first_frame: joined_tx.clone(),
            started: Instant::now(),
        };
        members.push(match args.backend {
            Backend::Peerbox => {
                let target = Target::new(args).await?;
                let room = args.room.clone();
                // `--hidden-views`: nothing shown (0x0); simulcast: small tiles (the `l` layer).
                let view = match (args.hidden_views, lower.is_empty()) {
                    (true, _) => Some((0, 0)),
                    (false, false) => Some((160, 90)),
                    (false, true) => None,
                };
                tokio::spawn(async move { member.peerbox(&target, &room, view).await })
            }
            Backend::Janus => {
                let url = args.url.clone();
                let room = args.janus_room;
                tokio::spawn(async move { crate::janus::member(member, &url, room, n).await })
            }
        });
        // One at a time, as people arrive: each join renegotiates everyone.
        tokio::time::sleep(Duration::from_millis(args.join_gap_ms)).await;
    }
    drop(joined_tx);
    let mut firsts = Vec::new();
    let wait_all = tokio::time::timeout(Duration::from_secs(60), async {
        while firsts.len() < n {
            match joined_rx.recv().await {
                Some(d) => firsts.push(d),
                None => break,
            }
        }
    });
    let _ = wait_all.await;
    let all_joined = started.elapsed();
    if let Some(i) = members.iter().position(|m| m.is_finished()) {
        let why = match members.swap_remove(i).await {
            Ok(Err(e)) => format!("{e:#}"),
            Ok(Ok(())) => "it returned".into(),
            Err(e) => e.to_string(),
        };
        bail!("a member ended early: {why}");
    }
    // Let the last renegotiations settle before counting.
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let cpu0 = args.pid.and_then(proc_cpu_secs);
    let t0 = Instant::now();
    counters.counting.store(true, Ordering::Relaxed);
    // The paused videos, sampled every 100 ms: their frames are not expected.
    let (mut paused_sum, mut samples) = (0u64, 0u64);
    let end = t0 + Duration::from_secs_f64(args.duration);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100).min(end - Instant::now())).await;
        paused_sum += counters.paused.load(Ordering::Relaxed);
        samples += 1;
    }
    counters.counting.store(false, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let paused_avg = paused_sum as f64 / samples.max(1) as f64;
    let cpu = args
        .pid
        .and_then(proc_cpu_secs)
        .zip(cpu0)
        .map(|(a, b)| a - b);
    let rss = args.pid.and_then(|p| proc_status(p, "VmRSS"));
    let failed = members.iter().filter(|m| m.is_finished()).count();
    for m in members {
        m.abort();
    }
    let frames = counters.frames.load(Ordering::Relaxed) as f64;
    let datagrams = counters.datagrams.load(Ordering::Relaxed) as f64;
    let subscriptions = (n * n.saturating_sub(1)) as f64;
    let expected = subscriptions * video.fps * secs;
    let expected_forwarded = (subscriptions - paused_avg).max(0.0) * video.fps * secs;
    firsts.sort();
    let median = |v: &[Duration]| v.get(v.len() / 2).map_or(f64::NAN, |d| d.as_secs_f64());
    let cpu_us_per_packet = cpu.map_or(f64::NAN, |c| c * 1e6 / datagrams.max(1.0));
    let rss_per_sub_kb = match (rss, rss_before) {
        (Some(a), Some(b)) => (a as f64 - b as f64) / subscriptions.max(1.0),
        _ => f64::NAN,
    };
    println!(
        "RESULT mode=sfu backend={} members={n} connected={} failed={failed} secs={secs:.1} \
         frames_per_s={:.0} delivery={:.4} delivery_forwarded={:.4} paused_avg={paused_avg:.1} \
         packets_per_s={:.0} server_cpu_s={} \
         cpu_us_per_packet={cpu_us_per_packet:.2} rss_mb={} rss_kb_per_subscription={rss_per_sub_kb:.0} \
         first_frame_median_s={:.3} first_frame_max_s={:.3} all_joined_s={:.1}",
        match args.backend {
            Backend::Peerbox => "peerbox",
            Backend::Janus => "janus",
        },
        firsts.len(),
        frames / secs,
        frames / expected.max(1.0),
        frames / expected_forwarded.max(1.0),
        datagrams / secs,
        cpu.map_or("-".into(), |c| format!("{c:.2}")),
        crate::mb(rss),
        median(&firsts),
        firsts.last().map_or(f64::NAN, |d| d.as_secs_f64()),
        all_joined.as_secs_f64(),
    );
    Ok(())
}

/// One person in the room: its name, where its media sockets bind, and where it reports its
/// first frame (the time from its start).
pub struct Member {
    pub name: String,
    pub ip: IpAddr,
    pub video: Arc<Video>,
    /// Simulcast: the `m` and `l` layers (empty: one layer).
    pub lower: Arc<Vec<Video>>,
    pub counters: Arc<Counters>,
    pub first_frame: mpsc::Sender<Duration>,
    pub started: Instant,
}

impl Member {
    /// Reports the first frame once.
    pub async fn first_frame(&mut self) {
        let _ = self.first_frame.send(self.started.elapsed()).await;
        // A closed sender: later frames report nothing.
        let (closed, _) = mpsc::channel(1);
        self.first_frame = closed;
    }

    /// peerbox: log in with `sfu: true`, join the SFU once the room is in SFU mode, answer
    /// every offer the server makes, publish on the video m-line it names; with `view`, tell
    /// the server every other member's video is shown at that size (`sfu-view`).
    async fn peerbox(
        mut self,
        target: &Target,
        room: &str,
        view: Option<(u32, u32)>,
    ) -> anyhow::Result<()> {
        let mut ws = target.connect_from(None).await?;
        let login = json!({"type": "login",
            "data": {"roomrequest": room, "username": self.name, "sfu": true}});
        ws.send(Message::text(login.to_string())).await?;
        let (pc, mut pc_out) = spawn_pc(
            self.ip,
            self.video.clone(),
            self.lower.clone(),
            self.counters.clone(),
        )
        .await?;
        // The views of every other member's video (sent after each answer).
        let mut views = None;
        // How many of its videos the server says it paused.
        let mut paused = 0u64;
        let mut joined = false;
        loop {
            tokio::select! {
                m = ws.next() => {
                    let text = match m {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(c))) => bail!("closed: {c:?}"),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(e.into()),
                        None => bail!("signalling ended"),
                    };
                    let v: Value = serde_json::from_str(&text)?;
                    let sfu_now = match v["type"].as_str() {
                        Some("joined") => v["mode"] == "sfu",
                        Some("mode") => v["data"]["mode"] == "sfu",
                        Some("error") => bail!("server error: {v}"),
                        Some("sfu-paused") => {
                            let now = v["data"]["paused"].as_array().map_or(0, Vec::len) as u64;
                            self.counters.paused.fetch_add(now, Ordering::Relaxed);
                            self.counters.paused.fetch_sub(paused, Ordering::Relaxed);
                            paused = now;
                            false
                        }
                        Some("sfu-offer") => {
                            let publish = v["data"]["publish"]
                                .as_array()
                                .and_then(|p| p.iter().find(|p| {
                                    p["kind"] == "video" && p["source"] != "screen"
                                }))
                                .and_then(|p| p["mid"].as_str())
                                .map(str::to_owned);
                            let sdp = v["data"]["sdp"].as_str().context("offer sdp")?.to_owned();
                            pc.send(PcIn::Offer { sdp, publish }).await?;
                            if let Some((width, height)) = view {
                                let tiles: Vec<Value> = v["data"]["tracks"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter(|t| t["kind"] == "video")
                                    .map(|t| json!({"mid": t["mid"], "width": width, "height": height}))
                                    .collect();
                                views = Some(json!({"type": "sfu-view", "data": {"views": tiles}}));
                            }
                            false
                        }
                        _ => false,
                    };
                    if sfu_now && !joined {
                        joined = true;
                        ws.send(Message::text(json!({"type": "sfu-join"}).to_string())).await?;
                    }
                }
                o = pc_out.recv() => match o {
                    Some(PcOut::Answer(sdp)) => {
                        let m = json!({"type": "sfu-answer", "data": {"sdp": sdp}});
                        ws.send(Message::text(m.to_string())).await?;
                        if let Some(v) = views.take() {
                            ws.send(Message::text(v.to_string())).await?;
                        }
                    }
                    Some(PcOut::FirstFrame) => self.first_frame().await,
                    Some(PcOut::Offer(_)) => bail!("peerbox makes the offers"),
                    Some(PcOut::Failed(e)) => bail!("media: {e}"),
                    None => bail!("media task ended"),
                },
            }
        }
    }
}
