//! The SFU end to end: str0m clients in the test act as browsers, over the real WSS
//! signalling and real ICE + DTLS-SRTP on loopback. A publishes VP8 frames (synthetic
//! payloads), B subscribes through the server and must receive the same bytes.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;

use common::signal::{error_type, id};
use common::{TestServer, Ws, send_json};

const SFU_ON: &str = "[sfu]\nenabled = true\n[rooms]\nsfu_from = 1";

/// A str0m peer driven like a browser's RTCPeerConnection, with its signalling socket.
struct Browser {
    ws: Ws,
    id: String,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    /// ICE-TCP instead of UDP: the connection to the HTTPS port, bytes of a partial frame,
    /// and the frames it received.
    tcp: Option<TcpStream>,
    tcp_in: Vec<u8>,
    tcp_frames: usize,
    /// The video m-line the server offered for publishing.
    publish_video: Option<Mid>,
    /// mid -> (member, kind) from the server's track map.
    tracks: HashMap<String, (String, String)>,
    /// Media frames received: (mid, payload).
    received: Vec<(Mid, Vec<u8>)>,
    keyframe_requests: usize,
    connected: bool,
    offers: usize,
    /// Every other signalling message, in order.
    messages: Vec<Value>,
    /// Publishing: the frames written so far.
    publishing: bool,
    sent: Vec<Vec<u8>>,
    next_frame: Instant,
    timeout: Instant,
}

async fn login(server: &TestServer, room: &str, name: &str, sfu: bool) -> Browser {
    login_from(server, room, name, sfu, "127.0.0.1".parse().expect("ip")).await
}

/// [`login`] with the signalling and the media socket on the client address `ip`.
async fn login_from(
    server: &TestServer,
    room: &str,
    name: &str,
    sfu: bool,
    ip: std::net::IpAddr,
) -> Browser {
    let mut ws = common::signal::ws_from(server, ip).await;
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
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(now);
    rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
    Browser {
        ws,
        id: id(&joined),
        rtc,
        socket,
        local,
        tcp: None,
        tcp_in: Vec::new(),
        tcp_frames: 0,
        publish_video: None,
        tracks: HashMap::new(),
        received: Vec::new(),
        keyframe_requests: 0,
        connected: false,
        offers: 0,
        messages: vec![joined],
        publishing: false,
        sent: Vec::new(),
        next_frame: now,
        timeout: now,
    }
}

/// [`login`] for a client that reaches the SFU only over ICE-TCP on the HTTPS port: its one
/// candidate is an active TCP one on a connection it opened there (RFC 6544), framed per
/// RFC 4571 by the test itself.
async fn login_tcp(server: &TestServer, room: &str, name: &str) -> Browser {
    let mut b = login(server, room, name, true).await;
    let tcp = TcpStream::connect(server.https)
        .await
        .expect("connect https");
    let local = tcp.local_addr().expect("addr");
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "tcp").expect("tcp candidate"));
    b.rtc = rtc;
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

