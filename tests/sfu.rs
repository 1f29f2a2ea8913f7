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
use tokio::net::UdpSocket;
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
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
        }
    }

    async fn drain(&mut self) {
        loop {
            match self.rtc.poll_output().expect("rtc output") {
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
