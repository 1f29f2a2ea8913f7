//! Files from the admin's `.well-known` directory on disk (assetlinks.json, ACME challenges).

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header;
use hyper::{Response, StatusCode};

use super::headers::{built, status};

/// Resolves `rest` (the part after `/.well-known/`) inside `dir`, refusing any escape.
pub fn resolve(dir: &Path, rest: &str) -> Option<PathBuf> {
    let rel = Path::new(rest);
    if rest.is_empty()
        || rest.contains('\0')
        || !rel.components().all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(dir.join(rel))
}

pub async fn serve(dir: &Path, rest: &str, head: bool) -> Response<Full<Bytes>> {
    let Some(path) = resolve(dir, rest) else {
        return status(StatusCode::NOT_FOUND, "not found");
    };
    match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_file() && m.len() <= 1024 * 1024 => {}
        _ => return status(StatusCode::NOT_FOUND, "not found"),
    }
    let data = match tokio::fs::read(&path).await {
        Ok(d) => d,
        Err(_) => return status(StatusCode::NOT_FOUND, "not found"),
    };
    let ctype = if rest.ends_with(".json") || rest == "assetlinks.json" {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let len = data.len();
    built(
        Response::builder()
            .header(header::CONTENT_TYPE, ctype)
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::CONTENT_LENGTH, len)
            .body(Full::new(if head {
                Bytes::new()
            } else {
                Bytes::from(data)
            })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_leaves_the_directory() {
        let dir = Path::new("/srv/wk");
        assert_eq!(
            resolve(dir, "assetlinks.json"),
            Some(dir.join("assetlinks.json"))
        );
        assert_eq!(
            resolve(dir, "acme-challenge/tok_EN-1"),
            Some(dir.join("acme-challenge/tok_EN-1"))
        );
        for bad in [
            "",
            "../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "./x",
            "a\0b",
        ] {
            assert_eq!(resolve(dir, bad), None, "{bad:?}");
        }
    }
}
