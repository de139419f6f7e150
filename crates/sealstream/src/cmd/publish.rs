//! `sealstream publish`.

use std::io::Read;
use std::path::Path;

use sealstream_core::chunk::{ChainConfig, Recipient};
use sealstream_files::publish::{publish_to_dir, DatasetSigning, PublishError};

use crate::cli::PublishArgs;
use crate::error::{at, CliError, CliResult};
use crate::fetch;
use crate::keyfile;
use crate::ui::Ui;

fn recipient_flag(text: &str) -> CliResult<Recipient> {
    let mut parts = text.splitn(3, ':');
    let (Some(id), Some(kind), Some(hex)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CliError::input(format!(
            "--recipient: expected ID:TYPE:HEX, got {} field(s)",
            text.split(':').count()
        )));
    };
    if id.is_empty() || kind.is_empty() {
        return Err(CliError::input(
            "--recipient: ID and TYPE must not be empty",
        ));
    }
    keyfile::x25519_public(hex, "--recipient")?;
    Recipient::from_text(id, kind, hex, "--recipient").map_err(|e| CliError::input(e.to_string()))
}

pub fn run(args: PublishArgs, ui: Ui) -> CliResult {
    if args.chunk_size <= 0 {
        return Err(CliError::input("--chunk-size must be a positive integer"));
    }
    if args.machine_did.trim().is_empty() {
        return Err(CliError::input("--machine-did must not be empty"));
    }
    if args.machine_key_id.trim().is_empty() {
        return Err(CliError::input("--machine-key-id must not be empty"));
    }
    let mut recipients = Vec::new();
    for (flag, text, id, kind) in [
        (
            "--owner-public-key",
            &args.owner_public_key,
            "owner-1",
            "owner",
        ),
        (
            "--operator-public-key",
            &args.operator_public_key,
            "operator-1",
            "operator",
        ),
        (
            "--machine-public-key",
            &args.machine_public_key,
            "machine-1",
            "machine",
        ),
    ] {
        keyfile::x25519_public(text, flag)?;
        recipients.push(
            Recipient::from_text(id, kind, text, flag)
                .map_err(|e| CliError::input(e.to_string()))?,
        );
    }
    for r in &args.recipients {
        recipients.push(recipient_flag(r)?);
    }
    let signing_key = keyfile::ed25519_secret(&args.signing_key_file, "signing key")?;
    let dataset = match &args.dataset_key_file {
        Some(path) => {
            let machine_key = keyfile::secp256k1_secret(path, "dataset key")?;
            let did = sealstream_core::identity::Did::parse(&args.machine_did, "--machine-did")
                .map_err(|e| CliError::input(format!("{e} (needed to sign a dataset)")))?;
            if did.address() != machine_key.address() {
                return Err(CliError::input(at(
                    path,
                    "dataset key: not the key of --machine-did",
                )));
            }
            Some(DatasetSigning {
                machine_key: Some(machine_key),
                chain_key: Some(keyfile::ed25519_secret(
                    &args.signing_key_file,
                    "signing key",
                )?),
                info: crate::cmd::dataset::info_from(&args.dataset),
            })
        }
        None if crate::cmd::dataset::has_info(&args.dataset) && !uploads(&args) => {
            return Err(CliError::input(
                "--topic and the other dataset flags need --dataset-key-file",
            ));
        }
        None => None,
    };
    let mut config = ChainConfig::new(
        signing_key,
        &args.machine_did,
        &args.machine_key_id,
        recipients,
    );
    config.chunk_size = usize::try_from(args.chunk_size)
        .map_err(|_| CliError::input("--chunk-size is too large"))?;
    if let Some(p) = args.parallelism {
        config.parallelism = p.max(1);
    }

    let (reader, total, label): (Box<dyn Read>, Option<u64>, String) = if args.input == "-" {
        (Box::new(std::io::stdin().lock()), None, "stdin".into())
    } else if args.input.starts_with("http://") || args.input.starts_with("https://") {
        ui.say(format!("Downloading {}...", fetch::redact_url(&args.input)));
        let (reader, len) = fetch::open_stream(&args.input)?;
        (reader, len, fetch::redact_url(&args.input))
    } else {
        let path = Path::new(&args.input);
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CliError::input(at(path, "input: no such file")),
            _ => CliError::input(at(path, format!("input: cannot read ({e})"))),
        })?;
        let meta = file.metadata().map_err(|e| CliError::input(at(path, e)))?;
        if !meta.is_file() {
            return Err(CliError::input(at(path, "input: not a file")));
        }
        (Box::new(file), Some(meta.len()), args.input.clone())
    };

    let bar = ui.progress(total, true, "publishing");
    let mut progress = |n: u64| bar.inc(n);
    let result = publish_to_dir(reader, config, &args.output_dir, dataset, &mut progress);
    bar.finish_and_clear();
    let summary = result.map_err(|e| match e {
        PublishError::Read(err) => {
            let kind = if label.starts_with("http") {
                CliError::integrity
            } else {
                CliError::input
            };
            kind(format!("{label}: reading input failed: {err}"))
        }
        PublishError::Write(err) => CliError::input(format!("cannot write output: {err}")),
        PublishError::Validation(err) => CliError::input(err.to_string()),
        other => CliError::input(other.to_string()),
    })?;

    let m = &summary.manifest;
    if ui.json {
        ui.json_out(&m.to_json());
    } else {
        ui.say(format!(
            "\nPublished {} chunks to {}/\n",
            m.total_chunks,
            args.output_dir.display()
        ));
        ui.say("  Schema:       peaq.stream.chunks.v1");
        ui.say(format!("  Source Hash:  {}", m.source_hash));
        ui.say(format!("  Chunk Size:   {} bytes", m.chunk_size));
        ui.say(format!("  Machine DID:  {}", m.machine_did));
        ui.say(format!("  Bytes:        {}", summary.bytes));
        if let Some(d) = &summary.dataset {
            ui.say(format!(
                "  Dataset:      dataset.json, merkle root {}",
                d.merkle_root
            ));
        }
        // The manifest path on stdout, for piping (as the reference does).
        println!("{}", summary.manifest_path.display());
    }
    #[cfg(feature = "agent")]
    if let (Some(server), Some(key_file), Some(topic)) =
        (&args.to, &args.dataset_key_file, &args.dataset.topic)
    {
        let key = keyfile::secp256k1_secret(key_file, "dataset key")?;
        crate::cmd::market::upload_dir(server, &args.output_dir, topic, key, 8, &ui)?;
    }
    Ok(())
}

/// Whether `--server` names a market server to upload to (a build without the
/// `agent` feature has no client and no `--server`).
fn uploads(args: &PublishArgs) -> bool {
    #[cfg(feature = "agent")]
    {
        args.to.is_some()
    }
    #[cfg(not(feature = "agent"))]
    {
        let _ = args;
        false
    }
}
