//! Plain HTTP (port 80): 301 to https on the same host and path, except ACME challenges:
//! peerbox's own HTTP-01 answers from memory, else the well-known dir (certbot's webroot mode).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::headers::status;
use super::well_known;
use crate::Config;
use crate::acme::Http01Tokens;

pub async fn run(
    listener: TcpListener,
    config: Arc<Config>,
    tokens: Arc<Http01Tokens>,
    stop: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let Some((tcp, peer)) = crate::net::accept(&listener, &stop).await else {
            break;
        };
        let watcher = graceful.watcher();
        let conn = connection(tcp, config.clone(), tokens.clone());
        tokio::spawn(async move {
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "http connection error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// One plain HTTP/1.1 connection: on port 80, or plain HTTP sent to an HTTPS port (answered
/// with the same redirect instead of a hang).
pub fn connection<I>(
    io: I,
    config: Arc<Config>,
    tokens: Arc<Http01Tokens>,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> + Send + 'static
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let (config, tokens) = (config.clone(), tokens.clone());
        async move { Ok::<_, std::convert::Infallible>(handle(req, &config, &tokens).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(io), service)
}

async fn handle(
    req: Request<Incoming>,
    config: &Config,
    tokens: &Http01Tokens,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if let Some(token) = path.strip_prefix("/.well-known/acme-challenge/") {
        if let Some(answer) = tokens.get(token) {
            tracing::info!("acme: http-01 challenge answered");
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(Full::new(Bytes::from(answer)))
                .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR, "error"));
        }
        let rest = format!("acme-challenge/{token}");
        let head = req.method() == hyper::Method::HEAD;
        return well_known::serve(&config.https.well_known_dir, &rest, head).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_only)
        .unwrap_or(&config.hostname);
    let port = config.https.listen.first().map(|a| a.port()).unwrap_or(443);
    let authority = if port == 443 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = format!("https://{authority}{path_and_query}");
    Response::builder()
        .status(StatusCode::MOVED_PERMANENTLY)
        .header(header::LOCATION, location)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(b"moved to https\n")))
        .unwrap_or_else(|_| status(StatusCode::BAD_REQUEST, "bad request"))
}

/// The host part of a Host header, when it is a plausible name or address (no injection).
fn host_only(h: &str) -> Option<&str> {
    let host = if h.starts_with('[') {
        &h[..=h.find(']')?]
    } else {
        h.split(':').next()?
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::host_only;

    #[test]
    fn host_header_parsing() {
        let cases = [
            ("example.org", Some("example.org")),
            ("example.org:80", Some("example.org")),
            ("[::1]:80", Some("[::1]")),
            ("127.0.0.1:8080", Some("127.0.0.1")),
            ("evil.org/path", None),
            ("a b", None),
            ("", None),
        ];
        for (h, want) in cases {
            assert_eq!(host_only(h), want, "{h:?}");
        }
    }
}
