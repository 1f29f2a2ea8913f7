//! The str0m test client the SFU tests drive like a browser's RTCPeerConnection (tests/sfu.rs,
//! tests/cluster.rs): it logs in over the real WSS signalling, answers the server's `sfu-offer`s,
//! publishes synthetic VP8 (three simulcast layers with rids, keyframes marked in the VP8
//! payload header as a browser's are), a screen and audio levels if told to, and keeps what it
//! receives. Its media socket can sit behind a bottleneck (`link_bps`) or be cut off (`blocked`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{MediaTime, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;

use super::signal::id;
use super::{TestServer, Ws, send_json};

/// A str0m peer driven like a browser's RTCPeerConnection, with its signalling socket.
pub struct Browser {
    pub ws: Ws,
    pub id: String,
    pub rtc: Rtc,
    pub socket: UdpSocket,
    pub local: SocketAddr,
    /// ICE-TCP instead of UDP: the connection to the HTTPS port, bytes of a partial frame,
    /// and the frames it received.
    pub tcp: Option<TcpStream>,
    pub tcp_in: Vec<u8>,
    pub tcp_frames: usize,
    /// The m-lines the server offered for publishing, by source.
    pub publish: HashMap<String, Mid>,
    /// mid -> (member, kind, source) from the server's track map.
    pub tracks: HashMap<String, (String, String, String)>,
    /// Media frames received: (mid, payload).
    pub received: Vec<(Mid, Vec<u8>)>,
    pub keyframe_requests: usize,
    /// The rids keyframe requests named, in order.
    pub keyframe_rids: Vec<Option<String>>,
    /// Layers (0 l, 1 m, 2 h) to send a keyframe on next.
    pub force_key: [bool; 3],
    /// Publishing the screen too (one layer), and audio at this level (dBov).
    pub sharing: bool,
    pub level: Option<i8>,
    /// A bottleneck in front of its media socket: RTP and RTCP in at most this many bits/s,
    /// queued up to 300 ms, dropped beyond (as a router's queue would).
    pub link_bps: Option<u64>,
    pub link: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    pub link_free: Instant,
    pub connected: bool,
    /// Tells the server every camera in an offer is shown at this size before answering it
    /// (as the app does once the offer's tracks have tiles), not after.
    pub view_on_offer: Option<(u32, u32)>,
    pub offers: usize,
    /// The `ip:port` of every UDP candidate in the server's offers.
    pub offered: Vec<SocketAddr>,
    /// Cut off: every datagram to and from its media socket is dropped (a network outage,
    /// or a machine too starved to answer); its signalling goes on.
    pub blocked: bool,
    /// Loses every n-th RTP packet that reaches its media socket (RTCP passes), as a lossy
    /// link would; `rtp_in` counts them, `lost` those lost.
    pub lose_every: Option<usize>,
    pub rtp_in: usize,
    pub lost: usize,
    /// RTP packets received per m-line (str0m's ingress stats, every 500 ms).
    pub ingress: HashMap<Mid, u64>,
    /// Every other signalling message, in order.
    pub messages: Vec<Value>,
    /// Publishing: the frames written so far.
    pub publishing: bool,
    pub sent: Vec<Vec<u8>>,
    pub next_frame: Instant,
    pub timeout: Instant,
}

pub async fn login(server: &TestServer, room: &str, name: &str, sfu: bool) -> Browser {
    login_from(server, room, name, sfu, "127.0.0.1".parse().expect("ip")).await
}

