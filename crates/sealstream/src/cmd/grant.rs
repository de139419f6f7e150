//! `sealstream grant`.

use std::sync::Arc;

use sealstream_core::access::{Buyer, GrantError, ACCESS_SCHEMA_VERSION};
use sealstream_core::json::{Map, Value};
use sealstream_core::pool::default_parallelism;
use sealstream_files::grant::{grant_dir, GrantDirError};

use crate::cli::GrantArgs;
use crate::cmd::chain_error;
use crate::error::{CliError, CliResult};
use crate::keyfile;
use crate::ui::{human_size, Ui};

pub fn run(args: GrantArgs, ui: Ui) -> CliResult {
    if args.max_file_size <= 0 {
        return Err(CliError::input("--max-file-size must be greater than 0"));
    }
    let buyer_id = args.buyer_id.trim();
    if buyer_id.is_empty() {
        return Err(CliError::input("--buyer-id must not be empty"));
    }
    keyfile::x25519_public(args.buyer_public_key.trim(), "--buyer-public-key")?;
    let buyer =
        Buyer::new(buyer_id, &args.buyer_public_key).map_err(|e| CliError::input(e.to_string()))?;
    let owner = Arc::new(keyfile::x25519_secret(
        &args.owner_private_key_file,
        "owner private key",
    )?);
    if !args.chunk_dir.is_dir() {
        return Err(CliError::input(format!(
            "{}: --chunk-dir: no such directory",
            args.chunk_dir.display()
        )));
    }
    let bar = ui.progress(None, false, "granting");
    let mut progress = |n: u64| bar.inc(n);
    let result = grant_dir(
        &args.chunk_dir,
        owner,
        &buyer,
        usize::try_from(args.max_file_size).unwrap_or(usize::MAX),
        &args.output_dir,
        args.parallelism.unwrap_or_else(default_parallelism),
        &mut progress,
    );
    bar.finish_and_clear();
    let summary = result.map_err(|e| match e {
        GrantDirError::Chain(err) => chain_error(err),
        GrantDirError::Grant(
            GrantError::Unwrap { index, .. } | GrantError::KeyCommitment { index },
        ) => CliError::integrity(format!(
            "{}: chunk {index}: the owner key does not open the chunk key (wrong owner key?)",
            args.owner_private_key_file.display()
        )),
        GrantDirError::Grant(err) => {
            CliError::integrity(format!("{}: {err}", args.chunk_dir.display()))
        }
        GrantDirError::Write(err) => CliError::input(format!("cannot write output: {err}")),
        other => CliError::input(other.to_string()),
    })?;

    if ui.json {
        let mut m = Map::new();
        m.insert("schemaVersion".into(), ACCESS_SCHEMA_VERSION.into());
        m.insert("buyerId".into(), buyer_id.into());
        m.insert("chunkCount".into(), Value::from(summary.chunks));
        m.insert("fileCount".into(), Value::from(summary.files.len() as u64));
        m.insert(
            "outputDir".into(),
            args.output_dir.display().to_string().into(),
        );
        m.insert(
            "files".into(),
            Value::Array(
                summary
                    .files
                    .iter()
                    .map(|(name, size)| {
                        let mut f = Map::new();
                        f.insert("name".into(), name.as_str().into());
                        f.insert("sizeBytes".into(), Value::from(*size));
                        Value::Object(f)
                    })
                    .collect(),
            ),
        );
        ui.json_out(&Value::Object(m));
    } else {
        let n = summary.files.len();
        ui.say(format!(
            "\nWrote {n} buyer access {} to {}\n",
            if n == 1 { "file" } else { "files" },
            args.output_dir.display()
        ));
        ui.say(format!("  Schema:       {ACCESS_SCHEMA_VERSION}"));
        ui.say(format!("  Buyer ID:     {buyer_id}"));
        ui.say(format!("  Chunks:       {}", summary.chunks));
        ui.say(format!("  Files:        {n}\n"));
        for (name, size) in &summary.files {
            ui.say(format!("    {name}  ({})", human_size(*size)));
        }
    }
    Ok(())
}
