//! `sealstream dataset sign|prove|prove-extension|verify-chunk|verify-extension`.

use std::path::Path;
use std::sync::Arc;

use sealstream_core::chunk::{
    verify_chain, ChainItem, ChainReadError, ChainReader, ChainReaderOptions, ChunkEnvelope,
    PublishManifest,
};
use sealstream_core::dataset::{
    verify_chunk_allowing, verify_extension, ConsistencyProof, DatasetBuilder, DatasetInfo,
    DatasetManifest, DatasetVerifier, InclusionProof,
};
use sealstream_core::gap::{Gap, GapScanner};
use sealstream_core::json::{self, write::to_python_pretty, Value};
use sealstream_core::pool::default_parallelism;
use sealstream_files::layout::{
    list_chain, read_ciphertext, read_envelope, write_atomic, ReadChainError,
};

use crate::cli::{DatasetCommand, DatasetInfoArgs};
use crate::cmd::{chain_error, verify_message};
use crate::error::{at, CliError, CliResult, Exit};
use crate::keyfile;
use crate::ui::Ui;

pub fn has_info(a: &DatasetInfoArgs) -> bool {
    a.topic.is_some()
        || a.data_schema_version.is_some()
        || a.first_captured_at.is_some()
        || a.last_captured_at.is_some()
        || !a.sample_chunks.is_empty()
}

pub fn info_from(a: &DatasetInfoArgs) -> DatasetInfo {
    DatasetInfo {
        topic: a.topic.clone(),
        data_schema_version: a.data_schema_version.clone(),
        first_captured_at: a.first_captured_at.clone(),
        last_captured_at: a.last_captured_at.clone(),
        sample_chunk_indexes: a.sample_chunks.clone(),
        ..DatasetInfo::default()
    }
}

fn read_json(path: &Path, what: &str) -> CliResult<Value> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::input(at(path, format!("{what}: cannot read ({e})"))))?;
    json::parse(&bytes).map_err(|e| CliError::input(at(path, format!("{what}: {e}"))))
}

pub fn read_dataset(path: &Path) -> CliResult<DatasetManifest> {
    DatasetManifest::from_json(&read_json(path, "dataset")?)
        .map_err(|e| CliError::input(at(path, e)))
}

