//! The WebSocket upgrade (RFC 6455 over HTTP/1.1): validates the handshake and the browser's
//! `Origin`, answers 101, and hands the upgraded stream to a signalling session tracked for
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::App;
use super::headers::{built, status};
use crate::cluster::link;
use crate::config::AllowedOrigins;
use crate::signal::session::{Via, escaped};

/// Whether the request asks for a WebSocket upgrade (on any path, as the seed client does).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

pub fn handle(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    app: Arc<App>,
) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::GET {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "websocket upgrade needs GET",
        );
    }
    let headers = req.headers();
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut r = status(
            StatusCode::UPGRADE_REQUIRED,
            "websocket version 13 required",
        );
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return status(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let mut host = request_host(&req);
    let mut peer = peer;
    let mut via = Via::Client;
    // Only a cluster node has the path: one node serves every path as before.
    if app.config.cluster.is_some() && req.uri().path() == link::PATH {
        // Another node relays one of its members (see `cluster::link`): that member's address
        // and host count, not the node's.
        let forwarded = app
            .config
            .cluster
            .as_ref()
            .and_then(|c| link::verify(c.secret.expose(), headers, link::unix_now()));
        let Some(f) = forwarded else {
            tracing::debug!(%peer, "node relay refused: not authenticated");
            return status(StatusCode::FORBIDDEN, "not a node of this cluster");
        };
        tracing::debug!(%peer, node = %escaped(&f.node), "node relay");
        (peer, host) = (f.client, f.host);
        via = Via::Node;
    } else if let Some(origin) = headers.get(header::ORIGIN) {
        let own = own_host(&app.config.hostname, host.as_deref());
        if !origin_allowed(origin.as_bytes(), own, &app.config.rooms.allowed_origins) {
            let shown = String::from_utf8_lossy(origin.as_bytes());
            tracing::debug!(%peer, origin = %escaped(&shown), "websocket origin refused");
            return status(
                StatusCode::FORBIDDEN,
                "pages of another site may not use this server's WebSocket \
                 (the admin can allow an origin in [rooms] allowed_origins)",
            );
        }
    }
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let max = app.config.rooms.max_message_bytes;
    // An SFU answer may be longer; the session holds everything else to `max`.
    let max = if app.config.sfu.enabled {
        max.max(crate::signal::protocol::MAX_SFU_FRAME_BYTES)
    } else {
        max
    };
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(max);
    config.max_frame_size = Some(max);
    // tungstenite allocates its read buffer up front (128 KiB by default): most of the memory of
    // an idle connection. Signalling frames are small; the buffer grows for the rare big one.
    config.read_buffer_size = 8 * 1024;
    let hub = app.hub.clone();
    let shutdown = app.shutdown.clone();
    app.sessions.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                crate::signal::session::run(ws, peer, host, via, hub, shutdown).await;
            }
            Err(e) => tracing::debug!(%peer, error = %e, "websocket upgrade failed"),
        }
    });
    built(
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept)
            .body(Full::new(Bytes::new())),
    )
}

/// The host name that is this server's own: `hostname`, or, while that is the default
/// `localhost`, the host the request was sent to (a server reached by its IP address or by a
/// name the admin has not configured).
fn own_host<'a>(hostname: &'a str, request_host: Option<&'a str>) -> Option<&'a str> {
    if hostname.eq_ignore_ascii_case("localhost") {
        request_host.or(Some(hostname))
    } else {
        Some(hostname)
    }
}

/// Whether a browser page of `origin` may open the WebSocket: a page on this server's own host
/// (any scheme, any port: the seed's page and its WSS live on different ports), or one the
/// admin listed. Requests without an `Origin` (not from a browser) never get here.
fn origin_allowed(origin: &[u8], own_host: Option<&str>, allowed: &AllowedOrigins) -> bool {
    let list = match allowed {
        AllowedOrigins::Any => return true,
        AllowedOrigins::List(list) => list,
    };
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    let origin = origin.trim().to_ascii_lowercase();
    if list.contains(&origin) {
        return true;
    }
    let Some(hostport) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false; // "null" (sandboxed pages, file:), or another scheme
    };
    let host = match hostport.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => hostport,
    };
    let bare = |h: &str| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase()
    };
    own_host.is_some_and(|own| !host.is_empty() && bare(host) == bare(own))
}

