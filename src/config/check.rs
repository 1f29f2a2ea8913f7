//! Checks that need several keys at once: listeners the kernel would not bind side by side
//! (refused, so that `check-config` refuses what start would trip over), and values that are
//! legal but harmful (warnings, logged at start and printed by `check-config`).

use std::net::{IpAddr, SocketAddr};

use super::{Config, ConfigError, invalid};

/// Something legal in the config that probably hurts; `key` names the key to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub key: &'static str,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config key `{}`: {}", self.key, self.message)
    }
}

/// Rooms bigger than this are a mesh that few uplinks and phones can carry.
const MESH_WARN: usize = 16;
/// Every visitor gets a username and its HMAC under the secret: a short secret can be found
/// offline from that one pair.
const SECRET_WARN: usize = 16;

/// Refuses two listeners on one port that cannot both be bound: the same address twice, or
/// a wildcard (`0.0.0.0`, `[::]`) beside another address of its family. IPv4 and IPv6 never
/// clash, since `[::]` is bound IPv6-only; port 0 (the kernel picks one) never clashes.
pub(super) fn listeners(c: &Config) -> Result<(), ConfigError> {
    no_clash(
        "TCP",
        &[
            ("https.listen", &c.https.listen),
            ("http.listen", &c.http.listen),
            ("turn.listen", &c.turn.listen),
            ("metrics.listen", &c.metrics.listen),
        ],
    )?;
    let sfu: Vec<SocketAddr> = c.sfu.enabled.then_some(c.sfu.listen).into_iter().collect();
    no_clash(
        "UDP",
        &[
            ("turn.listen", &c.turn.listen),
            ("turn.udp_listen", &c.turn.udp_listen),
            ("sfu.listen", &sfu),
        ],
    )
}

