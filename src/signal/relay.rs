//! The relay's hot path: a client frame split into its top-level fields without building a JSON
//! tree, and an offer/answer/candidate rewritten by splicing those fields' raw text around the
//! new `from`. One pass of serde_json checks the whole frame against the JSON grammar (RFC 8259:
//! structure, string escapes, control characters, number syntax) and records where each
//! top-level value is; what is inside the values is relayed as sent, not interpreted.
//!
//! Every step is linear in the frame's bytes: one grammar pass, at most [`MAX_FIELDS`]
//! top-level fields kept (the rest only grammar-checked), and the repeated-key check done with
//! a set once there are more than a few fields, never by scanning the fields for each field.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Most top-level fields a frame may have (the seed client sends five); more is a bad request.
pub const MAX_FIELDS: usize = 64;
/// Up to this many fields, repeated keys are found by comparing each with the later ones.
const SCAN_FIELDS: usize = 8;

/// Why a frame could not be split into fields; [`super::protocol`] maps it to its error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldsError {
    NotJson,
    NotObject,
    /// More than [`MAX_FIELDS`] top-level fields.
    TooMany,
}

/// The top-level fields of a JSON object, in the order sent, each value as its raw text.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    pairs: Vec<(Key<'a>, &'a RawValue)>,
}

impl<'a> Fields<'a> {
    /// Splits a frame that must be a JSON object: text that is not JSON is `NotJson`, any
    /// other JSON value `NotObject`.
    /// An object with more than [`MAX_FIELDS`] fields is `TooMany` (once the whole
    /// text is known to be JSON).
    pub fn parse(text: &'a str) -> Result<Fields<'a>, FieldsError> {
        match serde_json::from_str::<TopLevel<'a>>(text) {
            Ok(TopLevel { overflow: true, .. }) => Err(FieldsError::TooMany),
            Ok(TopLevel { pairs, .. }) => Ok(Fields { pairs }),
            // A type error comes only from the top level (keys are strings, values raw); the
            // rest of the text has not been read yet, so it is checked before the answer.
            Err(e) if e.is_data() => match serde_json::from_str::<IgnoredAny>(text) {
                Ok(_) => Err(FieldsError::NotObject),
                Err(_) => Err(FieldsError::NotJson),
            },
            Err(_) => Err(FieldsError::NotJson),
        }
    }

    /// The raw value of `key`; the last one wins when a key repeats, as with a parsed map.
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k.0 == key)
            .map(|(_, v)| *v)
    }

    /// The value of `key` if it is a JSON string, unescaped (borrowed when it has no escapes).
    /// `Err(())` when it is there with another type.
    pub fn get_str(&self, key: &str) -> Option<Result<Cow<'a, str>, ()>> {
        let raw = self.get(key)?;
        if !raw.get().starts_with('"') {
            return Some(Err(()));
        }
        Some(
            serde_json::from_str::<Key<'a>>(raw.get())
                .map(|k| k.0)
                .map_err(drop),
        )
    }

    /// The object as sent with `from` set to `from`: every other field's text copied once.
    pub fn with_from(&self, from: &str) -> Utf8Bytes {
        let len: usize = self
            .pairs
            .iter()
            .map(|(k, v)| k.0.len() + v.get().len() + 4)
            .sum();
        let mut out = String::with_capacity(len + from.len() + 12);
        out.push('{');
        let last = self.last_of_each_key();
        for (i, (key, value)) in self.pairs.iter().enumerate() {
            if key.0 == "from" || !last.get(i).copied().unwrap_or(true) {
                continue;
            }
            push_json_str(&mut out, &key.0);
            out.push(':');
            out.push_str(value.get());
            out.push(',');
        }
        out.push_str("\"from\":");
        push_json_str(&mut out, from);
        out.push('}');
        Utf8Bytes::from(out)
    }
}

impl Fields<'_> {
    /// For each field, whether no later field has its key (the one a parsed map would keep).
    fn last_of_each_key(&self) -> Vec<bool> {
        let n = self.pairs.len();
        if n <= SCAN_FIELDS {
            return (0..n)
                .map(|i| {
                    !self.pairs[i + 1..]
                        .iter()
                        .any(|(k, _)| k.0 == self.pairs[i].0.0)
                })
                .collect();
        }
        let mut seen: HashSet<&str> = HashSet::with_capacity(n);
        let mut last = vec![false; n];
        for (i, (key, _)) in self.pairs.iter().enumerate().rev() {
            last[i] = seen.insert(&key.0);
        }
        last
    }
}

impl PartialEq for Fields<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.pairs.len() == other.pairs.len()
            && self
                .pairs
                .iter()
                .zip(&other.pairs)
                .all(|((k1, v1), (k2, v2))| k1 == k2 && v1.get() == v2.get())
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // Serializing a `str` cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

