//! The HTTPS side as a browser sees it: the embedded app's files and their cache rules,
//! security headers, HTTP/2, `.well-known`, the port-80 redirect, slow clients.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn header<'a>(r: &'a hyper::Response<Bytes>, name: &str) -> &'a str {
    header_of(r.headers(), name)
}

fn header_of<'a>(h: &'a hyper::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn assert_security_headers(r: &hyper::Response<Bytes>) {
    assert!(header(r, "strict-transport-security").starts_with("max-age="));
    let csp = header(r, "content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("connect-src 'self' wss:"), "{csp}");
    assert!(csp.contains("media-src 'self' blob: mediastream:"), "{csp}");
    assert_eq!(header(r, "x-content-type-options"), "nosniff");
    assert!(!header(r, "referrer-policy").is_empty());
    let pp = header(r, "permissions-policy");
    for f in [
        "camera=(self)",
        "microphone=(self)",
        "display-capture=(self)",
    ] {
        assert!(pp.contains(f), "{pp}");
    }
}

/// The first hashed script that index.html loads.
fn script_of(index: &str) -> String {
    let re = regex_lite::Regex::new(r#"/assets/[A-Za-z0-9_.-]+\.js"#).unwrap();
    re.find(index)
        .expect("index.html loads a hashed script from /assets/")
        .as_str()
        .to_owned()
}

#[tokio::test]
async fn index_has_etag_no_cache_and_revalidates_to_304() {
    let server = common::spawn("").await;
    let r = server.get("/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&r, "cache-control"), "no-cache");
    assert_security_headers(&r);
    let etag = header(&r, "etag").to_owned();
    assert!(etag.starts_with('"'), "{etag}");
    let again = server
        .request("GET", "/", &[("if-none-match", &etag)])
        .await;
    assert_eq!(again.status(), 304);
    assert!(again.body().is_empty());
    let other = server
        .request("GET", "/", &[("if-none-match", "\"nope\"")])
        .await;
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn hashed_assets_are_immutable_and_precompressed() {
    let server = common::spawn("").await;
    let index = server.get("/").await;
    let script = script_of(&String::from_utf8_lossy(index.body()));
    let plain = server.get(&script).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(
        header(&plain, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(header(&plain, "cache-control").contains("immutable"));
    assert_eq!(header(&plain, "content-encoding"), "");

    let br = server
        .request("GET", &script, &[("accept-encoding", "gzip, deflate, br")])
        .await;
    assert_eq!(header(&br, "content-encoding"), "br");
    assert!(br.body().len() < plain.body().len());
    assert_ne!(header(&br, "etag"), header(&plain, "etag"));

    let gz = server
        .request("GET", &script, &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz.body()[..])
        .read_to_end(&mut unzipped)
        .expect("valid gzip");
    assert_eq!(unzipped, plain.body().as_ref());

    let refused = server
        .request("GET", &script, &[("accept-encoding", "br;q=0, gzip;q=0")])
        .await;
    assert_eq!(header(&refused, "content-encoding"), "");
    assert!(header(&br, "vary").contains("Accept-Encoding"));
}

#[tokio::test]
async fn spa_paths_fall_back_and_missing_files_are_404() {
    let server = common::spawn("").await;
    let index = server.get("/").await;
    let room = server
        .get("/room/0b6c1f8e-3b7a-4c1e-9f1d-6a2b3c4d5e6f")
        .await;
    assert_eq!(room.status(), 200);
    assert_eq!(room.body(), index.body());
    for missing in ["/missing.js", "/assets/gone-1234.css", "/icons/nope.png"] {
        let r = server.get(missing).await;
        assert_eq!(r.status(), 404, "{missing}");
        assert_security_headers(&r);
    }
    // Browsers resolve dot segments before sending; a path that still has one is refused
    // instead of falling back to the app (which an extension-less path would).
    for dotted in ["/room/../settings", "/./settings", "/room/./x"] {
        assert_eq!(server.get(dotted).await.status(), 404, "{dotted}");
    }
}

#[tokio::test]
async fn manifest_and_service_worker_are_revalidated() {
    let server = common::spawn("").await;
    let m = server.get("/manifest.webmanifest").await;
    assert_eq!(m.status(), 200);
    assert_eq!(header(&m, "content-type"), "application/manifest+json");
    assert_eq!(header(&m, "cache-control"), "no-cache");
    let sw = server.get("/sw.js").await;
    assert_eq!(sw.status(), 200);
    assert_eq!(header(&sw, "cache-control"), "no-cache");
}

#[tokio::test]
async fn head_and_other_methods() {
    let server = common::spawn("").await;
    let head = server.request("HEAD", "/", &[]).await;
    assert_eq!(head.status(), 200);
    assert!(head.body().is_empty());
    assert!(header(&head, "content-length").parse::<usize>().unwrap() > 100);
    let post = server.request("POST", "/", &[]).await;
    assert_eq!(post.status(), 405);
    assert_eq!(header(&post, "allow"), "GET, HEAD");
}

#[tokio::test]
async fn well_known_is_served_from_disk_and_cannot_escape() {
    let server = common::spawn("").await;
    let wk = server.dir.path().join(".well-known");
    std::fs::create_dir_all(&wk).unwrap();
    std::fs::write(wk.join("assetlinks.json"), r#"[{"relation":[]}]"#).unwrap();
    let r = server.get("/.well-known/assetlinks.json").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/json");
    assert_eq!(r.body().as_ref(), br#"[{"relation":[]}]"#);
    assert_security_headers(&r);
    // Each of these names a file that exists (the server's own config), outside the dir.
    std::fs::create_dir_all(wk.join("acme-challenge")).unwrap();
    let config = server.dir.path().join("config.toml");
    assert!(config.is_file());
    for bad in [
        "/.well-known/../config.toml".to_owned(),
        "/.well-known/acme-challenge/../../config.toml".to_owned(),
        format!("/.well-known/{}", config.display()),
    ] {
        let r = server.get(&bad).await;
        assert_eq!(r.status(), 404, "{bad}");
        assert_security_headers(&r);
    }
    assert_eq!(server.get("/.well-known/missing").await.status(), 404);
}

#[tokio::test]
async fn websocket_upgrade_answers_carry_the_security_headers() {
    let server = common::spawn("").await;
    let up = [("upgrade", "websocket"), ("connection", "Upgrade")];
    let key = ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    let cases = [
        (
            "POST",
            vec![up[0], up[1], key, ("sec-websocket-version", "13")],
            405,
        ),
        (
            "GET",
            vec![up[0], up[1], key, ("sec-websocket-version", "8")],
            426,
        ),
        (
            "GET",
            vec![up[0], up[1], ("sec-websocket-version", "13")],
            400,
        ),
    ];
    for (method, headers, want) in cases {
        let r = server.request(method, "/ws", &headers).await;
        assert_eq!(r.status(), want, "{method} {headers:?}");
        assert_security_headers(&r);
    }
    let tls = server.tls_stream().await;
    let url = format!("wss://localhost:{}/ws", server.https.port());
    let (_ws, resp) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(
        header_of(resp.headers(), "x-content-type-options"),
        "nosniff"
    );
    assert!(header_of(resp.headers(), "strict-transport-security").starts_with("max-age="));
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn() {
    let server = common::spawn("").await;
    let tls = common::tls_trusting(&server.ssl_dir().join("cert.pem"), &[b"h2", b"http/1.1"]);
    let tcp = TcpStream::connect(server.https).await.unwrap();
    let stream = tls
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("https://localhost:{}/", server.https.port()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("<title>"));
}

#[tokio::test]
async fn port_80_redirects_except_acme_challenges() {
    let server = common::spawn("").await;
    let r = server
        .get_http("/room/abc?roomrequest=x", "example.org")
        .await;
    assert_eq!(r.status(), 301);
    assert_eq!(
        header(&r, "location"),
        format!(
            "https://example.org:{}/room/abc?roomrequest=x",
            server.https.port()
        )
    );
    let bad_host = server.get_http("/", "evil.org/x").await;
    assert_eq!(
        header(&bad_host, "location"),
        format!("https://localhost:{}/", server.https.port())
    );
    let dir = server.dir.path().join(".well-known/acme-challenge");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tok-EN_1"), "tok-EN_1.thumbprint").unwrap();
    let acme = server
        .get_http("/.well-known/acme-challenge/tok-EN_1", "example.org")
        .await;
    assert_eq!(acme.status(), 200);
    assert_eq!(acme.body().as_ref(), b"tok-EN_1.thumbprint");
    let missing = server
        .get_http("/.well-known/acme-challenge/none", "example.org")
        .await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn silent_clients_do_not_stall_others_and_are_dropped() {
    let server = common::spawn("[https]\nhandshake_timeout_secs = 1").await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(server.https).await.unwrap());
    }
    let r = tokio::time::timeout(Duration::from_secs(3), server.get("/")).await;
    assert_eq!(r.expect("served while 20 clients sit silent").status(), 200);
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), silent[0].read(&mut buf))
        .await
        .expect("silent client dropped after the handshake timeout");
    assert!(matches!(n, Ok(0) | Err(_)));
}
