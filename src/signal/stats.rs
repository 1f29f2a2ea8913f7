//! Signalling's counters: plain atomics bumped by the sessions, read at scrape time by
//! [`crate::metrics`]. Each labelled counter is an array indexed by its label's position in
//! the list beside it, so a scrape always shows every label (a zero included).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::protocol::SignalError;

/// `type` of every client message the server accepts ([`super::protocol::ClientMessage::kind`]).
pub const MESSAGE_TYPES: [&str; 20] = [
    "randomCheck",
    "login",
    "offer",
    "answer",
    "candidate",
    "logout",
    "iceServers",
    "roomSettings",
    "handOver",
    "admit",
    "decline",
    "remove",
    "askMute",
    "endCall",
    "sfu-join",
    "sfu-answer",
    "sfu-candidate",
    "sfu-leave",
    "sfu-view",
    "sfu-unpublish",
];

/// Every `errorType` of `docs/protocol.md` ([`SignalError::error_type`]).
pub const ERROR_TYPES: [&str; 24] = [
    "bad-request",
    "full",
    "not-in-room",
    "unknown-peer",
    "rate-limited",
    "too-many-rooms",
    "server-full",
    "too-many-connections",
    "locked",
    "password-required",
    "wrong-password",
    "removed",
    "declined",
    "lobby-full",
    "lobby-timeout",
    "lobby-closed",
    "not-host",
    "room-name-too-short",
    "unavailable",
    "sfu-off",
    "not-sfu",
    "sfu-full",
    "sfu-busy",
    "sfu-not-joined",
];

/// Why a WebSocket session ended (the session's `End`, and `refused` at admission).
pub const CLOSE_REASONS: [&str; 13] = [
    "closed", "gone", "idle", "too_big", "too_slow", "shutdown", "protocol", "not_utf8", "removed",
    "replaced", "refused", "home", "moved",
];

/// Which allowance dropped a message or refused credentials.
pub const LIMITS: [&str; 2] = ["messages", "credentials"];

#[derive(Debug, Default)]
pub struct Stats {
    /// WebSocket sessions admitted (refused ones are a close reason only).
    pub connections_total: AtomicU64,
    pub messages: [AtomicU64; MESSAGE_TYPES.len()],
    pub errors: [AtomicU64; ERROR_TYPES.len()],
    pub closed: [AtomicU64; CLOSE_REASONS.len()],
    pub rate_limited: [AtomicU64; LIMITS.len()],
}

impl Stats {
    pub(crate) fn message(&self, kind: &str) {
        bump(&self.messages, &MESSAGE_TYPES, kind);
    }

    pub(crate) fn error(&self, e: &SignalError) {
        bump(&self.errors, &ERROR_TYPES, e.error_type());
    }

    pub(crate) fn closed(&self, reason: &str) {
        bump(&self.closed, &CLOSE_REASONS, reason);
    }

    pub(crate) fn rate_limited(&self, limit: &str) {
        bump(&self.rate_limited, &LIMITS, limit);
    }
}

/// Adds one to the counter of `label`; a label missing from `labels` is a bug the unit tests
/// catch, and counts nowhere rather than panicking on input.
fn bump(counters: &[AtomicU64], labels: &[&str], label: &str) {
    debug_assert!(labels.contains(&label), "{label} is not a known label");
    if let Some(i) = labels.iter().position(|l| *l == label) {
        counters[i].fetch_add(1, Relaxed);
    }
}

/// `(label, value)` of each counter, in the order of `labels`.
pub fn each<'a>(
    counters: &'a [AtomicU64],
    labels: &'a [&'static str],
) -> impl Iterator<Item = (&'static str, u64)> + 'a {
    labels
        .iter()
        .zip(counters)
        .map(|(l, c)| (*l, c.load(Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_type_has_a_counter() {
        use SignalError::*;
        let all = [
            NotJson,
            NotObject,
            Binary,
            Missing("x"),
            WrongType("x"),
            Empty("x"),
            TooLong("x", 1),
            TooMany("x", 1),
            OutOfRange("x", 1),
            UnknownType,
            TooManyFields(1),
            ControlTooLong(1),
            Full(1),
            NotInRoom,
            UnknownPeer,
            RateLimited,
            CredentialsRateLimited,
            TooManyRooms,
            ServerFull,
            TooManyConnections,
            Locked,
            PasswordRequired,
            WrongPassword,
            PasswordRateLimited,
            Removed,
            Declined,
            LobbyFull,
            LobbyTimeout,
            LobbyClosed,
            NotHost,
            RoomNameTooShort(1),
            Unavailable,
            SfuOff,
            NotSfu,
            SfuFull(1),
            SfuBusy,
            SfuNotJoined,
        ];
        let stats = Stats::default();
        for e in &all {
            assert!(ERROR_TYPES.contains(&e.error_type()), "{e:?}");
            stats.error(e);
        }
        let total: u64 = each(&stats.errors, &ERROR_TYPES).map(|(_, v)| v).sum();
        assert_eq!(total, all.len() as u64);
        let bad = each(&stats.errors, &ERROR_TYPES).find(|(l, _)| *l == "bad-request");
        assert_eq!(bad, Some(("bad-request", 12)));
    }
}
