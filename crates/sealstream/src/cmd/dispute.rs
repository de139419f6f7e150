//! `sealstream dispute verify`: dispute evidence checked offline
//! (`sealstream_api::disputes`, the same code the market's checker runs).

use std::path::Path;

use sealstream_api::disputes::{self, EvidenceError};
use sealstream_core::json::{Map, Value};

use crate::cli::DisputeCommand;
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

pub fn run(cmd: DisputeCommand, ui: Ui) -> CliResult {
    match cmd {
        DisputeCommand::Verify { file } => verify(&file, ui),
    }
}

fn verify(path: &Path, ui: Ui) -> CliResult {
    let bytes =
        std::fs::read(path).map_err(|e| CliError::input(at(path, format!("cannot read ({e})"))))?;
    let evidence = disputes::parse(&bytes).map_err(|e| CliError::input(at(path, e)))?;
    match disputes::verify(&evidence) {
        Ok(fault) => {
            if ui.json {
                let text = |s: &str| Value::String(s.to_string());
                let mut m = Map::new();
                m.insert("valid".into(), Value::Bool(true));
                m.insert("orderId".into(), text(&evidence.order_id));
                m.insert(
                    "evidenceHash".into(),
                    text(&disputes::evidence_hash(&evidence)),
                );
                m.insert("kind".into(), text(fault.kind.as_str()));
                m.insert("merkleRoot".into(), text(&fault.merkle_root));
                m.insert("chunkId".into(), text(&fault.chunk_id));
                m.insert("chunkIndex".into(), text(&fault.chunk_index.to_string()));
                m.insert("detail".into(), text(&fault.detail));
                ui.json_out(&Value::Object(m));
            } else {
                ui.say(format!(
                    "valid evidence for order {}: {} of chunk {} (index {}) of the dataset with \
                     root {}: {}",
                    evidence.order_id,
                    fault.kind,
                    fault.chunk_id,
                    fault.chunk_index,
                    fault.merkle_root,
                    fault.detail
                ));
            }
            Ok(())
        }
        Err(e @ EvidenceError::Malformed { .. }) => Err(CliError::input(at(path, e))),
        Err(e) => Err(CliError::integrity(at(path, e))),
    }
}