fn write_out(out: Option<&Path>, value: &Value) -> CliResult {
    let text = to_python_pretty(value);
    match out {
        Some(p) => write_atomic(p, text.as_bytes())
            .map_err(|e| CliError::input(at(p, format!("cannot write ({e})")))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// The chunk ids of a chain directory, in order.
fn chunk_ids(dir: &Path) -> CliResult<Vec<String>> {
    let list = list_chain(dir).map_err(chain_error)?;
    list.iter()
        .map(|(_, p)| read_envelope(p).map(|e| e.chunk_id).map_err(chain_error))
        .collect()
}

/// Check a chain directory against its dataset.json (the v1 checks are done
/// by the caller); the manifest, once it holds.
pub fn check_chain(chunk_dir: &Path, dataset_path: &Path) -> CliResult<DatasetManifest> {
    let manifest = read_dataset(dataset_path)?;
    let mut check =
        DatasetVerifier::new(&manifest).map_err(|e| CliError::input(at(dataset_path, e)))?;
    for (_, path) in list_chain(chunk_dir).map_err(chain_error)? {
        let env = read_envelope(&path).map_err(chain_error)?;
        check
            .push(&env)
            .map_err(|e| CliError::input(at(dataset_path, e)))?;
    }
    check
        .finish()
        .map_err(|e| CliError::input(at(dataset_path, e)))?;
    Ok(manifest)
}

pub fn run(cmd: DatasetCommand, ui: Ui) -> CliResult {
    match cmd {
        DatasetCommand::Sign {
            chunk_dir,
            key_file,
            chain_key_file,
            recipient_private_key_file,
            info,
        } => sign(
            &chunk_dir,
            SignKeys {
                machine: key_file.as_deref(),
                chain: chain_key_file.as_deref(),
                recipient: recipient_private_key_file.as_deref(),
            },
            &info,
            ui,
        ),
        DatasetCommand::Prove {
            chunk_dir,
            index,
            out,
        } => {
            let ids = chunk_ids(&chunk_dir)?;
            let proof = InclusionProof::build(&ids, 0, index)
                .map_err(|e| CliError::input(at(&chunk_dir, e)))?;
            write_out(out.as_deref(), &proof.to_json())
        }
        DatasetCommand::ProveExtension {
            chunk_dir,
            old,
            out,
        } => {
            let old_manifest = read_dataset(&old)?;
            let ids = chunk_ids(&chunk_dir)?;
            let proof = ConsistencyProof::build(&ids, old_manifest.chunk_count)
                .map_err(|e| CliError::input(at(&chunk_dir, e)))?;
            if proof.old_root != old_manifest.merkle_root {
                return Err(CliError::input(at(&old, "merkleRoot: the chain's first chunkCount chunks are not this dataset's (history rewritten)")));
            }
            write_out(out.as_deref(), &proof.to_json())
        }
        DatasetCommand::VerifyChunk {
            dataset,
            proof,
            envelope,
            data,
            signers,
        } => {
            let manifest = read_dataset(&dataset)?;
            for (i, did) in signers.iter().enumerate() {
                sealstream_core::identity::Did::parse(did, "--signer")
                    .map_err(|e| CliError::input(format!("--signer #{}: {e}", i + 1)))?;
            }
            let signers: Vec<&str> = signers.iter().map(String::as_str).collect();
            let proof_doc = InclusionProof::from_json(&read_json(&proof, "proof")?)
                .map_err(|e| CliError::input(at(&proof, e)))?;
            let env_bytes = std::fs::read(&envelope)
                .map_err(|e| CliError::input(at(&envelope, format!("cannot read ({e})"))))?;
            let env =
                ChunkEnvelope::parse(&env_bytes).map_err(|e| CliError::input(at(&envelope, e)))?;
            let ct = std::fs::read(&data)
                .map_err(|e| CliError::input(at(&data, format!("cannot read ({e})"))))?;
            verify_chunk_allowing(&manifest, &proof_doc, &env, &ct, &signers).map_err(|e| {
                CliError {
                    exit: Exit::Input,
                    message: format!("chunk {}: {e}", env.index),
                }
            })?;
            ui.say(format!(
                "chunk {} is part of the dataset (merkle root {})",
                env.index, manifest.merkle_root
            ));
            Ok(())
        }
        DatasetCommand::VerifyExtension { old, new, proof } => {
            let old_m = read_dataset(&old)?;
            let new_m = read_dataset(&new)?;
            let p = ConsistencyProof::from_json(&read_json(&proof, "proof")?)
                .map_err(|e| CliError::input(at(&proof, e)))?;
            verify_extension(&old_m, &new_m, &p).map_err(|e| CliError {
                exit: Exit::Input,
                message: e.to_string(),
            })?;
            ui.say(format!(
                "{} ({} chunks) extends {} ({} chunks)",
                new.display(),
                new_m.chunk_count,
                old.display(),
                old_m.chunk_count
            ));
            Ok(())
        }
    }
}

/// The key files of `dataset sign`.
struct SignKeys<'a> {
    machine: Option<&'a Path>,
    chain: Option<&'a Path>,
    recipient: Option<&'a Path>,
}

/// The gap records in the plaintext of the (verified) chain in `chunk_dir`,
/// decrypted with `key_file`, the private key of one of its recipients.
fn chain_gaps(chunk_dir: &Path, key_file: &Path, ui: Ui) -> CliResult<Vec<Gap>> {
    let key = keyfile::x25519_secret(key_file, "recipient private key")?;
    let public = key.public_key().to_hex();
    let list = list_chain(chunk_dir).map_err(chain_error)?;
    let items = list.iter().map(|(index, path)| -> CliResult<ChainItem> {
        let envelope = read_envelope(path).map_err(chain_error)?;
        let key = envelope
            .encryption
            .key_recipients
            .iter()
            .find(|r| r.public_key_hex.eq_ignore_ascii_case(&public))
            .cloned()
            .ok_or_else(|| {
                CliError::input(at(
                    key_file,
                    format!("chunk {index}: not a recipient of this chunk (public key {public})"),
                ))
            })?;
        let ciphertext = read_ciphertext(chunk_dir, *index)
            .map_err(|e| CliError::input(e.to_string()))?
            .ok_or_else(|| {
                CliError::input(at(chunk_dir, format!("chunk {index}: no ciphertext")))
            })?;
        Ok(ChainItem {
            envelope,
            key,
            ciphertext,
        })
    });
    // Verified already: only decrypted (the key commitment and plaintext hash are still checked).
    let options = ChainReaderOptions {
        verify: false,
        parallelism: default_parallelism(),
        ..ChainReaderOptions::default()
    };
    let mut reader = ChainReader::new(items, Arc::new(key), options);
    let read_error = |e: ChainReadError<CliError>| match e {
        ChainReadError::Source(e) => e,
        other => CliError::integrity(at(chunk_dir, other)),
    };
    let bar = ui.progress(None, true, "finding gap records");
    let mut scanner = GapScanner::new();
    let mut gaps = Vec::new();
    let mut index = list.first().map_or(0, |(i, _)| *i);
    while let Some(plaintext) = reader.next_chunk().map_err(read_error)? {
        bar.inc(plaintext.len() as u64);
        for found in scanner.push(&plaintext) {
            gaps.push(
                found.map_err(|e| CliError::input(at(chunk_dir, format!("chunk {index}: {e}"))))?,
            );
        }
        index += 1;
    }
    if let Some(found) = scanner.finish() {
        let last = index.saturating_sub(1);
        gaps.push(found.map_err(|e| CliError::input(at(chunk_dir, format!("chunk {last}: {e}"))))?);
    }
    reader.finish().map_err(read_error)?;
    bar.finish_and_clear();
    Ok(gaps)
}

fn sign(chunk_dir: &Path, keys: SignKeys<'_>, info: &DatasetInfoArgs, ui: Ui) -> CliResult {
    let (key_file, chain_key_file) = (keys.machine, keys.chain);
    if key_file.is_none() && chain_key_file.is_none() {
        return Err(CliError::input(
            "pass --key-file (secp256k1, EIP-191) and/or --chain-key-file (Ed25519)",
        ));
    }
    let machine_key = key_file
        .map(|p| keyfile::secp256k1_secret(p, "machine key"))
        .transpose()?;
    let chain_key = chain_key_file
        .map(|p| keyfile::ed25519_secret(p, "chain key"))
        .transpose()?;
    let manifest_path = chunk_dir.join("manifest.json");
    let publish = PublishManifest::from_json(&read_json(&manifest_path, "manifest")?)
        .map_err(|e| CliError::input(at(&manifest_path, e)))?;

    // The chain must verify before the machine signs for it.
    let list = list_chain(chunk_dir).map_err(chain_error)?;
    let mut builder = DatasetBuilder::new();
    let mut build_err = None;
    let items = list
        .iter()
        .map(|(index, path)| -> Result<_, ReadChainError> {
            let env = read_envelope(path)?;
            if build_err.is_none() {
                if let Err(e) = builder.push(&env) {
                    build_err = Some(e);
                }
            }
            Ok((env, read_ciphertext(chunk_dir, *index)?))
        });
    let verified = verify_chain(items, default_parallelism()).map_err(chain_error)?;
    if let Err(e) = verified {
        return Err(CliError::integrity(verify_message(
            &e, chunk_dir, chunk_dir,
        )));
    }
    if let Some(e) = build_err {
        return Err(CliError::input(at(chunk_dir, e)));
    }
    if publish.total_chunks != builder.count() {
        return Err(CliError::input(at(
            &manifest_path,
            format!(
                "totalChunks is {}, the chain has {}",
                publish.total_chunks,
                builder.count()
            ),
        )));
    }
    let mut dinfo = info_from(info);
    dinfo.chunk_size = publish.chunk_size;
    dinfo.source_hash = publish.source_hash.clone();
    if let Some(recipient) = keys.recipient {
        dinfo.gaps = chain_gaps(chunk_dir, recipient, ui)?;
    }
    let mut manifest = builder
        .finish(dinfo)
        .ok_or_else(|| CliError::input(at(chunk_dir, "no chunks")))?;
    if let Some(k) = &machine_key {
        manifest.sign_eip191(k).map_err(|e| {
            CliError::input(format!(
                "{}: {e}",
                key_file.unwrap_or(Path::new("")).display()
            ))
        })?;
    }
    if let Some(k) = &chain_key {
        manifest.sign_ed25519(k).map_err(|e| {
            CliError::input(format!(
                "{}: {e}",
                chain_key_file.unwrap_or(Path::new("")).display()
            ))
        })?;
    }
    let path = chunk_dir.join("dataset.json");
    write_atomic(&path, manifest.to_pretty_json().as_bytes())
        .map_err(|e| CliError::input(at(&path, format!("cannot write ({e})"))))?;
    if ui.json {
        ui.json_out(&manifest.to_json());
    } else {
        ui.say(format!(
            "Signed {} for {} chunks, merkle root {}",
            path.display(),
            manifest.chunk_count,
            manifest.merkle_root
        ));
    }
    Ok(())
}
