//! Test helpers: random JSON payloads and rules (the reference peer they
//! are checked against is `sealstream-testkit`'s).
// Each test binary uses a part of the harness (and of what it re-exports).
#![allow(dead_code, unused_imports)]

use sealstream_core::json::{Map, Value};
pub use sealstream_testkit::reference::Peer;

pub use sealstream_testkit::corpus::{
    obj, paths, random_key, random_map, random_number, random_rules, random_string, random_value,
    rng,
};

pub fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::from(s.as_str())).collect())
}

/// The value with object keys sorted by code point at every level (what
/// parsing canonical output gives).
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
