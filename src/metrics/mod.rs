//! The monitoring listener (`[metrics] listen`, loopback by default): `/metrics` for
//! Prometheus, `/healthz` (the process answers) and `/readyz` (every listener served, the
//! certificate good for more than `ready_certificate_days`, not shutting down) for load
//! balancers, uptime monitors and the systemd watchdog. Plain HTTP/1.1, a few connections at a
//! time: it is not meant for the public.
//!
//! - [`collector`]: the scrape-time [`prometheus_client::collector::Collector`] over
//!   peerbox's own counters, ACME's (`crate::acme::Stats`) among them.

pub mod collector;

pub use collector::Sources;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::http::headers::status;
use crate::tls::{self, CertStore, Validity};

/// Connections served at once; more wait in the kernel's backlog.
const CONNECTIONS: usize = 16;
const DAY: i64 = 86_400;

/// What the monitoring listener answers from.
pub struct Monitor {
    registry: Registry,
    pub health: Arc<Health>,
    pub certs: CertStore,
    pub ready_certificate_days: u64,
}

impl Monitor {
    pub fn new(sources: Sources, health: Arc<Health>, ready_certificate_days: u64) -> Arc<Monitor> {
        let certs = sources.certs.clone();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(sources));
        Arc::new(Monitor {
            registry,
            health,
            certs,
            ready_certificate_days,
        })
    }

    /// The exposition text: OpenMetrics when the scraper asks for it (Prometheus does),
    /// else the Prometheus text format 0.0.4 (curl, older scrapers); with its content type.
    pub fn render(&self, openmetrics: bool) -> Result<(String, &'static str), std::fmt::Error> {
        let mut out = String::with_capacity(8192);
        if openmetrics {
            text::encode(&mut out, &self.registry)?;
            Ok((
                out,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ))
        } else {
            prometheus_text::encode(&mut out, &self.registry)?;
            Ok((out, prometheus_text::CONTENT_TYPE))
        }
    }

    /// Whether the server should get traffic now, and the reasons, one a line.
    pub fn readiness(&self, now: i64) -> (bool, String) {
        readiness(
            self.health.listeners(),
            self.health.is_stopping(),
            self.certs.validity(),
            now,
            self.ready_certificate_days,
        )
    }
}

/// `/readyz`'s answer from what it looks at (a pure function, table-tested).
fn readiness(
    (served, expected): (usize, usize),
    stopping: bool,
    cert: Validity,
    now: i64,
    min_days: u64,
) -> (bool, String) {
    let mut ok = true;
    let mut text = String::new();
    if stopping {
        ok = false;
        text.push_str("not ready: shutting down\n");
    }
    if served < expected {
        ok = false;
        text.push_str(&format!(
            "not ready: {served} of {expected} listeners are served\n"
        ));
    } else {
        text.push_str(&format!("listeners: {served} of {expected} served\n"));
    }
    let left = cert.not_after - now;
    let until = tls::date(cert.not_after);
    if let Some(why) = cert.refusal(now) {
        ok = false;
        text.push_str(&format!("not ready: the certificate is {why}\n"));
    } else if left < min_days as i64 * DAY {
        ok = false;
        text.push_str(&format!(
            "not ready: the certificate expires in {} days, on {until} (metrics.ready_certificate_days = {min_days})\n",
            left / DAY
        ));
    } else {
        text.push_str(&format!(
            "certificate: valid until {until} ({} days)\n",
            left / DAY
        ));
    }
    if ok {
        text.insert_str(0, "ready\n");
    }
    (ok, text)
}

/// Serves `listener` until `stop`, then lets the open requests finish.
pub async fn run(listener: TcpListener, monitor: Arc<Monitor>, stop: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let Some((tcp, peer)) = crate::net::accept(&listener, &stop).await else {
            break;
        };
        let monitor = monitor.clone();
        let service = service_fn(move |req| {
            let monitor = monitor.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(&req, &monitor)) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .keep_alive(true)
            .serve_connection(TokioIo::new(tcp), service);
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            // A scraper keeps its connection open between scrapes: a bound on each one keeps
            // 16 idle ones from locking the others out for good.
            let served = tokio::time::timeout(Duration::from_secs(300), watched).await;
            if let Ok(Err(e)) = served {
                tracing::debug!(%peer, error = %e, "metrics connection error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(2), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("metrics connections did not finish in time");
    }
}

fn handle(req: &Request<Incoming>, monitor: &Monitor) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = status(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let openmetrics = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("application/openmetrics-text"));
            match monitor.render(openmetrics) {
                Ok((body, kind)) => {
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    let h = r.headers_mut();
                    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
                    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    r
                }
                Err(_) => {
                    tracing::error!("metrics could not be encoded");
                    status(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "metrics could not be encoded",
                    )
                }
            }
        }
        "/healthz" => status(StatusCode::OK, "ok"),
        "/readyz" => {
            let (ok, text) = monitor.readiness(tls::now());
            let code = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            status(code, text.trim_end())
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz and /readyz are served here",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_table() {
        let now = 1_800_000_000;
        let cert = |days: i64| Validity {
            not_before: now - DAY,
            not_after: now + days * DAY,
        };
        // (listeners, stopping, certificate days left, min days) -> ready, text contains
        let cases = [
            (
                (3, 3),
                false,
                90,
                7,
                true,
                "ready\nlisteners: 3 of 3 served",
            ),
            ((2, 3), false, 90, 7, false, "2 of 3 listeners"),
            ((3, 3), true, 90, 7, false, "shutting down"),
            ((3, 3), false, 6, 7, false, "expires in 6 days"),
            ((3, 3), false, 7, 7, true, "(7 days)"),
            ((3, 3), false, 1, 0, true, "(1 days)"),
            ((3, 3), false, -1, 0, false, "expired on"),
        ];
        for (listeners, stopping, days, min, ready, says) in cases {
            let (ok, text) = readiness(listeners, stopping, cert(days), now, min);
            assert_eq!(ok, ready, "{listeners:?} {stopping} {days} {min}: {text}");
            assert!(text.contains(says), "{text:?} lacks {says:?}");
        }
    }
}
