//! The log cannot be forged or blown up by what clients send: the real server's log lines
//! (tracing's fmt layer at info, as shipped) captured while a client logs in again and again
//! with room names made to break lines, hide text and reverse it.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::signal::login;

/// Every line the server logs, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn room_names_cannot_forge_or_grow_log_lines() {
    let log = Captured::default();
    let writer = log.clone();
    // Installed before the helper's own (which then finds one in place).
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let server = common::spawn("[rooms]\ncredential_burst = 1000\n").await;
    let mut ws = server.ws().await;
    let hostile = [
        "r\n2030-01-01T00:00:00Z  WARN peerbox: forged",
        "nul\0bs\u{8}",
        "rtl\u{202e}desrever",
        "esc\u{1b}[2J",
    ];
    for i in 0..40 {
        login(&mut ws, &format!("{}-{i}", hostile[i % hostile.len()]), "x").await;
    }
    drop(ws);
    server.stop(std::time::Duration::from_secs(5)).await;
    let text = String::from_utf8(log.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .expect("utf-8 log");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().filter(|l| l.contains("joined room")).count() >= 40,
        "{text}"
    );
    for line in &lines {
        assert!(
            !line.contains("forged") || line.contains("joined room") || line.contains("left room"),
            "a line was forged: {line:?}"
        );
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "raw control or bidi character: {line:?}"
        );
        // Re-logins used to append another `room=` to the session span on every line.
        assert!(line.matches("room=").count() <= 1, "{line}");
        assert!(line.len() < 600, "a line of {} bytes: {line}", line.len());
    }
    assert!(
        text.contains(r"r\u{a}2030"),
        "the newline is shown escaped: {text}"
    );
}
