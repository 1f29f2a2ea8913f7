//! What every HTTPS answer carries: the security headers (the router adds them to every
//! response, the WebSocket upgrade's included), and the short plain-text answers the handlers
//! share. It sits below the modules that use it, so none imports back from the router.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use crate::Config;

/// The precomputed security headers.
pub struct SecurityHeaders {
    list: Vec<(HeaderName, HeaderValue)>,
}

/// Only self, plus what WebRTC rooms need: `wss:` to this server, blob:/mediastream: media,
/// data:/blob: images (QR code, received files).
pub const CSP: &str = "default-src 'self'; connect-src 'self' wss:; img-src 'self' data: blob:; \
media-src 'self' blob: mediastream:; style-src 'self'; script-src 'self'; worker-src 'self'; \
manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

impl SecurityHeaders {
    pub fn new(config: &Config) -> SecurityHeaders {
        let hsts = format!("max-age={}", config.https.hsts_max_age.as_secs());
        let pairs: [(&str, String); 7] = [
            ("strict-transport-security", hsts),
            ("content-security-policy", CSP.into()),
            ("x-content-type-options", "nosniff".into()),
            ("referrer-policy", "no-referrer".into()),
            (
                "permissions-policy",
                "camera=(self), microphone=(self), display-capture=(self), fullscreen=(self), \
                 picture-in-picture=(self), geolocation=(), payment=(), usb=()"
                    .into(),
            ),
            ("x-frame-options", "DENY".into()),
            ("cross-origin-opener-policy", "same-origin".into()),
        ];
        let list = pairs
            .into_iter()
            .filter_map(|(k, v)| {
                Some((HeaderName::from_static(k), HeaderValue::from_str(&v).ok()?))
            })
            .collect();
        SecurityHeaders { list }
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        for (k, v) in &self.list {
            headers.insert(k.clone(), v.clone());
        }
    }
}

/// A short plain-text response. Built from parts that cannot fail, so no fallback is needed.
pub fn status(code: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The response a builder made, or, when a header value was not valid, a logged 500: never
/// the empty 200 that `unwrap_or_default()` would send.
pub fn built(r: Result<Response<Full<Bytes>>, hyper::http::Error>) -> Response<Full<Bytes>> {
    r.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a response could not be built; answering 500");
        status(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_that_cannot_be_built_is_a_500_not_an_empty_200() {
        let bad = Response::builder()
            .header(header::ETAG, "line\nbreak")
            .body(Full::new(Bytes::from_static(b"page")));
        let r = built(bad);
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let good = built(
            Response::builder()
                .status(204)
                .body(Full::new(Bytes::new())),
        );
        assert_eq!(good.status(), StatusCode::NO_CONTENT);
    }
}
