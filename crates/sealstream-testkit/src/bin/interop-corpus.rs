//! `interop-corpus canonical|rules|packages [COUNT]`: print, as one JSON array, the random
//! cases `sealstream-core`'s interop tests draw from the seed of that name (the same
//! documents, rules, sequence numbers and capture times, in the same order), for the
//! Python package's oracle tests. Numbers are written as Python's `json` writes them, so
//! `json.loads` gives back exactly the values the Rust tests use.

use rand::Rng;
use sealstream_core::json::write::to_python_compact;
use sealstream_core::json::Value;
use sealstream_testkit::corpus::{obj, random_map, random_rules, rng};

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_default();
    let default_count = match kind.as_str() {
        "canonical" | "rules" => 400,
        _ => 250,
    };
    let count: u64 = match args.next() {
        Some(n) => n.parse().unwrap_or_else(|_| usage()),
        None => default_count,
    };
    let mut rng = rng(&kind);
    let cases: Vec<Value> = match kind.as_str() {
        "canonical" => (0..count)
            .map(|_| Value::Object(random_map(&mut rng, 0)))
            .collect(),
        "rules" => (0..count)
            .map(|_| {
                let fields = random_map(&mut rng, 0);
                let rules = random_rules(&mut rng, &fields, true);
                obj(vec![("fields", Value::Object(fields)), ("rules", rules)])
            })
            .collect(),
        "packages" => (0..count)
            .map(|i| {
                let fields = random_map(&mut rng, 0);
                let encrypt = rng.gen_bool(0.3);
                let rules = random_rules(&mut rng, &fields, encrypt);
                let seq = if rng.gen_bool(0.2) { u64::MAX - i } else { i };
                obj(vec![
                    ("fields", Value::Object(fields)),
                    ("rules", rules),
                    ("sequenceNumber", Value::from(seq)),
                    (
                        "capturedAt",
                        Value::from(format!("2026-11-21T10:00:{:02}Z", i % 60)),
                    ),
                ])
            })
            .collect(),
        _ => usage(),
    };
    println!("{}", to_python_compact(&Value::Array(cases)));
}

fn usage() -> ! {
    eprintln!("usage: interop-corpus canonical|rules|packages [COUNT]");
    std::process::exit(2);
}
