//! Fuzzes the STUN/TURN input paths: the pure parsers (STUN message, attributes and
//! addresses, ChannelData, TCP stream framing) and `Turn::handle` with persistent state,
//! both on raw bytes and on requests the harness signs with a valid user, realm and nonce
//! (so Allocate, Refresh, CreatePermission, ChannelBind and Send get past authentication).
//!
//! Input byte 0 picks the mode; byte 1 the client port (a handful of 5-tuples, so requests
//! land on allocations made earlier in the run).
#![no_main]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use peerbox::Config;
use peerbox::turn::channel_data;
use peerbox::turn::codec::{self, Msg, NONCE, REALM, USERNAME, Writer};
use peerbox::turn::{Action, ClientSink, Credentials, FiveTuple, Proto, Turn};

const USER: &str = "fuzz";
const PASS: &str = "fuzzpass";

struct Harness {
    rt: tokio::runtime::Runtime,
    turn: Arc<Turn>,
    key: Vec<u8>,
    realm: Vec<u8>,
    /// A nonce for each of the client ports `five` uses (nonces are bound to the address).
    nonces: Vec<Vec<u8>>,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let text = "[turn]\nlisten = [\"127.0.0.1:3478\"]\nrelay_ports = \"45000-45999\"\n\
                    users = [\"fuzz:fuzzpass\"]\nallow_loopback_peers = true\n\
                    user_quota = 8\ntotal_quota = 8\n";
        let config = Arc::new(Config::parse(text, Path::new("/")).expect("config"));
        let credentials = Credentials::new(&config);
        let key = credentials.key(USER, PASS);
        let turn = {
            let _g = rt.enter();
            Turn::new(config, credentials, &[])
        };
        // An unauthenticated Allocate from each address gives the realm and its nonce.
        let mut req = Vec::new();
        Writer::new(&mut req, codec::ALLOCATE, codec::REQUEST, [7; 12]);
        let mut out = Vec::new();
        let _g = rt.enter();
        let (mut realm, mut nonces) = (Vec::new(), Vec::new());
        for port in 0..4 {
            turn.handle(&req, five(port), &ClientSink::Discard, &mut out);
            let reply = Msg::parse(&out).expect("401 reply");
            realm = reply.get(REALM).expect("realm").to_vec();
            nonces.push(reply.get(NONCE).expect("nonce").to_vec());
        }
        drop(_g);
        Harness { rt, turn, key, realm, nonces }
    })
}

fn five(port: u8) -> FiveTuple {
    FiveTuple {
        client: SocketAddr::from(([127, 0, 0, 1], 40_000 + u16::from(port % 4))),
        server: SocketAddr::from(([127, 0, 0, 1], 3478)),
        proto: if port & 0x80 == 0 { Proto::Udp } else { Proto::Tcp },
    }
}

fn parsers(data: &[u8]) {
    if let Ok(m) = Msg::parse(data) {
        let _ = (m.method(), m.class(), m.unknown_required());
        for a in m.attrs().flatten() {
            let _ = codec::xor_addr(a.value, &m.tid);
        }
        let _ = m.check_integrity(b"key");
    }
    let _ = channel_data::parse(data);
    let mut rest = data;
    while let Some(n) = channel_data::stream_frame_len(rest) {
        if n == 0 || n > rest.len() {
            break;
        }
        rest = &rest[n..];
    }
}

/// A request built from fuzz bytes: method and class from the first two bytes, then
/// (type u16, length u8, value) attributes, then USERNAME, REALM, NONCE, MESSAGE-INTEGRITY.
fn signed(h: &Harness, port: u8, data: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let (head, mut rest) = data.split_at(data.len().min(2));
    let typ = u16::from_be_bytes([*head.first().unwrap_or(&0), *head.get(1).unwrap_or(&3)]);
    let mut tid = [0u8; 12];
    tid[0] = data.len() as u8;
    let mut w = Writer::new(
        &mut buf,
        codec::method_of(typ),
        codec::class_of(typ),
        tid,
    );
    while rest.len() >= 3 {
        let t = u16::from_be_bytes([rest[0], rest[1]]);
        let n = (rest[2] as usize).min(rest.len() - 3);
        w.attr(t, &rest[3..3 + n]);
        rest = &rest[3 + n..];
    }
    w.attr(USERNAME, USER.as_bytes())
        .attr(REALM, &h.realm)
        .attr(NONCE, &h.nonces[usize::from(port % 4)])
        .integrity(&h.key);
    buf
}

fuzz_target!(|data: &[u8]| {
    parsers(data);
    if data.len() < 2 {
        return;
    }
    let h = harness();
    let f = five(data[1]);
    let mut out = Vec::new();
    let _g = h.rt.enter();
    let pkt = if data[0] & 1 == 1 { signed(h, data[1], &data[2..]) } else { data[2..].to_vec() };
    h.rt.block_on(async {
        match h.turn.handle(&pkt, f, &ClientSink::Discard, &mut out) {
            Action::Reply => {
                // Replies must be well framed, and parse unless they answer an RFC 3489
                // request (no magic cookie, echoed back).
                assert!(out.len() >= 20, "short reply {out:?}");
                assert_eq!(usize::from(u16::from_be_bytes([out[2], out[3]])) + 20, out.len());
                if out[4..8] == 0x2112_A442u32.to_be_bytes() {
                    assert!(Msg::parse(&out).is_ok(), "unparseable reply {out:?}");
                }
            }
            Action::Relay { data, .. } => assert!(data.len() <= pkt.len()),
            Action::None => {}
        }
        tokio::task::yield_now().await;
    });
});
