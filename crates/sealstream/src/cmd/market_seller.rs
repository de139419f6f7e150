//! `sealstream market machine|dataset|listing`: the owner's side of the
//! market (and the machine's signature over its registration), through
//! sealstream-client's `seller` module.

use std::path::Path;

use sealstream_client::market::Paging;
use sealstream_client::seller::{self, DatasetRange};
use sealstream_core::identity::Did;
use sealstream_core::json::{self, write::to_python_pretty, Map, Value};

use super::market_session::{client, client_error, field, seller_error, wrap};
use crate::cli::{MarketDatasetCommand, MarketListingCommand, MarketMachineCommand};
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

const OWNER: &str = "an owner";

/// Largest JSON document read from a file (a listing, keys.json, a registration).
const MAX_DOCUMENT: u64 = 1 << 20;

/// Reads a JSON document, naming the file in every error.
pub fn read_json(path: &Path) -> CliResult<Value> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| CliError::input(at(path, e)))?;
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::input(at(path, e)))?;
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err(CliError::input(at(
            path,
            format!("larger than {MAX_DOCUMENT} bytes"),
        )));
    }
    json::parse(&bytes).map_err(|e| CliError::input(at(path, format!("not JSON: {e}"))))
}

fn write_out(path: &Path, value: &Value) -> CliResult {
    sealstream_core::layout::write_atomic(path, to_python_pretty(value).as_bytes())
        .map_err(|e| CliError::input(at(path, e)))
}

pub fn machine(command: MarketMachineCommand, ui: Ui) -> CliResult {
    match command {
        MarketMachineCommand::Sign {
            machine_key_file,
            keys,
            chain_key_file,
            owner,
            out,
        } => {
            let key = crate::keyfile::secp256k1_secret(&machine_key_file, "machine key")?;
            let chain_key = chain_key(chain_key_file.as_deref(), &keys)?;
            let owner =
                Did::parse(&owner, "--owner").map_err(|e| CliError::input(e.to_string()))?;
            let keys_doc = read_json(&keys)?;
            let registration = seller::sign_registration(&key, &chain_key, &owner, &keys_doc)
                .map_err(|e| CliError::input(at(&keys, e)))?;
            match out {
                Some(path) => {
                    write_out(&path, &registration)?;
                    ui.say(format!(
                        "Registration of {} for owner {owner} written to {}",
                        field(&registration, "machineDid"),
                        path.display()
                    ));
                }
                None => ui.json_out(&registration),
            }
            Ok(())
        }
        MarketMachineCommand::Register {
            session,
            registration,
            machine_key_file,
            keys,
            chain_key_file,
            json,
        } => {
            let ui = Ui { json, ..ui };
            let mut client = client(&session, OWNER)?;
            let document = match (registration, machine_key_file, keys) {
                (Some(path), _, _) => read_json(&path)?,
                (None, Some(key_file), Some(keys)) => {
                    let key = crate::keyfile::secp256k1_secret(&key_file, "machine key")?;
                    let chain_key = chain_key(chain_key_file.as_deref(), &keys)?;
                    seller::sign_registration(&key, &chain_key, client.did(), &read_json(&keys)?)
                        .map_err(|e| CliError::input(at(&keys, e)))?
                }
                _ => {
                    return Err(CliError::input(
                        "give --registration FILE, or --machine-key-file and --keys",
                    ))
                }
            };
            let machine = seller::register_machine(&mut client, &document)
                .map_err(|e| seller_error("machine register", e))?;
            ui.say(format!(
                "Registered {} to {} (chain key {})",
                field(&machine, "did"),
                client.did(),
                field(&machine, "chainPublicKey")
            ));
            if ui.json {
                ui.json_out(&machine);
            }
            Ok(())
        }
        MarketMachineCommand::List { session, json } => {
            let mut client = client(&session, OWNER)?;
            let answer = client
                .get("/v1/machines")
                .map_err(|e| client_error("machine list", e))?;
            if json {
                ui.json_out(&answer);
            } else {
                for m in answer
                    .get("machines")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    println!(
                        "{}\towner {}\tregistered {}",
                        field(m, "did"),
                        field(m, "ownerDid"),
                        field(m, "registeredAt")
                    );
                }
            }
            Ok(())
        }
    }
}

