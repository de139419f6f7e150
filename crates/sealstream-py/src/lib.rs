//! `sealstream._native`: the extension module of the Python package `sealstream`.
//!
//! It binds `sealstream-core` (formats and cryptography) and `sealstream-files` (chain
//! directories) for Python. The public Python API is in `python/sealstream/`: drop-in
//! replacements for `peaq_os_sdk.stream`'s functions that take and return the
//! reference's own dataclasses, and sealstream's streaming extras. This module is the
//! native half; its functions take the reference's objects by attribute and return
//! tuples, and release the GIL while they compute.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod chain;
mod error;
mod package;
mod stream;
mod value;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "NativeValidationError",
        py.get_type::<error::NativeValidationError>(),
    )?;
    m.add(
        "NativeSigningError",
        py.get_type::<error::NativeSigningError>(),
    )?;
    m.add("NativeChainError", py.get_type::<error::NativeChainError>())?;
    package::register(m)?;
    chain::register(m)?;
    stream::register(m)?;
    Ok(())
}
