//! The one [`Collector`]: on each scrape it reads peerbox's own atomics and gauges (signalling,
//! TURN, the HTTPS ports, the certificate, ACME) and writes them as `peerbox_*` metrics. Nothing
//! is counted twice: the counters live with the parts that bump them.

use std::fmt::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use crate::signal::{self, Hub};
use crate::tls::CertStore;
use crate::turn::{self, Proto};

/// Everything a scrape reads.
pub struct Sources {
    pub hub: Arc<Hub>,
    pub turn: Arc<turn::Stats>,
    pub http: Arc<crate::http::Stats>,
    pub certs: CertStore,
    /// What the ACME client did (all zero while it is off).
    pub acme: Arc<crate::acme::Stats>,
    /// Unix seconds at start.
    pub started: i64,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sources")
    }
}

/// Writes one metric family with one sample per `(label, value)` pair.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = ((&'static str, &'static str), M)>,
) -> Result<(), Error> {
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else {
        return Ok(());
    };
    let mut metric = enc.encode_descriptor(name, help, unit, first.metric_type())?;
    for (pair, value) in samples {
        value.encode(metric.encode_family(&[pair])?)?;
    }
    Ok(())
}

/// Writes one metric without labels.
fn single<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: M,
) -> Result<(), Error> {
    value.encode(enc.encode_descriptor(name, help, unit, value.metric_type())?)
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), Error> {
    single(enc, name, help, None, ConstCounter::new(v))
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Result<(), Error> {
    single(enc, name, help, None, ConstGauge::new(v))
}

/// A counter per label value, from one of signalling's label lists.
fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &'static str,
    values: impl Iterator<Item = (&'static str, u64)>,
) -> Result<(), Error> {
    family(
        enc,
        name,
        help,
        None,
        values.map(|(l, v)| ((key, l), ConstCounter::new(v))),
    )
}

fn by_proto(stats: &turn::stats::ByProto) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    Proto::ALL
        .iter()
        .map(|p| (p.as_str(), stats[p.index()].load(Relaxed)))
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Relaxed)
}

impl Collector for Sources {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), Error> {
        let e = &mut enc;
        family(
            e,
            "peerbox_build_info",
            "peerbox's version (the value is always 1).",
            None,
            [(
                ("version", env!("CARGO_PKG_VERSION")),
                ConstGauge::new(1i64),
            )],
        )?;
        single(
            e,
            "peerbox_start_time",
            "When this process started, in Unix time.",
            Some(&Unit::Seconds),
            ConstGauge::new(self.started),
        )?;

        // Signalling.
        let g = self.hub.gauges();
        let s = &self.hub.stats;
        gauge(
            e,
            "peerbox_rooms",
            "Rooms with at least one member.",
            g.rooms as i64,
        )?;
        gauge(
            e,
            "peerbox_room_members",
            "Members in all rooms.",
            g.members as i64,
        )?;
        gauge(
            e,
            "peerbox_ws_connections",
            "Open signalling WebSocket connections.",
            g.connections as i64,
        )?;
        counter(
            e,
            "peerbox_ws_connections_opened",
            "Signalling WebSocket connections admitted.",
            get(&s.connections_total),
        )?;
        counters(
            e,
            "peerbox_ws_closed",
            "Signalling WebSocket connections ended, by reason (refused: over the connection limits).",
            "reason",
            signal::stats::each(&s.closed, &signal::stats::CLOSE_REASONS),
        )?;
        counters(
            e,
            "peerbox_signal_messages",
            "Signalling messages accepted, by type.",
            "type",
            signal::stats::each(&s.messages, &signal::stats::MESSAGE_TYPES),
        )?;
        counters(
            e,
            "peerbox_signal_errors",
            "Signalling messages and connections refused, by errorType (docs/protocol.md).",
            "type",
            signal::stats::each(&s.errors, &signal::stats::ERROR_TYPES),
        )?;
        counters(
            e,
            "peerbox_signal_rate_limited",
            "Messages dropped and credential requests refused by the per-connection and per-address allowances.",
            "limit",
            signal::stats::each(&s.rate_limited, &signal::stats::LIMITS),
        )?;