/// [`login`] with the signalling and the media socket on the client address `ip`.
pub async fn login_from(
    server: &TestServer,
    room: &str,
    name: &str,
    sfu: bool,
    ip: std::net::IpAddr,
) -> Browser {
    let mut ws = super::signal::ws_from(server, ip).await;
    send_json(
        &mut ws,
        json!({"type": "login", "data": {"roomrequest": room, "username": name, "sfu": sfu}}),
    )
    .await;
    let joined = recv(&mut ws).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let socket = UdpSocket::bind((ip, 0)).await.expect("bind");
    let local = socket.local_addr().expect("addr");
    let now = Instant::now();
    Browser {
        ws,
        id: id(&joined),
        rtc: new_rtc(local, "udp"),
        socket,
        local,
        tcp: None,
        tcp_in: Vec::new(),
        tcp_frames: 0,
        publish: HashMap::new(),
        tracks: HashMap::new(),
        received: Vec::new(),
        keyframe_requests: 0,
        keyframe_rids: Vec::new(),
        force_key: [false; 3],
        sharing: false,
        level: None,
        link_bps: None,
        link: VecDeque::new(),
        link_free: now,
        connected: false,
        view_on_offer: None,
        offers: 0,
        offered: Vec::new(),
        blocked: false,
        lose_every: None,
        rtp_in: 0,
        lost: 0,
        ingress: HashMap::new(),
        messages: vec![joined],
        publishing: false,
        sent: Vec::new(),
        next_frame: now,
        timeout: now,
    }
}

/// A peer connection (full ICE, as a browser's) with one host candidate at `local`.
fn new_rtc(local: SocketAddr, proto: &str) -> Rtc {
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .set_stats_interval(Some(Duration::from_millis(500)))
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, proto).expect("candidate"));
    rtc
}

/// [`login`] for a client that reaches the SFU only over ICE-TCP on the HTTPS port: its one
/// candidate is an active TCP one on a connection it opened there (RFC 6544), framed per
/// RFC 4571 by the test itself.
pub async fn login_tcp(server: &TestServer, room: &str, name: &str) -> Browser {
    let mut b = login(server, room, name, true).await;
    let tcp = TcpStream::connect(server.https)
        .await
        .expect("connect https");
    let local = tcp.local_addr().expect("addr");
    b.rtc = new_rtc(local, "tcp");
    b.local = local;
    b.tcp = Some(tcp);
    b
}

/// Reads from the ICE-TCP connection, if there is one (else never).
async fn read_tcp(tcp: &mut Option<TcpStream>, buf: &mut [u8]) -> std::io::Result<usize> {
    match tcp {
        Some(t) => t.read(buf).await,
        None => std::future::pending().await,
    }
}

pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s");
        match next {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("json"),
            Some(Ok(_)) => continue,
            other => panic!("websocket ended: {other:?}"),
        }
    }
}

/// The simulcast layers a publisher sends: rid, size, bytes per frame (at 30 frames/s:
/// about 120 kbit/s, 360 kbit/s and 960 kbit/s), smallest first.
pub const LAYERS: [(&str, (u16, u16), usize); 3] = [
    ("l", (320, 180), 500),
    ("m", (640, 360), 1500),
    ("h", (1280, 720), 4000),
];
/// The layer of the screen share (no simulcast) in the frames' layer byte.
pub const SCREEN: u8 = 9;

/// A synthetic VP8 frame of `layer` (a key frame if `key`): the VP8 payload header's first
/// byte says which (bit 0 clear: key frame), a key frame carries its size as in RFC 6386;
/// byte 10 is the layer, then the frame number.
pub fn vp8_frame(n: usize, layer: u8, key: bool) -> Vec<u8> {
    let (_, (w, h), len) = LAYERS.get(usize::from(layer)).copied().unwrap_or(LAYERS[1]);
    let mut f = vec![if key { 0x50 } else { 0x51 }, 0x01, 0x00, 0x9d, 0x01, 0x2a];
    f.extend_from_slice(&w.to_le_bytes());
    f.extend_from_slice(&h.to_le_bytes());
    f.push(layer);
    while f.len() < len {
        f.extend_from_slice(&(n as u32).to_be_bytes());
    }
    f
}

pub fn is_key(frame: &[u8]) -> bool {
    frame[0] & 1 == 0
}

fn is_rtp_or_rtcp(d: &[u8]) -> bool {
    (128..=191).contains(&d.first().copied().unwrap_or(0))
}

/// RTP, not RTCP (RFC 5761 §4: RTCP's packet types are 192-223 in the second byte).
fn is_rtp(d: &[u8]) -> bool {
    is_rtp_or_rtcp(d) && !(192..=223).contains(&d.get(1).copied().unwrap_or(0))
}

impl Browser {
    pub async fn send(&mut self, v: Value) {
        send_json(&mut self.ws, v).await;
    }