pub fn dataset(command: MarketDatasetCommand, ui: Ui) -> CliResult {
    match command {
        MarketDatasetCommand::Create {
            session,
            owner_key_file,
            machine,
            topic,
            from_index,
            to_index,
            from_time,
            to_time,
            threads,
            json,
        } => {
            let ui = Ui { json, ..ui };
            if from_index.is_none() && from_time.is_none() {
                return Err(CliError::input(
                    "give the range: --from-index and --to-index, or --from-time and --to-time",
                ));
            }
            let machine = Did::parse(&machine, "--machine")
                .map_err(|e| CliError::input(e.to_string()))?
                .to_string();
            let owner_key = crate::keyfile::x25519_secret(&owner_key_file, "owner recipient key")?;
            let mut client = client(&session, OWNER)?;
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
                .max(1);
            let range = DatasetRange {
                machine_did: machine,
                topic,
                from_index,
                to_index,
                from_time,
                to_time,
            };
            ui.say(format!(
                "Making a dataset of {} {} on {}...",
                range.machine_did, range.topic, session.server
            ));
            let made = seller::create_dataset(&mut client, &owner_key, &range, threads)
                .map_err(|e| seller_error("dataset create", e))?;
            let last = made.first_index + made.chunk_count.saturating_sub(1);
            if made.signed_now {
                ui.say(format!(
                    "Dataset {}: chunks {}..={} ({} bytes of plaintext), root {}, signed by {}",
                    made.id,
                    made.first_index,
                    last,
                    made.bytes,
                    made.merkle_root,
                    client.did()
                ));
            } else {
                ui.say(format!(
                    "Dataset {}: chunks {}..={}, root {}, already signed",
                    made.id, made.first_index, last, made.merkle_root
                ));
            }
            if ui.json {
                let mut m = Map::new();
                m.insert("id".into(), made.id.into());
                m.insert("merkleRoot".into(), made.merkle_root.into());
                m.insert("firstIndex".into(), made.first_index.into());
                m.insert("chunkCount".into(), made.chunk_count.into());
                m.insert(
                    "sourceHash".into(),
                    made.source_hash.map_or(Value::Null, Value::String),
                );
                m.insert("bytes".into(), made.bytes.into());
                m.insert("signedNow".into(), made.signed_now.into());
                ui.json_out(&Value::Object(m));
            }
            Ok(())
        }
        MarketDatasetCommand::List { session, json } => {
            let mut client = client(&session, OWNER)?;
            let datasets = client
                .all_pages("/v1/datasets", "datasets", 500, Paging::Offset)
                .map_err(|e| client_error("dataset list", e))?;
            if json {
                ui.json_out(&wrap("datasets", datasets));
            } else {
                for d in &datasets {
                    println!(
                        "{}\t{}\t{} {}\tchunks {}..={}\troot {}",
                        field(d, "id"),
                        field(d, "state"),
                        field(d, "machineDid"),
                        field(d, "topic"),
                        d.get("firstIndex").and_then(Value::as_u64).unwrap_or(0),
                        d.get("lastIndex").and_then(Value::as_u64).unwrap_or(0),
                        field(d, "merkleRoot"),
                    );
                }
            }
            Ok(())
        }
    }
}

pub fn listing(command: MarketListingCommand, ui: Ui) -> CliResult {
    let (session, json) = match &command {
        MarketListingCommand::Create { session, json, .. }
        | MarketListingCommand::Publish { session, json, .. }
        | MarketListingCommand::Withdraw { session, json, .. } => (session, *json),
    };
    let ui = Ui { json, ..ui };
    let mut client = client(session, OWNER)?;
    let (what, answer) = match &command {
        MarketListingCommand::Create {
            listing,
            owner_key_file,
            publish,
            ..
        } => {
            let document = read_json(listing)?;
            let owner_key = owner_key_file
                .as_deref()
                .map(|p| crate::keyfile::x25519_secret(p, "owner recipient key"))
                .transpose()?;
            let answer =
                seller::create_listing(&mut client, &document, owner_key.as_ref(), *publish)
                    .map_err(|e| match e {
                        seller::SellerError::Invalid { .. } => CliError::input(at(listing, e)),
                        e => seller_error("listing create", e),
                    })?;
            ("Created", answer)
        }
        MarketListingCommand::Publish { id, .. } | MarketListingCommand::Withdraw { id, .. } => {
            let (verb, done) = match command {
                MarketListingCommand::Publish { .. } => ("publish", "Published"),
                _ => ("withdraw", "Withdrew"),
            };
            let answer = client
                .request(
                    "POST",
                    &format!(
                        "/v1/listings/{}/{verb}",
                        sealstream_client::market::encode_segment(id)
                    ),
                    Some(&Value::Object(Map::new())),
                )
                .map_err(|e| client_error(&format!("listing {verb}"), e))?;
            (done, answer)
        }
    };
    ui.say(format!(
        "{what} listing {} ({}): {}",
        field(&answer, "id"),
        field(&answer, "state"),
        field(&answer, "title")
    ));
    if ui.json {
        ui.json_out(&answer);
    }
    Ok(())
}

/// The chain key file given, or `chain.ed25519.sk` beside keys.json (as
/// `keys generate` writes them).
fn chain_key(
    file: Option<&Path>,
    keys: &Path,
) -> CliResult<sealstream_core::keys::ChainSigningKey> {
    let default = keys
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("chain.ed25519.sk");
    crate::keyfile::ed25519_secret(file.unwrap_or(&default), "chain key")
}
