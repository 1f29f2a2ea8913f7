//! Three peerbox nodes sharing one real `redis-server` (Debian's): members of one room on
//! different nodes signal each other, capacity is exact under logins arriving on every node at
//! once, and Redis going away (and coming back empty) stops only new placements; links pin
//! the home's certificate; and, with each node its own `peerbox` process, a home killed
//! (SIGKILL) mid-call and a rolling restart of every node drop no member: they resume; and a
//! room given a second home while its node was cut from Redis (or Redis restarted empty without
//! it) is handed over to that home; in an SFU room, str0m clients on two nodes exchange media
//! through the home's SFU, which a member relayed from the other node reaches directly.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::sfu_client::{self, Browser, pump_within};
use common::signal::{error_type, id, login};
use common::{TestServer, Ws, recv_json, send_json, spawn_node};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const SECRET: &str = "cluster-secret-cluster-secret-cluster-secret";
/// `cluster.redis_timeout_ms` of the test nodes: a login that needs Redis fails within it.
const REDIS_TIMEOUT_MS: u64 = 300;

/// A `redis-server` on a free loopback port, without persistence (a restart is empty).
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    async fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis::on(port).await
    }

    async fn on(port: u16) -> Redis {
        Redis::on_ip("127.0.0.1", port).await
    }

    async fn on_ip(ip: &str, port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--bind", ip, "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            // Nodes on other addresses than loopback: Redis refuses them in protected mode
            // unless it has a password (the README says to set one).
            .args(["--protected-mode", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server (Debian package redis-server) runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect((ip, port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Redis { port, child }
    }

    async fn kill(mut self) -> u16 {
        self.child.kill().await.unwrap();
        self.port
    }
}

async fn node(redis: &Redis, id: &str) -> TestServer {
    spawn_node(&node_config("127.0.0.1", redis.port, id)).await
}

fn node_config(redis_ip: &str, redis_port: u16, id: &str) -> String {
    format!(
        "[rooms]\ncredential_burst = 500\n\
         [turn]\nsecret = \"turn-secret-turn-secret-turn-secret\"\n\
         [cluster]\nenabled = true\nnode_id = \"{id}\"\nredis = \"redis://{redis_ip}:{}/0\"\n\
         secret = \"{SECRET}\"\nnode_ttl_secs = 3\nredis_timeout_ms = {REDIS_TIMEOUT_MS}",
        redis_port
    )
}

/// Three nodes, once each can place rooms (the directory's first grace period is over).
async fn cluster(redis: &Redis) -> [TestServer; 3] {
    let nodes = [
        node(redis, "n1").await,
        node(redis, "n2").await,
        node(redis, "n3").await,
    ];
    for (i, n) in nodes.iter().enumerate() {
        wait_placing(n, &format!("warm-up-{i}")).await;
    }
    nodes
}

/// Something clients connect to: an in-process node or a node process.
trait Node {
    async fn ws(&self) -> Ws;
}

impl Node for TestServer {
    async fn ws(&self) -> Ws {
        TestServer::ws(self).await
    }
}

impl Node for Proc {
    async fn ws(&self) -> Ws {
        Proc::ws(self).await
    }
}

/// Logs in to `room` on `node` until it is placed (at most 10 s), then leaves it.
async fn wait_placing(node: &impl Node, room: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ws = node.ws().await;
    loop {
        let v = try_login(&mut ws, room, "warm").await;
        if v["type"] == "joined" {
            send_json(&mut ws, json!({"type": "logout"})).await;
            return;
        }
        assert_eq!(error_type(&v), "unavailable", "{v}");
        assert!(Instant::now() < deadline, "{room} never placed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn try_login(ws: &mut Ws, room: &str, name: &str) -> Value {
    send_json(
        ws,
        json!({"type": "login", "from": "", "to": "",
               "data": {"roomrequest": room, "username": name}}),
    )
    .await;
    recv_json(ws).await
}

/// The next message of `kind`, skipping others (up to 5 s).
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    common::signal::next_of(ws, kind, Duration::from_secs(5)).await
}

async fn random_check(ws: &mut Ws, room: &str) -> Value {
    send_json(
        ws,
        json!({"type": "randomCheck", "from": "", "to": "", "data": room}),
    )
    .await;
    next_of(ws, "randomCheckResult").await
}

/// Ann on `first` and Bob on `second`, in `room`: their sockets and session ids.
async fn pair(first: &TestServer, second: &TestServer, room: &str) -> (Ws, String, Ws, String) {
    let mut a = first.ws().await;
    let a_id = id(&login(&mut a, room, "ann").await);
    let mut b = second.ws().await;
    let b_id = id(&login(&mut b, room, "bob").await);
    (a, a_id, b, b_id)
}

/// `a` and `b`, on different nodes, exchange an offer, an answer and a candidate.
async fn exchange(a: &mut Ws, a_id: &str, b: &mut Ws, b_id: &str, tag: &str) {
    for (kind, from, to) in [("offer", 0, 1), ("answer", 1, 0), ("candidate", 0, 1)] {
        let ids = [a_id, b_id];
        let body = json!({"type": kind, "to": ids[to], "data": {"sdp": tag}});
        let (sender, receiver) = if from == 0 {
            (&mut *a, &mut *b)
        } else {
            (&mut *b, &mut *a)
        };
        send_json(sender, body).await;
        let got = next_of(receiver, kind).await;
        assert_eq!(got["from"], ids[from], "{got}");
        assert_eq!(got["data"]["sdp"], tag, "{got}");
    }
}

#[tokio::test]
async fn members_on_different_nodes_signal_each_other() {
    let redis = Redis::start().await;
    let [n1, n2, n3] = cluster(&redis).await;

    let mut a = n1.ws().await;
    let a_id = id(&login(&mut a, "across", "ann").await);
    let mut b = n2.ws().await;
    let joined = login(&mut b, "across", "bob").await;
    let b_id = id(&joined);
    // Bob's node relays him to the room's home: he sees Ann, and she hears of him.
    assert_eq!(joined["members"][0]["sessionId"], a_id.as_str(), "{joined}");
    let heard = next_of(&mut a, "login").await;
    assert_eq!(heard["from"], b_id.as_str(), "{heard}");
    exchange(&mut a, &a_id, &mut b, &b_id, "ab").await;

    let mut c = n3.ws().await;
    let c_id = id(&login(&mut c, "across", "cat").await);
    exchange(&mut b, &b_id, &mut c, &c_id, "bc").await;

    // randomCheck answers for the whole cluster, from any node.
    let mut probe = n3.ws().await;
    // The seed's answer: "fail" when the room exists (its name is taken).
    let taken = random_check(&mut probe, "across").await;
    assert_eq!(taken["data"]["result"], "fail", "{taken}");
    let free = random_check(&mut probe, "nowhere").await;
    assert_eq!(free["data"]["result"], "ok", "{free}");

    // The relay path takes only what another node signed with the cluster's secret.
    let client = "198.51.100.7:5000".parse().unwrap();
    let forged = peerbox::cluster::link::authorization(
        "not-the-cluster-secret-not-the-cluster-secret",
        "n2",
        client,
        None,
        peerbox::cluster::link::unix_now(),
    );
    for header in [None, Some(forged)] {
        assert_eq!(relay_status(&n1, header).await, 403);
    }

    // Bob leaves: the others hear it from the home node.
    drop(b);
    let gone = next_of(&mut a, "logout").await;
    assert_eq!(gone["from"], b_id.as_str(), "{gone}");
}

/// One sample of `node`'s `/metrics` (0 when absent).
async fn sample(node: &TestServer, name: &str) -> f64 {
    let (_, s) = common::metrics::scrape(node).await;
    s.get(name).copied().unwrap_or(0.0)
}

/// Scrapes `node` until `name` reads `want` (up to 10 s: gauges set at a refresh).
async fn wait_sample(node: &TestServer, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = sample(node, name).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{name} = {got}, not {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn cluster_metrics_follow_redis_links_and_frames() {
    let redis = Redis::start().await;
    let [n1, n2, n3] = cluster(&redis).await;
    for n in [&n1, &n2, &n3] {
        wait_sample(n, "peerbox_cluster_nodes_alive", 3.0).await;
        assert_eq!(sample(n, "peerbox_cluster_redis_up").await, 1.0);
    }
    let (mut a, a_id, mut b, b_id) = pair(&n1, &n2, "counted").await;
    // The room is homed on n1; Bob's node holds one open link to it.
    wait_sample(&n1, "peerbox_cluster_rooms_homed", 1.0).await;
    assert_eq!(sample(&n2, "peerbox_cluster_rooms_homed").await, 0.0);
    let open = "peerbox_cluster_relay_links{state=\"open\"}";
    assert_eq!(sample(&n2, open).await, 1.0);
    assert_eq!(sample(&n1, open).await, 0.0);

    // An offer to Bob, his answer, a candidate to him: one frame to the home, two back.
    let (text, before) = common::metrics::scrape(&n2).await;
    common::metrics::promtool_accepts(&text);
    exchange(&mut a, &a_id, &mut b, &b_id, "counted").await;
    let (_, after) = common::metrics::scrape(&n2).await;
    let moved = |name: &str| after[name] - before[name];
    assert_eq!(
        (
            moved("peerbox_cluster_relay_frames_total{direction=\"to_home\"}"),
            moved("peerbox_cluster_relay_frames_total{direction=\"from_home\"}"),
        ),
        (1.0, 2.0)
    );
    assert!(after["peerbox_cluster_redis_call_duration_seconds_count"] > 0.0);

    // Bob leaves: his link goes.
    drop(b);
    wait_sample(&n2, open, 0.0).await;

    // Redis gone: the next refresh fails, and says so.
    let errors = |s: &common::metrics::Samples| {
        s["peerbox_cluster_redis_errors_total{kind=\"timeout\"}"]
            + s["peerbox_cluster_redis_errors_total{kind=\"error\"}"]
    };
    let (_, before) = common::metrics::scrape(&n3).await;
    redis.kill().await;
    wait_sample(&n3, "peerbox_cluster_redis_up", 0.0).await;
    let (text, after) = common::metrics::scrape(&n3).await;
    assert!(errors(&after) > errors(&before), "{text}");
    common::metrics::promtool_accepts(&text);
}

/// The HTTP status a WebSocket upgrade on the node relay path gets.
async fn relay_status(node: &TestServer, header: Option<String>) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let tls = node.tls_stream().await;
    let url = format!("wss://localhost:{}/_peerbox/node", node.https.port());
    let mut req = url.into_client_request().unwrap();
    if let Some(h) = header {
        req.headers_mut()
            .insert(peerbox::cluster::link::HEADER, h.parse().unwrap());
    }
    match tokio_tungstenite::client_async(req, tls).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        other => panic!("relay upgrade was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn capacity_is_exact_with_logins_on_every_node() {
    let redis = Redis::start().await;
    let nodes = cluster(&redis).await;
    let mut sockets = Vec::new();
    for i in 0..11 {
        sockets.push(nodes[i % 3].ws().await);
    }
    let logins = sockets.iter_mut().enumerate().map(|(i, ws)| async move {
        let v = try_login(ws, "crowded", &format!("p{i}")).await;
        match v["type"].as_str() {
            Some("joined") => "joined".to_string(),
            _ => error_type(&v).to_string(),
        }
    });
    let outcomes = futures_util::future::join_all(logins).await;
    let joined = outcomes.iter().filter(|o| *o == "joined").count();
    let full = outcomes.iter().filter(|o| *o == "full").count();
    assert_eq!((joined, full), (10, 1), "{outcomes:?}");
}

#[tokio::test]
async fn redis_down_stops_only_new_rooms_and_an_empty_restart_is_reconciled() {
    let redis = Redis::start().await;
    let [n1, n2, n3] = cluster(&redis).await;
    let (mut a, a_id, mut b, b_id) = pair(&n1, &n2, "steady").await;

    let port = redis.kill().await;
    // A login to a room homed elsewhere that the node looked up lately (n2, for Bob, within
    // the cache's TTL: cluster.node_ttl_secs) needs no Redis.
    let mut e = n2.ws().await;
    let eve = login(&mut e, "steady", "eve").await;
    exchange(&mut a, &a_id, &mut e, &id(&eve), "cached").await;
    // A node that never looked the room up cannot know its home.
    let mut f = n3.ws().await;
    let v = try_login(&mut f, "steady", "fay").await;
    assert_eq!(error_type(&v), "unavailable", "{v}");
    // The room in progress keeps relaying between its nodes.
    exchange(&mut a, &a_id, &mut b, &b_id, "no-redis").await;
    // A login that needs a new placement is refused, within the Redis timeout and a margin.
    let mut c = n3.ws().await;
    let started = Instant::now();
    let v = try_login(&mut c, "brand-new", "cat").await;
    assert_eq!(error_type(&v), "unavailable", "{v}");
    assert!(
        started.elapsed() < Duration::from_millis(REDIS_TIMEOUT_MS * 4 + 500),
        "took {:?}",
        started.elapsed()
    );
    // A login to a room the node holds needs no Redis.
    let mut d = n1.ws().await;
    login(&mut d, "steady", "dan").await;

    // Redis comes back empty: the nodes re-publish their rooms, then place new ones.
    let _redis = Redis::on(port).await;
    wait_placing(&n3, "brand-new").await;
    // "steady" is still homed on n1 (re-published, not placed anew on n3).
    let joined = login(&mut c, "steady", "cat").await;
    let members = joined["members"].as_array().unwrap();
    assert_eq!(members.len(), 4, "{joined}");
    exchange(&mut a, &a_id, &mut c, &id(&joined), "after").await;
}

#[tokio::test]
async fn redis_hung_refuses_new_rooms_within_the_bound() {
    let redis = Redis::start().await;
    let [n1, n2, n3] = cluster(&redis).await;
    let (mut a, a_id, mut b, b_id) = pair(&n1, &n2, "paused").await;

    // Redis answers nobody for 3 s (its port stays open: a hang, not a crash).
    let paused = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "CLIENT",
            "PAUSE",
            "3000",
            "ALL",
        ])
        .output()
        .await
        .expect("redis-cli runs");
    assert!(paused.status.success(), "{paused:?}");
    let mut c = n3.ws().await;
    let started = Instant::now();
    let v = try_login(&mut c, "during-pause", "cat").await;
    assert_eq!(error_type(&v), "unavailable", "{v}");
    assert!(
        started.elapsed() < Duration::from_millis(REDIS_TIMEOUT_MS * 4 + 500),
        "took {:?}",
        started.elapsed()
    );
    exchange(&mut a, &a_id, &mut b, &b_id, "paused").await;
    // After the pause, placements work again.
    wait_placing(&n3, "during-pause").await;
}

#[tokio::test]
async fn a_member_of_a_stopped_home_resumes_through_another_node() {
    let redis = Redis::start().await;
    let [n1, n2, n3] = cluster(&redis).await;
    let mut a = n1.ws().await;
    login(&mut a, "moving", "ann").await;
    let mut b = n2.ws().await;
    let joined = login(&mut b, "moving", "bob").await;
    let (b_id, token) = (id(&joined), joined["resumeToken"].clone());

    // The home stops: Bob's node passes its 1001 on.
    n1.stop(Duration::from_secs(10)).await;
    let (code, _) = common::signal::close_frame(&mut b).await;
    assert_eq!(code, 1001);

    // Bob reconnects through another node and resumes his session id there; the room gets a
    // new home (at the latest once n1's liveness key has expired).
    let deadline = Instant::now() + Duration::from_secs(10);
    let resumed = loop {
        let mut ws = n3.ws().await;
        send_json(
            &mut ws,
            json!({"type": "login", "from": "", "to": "",
                   "data": {"roomrequest": "moving", "username": "bob",
                            "resume": {"sessionId": b_id, "token": token}}}),
        )
        .await;
        let v = recv_json(&mut ws).await;
        if v["type"] == "joined" {
            break v;
        }
        assert!(Instant::now() < deadline, "never rejoined: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(id(&resumed), b_id, "{resumed}");
    assert_eq!(resumed["resumed"], true, "{resumed}");
    drop(n2);
}

async fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .await
        .expect("redis-cli runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The pin of the certificate `node` serves now.
fn pin(node: &TestServer) -> peerbox::cluster::link::Pin {
    peerbox::cluster::link::pin_of(&node.handle.certs.leaf().unwrap())
}

/// A node record that verifies (it is signed with the cluster's secret) but names `address`
/// with the pin `pin`: what Redis or the network would have to fake to intercept a link.
async fn fake_home(
    redis: &Redis,
    node: &str,
    room: &str,
    address: std::net::SocketAddr,
    pin: &[u8; 32],
) {
    let record = peerbox::cluster::link::record(SECRET, node, address, pin);
    redis_cli(
        redis,
        &[
            "SET",
            &format!("peerbox:node:{node}"),
            &record,
            "PX",
            "30000",
        ],
    )
    .await;
    redis_cli(redis, &["SET", &format!("peerbox:room:{room}"), node]).await;
}

#[tokio::test]
async fn a_link_refuses_a_home_presenting_another_certificate() {
    let redis = Redis::start().await;
    let [n1, n2, n3] = cluster(&redis).await;
    // "ghost" claims n3's address with n1's certificate: n3 answers there with its own.
    fake_home(&redis, "ghost", "trap", n3.https, &pin(&n1)).await;
    let mut a = n2.ws().await;
    send_json(
        &mut a,
        json!({"type": "login", "from": "", "to": "",
               "data": {"roomrequest": "trap", "username": "ann"}}),
    )
    .await;
    // The handshake fails: the member hears that its home is gone (and would resume).
    let (code, _) = common::signal::close_frame(&mut a).await;
    assert_eq!(code, 1001);

    // The control: the same record with n3's own pin gets through to n3, whose session
    // answers (it refuses to relay further, the room being homed on "ghost").
    fake_home(&redis, "ghost2", "trap2", n3.https, &pin(&n3)).await;
    let mut b = n2.ws().await;
    let v = try_login(&mut b, "trap2", "bob").await;
    assert_eq!(error_type(&v), "unavailable", "{v}");
}

#[tokio::test]
async fn a_certificate_reload_keeps_links_working() {
    let redis = Redis::start().await;
    let [n1, n2, n3] = cluster(&redis).await;
    let (mut a, a_id, mut b, b_id) = pair(&n1, &n2, "renewed").await;

    let before = pin(&n1);
    common::write_dated_cert(&n1.ssl_dir(), -1, 30);
    let deadline = Instant::now() + Duration::from_secs(5);
    while pin(&n1) == before {
        assert!(Instant::now() < deadline, "certificate not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The open link keeps its connection; a new one pins the new certificate, which the
    // node publishes within half a second of the reload.
    exchange(&mut a, &a_id, &mut b, &b_id, "old-link").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut c = n3.ws().await;
    let v = login(&mut c, "renewed", "cat").await;
    exchange(&mut a, &a_id, &mut c, &id(&v), "new-link").await;
}

/// A TCP proxy in front of a node's HTTPS port, for the links to it (clients connect
/// directly): [`Cutter::cut`] breaks every connection it carries, as a network failure would.
struct Cutter {
    address: std::net::SocketAddr,
    target: std::sync::Arc<std::sync::OnceLock<std::net::SocketAddr>>,
    cut: std::sync::Arc<tokio::sync::Notify>,
    carried: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Cutter {
    async fn start() -> Cutter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cutter = Cutter {
            address: listener.local_addr().unwrap(),
            target: Default::default(),
            cut: Default::default(),
            carried: Default::default(),
        };
        let (target, cut, carried) = (
            cutter.target.clone(),
            cutter.cut.clone(),
            cutter.carried.clone(),
        );
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (target, cut) = (*target.get().unwrap(), cut.clone());
                carried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.notified() => {}
                    }
                    // Dropped: both connections end, neither with a WebSocket close.
                });
            }
        });
        cutter
    }

    fn cut(&self) {
        self.cut.notify_waiters();
    }
}

#[tokio::test]
async fn a_broken_link_reconnects_and_the_member_stays() {
    let redis = Redis::start().await;
    let cutter = Cutter::start().await;
    let n1 =
        common::spawn_node_advertising(&node_config("127.0.0.1", redis.port, "n1"), cutter.address)
            .await;
    cutter.target.set(n1.https).unwrap();
    let n2 = node(&redis, "n2").await;
    wait_placing(&n1, "warm-up-1").await;
    wait_placing(&n2, "warm-up-2").await;
    let (mut a, a_id, mut b, b_id) = pair(&n1, &n2, "cut").await;
    exchange(&mut a, &a_id, &mut b, &b_id, "before").await;
    let links = cutter.carried.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(links, 1, "Bob's link goes through the proxy");

    cutter.cut();
    // Bob's node makes the link again and resumes his session on the home: his socket stays
    // open and his id stays. The home saw his old link end, so Ann hears him leave and come
    // back (the web client keeps its peer connection to an id it knows). Frames in flight
    // when the link broke may be lost (nothing acknowledges them); once it is back, messages
    // flow both ways.
    let gone = next_of(&mut a, "logout").await;
    assert_eq!(gone["from"], b_id.as_str(), "{gone}");
    let back = next_of(&mut a, "login").await;
    assert_eq!(back["from"], b_id.as_str(), "{back}");
    let resumed = next_of(&mut b, "joined").await;
    assert_eq!(
        (id(&resumed), &resumed["resumed"]),
        (b_id.clone(), &json!(true))
    );
    exchange(&mut b, &b_id, &mut a, &a_id, "after").await;
    assert_eq!(cutter.carried.load(std::sync::atomic::Ordering::Relaxed), 2);
    exchange(&mut a, &a_id, &mut b, &b_id, "again").await;
}

/// A node as its own `peerbox` process (the real binary), on a fixed port so that it can be
/// restarted where the others and the clients look for it.
struct Proc {
    id: String,
    https: std::net::SocketAddr,
    dir: tempfile::TempDir,
    redis_port: u16,
    child: Option<Child>,
}

impl Proc {
    async fn start(redis: &Redis, id: &str) -> Proc {
        Proc::start_on(redis.port, id).await
    }

    /// A node whose Redis is at `redis_port` on loopback (Redis itself, or a [`Gate`]).
    async fn start_on(redis_port: u16, id: &str) -> Proc {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut p = Proc {
            id: id.to_owned(),
            https: ([127, 0, 0, 1], port).into(),
            dir: tempfile::tempdir().unwrap(),
            redis_port,
            child: None,
        };
        p.spawn().await;
        p
    }

    /// Starts the process (again: same config, ssl dir and port) and waits until it serves.
    async fn spawn(&mut self) {
        let config = format!(
            "hostname = \"localhost\"\nshutdown_timeout_secs = 2\n\
             [https]\nlisten = [\"{https}\"]\n[http]\nlisten = [\"127.0.0.1:0\"]\n\
             [tls]\ndir = \"ssl\"\n[metrics]\nlisten = []\n{node}",
            https = self.https,
            node = node_config("127.0.0.1", self.redis_port, &self.id)
                .replace("[turn]\n", "[turn]\nlisten = []\n")
                .replace(
                    "[cluster]\n",
                    &format!("[cluster]\naddress = \"{}\"\n", self.https)
                ),
        );
        let path = self.dir.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_peerbox"))
            .arg("--config")
            .arg(&path)
            .env("PEERBOX_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("peerbox runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut child = child;
        while tokio::net::TcpStream::connect(self.https).await.is_err()
            || !self.dir.path().join("ssl/cert.pem").exists()
        {
            assert!(Instant::now() < deadline, "{} did not listen", self.id);
            assert!(child.try_wait().unwrap().is_none(), "{} exited", self.id);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child = Some(child);
    }

    async fn ws(&self) -> Ws {
        let tcp = tokio::net::TcpStream::connect(self.https).await.unwrap();
        let tls = common::tls_trusting(&self.dir.path().join("ssl/cert.pem"), &[b"http/1.1"])
            .connect(
                rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        let url = format!("wss://localhost:{}/ws", self.https.port());
        tokio_tungstenite::client_async(url, tls).await.unwrap().0
    }

    /// SIGKILL: no close frames, no goodbye to Redis.
    async fn kill(&mut self) {
        self.child.take().unwrap().kill().await.unwrap();
    }

    /// SIGTERM, as `systemctl restart` sends, then the same node again.
    async fn restart(&mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().unwrap().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().await;
        assert!(sent.unwrap().success());
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("stopped within 10 s")
            .unwrap();
        assert!(status.success(), "{status}");
        self.spawn().await;
    }
}

/// A member whose connection may end: what it needs to resume.
struct Member {
    name: &'static str,
    room: &'static str,
    ws: Ws,
    id: String,
    token: Value,
}

impl Member {
    async fn join(node: &Proc, room: &'static str, name: &'static str) -> Member {
        let mut ws = node.ws().await;
        let joined = login(&mut ws, room, name).await;
        Member::joined(ws, room, name, &joined)
    }

    /// The member whose login on `ws` got `joined`.
    fn joined(ws: Ws, room: &'static str, name: &'static str, joined: &Value) -> Member {
        Member {
            name,
            room,
            ws,
            id: id(joined),
            token: joined["resumeToken"].clone(),
        }
    }

    /// Resumes through `node` (retrying while the room has no home yet, up to 10 s).
    async fn resume(&mut self, node: &Proc) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut ws = node.ws().await;
            send_json(
                &mut ws,
                json!({"type": "login", "from": "", "to": "",
                       "data": {"roomrequest": self.room, "username": self.name,
                                "resume": {"sessionId": self.id, "token": self.token}}}),
            )
            .await;
            // Until the dead home's key expires the room still names it: the relay there
            // fails, and the member hears 1001 and tries again, as the web client does.
            let v = match next_text(&mut ws).await {
                Some(v) => v,
                None => json!({"closed": true}),
            };
            if v["type"] == "joined" {
                assert_eq!(id(&v), self.id, "{v}");
                assert_eq!(v["resumed"], true, "{v}");
                self.token = v["resumeToken"].clone();
                self.ws = ws;
                return v;
            }
            assert!(
                v["closed"] == true || error_type(&v) == "unavailable",
                "{v}"
            );
            assert!(
                Instant::now() < deadline,
                "{} never resumed: {v}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn exchange_members(a: &mut Member, b: &mut Member, tag: &str) {
    exchange(&mut a.ws, &a.id.clone(), &mut b.ws, &b.id.clone(), tag).await;
}

/// The other members `joined` lists.
fn others(joined: &Value) -> Vec<String> {
    let mut ids: Vec<String> = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sessionId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn procs(redis: &Redis) -> [Proc; 3] {
    let nodes = [
        Proc::start(redis, "p1").await,
        Proc::start(redis, "p2").await,
        Proc::start(redis, "p3").await,
    ];
    for (i, n) in nodes.iter().enumerate() {
        wait_placing(n, &format!("warm-up-{i}")).await;
    }
    nodes
}

#[tokio::test]
async fn a_home_killed_mid_call_its_members_resume_through_other_nodes() {
    let redis = Redis::start().await;
    let [mut p1, p2, p3] = procs(&redis).await;
    let mut ann = Member::join(&p1, "killed", "ann").await;
    let mut bob = Member::join(&p2, "killed", "bob").await;
    let mut cat = Member::join(&p3, "killed", "cat").await;
    exchange_members(&mut bob, &mut cat, "before").await;

    p1.kill().await;
    // The relayed members hear that their home is gone; Ann's socket just breaks.
    for m in [&mut bob, &mut cat] {
        assert_eq!(common::signal::close_frame(&mut m.ws).await.0, 1001);
    }
    // Everyone resumes (Ann through the node her load balancer gives her now): the room is
    // re-homed once p1's liveness key expires, and all three are in it with their ids.
    bob.resume(&p2).await;
    cat.resume(&p3).await;
    let last = ann.resume(&p2).await;
    let mut want = vec![bob.id.clone(), cat.id.clone()];
    want.sort();
    assert_eq!(others(&last), want, "{last}");
    exchange_members(&mut bob, &mut cat, "after-bc").await;
    exchange_members(&mut ann, &mut cat, "after-ac").await;
}

#[tokio::test]
async fn a_rolling_restart_of_every_node_drops_no_call() {
    let redis = Redis::start().await;
    let mut nodes = procs(&redis).await;
    let mut members = [
        Member::join(&nodes[0], "rolling", "ann").await,
        Member::join(&nodes[1], "rolling", "bob").await,
    ];
    // The node each one is connected to.
    let mut at = [0, 1];
    let [ann, bob] = &mut members;
    exchange_members(ann, bob, "start").await;
    // How many had to resume at each step: both (Ann's node and Bob's home), Bob (his
    // node; Ann's home is on the third node now), both again (Ann's node and Bob's home).
    let mut resumed = Vec::new();
    for restarting in 0..3 {
        let started = Instant::now();
        resumed.push(0);
        nodes[restarting].restart().await;
        // Whoever was on the node, or relayed to it, got 1001 and resumes: through another
        // node (one not holding the other member) if its own was the one restarted.
        for m in 0..2 {
            if !closed(&mut members[m].ws).await {
                continue;
            }
            if at[m] == restarting {
                at[m] = (0..3).find(|&n| n != restarting && n != at[1 - m]).unwrap();
            }
            members[m].resume(&nodes[at[m]]).await;
            resumed[restarting] += 1;
        }
        let [ann, bob] = &mut members;
        exchange_members(ann, bob, &format!("after-{restarting}")).await;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
}

/// A TCP proxy in front of Redis for one node: [`Gate::close`] partitions that node from
/// Redis (its connections break, new ones are dropped at once) while its clients and the
/// other nodes still reach it; [`Gate::open`] ends the partition.
struct Gate {
    port: u16,
    closed: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl Gate {
    async fn start(redis_port: u16) -> Gate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let closed = std::sync::Arc::new(tokio::sync::watch::channel(false).0);
        let state = closed.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut shut = state.subscribe();
                if *shut.borrow_and_update() {
                    continue;
                }
                tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(("127.0.0.1", redis_port))
                        .await
                        .unwrap();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = shut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Gate { port, closed }
    }

    fn close(&self) {
        self.closed.send_replace(true);
    }

    fn open(&self) {
        self.closed.send_replace(false);
    }
}

/// Redis, a [`Gate`] in front of it, and `N` node processes placing rooms: p1 reaches Redis
/// through the gate, p2 and on directly.
async fn gated<const N: usize>() -> (Redis, Gate, [Proc; N]) {
    let redis = Redis::start().await;
    let gate = Gate::start(redis.port).await;
    let mut nodes = vec![Proc::start_on(gate.port, "p1").await];
    for i in 2..=N {
        nodes.push(Proc::start(&redis, &format!("p{i}")).await);
    }
    for (i, n) in nodes.iter().enumerate() {
        wait_placing(n, &format!("warm-up-{i}")).await;
    }
    let Ok(nodes) = nodes.try_into() else {
        unreachable!("N nodes were started")
    };
    (redis, gate, nodes)
}

#[tokio::test]
async fn a_split_home_hands_its_members_over_to_the_real_home() {
    let (redis, gate, [p1, p2, p3]) = gated().await;
    let mut ann = Member::join(&p1, "split", "ann").await;
    let mut cat = Member::join(&p3, "split", "cat").await;
    exchange_members(&mut ann, &mut cat, "before").await;

    // p1 loses Redis, not its clients, for longer than its liveness key lives.
    gate.close();
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis_cli(&redis, &["EXISTS", "peerbox:node:p1"]).await != "0" {
        assert!(Instant::now() < deadline, "p1's key never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // To the directory p1 is dead: a login on p2 places the room there, a second home.
    let mut bob_ws = p2.ws().await;
    let joined = login(&mut bob_ws, "split", "bob").await;
    assert_eq!(others(&joined), Vec::<String>::new(), "{joined}");
    let mut bob = Member::joined(bob_ws, "split", "bob", &joined);
    assert_eq!(
        redis_cli(&redis, &["GET", "peerbox:room:split"]).await,
        "p2"
    );
    // p1's copy still acts, needing no Redis: this is the split to end.
    exchange_members(&mut ann, &mut cat, "split").await;

    // The partition ends: p1 re-publishes, finds the room homed on p2 (alive), and hands its
    // members over: Ann (on p1) and Cat (relayed to p1 by p3) hear 1001.
    gate.open();
    for m in [&mut ann, &mut cat] {
        let (code, reason) = common::signal::close_frame(&mut m.ws).await;
        assert_eq!(
            (code, reason.as_str()),
            (1001, "room moved to another node")
        );
    }
    // They resume their sessions on the real home: Ann through p1 itself, Cat through p3.
    ann.resume(&p1).await;
    let last = cat.resume(&p3).await;
    let mut want = vec![ann.id.clone(), bob.id.clone()];
    want.sort();
    assert_eq!(others(&last), want, "{last}");
    exchange_members(&mut ann, &mut bob, "after-ab").await;
    exchange_members(&mut cat, &mut bob, "after-cb").await;
    // p2 stayed the home: p1 never took the room back.
    assert_eq!(
        redis_cli(&redis, &["GET", "peerbox:room:split"]).await,
        "p2"
    );
}

#[tokio::test]
async fn a_node_late_after_an_empty_redis_restart_hands_over_what_was_placed_meanwhile() {
    let (redis, gate, [p1, p2]) = gated().await;
    let mut ann = Member::join(&p1, "restarted", "ann").await;

    // Redis restarts empty while p1 cannot reach it: p2 re-registers, and once the directory's
    // grace is over a login on p2 places the room there, p1 not having re-published it.
    gate.close();
    let port = redis.kill().await;
    let redis = Redis::on(port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut bob_ws = p2.ws().await;
    let joined = loop {
        let v = try_login(&mut bob_ws, "restarted", "bob").await;
        if v["type"] == "joined" {
            break v;
        }
        assert_eq!(error_type(&v), "unavailable", "{v}");
        assert!(Instant::now() < deadline, "never placed on p2");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(others(&joined), Vec::<String>::new(), "{joined}");
    assert_eq!(
        redis_cli(&redis, &["GET", "peerbox:room:restarted"]).await,
        "p2"
    );

    // p1 reaches Redis again, finds its key gone, re-publishes: the room is p2's, so Ann is
    // handed over and resumes there, with Bob.
    gate.open();
    let (code, reason) = common::signal::close_frame(&mut ann.ws).await;
    assert_eq!(
        (code, reason.as_str()),
        (1001, "room moved to another node")
    );
    let back = ann.resume(&p1).await;
    assert_eq!(others(&back), vec![id(&joined)], "{back}");
    let mut bob = Member::joined(bob_ws, "restarted", "bob", &joined);
    exchange_members(&mut ann, &mut bob, "after-restart").await;
    assert_eq!(
        redis_cli(&redis, &["GET", "peerbox:room:restarted"]).await,
        "p2"
    );
}

/// The next text message as JSON, or `None` when the connection closes first (up to 5 s).
async fn next_text(ws: &mut Ws) -> Option<Value> {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => return None,
            Ok(Some(Ok(_))) => continue,
            Err(_) => panic!("no message within 5 s"),
        }
    }
}

/// Whether `ws` was closed (a close frame or a broken connection), looking for 300 ms and
/// skipping other messages (the room's logins and logouts).
async fn closed(ws: &mut Ws) -> bool {
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Set in the re-run inside the network namespace.
const INSIDE: &str = "PEERBOX_TEST_CLUSTER_NETNS";
/// The namespace's addresses (TEST-NET-2): Redis, then one per node, one per client.
const NET: &str = "198.51.100";

/// The same call across nodes, each node and client on an address of its own (not loopback)
/// in a network namespace made for the test, Redis on another.
#[tokio::test]
async fn nodes_on_their_own_addresses_relay_a_room() {
    if std::env::var_os(INSIDE).is_some() {
        return inside().await;
    }
    in_netns("nodes_on_their_own_addresses_relay_a_room").await;
}

/// Runs the test `name` again in a network namespace of its own (with [`INSIDE`] set).
async fn in_netns(name: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let run = Command::new("unshare")
        .args(["-n", "--"])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the namespace run ends within 60 s")
        .expect("run unshare (util-linux; needs root)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inside the namespace: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip(cmd: &str) {
    let ok = std::process::Command::new("ip")
        .args(cmd.split_whitespace())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {cmd}");
}

/// Inside the namespace: lo up with the addresses of [`NET`] 1 to 9.
fn addresses() {
    ip("link set lo up");
    // Local addresses travel through lo whatever device holds them; what matters is that
    // no socket is on 127.0.0.0/8 (and nothing may assume it is).
    for i in 1..=9 {
        ip(&format!("addr add {NET}.{i}/32 dev lo"));
    }
}

async fn inside() {
    addresses();
    let redis = Redis::on_ip(&format!("{NET}.9"), 6379).await;
    let config = |id: &str| node_config(&format!("{NET}.9"), redis.port, id);
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let n = common::spawn_node_at(&config(&format!("n{i}")), &format!("{NET}.{i}:443")).await;
        assert_eq!(
            n.config.cluster.as_ref().unwrap().address.to_string(),
            format!("{NET}.{i}:443")
        );
        wait_placing(&n, &format!("warm-up-{i}")).await;
        nodes.push(n);
    }
    let client = |i: u8| -> std::net::IpAddr { format!("{NET}.{}", 4 + i).parse().unwrap() };
    let mut a = common::signal::ws_from(&nodes[0], client(0)).await;
    let a_id = id(&login(&mut a, "spread", "ann").await);
    let mut b = common::signal::ws_from(&nodes[1], client(1)).await;
    let b_id = id(&login(&mut b, "spread", "bob").await);
    let mut c = common::signal::ws_from(&nodes[2], client(2)).await;
    let c_id = id(&login(&mut c, "spread", "cat").await);
    exchange(&mut a, &a_id, &mut b, &b_id, "ns-ab").await;
    exchange(&mut b, &b_id, &mut c, &c_id, "ns-bc").await;
    exchange(&mut c, &c_id, &mut a, &a_id, "ns-ca").await;
}

/// Pumps both until each received 10 frames of the other's video.
async fn both_receive(a: &mut Browser, b: &mut Browser, what: &str) {
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    pump_within(&mut [&mut *a, &mut *b], 15, what, |all| {
        all[0].video_from(&b_id).len() >= 10 && all[1].video_from(&a_id).len() >= 10
    })
    .await;
    for p in [a, b] {
        assert!(p.saw("error").is_empty(), "{:?}", p.saw("error"));
    }
}

/// Ann on `home` and Bob on `edge` in the SFU room `room`: both join the SFU and publish,
/// until each received the other's video.
async fn sfu_call(home: &TestServer, edge: &TestServer, room: &str) -> (Browser, Browser) {
    let mut a = sfu_client::login(home, room, "ann", true).await;
    let mut b = sfu_client::login(edge, room, "bob", true).await;
    for p in [&mut a, &mut b] {
        p.send(json!({"type": "sfu-join"})).await;
        p.publishing = true;
    }
    both_receive(&mut a, &mut b, "each receives the other's video").await;
    (a, b)
}

/// An SFU room across nodes: the home's SFU serves the member relayed from another node, its
/// offer carries the home's media address, media flows both ways through it, and the relayed
/// member's SFU connection ends when the member leaves.
#[tokio::test]
async fn an_sfu_room_serves_members_of_every_node_from_its_home() {
    let redis = Redis::start().await;
    let config = |id: &str| {
        node_config("127.0.0.1", redis.port, id).replace("[rooms]\n", "[rooms]\nsfu_from = 1\n")
            + "\n[sfu]\nenabled = true"
    };
    // The home behind a proxy that can break the edge's link to it.
    let cutter = Cutter::start().await;
    let home = common::spawn_node_advertising(&config("n1"), cutter.address).await;
    cutter.target.set(home.https).unwrap();
    let edge = spawn_node(&config("n2")).await;
    wait_placing(&home, "warm-up-1").await;
    wait_placing(&edge, "warm-up-2").await;

    let (mut a, mut b) = sfu_call(&home, &edge, "big").await;
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    // Bob's offer came from the home's SFU, over the relay: its address, not his node's.
    assert!(!b.offered.is_empty());
    assert!(
        b.offered.iter().all(|c| *c == home.sfu),
        "{:?} vs {}",
        b.offered,
        home.sfu
    );
    // Every frame each got is one the other sent, byte for byte.
    for (got, from, by) in [(&a, &b_id, &b), (&b, &a_id, &a)] {
        for f in got.video_from(from) {
            assert!(by.sent.iter().any(|s| s == f), "a frame never sent");
        }
    }
    assert_eq!(sample(&home, "peerbox_sfu_participants").await, 2.0);
    assert_eq!(sample(&edge, "peerbox_sfu_participants").await, 0.0);

    // The link breaks: the home's session for Bob ends, and with it his SFU connection.
    // The edge makes the link again and resumes him (`joined`, resumed); he joins the SFU
    // again, and media flows both ways as before.
    cutter.cut();
    wait_sample(&home, "peerbox_sfu_participants", 1.0).await;
    pump_within(&mut [&mut a, &mut b], 15, "Bob resumed", |all| {
        all[1]
            .messages
            .iter()
            .any(|m| m["type"] == "joined" && m["resumed"] == true)
    })
    .await;
    assert_eq!(cutter.carried.load(std::sync::atomic::Ordering::Relaxed), 2);
    b.rejoin().await;
    a.received.clear();
    both_receive(&mut a, &mut b, "media again after the link broke").await;
    assert!(b.offered.iter().all(|c| *c == home.sfu), "{:?}", b.offered);
    assert_eq!(sample(&home, "peerbox_sfu_participants").await, 2.0);
    assert_eq!(sample(&edge, "peerbox_sfu_participants").await, 0.0);

    // Bob leaves (his socket on the edge closes): the home's SFU lets his connection go.
    drop(b);
    wait_sample(&home, "peerbox_sfu_participants", 1.0).await;
}

/// The SFU of each node on a wildcard `sfu.listen`, told its address by
/// `cluster.media_address` alone, each node on an address of its own: the member relayed from
/// the other node is offered the home's media address, and media flows through it.
#[tokio::test]
async fn an_sfu_room_offers_the_homes_cluster_media_address() {
    if std::env::var_os(INSIDE).is_some() {
        return sfu_inside().await;
    }
    in_netns("an_sfu_room_offers_the_homes_cluster_media_address").await;
}

async fn sfu_inside() {
    addresses();
    let redis = Redis::on_ip(&format!("{NET}.9"), 6379).await;
    let mut nodes = Vec::new();
    for i in 1..=2 {
        let config = node_config(&format!("{NET}.9"), redis.port, &format!("n{i}"))
            .replace("[rooms]\n", "[rooms]\nsfu_from = 1\n")
            + &format!(
                "\nmedia_address = \"{NET}.{i}\"\n[sfu]\nenabled = true\nlisten = \"0.0.0.0:3479\""
            );
        let n = common::spawn_node_at(&config, &format!("{NET}.{i}:443")).await;
        let media: std::net::IpAddr = format!("{NET}.{i}").parse().unwrap();
        assert_eq!(n.config.sfu.public_ip, Some(media));
        wait_placing(&n, &format!("warm-up-{i}")).await;
        nodes.push(n);
    }
    let (home, edge) = (&nodes[0], &nodes[1]);
    let (_a, b) = sfu_call(home, edge, "wide").await;
    // The home's socket is on its own address (the HTTPS listener's); the offer names it
    // through cluster.media_address, the listen address being a wildcard.
    let want = std::net::SocketAddr::new(format!("{NET}.1").parse().unwrap(), home.sfu.port());
    assert_eq!(home.sfu, want);
    assert!(!b.offered.is_empty());
    assert!(b.offered.iter().all(|c| *c == want), "{:?}", b.offered);
    assert_eq!(sample(edge, "peerbox_sfu_participants").await, 0.0);
}

/// A frame at the size limit, relayed by the home to a member on another node, arrives there
/// whole though the home adds `from` to it: the link takes whatever the home sends (also an
/// SFU offer, which grows with the room).
#[tokio::test]
async fn a_frame_at_the_size_limit_crosses_the_link() {
    let redis = Redis::start().await;
    let n1 = node(&redis, "n1").await;
    let n2 = node(&redis, "n2").await;
    wait_placing(&n1, "warm-up-1").await;
    wait_placing(&n2, "warm-up-2").await;
    let (mut a, a_id, mut b, b_id) = pair(&n1, &n2, "full-size").await;
    let max = n1.config.rooms.max_message_bytes;
    let shell = json!({"type": "offer", "to": b_id, "data": {"sdp": ""}}).to_string();
    let sdp = "x".repeat(max - shell.len());
    let body = json!({"type": "offer", "to": b_id, "data": {"sdp": sdp}});
    assert_eq!(body.to_string().len(), max);
    send_json(&mut a, body).await;
    let got = next_of(&mut b, "offer").await;
    assert_eq!(got["from"], a_id.as_str());
    assert_eq!(got["data"]["sdp"].as_str().map(str::len), Some(sdp.len()));
    // The link did not break over it: the next message arrives with no resume between.
    exchange(&mut a, &a_id, &mut b, &b_id, "after").await;
    assert_eq!(
        sample(&n2, "peerbox_cluster_relay_reconnects_total").await,
        0.0
    );
}
