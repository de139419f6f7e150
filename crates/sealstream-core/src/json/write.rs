//! `json.dumps` as the reference writes its files: document order,
//! `ensure_ascii` escapes, Python `repr` numbers.

use std::cmp::Ordering;
use std::convert::Infallible;

use super::{Number, Value};

/// The bytes `push_python_string` copies as they are: printable ASCII
/// except `"` and `\\` (one table load per byte instead of four compares).
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = b' ';
    while b <= b'~' {
        table[b as usize] = b != b'"' && b != b'\\';
        b += 1;
    }
    table
};

/// Append `s` as a JSON string the way Python's `json.dumps` does by default
/// (`ensure_ascii=True`): printable ASCII as is, `\"` `\\` `\n` `\r` `\t` `\b`
/// `\f`, everything else as lowercase `\uXXXX` (surrogate pairs above the BMP).
pub(crate) fn push_python_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut plain_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if PLAIN[usize::from(bytes[i])] {
            i += 1;
            continue;
        }
        // `i` is on a character boundary: every byte before it was ASCII
        // or the whole of an earlier character.
        let ch = s[i..].chars().next().unwrap_or('\0');
        out.push_str(&s[plain_start..i]);
        i += ch.len_utf8();
        plain_start = i;
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            _ => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    push_u_escape(out, *unit);
                }
            }
        }
    }
    out.push_str(&s[plain_start..]);
    out.push('"');
}

pub(crate) fn push_u_escape(out: &mut String, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xf)] as char);
    }
}

/// `json.dumps(value, separators=(",", ":"))`: compact, document order.
pub fn to_python_compact(value: &Value) -> String {
    let mut out = String::new();
    match write_compact(&mut out, value, &PYTHON_COMPACT) {
        Ok(()) => out,
        Err(never) => match never {},
    }
}

/// How a compact form (no whitespace, arrays in order) spells numbers and
/// strings and orders object members: the one writer serves `json.dumps`
/// and the canonical forms of [`super::canonical`].
pub(crate) struct CompactStyle<E> {
    /// Append a number's text, or why it has none in this form.
    pub number: fn(&mut String, &Number) -> Result<(), E>,
    /// Append a string (value or key) in this form's escaping.
    pub string: fn(&mut String, &str),
    /// How object members are sorted by key; `None` keeps document order.
    pub key_order: Option<fn(&str, &str) -> Ordering>,
}

/// Python's `json.dumps` compact form, in document order.
const PYTHON_COMPACT: CompactStyle<Infallible> = CompactStyle {
    number: |out, n| {
        n.push_python_text(out);
        Ok(())
    },
    string: push_python_string,
    key_order: None,
};

/// Append `value` in the compact form `style` describes.
pub(crate) fn write_compact<E>(
    out: &mut String,
    value: &Value,
    style: &CompactStyle<E>,
) -> Result<(), E> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => (style.number)(out, n)?,
        Value::String(s) => (style.string)(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(out, item, style)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, style)?,
    }
    Ok(())
}

/// Append the object `map` in the compact form `style` describes.
pub(crate) fn write_object<E>(
    out: &mut String,
    map: &super::Map,
    style: &CompactStyle<E>,
) -> Result<(), E> {
    let Some(order) = style.key_order else {
        return write_members(out, map.iter(), style);
    };
    // Often in order already (a payload the rules left sorted): then it is
    // written as it is, without a sort or an allocation.
    let sorted = map
        .keys()
        .zip(map.keys().skip(1))
        .all(|(a, b)| order(a, b) != Ordering::Greater);
    if sorted {
        return write_members(out, map.iter(), style);
    }
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| order(a.0, b.0));
    write_members(out, entries.into_iter(), style)
}

/// Append the object `map` as [`to_python_compact`] writes it.
pub(crate) fn push_python_compact_object(out: &mut String, map: &super::Map) {
    match write_object(out, map, &PYTHON_COMPACT) {
        Ok(()) => {}
        Err(never) => match never {},
    }
}

/// Append an object of `members`, in the order given.
fn write_members<'a, E>(
    out: &mut String,
    members: impl Iterator<Item = (&'a String, &'a Value)>,
    style: &CompactStyle<E>,
) -> Result<(), E> {
    out.push('{');
    for (i, (k, v)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        (style.string)(out, k);
        out.push(':');
        write_compact(out, v, style)?;
    }
    out.push('}');
    Ok(())
}

/// `json.dumps(value, indent=2) + "\n"`: what `peaqos stream publish` writes
/// for `chunk-N.json` and `manifest.json`.
pub fn to_python_pretty(value: &Value) -> String {
    let mut out = String::new();
    write_pretty(&mut out, value, 0);
    out.push('\n');
    out
}

fn newline_indent(out: &mut String, level: usize) {
    out.push('\n');
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_pretty(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline_indent(out, level + 1);
                write_pretty(out, item, level + 1);
            }
            newline_indent(out, level);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline_indent(out, level + 1);
                push_python_string(out, k);
                out.push_str(": ");
                write_pretty(out, v, level + 1);
            }
            newline_indent(out, level);
            out.push('}');
        }
        other => match write_compact(out, other, &PYTHON_COMPACT) {
            Ok(()) => {}
            Err(never) => match never {},
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    #[test]
    fn pretty_matches_json_dumps_indent_2() {
        let v = parse(br#"{"a":[1,{"b":null}],"c":{},"d":[],"e":"\u00fc"}"#).unwrap();
        assert_eq!(
            to_python_pretty(&v),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"c\": {},\n  \"d\": [],\n  \"e\": \"\\u00fc\"\n}\n"
        );
    }

    #[test]
    fn escapes_like_python() {
        let mut s = String::new();
        push_python_string(&mut s, "q\" b\\ n\n t\t c\u{1} del\u{7f} ü 🤖");
        assert_eq!(
            s,
            r#""q\" b\\ n\n t\t c\u0001 del\u007f \u00fc \ud83e\udd16""#
        );
    }

    /// The string writer as it was first written, character by character.
    fn by_chars(s: &str) -> String {
        let mut out = String::from("\"");
        for ch in s.chars() {
            match ch {
                ' '..='~' if ch != '"' && ch != '\\' => out.push(ch),
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in ch.encode_utf16(&mut units) {
                        push_u_escape(&mut out, *unit);
                    }
                }
            }
        }
        out.push('"');
        out
    }

    proptest::proptest! {
        #[test]
        fn python_strings_as_by_chars(s in "\\PC*|[ -~\"\\\\\n\t\u{0}-\u{1f}\u{7f}-\u{ff}é🤖]{0,40}") {
            let mut out = String::new();
            push_python_string(&mut out, &s);
            proptest::prop_assert_eq!(out, by_chars(&s));
        }
    }
}