async fn recv(ws: &mut Ws) -> Value {
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

/// A synthetic VP8 frame: a key frame every 30th, 2,500 bytes (two or three packets).
fn vp8_frame(n: usize) -> Vec<u8> {
    let key = n % 30 == 0;
    let mut f = vec![if key { 0x50 } else { 0x51 }, 0x01, 0x00, 0x9d, 0x01, 0x2a];
    f.extend_from_slice(&[0x40, 0x01, 0xf0, 0x00]);
    while f.len() < 2500 {
        f.extend_from_slice(&(n as u32).to_be_bytes());
    }
    f
}

impl Browser {
    async fn send(&mut self, v: Value) {
        send_json(&mut self.ws, v).await;
    }

    /// Drives signalling and media for `d`.
    async fn pump(&mut self, d: Duration) {
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
            let mut wake = self.timeout.min(deadline);
            if self.publishing && self.connected {
                wake = wake.min(self.next_frame);
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
                    if let Ok(r) = Receive::new(Protocol::Udp, source, self.local, &buf[..n]) {
                        let _ = self.rtc.handle_input(Input::Receive(Instant::now(), r));
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
                    Event::KeyframeRequest(_) => self.keyframe_requests += 1,
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
        let offer = SdpOffer::from_sdp_string(sdp).expect("offer parses");
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("offer accepted");
        for p in v["data"]["publish"].as_array().expect("publish") {
            if p["kind"] == "video" {
                let mid: Mid = p["mid"].as_str().expect("mid").into();
                self.publish_video = Some(mid);
            }
        }
        self.tracks.clear();
        for t in v["data"]["tracks"].as_array().expect("tracks") {
            let mid = t["mid"].as_str().expect("mid").to_owned();
            let from = t["from"].as_str().expect("from").to_owned();
            let kind = t["kind"].as_str().expect("kind").to_owned();
            self.tracks.insert(mid, (from, kind));
        }
        let sdp = answer.to_sdp_string();
        self.send(json!({"type": "sfu-answer", "data": {"sdp": sdp}}))
            .await;
    }

    fn write_frame(&mut self, now: Instant) {
        let Some(mid) = self.publish_video else {
            return;
        };
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
        let n = self.sent.len();
        let frame = vp8_frame(n);
        let time = MediaTime::from_90khz(n as u64 * 3000);
        if writer.write(pt, now, time, frame.clone()).is_ok() {
            self.sent.push(frame);
        }
    }

    /// Received frames on m-lines the track map says carry `from`'s video.
    fn video_from(&self, from: &str) -> Vec<&[u8]> {
        self.received
            .iter()
            .filter(|(mid, _)| {
                self.tracks
                    .get(&mid.to_string())
                    .is_some_and(|(f, k)| f == from && k == "video")
            })
            .map(|(_, d)| d.as_slice())
            .collect()
    }

    /// The last `mode` the server told it.
    fn mode(&self) -> Option<&str> {
        self.saw("mode")
            .last()
            .and_then(|m| m["data"]["mode"].as_str())
    }

    fn saw(&self, kind: &str) -> Vec<&Value> {
        self.messages.iter().filter(|m| m["type"] == kind).collect()
    }
}

/// Pumps every browser at once for `d`.
async fn pump_all(all: &mut [&mut Browser], d: Duration) {
    let futs = all.iter_mut().map(|b| b.pump(d));
    futures_util::future::join_all(futs).await;
}

/// Pumps until `done` holds (checked every 100 ms), at most 10 s.
async fn pump_until(all: &mut [&mut Browser], what: &str, done: impl Fn(&[&mut Browser]) -> bool) {
    for _ in 0..100 {
        if done(all) {
            return;
        }
        pump_all(all, Duration::from_millis(100)).await;
    }
    panic!("not within 10 s: {what}");
}

/// Both join the SFU, `a` publishes; returns once `b` got `frames` of its video (a's id).
async fn publish_to(a: &mut Browser, b: &mut Browser, frames: usize) -> String {
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

#[tokio::test]
async fn a_publishes_b_receives_the_same_bytes_then_leaves() {
    let server = common::spawn(SFU_ON).await;
    let mut a = login(&server, "big", "A", true).await;
    let mut b = login(&server, "big", "B", true).await;
    // Two members past sfu_from = 1: the room is in SFU mode, and both hear it.
    pump_until(&mut [&mut a, &mut b], "sfu mode", |all| {
        all.iter().all(|x| x.mode() == Some("sfu"))
    })
    .await;

    publish_to(&mut a, &mut b, 10).await;
    // Every frame B got is one A sent, byte for byte.
    for f in b.video_from(&a.id) {
        assert!(a.sent.iter().any(|s| s == f), "a frame A never sent");
    }
    assert!(
        a.keyframe_requests >= 1,
        "B's subscription asked A for a keyframe"
    );

    // B leaves the SFU: nothing more reaches it; A goes on.
    b.send(json!({"type": "sfu-leave"})).await;
    pump_all(&mut [&mut a, &mut b], Duration::from_millis(500)).await;
    let before = b.received.len();
    pump_all(&mut [&mut a, &mut b], Duration::from_millis(1000)).await;
    assert_eq!(b.received.len(), before, "media after sfu-leave");
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_third_joiner_asks_for_a_keyframe_and_junk_gets_no_answer() {
    let server = common::spawn(SFU_ON).await;
    let mut a = login(&server, "big", "A", true).await;
    let mut b = login(&server, "big", "B", true).await;
    let a_id = publish_to(&mut a, &mut b, 5).await;
    let plis = a.keyframe_requests;

    let mut c = login(&server, "big", "C", true).await;
    c.send(json!({"type": "sfu-join"})).await;
    pump_until(
        &mut [&mut a, &mut b, &mut c],
        "C receives A's video",
        |all| all[2].video_from(&a_id).len() >= 5,
    )
    .await;
    // Its keyframe request reaches A, once the throttle lets it (B's was just sent).
    pump_until(
        &mut [&mut a, &mut b, &mut c],
        "a keyframe request for C",
        |all| all[0].keyframe_requests > plis,
    )
    .await;

    // 2,000 junk datagrams (every first byte, random-looking rest) get no answer...
    let junk = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for i in 0..2000u32 {
        let mut d = vec![(i % 256) as u8; 1 + (i as usize * 7) % 300];
        d.extend_from_slice(&i.to_be_bytes());
        junk.send_to(&d, server.sfu).await.expect("send junk");
    }
    let mut buf = [0u8; 2048];
    let answer = tokio::time::timeout(Duration::from_millis(500), junk.recv_from(&mut buf)).await;
    assert!(answer.is_err(), "the SFU answered junk");
    // ...and the call goes on.
    let before = b.video_from(&a_id).len();
    pump_until(&mut [&mut a, &mut b, &mut c], "B still receives", |all| {
        all[1].video_from(&a_id).len() >= before + 5
    })
    .await;
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn refusals() {
    // No SFU on this server.
    let server = common::spawn("").await;
    let mut a = login(&server, "r", "A", true).await;
    a.send(json!({"type": "sfu-join"})).await;
    assert_eq!(error_type(&recv(&mut a.ws).await), "sfu-off");
    assert_eq!(a.messages[0]["mode"], "mesh");
    server.stop(Duration::from_secs(5)).await;

    // A room over the SFU's cap of 2.
    let server =
        common::spawn("[sfu]\nenabled = true\nmax_room_members = 2\n[rooms]\nsfu_from = 1").await;
    let mut a = login(&server, "r", "A", true).await;
    let mut b = login(&server, "r", "B", true).await;
    let mut c = login(&server, "r", "C", true).await;
    for x in [&mut a, &mut b] {
        x.send(json!({"type": "sfu-join"})).await;
    }
    pump_until(&mut [&mut a, &mut b], "offers", |all| {
        all.iter().all(|b| b.offers >= 1)
    })
    .await;
    c.send(json!({"type": "sfu-join"})).await;
    pump_until(&mut [&mut c], "an error", |all| {
        !all[0].saw("error").is_empty()
    })
    .await;
    let errors = c.saw("error");
    assert_eq!(error_type(errors[0]), "sfu-full");
    assert_eq!(c.offers, 0);
    server.stop(Duration::from_secs(5)).await;

    // A member without SFU support keeps the room a mesh.
    let server = common::spawn(SFU_ON).await;
    let mut a = login(&server, "r", "A", true).await;
    let mut b = login(&server, "r", "B", true).await;
    pump_until(&mut [&mut a, &mut b], "sfu mode", |all| {
        all[0].mode() == Some("sfu")
    })
    .await;
    let mut seed = login(&server, "r", "Seed", false).await;
    assert_eq!(seed.messages[0]["mode"], "mesh");
    pump_until(&mut [&mut a, &mut b, &mut seed], "mesh mode", |all| {
        all[0].mode() == Some("mesh")
    })
    .await;
    a.send(json!({"type": "sfu-join"})).await;
    pump_until(&mut [&mut a], "an error", |all| {
        !all[0].saw("error").is_empty()
    })
    .await;
    assert_eq!(error_type(a.saw("error")[0]), "not-sfu");
    assert_eq!(a.offers, 0);
    server.stop(Duration::from_secs(5)).await;
}

/// Set in the re-run inside the network namespace.
const INSIDE: &str = "PEERBOX_TEST_SFU_NETNS";
/// The namespace's addresses (TEST-NET-2): the server on .1, clients on .5 and .6.
const NET: &str = "198.51.100";

/// The same call with the server and each client on an address of its own (not loopback) in
/// a network namespace made for the test: HTTPS on 443, the SFU on the server's address with
/// `sfu.public_ip` set as the README tells an admin to, every other setting as shipped.
#[tokio::test]
async fn on_real_addresses() {
    if std::env::var_os(INSIDE).is_some() {
        return inside().await;
    }
    let exe = std::env::current_exe().expect("test binary");
    let run = tokio::process::Command::new("unshare")
        .args(["-n", "--"])
        .arg(&exe)
        .args([
            "--exact",
            "on_real_addresses",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the namespace run ends within 60 s")
        .expect("run unshare (util-linux; needs root)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inside the namespace: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip(cmd: &str) {
    let ok = std::process::Command::new("ip")
        .args(cmd.split_whitespace())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {cmd}");
}

async fn inside() {
    ip("link set lo up");
    for i in [1, 5, 6] {
        ip(&format!("addr add {NET}.{i}/32 dev lo"));
    }
    let config = format!("[sfu]\nenabled = true\npublic_ip = \"{NET}.1\"\n[rooms]\nsfu_from = 1");
    let server = common::spawn_at(&config, &format!("{NET}.1:443")).await;
    assert_eq!(server.sfu.ip().to_string(), format!("{NET}.1"));
    let mut a = login_from(
        &server,
        "ns",
        "A",
        true,
        format!("{NET}.5").parse().expect("ip"),
    )
    .await;
    let mut b = login_from(
        &server,
        "ns",
        "B",
        true,
        format!("{NET}.6").parse().expect("ip"),
    )
    .await;
    pump_until(&mut [&mut a, &mut b], "sfu mode", |all| {
        all.iter().all(|x| x.mode() == Some("sfu"))
    })
    .await;
    publish_to(&mut a, &mut b, 10).await;
    for f in b.video_from(&a.id) {
        assert!(a.sent.iter().any(|s| s == f), "a frame A never sent");
    }
    server.stop(Duration::from_secs(5)).await;
}

/// A framed STUN Binding request naming the server-side ufrag `ufrag` (no integrity).
fn framed_binding(ufrag: &str) -> Vec<u8> {
    let name = format!("{ufrag}:x");
    let padded = name.len().div_ceil(4) * 4;
    let mut stun = vec![0x00, 0x01];
    stun.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
    stun.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    stun.extend_from_slice(&[7; 12]);
    stun.extend_from_slice(&[0x00, 0x06]);
    stun.extend_from_slice(&(name.len() as u16).to_be_bytes());
    stun.extend_from_slice(name.as_bytes());
    stun.resize(20 + 4 + padded, 0);
    let mut framed = (stun.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&stun);
    framed
}

/// Whether the server closes `tcp` within `within` (EOF or reset).
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(within, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A subscriber whose only way out is TCP to the HTTPS port reaches the SFU over ICE-TCP (the
/// offer's passive TCP candidate) and receives A's media byte for byte; junk on another TCP
/// connection to the port gets that one closed and harms no call.
#[tokio::test]
async fn a_subscriber_over_ice_tcp_on_the_https_port() {
    let server = common::spawn(SFU_ON).await;
    let mut a = login(&server, "tcp", "A", true).await;
    let mut b = login_tcp(&server, "tcp", "B").await;
    pump_until(&mut [&mut a, &mut b], "sfu mode", |all| {
        all.iter().all(|x| x.mode() == Some("sfu"))
    })
    .await;
    let a_id = publish_to(&mut a, &mut b, 10).await;
    assert!(b.connected, "B connected");
    assert!(b.tcp_frames > 10, "B's media came over TCP");
    for f in b.video_from(&a_id) {
        assert!(a.sent.iter().any(|s| s == f), "a frame A never sent");
    }

    // Framed STUN naming no participant: closed.
    let mut junk = TcpStream::connect(server.https).await.expect("connect");
    junk.write_all(&framed_binding("nobody"))
        .await
        .expect("write");
    assert!(
        closed_within(&mut junk, Duration::from_secs(5)).await,
        "unknown ufrag"
    );
    // The same with DTLS-looking bytes behind it, in one write: closed.
    let mut junk = TcpStream::connect(server.https).await.expect("connect");
    let mut bytes = framed_binding("nobody");
    bytes.extend_from_slice(&[0x00, 0x04, 0x16, 0xfe, 0xfd, 0x00]);
    junk.write_all(&bytes).await.expect("write");
    assert!(
        closed_within(&mut junk, Duration::from_secs(5)).await,
        "junk after stun"
    );
    // Something else entirely (not TLS, HTTP, TURN or ICE-TCP): closed.
    let mut junk = TcpStream::connect(server.https).await.expect("connect");
    junk.write_all(&[0x03; 40]).await.expect("write");
    assert!(
        closed_within(&mut junk, Duration::from_secs(5)).await,
        "junk"
    );

    // The call goes on, and the HTTPS port still serves HTTP.
    let before = b.video_from(&a_id).len();
    pump_until(&mut [&mut a, &mut b], "B still receives over TCP", |all| {
        all[1].video_from(&a_id).len() >= before + 5
    })
    .await;
    let mut http = TcpStream::connect(server.https).await.expect("connect");
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    http.read_exact(&mut head).await.expect("an answer");
    assert!(head.starts_with(b"HTTP/1.1 "), "{head:?}");
    server.stop(Duration::from_secs(5)).await;
}

/// ICE-TCP connections are bounded: two per participant the SFU may hold (here 2 x 2); one
/// more is closed at once, and one that never proves itself is closed after 10 s.
#[tokio::test]
async fn ice_tcp_connections_are_bounded() {
    let server = common::spawn(
        "[sfu]\nenabled = true\nmax_room_members = 2\nmax_participants = 2\n[rooms]\nsfu_from = 1",
    )
    .await;
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut t = TcpStream::connect(server.https).await.expect("connect");
        // A framed STUN header whose frame never completes: it holds a slot.
        t.write_all(&framed_binding("x")[..10])
            .await
            .expect("write");
        held.push(t);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = TcpStream::connect(server.https).await.expect("connect");
    extra
        .write_all(&framed_binding("x")[..10])
        .await
        .expect("write");
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)).await,
        "no slot left"
    );
    for t in &mut held {
        assert!(!closed_within(t, Duration::from_millis(100)).await, "held");
    }
    for t in &mut held {
        assert!(
            closed_within(t, Duration::from_secs(15)).await,
            "unproven: closed"
        );
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(9), "closed after {waited:?}");
    server.stop(Duration::from_secs(5)).await;
}
