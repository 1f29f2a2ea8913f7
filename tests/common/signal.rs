//! Signalling helpers shared by the `signal_*` tests: log in, read what the server answers
//! (errors, close frames, logouts), and connect from a chosen source address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

use super::{TestServer, Ws, recv_json, send_json};

/// Sends a seed-style login (with the empty `from`/`to` the seed client sends) and returns
/// the `joined` answer.
pub async fn login(ws: &mut Ws, room: &str, name: &str) -> Value {
    send_json(
        ws,
        json!({"type": "login", "from": "", "to": "",
               "data": {"roomrequest": room, "username": name}}),
    )
    .await;
    let joined = recv_json(ws).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    joined
}

/// The next message of `kind` within `within`, skipping others (room state, logins of others).
pub async fn next_of(ws: &mut Ws, kind: &str, within: Duration) -> Value {
    let wait = async {
        loop {
            let v = recv_json(ws).await;
            if v["type"] == kind {
                return v;
            }
        }
    };
    tokio::time::timeout(within, wait)
        .await
        .unwrap_or_else(|_| panic!("no {kind} within {within:?}"))
}

/// The session id a `joined` gave.
pub fn id(joined: &Value) -> String {
    joined["data"]
        .as_str()
        .expect("joined.data is the session id")
        .to_owned()
}

/// The `errorType` of an error message (which must have an `errorText` too).
pub fn error_type(v: &Value) -> &str {
    assert_eq!(v["type"], "error", "{v}");
    assert!(v["message"]["errorText"].is_string(), "{v}");
    v["message"]["errorType"].as_str().unwrap_or_default()
}

/// Reads until the server's close frame and returns its code and reason.
pub async fn close_frame(ws: &mut Ws) -> (u16, String) {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a close frame within 10 s");
        match next {
            Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
            Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
            Some(Ok(_)) => continue,
            other => panic!("connection ended without a close frame: {other:?}"),
        }
    }
}

/// Waits (up to 10 s in all, pings or not) for the logout of `who`, skipping other messages.
pub async fn expect_logout(ws: &mut Ws, who: &str) {
    let wait = async {
        loop {
            let v = recv_json(ws).await;
            if v["type"] == "logout" && v["from"] == who {
                assert_eq!(v["data"]["sessionId"], who);
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no logout of {who} within 10 s"));
}

/// A WebSocket to `server` from the local address `source` (any of 127.0.0.0/8, or an
/// address the test added to its own namespace's loopback).
pub async fn ws_from(server: &TestServer, source: IpAddr) -> Ws {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
    .expect("socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind source");
    server.ws_over(socket).await
}
