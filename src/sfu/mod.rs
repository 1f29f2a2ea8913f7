//! The selective forwarding unit for big rooms (issue #11), off by default (`[sfu]`).
//!
//! This step holds the plain-data parts the media task is built on, each unit-tested:
//! - [`demux`]: which participant a datagram on the media port belongs to (map lookups by
//!   STUN ufrag, then by a proven source address; junk dropped on the first byte).
//! - [`forward`]: the forwarding table (published track -> subscriber m-lines, both ways)
//!   and the keyframe-request throttle.
//!
//! The task that owns the UDP socket and one str0m `Rtc` per participant, and its signalling,
//! are not written yet (docs/architecture.md, "SFU").

pub mod demux;
pub mod forward;
