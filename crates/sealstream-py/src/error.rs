//! The exceptions the native module raises. The Python layer (`sealstream._errors`)
//! re-raises them as the reference's `StreamValidationError` / `StreamSigningError`
//! (or sealstream's own classes of the same names when `peaq_os_sdk` is absent), with
//! the same message, field and constraint the reference gives.
//!
//! Messages never contain key material: they name the field and the rule.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::PyErr;
use sealstream_core::ValidationError;

create_exception!(
    _native,
    NativeValidationError,
    PyValueError,
    "Invalid input: args are (message, field, constraint)."
);
create_exception!(
    _native,
    NativeSigningError,
    PyValueError,
    "A key or cryptographic failure: args are (message,)."
);
create_exception!(
    _native,
    NativeChainError,
    PyValueError,
    "A chain directory did not publish, read or verify: args are (message,)."
);

/// A validation failure with the reference's message, field and constraint.
pub fn validation(message: &str, field: &str, constraint: &str) -> PyErr {
    NativeValidationError::new_err((
        message.to_string(),
        field.to_string(),
        constraint.to_string(),
    ))
}

/// A signing / key failure with the reference's message.
pub fn signing(message: &str) -> PyErr {
    NativeSigningError::new_err((message.to_string(),))
}

/// A core validation error (field and rule; never the value).
pub fn from_core(e: ValidationError) -> PyErr {
    validation(&e.to_string(), &e.field, &e.constraint)
}

/// A chain directory error.
pub fn chain(message: impl std::fmt::Display) -> PyErr {
    NativeChainError::new_err((message.to_string(),))
}