/// A JSON string, borrowed from the frame unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The top-level (key, raw value) pairs of an object; past [`MAX_FIELDS`] the rest of the
/// object is only checked against the grammar, and `overflow` set.
struct TopLevel<'a> {
    pairs: Vec<(Key<'a>, &'a RawValue)>,
    overflow: bool,
}

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel<'de>, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(6));
                while pairs.len() < MAX_FIELDS {
                    let Some(key) = map.next_key::<Key<'de>>()? else {
                        return Ok(TopLevel {
                            pairs,
                            overflow: false,
                        });
                    };
                    pairs.push((key, map.next_value::<&'de RawValue>()?));
                }
                let mut overflow = false;
                while map.next_key::<IgnoredAny>()?.is_some() {
                    map.next_value::<IgnoredAny>()?;
                    overflow = true;
                }
                Ok(TopLevel { pairs, overflow })
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    /// What a full parse makes of `text`: the model this module must agree with wherever
    /// `serde_json::Value` can hold the frame.
    fn model(text: &str) -> Result<Map<String, Value>, FieldsError> {
        match serde_json::from_str::<Value>(text) {
            Err(_) => Err(FieldsError::NotJson),
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(FieldsError::NotObject),
        }
    }

    #[test]
    fn agrees_with_a_full_parse() {
        let cases = [
            r#"{"type":"offer","to":"b","data":{"sdp":"v=0\r\n"},"username":"Ann"}"#,
            r#"{"type":"offer","from":"liar","to":"b","data":1,"from":"again"}"#,
            r#"{"to":"a","to":"b","data":[1,2.50,-0,1e5,true,null,"\u00e9"]}"#,
            r#" { "\u0074ype" : "candidate" , "to":"b", "data" : { } } "#,
            r#"{"type":"offer","to":"b","data":"\ud83d\ude00"}"#,
            r#"{"type":"offer","to":"b","data":"tab	inside"}"#,
            r#"{"type":"offer","to":"b","data":"x\q"}"#,
            r#"{"type":"offer","to":"b","data":01}"#,
            r#"{"type":"offer","to":"b","data":1.}"#,
            r#"{"type":"offer","to":"b","data":[1,]}"#,
            r#"{"type":"offer","to":"b"} x"#,
            r#"{"type":"offer","to":"b""#,
            r#"{"a\"b":1,"c\\d":2}"#,
            r#"{}"#,
            "[1,2]",
            "[1,x]",
            "\"text\"",
            "null",
            "",
        ];
        for text in cases {
            let got = Fields::parse(text);
            match model(text) {
                Err(e) => assert_eq!(got.err(), Some(e), "{text}"),
                Ok(mut want) => {
                    let Ok(fields) = got else {
                        panic!("{text} refused: {got:?}");
                    };
                    want.insert("from".into(), Value::String("me".into()));
                    let out: Value = serde_json::from_str(&fields.with_from("me")).unwrap();
                    assert_eq!(out, Value::Object(want), "{text}");
                }
            }
        }
    }

    /// JSON that `Value` cannot hold (a lone surrogate, a number beyond f64, nesting past its
    /// depth limit) is still JSON: it is relayed with its text untouched, as browsers'
    /// `JSON.parse` takes it.
    #[test]
    fn values_are_relayed_uninterpreted() {
        let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
        for data in [r#""\ud800""#, "1e400", "-1e400", deep.as_str()] {
            let text = format!(r#"{{"type":"offer","to":"b","data":{data}}}"#);
            let fields = Fields::parse(&text).unwrap_or_else(|e| panic!("{data}: {e:?}"));
            assert_eq!(fields.get("data").map(RawValue::get), Some(data));
            let out = fields.with_from("me");
            assert!(out.as_str().contains(data), "{data}");
        }
    }

    #[test]
    fn string_fields() {
        let text = r#"{"type":"off\u0065r","to":"b","data":5,"type":"offer"}"#;
        let f = Fields::parse(text).unwrap();
        assert_eq!(f.get_str("type"), Some(Ok(Cow::Borrowed("offer"))));
        assert_eq!(f.get_str("to"), Some(Ok(Cow::Borrowed("b"))));
        assert_eq!(f.get_str("data"), Some(Err(())));
        assert_eq!(f.get_str("from"), None);
        let escaped = Fields::parse(r#"{"to":"\u0062"}"#).unwrap();
        assert_eq!(escaped.get_str("to"), Some(Ok(Cow::Owned("b".into()))));
    }

    #[test]
    fn from_is_escaped_when_needed() {
        let f = Fields::parse(r#"{"type":"offer"}"#).unwrap();
        let out: Value = serde_json::from_str(&f.with_from("a\"b")).unwrap();
        assert_eq!(out["from"], "a\"b");
    }

    /// Many fields, repeated keys among them: the set-based path keeps what a parsed map
    /// keeps, exactly as the scan does for few fields.
    #[test]
    fn many_fields_and_repeats_agree_with_a_full_parse() {
        for n in [SCAN_FIELDS, SCAN_FIELDS + 1, MAX_FIELDS] {
            let mut text = String::from("{");
            for i in 0..n {
                // Keys k0..k9 repeat; the last of each must win.
                text.push_str(&format!(r#""k{}":{i},"#, i % 10));
            }
            text.pop();
            text.push('}');
            let fields = Fields::parse(&text).unwrap_or_else(|e| panic!("{n}: {e:?}"));
            let mut want = model(&text).expect("model");
            want.insert("from".into(), Value::String("me".into()));
            let out: Value = serde_json::from_str(&fields.with_from("me")).expect("json");
            assert_eq!(out, Value::Object(want), "{n} fields");
        }
    }

    /// The frame of the issue (thousands of distinct keys) is refused after one linear pass,
    /// and only if it is JSON at all.
    #[test]
    fn too_many_fields_are_refused() {
        let keys = |n: usize| {
            let body: Vec<String> = (0..n).map(|i| format!(r#""key{i}":{i}"#)).collect();
            format!("{{{}}}", body.join(","))
        };
        assert!(Fields::parse(&keys(MAX_FIELDS)).is_ok());
        for n in [MAX_FIELDS + 1, 6100] {
            assert_eq!(
                Fields::parse(&keys(n)).err(),
                Some(FieldsError::TooMany),
                "{n}"
            );
        }
        let broken = format!("{},}}", keys(100).trim_end_matches('}'));
        assert_eq!(Fields::parse(&broken).err(), Some(FieldsError::NotJson));
    }
}