    /// Drives signalling and media for `d`.
    pub async fn pump(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        let mut buf = vec![0u8; 2048];
        let mut tcp_buf = vec![0u8; 4096];
        loop {
            self.drain().await;
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            if self.publishing && self.connected && now >= self.next_frame {
                self.write_frame(now);
                self.next_frame = now + Duration::from_millis(33);
                continue;
            }
            if let Some(&(at, _, _)) = self.link.front()
                && at <= now
            {
                let (_, source, d) = self.link.pop_front().expect("front");
                if let Ok(r) = Receive::new(Protocol::Udp, source, self.local, &d) {
                    let _ = self.rtc.handle_input(Input::Receive(now, r));
                }
                continue;
            }
            let mut wake = self.timeout.min(deadline);
            if self.publishing && self.connected {
                wake = wake.min(self.next_frame);
            }
            if let Some(&(at, _, _)) = self.link.front() {
                wake = wake.min(at);
            }
            tokio::select! {
                m = self.ws.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(&t).expect("json");
                        self.on_signal(v).await;
                    }
                    Some(Ok(_)) => {}
                    other => panic!("websocket ended: {other:?}"),
                },
                r = self.socket.recv_from(&mut buf) => {
                    let (n, source) = r.expect("udp recv");
                    let now = Instant::now();
                    if self.blocked {
                        continue;
                    }
                    if let Some(every) = self.lose_every.filter(|_| is_rtp(&buf[..n])) {
                        self.rtp_in += 1;
                        if self.rtp_in % every == 0 {
                            self.lost += 1;
                            continue;
                        }
                    }
                    if let Some(bps) = self.link_bps.filter(|_| is_rtp_or_rtcp(&buf[..n])) {
                        let start = self.link_free.max(now);
                        let at = start + Duration::from_micros(n as u64 * 8_000_000 / bps);
                        if at.saturating_duration_since(now) <= Duration::from_millis(300) {
                            self.link_free = at;
                            self.link.push_back((at, source, buf[..n].to_vec()));
                        }
                        continue;
                    }
                    if let Ok(r) = Receive::new(Protocol::Udp, source, self.local, &buf[..n]) {
                        let _ = self.rtc.handle_input(Input::Receive(now, r));
                    }
                }
                r = read_tcp(&mut self.tcp, &mut tcp_buf) => {
                    let n = r.expect("tcp read");
                    assert!(n > 0, "the server closed the ICE-TCP connection");
                    self.tcp_in.extend_from_slice(&tcp_buf[..n]);
                    self.on_tcp_bytes();
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
        }
    }

    async fn drain(&mut self) {
        loop {
            match self.rtc.poll_output().expect("rtc output") {
                Output::Transmit(t) if self.blocked => drop(t),
                Output::Transmit(t) if t.proto == Protocol::Tcp => {
                    let tcp = self.tcp.as_mut().expect("a tcp transmit without tcp");
                    let mut frame = (t.contents.len() as u16).to_be_bytes().to_vec();
                    frame.extend_from_slice(&t.contents);
                    tcp.write_all(&frame).await.expect("tcp write");
                }
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Output::Timeout(t) => {
                    self.timeout = t;
                    return;
                }
                Output::Event(e) => match e {
                    Event::Connected => self.connected = true,
                    Event::MediaData(d) => self.received.push((d.mid, d.data.to_vec())),
                    Event::MediaIngressStats(s) => {
                        *self.ingress.entry(s.mid).or_default() = s.packets;
                    }
                    Event::KeyframeRequest(r) => {
                        self.keyframe_requests += 1;
                        let rid = r.rid.map(|r| r.to_string());
                        let layer = LAYERS.iter().position(|l| Some(l.0) == rid.as_deref());
                        self.force_key[layer.unwrap_or(1)] = true;
                        self.keyframe_rids.push(rid);
                    }
                    _ => {}
                },
            }
        }
    }

    /// Feeds every complete RFC 4571 frame read so far to the `Rtc`.
    fn on_tcp_bytes(&mut self) {
        let Some(source) = self.tcp.as_ref().and_then(|t| t.peer_addr().ok()) else {
            return;
        };
        while self.tcp_in.len() >= 2 {
            let n = u16::from_be_bytes([self.tcp_in[0], self.tcp_in[1]]) as usize;
            if self.tcp_in.len() < 2 + n {
                return;
            }
            let frame: Vec<u8> = self.tcp_in.drain(..2 + n).skip(2).collect();
            self.tcp_frames += 1;
            if let Ok(r) = Receive::new(Protocol::Tcp, source, self.local, &frame) {
                let _ = self.rtc.handle_input(Input::Receive(Instant::now(), r));
            }
        }
    }

