//! `sealstream verify`.

use sealstream_core::chunk::{verify_chain, PublishManifest};
use sealstream_core::json::{self, Map, Value};
use sealstream_core::pool::default_parallelism;
use sealstream_files::layout::{list_chain, read_ciphertext, read_envelope, ReadChainError};

use crate::cli::VerifyArgs;
use crate::cmd::{chain_error, verify_message};
use crate::error::{at, CliError, CliResult, Exit};
use crate::ui::Ui;

pub fn run(args: VerifyArgs, ui: Ui) -> CliResult {
    if !args.chunk_dir.is_dir() {
        return Err(CliError::input(format!(
            "{}: --chunk-dir: no such directory",
            args.chunk_dir.display()
        )));
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| args.chunk_dir.clone());
    let list = list_chain(&args.chunk_dir).map_err(chain_error)?;
    let items = list
        .iter()
        .map(|(index, path)| -> Result<_, ReadChainError> {
            let env = read_envelope(path)?;
            let ct = read_ciphertext(&data_dir, *index)?;
            Ok((env, ct))
        });
    let bar = ui.progress(Some(list.len() as u64), false, "verifying");
    let items = items.inspect(|_| bar.inc(1));
    let outcome = verify_chain(items, args.parallelism.unwrap_or_else(default_parallelism))
        .map_err(chain_error)?;
    bar.finish_and_clear();

    // The manifest, when present, must describe this chain.
    let mut manifest_problem = None;
    let manifest_path = args.chunk_dir.join("manifest.json");
    if let Ok(bytes) = std::fs::read(&manifest_path) {
        match json::parse(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|v| PublishManifest::from_json(&v).map_err(|e| e.to_string()))
        {
            Ok(m) if m.total_chunks != list.len() as u64 => {
                manifest_problem = Some(format!(
                    "totalChunks is {}, the chain has {} chunks",
                    m.total_chunks,
                    list.len()
                ))
            }
            Ok(_) => {}
            Err(e) => manifest_problem = Some(e),
        }
    }

    // The dataset, when present (or required), must describe this chain.
    let dataset_path = args.chunk_dir.join("dataset.json");
    let dataset_result = if outcome.is_err() || manifest_problem.is_some() {
        None
    } else if dataset_path.exists() {
        Some(crate::cmd::dataset::check_chain(
            &args.chunk_dir,
            &dataset_path,
        ))
    } else if args.require_dataset {
        Some(Err(CliError::input(at(
            &dataset_path,
            "no dataset.json (--require-dataset)",
        ))))
    } else {
        None
    };
    let dataset = match dataset_result {
        Some(Err(e)) => {
            if ui.json {
                let mut m = Map::new();
                m.insert("valid".into(), false.into());
                m.insert("totalChunks".into(), Value::from(list.len() as u64));
                m.insert("reason".into(), e.message.as_str().into());
                ui.json_out(&Value::Object(m));
            }
            return Err(e);
        }
        Some(Ok(manifest)) => Some(manifest),
        None => None,
    };
    let dataset_checked = dataset.is_some();

    let mut m = Map::new();
    let result = match (&outcome, &manifest_problem) {
        (Ok(_), None) => {
            m.insert("valid".into(), true.into());
            m.insert("totalChunks".into(), Value::from(list.len() as u64));
            m.insert("datasetChecked".into(), dataset_checked.into());
            ui.say(format!(
                "chain intact: {} chunks verified in {}{}",
                list.len(),
                args.chunk_dir.display(),
                if dataset_checked {
                    ", matching its signed dataset.json"
                } else {
                    ""
                }
            ));
            // Gaps the dataset states: facts about the capture, not failures.
            if let Some(d) = dataset.as_ref().filter(|d| !d.gaps.is_empty()) {
                m.insert(
                    "gaps".into(),
                    Value::Array(
                        d.gaps
                            .iter()
                            .map(|g| Value::Object(g.to_fields()))
                            .collect(),
                    ),
                );
                ui.say(format!(
                    "dataset.json states {} gap{} (what the capture could not record; not a verification failure):",
                    d.gaps.len(),
                    if d.gaps.len() == 1 { "" } else { "s" }
                ));
                for g in &d.gaps {
                    ui.say(format!("  gap: {g}"));
                }
            }
            Ok(())
        }
        (Err(e), _) => {
            m.insert("valid".into(), false.into());
            m.insert("totalChunks".into(), Value::from(list.len() as u64));
            m.insert("failedAtIndex".into(), Value::from(e.index));
            m.insert("reason".into(), e.reason.to_string().into());
            m.insert("referenceReason".into(), e.reason.reference_reason().into());
            Err(CliError {
                exit: Exit::Input,
                message: verify_message(e, &args.chunk_dir, &data_dir),
            })
        }
        (Ok(_), Some(problem)) => {
            m.insert("valid".into(), false.into());
            m.insert("totalChunks".into(), Value::from(list.len() as u64));
            m.insert("reason".into(), format!("manifest.json: {problem}").into());
            Err(CliError {
                exit: Exit::Input,
                message: at(&manifest_path, problem),
            })
        }
    };
    if ui.json {
        ui.json_out(&Value::Object(m));
    }
    result
}
