//! Signed data packages: the reference's `build_signed_data_package` and
//! `verify_data_package`, one at a time or in batches spread over every core.
//!
//! Inputs are the reference's dataclasses read by attribute (`UnsignedDataPayload`,
//! `TopicFieldRules`, `SigningContext`, `EncryptionContext`, `DataPackage`); a package
//! comes back as a tuple of `DataPackage`'s fields. Field rules, canonical JSON and the
//! secp256k1 signature run without the GIL.

use pyo3::exceptions::{PyOverflowError, PyZeroDivisionError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use sealstream_core::json::{Map, Number};
use sealstream_core::keys::{FieldKey, MachineSigningKey};
use sealstream_core::package::{sign_as, DataPackage, InvalidReason};
use sealstream_core::pool::{default_parallelism, map_in_order};
use sealstream_core::rules::{
    Action, AnonymizeStrategy, FieldRule, RulesError, TopicRules, FIELD_ALGORITHM,
};

use crate::error::{signing, validation};
use crate::value::{int_to_number, map_to_py, number_to_py, to_map};

/// Batches smaller than this are signed or verified on the calling thread.
const PARALLEL_FROM: usize = 32;

/// The signing key as the reference reads it: `0x` (added when missing) + 64 hex digits,
/// a valid secp256k1 scalar; anything else is "Invalid signing private key".
fn signing_key(text: &str) -> PyResult<MachineSigningKey> {
    let body = text.strip_prefix("0x").unwrap_or(text);
    let lowercase_prefix = !text.starts_with("0X");
    if !lowercase_prefix || body.len() != 64 || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(signing("Invalid signing private key"));
    }
    MachineSigningKey::from_hex(body, "private_key")
        .map_err(|_| signing("Invalid signing private key"))
}

/// The field key, or the reference's error for when an `encrypt` rule needs it.
fn field_key(ctx: &Bound<'_, PyAny>) -> PyResult<Result<FieldKey, String>> {
    if ctx.is_none() {
        return Ok(Err("Invalid encryption key".into()));
    }
    let algorithm: String = ctx.getattr("algorithm")?.extract()?;
    if algorithm != FIELD_ALGORITHM {
        return Ok(Err(format!(
            "Unsupported encryption algorithm: {algorithm}"
        )));
    }
    let key: String = ctx.getattr("encryption_key")?.extract()?;
    let body = key
        .strip_prefix("0x")
        .or_else(|| key.strip_prefix("0X"))
        .unwrap_or(&key);
    if body.len() != 64 || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Err("Invalid encryption key".into()));
    }
    Ok(FieldKey::from_hex(body, "encryption_key").map_err(|_| "Invalid encryption key".into()))
}

fn action(text: &str) -> PyResult<Action> {
    Action::parse(text).ok_or_else(|| {
        validation(
            "Unsupported field rule action",
            "action",
            "include, exclude, encrypt or anonymize",
        )
    })
}

/// A `TopicFieldRules` (by attribute).
fn topic_rules(obj: &Bound<'_, PyAny>) -> PyResult<TopicRules> {
    let mut rules = Vec::new();
    for r in obj.getattr("rules")?.try_iter()? {
        let r = r?;
        let strategy = r.getattr("anonymize_strategy")?;
        let anonymize_strategy = if strategy.is_none() {
            None
        } else {
            let s: String = strategy.extract()?;
            Some(AnonymizeStrategy::parse(&s).ok_or_else(|| {
                validation(
                    "Unsupported anonymize strategy",
                    "anonymize_strategy",
                    "hash, generalize or redact",
                )
            })?)
        };
        rules.push(FieldRule {
            field_path: r.getattr("field_path")?.extract()?,
            action: action(&r.getattr("action")?.extract::<String>()?)?,
            anonymize_strategy,
        });
    }
    let default = obj.getattr("default_action")?;
    Ok(TopicRules {
        topic: obj.getattr("topic")?.extract()?,
        rules,
        default_action: if default.is_none() {
            None
        } else {
            Some(action(&default.extract::<String>()?)?)
        },
    })
}

/// Everything that signs packages of one call.
struct Signer {
    /// `None` when the key is invalid: the reference applies the rules first, then fails
    /// on the key.
    key: Option<MachineSigningKey>,
    did: String,
    key_id: String,
    field_key: Result<FieldKey, String>,
    rules: TopicRules,
    schema_version: String,
}

/// One payload to sign.
struct Item {
    fields: Map,
    captured_at: String,
    sequence_number: Number,
}

enum SignFailure {
    Key,
    Rules(RulesError),
    FieldKey(String),
}

