//! Reading the fields of a peer's JSON object, for both wires
//! ([`crate::reference`] frames and [`crate::feed`] messages): each failure
//! is the field's name and what is wrong, never the peer's text.

use sealstream_core::json::{Map, Number, Value};

/// A field at fault and what is wrong with it.
pub(crate) type Fault = (String, &'static str);

fn fault(field: &str, problem: &'static str) -> Fault {
    (field.to_string(), problem)
}

/// The required string `field`.
pub(crate) fn text(o: &Map, field: &str) -> Result<String, Fault> {
    o.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| fault(field, "required string"))
}

/// The optional string `field` (`null` or absent: `None`).
pub(crate) fn opt_text(o: &Map, field: &str) -> Result<Option<String>, Fault> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(fault(field, "expected a string")),
    }
}

/// The required unsigned integer `field`.
pub(crate) fn count(o: &Map, field: &str) -> Result<u64, Fault> {
    o.get(field)
        .and_then(Value::as_number)
        .and_then(Number::as_u64)
        .ok_or_else(|| fault(field, "required unsigned integer"))
}

/// The optional boolean `field`, `default` when absent.
pub(crate) fn flag(o: &Map, field: &str, default: bool) -> Result<bool, Fault> {
    match o.get(field) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(fault(field, "expected true or false")),
    }
}
