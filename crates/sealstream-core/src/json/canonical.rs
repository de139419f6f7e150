//! Canonical JSON forms used for signatures.

use std::cmp::Ordering;
use std::convert::Infallible;

use super::write::{push_python_string, push_u_escape, write_compact, CompactStyle};
use super::Value;

/// The reference's canonical JSON (`canonical_json_stringify` in peaq-os-sdk):
/// keys sorted by code point at every level, no whitespace, arrays in order,
/// strings as Python's `json.dumps` escapes them, integers as written, floats
/// in Python `repr` form.
pub fn python(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    match write_compact(&mut out, value, &PYTHON_CANONICAL) {
        Ok(()) => out,
        Err(never) => match never {},
    }
}

/// Python's canonical form: `json.dumps(sort_keys=True, separators=(",", ":"))`.
const PYTHON_CANONICAL: CompactStyle<Infallible> = CompactStyle {
    number: |out, n| {
        n.push_python_text(out);
        Ok(())
    },
    string: push_python_string,
    key_order: Some(python_key_order),
};

/// Python's `sorted` order of keys: UTF-8 byte order is code point order.
/// Keys mostly differ in their first byte, compared here without a call.
fn python_key_order(a: &str, b: &str) -> Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Append the object `map` in [`python`]'s form.
pub(crate) fn push_python_object(out: &mut String, map: &super::Map) {
    match super::write::write_object(out, map, &PYTHON_CANONICAL) {
        Ok(()) => {}
        Err(never) => match never {},
    }
}

/// Why a value has no RFC 8785 form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rfc8785Error {
    /// An integer too large for an IEEE double.
    #[error("integer out of range for an IEEE double")]
    NumberOutOfRange,
}

/// RFC 8785 (JSON Canonicalization Scheme): keys sorted by UTF-16 code units,
/// minimal escaping with raw UTF-8, numbers as ECMAScript writes doubles.
/// This is what a JavaScript signer using `JSON.stringify` rules produces.
pub fn rfc8785(value: &Value) -> Result<String, Rfc8785Error> {
    let mut out = String::with_capacity(256);
    let style = CompactStyle {
        number: |out, n| {
            out.push_str(
                &n.to_ecmascript_text()
                    .ok_or(Rfc8785Error::NumberOutOfRange)?,
            );
            Ok(())
        },
        string: push_jcs_string,
        key_order: Some(utf16_cmp),
    };
    write_compact(&mut out, value, &style)?;
    Ok(out)
}

fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn push_jcs_string(out: &mut String, s: &str) {
    out.push('"');
    let mut plain_start = 0;
    for (i, b) in s.bytes().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.push_str(&s[plain_start..i]);
        plain_start = i + 1;
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            other => push_u_escape(out, u16::from(other)),
        }
    }
    out.push_str(&s[plain_start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    #[test]
    fn python_form() {
        let v = parse(r#"{"b":1.0,"a":[1e-07,1e16,-0.0,"ü🤖"],"\u00e9":null,"Z":true}"#.as_bytes())
            .unwrap();
        assert_eq!(
            python(&v),
            r#"{"Z":true,"a":[1e-07,1e+16,-0.0,"\u00fc\ud83e\udd16"],"b":1.0,"\u00e9":null}"#
        );
    }

    #[test]
    fn rfc8785_form() {
        let v = parse(r#"{"b":1.0,"a":[1e-07,1e16,-0.0,"ü🤖"],"\u00e9":null,"Z":true}"#.as_bytes())
            .unwrap();
        assert_eq!(
            rfc8785(&v).unwrap(),
            "{\"Z\":true,\"a\":[1e-7,10000000000000000,0,\"ü🤖\"],\"b\":1,\"é\":null}"
        );
    }

    #[test]
    fn rfc8785_sorts_by_utf16_units() {
        // U+FF61 sorts after U+1F600 by code point but before it in UTF-16.
        let v = parse("{\"\u{1F600}\":1,\"\u{FF61}\":2}".as_bytes()).unwrap();
        assert_eq!(rfc8785(&v).unwrap(), "{\"\u{1F600}\":1,\"\u{FF61}\":2}");
        assert_eq!(python(&v), "{\"\\uff61\":2,\"\\ud83d\\ude00\":1}");
    }
}
