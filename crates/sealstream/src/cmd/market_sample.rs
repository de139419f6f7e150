//! `sealstream market sample get`: a free sample chunk of a published
//! listing, fetched with no sign-in, checked against the dataset's signed
//! root with core's inclusion-proof check (the one `dataset verify-chunk`
//! runs) and decrypted with core's chunk decryption, with the key the
//! owner disclosed sealed to a throwaway key made here.

use std::path::{Path, PathBuf};

use sealstream_api::listings::{ListingView, SampleView};
use sealstream_api::JsonDocument;
use sealstream_core::chunk::{decrypt_chunk, ChunkEnvelope, KeyRecipient};
use sealstream_core::dataset::{verify_chunk_allowing, DatasetManifest, InclusionProof};
use sealstream_core::json::{write::to_python_pretty, Map, Value};
use sealstream_core::keys::RecipientSecretKey;
use sealstream_files::layout::{ciphertext_name, envelope_name, write_atomic};

use super::market_session::{anonymous, client_error};
use crate::cli::MarketServer;
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

/// What `sample get` was asked to do.
pub struct SampleRequest {
    /// The listing (`ls_…`).
    pub listing: String,
    /// The sample's chain index, or the listing's first sample.
    pub index: Option<u64>,
    /// Check the inclusion proof and the dataset's signature.
    pub verify: bool,
    /// Decrypt the chunk.
    pub decrypt: bool,
    /// Where the files go.
    pub output_dir: Option<PathBuf>,
}

/// A sample and what proves it, as served.
struct Fetched {
    listing: ListingView,
    sample: SampleView,
    envelope: ChunkEnvelope,
    ciphertext: Vec<u8>,
    manifest: DatasetManifest,
    proof: InclusionProof,
}

/// The server's answer was not what the API promises: exit 2.
fn served(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::integrity(format!("sample get: {what}: {e}"))
}

/// A document of an answer as a core value.
fn core_of(doc: &JsonDocument, what: &str) -> CliResult<Value> {
    doc.to_core().map_err(|e| served(what, e))
}

/// `market sample get`.
pub fn get(server: &MarketServer, request: SampleRequest, ui: Ui) -> CliResult {
    if request.decrypt && request.output_dir.is_none() && ui.json {
        return Err(CliError::input(
            "--decrypt --json: give --output-dir for the plaintext (stdout carries the JSON)",
        ));
    }
    let recipient = RecipientSecretKey::generate();
    let fetched = fetch(server, &request, &recipient)?;
    let index = fetched.sample.index;
    let id = &fetched.listing.id;
    let mut signers = Vec::new();
    if request.verify {
        signers = verify(&fetched)?;
        ui.say(format!(
            "Sample chunk {index} of listing {id} verifies: in dataset {} (root {}), signed by {}",
            fetched.sample.dataset_id,
            fetched.manifest.merkle_root,
            signers.join(", ")
        ));
    }
    let plaintext = if request.decrypt {
        let wrapped = &fetched.sample.wrapped_key;
        let entry = KeyRecipient {
            recipient_id: wrapped.recipient_id.clone(),
            recipient_type: wrapped.recipient_type.clone(),
            algorithm: wrapped.algorithm.clone(),
            public_key_hex: wrapped.public_key_hex.clone(),
            wrapped_key_hex: wrapped.wrapped_key_hex.clone(),
        };
        let plain = decrypt_chunk(
            &fetched.envelope,
            &entry,
            &recipient,
            fetched.ciphertext.clone(),
        )
        .map_err(|e| {
            CliError::integrity(format!(
                "sample get: listing {id}: chunk {index} does not decrypt: {e}"
            ))
        })?;
        ui.say(format!(
            "Sample chunk {index} decrypted: {} bytes of plaintext",
            plain.len()
        ));
        Some(plain)
    } else {
        None
    };
    let written = match &request.output_dir {
        Some(dir) => write_files(dir, &fetched, plaintext.as_deref())?,
        None => Vec::new(),
    };
    for path in &written {
        ui.say(format!("  wrote {}", path.display()));
    }
    if ui.json {
        ui.json_out(&summary(
            &fetched,
            request.verify,
            &signers,
            plaintext.as_deref(),
            &written,
        ));
    } else if let (Some(plain), None) = (&plaintext, &request.output_dir) {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(plain).and_then(|()| stdout.flush());
    }
    Ok(())
}