/// The host the client asked for (`:authority` on HTTP/2, `Host` on HTTP/1.1), without the
/// port, when it is a plausible DNS name or IP literal; the client's own choice, so it is
/// only ever used in answers to that client.
pub fn request_host<B>(req: &Request<B>) -> Option<String> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })?;
    let host = match authority.rsplit_once(':') {
        // An IPv6 literal keeps its brackets: "[::1]:443" -> "[::1]".
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => authority.as_str(),
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let none = AllowedOrigins::List(Vec::new());
        let extra = AllowedOrigins::List(vec!["https://app.example.org".into()]);
        let cases: &[(&str, Option<&str>, &AllowedOrigins, bool)] = &[
            ("https://peerbox.test", Some("peerbox.test"), &none, true),
            (
                "https://peerbox.test:8080",
                Some("peerbox.test"),
                &none,
                true,
            ),
            (
                "http://PeerBox.Test:3000",
                Some("peerbox.test"),
                &none,
                true,
            ),
            (
                "https://[2001:db8::1]:8443",
                Some("[2001:db8::1]"),
                &none,
                true,
            ),
            ("https://[2001:db8::1]", Some("2001:db8::1"), &none, true),
            ("https://evil.example", Some("peerbox.test"), &none, false),
            (
                "https://peerbox.test.evil.example",
                Some("peerbox.test"),
                &none,
                false,
            ),
            (
                "https://evil.example/peerbox.test",
                Some("peerbox.test"),
                &none,
                false,
            ),
            ("null", Some("peerbox.test"), &none, false),
            ("file://", Some("peerbox.test"), &none, false),
            ("https://", Some("peerbox.test"), &none, false),
            ("https://peerbox.test", None, &none, false),
            (
                "https://app.example.org",
                Some("peerbox.test"),
                &extra,
                true,
            ),
            (
                "HTTPS://APP.EXAMPLE.ORG",
                Some("peerbox.test"),
                &extra,
                true,
            ),
            (
                "https://app.example.org:8443",
                Some("peerbox.test"),
                &extra,
                false,
            ),
            (
                "https://evil.example",
                Some("peerbox.test"),
                &AllowedOrigins::Any,
                true,
            ),
        ];
        for (origin, own, allowed, want) in cases {
            assert_eq!(
                origin_allowed(origin.as_bytes(), *own, allowed),
                *want,
                "{origin} on {own:?}"
            );
        }
        assert!(!origin_allowed(
            b"https://\xff",
            Some("peerbox.test"),
            &none
        ));
    }

    #[test]
    fn own_host_is_the_configured_name_or_the_requested_one() {
        assert_eq!(
            own_host("rooms.example.org", Some("10.0.0.5")),
            Some("rooms.example.org")
        );
        assert_eq!(own_host("localhost", Some("10.0.0.5")), Some("10.0.0.5"));
        assert_eq!(own_host("localhost", None), Some("localhost"));
    }

    #[test]
    fn request_host_table() {
        let cases = [
            ("https://peerbox.test/ws", None, Some("peerbox.test")),
            ("https://peerbox.test:8443/ws", None, Some("peerbox.test")),
            (
                "/ws",
                Some("Rooms.Example.org:443"),
                Some("rooms.example.org"),
            ),
            ("/ws", Some("[2001:db8::1]:443"), Some("[2001:db8::1]")),
            ("/ws", Some("[2001:db8::1]"), Some("[2001:db8::1]")),
            ("/ws", Some("203.0.113.5"), Some("203.0.113.5")),
            ("/ws", Some("evil host"), None),
            ("/ws", Some("a\\b"), None),
            ("/ws", None, None),
        ];
        for (uri, host, want) in cases {
            let mut b = Request::builder().uri(uri);
            if let Some(h) = host {
                b = b.header(header::HOST, h);
            }
            let req = b.body(()).expect("request");
            assert_eq!(request_host(&req).as_deref(), want, "{uri} {host:?}");
        }
    }
}
