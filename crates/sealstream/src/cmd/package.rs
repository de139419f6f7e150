//! `sealstream package sign|verify`.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use sealstream_core::json::{self, Map, Value};
use sealstream_core::package::{CanonicalForm, DataPackage, PackageSigner};
use sealstream_core::pool::{default_parallelism, OrderedPool};
use sealstream_core::rules::TopicRules;

use super::package_input::{Item, PackageInput, Position};

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

/// A rules file (`{topic, defaultAction?, rules}`), or an error naming it.
pub(crate) fn read_rules(path: &Path) -> CliResult<TopicRules> {
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
    let did = signer.did().to_string();

    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let bar = ui.progress(stdin_size(), true, "signing");
    let started = Instant::now();
    let threads = default_parallelism();
    let signer = Arc::new(signer);
    let rules = Arc::new(rules);
    let schema_version = Arc::new(schema_version.to_string());
    let mut pool = OrderedPool::new(threads, threads * 4, move |batch: Vec<Line>| {
        batch
            .into_iter()
            .map(|line| sign_line(&signer, &rules, &schema_version, line))
            .collect::<Vec<_>>()
    });
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut count = 0u64;
    let mut deliver = |signed: Vec<Result<String, CliError>>| -> CliResult {
        for line in signed {
            let mut line = line?;
            line.push('\n');
            out.write_all(line.as_bytes())
                .map_err(|e| CliError::input(format!("stdout: {e}")))?;
            count += 1;
        }
        Ok(())
    };
    let mut next_sequence = start_sequence;
    let mut batch = Vec::with_capacity(BATCH_ITEMS);
    let mut batch_bytes = 0;
    let mut consumed = 0u64;
    let mut line_no = 0u64;
    loop {
        let mut bytes = Vec::new();
        let n = input
            .read_until(b'\n', &mut bytes)
            .map_err(|e| CliError::input(format!("stdin: {e}")))?;
        if n == 0 {
            break;
        }
        consumed += n as u64;
        line_no += 1;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // Sequence numbers run on from the line before, so they are handed
        // out here, in order; a line only needs parsing here when it may
        // set its own (the worker checks everything else).
        let sequence = match explicit_sequence(&bytes) {
            Some(seq) => seq,
            None => next_sequence,
        };
        next_sequence = sequence.saturating_add(1);
        batch_bytes += bytes.len();
        batch.push(Line {
            line_no,
            sequence,
            bytes,
        });
        if batch.len() >= BATCH_ITEMS || batch_bytes >= BATCH_BYTES {
            pool.submit(std::mem::take(&mut batch), &mut deliver)?;
            batch_bytes = 0;
            bar.set_position(consumed);
        }
    }
    if !batch.is_empty() {
        pool.submit(batch, &mut deliver)?;
    }
    pool.drain(&mut deliver)?;
    out.flush()
        .map_err(|e| CliError::input(format!("stdout: {e}")))?;
    bar.finish_and_clear();
    ui.say(format!(
        "signed {count} packages as {did}{}",
        rate(count, started)
    ));
    Ok(())
}

/// Lines (or array elements) per job of the worker pool.
const BATCH_ITEMS: usize = 256;
/// Bytes per job, at most (besides one item).
const BATCH_BYTES: usize = 1 << 20;

/// ", N/s" after a summary, when the run took long enough to say.
fn rate(count: u64, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    if secs < 1.0 {
        String::new()
    } else {
        format!(" in {secs:.1} s, {:.0}/s", count as f64 / secs)
    }
}

/// The size of standard input when it is a file, for the progress bar.
fn stdin_size() -> Option<u64> {
    std::fs::metadata("/dev/stdin")
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
}

/// A reading to sign, its line and the sequence number it gets.
struct Line {
    line_no: u64,
    sequence: u64,
    bytes: Vec<u8>,
}

/// The sequence number a line sets itself (`sequenceNumber`, a
/// non-negative integer), if it does; parsed only when the line names the
/// field. A malformed one is left to [`sign_line`] to report.
fn explicit_sequence(line: &[u8]) -> Option<u64> {
    const FIELD: &[u8] = b"\"sequenceNumber\"";
    if !line.windows(FIELD.len()).any(|w| w == FIELD) {
        return None;
    }
    json::parse(line)
        .ok()?
        .get("sequenceNumber")?
        .as_number()?
        .as_u64()
}

