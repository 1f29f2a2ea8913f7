//! Several nodes behind one name (`[cluster]`, off by default): Redis is the room directory,
//! never the message path.
//!
//! - [`directory`]: the keys and the Lua scripts that place a room on one home node.
//! - [`link`]: the node-to-node relay: a member connected to another node than its room's
//!   home is served by the home's ordinary session code over an authenticated WSS connection.
//!
//! A room lives on one node (its home), whose [`crate::signal::Hub`] holds every member, so
//! joins, capacity, host powers and routing are the single-node code, exact under concurrent
//! logins arriving on different nodes. Redis is asked only when a login names a room this node
//! does not hold, and for `randomCheck`; every call is bounded by `cluster.redis_timeout_ms`,
//! and a failure answers that client `unavailable` without holding anyone else up. Rooms in
//! progress need no Redis: their relays are direct connections between nodes.

pub mod directory;
pub mod link;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

use crate::config::ClusterConfig;
use crate::limit::lock;
use crate::signal::Hub;
use crate::signal::protocol::SignalError;
use crate::signal::session::escaped;
use crate::tls::CertStore;

/// How soon a reloaded certificate's pin is published.
const CERT_CHECK: Duration = Duration::from_millis(500);

/// Where a room lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// On this node.
    Here,
    /// On another node, reached at this address, serving the certificate of this pin.
    Node {
        id: String,
        address: SocketAddr,
        pin: link::Pin,
    },
}

/// This node's membership in the cluster: its Redis connection and whether it has published
/// its rooms since the directory last lost them.
pub struct Cluster {
    pub config: ClusterConfig,
    redis: ConnectionManager,
    /// The certificate this node serves, whose pin its record publishes.
    certs: CertStore,
    /// The record this node last wrote (its liveness key's value, deleted on stop if still
    /// its own).
    record: Mutex<String>,
    /// False until this node's liveness key is in Redis and its rooms re-published.
    published: AtomicBool,
    /// Homes on other nodes this node looked up lately, for joins while Redis is down.
    cache: Mutex<HashMap<String, (Home, Instant)>>,
}

/// Most homes [`Cluster::cache`] keeps (a full cache forgets its stale entries first, then
/// takes no more until some expire).
const CACHE_ROOMS: usize = 10_000;

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.config.node_id)
            .finish()
    }
}

impl Cluster {
    /// A cluster member whose Redis connection is made on first use (the node starts, and
    /// serves the rooms it holds, while Redis is down) and remade after it breaks.
    pub fn new(config: &ClusterConfig, certs: CertStore) -> anyhow::Result<Arc<Cluster>> {
        let client = redis::Client::open(config.redis.as_str())
            .map_err(|e| anyhow::anyhow!("cluster.redis: {e}"))?;
        let timeout = config.redis_timeout;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let redis = ConnectionManager::new_lazy_with_config(client, manager)
            .map_err(|e| anyhow::anyhow!("cluster.redis: {e}"))?;
        Ok(Arc::new(Cluster {
            config: config.clone(),
            redis,
            certs,
            record: Mutex::new(String::new()),
            cache: Mutex::new(HashMap::new()),
            published: AtomicBool::new(false),
        }))
    }

