//! A JSON value type that keeps what signatures depend on.
//!
//! Python's `json` module (which the reference uses) keeps integers of any size
//! exactly and keeps object keys in insertion order; floats are IEEE doubles.
//! [`Value`] does the same: integers keep their decimal text, floats are `f64`,
//! objects are [`IndexMap`]s in document order. A duplicate key keeps the
//! position of its first occurrence and the value of its last, as a Python
//! `dict` does.
//!
//! Writers:
//! - [`canonical::python`]: the reference's canonical form (sorted keys, ASCII
//!   escapes, Python `repr` floats) — what packages are signed over;
//! - [`canonical::rfc8785`]: the JSON Canonicalization Scheme, which a
//!   JavaScript signer produces;
//! - [`write::to_python_compact`] / [`write::to_python_pretty`]: `json.dumps`
//!   with compact separators or `indent=2`, in document order, for files that
//!   must look exactly like the reference's.

pub mod canonical;
mod float;
mod parse;
pub mod write;

use indexmap::IndexMap;

pub use parse::{parse, parse_with_limits, JsonError, Limits};

/// An ordered JSON object: keys in document (insertion) order.
pub type Map = IndexMap<String, Value>;

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number: an exact integer or a finite double.
    Number(Number),
    /// A string (always valid Unicode; lone surrogates are rejected by the parser).
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object in document order.
    Object(Map),
}

/// A JSON number as Python's `json` reads it: a literal without fraction or
/// exponent is an exact integer of any size, anything else a double.
#[derive(Clone, Debug, PartialEq)]
pub struct Number(NumberRepr);

#[derive(Clone, Debug, PartialEq)]
enum NumberRepr {
    /// Normalised decimal text: optional `-`, no leading zeros, never `-0`.
    Int(Box<str>),
    /// A finite double.
    Float(f64),
}

impl Number {
    /// A finite double; `None` for NaN or an infinity (JSON cannot carry them).
    pub fn from_f64(value: f64) -> Option<Number> {
        value
            .is_finite()
            .then_some(Number(NumberRepr::Float(value)))
    }

    /// An integer from decimal text (`-?[0-9]+`); leading zeros and `-0` are normalised.
    pub fn from_int_text(text: &str) -> Option<Number> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = digits.trim_start_matches('0');
        let normalised = if trimmed.is_empty() {
            "0".to_string()
        } else if negative {
            format!("-{trimmed}")
        } else {
            trimmed.to_string()
        };
        Some(Number(NumberRepr::Int(normalised.into_boxed_str())))
    }

    /// Whether this number is an integer (as opposed to a double).
    pub fn is_int(&self) -> bool {
        matches!(self.0, NumberRepr::Int(_))
    }

    /// The integer's decimal text, if this is an integer.
    pub fn as_int_text(&self) -> Option<&str> {
        match &self.0 {
            NumberRepr::Int(text) => Some(text),
            NumberRepr::Float(_) => None,
        }
    }

    /// The value as `u64`, if it is an integer in range.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_int_text()?.parse().ok()
    }

    /// The value as `i64`, if it is an integer in range.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_int_text()?.parse().ok()
    }

    /// The value as a double, as Python's `float(x)` gives it (correctly
    /// rounded); `None` if an integer is too large for a double.
    pub fn as_f64(&self) -> Option<f64> {
        match &self.0 {
            NumberRepr::Float(f) => Some(*f),
            NumberRepr::Int(text) => {
                let f: f64 = text.parse().ok()?;
                f.is_finite().then_some(f)
            }
        }
    }

    /// Python `repr` text of the number (what `json.dumps` writes).
    pub fn to_python_text(&self) -> String {
        let mut out = String::new();
        self.push_python_text(&mut out);
        out
    }

    /// [`Number::to_python_text`] appended to `out`.
    pub fn push_python_text(&self, out: &mut String) {
        match &self.0 {
            NumberRepr::Int(text) => out.push_str(text),
            NumberRepr::Float(f) => float::push_python_repr(out, *f),
        }
    }

    /// ECMAScript `Number.prototype.toString` text (RFC 8785 numbers).
    /// Integers are first converted to the nearest double, as JavaScript does.
    pub fn to_ecmascript_text(&self) -> Option<String> {
        self.as_f64().map(float::ecmascript_string)
    }
}

