//! The server starts, serves the web app over TLS, and stops promptly when asked, even with
//! idle keep-alive connections open.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

#[tokio::test]
async fn serves_index_then_shuts_down_gracefully() {
    let server = common::spawn("").await;
    let resp = server.get("/").await;
    assert_eq!(resp.status(), 200);
    assert!(String::from_utf8_lossy(resp.body()).contains("<title>"));

    // An idle keep-alive connection must not hold the shutdown up.
    let tcp = TcpStream::connect(server.https).await.unwrap();
    let tls = server
        .tls()
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get("/")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);

    let addr = server.https;
    server.stop(Duration::from_secs(3)).await;
    tokio::time::timeout(Duration::from_secs(2), conn)
        .await
        .expect("the server closed the idle connection")
        .unwrap()
        .ok();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