    async fn on_signal(&mut self, v: Value) {
        if v["type"] != "sfu-offer" {
            self.messages.push(v);
            return;
        }
        self.offers += 1;
        let sdp = v["data"]["sdp"].as_str().expect("sdp");
        for line in sdp.lines().filter(|l| l.starts_with("a=candidate:")) {
            let f: Vec<&str> = line.split(' ').collect();
            if f.get(2).is_some_and(|p| p.eq_ignore_ascii_case("udp")) {
                let addr = format!("{}:{}", f[4], f[5]);
                self.offered.push(addr.parse().expect("candidate address"));
            }
        }
        let offer = SdpOffer::from_sdp_string(sdp).expect("offer parses");
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("offer accepted");
        for p in v["data"]["publish"].as_array().expect("publish") {
            let mid: Mid = p["mid"].as_str().expect("mid").into();
            let source = p["source"].as_str().expect("source").to_owned();
            self.publish.insert(source, mid);
        }
        self.tracks.clear();
        for t in v["data"]["tracks"].as_array().expect("tracks") {
            let mid = t["mid"].as_str().expect("mid").to_owned();
            let from = t["from"].as_str().expect("from").to_owned();
            let kind = t["kind"].as_str().expect("kind").to_owned();
            let source = t["source"].as_str().expect("source").to_owned();
            self.tracks.insert(mid, (from, kind, source));
        }
        if let Some((width, height)) = self.view_on_offer {
            let views: Vec<Value> = self
                .tracks
                .iter()
                .filter(|(_, (_, _, source))| source == "camera")
                .map(|(mid, _)| json!({"mid": mid, "width": width, "height": height}))
                .collect();
            self.send(json!({"type": "sfu-view", "data": {"views": views}}))
                .await;
        }
        let sdp = answer.to_sdp_string();
        self.send(json!({"type": "sfu-answer", "data": {"sdp": sdp}}))
            .await;
    }

    /// One frame on each layer of the camera (a key frame every 300th, or when asked),
    /// of the screen if sharing, and an audio packet with its level if it has one.
    pub fn write_frame(&mut self, now: Instant) {
        let n = self.sent.len() / 3;
        let time = MediaTime::from_90khz(n as u64 * 3000);
        if let Some(mid) = self.publish.get("camera").copied() {
            for (layer, (rid, _, _)) in LAYERS.iter().enumerate() {
                let key = n % 300 == 0 || std::mem::take(&mut self.force_key[layer]);
                let frame = vp8_frame(n, layer as u8, key);
                let Some(writer) = self.rtc.writer(mid) else {
                    return;
                };
                let Some(pt) = vp8(&writer) else {
                    return;
                };
                let rid: Rid = (*rid).into();
                if writer.rid(rid).write(pt, now, time, frame.clone()).is_ok() {
                    self.sent.push(frame);
                }
            }
        }
        if self.sharing
            && let Some(mid) = self.publish.get("screen").copied()
            && let Some(writer) = self.rtc.writer(mid)
            && let Some(pt) = vp8(&writer)
        {
            let frame = vp8_frame(n, SCREEN, n % 30 == 0);
            let _ = writer.write(pt, now, time, frame);
        }
        if let Some(level) = self.level
            && let Some(mid) = self.publish.get("mic").copied()
            && let Some(writer) = self.rtc.writer(mid)
        {
            let opus = writer
                .payload_params()
                .find(|p| p.spec().codec == Codec::Opus)
                .map(|p| p.pt());
            let time = MediaTime::new(n as u64 * 1584, str0m::media::Frequency::FORTY_EIGHT_KHZ);
            if let Some(pt) = opus {
                let _ = writer
                    .audio_level(level, level > -50)
                    .write(pt, now, time, vec![0xfc; 40]);
            }
        }
    }

