//! The room directory in Redis: which node is each room's home, and which nodes are alive.
//! Every change is one Lua script (atomic in Redis), so two nodes placing one room at once
//! agree on one home, and a node only ever deletes keys whose value names itself.
//!
//! Keys: `peerbox:node:<id>` = the node's signed record (`link::record`: its address and
//! certificate pin), with a TTL (its liveness);
//! `peerbox:room:<room>` = the home node's id; `peerbox:epoch` = the Redis time (ms) the
//! directory was first written since it was last empty.

use redis::Script;

pub const NODE_PREFIX: &str = "peerbox:node:";
pub const ROOM_PREFIX: &str = "peerbox:room:";
pub const EPOCH: &str = "peerbox:epoch";

pub fn node_key(id: &str) -> String {
    format!("{NODE_PREFIX}{id}")
}

pub fn room_key(room: &str) -> String {
    format!("{ROOM_PREFIX}{room}")
}

/// Refreshes this node's liveness key. KEYS: node key, epoch. ARGV: record, TTL (ms).
/// Returns 1 when the key was missing (first start, expired, or Redis came back empty): then
/// this node must re-publish its rooms. Starts the epoch if the directory has none.
pub fn register() -> Script {
    Script::new(
        r"
local fresh = redis.call('EXISTS', KEYS[1]) == 0
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000))
end
if fresh then return 1 else return 0 end
",
    )
}

/// Finds or places the home of a room. KEYS: room key. ARGV: this node's id, the node key
/// prefix, the epoch key, the grace (ms) after the epoch before new placements.
/// Returns `{home id, home record}`; `{'', why}` when no placement can be made now.
///
/// A room whose home is alive stays there. A room without a home, or whose home's liveness
/// key is gone (a dead node), is placed on the caller, but only once the directory has
/// existed for the grace period: after Redis restarts empty, every node re-publishes its
/// rooms at its next refresh, and a placement before then could make a second home.
pub fn place() -> Script {
    Script::new(
        r"
local home = redis.call('GET', KEYS[1])
if home then
  local addr = redis.call('GET', ARGV[2] .. home)
  if addr then return {home, addr} end
end
local epoch = redis.call('GET', ARGV[3])
if not epoch then return {'', 'no epoch'} end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if now - tonumber(epoch) < tonumber(ARGV[4]) then return {'', 'warming up'} end
local mine = redis.call('GET', ARGV[2] .. ARGV[1])
if not mine then return {'', 'not registered'} end
redis.call('SET', KEYS[1], ARGV[1])
return {ARGV[1], mine}
",
    )
}

/// Deletes a key only while its value is `ARGV[1]` (this node): a room another node has
/// taken over, or a node key, is never deleted by anyone else. KEYS: the key.
pub fn delete_if_mine() -> Script {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
}

/// Re-publishes one room this node holds. KEYS: room key. ARGV: this node's id, the node key
/// prefix. Takes a room without a home or with a dead one; returns the home it has after
/// (another node's id when two nodes hold the room: a split this node logs).
pub fn claim() -> Script {
    Script::new(
        r"
local home = redis.call('GET', KEYS[1])
if home and home ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. home) == 1 then return home end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
",
    )
}
