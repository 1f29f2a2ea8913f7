//! Fuzzes the signalling frame parser: every input that is UTF-8 goes through
//! `protocol::parse` (the whole client-frame path: grammar pass, field limits, typed control
//! messages) and `Fields::parse`. A relayed frame, rewritten with a new `from`, must parse
//! again with the same fields (less any repeats) and that `from`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerbox::signal::protocol::{self, ClientMessage};
use peerbox::signal::relay::Fields;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(fields) = Fields::parse(text) {
        let _ = (fields.get_str("type"), fields.get_str("to"), fields.get("data"));
    }
    let Ok(msg) = protocol::parse(text) else {
        return;
    };
    let _ = msg.kind();
    if let ClientMessage::Relay { fields, to, .. } = msg {
        let out = protocol::relay_frame(&fields, "sender\n\"id");
        let again = Fields::parse(out.as_str()).expect("a relayed frame parses");
        assert_eq!(
            again.get_str("from").and_then(Result::ok).as_deref(),
            Some("sender\n\"id")
        );
        assert_eq!(again.get_str("to").and_then(Result::ok).as_deref(), Some(&*to));
        assert!(out.len() <= text.len() + 32 + "sender\n\"id".len() * 2);
    }
});
