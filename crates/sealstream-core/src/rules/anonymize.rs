//! Anonymization strategies, exactly as the reference computes them.

use sha2::{Digest, Sha256};

use super::{AnonymizeStrategy, RulesError};
use crate::json::{canonical, Map, Value};

const MASK: &str = "***";

/// The `{"__anonymized": true, "value": V, "strategy": S}` wrapper for `value`.
pub(crate) fn anonymize(
    value: &Value,
    strategy: AnonymizeStrategy,
    path: &str,
) -> Result<Value, RulesError> {
    let inner = match strategy {
        AnonymizeStrategy::Hash => Value::String(hash_value(value)),
        AnonymizeStrategy::Redact => Value::String("[REDACTED]".into()),
        AnonymizeStrategy::Generalize => generalize(value, path)?,
    };
    let mut wrapper = Map::with_capacity(3);
    wrapper.insert("__anonymized".into(), Value::Bool(true));
    wrapper.insert("value".into(), inner);
    wrapper.insert("strategy".into(), Value::String(strategy.as_str().into()));
    Ok(Value::Object(wrapper))
}

/// `0x` + SHA-256 of the value's canonical JSON.
pub(crate) fn hash_value(value: &Value) -> String {
    crate::keys::hex_with_prefix("0x", &Sha256::digest(canonical::python(value).as_bytes()))
}

