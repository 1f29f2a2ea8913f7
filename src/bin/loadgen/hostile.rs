//! `--hostile N`: what a legitimate pair notices while N unauthenticated and N logged-in
//! sockets send the costliest frames they can. The pair (from 127.0.0.1) sends a candidate each
//! way every `--interval-ms` and reports one-way latency percentiles and losses; the hostile
//! sockets (from 127.0.0.2 on, `--sources` addresses) send, as fast as the server reads them,
//! a 60 KB offer with 6,100 distinct top-level keys (the frame that cost the relay quadratic
//! time): before login, and to a room-mate after it. The server's CPU share is reported too.
//!
//! `--silent R`: R rooms, each with one sender and nine receivers that never read, the sender
//! pushing 60 KB offers at them; the server's peak RSS meanwhile, and its RSS a few seconds
//! after every socket has closed (memory given back or not).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Args, Target, Ws, login, mb, number_after, percentile_ms, proc_cpu_secs, proc_status};

/// The costliest frame: an offer to `to` with about 6,100 distinct keys in under 64 KiB.
fn costly_frame(to: &str) -> String {
    let mut text = format!(r#"{{"type":"offer","from":"","to":"{to}","data":"x""#);
    let mut i = 0;
    while text.len() < 60_000 {
        text.push_str(&format!(r#","k{i}":1"#));
        i += 1;
    }
    text.push('}');
    text
}

pub async fn run(args: &Args, n: usize) -> anyhow::Result<()> {
    let target = Target::new(args).await?;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let sources = args.sources.max(1);
    let from = |i: usize| Some(2 + (i % usize::from(sources)) as u8);
    // The hostile sockets: n not logged in, n logged in (in pairs, each aiming at its mate).
    let mut hostile = Vec::new();
    for i in 0..n {
        hostile.push((target.connect_from(from(i)).await?, String::new()));
    }
    let mut mates = Vec::new();
    for i in 0..n {
        let mut ws = target.connect_from(from(n + i)).await?;
        let id = login(&mut ws, &format!("hostile-{tag}-{}", i / 2), "h").await?;
        mates.push((ws, id));
    }
    for pair in mates.chunks_mut(2) {
        if let [a, b] = pair {
            std::mem::swap(&mut a.1, &mut b.1);
        }
    }
    hostile.extend(mates);
    // The legitimate pair.
    let room = format!("pair-{tag}");
    let mut a = target.connect_from(Some(1)).await?;
    let mut b = target.connect_from(Some(1)).await?;
    let a_id = login(&mut a, &room, "a").await?;
    let b_id = login(&mut b, &room, "b").await?;

    let base = Instant::now();
    let end = base + Duration::from_secs_f64(args.duration);
    let measure_from = base + Duration::from_secs_f64(args.warmup);
    let flooded = Arc::new(AtomicU64::new(0));
    let mut floods = Vec::new();
    for (ws, to) in hostile {
        floods.push(tokio::spawn(flood(
            ws,
            costly_frame(&to),
            end,
            flooded.clone(),
        )));
    }
    let cpu_before = args.pid.and_then(proc_cpu_secs);
    let every = Duration::from_millis(args.interval_ms.max(1));
    let pair = tokio::join!(
        pair_leg(a, &b_id, base, end, measure_from, every),
        pair_leg(b, &a_id, base, end, measure_from, every),
    );
    let cpu = match (cpu_before, args.pid.and_then(proc_cpu_secs)) {
        (Some(x), Some(y)) => Some(y - x),
        _ => None,
    };
    let rss = args.pid.and_then(|p| proc_status(p, "VmRSS"));
    for f in floods {
        f.abort();
    }
    let (mut lat, mut sent, mut got) = (Vec::new(), 0u64, 0u64);
    for leg in [pair.0?, pair.1?] {
        lat.extend(leg.latencies_us);
        sent += leg.sent;
        got += leg.received;
    }
    lat.sort_unstable();
    let span = args.duration + 1.0;
    println!(
        "RESULT mode=hostile hostile={n} sources={sources} pair_sent={sent} pair_received={got} \
         lost={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} hostile_frames_sent={} rss_mb={} \
         server_cpu={}",
        sent.saturating_sub(got),
        percentile_ms(&lat, 0.50),
        percentile_ms(&lat, 0.99),
        percentile_ms(&lat, 1.0),
        flooded.load(Ordering::Relaxed),
        mb(rss),
        cpu.map_or("-".into(), |c| format!("{:.0}%", c / span * 100.0)),
    );
    Ok(())
}

pub async fn silent(args: &Args, rooms: usize) -> anyhow::Result<()> {
    let target = Target::new(args).await?;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let sources = usize::from(args.sources.max(1));
    let rss = || args.pid.and_then(|p| proc_status(p, "VmRSS"));
    let before = rss();
    let end = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    let mut silent = Vec::new();
    for r in 0..rooms {
        let from = Some(2 + (r % sources) as u8);
        let room = format!("silent-{tag}-{r}");
        let mut sender = target.connect_from(from).await?;
        login(&mut sender, &room, "s").await?;
        let mut ids = Vec::new();
        for _ in 0..9 {
            let mut ws = target.connect_from(from).await?;
            ids.push(login(&mut ws, &room, "r").await?);
            silent.push(ws);
        }
        let frames: Vec<String> = ids
            .iter()
            .map(|to| {
                format!(
                    r#"{{"type":"offer","from":"","to":"{to}","data":"{}"}}"#,
                    "s".repeat(60_000)
                )
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = sender.split();
            let reader =
                tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
            'send: while Instant::now() < end {
                for f in &frames {
                    if sink.send(Message::text(f.clone())).await.is_err() {
                        break 'send;
                    }
                }
            }
            reader.abort();
        }));
    }
    let mut peak = 0;
    while Instant::now() < end {
        peak = peak.max(rss().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    drop(silent);
    let closed = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let after = rss();
    println!(
        "RESULT mode=silent rooms={rooms} rss_before_mb={} rss_peak_mb={} rss_after_close_mb={} \
         after_secs={:.1}",
        mb(before),
        mb(Some(peak)),
        mb(after),
        closed.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Sends `frame` until `end` as fast as the server takes it, reading (and dropping) what it
/// answers so that its replies never back up.
async fn flood(ws: Ws, frame: String, end: Instant, sent: Arc<AtomicU64>) {
    let (mut sink, mut stream) = ws.split();
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    let msg = Message::text(frame);
    while Instant::now() < end {
        if sink.send(msg.clone()).await.is_err() {
            break;
        }
        sent.fetch_add(1, Ordering::Relaxed);
    }
    reader.abort();
}

#[derive(Default)]
struct Leg {
    latencies_us: Vec<u32>,
    sent: u64,
    received: u64,
}

/// One side of the pair: a candidate to `to` every `every` (its send time inside), and the
/// latency of each candidate that arrives from the other side.
async fn pair_leg(
    ws: Ws,
    to: &str,
    base: Instant,
    end: Instant,
    measure_from: Instant,
    every: Duration,
) -> anyhow::Result<Leg> {
    let (mut sink, mut stream) = ws.split();
    let mut leg = Leg::default();
    let mut tick = tokio::time::interval(every);
    // Stragglers get a second after the end.
    let stop = tokio::time::sleep_until(end + Duration::from_secs(1));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick(), if Instant::now() < end => {
                let ts = base.elapsed().as_micros() as u64;
                let text = format!(
                    r#"{{"type":"candidate","from":"","to":"{to}","data":{{"ts":{ts},"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 5000 typ host","sdpMid":"0"}}}}"#
                );
                sink.send(Message::text(text)).await?;
                if base + Duration::from_micros(ts) >= measure_from {
                    leg.sent += 1;
                }
            }
            m = stream.next() => {
                let Some(Ok(Message::Text(t))) = m else {
                    if m.is_none() { break; }
                    continue;
                };
                if let Some(ts) = number_after(&t, "\"ts\":") {
                    let sent_at = base + Duration::from_micros(ts);
                    if sent_at >= measure_from {
                        leg.received += 1;
                        let us = (base.elapsed().as_micros() as u64).saturating_sub(ts);
                        leg.latencies_us.push(us.min(u64::from(u32::MAX)) as u32);
                    }
                }
            }
            () = &mut stop => break,
        }
    }
    Ok(leg)
}