    /// Joins the SFU again with a new peer connection on the same socket (after its old one
    /// ended), as the web client does.
    pub async fn rejoin(&mut self) {
        self.rtc = new_rtc(self.local, "udp");
        self.connected = false;
        self.received.clear();
        self.offered.clear();
        self.publish.clear();
        self.tracks.clear();
        self.send(json!({"type": "sfu-join"})).await;
    }

    /// Video frames received from `from`'s camera: (layer byte, key frame).
    pub fn camera_from(&self, from: &str) -> Vec<(u8, bool)> {
        self.received
            .iter()
            .filter(|(mid, _)| {
                self.tracks
                    .get(&mid.to_string())
                    .is_some_and(|(f, _, s)| f == from && s == "camera")
            })
            .map(|(_, d)| (d[10], is_key(d)))
            .collect()
    }

    /// The mid of the m-line that carries `from`'s `source`.
    pub fn mid_of(&self, from: &str, source: &str) -> Option<String> {
        self.tracks
            .iter()
            .find(|(_, (f, _, s))| f == from && s == source)
            .map(|(m, _)| m.clone())
    }

    /// Tells the server `from`'s camera is shown at `w`x`h`.
    pub async fn view(&mut self, from: &str, w: u32, h: u32) {
        let mid = self.mid_of(from, "camera").expect("a camera line");
        let v =
            json!({"type": "sfu-view", "data": {"views": [{"mid": mid, "width": w, "height": h}]}});
        self.send(v).await;
    }

    /// RTP packets that arrived on the m-lines it only sends on, by source.
    pub fn inbound_on_publish(&self) -> Vec<(&str, u64)> {
        self.publish
            .iter()
            .filter_map(|(source, mid)| Some((source.as_str(), *self.ingress.get(mid)?)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Received frames on m-lines the track map says carry `from`'s video.
    pub fn video_from(&self, from: &str) -> Vec<&[u8]> {
        self.received
            .iter()
            .filter(|(mid, _)| {
                self.tracks
                    .get(&mid.to_string())
                    .is_some_and(|(f, k, _)| f == from && k == "video")
            })
            .map(|(_, d)| d.as_slice())
            .collect()
    }

    /// The last `mode` the server told it.
    pub fn mode(&self) -> Option<&str> {
        self.saw("mode")
            .last()
            .and_then(|m| m["data"]["mode"].as_str())
    }

    pub fn saw(&self, kind: &str) -> Vec<&Value> {
        self.messages.iter().filter(|m| m["type"] == kind).collect()
    }
}

pub fn vp8(writer: &str0m::media::Writer<'_>) -> Option<str0m::media::Pt> {
    writer
        .payload_params()
        .find(|p| p.spec().codec == Codec::Vp8)
        .map(|p| p.pt())
}

/// Pumps every browser at once for `d`.
pub async fn pump_all(all: &mut [&mut Browser], d: Duration) {
    let futs = all.iter_mut().map(|b| b.pump(d));
    futures_util::future::join_all(futs).await;
}

/// Pumps until `done` holds (checked every 100 ms), at most 10 s.
pub async fn pump_until(
    all: &mut [&mut Browser],
    what: &str,
    done: impl Fn(&[&mut Browser]) -> bool,
) {
    pump_within(all, 10, what, done).await;
}

/// [`pump_until`] with at most `secs` seconds.
pub async fn pump_within(
    all: &mut [&mut Browser],
    secs: u64,
    what: &str,
    done: impl Fn(&[&mut Browser]) -> bool,
) {
    for _ in 0..secs * 10 {
        if done(all) {
            return;
        }
        pump_all(all, Duration::from_millis(100)).await;
    }
    panic!("not within {secs} s: {what}");
}

/// Both join the SFU, `a` publishes; returns once `b` got `frames` of its video (a's id).
pub async fn publish_to(a: &mut Browser, b: &mut Browser, frames: usize) -> String {
    a.send(json!({"type": "sfu-join"})).await;
    a.publishing = true;
    b.send(json!({"type": "sfu-join"})).await;
    let a_id = a.id.clone();
    pump_until(&mut [a, b], "B receives A's video", |all| {
        all[1].video_from(&a_id).len() >= frames
    })
    .await;
    a_id
}
