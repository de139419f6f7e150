//! `sealstream package sign|verify`.

use std::io::{BufRead, BufWriter, Read, Write};
use std::path::Path;

use sealstream_core::json::{self, Map, Value};
use sealstream_core::package::{CanonicalForm, DataPackage, PackageSigner, UnsignedPayload};
use sealstream_core::rules::TopicRules;

use crate::cli::PackageCommand;
use crate::error::{at, CliError, CliResult, Exit};
use crate::keyfile;
use crate::ui::Ui;

pub fn run(cmd: PackageCommand, ui: Ui) -> CliResult {
    match cmd {
        PackageCommand::Sign {
            rules,
            key_file,
            did,
            key_id,
            schema_version,
            field_key_file,
            start_sequence,
        } => sign(
            &rules,
            &key_file,
            &did,
            key_id,
            &schema_version,
            field_key_file.as_deref(),
            start_sequence,
            ui,
        ),
        PackageCommand::Verify { input } => verify(&input, ui),
    }
}

fn read_rules(path: &Path) -> CliResult<TopicRules> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::input(at(path, format!("rules: cannot read ({e})"))))?;
    let value = json::parse(&bytes).map_err(|e| CliError::input(at(path, e)))?;
    TopicRules::from_json(&value).map_err(|e| CliError::input(at(path, e)))
}

#[allow(clippy::too_many_arguments)]
fn sign(
    rules_path: &Path,
    key_file: &Path,
    did: &str,
    key_id: Option<String>,
    schema_version: &str,
    field_key_file: Option<&Path>,
    start_sequence: u64,
    ui: Ui,
) -> CliResult {
    let rules = read_rules(rules_path)?;
    let key = keyfile::secp256k1_secret(key_file, "machine key")?;
    let field_key = field_key_file
        .map(|p| keyfile::field_key(p, "field key"))
        .transpose()?;
    if rules.needs_field_key() && field_key.is_none() {
        return Err(CliError::input(at(
            rules_path,
            "rules encrypt fields: pass --field-key-file",
        )));
    }
    if schema_version.trim().is_empty() {
        return Err(CliError::input("--schema-version must not be empty"));
    }
    let signer = PackageSigner::new(key, did, key_id, field_key)
        .map_err(|e| CliError::input(format!("--{e}")))?;

    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut next_sequence = start_sequence;
    let mut count = 0u64;
    for (n, line) in stdin.lines().enumerate() {
        let line_no = n + 1;
        let line = line.map_err(|e| CliError::input(format!("stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |msg: String| CliError::input(format!("stdin line {line_no}: {msg}"));
        let value = json::parse(line.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        let topic = obj
            .get("topic")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("topic: required string".into()))?;
        let captured_at = obj
            .get("capturedAt")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("capturedAt: required string".into()))?;
        let fields = obj
            .get("fields")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("fields: required object".into()))?;
        let sequence = match obj.get("sequenceNumber") {
            None | Some(Value::Null) => next_sequence,
            Some(v) => v
                .as_number()
                .and_then(json::Number::as_u64)
                .ok_or_else(|| bad("sequenceNumber: expected a non-negative integer".into()))?,
        };
        next_sequence = sequence.saturating_add(1);
        let payload = UnsignedPayload {
            topic: topic.to_string(),
            fields: fields.clone(),
            captured_at: captured_at.to_string(),
        };
        let package = signer
            .build(&payload, &rules, schema_version, sequence)
            .map_err(|e| bad(e.to_string()))?;
        writeln!(out, "{}", package.to_json_line())
            .map_err(|e| CliError::input(format!("stdout: {e}")))?;
        count += 1;
    }
    out.flush()
        .map_err(|e| CliError::input(format!("stdout: {e}")))?;
    ui.say(format!("signed {count} packages as {}", signer.did()));
    Ok(())
}

/// Packages from `input`: one JSON document (object or array) or JSON lines.
fn read_packages(input: &str) -> CliResult<Vec<(String, Result<Value, String>)>> {
    let (label, bytes) = if input == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .map_err(|e| CliError::input(format!("stdin: {e}")))?;
        ("stdin".to_string(), buf)
    } else {
        let path = Path::new(input);
        let bytes = std::fs::read(path)
            .map_err(|e| CliError::input(at(path, format!("cannot read ({e})"))))?;
        (input.to_string(), bytes)
    };
    if let Ok(doc) = json::parse(&bytes) {
        return Ok(match doc {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("{label}[{i}]"), Ok(v)))
                .collect(),
            other => vec![(label, Ok(other))],
        });
    }
    let mut out = Vec::new();
    for (n, line) in bytes.lines().enumerate() {
        let line = line.map_err(|e| CliError::input(format!("{label}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push((
            format!("{label} line {}", n + 1),
            json::parse(line.as_bytes()).map_err(|e| e.to_string()),
        ));
    }
    Ok(out)
}

fn verify(input: &str, ui: Ui) -> CliResult {
    let packages = read_packages(input)?;
    if packages.is_empty() {
        return Err(CliError::input(format!("{input}: no packages")));
    }
    let mut invalid = 0usize;
    let mut out = BufWriter::new(std::io::stdout().lock());
    for (where_, parsed) in &packages {
        let outcome: Result<(String, CanonicalForm), (Option<String>, String)> = match parsed {
            Err(e) => Err((None, format!("not JSON: {e}"))),
            Ok(v) => match DataPackage::from_json(v) {
                Err(e) => Err((None, format!("not a package: {e}"))),
                Ok(p) => {
                    let r = p.verify();
                    match r.outcome {
                        Ok(form) => Ok((r.signer_did, form)),
                        Err(reason) => Err((Some(r.signer_did), reason.to_string())),
                    }
                }
            },
        };
        if outcome.is_err() {
            invalid += 1;
        }
        if ui.json {
            let mut m = Map::new();
            m.insert("at".into(), where_.as_str().into());
            match &outcome {
                Ok((did, form)) => {
                    m.insert("valid".into(), true.into());
                    m.insert("did".into(), did.as_str().into());
                    m.insert("form".into(), form_name(*form).into());
                }
                Err((did, reason)) => {
                    m.insert("valid".into(), false.into());
                    m.insert("did".into(), did.clone().into());
                    m.insert("reason".into(), reason.as_str().into());
                }
            }
            let _ = writeln!(out, "{}", json::write::to_python_compact(&Value::Object(m)));
        } else {
            match &outcome {
                Ok((did, form)) => ui.say(format!(
                    "{where_}: valid, signed by {did} ({} canonical form)",
                    form_name(*form)
                )),
                Err((_, reason)) => eprintln!("{where_}: INVALID: {reason}"),
            }
        }
    }
    let _ = out.flush();
    ui.say(format!(
        "{} of {} packages valid",
        packages.len() - invalid,
        packages.len()
    ));
    if invalid > 0 {
        return Err(CliError {
            exit: Exit::Input,
            message: format!("{invalid} of {} packages are invalid", packages.len()),
        });
    }
    Ok(())
}

fn form_name(form: CanonicalForm) -> &'static str {
    match form {
        CanonicalForm::Python => "python",
        CanonicalForm::Rfc8785 => "rfc8785",
    }
}