    /// Runs `script` under the Redis timeout; any failure is `unavailable`.
    async fn call<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, SignalError> {
        let mut con = self.redis.clone();
        match tokio::time::timeout(self.config.redis_timeout, invocation.invoke_async(&mut con))
            .await
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::debug!(what, error = %e, "redis call failed");
                Err(SignalError::Unavailable)
            }
            Err(_) => {
                tracing::debug!(what, "redis call timed out");
                Err(SignalError::Unavailable)
            }
        }
    }

    /// How long after the directory's epoch new rooms may be placed: every node refreshes
    /// (and re-publishes) within one refresh interval and a call's timeout or two.
    fn grace(&self) -> Duration {
        self.config.refresh_every() + 2 * self.config.redis_timeout
    }

    /// The home of `room`, placing it on this node when it has none (or a dead one).
    pub async fn place(&self, room: &str) -> Result<Home, SignalError> {
        if !self.published.load(Ordering::Acquire) {
            return Err(SignalError::Unavailable);
        }
        let script = directory::place();
        let mut call = script.key(directory::room_key(room));
        call.arg(&self.config.node_id)
            .arg(directory::NODE_PREFIX)
            .arg(directory::EPOCH)
            .arg(self.grace().as_millis() as u64);
        let (home, record): (String, String) = match self.call("place", &call).await {
            Ok(found) => found,
            // Redis down or hung: a room homed on another node that this node looked up
            // lately is still there (if that node is not, the relay fails and the member
            // retries). New placements wait for Redis.
            Err(e) => return self.cached(room).ok_or(e),
        };
        if home.is_empty() {
            tracing::debug!(why = %record, "room not placed");
            return Err(SignalError::Unavailable);
        }
        if home == self.config.node_id {
            return Ok(Home::Here);
        }
        let secret = self.config.secret.expose();
        let (address, pin) = link::read_record(secret, &home, &record).ok_or_else(|| {
            // Not written by a node that knows the cluster's secret (or by an older version).
            tracing::warn!(node = %escaped(&home), "node record does not verify: not relayed");
            SignalError::Unavailable
        })?;
        let found = Home::Node {
            id: home,
            address,
            pin,
        };
        self.remember(room, &found);
        Ok(found)
    }

    /// How long a looked-up home is trusted without Redis: as long as a dead node's
    /// liveness key outlives it anyway.
    fn cache_ttl(&self) -> Duration {
        self.config.node_ttl
    }

    fn remember(&self, room: &str, home: &Home) {
        let now = Instant::now();
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHE_ROOMS && !cache.contains_key(room) {
            let ttl = self.cache_ttl();
            cache.retain(|_, (_, at)| now.duration_since(*at) < ttl);
            if cache.len() >= CACHE_ROOMS {
                return;
            }
        }
        cache.insert(room.to_owned(), (home.clone(), now));
    }

    fn cached(&self, room: &str) -> Option<Home> {
        let mut cache = lock(&self.cache);
        let (home, at) = cache.get(room)?;
        if at.elapsed() < self.cache_ttl() {
            tracing::debug!(room = %escaped(room), "redis unavailable: home from the cache");
            return Some(home.clone());
        }
        cache.remove(room);
        None
    }

    /// Whether `room` has a living home anywhere in the cluster.
    pub async fn exists(&self, room: &str) -> Result<bool, SignalError> {
        // One script, so the room's home and that home's liveness are read together.
        let script = redis::Script::new(
            r"
local home = redis.call('GET', KEYS[1])
if not home then return 0 end
return redis.call('EXISTS', ARGV[1] .. home)
",
        );
        let mut call = script.key(directory::room_key(room));
        call.arg(directory::NODE_PREFIX);
        let n: i64 = self.call("exists", &call).await?;
        Ok(n == 1)
    }

    /// `room` emptied on this node: its directory entry goes, if it still names this node.
    /// In the background: the hub's caller is not held up, and a failure leaves an entry
    /// that names a living node, which creates the room again on the next login.
    pub fn room_closed(self: &Arc<Self>, room: &str) {
        let me = self.clone();
        let room = room.to_owned();
        tokio::spawn(async move {
            let script = directory::delete_if_mine();
            let mut call = script.key(directory::room_key(&room));
            call.arg(&me.config.node_id);
            let _: Result<i64, _> = me.call("close room", &call).await;
        });
    }

    /// This node's record as it should be now: its address and the certificate it serves.
    fn current_record(&self) -> String {
        let pin = self
            .certs
            .leaf()
            .map(|c| link::pin_of(&c))
            .unwrap_or_default();
        link::record(
            self.config.secret.expose(),
            &self.config.node_id,
            self.config.address,
            &pin,
        )
    }

    /// Refreshes this node's liveness key every `node_ttl / 3`, and at once when its
    /// certificate was reloaded (links to it pin the published one); whenever the key was
    /// missing (first start, or Redis came back empty) re-publishes the rooms this node holds
    /// before it places new ones. On stop, deletes its key (if still its own).
    pub async fn run(self: Arc<Self>, hub: Arc<Hub>, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.config.refresh_every());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cert_checks = tokio::time::interval(CERT_CHECK);
        let mut reachable = true;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = cert_checks.tick() => {
                    if *lock(&self.record) == self.current_record() {
                        continue;
                    }
                    tracing::info!("certificate changed: publishing its pin");
                }
                _ = stop.cancelled() => break,
            }
            match self.refresh(&hub).await {
                Ok(()) if !reachable => {
                    reachable = true;
                    tracing::info!("redis reachable again");
                }
                Ok(()) => {}
                Err(_) if reachable => {
                    reachable = false;
                    tracing::warn!(
                        "redis unreachable: rooms in progress go on, new rooms are refused"
                    );
                }
                Err(_) => {}
            }
        }
        let script = directory::delete_if_mine();
        let mut call = script.key(directory::node_key(&self.config.node_id));
        call.arg(lock(&self.record).clone());
        let _: Result<i64, _> = self.call("leave", &call).await;
    }

    async fn refresh(&self, hub: &Hub) -> Result<(), SignalError> {
        let script = directory::register();
        let record = self.current_record();
        let mut call = script.key(directory::node_key(&self.config.node_id));
        call.key(directory::EPOCH)
            .arg(&record)
            .arg(self.config.node_ttl.as_millis() as u64);
        // Noted before the call: a failed one is retried at the next refresh, not sooner.
        *lock(&self.record) = record;
        let fresh: i64 = self.call("register", &call).await?;
        if fresh == 1 || !self.published.load(Ordering::Acquire) {
            self.republish(hub).await?;
            self.published.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Writes this node as the home of every room it holds (the directory lost them, or this
    /// node's key had expired), except rooms a living node has since taken.
    async fn republish(&self, hub: &Hub) -> Result<(), SignalError> {
        let rooms = hub.room_ids();
        let script = directory::claim();
        for room in &rooms {
            let mut call = script.key(directory::room_key(room));
            call.arg(&self.config.node_id).arg(directory::NODE_PREFIX);
            let home: String = self.call("claim", &call).await?;
            if home != self.config.node_id {
                tracing::warn!(
                    room = %escaped(room),
                    other = %escaped(&home),
                    "room held here is homed on another node too"
                );
            }
        }
        tracing::info!(rooms = rooms.len(), "rooms published to the directory");
        Ok(())
    }
}