impl Signer {
    fn read(
        topic_rules_obj: &Bound<'_, PyAny>,
        signing_ctx: &Bound<'_, PyAny>,
        encryption_ctx: &Bound<'_, PyAny>,
        schema_version: &Bound<'_, PyAny>,
    ) -> PyResult<Signer> {
        let schema: Option<String> = if schema_version.is_none() {
            None
        } else {
            Some(schema_version.extract()?)
        };
        let schema_version = match schema {
            Some(s) if !s.trim().is_empty() => s,
            _ => {
                return Err(validation(
                    "schema_version is required",
                    "schema_version",
                    "required",
                ))
            }
        };
        let rules = topic_rules(topic_rules_obj)?;
        let field_key = field_key(encryption_ctx)?;
        let key_text: String = signing_ctx.getattr("private_key")?.extract()?;
        Ok(Signer {
            key: signing_key(&key_text).ok(),
            did: signing_ctx.getattr("did")?.extract()?,
            key_id: signing_ctx.getattr("key_id")?.extract()?,
            field_key,
            rules,
            schema_version,
        })
    }

    fn sign(&self, item: Item) -> Result<DataPackage, SignFailure> {
        let key = self.field_key.as_ref().ok();
        let processed = self.rules.apply(&item.fields, key).map_err(|e| match e {
            RulesError::NoFieldKey { .. } => SignFailure::FieldKey(
                self.field_key
                    .as_ref()
                    .err()
                    .cloned()
                    .unwrap_or_else(|| "Invalid encryption key".into()),
            ),
            other => SignFailure::Rules(other),
        })?;
        let key = self.key.as_ref().ok_or(SignFailure::Key)?;
        Ok(sign_as(
            key,
            &self.did,
            &self.key_id,
            processed,
            &item.captured_at,
            &self.schema_version,
            item.sequence_number,
        ))
    }

    fn sign_all(&self, items: Vec<Item>) -> Vec<Result<DataPackage, SignFailure>> {
        parallel_map(items, |item| self.sign(item))
    }
}

/// `f` over `items` in order, on every core when there are enough of them.
fn parallel_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = if items.len() < PARALLEL_FROM {
        1
    } else {
        default_parallelism()
    };
    map_in_order(items, threads, f)
}

fn sign_failure(e: SignFailure) -> PyErr {
    match e {
        SignFailure::Key => signing("Invalid signing private key"),
        SignFailure::FieldKey(message) => signing(&message),
        SignFailure::Rules(RulesError::MissingStrategy { .. }) => validation(
            "anonymize_strategy is required when action is anonymize",
            "anonymize_strategy",
            "required for anonymize action",
        ),
        // What the reference's arithmetic raises for the same number.
        SignFailure::Rules(RulesError::NumberOutOfRange {
            too_small: true, ..
        }) => PyZeroDivisionError::new_err("float division by zero"),
        SignFailure::Rules(RulesError::NumberOutOfRange { .. }) => {
            PyOverflowError::new_err("int too large to convert to float")
        }
        SignFailure::Rules(_) => signing("Invalid encryption key"),
    }
}

fn read_item(payload: &Bound<'_, PyAny>, sequence_number: Number) -> PyResult<Item> {
    if payload.is_none() {
        return Err(validation(
            "unsigned_payload is required",
            "unsigned_payload",
            "required",
        ));
    }
    Ok(Item {
        fields: to_map(&payload.getattr("fields")?)?,
        captured_at: payload.getattr("captured_at")?.extract()?,
        sequence_number,
    })
}

/// `DataPackage` fields as a tuple; `sequence_number` is the caller's object when given.
fn package_tuple<'py>(
    py: Python<'py>,
    p: &DataPackage,
    sequence_number: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let seq = match sequence_number {
        Some(s) => s.clone(),
        None => number_to_py(py, &p.sequence_number)?,
    };
    (
        &p.did,
        &p.timestamp,
        &p.schema_version,
        seq,
        map_to_py(py, &p.payload)?,
        &p.signature,
        &p.signing_key_id,
    )
        .into_pyobject(py)
}

/// One package (the reference's `build_signed_data_package`), as a field tuple.
#[pyfunction]
#[pyo3(signature = (unsigned_payload, topic_rules, signing_ctx, encryption_ctx, schema_version, sequence_number))]
pub fn sign_package<'py>(
    py: Python<'py>,
    unsigned_payload: &Bound<'py, PyAny>,
    topic_rules: &Bound<'py, PyAny>,
    signing_ctx: &Bound<'py, PyAny>,
    encryption_ctx: &Bound<'py, PyAny>,
    schema_version: &Bound<'py, PyAny>,
    sequence_number: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    if unsigned_payload.is_none() {
        return Err(validation(
            "unsigned_payload is required",
            "unsigned_payload",
            "required",
        ));
    }
    let signer = Signer::read(topic_rules, signing_ctx, encryption_ctx, schema_version)?;
    let item = read_item(
        unsigned_payload,
        int_to_number(sequence_number, "sequence_number")?,
    )?;
    let package = py.detach(|| signer.sign(item)).map_err(sign_failure)?;
    package_tuple(py, &package, Some(sequence_number))
}