/// The listing, the sample (its key sealed to `recipient`), its
/// ciphertext, the dataset's signed manifest and the chunk's inclusion
/// proof.
fn fetch(
    server: &MarketServer,
    request: &SampleRequest,
    recipient: &RecipientSecretKey,
) -> CliResult<Fetched> {
    let mut client = anonymous(server)?;
    let failed = |e| client_error("sample get", e);
    let listing = client.listing(&request.listing).map_err(failed)?;
    let index = match request.index {
        Some(index) => index,
        None => *listing.samples_available.first().ok_or_else(|| {
            CliError::input(format!(
                "sample get: listing {} offers no sample chunk",
                listing.id
            ))
        })?,
    };
    let sample = client
        .sample(&listing.id, index, &recipient.public_key().to_hex())
        .map_err(failed)?;
    let envelope = ChunkEnvelope::from_json(&core_of(&sample.envelope, "the sample's envelope")?)
        .map_err(|e| served("the sample's envelope", e))?;
    let ciphertext = client
        .sample_ciphertext(&listing.id, index)
        .map_err(failed)?;
    let dataset = client.dataset(&sample.dataset_id).map_err(failed)?;
    let manifest = dataset.manifest.as_ref().ok_or_else(|| {
        served(
            &format!("dataset {}", dataset.id),
            "it has no signed manifest",
        )
    })?;
    let manifest = DatasetManifest::from_json(&core_of(manifest, "the dataset's manifest")?)
        .map_err(|e| served(&format!("dataset {}: manifest", dataset.id), e))?;
    let proof = client
        .dataset_proof(&sample.dataset_id, index)
        .map_err(failed)?;
    Ok(Fetched {
        listing,
        sample,
        envelope,
        ciphertext,
        manifest,
        proof,
    })
}

/// Checks the sample against the listing's dataset: the same dataset and
/// root everywhere, the manifest's signatures (by the machine, or by the
/// listing's provider), the chunk's own hashes and signature, and its
/// inclusion proof up to the signed root. The signers, on success.
fn verify(f: &Fetched) -> CliResult<Vec<String>> {
    let index = f.sample.index;
    let fail = |message: String| {
        CliError::integrity(format!(
            "sample get: listing {}: chunk {index} does not verify: {message}",
            f.listing.id
        ))
    };
    let Some(d) = &f.listing.dataset else {
        return Err(fail(
            "the listing sells a subscription, not a dataset".into(),
        ));
    };
    if f.sample.dataset_id != d.id {
        return Err(fail(format!(
            "the sample is of dataset {}, the listing sells {}",
            f.sample.dataset_id, d.id
        )));
    }
    for (what, root) in [
        ("the listing's dataset", d.merkle_root.as_str()),
        ("the sample's answer", f.sample.merkle_root.as_str()),
    ] {
        if !root.eq_ignore_ascii_case(&f.manifest.merkle_root) {
            return Err(fail(format!(
                "the signed manifest's merkleRoot {} is not {what}'s {root}",
                f.manifest.merkle_root
            )));
        }
    }
    if !f.manifest.machine_did.eq_ignore_ascii_case(&d.machine_did) {
        return Err(fail(format!(
            "the signed manifest is of machine {}, the listing's dataset of {}",
            f.manifest.machine_did, d.machine_did
        )));
    }
    // The owner who signed a dataset of its machine is the listing's
    // provider, as `dataset verify-chunk --dataset-signer` accepts it.
    verify_chunk_allowing(
        &f.manifest,
        &f.proof,
        &f.envelope,
        &f.ciphertext,
        &[f.listing.owner_did.as_str()],
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut signers: Vec<String> = f
        .manifest
        .eip191_signers()
        .into_iter()
        .map(str::to_string)
        .collect();
    if signers.is_empty() {
        signers.push(format!("the chain key {}", f.manifest.chain_public_key_hex));
    }
    Ok(signers)
}

/// Writes the sample's files into `dir` (each atomically); their paths.
fn write_files(dir: &Path, f: &Fetched, plaintext: Option<&[u8]>) -> CliResult<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| CliError::input(at(dir, e)))?;
    let index = f.sample.index;
    let mut files: Vec<(PathBuf, Vec<u8>)> = vec![
        (
            dir.join("dataset.json"),
            f.manifest.to_pretty_json().into_bytes(),
        ),
        (
            dir.join(envelope_name(index)),
            f.envelope.to_pretty_json().into_bytes(),
        ),
        (dir.join(ciphertext_name(index)), f.ciphertext.clone()),
        (
            dir.join(format!("proof-{index}.json")),
            to_python_pretty(&f.proof.to_json()).into_bytes(),
        ),
    ];
    if let Some(plain) = plaintext {
        files.push((dir.join(format!("chunk-{index}.plaintext")), plain.to_vec()));
    }
    for (path, bytes) in &files {
        write_atomic(path, bytes).map_err(|e| CliError::input(at(path, e)))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// The `--json` summary.
fn summary(
    f: &Fetched,
    verified: bool,
    signers: &[String],
    plaintext: Option<&[u8]>,
    written: &[PathBuf],
) -> Value {
    let mut m = Map::new();
    m.insert("listingId".into(), f.listing.id.as_str().into());
    m.insert("datasetId".into(), f.sample.dataset_id.as_str().into());
    m.insert("index".into(), f.sample.index.into());
    m.insert("chunkId".into(), f.envelope.chunk_id.as_str().into());
    m.insert("merkleRoot".into(), f.manifest.merkle_root.as_str().into());
    m.insert("verified".into(), verified.into());
    m.insert(
        "signers".into(),
        Value::Array(signers.iter().map(|s| s.as_str().into()).collect()),
    );
    m.insert("ciphertextBytes".into(), (f.ciphertext.len() as u64).into());
    m.insert(
        "plaintextBytes".into(),
        plaintext.map_or(Value::Null, |p| (p.len() as u64).into()),
    );
    m.insert(
        "files".into(),
        Value::Array(
            written
                .iter()
                .map(|p| p.display().to_string().into())
                .collect(),
        ),
    );
    Value::Object(m)
}