/// Generalize: numbers to decade buckets, strings to masks, recursively.
pub(crate) fn generalize(value: &Value, path: &str) -> Result<Value, RulesError> {
    Ok(match value {
        Value::Bool(_) | Value::Null => Value::String(MASK.into()),
        Value::Number(n) => {
            let out_of_range = |too_small: bool| RulesError::NumberOutOfRange {
                path: path.to_string(),
                too_small,
            };
            let f = n.as_f64().ok_or_else(|| out_of_range(false))?;
            // Subnormals make the reference's step 0.0 (a division by zero there).
            let too_small = f != 0.0 && 10f64.powf(f.abs().log10().floor()) == 0.0;
            Value::String(bucket(f).ok_or_else(|| out_of_range(too_small))?)
        }
        Value::String(s) => {
            let count = s.chars().count();
            Value::String(if count <= 1 {
                "*".into()
            } else if count <= 4 {
                MASK.into()
            } else {
                let mut chars = s.chars();
                let first: String = chars.by_ref().take(2).collect();
                let last = s.chars().next_back().unwrap_or_default();
                format!("{first}{MASK}{last}")
            })
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| generalize(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map {
                out.insert(k.clone(), generalize(v, &format!("{path}.{k}"))?);
            }
            Value::Object(out)
        }
    })
}

/// Python's `format(x, ".10f").rstrip("0").rstrip(".") or "0"`, appended
/// to `out`.
fn push_fmt10(out: &mut String, x: f64) {
    use std::fmt::Write;
    if x.fract() == 0.0 && x.abs() < 1e15 && !(x == 0.0 && x.is_sign_negative()) {
        // A whole number: its digits, nothing to strip.
        let _ = write!(out, "{}", x as i64);
        return;
    }
    let start = out.len();
    let _ = write!(out, "{x:.10}");
    let stripped = out[start..]
        .trim_end_matches('0')
        .trim_end_matches('.')
        .len();
    out.truncate(start + stripped);
    if stripped == 0 {
        out.push('0');
    }
}

/// `10**e` as a double, exact for `0 <= e <= 22`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `lower-upper`, each as [`push_fmt10`] writes it.
fn range_text(lower: f64, upper: f64) -> String {
    let mut out = String::with_capacity(24);
    push_fmt10(&mut out, lower);
    out.push('-');
    push_fmt10(&mut out, upper);
    out
}

/// The decade bucket `lower-upper` of a number (`_bucket_number` in the
/// reference). `None` where Python raises `OverflowError` (|x| near the top
/// of the double range) or raises `ZeroDivisionError` (subnormals).
fn bucket(value: f64) -> Option<String> {
    if value == 0.0 {
        return Some("0-1".into());
    }
    // C log10 and pow, as CPython's math.log10 and float ** int use them.
    let exponent = value.abs().log10().floor() as i32;
    if exponent >= 0 {
        // step = 10**exponent is a Python int: lower/upper are exact integers
        // that are converted to the nearest double only when formatted.
        let (lower, upper) = match POW10.get(exponent as usize) {
            // 10**e and q are exact doubles here, so one multiplication
            // rounds the exact product to the nearest double, as Python's
            // int-to-float conversion does.
            Some(&step) => {
                let q = (value / step).floor() as i64;
                (q as f64 * step, (q + 1) as f64 * step)
            }
            None => {
                let step: f64 = format!("1e{exponent}").parse().ok()?;
                let q = (value / step).floor() as i64;
                let lower: f64 = format!("{q}e{exponent}").parse().ok()?;
                let upper: f64 = format!("{}e{exponent}", q + 1).parse().ok()?;
                (lower, upper)
            }
        };
        if !lower.is_finite() || !upper.is_finite() {
            return None;
        }
        Some(range_text(lower, upper))
    } else {
        let step = 10f64.powf(f64::from(exponent));
        if step == 0.0 {
            // Subnormals: the reference divides by zero here.
            return None;
        }
        let lower = (value / step).floor() * step;
        let upper = lower + step;
        if !lower.is_finite() || !upper.is_finite() {
            return None;
        }
        Some(range_text(lower, upper))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_reference_examples() {
        assert_eq!(bucket(0.0).unwrap(), "0-1");
        assert_eq!(bucket(52.52).unwrap(), "50-60");
        assert_eq!(bucket(0.0042).unwrap(), "0.004-0.005");
        assert_eq!(bucket(-73.98).unwrap(), "-80--70");
        assert_eq!(bucket(987654.0).unwrap(), "900000-1000000");
        assert_eq!(bucket(3.0).unwrap(), "3-4");
        assert_eq!(bucket(0.5).unwrap(), "0.5-0.6");
        assert_eq!(bucket(1e-12).unwrap(), "0-0");
        assert!(bucket(1.7e308).is_none());
        assert!(bucket(5e-324).is_none());
    }

    #[test]
    fn strings_by_code_points() {
        let g = |s: &str| generalize(&Value::from(s), "x").unwrap();
        assert_eq!(g("a"), Value::from("*"));
        assert_eq!(g(""), Value::from("*"));
        assert_eq!(g("abcd"), Value::from("***"));
        assert_eq!(g("Jonathan9"), Value::from("Jo***9"));
        assert_eq!(g("🤖🤖🤖🤖🤖"), Value::from("🤖🤖***🤖"));
    }

    /// The bucket as it was written before its fast paths: every bound
    /// through decimal text.
    fn bucket_by_text(value: f64) -> Option<String> {
        fn fmt10(x: f64) -> String {
            let text = format!("{x:.10}");
            let stripped = text.trim_end_matches('0').trim_end_matches('.');
            if stripped.is_empty() {
                "0".into()
            } else {
                stripped.to_string()
            }
        }
        if value == 0.0 {
            return Some("0-1".into());
        }
        let exponent = value.abs().log10().floor() as i32;
        let (lower, upper) = if exponent >= 0 {
            let step: f64 = format!("1e{exponent}").parse().ok()?;
            let q = (value / step).floor() as i64;
            let lower: f64 = format!("{q}e{exponent}").parse().ok()?;
            let upper: f64 = format!("{}e{exponent}", q + 1).parse().ok()?;
            (lower, upper)
        } else {
            let step = 10f64.powf(f64::from(exponent));
            if step == 0.0 {
                return None;
            }
            let lower = (value / step).floor() * step;
            (lower, lower + step)
        };
        if !lower.is_finite() || !upper.is_finite() {
            return None;
        }
        Some(format!("{}-{}", fmt10(lower), fmt10(upper)))
    }

    proptest::proptest! {
        #[test]
        fn bucket_is_as_by_text(
            value in proptest::num::f64::POSITIVE
                | proptest::num::f64::NEGATIVE
                | proptest::num::f64::NORMAL
                | proptest::num::f64::SUBNORMAL
                | proptest::num::f64::ZERO
        ) {
            proptest::prop_assert_eq!(bucket(value), bucket_by_text(value));
        }

        #[test]
        fn bucket_of_everyday_numbers_is_as_by_text(int in -10_000_000_000i64..10_000_000_000, scale in 0i32..8) {
            let value = int as f64 / 10f64.powi(scale);
            proptest::prop_assert_eq!(bucket(value), bucket_by_text(value));
        }
    }
}
