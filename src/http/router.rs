//! Routes one HTTPS request: WebSocket upgrade, `.well-known`, or the embedded web app; and
//! puts the security headers on whatever comes back, in this one place.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::assets::{self, Lookup};
use super::headers::status;
use super::{App, upgrade, well_known};

pub async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    app: Arc<App>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    tracing::debug!(%peer, method = %req.method(), %path, "request");
    let mut resp = if upgrade::is_upgrade(req.headers()) {
        upgrade::handle(req, peer, app.clone())
    } else {
        route(&req, &path, &app).await
    };
    app.headers.apply(resp.headers_mut());
    resp
}

async fn route(req: &Request<Incoming>, path: &str, app: &App) -> Response<Full<Bytes>> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = status(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/ws" {
        return status(
            StatusCode::UPGRADE_REQUIRED,
            "this is the WebSocket endpoint",
        );
    }
    if let Some(rest) = path.strip_prefix("/.well-known/") {
        return well_known::serve(&app.config.https.well_known_dir, rest, head).await;
    }
    match assets::lookup(path) {
        Lookup::File(name) => assets::serve(&name, req.headers(), head),
        Lookup::Fallback => assets::serve("index.html", req.headers(), head),
        Lookup::NotFound => status(StatusCode::NOT_FOUND, "not found"),
    }
}