fn no_clash(proto: &str, lists: &[(&'static str, &Vec<SocketAddr>)]) -> Result<(), ConfigError> {
    let all: Vec<(&'static str, SocketAddr)> = lists
        .iter()
        .flat_map(|(key, list)| list.iter().map(move |a| (*key, *a)))
        .collect();
    for (i, &(key, addr)) in all.iter().enumerate() {
        let Some(&(first_key, first)) = all[..i].iter().find(|(_, a)| clash(*a, addr)) else {
            continue;
        };
        let mut reason = if first == addr && first_key == key {
            format!("{addr} is listed twice")
        } else if first_key == key {
            format!("{addr} clashes with {first} ({proto})")
        } else {
            format!("{addr} clashes with {first} in {first_key} ({proto})")
        };
        reason.push_str(if first.ip() == addr.ip() {
            ": a port can be bound once per address"
        } else {
            ": the wildcard address already takes that port on every address of its family"
        });
        if [first_key, key].contains(&"https.listen") && [first_key, key].contains(&"turn.listen") {
            reason.push_str(
                "; for TURN over TCP and TLS on the HTTPS port, leave it out of turn.listen: \
                 `[https] turn = true` serves TURN on the HTTPS listeners",
            );
        }
        return Err(invalid(key, reason));
    }
    Ok(())
}

fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

pub(super) fn warnings(c: &Config) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut warn = |key: &'static str, message: String| out.push(Warning { key, message });
    if is_loopback_name(&c.hostname) {
        if let Some(addr) = c.https.listen.iter().find(|a| !a.ip().is_loopback()) {
            warn(
                "hostname",
                format!(
                    "is {:?} while peerbox listens on {addr}: set it to the DNS name or address \
                     people open. Until then TURN URLs name the host each browser connected \
                     by, which fails for anyone who opened peerbox through another name; the \
                     self-signed certificate and the TURN realm are made for \"localhost\"",
                    c.hostname
                ),
            );
        }
    }
    let secret = c.turn.secret.expose();
    if !secret.is_empty() && secret.len() < SECRET_WARN {
        warn(
            "turn.secret",
            format!(
                "is shorter than {SECRET_WARN} characters: every visitor receives credentials \
                 made with it and can guess it offline, then mint their own; leave it empty (a \
                 random one is made at start) or use `openssl rand -hex 32`"
            ),
        );
    }
    let cap = c.rooms.capacity;
    if cap > MESH_WARN {
        warn(
            "rooms.capacity",
            format!(
                "is {cap}: in a mesh every member sends its camera and microphone to each of the \
                 {} others; beyond {MESH_WARN} few uplinks or phones keep up",
                cap - 1
            ),
        );
    }
    if c.sfu.enabled && c.sfu.candidate_ip(None).is_none() {
        warn(
            "sfu.public_ip",
            format!(
                "is empty while sfu.listen is {}, a wildcard, and turn.external_ip is not set: \
                 the SFU cannot tell clients where to send media; set the address people reach \
                 this server at",
                c.sfu.listen
            ),
        );
    }
    if c.turn.allow_loopback_peers {
        warn(
            "turn.allow_loopback_peers",
            "is true: anyone with TURN credentials can reach services on this machine's \
             loopback addresses through the relay; it is meant for tests"
                .into(),
        );
    }
    if let Some(a) = c.metrics.listen.iter().find(|a| !a.ip().is_loopback()) {
        warn(
            "metrics.listen",
            format!(
                "{a} is not a loopback address: /metrics (room and relay figures) and the \
                 health checks answer anyone who reaches it, without a password; allow only \
                 the Prometheus server in the firewall"
            ),
        );
    }
    for (key, list) in [
        ("https.listen", &c.https.listen),
        ("http.listen", &c.http.listen),
        ("turn.listen", &c.turn.listen),
        ("turn.udp_listen", &c.turn.udp_listen),
    ] {
        for a in list
            .iter()
            .filter(|a| a.is_ipv6() && a.ip().is_unspecified())
        {
            let port = a.port();
            if port != 0 && !list.iter().any(|b| b.is_ipv4() && b.port() == port) {
                warn(
                    key,
                    format!(
                        "{a} serves IPv6 only ([::] is bound IPv6-only); add \"0.0.0.0:{port}\" \
                         to serve IPv4 too"
                    ),
                );
            }
        }
    }
    if c.acme.enabled {
        for ch in &c.acme.challenges {
            let (key, list) = match ch {
                super::Challenge::TlsAlpn01 => ("https.listen", &c.https.listen),
                super::Challenge::Http01 => ("http.listen", &c.http.listen),
            };
            if !list.iter().any(|a| a.port() == ch.port()) {
                warn(
                    key,
                    format!(
                        "has no listener on port {port}, where the CA checks {name}: forward                          port {port} to one of these, or certificates cannot be issued by {name}",
                        port = ch.port(),
                        name = ch.name()
                    ),
                );
            }
        }
    }
    out
}

/// Whether `host` names this machine only: `localhost`, `*.localhost`, or a loopback address.
fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/peerbox")).map_err(|e| e.to_string())
    }

    /// Listen tables with nothing else listening, so that each case sets only what it tests.
    fn listen(https: &str, http: &str, turn: &str, udp: &str) -> String {
        format!(
            "[https]\nlisten = [{https}]\n[http]\nlisten = [{http}]\n\
             [turn]\nlisten = [{turn}]\nudp_listen = [{udp}]\n"
        )
    }

    #[test]
    fn clashing_listeners_are_refused_naming_both() {
        let cases = [
            // (https, http, turn, udp_listen), key named, text in the message
            (
                ("\"0.0.0.0:443\"", "\"0.0.0.0:443\"", "", ""),
                "http.listen",
                "clashes with 0.0.0.0:443 in https.listen (TCP)",
            ),
            (
                ("\"0.0.0.0:443\"", "", "\"127.0.0.1:443\"", ""),
                "turn.listen",
                "[https] turn = true",
            ),
            (
                ("", "", "\"0.0.0.0:3478\"", "\"0.0.0.0:3478\""),
                "turn.udp_listen",
                "(UDP)",
            ),
            (
                ("\"0.0.0.0:443\", \"192.0.2.1:443\"", "", "", ""),
                "https.listen",
                "wildcard address",
            ),
            (
                ("\"[::]:443\", \"[2001:db8::1]:443\"", "", "", ""),
                "https.listen",
                "clashes with [::]:443",
            ),
            (
                ("\"127.0.0.1:8443\", \"127.0.0.1:8443\"", "", "", ""),
                "https.listen",
                "listed twice",
            ),
        ];
        for ((https, http, turn, udp), key, text) in cases {
            let config = listen(https, http, turn, udp);
            let err = parse(&config).expect_err(&config);
            assert!(
                err.contains(&format!("`{key}`")) && err.contains(text),
                "{config}\ngave {err:?}, expected {key} and {text:?}"
            );
        }
    }

    #[test]
    fn listeners_that_can_be_bound_together_are_accepted() {
        let cases = [
            // IPv4 and IPv6 wildcards side by side: [::] is bound IPv6-only.
            (
                "\"0.0.0.0:443\", \"[::]:443\"",
                "\"0.0.0.0:80\", \"[::]:80\"",
                "",
                "",
            ),
            // UDP-only TURN on the HTTPS port: different protocols.
            ("\"0.0.0.0:443\"", "", "\"0.0.0.0:3478\"", "\"0.0.0.0:443\""),
            // Two specific addresses on one port; port 0 many times (tests).
            (
                "\"127.0.0.1:443\", \"127.0.0.2:443\"",
                "\"127.0.0.1:0\"",
                "\"127.0.0.1:0\"",
                "",
            ),
        ];
        for (https, http, turn, udp) in cases {
            let config = listen(https, http, turn, udp);
            parse(&config).unwrap_or_else(|e| panic!("{config}\n{e}"));
        }
    }

    #[test]
    fn an_ipv4_mapped_address_is_refused_with_its_ipv4_form() {
        let err = parse("[https]\nlisten = [\"[::ffff:192.0.2.1]:443\"]").unwrap_err();
        assert!(
            err.contains("https.listen") && err.contains("\"192.0.2.1:443\""),
            "{err}"
        );
    }

    fn warned(text: &str) -> Vec<&'static str> {
        let c = parse(text).unwrap_or_else(|e| panic!("{text}\n{e}"));
        c.warnings().iter().map(|w| w.key).collect()
    }

    #[test]
    fn legal_but_harmful_values_are_warned_about() {
        let local = listen("\"127.0.0.1:8443\"", "", "", "");
        let acme = "[acme]\nenabled = true\n";
        let cases: [(String, &[&str]); 16] = [
            (local.clone(), &[]),
            (format!("{local}[sfu]\nenabled = true"), &["sfu.public_ip"]),
            (
                format!("{local}[sfu]\nenabled = true\npublic_ip = \"192.0.2.7\""),
                &[],
            ),
            // the defaults: localhost on 0.0.0.0
            (String::new(), &["hostname"]),
            (format!("hostname = \"rooms.example.org\"\n{local}"), &[]),
            (format!("hostname = \"[::1]\"\n{local}"), &[]),
            (format!("{local}secret = \"short\""), &["turn.secret"]),
            (format!("{local}secret = \"{}\"", "x".repeat(16)), &[]),
            (
                format!("{local}allow_loopback_peers = true"),
                &["turn.allow_loopback_peers"],
            ),
            (
                format!("[rooms]\ncapacity = 50\n{local}"),
                &["rooms.capacity"],
            ),
            (
                format!(
                    "hostname = \"a.example\"\n{}",
                    listen("\"[::]:443\"", "\"[::]:80\", \"0.0.0.0:80\"", "", "")
                ),
                &["https.listen"],
            ),
            (
                format!("{local}[metrics]\nlisten = [\"0.0.0.0:9478\"]"),
                &["metrics.listen"],
            ),
            (format!("{local}[metrics]\nlisten = [\"[::1]:9478\"]"), &[]),
            // ACME with the shipped listeners (443 and 80), then with the CA's ports elsewhere
            (format!("hostname = \"a.example\"\n{acme}"), &[]),
            (
                format!(
                    "hostname = \"a.example\"\n{}{acme}",
                    listen("\"0.0.0.0:8443\"", "\"0.0.0.0:8080\"", "", "")
                ),
                &["https.listen", "http.listen"],
            ),
            (
                format!(
                    "hostname = \"a.example\"\n{}{acme}challenge = \"http-01\"",
                    listen("\"0.0.0.0:8443\"", "\"0.0.0.0:80\"", "", "")
                ),
                &[],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(warned(&text), want, "{text}");
        }
    }
}
