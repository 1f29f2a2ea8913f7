//! The server starts, serves the web app over TLS, and stops when asked.

mod common;

use std::time::Duration;

#[tokio::test]
async fn serves_index_and_stops() {
    let server = common::spawn("").await;
    let resp = server.get("/").await;
    assert_eq!(resp.status(), 200);
    assert!(String::from_utf8_lossy(resp.body()).contains("<title>"));
    server.stop(Duration::from_secs(5)).await;
}
