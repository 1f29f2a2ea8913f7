//! The embedded web app (`pwa/`): content types, ETags, cache rules, precompressed variants,
//! and the single-page-app fallback.

use std::borrow::Cow;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode};
use rust_embed::RustEmbed;

use super::headers::{built, status};

#[derive(RustEmbed)]
#[folder = "pwa/"]
#[exclude = "README.md"]
#[exclude = "*.br"]
#[exclude = "*.gz"]
struct Pwa;

/// The precompressed variants, kept apart so that they are never served by name.
#[derive(RustEmbed)]
#[folder = "pwa/"]
#[include = "*.br"]
#[include = "*.gz"]
struct Compressed;

/// How a request path maps onto the embedded files.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    File(String),
    /// An extension-less path: the client-side router handles it (`/room/<uuid>`).
    Fallback,
    NotFound,
}

pub fn lookup(path: &str) -> Lookup {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return Lookup::File("index.html".into());
    }
    if rel.split('/').any(|seg| seg == ".." || seg == ".") || rel.contains('\\') {
        return Lookup::NotFound;
    }
    if Pwa::get(rel).is_some() {
        return Lookup::File(rel.into());
    }
    let last = rel.rsplit('/').next().unwrap_or(rel);
    if last.contains('.') {
        Lookup::NotFound
    } else {
        Lookup::Fallback
    }
}

/// Serves `name` (which must exist) honouring If-None-Match and Accept-Encoding.
pub fn serve(name: &str, req: &HeaderMap, head: bool) -> Response<Full<Bytes>> {
    let Some(file) = Pwa::get(name) else {
        return status(StatusCode::NOT_FOUND, "not found");
    };
    let hash = file.metadata.sha256_hash();
    let tag = crate::hex::encode(&hash[..12]);
    let (encoding, data) = match pick_encoding(name, req) {
        Some((enc, variant)) => (Some(enc), variant.data),
        None => (None, file.data),
    };
    let etag = match encoding {
        Some(enc) => format!("\"{tag}-{enc}\""),
        None => format!("\"{tag}\""),
    };
    let mut builder = Response::builder()
        .header(
            header::CONTENT_TYPE,
            content_type(name, file.metadata.mimetype()),
        )
        .header(header::CACHE_CONTROL, cache_control(name))
        .header(header::VARY, "Accept-Encoding")
        .header(header::ETAG, &etag);
    if not_modified(req, &etag, &tag) {
        return built(
            builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Full::new(Bytes::new())),
        );
    }
    if let Some(enc) = encoding {
        builder = builder.header(header::CONTENT_ENCODING, enc);
    }
    builder = builder.header(header::CONTENT_LENGTH, data.len());
    // Release builds embed the files as static bytes: serve them without a copy.
    let body = match (head, data) {
        (true, _) => Bytes::new(),
        (false, Cow::Borrowed(b)) => Bytes::from_static(b),
        (false, Cow::Owned(v)) => Bytes::from(v),
    };
    built(builder.body(Full::new(body)))
}

fn not_modified(req: &HeaderMap, etag: &str, tag: &str) -> bool {
    let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    inm.split(',').map(str::trim).any(|t| {
        let t = t.trim_start_matches("W/");
        t == "*" || t == etag || t == format!("\"{tag}\"")
    })
}

/// The precompressed variant to send, if the client accepts one and the build made it.
fn pick_encoding(name: &str, req: &HeaderMap) -> Option<(&'static str, rust_embed::EmbeddedFile)> {
    let accept = req.get(header::ACCEPT_ENCODING)?.to_str().ok()?;
    let accepts = |want: &str| {
        accept.split(',').any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            coding.eq_ignore_ascii_case(want) && q > 0.0
        })
    };
    [("br", "br"), ("gzip", "gz")]
        .into_iter()
        .filter(|(coding, _)| accepts(coding))
        .find_map(|(coding, ext)| Some((coding, Compressed::get(&format!("{name}.{ext}"))?)))
}

fn content_type(name: &str, guessed: &str) -> HeaderValue {
    let t = if name.ends_with(".webmanifest") {
        "application/manifest+json"
    } else if guessed.starts_with("text/") || guessed == "application/javascript" {
        return HeaderValue::from_str(&format!("{guessed}; charset=utf-8"))
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    } else {
        guessed
    };
    HeaderValue::from_str(t).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// Hashed build assets never change; the entry points must be revalidated every time.
fn cache_control(name: &str) -> &'static str {
    if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else if name.ends_with(".html")
        || name.ends_with(".webmanifest")
        || name == "sw.js"
        || name == "registerSW.js"
        || name.starts_with("workbox-")
    {
        "no-cache"
    } else {
        "public, max-age=86400"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_files_fallback_or_404() {
        let cases = [
            ("/", Lookup::File("index.html".into())),
            ("/index.html", Lookup::File("index.html".into())),
            (
                "/room/6f1c1c1e-8a4b-4f7e-9d55-0e1f0a1b2c3d",
                Lookup::Fallback,
            ),
            ("/settings", Lookup::Fallback),
            ("/missing.js", Lookup::NotFound),
            ("/assets/nothing-here.css", Lookup::NotFound),
            // dot segments and backslashes: refused, not sent to the app's router
            ("/room/../settings", Lookup::NotFound),
            ("/./settings", Lookup::NotFound),
            ("/room\\x", Lookup::NotFound),
            ("/README.md", Lookup::NotFound),
        ];
        for (path, want) in cases {
            assert_eq!(lookup(path), want, "{path}");
        }
    }

    #[test]
    fn cache_rules() {
        assert!(cache_control("assets/index-abc123.js").contains("immutable"));
        assert_eq!(cache_control("index.html"), "no-cache");
        assert_eq!(cache_control("sw.js"), "no-cache");
        assert_eq!(cache_control("manifest.webmanifest"), "no-cache");
    }
}