impl From<u64> for Number {
    fn from(v: u64) -> Self {
        Number(NumberRepr::Int(int_text(false, v)))
    }
}

impl From<i64> for Number {
    fn from(v: i64) -> Self {
        Number(NumberRepr::Int(int_text(v < 0, v.unsigned_abs())))
    }
}

/// An integer's decimal text in one allocation of its exact length
/// (`to_string` grows a `String` and then shrinks it: decoded messages are
/// full of integers).
fn int_text(negative: bool, magnitude: u64) -> Box<str> {
    let mut buf = [0u8; 20];
    let digits = decimal(magnitude, &mut buf);
    if !negative {
        return Box::from(digits);
    }
    let mut text = String::with_capacity(digits.len() + 1);
    text.push('-');
    text.push_str(digits);
    text.into_boxed_str()
}

/// `n` in decimal, written at the end of `buf` without an allocation.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[start..]).expect("decimal digits are ASCII")
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Number(v.into())
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Number(v.into())
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<Map> for Value {
    fn from(v: Map) -> Self {
        Value::Object(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// An estimate of the heap memory `map` takes: its entries and index, its
/// keys and its values. For memory budgets; not exact.
pub fn map_heap_bytes(map: &Map) -> usize {
    // An entry: key and value in the entries vector, a hash, an index slot.
    const ENTRY: usize = std::mem::size_of::<String>() + std::mem::size_of::<Value>() + 16;
    map.capacity() * ENTRY
        + map
            .iter()
            .map(|(k, v)| k.capacity() + v.approx_heap_bytes())
            .sum::<usize>()
}

impl Value {
    /// An estimate of the heap memory this value takes (not counting the
    /// value itself). For memory budgets; not exact.
    pub fn approx_heap_bytes(&self) -> usize {
        match self {
            Value::Null | Value::Bool(_) => 0,
            Value::Number(n) => match &n.0 {
                NumberRepr::Int(text) => text.len(),
                NumberRepr::Float(_) => 0,
            },
            Value::String(s) => s.capacity(),
            Value::Array(items) => {
                items.capacity() * std::mem::size_of::<Value>()
                    + items.iter().map(Value::approx_heap_bytes).sum::<usize>()
            }
            Value::Object(map) => map_heap_bytes(map),
        }
    }

    /// The boolean, if this is `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object, if this is an object.
    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The array, if this is an array.
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The member `key`, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object().and_then(|m| m.get(key))
    }

    /// The number as a `u64`, if this is a non-negative integer that fits.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_number().and_then(Number::as_u64)
    }

    /// The number, if this is a number.
    pub fn as_number(&self) -> Option<&Number> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A short name of the value's JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_int() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_as_to_string_writes_them() {
        for v in [0, 1, -1, 9, 10, -10, 1_234_567, i64::MIN, i64::MAX] {
            assert_eq!(Number::from(v).to_python_text(), v.to_string());
        }
        for v in [0, 7, 10, u64::MAX] {
            assert_eq!(Number::from(v).to_python_text(), v.to_string());
        }
    }

    #[test]
    fn int_text_is_normalised() {
        assert_eq!(Number::from_int_text("-0").unwrap().to_python_text(), "0");
        assert_eq!(Number::from_int_text("007").unwrap().to_python_text(), "7");
        assert_eq!(
            Number::from_int_text("-12345678901234567890123")
                .unwrap()
                .to_python_text(),
            "-12345678901234567890123"
        );
        assert!(Number::from_int_text("1.0").is_none());
        assert!(Number::from_int_text("-").is_none());
    }

    #[test]
    fn non_finite_floats_are_refused() {
        assert!(Number::from_f64(f64::NAN).is_none());
        assert!(Number::from_f64(f64::INFINITY).is_none());
        assert!(Number::from_f64(-0.0).is_some());
    }
}