        // SFU (all zero while it is off).
        let off = crate::sfu::Stats::default();
        let f = self.hub.sfu_stats().unwrap_or(&off);
        gauge(
            e,
            "peerbox_sfu_participants",
            "Members connected to the SFU now.",
            get(&f.participants) as i64,
        )?;
        counter(
            e,
            "peerbox_sfu_joins",
            "SFU connections made (sfu-join accepted).",
            get(&f.joined),
        )?;
        counter(
            e,
            "peerbox_sfu_forwarded_frames",
            "Media frames the SFU wrote to subscribers.",
            get(&f.forwarded),
        )?;
        counter(
            e,
            "peerbox_sfu_keyframe_requests",
            "Keyframe requests (PLI) the SFU sent to publishers, after the throttle.",
            get(&f.keyframe_requests),
        )?;
        counters(
            e,
            "peerbox_sfu_dropped",
            "Datagrams the SFU dropped: junk (first byte), unknown_ufrag (STUN), unknown_addr (DTLS/SRTP from an unproven address), send (socket buffer full).",
            "reason",
            [
                ("junk", get(&f.dropped_junk)),
                ("unknown_ufrag", get(&f.dropped_unknown_ufrag)),
                ("unknown_addr", get(&f.dropped_unknown_addr)),
                ("send", get(&f.send_dropped)),
            ]
            .into_iter(),
        )?;
        counters(
            e,
            "peerbox_sfu_tcp_closed",
            "ICE-TCP connections the SFU closed at once: refused (no slot left), junk (no known participant's STUN first).",
            "reason",
            [("refused", get(&f.tcp_refused)), ("junk", get(&f.tcp_junk))].into_iter(),
        )?;
        counter(
            e,
            "peerbox_sfu_busy",
            "sfu-* requests refused because the SFU's command queue was full.",
            get(&f.busy),
        )?;

        // TURN.
        let t = &self.turn;
        family(
            e,
            "peerbox_turn_allocations",
            "TURN allocations now, by client transport.",
            None,
            by_proto(&t.allocations_active)
                .map(|(p, v)| (("transport", p), ConstGauge::new(v as i64))),
        )?;
        family(
            e,
            "peerbox_turn_allocations_created",
            "TURN allocations made, by client transport.",
            None,
            by_proto(&t.allocations_total).map(|(p, v)| (("transport", p), ConstCounter::new(v))),
        )?;
        family(
            e,
            "peerbox_stun_binding_requests",
            "STUN Binding requests answered, by transport.",
            None,
            by_proto(&t.bindings).map(|(p, v)| (("transport", p), ConstCounter::new(v))),
        )?;
        let directions = [
            (
                "client_to_peer",
                &t.client_to_peer_packets,
                &t.client_to_peer_bytes,
            ),
            (
                "peer_to_client",
                &t.peer_to_client_packets,
                &t.peer_to_client_bytes,
            ),
        ];
        family(
            e,
            "peerbox_turn_relayed_packets",
            "Packets relayed, by direction (between two allocations of this server: client_to_peer once).",
            None,
            directions
                .iter()
                .map(|(d, p, _)| (("direction", *d), ConstCounter::new(get(p)))),
        )?;
        family(
            e,
            "peerbox_turn_relayed",
            "Payload bytes relayed, by direction.",
            Some(&Unit::Bytes),
            directions
                .iter()
                .map(|(d, _, b)| (("direction", *d), ConstCounter::new(get(b)))),
        )?;
        counter(
            e,
            "peerbox_turn_relayed_internally_packets",
            "Packets handed from one allocation straight to another on this server.",
            get(&t.relayed_internally),
        )?;
        counters(
            e,
            "peerbox_turn_denied",
            "TURN requests and packets refused, by reason (auth: bad or stale credentials; peer: the peer policy; quota: allocation quotas; permission: no permission for that peer).",
            "reason",
            [
                ("auth", get(&t.denied_auth)),
                ("peer", get(&t.denied_peer)),
                ("quota", get(&t.denied_quota)),
                ("permission", get(&t.denied_no_permission)),
            ]
            .into_iter(),
        )?;
        counters(
            e,
            "peerbox_turn_dropped",
            "TURN packets dropped, by reason (bandwidth: over turn.bandwidth_bytes_per_sec; malformed: not STUN or ChannelData).",
            "reason",
            [
                ("bandwidth", get(&t.dropped_bandwidth)),
                ("malformed", get(&t.malformed)),
            ]
            .into_iter(),
        )?;

        // TLS and the certificate.
        counter(
            e,
            "peerbox_tls_handshakes",
            "TLS handshakes completed on the HTTPS ports.",
            get(&self.http.tls_handshakes),
        )?;
        counter(
            e,
            "peerbox_tls_handshake_failures",
            "TLS handshakes that failed or did not finish within https.handshake_timeout_secs.",
            get(&self.http.tls_failures),
        )?;
        single(
            e,
            "peerbox_certificate_expiry",
            "When the served certificate expires (its notAfter), in Unix time.",
            Some(&Unit::Seconds),
            ConstGauge::new(self.certs.validity().not_after),
        )?;

        // ACME.
        counter(
            e,
            "peerbox_acme_renewals",
            "Certificates obtained by ACME and put in place.",
            get(&self.acme.renewals_ok),
        )?;
        counter(
            e,
            "peerbox_acme_failures",
            "ACME orders that failed (each is retried with backoff).",
            get(&self.acme.failures),
        )?;
        Ok(())
    }
}
