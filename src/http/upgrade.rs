//! The WebSocket upgrade (RFC 6455 over HTTP/1.1): validates the handshake, answers 101, and
//! hands the upgraded stream to a signalling session tracked for graceful shutdown.

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
    let accept = derive_accept_key(key.as_bytes());
    let host = request_host(&req);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let max = app.config.rooms.max_message_bytes;
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
                crate::signal::session::run(ws, peer, host, hub, shutdown).await;
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
