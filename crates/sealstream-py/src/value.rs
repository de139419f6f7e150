//! Python objects ⇄ `sealstream_core::json::Value`, as the reference's canonical JSON sees them.
//!
//! The reference serializes payloads with its own canonical writer: `None`, `bool`, `int`
//! (any size), finite `float`, `str`, `list` and `dict` with string keys; anything else is a
//! `StreamValidationError("Canonical JSON does not support this value type", "value", …)`,
//! a non-finite float `"Canonical JSON does not support non-finite numbers"`. The same
//! types are accepted here, with the same errors.

use pyo3::exceptions::PyRecursionError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use sealstream_core::json::{Map, Number, Value};

use crate::error::validation;

/// Nesting deeper than this is refused (Python's own recursion limit is about 1,000).
const MAX_DEPTH: usize = 512;

fn unsupported() -> PyErr {
    validation(
        "Canonical JSON does not support this value type",
        "value",
        "JSON-compatible value",
    )
}

/// A Python value as JSON.
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_value_at(obj, 0)
}

/// A Python mapping (a `dict`, or anything `dict()` accepts) as a JSON object.
pub fn to_map(obj: &Bound<'_, PyAny>) -> PyResult<Map> {
    if let Ok(dict) = obj.cast::<PyDict>() {
        return dict_to_map(dict, 0);
    }
    let builtins = obj.py().import("builtins")?;
    let dict = builtins.getattr("dict")?.call1((obj,))?;
    dict_to_map(dict.cast::<PyDict>()?, 0)
}

fn dict_to_map(dict: &Bound<'_, PyDict>, depth: usize) -> PyResult<Map> {
    let mut map = Map::with_capacity(dict.len());
    for (k, v) in dict.iter() {
        let key = k.cast::<PyString>().map_err(|_| unsupported())?;
        map.insert(key.to_cow()?.into_owned(), to_value_at(&v, depth + 1)?);
    }
    Ok(map)
}

fn to_value_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyRecursionError::new_err(
            "payload nested too deeply for canonical JSON",
        ));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        if let Ok(n) = i.extract::<i64>() {
            return Ok(Value::Number(Number::from(n)));
        }
        // Beyond 64 bits: the decimal text, as Python's json writes it.
        let text = i.str()?;
        return Number::from_int_text(&text.to_cow()?)
            .map(Value::Number)
            .ok_or_else(unsupported);
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| {
                validation(
                    "Canonical JSON does not support non-finite numbers",
                    "value",
                    "finite number",
                )
            });
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return dict_to_map(d, depth).map(Value::Object);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        let mut out = Vec::with_capacity(l.len());
        for item in l.iter() {
            out.push(to_value_at(&item, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    Err(unsupported())
}

/// A JSON value as Python objects: `dict`, `list`, `str`, `int`, `float`, `bool`, `None`.
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => number_to_py(py, n)?,
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => map_to_py(py, map)?.into_any(),
    })
}

/// A JSON object as a Python `dict` (keys in document order).
pub fn map_to_py<'py>(py: Python<'py>, map: &Map) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in map {
        dict.set_item(k, to_py(py, v)?)?;
    }
    Ok(dict)
}

/// A JSON number as a Python `int` (exact, any size) or `float`.
pub fn number_to_py<'py>(py: Python<'py>, n: &Number) -> PyResult<Bound<'py, PyAny>> {
    if let Some(i) = n.as_i64() {
        return Ok(i.into_pyobject(py)?.into_any());
    }
    if let Some(text) = n.as_int_text() {
        let int = py.get_type::<PyInt>();
        return int.call1((text,));
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    Ok(PyFloat::new(py, f).into_any())
}

/// A Python `int` as a JSON number (any size); `bool` and other types refused.
pub fn int_to_number(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Number> {
    match to_value(obj)? {
        Value::Number(n) if n.is_int() && !obj.is_instance_of::<PyBool>() => Ok(n),
        _ => Err(validation(
            &format!("{field} must be an integer"),
            field,
            "integer",
        )),
    }
}
