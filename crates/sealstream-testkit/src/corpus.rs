//! The random JSON documents and field rules the interop tests use, seeded by name.
//!
//! Rust tests (`sealstream-core`'s interop and property tests) and the Python package's
//! oracle tests (through the `interop-corpus` binary) draw the same documents from the
//! same seeds, so both implementations are compared with the reference on one corpus.
//! `SEALSTREAM_TEST_SEED` changes every seed (see [`crate::test_seed`]).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sealstream_core::json::{Map, Number, Value};

/// Build an object from pairs.
pub fn obj(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Seeded RNG: `SEALSTREAM_TEST_SEED` or a fixed default, printed so failures reproduce.
pub fn rng(name: &str) -> StdRng {
    StdRng::seed_from_u64(
        crate::test_seed(name)
            ^ name
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
    )
}

const SPECIAL_FLOATS: [f64; 14] = [
    1.0,
    1e-07,
    1e16,
    -0.0,
    0.1,
    0.5,
    52.520008,
    -73.9857,
    5e-324,
    1.7976931348623157e308,
    123456.789,
    1e21,
    1e-7,
    0.0042,
];

/// A random string from a pool of awkward characters.
pub fn random_string(rng: &mut StdRng) -> String {
    const POOL: &[&str] = &[
        "a",
        "Z",
        "0",
        " ",
        "\"",
        "\\",
        "\n",
        "\t",
        "\r",
        "\u{1}",
        "\u{1f}",
        "\u{7f}",
        "ü",
        "ß",
        "✓",
        "東",
        "京",
        "🤖",
        "😀",
        "\u{10FFFF}",
        "\u{FF61}",
        "\u{E000}",
        "\u{2028}",
        "/",
        "<",
        "é",
    ];
    let len = rng.gen_range(0..12);
    (0..len)
        .map(|_| {
            if rng.gen_bool(0.5) {
                char::from(rng.gen_range(b'a'..=b'z')).to_string()
            } else {
                POOL[rng.gen_range(0..POOL.len())].to_string()
            }
        })
        .collect()
}

/// A random object key (no dots).
pub fn random_key(rng: &mut StdRng) -> String {
    // Keys without dots: dotted keys are addressed by path in the reference, which
    // the rules tests cover separately.
    let mut k = random_string(rng).replace('.', "");
    if k.is_empty() || rng.gen_bool(0.3) {
        k = format!("k{}", rng.gen_range(0..20));
    }
    k
}

/// A random number: small and huge integers, awkward and random doubles.
pub fn random_number(rng: &mut StdRng) -> Number {
    match rng.gen_range(0..6) {
        0 => Number::from(rng.gen_range(-1000i64..1000)),
        1 => Number::from_int_text(&format!(
            "{}{}",
            rng.gen_range(1u64..u64::MAX),
            rng.gen_range(0u32..1_000_000_000)
        ))
        .unwrap(),
        2 => Number::from(rng.gen::<u64>() >> rng.gen_range(0..63)),
        3 => Number::from_f64(
            SPECIAL_FLOATS[rng.gen_range(0..SPECIAL_FLOATS.len())]
                * if rng.gen_bool(0.3) { -1.0 } else { 1.0 },
        )
        .unwrap(),
        4 => loop {
            let f = f64::from_bits(rng.gen());
            if f.is_finite() && f.abs() < 1e300 {
                break Number::from_f64(f).unwrap();
            }
        },
        _ => Number::from_f64(rng.gen_range(-1000.0..1000.0)).unwrap(),
    }
}

/// A random JSON value, nested at most three levels.
pub fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    let leaf = depth >= 3 || rng.gen_bool(0.55);
    if leaf {
        match rng.gen_range(0..6) {
            0 => Value::Null,
            1 => Value::Bool(rng.gen()),
            2 | 3 => Value::Number(random_number(rng)),
            _ => Value::String(random_string(rng)),
        }
    } else if rng.gen_bool(0.4) {
        let n = rng.gen_range(0..4);
        Value::Array((0..n).map(|_| random_value(rng, depth + 1)).collect())
    } else {
        Value::Object(random_map(rng, depth + 1))
    }
}

/// A random JSON object.
pub fn random_map(rng: &mut StdRng, depth: u32) -> Map {
    let n = rng.gen_range(0..5);
    let mut m = Map::new();
    for _ in 0..n {
        m.insert(random_key(rng), random_value(rng, depth));
    }
    m
}

/// Every dot path of `map` (objects and leaves).
pub fn paths(map: &Map, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in map {
        let p = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        out.push(p.clone());
        if let Value::Object(inner) = v {
            paths(inner, &p, out);
        }
    }
}

/// A random rules document over the paths of `fields`.
pub fn random_rules(rng: &mut StdRng, fields: &Map, allow_encrypt: bool) -> Value {
    let mut all = Vec::new();
    paths(fields, "", &mut all);
    all.push("missing.path".into());
    let n = rng.gen_range(0..5);
    let mut rules = Vec::new();
    for _ in 0..n {
        let path = all[rng.gen_range(0..all.len())].clone();
        let action = match rng.gen_range(0..if allow_encrypt { 4 } else { 3 }) {
            0 => "include",
            1 => "exclude",
            2 => "anonymize",
            _ => "encrypt",
        };
        let mut r = vec![
            ("fieldPath", Value::from(path.as_str())),
            ("action", Value::from(action)),
        ];
        if action == "anonymize" {
            let s = ["hash", "generalize", "redact"][rng.gen_range(0..3)];
            r.push(("anonymizeStrategy", Value::from(s)));
        }
        rules.push(obj(r));
    }
    let defaults: &[Option<&str>] = if allow_encrypt {
        &[None, Some("include"), Some("exclude"), Some("encrypt")]
    } else {
        &[None, Some("include"), Some("exclude")]
    };
    let default = defaults[rng.gen_range(0..defaults.len())];
    obj(vec![
        ("topic", Value::from("/t")),
        (
            "defaultAction",
            default.map(Value::from).unwrap_or(Value::Null),
        ),
        ("rules", Value::Array(rules)),
    ])
}
