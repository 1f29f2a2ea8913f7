//! Fuzzes the SFU's packet demux with persistent state: a handful of participants registered
//! under fixed ufrags, addresses learned and participants removed as the input says, every
//! datagram classified and routed. A datagram may only ever reach a registered participant,
//! junk (by its first byte) reaches nobody, and no participant holds more than `MAX_ADDRS`.
//!
//! Input byte 0 picks the operation and byte 1 the source port (a handful of addresses).
#![no_main]

use std::net::SocketAddr;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use peerbox::sfu::demux::{self, Class, Demux, MAX_ADDRS, Route};

const UFRAGS: [&str; 4] = ["aaaa", "bbbb", "cccc", "dddd"];

static DEMUX: Mutex<Option<Demux<u8>>> = Mutex::new(None);

fn source(b: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, b % 8], 5000 + u16::from(b % 3)))
}

fuzz_target!(|data: &[u8]| {
    let _ = demux::stun_server_ufrag(data);
    if data.len() < 2 {
        return;
    }
    let mut guard = DEMUX.lock().unwrap_or_else(|e| e.into_inner());
    let d = guard.get_or_insert_with(|| {
        let mut d = Demux::default();
        for (p, u) in UFRAGS.iter().enumerate() {
            assert!(d.insert(p as u8, u));
        }
        d
    });
    let (op, from, packet) = (data[0], source(data[1]), &data[2..]);
    let p = op % 4;
    match op >> 5 {
        0 => d.learn(p, from),
        1 => d.remove(p),
        2 => {
            let _ = d.insert(p, UFRAGS[usize::from(p)]);
        }
        _ => {}
    }
    match d.route(packet, from) {
        Route::To(p) => {
            assert!(usize::from(p) < UFRAGS.len());
            assert_ne!(demux::classify(packet), Class::Junk);
            assert!(!d.addrs_of(p).is_empty() || demux::stun_server_ufrag(packet).is_some());
        }
        Route::Drop(_) => {}
    }
    for p in 0..4 {
        assert!(d.addrs_of(p).len() <= MAX_ADDRS);
    }
});