/// Sign one reading: the package's JSON line, or the error naming the line.
fn sign_line(
    signer: &PackageSigner,
    rules: &TopicRules,
    schema_version: &str,
    line: Line,
) -> Result<String, CliError> {
    let line_no = line.line_no;
    let bad = |msg: String| CliError::input(format!("stdin line {line_no}: {msg}"));
    let value = json::parse(&line.bytes).map_err(|e| bad(e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(bad("expected a JSON object".into()));
    };
    obj.get("topic")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("topic: required string".into()))?;
    // The line is ours: its fields go through the rules in place, not copied.
    let Some(Value::String(captured_at)) = obj.swap_remove("capturedAt") else {
        return Err(bad("capturedAt: required string".into()));
    };
    let Some(Value::Object(fields)) = obj.swap_remove("fields") else {
        return Err(bad("fields: required object".into()));
    };
    match obj.get("sequenceNumber") {
        None | Some(Value::Null) => {}
        Some(v) => {
            v.as_number()
                .and_then(json::Number::as_u64)
                .ok_or_else(|| bad("sequenceNumber: expected a non-negative integer".into()))?;
        }
    }
    let processed = signer
        .apply_rules_owned(fields, rules)
        .map_err(|e| bad(e.to_string()))?;
    let package = signer.sign_processed(processed, &captured_at, schema_version, line.sequence);
    Ok(package.to_json_line())
}

/// What verifying one package found.
struct Checked {
    at: Position,
    outcome: Result<(String, CanonicalForm), (Option<String>, String)>,
}

fn check(item: Item) -> Checked {
    let outcome = match item.bytes {
        Err(e) => Err((None, e)),
        Ok(bytes) => match json::parse(&bytes) {
            Err(e) => Err((None, format!("not JSON: {e}"))),
            Ok(v) => match DataPackage::from_json(&v) {
                Err(e) => Err((None, format!("not a package: {e}"))),
                Ok(p) => {
                    let r = p.verify();
                    match r.outcome {
                        Ok(form) => Ok((r.signer_did, form)),
                        Err(reason) => Err((Some(r.signer_did), reason.to_string())),
                    }
                }
            },
        },
    };
    Checked {
        at: item.at,
        outcome,
    }
}

fn verify(input: &str, ui: Ui) -> CliResult {
    let (label, reader, size): (String, Box<dyn BufRead>, Option<u64>) = if input == "-" {
        (
            "stdin".into(),
            Box::new(std::io::BufReader::with_capacity(
                READ_BUFFER,
                std::io::stdin(),
            )),
            stdin_size(),
        )
    } else {
        let path = Path::new(input);
        let file = std::fs::File::open(path)
            .map_err(|e| CliError::input(at(path, format!("cannot read ({e})"))))?;
        let size = file.metadata().ok().map(|m| m.len());
        (
            input.to_string(),
            Box::new(std::io::BufReader::with_capacity(READ_BUFFER, file)),
            size,
        )
    };
    let mut packages = PackageInput::new(reader);
    let bar = ui.progress(size, true, "verifying");
    // On a terminal the bar counts valid packages; elsewhere each is listed.
    let list_valid = bar.is_hidden();
    let started = Instant::now();
    let threads = default_parallelism();
    let mut pool = OrderedPool::new(threads, threads * 4, |batch: Vec<Item>| {
        batch.into_iter().map(check).collect::<Vec<_>>()
    });
    let mut out = BufWriter::new(std::io::stdout().lock());
    let (mut total, mut invalid) = (0u64, 0u64);
    let mut deliver = |checked: Vec<Checked>| -> CliResult {
        for Checked { at, outcome } in checked {
            total += 1;
            if outcome.is_err() {
                invalid += 1;
            }
            let where_ = at.label(&label);
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
                    Ok((did, form)) if list_valid => ui.say(format!(
                        "{where_}: valid, signed by {did} ({} canonical form)",
                        form_name(*form)
                    )),
                    Ok(_) => {}
                    Err((_, reason)) => bar.suspend(|| eprintln!("{where_}: INVALID: {reason}")),
                }
            }
        }
        Ok(())
    };
    let mut batch = Vec::with_capacity(BATCH_ITEMS);
    let mut batch_bytes = 0;
    while let Some(item) = packages.next() {
        let item = item.map_err(|e| CliError::input(format!("{label}: {e}")))?;
        batch_bytes += item.bytes.as_ref().map_or(0, Vec::len);
        batch.push(item);
        if batch.len() >= BATCH_ITEMS || batch_bytes >= BATCH_BYTES {
            pool.submit(std::mem::take(&mut batch), &mut deliver)?;
            batch_bytes = 0;
            bar.set_position(packages.consumed());
        }
    }
    if !batch.is_empty() {
        pool.submit(batch, &mut deliver)?;
    }
    pool.drain(&mut deliver)?;
    let _ = out.flush();
    bar.finish_and_clear();
    if total == 0 {
        return Err(CliError::input(format!("{input}: no packages")));
    }
    ui.say(format!(
        "{} of {total} packages valid{}",
        total - invalid,
        rate(total, started)
    ));
    if invalid > 0 {
        return Err(CliError {
            exit: Exit::Input,
            message: format!("{invalid} of {total} packages are invalid"),
        });
    }
    Ok(())
}

/// Read buffer of `package verify`.
const READ_BUFFER: usize = 256 << 10;

fn form_name(form: CanonicalForm) -> &'static str {
    match form {
        CanonicalForm::Python => "python",
        CanonicalForm::Rfc8785 => "rfc8785",
    }
}
