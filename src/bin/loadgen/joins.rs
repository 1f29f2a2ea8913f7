//! `--joins N`: how long a login takes to be answered `joined`, one login at a time so that
//! the figure is the path's latency, not a queue's. For each of N new rooms: the first member
//! logs in on node k mod n (on a cluster node, a new room is placed through Redis), then a
//! second member on the next node (on a cluster, a room homed on another node: a directory
//! lookup, then a relay link to the home is made and the home answers). Against one server
//! both are on it, and no Redis is in the path. Connections are made before the clock starts;
//! both leave before the next room.

use std::time::Duration;

use tokio::time::Instant;

use super::{Args, Target, login};

pub async fn run(args: &Args, n: usize) -> anyhow::Result<()> {
    anyhow::ensure!(n > 0, "--joins must be at least 1");
    let targets = Target::all(args).await?;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let (mut first, mut second) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for k in 0..n {
        let room = format!("join-{tag}-{k}");
        let mut a = targets[k % targets.len()].connect_from(None).await?;
        let mut b = targets[(k + 1) % targets.len()].connect_from(None).await?;
        let started = Instant::now();
        login(&mut a, &room, "first").await?;
        first.push(started.elapsed());
        let started = Instant::now();
        login(&mut b, &room, "second").await?;
        second.push(started.elapsed());
        let _ = b.close(None).await;
        let _ = a.close(None).await;
        // Leaving is asynchronous on the home; a new room name each time keeps the next
        // login from meeting this one.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pct = |v: &mut Vec<Duration>, p: f64| -> f64 {
        v.sort_unstable();
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64() * 1000.0
    };
    println!(
        "RESULT mode=joins n={n} nodes={} first_p50_ms={:.3} first_p99_ms={:.3} \
         second_p50_ms={:.3} second_p99_ms={:.3}",
        targets.len(),
        pct(&mut first, 0.5),
        pct(&mut first, 0.99),
        pct(&mut second, 0.5),
        pct(&mut second, 0.99),
    );
    Ok(())
}
