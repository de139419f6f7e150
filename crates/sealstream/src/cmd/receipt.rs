//! `sealstream receipt verify|disclose`: license receipts (v1, and v2 with
//! their disclosures) and cut-off notices.

use std::path::{Path, PathBuf};

use sealstream_api::receipts::{
    pdf, Disclosed, LicenseReceipt, ReceiptV2, SignedDocument, SubscriptionCutoff,
};
use sealstream_core::json::{Map, Value};
use sealstream_core::keys::ReceiptPublicKey;

use crate::cli::ReceiptCommand;
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

pub fn run(cmd: ReceiptCommand, ui: Ui) -> CliResult {
    match cmd {
        ReceiptCommand::Verify { file, server_key } => verify(&file, server_key.as_deref(), ui),
        ReceiptCommand::Disclose {
            file,
            fields,
            output,
        } => disclose(&file, &fields, output.as_deref(), ui),
    }
}

/// `receipt disclose`: a presentation of some fields of a verified v2
/// receipt.
fn disclose(path: &Path, fields: &[String], output: Option<&Path>, ui: Ui) -> CliResult {
    let bytes =
        std::fs::read(path).map_err(|e| CliError::input(at(path, format!("cannot read ({e})"))))?;
    let (bytes, path) = signed_bytes(bytes, path)?;
    let path = path.as_path();
    let receipt = ReceiptV2::parse(&bytes).map_err(|e| CliError::input(at(path, e)))?;
    if let Err(e) = receipt.verify(None) {
        let message = at(path, &e);
        return Err(if e.is_integrity() {
            CliError::integrity(message)
        } else {
            CliError::input(message)
        });
    }
    let names: Vec<&str> = fields
        .iter()
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
        .collect();
    let shown = receipt
        .disclose(&names)
        .map_err(|e| CliError::input(format!("--fields: {}", e.constraint)))?;
    let text = shown.to_json_pretty();
    match output {
        Some(out) => {
            sealstream_files::layout::write_atomic_private(out, text.as_bytes())
                .map_err(|e| CliError::input(at(out, e)))?;
            ui.say(format!(
                "Disclosure of {} of the receipt's {} fields ({}) written to {}",
                shown.disclosures.len(),
                receipt.digests.len(),
                names.join(", "),
                out.display()
            ));
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// What a v2 receipt or disclosure shows, one line per field.
fn disclosed_summary(d: &Disclosed, of: usize) -> Vec<String> {
    if let Some(r) = &d.receipt {
        let mut lines = vec![format!("  (v2: all {of} fields shown)")];
        lines.extend(summary(r));
        return lines;
    }
    let mut lines = vec![format!(
        "  {} of the receipt's {of} fields shown; the others stay hidden:",
        d.fields.len()
    )];
    for (name, value) in &d.fields {
        let text = match value {
            Value::String(t) => shown(t),
            other => license(other),
        };
        lines.push(format!("  {name:<18} {text}"));
    }
    lines
}

fn verify(path: &Path, server_key: Option<&str>, ui: Ui) -> CliResult {
    let pinned = server_key
        .map(|text| {
            ReceiptPublicKey::from_hex(text, "--server-key")
                .map_err(|e| CliError::input(e.to_string()))
        })
        .transpose()?;
    let bytes =
        std::fs::read(path).map_err(|e| CliError::input(at(path, format!("cannot read ({e})"))))?;
    let (bytes, path) = signed_bytes(bytes, path)?;
    let path = path.as_path();
    let document = SignedDocument::parse(&bytes).map_err(|e| CliError::input(at(path, e)))?;
    if let Err(e) = document.verify(pinned.as_ref()) {
        let message = at(path, &e);
        if !e.is_integrity() {
            return Err(CliError::input(message));
        }
        if ui.json {
            let mut m = Map::new();
            m.insert("valid".into(), false.into());
            m.insert("error".into(), message.as_str().into());
            ui.json_out(&Value::Object(m));
        }
        return Err(CliError::integrity(message));
    }
    let signer = document.public_key().to_hex();
    if ui.json {
        let mut m = Map::new();
        m.insert("valid".into(), true.into());
        m.insert("schemaVersion".into(), document.schema().into());
        m.insert("keyPinned".into(), pinned.is_some().into());
        m.insert("signerPublicKeyHex".into(), signer.into());
        match &document {
            SignedDocument::Receipt(signed) => {
                let r = &signed.receipt;
                m.insert("amountDisplay".into(), r.amount_display().into());
                m.insert("receipt".into(), r.to_json());
            }
            SignedDocument::Cutoff(signed) => {
                m.insert("cutoff".into(), signed.cutoff.to_json());
            }
            SignedDocument::ReceiptV2(doc) => {
                let d = doc
                    .verify(pinned.as_ref())
                    .map_err(|e| CliError::input(at(path, e)))?;
                let mut fields = Map::new();
                for (name, value) in &d.fields {
                    fields.insert(name.clone(), value.clone());
                }
                m.insert("fieldsShown".into(), Value::from(d.fields.len() as u64));
                m.insert("fields".into(), Value::Object(fields));
            }
        }
        ui.json_out(&Value::Object(m));
        return Ok(());
    }
    let what = match &document {
        SignedDocument::Receipt(_) => "receipt",
        SignedDocument::Cutoff(_) => "cut-off notice",
        SignedDocument::ReceiptV2(doc) if doc.disclosures.len() < doc.digests.len() => {
            "receipt disclosure"
        }
        SignedDocument::ReceiptV2(_) => "receipt",
    };
    ui.say(if pinned.is_some() {
        format!("{what} valid: signed by the market key {signer} (--server-key)")
    } else {
        format!(
            "{what} signature valid, by key {signer} (not pinned: pass --server-key to check it is the market's)"
        )
    });
    let lines = match &document {
        SignedDocument::Receipt(signed) => summary(&signed.receipt),
        SignedDocument::Cutoff(signed) => cutoff_summary(&signed.cutoff),
        SignedDocument::ReceiptV2(doc) => {
            let d = doc
                .verify(pinned.as_ref())
                .map_err(|e| CliError::input(at(path, e)))?;
            disclosed_summary(&d, doc.digests.len())
        }
    };
    for line in lines {
        ui.say(line);
    }
    Ok(())
}

/// The signed document in a file's `bytes`: the file itself, or the
/// `receipt.json` attached to a receipt PDF — then named
/// `FILE.pdf#receipt.json` in messages.
fn signed_bytes(bytes: Vec<u8>, path: &Path) -> Result<(Vec<u8>, PathBuf), CliError> {
    if !pdf::is_pdf(&bytes) {
        return Ok((bytes, path.to_path_buf()));
    }
    match pdf::extract_receipt(&bytes) {
        Ok(json) => {
            let mut inner = path.as_os_str().to_owned();
            inner.push(format!("#{}", pdf::RECEIPT_PDF_ATTACHMENT));
            Ok((json, PathBuf::from(inner)))
        }
        Err(e) if e.is_integrity() => Err(CliError::integrity(at(path, e))),
        Err(e) => Err(CliError::input(at(path, e))),
    }
}

fn cutoff_summary(c: &SubscriptionCutoff) -> Vec<String> {
    vec![
        format!(
            "  subscription {} of listing {}",
            shown(&c.subscription_id),
            shown(&c.listing_id)
        ),
        format!("  topic        {} on {}", shown(&c.topic), c.machine_did),
        format!("  seller       {}", c.seller_did),
        format!(
            "  buyer        {} (recipient {})",
            c.buyer_did,
            shown(&c.buyer_id)
        ),
        format!("  ended        {}: {}", c.reason, shown(&c.detail)),
        format!(
            "  access       ended {}; last chunk index entitled: {}",
            c.effective_at,
            c.last_index_entitled
                .map_or("none".to_string(), |i| i.to_string())
        ),
        format!("  issued       {}", c.issued_at),
    ]
}

/// Receipt texts are the market's and the seller's: show control characters escaped.
fn shown(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The license on one line: its text or its JSON, cut after 120 characters.
fn license(value: &Value) -> String {
    let full = match value {
        Value::Null => return "none".into(),
        Value::String(text) => text.clone(),
        other => sealstream_core::json::write::to_python_compact(other),
    };
    let text = shown(&full);
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn summary(r: &LicenseReceipt) -> Vec<String> {
    let amount = match r.unit() {
        Some("native") => format!("{} in the native coin", r.amount_display()),
        Some(unit) => format!("{} {}", r.amount_display(), shown(unit)),
        None => r.amount_display(),
    };
    vec![
        format!("  order     {}", shown(&r.order_id)),
        format!(
            "  listing   {} \"{}\"",
            shown(&r.listing_id),
            shown(&r.listing_title)
        ),
        format!(
            "  dataset   {}, root {}: {} chunk{} from index {} of {} on {}",
            shown(&r.dataset_id),
            r.dataset_root,
            r.chunk_count,
            if r.chunk_count == 1 { "" } else { "s" },
            r.first_index,
            shown(&r.topic),
            r.machine_did
        ),
        format!("  seller    {}", r.seller_did),
        format!(
            "  buyer     {} (recipient {}, key {})",
            r.buyer_did,
            shown(&r.buyer_id),
            r.buyer_public_key_hex
        ),
        format!(
            "  amount    {amount} ({} base units, {} decimals)",
            r.amount, r.decimals
        ),
        format!("  payment   {}", shown(&r.payment.to_string())),
        format!("  license   {}", license(&r.license)),
        format!(
            "  times     ordered {}, paid {}, issued {}",
            r.ordered_at, r.paid_at, r.issued_at
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(shown("a\u{1b}[31mb\nc"), "a\\u{1b}[31mb\\nc");
        assert_eq!(shown("Überweisung 🤖"), "Überweisung 🤖");
    }
}