/// Many packages with the same rules and keys, numbered from `first_sequence_number`,
/// signed on every core: a list of field tuples in input order. The first failure (in
/// input order) is raised and nothing is returned.
#[pyfunction]
#[pyo3(signature = (unsigned_payloads, topic_rules, signing_ctx, encryption_ctx, schema_version, first_sequence_number))]
pub fn sign_packages<'py>(
    py: Python<'py>,
    unsigned_payloads: &Bound<'py, PyAny>,
    topic_rules: &Bound<'py, PyAny>,
    signing_ctx: &Bound<'py, PyAny>,
    encryption_ctx: &Bound<'py, PyAny>,
    schema_version: &Bound<'py, PyAny>,
    first_sequence_number: u64,
) -> PyResult<Bound<'py, PyList>> {
    let signer = Signer::read(topic_rules, signing_ctx, encryption_ctx, schema_version)?;
    let mut items = Vec::new();
    for (i, p) in unsigned_payloads.try_iter()?.enumerate() {
        let seq = first_sequence_number
            .checked_add(i as u64)
            .ok_or_else(|| PyOverflowError::new_err("sequence number beyond 2^64 - 1"))?;
        items.push(read_item(&p?, Number::from(seq))?);
    }
    let results = py.detach(|| signer.sign_all(items));
    let out = PyList::empty(py);
    for r in results {
        out.append(package_tuple(py, &r.map_err(sign_failure)?, None)?)?;
    }
    Ok(out)
}

/// A `DataPackage` (by attribute) for verification, or the reason it cannot verify
/// before any cryptography (a DID the reference does not accept).
fn read_package(obj: &Bound<'_, PyAny>) -> PyResult<Result<DataPackage, &'static str>> {
    let did: String = obj.getattr("did")?.extract()?;
    if sealstream_core::identity::Did::parse(&did, "did").is_err() {
        return Ok(Err(reason(&InvalidReason::InvalidDid)));
    }
    Ok(Ok(DataPackage {
        did,
        timestamp: obj.getattr("timestamp")?.extract()?,
        schema_version: obj.getattr("schema_version")?.extract()?,
        sequence_number: int_to_number(&obj.getattr("sequence_number")?, "sequence_number")?,
        payload: to_map(&obj.getattr("payload")?)?,
        signature: obj.getattr("signature")?.extract()?,
        signing_key_id: obj.getattr("signing_key_id")?.extract()?,
    }))
}

fn reason(r: &InvalidReason) -> &'static str {
    match r {
        InvalidReason::InvalidDid => "Invalid package DID format",
        InvalidReason::SignerMismatch { .. } => "Recovered signer does not match package DID",
        _ => "Invalid signature",
    }
}

fn check(p: Result<DataPackage, &'static str>) -> Option<&'static str> {
    match p {
        Err(r) => Some(r),
        Ok(p) => p.verify_python_form().err().map(|e| reason(&e)),
    }
}

/// Verify one package (the reference's `verify_data_package`): `(valid, reason)`.
#[pyfunction]
pub fn verify_package(
    py: Python<'_>,
    data_package: &Bound<'_, PyAny>,
) -> PyResult<(bool, Option<&'static str>)> {
    let p = read_package(data_package)?;
    let r = py.detach(|| check(p));
    Ok((r.is_none(), r))
}

/// Verify many packages on every core: `[(valid, reason)…]` in input order.
#[pyfunction]
pub fn verify_packages(
    py: Python<'_>,
    data_packages: &Bound<'_, PyAny>,
) -> PyResult<Vec<(bool, Option<&'static str>)>> {
    let mut items = Vec::new();
    for p in data_packages.try_iter()? {
        items.push(read_package(&p?)?);
    }
    let results = py.detach(|| parallel_map(items, check));
    Ok(results.into_iter().map(|r| (r.is_none(), r)).collect())
}

/// Register this module's functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sign_package, m)?)?;
    m.add_function(wrap_pyfunction!(sign_packages, m)?)?;
    m.add_function(wrap_pyfunction!(verify_package, m)?)?;
    m.add_function(wrap_pyfunction!(verify_packages, m)?)?;
    Ok(())
}
