//! Security headers added to every HTTPS response.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

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
