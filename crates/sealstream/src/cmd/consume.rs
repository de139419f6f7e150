//! `sealstream consume`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sealstream_core::json::{Map, Value};
use sealstream_core::pool::default_parallelism;
use sealstream_files::consume::{consume_to_file, ConsumeError, ConsumeRequest, FoundGap};

use crate::cli::ConsumeArgs;
use crate::cmd::{chain_error, verify_message};
use crate::error::{at, CliError, CliResult};
use crate::fetch::{self, Destination};
use crate::keyfile;
use crate::ui::Ui;

fn need_dir(dir: &Option<PathBuf>, flag: &str) -> CliResult<PathBuf> {
    let dir = dir.clone().ok_or_else(|| {
        CliError::input(format!(
            "{flag} is required when --download-url is not provided"
        ))
    })?;
    if !dir.is_dir() {
        return Err(CliError::input(format!(
            "{}: {flag}: no such directory",
            dir.display()
        )));
    }
    Ok(dir)
}

pub fn run(args: ConsumeArgs, ui: Ui) -> CliResult {
    let buyer_id = args.buyer_id.trim().to_string();
    if buyer_id.is_empty() {
        return Err(CliError::input("--buyer-id must not be empty"));
    }
    for (i, did) in args.dataset_signers.iter().enumerate() {
        sealstream_core::identity::Did::parse(did, "--dataset-signer")
            .map_err(|e| CliError::input(format!("--dataset-signer #{}: {e}", i + 1)))?;
    }
    if args.output.is_dir() {
        return Err(CliError::input(format!(
            "{}: --output must be a file path, not a directory",
            args.output.display()
        )));
    }
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| CliError::input(at(parent, format!("cannot create ({e})"))))?;
    }
    let buyer_key = Arc::new(keyfile::x25519_secret(
        &args.buyer_private_key_file,
        "buyer private key",
    )?);

    // With --download-url, fetch the release package into a work directory first.
    let mut dataset_signers = args.dataset_signers.clone();
    let mut package = None;
    let (chunk_dir, data_dir, access_dir) = match &args.download_url {
        Some(url) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(CliError::input(
                    "--download-url must start with http:// or https://",
                ));
            }
            ui.say(format!(
                "Downloading release package from {}...",
                fetch::redact_url(url)
            ));
            let destination = match (&args.keep_download, &args.work_dir) {
                (Some(dir), _) => Destination::Keep(dir),
                (None, Some(dir)) => Destination::WorkDir(dir),
                (None, None) => Destination::Temporary,
            };
            let mut pkg = fetch::ReleasePackage::download(url, destination)?;
            if args.keep_files {
                pkg.retain();
            }
            let dataset = pkg.chunk_dir().join(DATASET_FILE);
            if let (Some(registration), true) = (pkg.registration(), dataset.is_file()) {
                let owner = registered_owner(&registration, &dataset)?;
                if !dataset_signers.contains(&owner) {
                    ui.say(format!(
                        "Accepting the machine's owner {owner} as the dataset's signer: the \
                         machine's signed registration in the release package names it"
                    ));
                    dataset_signers.push(owner);
                }
            }
            let dirs = (pkg.chunk_dir(), pkg.data_dir(), pkg.access_dir());
            package = Some(pkg);
            dirs
        }
        None => (
            need_dir(&args.chunk_dir, "--chunk-dir")?,
            need_dir(&args.data_dir, "--data-dir")?,
            need_dir(&args.access_dir, "--access-dir")?,
        ),
    };

    let req = ConsumeRequest {
        chunk_dir: &chunk_dir,
        data_dir: &data_dir,
        access_dir: &access_dir,
        buyer_id: &buyer_id,
        buyer_key,
        verify: !args.skip_verify,
        dataset_signers: &dataset_signers,
        parallelism: args.parallelism.unwrap_or_else(default_parallelism),
    };
    let bar = ui.progress(None, true, "decrypting");
    let mut progress = |n: u64| bar.inc(n);
    // Each gap record as it streams by, above the progress bar.
    let mut on_gap = |found: &FoundGap| {
        if !ui.quiet && !ui.json {
            bar.suspend(|| ui.say(gap_line(found)));
        }
    };
    let result = consume_to_file(&req, &args.output, &mut progress, &mut on_gap);
    bar.finish_and_clear();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            if let Some(pkg) = &package {
                ui.say(if pkg.is_kept() {
                    format!("Downloaded files kept in: {}", pkg.path().display())
                } else {
                    "The download was removed (--keep-download DIR keeps it)".to_string()
                });
            }
            return Err(consume_error(
                e,
                &args.buyer_private_key_file,
                (&chunk_dir, &data_dir, &access_dir),
            ));
        }
    };
    if let Some(pkg) = &package {
        if pkg.is_kept() {
            ui.say(format!(
                "Downloaded files kept in: {}",
                pkg.path().display()
            ));
        }
    }

    if ui.json {
        let mut m = Map::new();
        m.insert("output".into(), args.output.display().to_string().into());
        m.insert("totalBytes".into(), Value::from(summary.bytes));
        m.insert("chunkCount".into(), Value::from(summary.chunks));
        m.insert("sourceHash".into(), summary.source_hash.as_str().into());
        m.insert("buyerId".into(), buyer_id.as_str().into());
        m.insert("verified".into(), summary.verified.into());
        m.insert(
            "gaps".into(),
            Value::Array(
                summary
                    .gaps
                    .iter()
                    .map(|g| Value::Object(g.to_fields()))
                    .collect(),
            ),
        );
        ui.json_out(&Value::Object(m));
    } else {
        if summary.verified {
            ui.say(format!(
                "Verifying chain... \u{2713} {} chunks valid.",
                summary.chunks
            ));
        }
        ui.say(format!(
            "\nReassembled {} bytes to {}\n",
            summary.bytes,
            args.output.display()
        ));
        ui.say(format!("  Source Hash:  {}", summary.source_hash));
        ui.say(format!("  Chunks:       {}", summary.chunks));
        if !summary.gaps.is_empty() {
            ui.say(format!("  Gaps:         {}", gaps_summary(&summary.gaps)));
        }
        ui.say(format!("  Buyer ID:     {buyer_id}"));
    }
    Ok(())
}

/// A gap record found in the chunks, as `consume` reports it.
fn gap_line(found: &FoundGap) -> String {
    format!("Gap recorded in chunk {}: {}", found.chunk, found.gap)
}

/// The summary's `Gaps:` value.
fn gaps_summary(gaps: &[sealstream_core::gap::Gap]) -> String {
    match gaps.len() {
        1 => "1 gap record, listed above".to_string(),
        n => format!("{n} gap records, listed above"),
    }
}

/// The name of the signed dataset manifest in a chunk directory.
const DATASET_FILE: &str = "dataset.json";

/// The owner a release package's machine registration names, once its
/// signatures are checked and it is shown to be the registration of the
/// dataset's machine and chain key: only the machine's own signature can
/// make a DID its owner, so a server cannot name a signer of its choosing
/// (docs/security.md). Anything else is an integrity failure (exit 2).
fn registered_owner(registration: &Path, dataset: &Path) -> CliResult<String> {
    let bad = |what: String| {
        CliError::integrity(at(
            registration,
            format!("the release package's machine registration {what}"),
        ))
    };
    let text = std::fs::read(registration).map_err(|e| CliError::input(at(registration, e)))?;
    let checked = sealstream_api::machines::SignedRegistration::parse(&text)
        .and_then(|doc| doc.verified())
        .map_err(|e| bad(format!("does not verify: {e}")))?;
    let bytes = std::fs::read(dataset).map_err(|e| CliError::input(at(dataset, e)))?;
    let manifest = sealstream_core::dataset::DatasetManifest::parse(&bytes)
        .map_err(|e| CliError::integrity(at(dataset, e)))?;
    let same_machine = sealstream_core::identity::Did::parse(&manifest.machine_did, "machineDid")
        .is_ok_and(|did| did == checked.machine);
    if !same_machine {
        return Err(bad(format!(
            "is of machine {}, the dataset of {}",
            checked.machine, manifest.machine_did
        )));
    }
    if !checked
        .chain_public_key
        .to_hex()
        .eq_ignore_ascii_case(&manifest.chain_public_key_hex)
    {
        return Err(bad("names another chain key than the dataset's".to_string()));
    }
    Ok(checked.owner.to_string())
}

fn consume_error(
    e: ConsumeError,
    key_file: &Path,
    (chunk_dir, data_dir, access_dir): (&Path, &Path, &Path),
) -> CliError {
    use sealstream_core::chunk::DecryptError;
    use sealstream_core::dataset::{DatasetMismatch, SignatureError};
    use sealstream_files::layout::{ciphertext_name, envelope_name};
    match e {
        ConsumeError::Chain(err) => chain_error(err),
        ConsumeError::File(err) => CliError::input(err.to_string()),
        ConsumeError::NoAccessFiles(_) | ConsumeError::AccessFile { .. } => {
            CliError::input(e.to_string())
        }
        ConsumeError::Manifest { .. } => CliError::integrity(e.to_string()),
        ConsumeError::Decrypt {
            index,
            error: DecryptError::Unwrap,
        } => CliError::integrity(format!(
            "{}: chunk {index}: access not granted to this buyer private key",
            key_file.display()
        )),
        ConsumeError::Verify(err) => CliError::integrity(verify_message(&err, chunk_dir, data_dir)),
        ConsumeError::NoAccess { .. } => CliError::integrity(at(access_dir, e)),
        ConsumeError::Dataset {
            mismatch: DatasetMismatch::Signature(SignatureError::Eip191Signer { ref signer, .. }),
            ..
        } => {
            let hint = format!(
                " (a dataset signed by its machine's owner: pass --dataset-signer {signer} if \
                 that is who sold it, the listing's provider)"
            );
            CliError::integrity(format!("{e}{hint}"))
        }
        ConsumeError::Dataset { .. }
        | ConsumeError::SourceHash { .. }
        | ConsumeError::GapRecord { .. } => CliError::integrity(e.to_string()),
        ConsumeError::Decrypt {
            index,
            error: error @ (DecryptError::Cipher | DecryptError::PlaintextHash),
        } => CliError::integrity(at(
            &data_dir.join(ciphertext_name(index)),
            format!("chunk {index}: {error}"),
        )),
        ConsumeError::Decrypt { index, error } => CliError::integrity(at(
            &chunk_dir.join(envelope_name(index)),
            format!("chunk {index}: {error}"),
        )),
        other => CliError::integrity(other.to_string()),
    }
}
