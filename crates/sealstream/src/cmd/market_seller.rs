//! `sealstream market machine|dataset|listing`: the owner's side of the
//! market (and the machine's signature over its registration), through
//! sealstream-client's `seller` module.

use std::path::Path;

use sealstream_api::datasets::DatasetView;
use sealstream_api::listings::{CreateListing, ListingView, PatchListing};
use sealstream_api::machines::SignedRegistration;
use sealstream_client::seller::{self, DatasetRange};
use sealstream_core::identity::Did;
use sealstream_core::json::{self, write::to_python_pretty, Map, Value};

use super::market_session::{client, client_error, json_answer, seller_error};
use crate::cli::{MarketDatasetCommand, MarketListingCommand, MarketMachineCommand, MarketSession};
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

const OWNER: &str = "an owner";

/// Largest JSON document read from a file (a listing, keys.json, a registration).
const MAX_DOCUMENT: u64 = 1 << 20;

/// The bytes of a document file, naming the file in every error.
fn read_document_bytes(path: &Path) -> CliResult<Vec<u8>> {
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
    Ok(bytes)
}

/// Reads a JSON document (keys.json), naming the file in every error.
pub fn read_json(path: &Path) -> CliResult<Value> {
    let bytes = read_document_bytes(path)?;
    json::parse(&bytes).map_err(|e| CliError::input(at(path, format!("not JSON: {e}"))))
}

/// Reads a document of the market API (a listing, a registration), naming
/// the file and the field at fault in every error.
fn read_body<T: serde::de::DeserializeOwned>(path: &Path) -> CliResult<T> {
    let bytes = read_document_bytes(path)?;
    sealstream_api::errors::decode_json(&bytes).map_err(|e| CliError::input(at(path, e)))
}

/// Reads a listing document, its `datasetId` replaced by `dataset_id` when
/// given (the examples in docs/examples leave it out).
fn read_listing(
    path: &Path,
    dataset_id: Option<String>,
    machine_did: Option<String>,
) -> CliResult<CreateListing> {
    if dataset_id.is_none() && machine_did.is_none() {
        return read_body(path);
    }
    let mut document = read_json(path)?;
    let Value::Object(fields) = &mut document else {
        return Err(CliError::input(at(path, "expected a JSON object")));
    };
    if let Some(id) = dataset_id {
        fields.insert("datasetId".into(), Value::String(id));
    }
    if let Some(did) = machine_did {
        match fields.get_mut("subscription") {
            Some(Value::Object(terms)) => {
                terms.insert("machineDid".into(), Value::String(did));
            }
            _ => {
                return Err(CliError::input(at(
                    path,
                    "--machine-did names the machine of a subscription listing: the file has no \
                     subscription object",
                )))
            }
        }
    }
    let bytes = json::write::to_python_compact(&document);
    sealstream_api::errors::decode_json(bytes.as_bytes()).map_err(|e| CliError::input(at(path, e)))
}

/// Writes a registration as `market machine register --registration` reads it.
fn write_registration(path: &Path, registration: &SignedRegistration) -> CliResult {
    let value = sealstream_api::document::core_value_of(registration)
        .map_err(|e| CliError::input(at(path, e)))?;
    sealstream_files::layout::write_atomic(path, to_python_pretty(&value).as_bytes())
        .map_err(|e| CliError::input(at(path, e)))
}

/// `{"datasets": […]}`.
#[derive(serde::Serialize)]
struct Datasets<'a> {
    datasets: &'a [DatasetView],
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
                    write_registration(&path, &registration)?;
                    ui.say(format!(
                        "Registration of {} for owner {owner} written to {}",
                        registration.machine_did,
                        path.display()
                    ));
                }
                None => json_answer(&ui, &registration)?,
            }
            Ok(())
        }
        MarketMachineCommand::Register {
            session,
            registration,
            machine_key_file,
            keys,
            chain_key_file,
        } => {
            let mut client = client(&session, OWNER)?;
            let document = match (registration, machine_key_file, keys) {
                (Some(path), _, _) => read_body::<SignedRegistration>(&path)?,
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
                machine.did,
                client.did(),
                machine.chain_public_key
            ));
            if ui.json {
                json_answer(&ui, &machine)?;
            }
            Ok(())
        }
        MarketMachineCommand::List { session } => {
            let mut client = client(&session, OWNER)?;
            let answer = client
                .machines()
                .map_err(|e| client_error("machine list", e))?;
            if ui.json {
                json_answer(&ui, &answer)?;
            } else {
                for m in &answer.machines {
                    println!(
                        "{}\towner {}\tregistered {}",
                        m.did, m.owner_did, m.registered_at
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
        } => {
            let machine = Did::parse(&machine, "--machine-did")
                .map_err(|e| CliError::input(e.to_string()))?
                .to_string();
            let owner_key = crate::keyfile::x25519_secret(&owner_key_file, "owner recipient key")?;
            let mut client = client(&session, OWNER)?;
            let (from_index, to_index) = match (from_index, to_index, &from_time) {
                (None, None, None) => {
                    let (first, last) = whole_chain(&mut client, &machine, &topic)?;
                    ui.say(format!(
                        "No range given: the whole chain, chunks {first}..={last}"
                    ));
                    (Some(first), Some(last))
                }
                _ => (from_index, to_index),
            };
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
            ui.id_out(&made.id);
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
        MarketDatasetCommand::List { session } => {
            let mut client = client(&session, OWNER)?;
            let datasets = client
                .all_datasets()
                .map_err(|e| client_error("dataset list", e))?;
            if ui.json {
                json_answer(
                    &ui,
                    &Datasets {
                        datasets: &datasets,
                    },
                )?;
            } else {
                for d in &datasets {
                    println!(
                        "{}\t{}\t{} {}\tchunks {}..={}\troot {}",
                        d.id,
                        d.state,
                        d.machine_did,
                        d.topic,
                        d.first_index,
                        d.last_index,
                        d.merkle_root,
                    );
                }
            }
            Ok(())
        }
    }
}

/// The first and last chain index of `machine`'s chain of `topic` on the
/// server: the whole chain.
fn whole_chain(
    client: &mut sealstream_client::market::MarketClient,
    machine: &str,
    topic: &str,
) -> CliResult<(u64, u64)> {
    let list = client
        .topics(machine)
        .map_err(|e| client_error("dataset create", e))?;
    let held = list.topics.iter().find(|t| t.topic == topic);
    match held {
        Some(t) if t.chunk_count > 0 => Ok((0, t.chunk_count - 1)),
        _ => {
            let topics: Vec<&str> = list.topics.iter().map(|t| t.topic.as_str()).collect();
            Err(CliError::input(format!(
                "dataset create: the server holds no chunk of {machine} {topic} (its topics: {})",
                if topics.is_empty() {
                    "none".to_string()
                } else {
                    topics.join(", ")
                }
            )))
        }
    }
}

/// `{"listings": […]}`.
#[derive(serde::Serialize)]
struct Listings<'a> {
    listings: &'a [ListingView],
}

pub fn listing(command: MarketListingCommand, ui: Ui) -> CliResult {
    let (what, answer) = match command {
        MarketListingCommand::Show { server, id } => {
            return super::market_browse::show_listing(&server, &id, ui)
        }
        MarketListingCommand::List { session } => return list_listings(&session, ui),
        MarketListingCommand::Edit {
            session,
            id,
            listing,
            owner_key_file,
        } => return edit_listing(&session, &id, &listing, owner_key_file.as_deref(), ui),
        MarketListingCommand::Create {
            session,
            listing,
            dataset_id,
            machine_did,
            owner_key_file,
            publish,
        } => {
            let mut client = client(&session, OWNER)?;
            let document = read_listing(&listing, dataset_id, machine_did)?;
            let owner_key = owner_key_file
                .as_deref()
                .map(|p| crate::keyfile::x25519_secret(p, "owner recipient key"))
                .transpose()?;
            let answer =
                seller::create_listing(&mut client, &document, owner_key.as_ref(), publish)
                    .map_err(|e| match e {
                        seller::SellerError::Invalid { .. } => CliError::input(at(&listing, e)),
                        e => seller_error("listing create", e),
                    })?;
            ("Created", answer)
        }
        MarketListingCommand::Publish { session, id } => {
            let answer = client(&session, OWNER)?
                .publish_listing(&id)
                .map_err(|e| client_error("listing publish", e))?;
            ("Published", answer)
        }
        MarketListingCommand::Withdraw { session, id } => {
            let answer = client(&session, OWNER)?
                .withdraw_listing(&id)
                .map_err(|e| client_error("listing withdraw", e))?;
            ("Withdrew", answer)
        }
    };
    ui.say(format!(
        "{what} listing {} ({}): {}",
        answer.id, answer.state, answer.title
    ));
    if what == "Created" {
        ui.id_out(&answer.id);
    }
    if ui.json {
        json_answer(&ui, &answer)?;
    }
    Ok(())
}

/// `market listing list`: every listing of the owner's.
fn list_listings(session: &MarketSession, ui: Ui) -> CliResult {
    let mut client = client(session, OWNER)?;
    let listings = client
        .all_my_listings()
        .map_err(|e| client_error("listing list", e))?;
    if ui.json {
        return json_answer(
            &ui,
            &Listings {
                listings: &listings,
            },
        );
    }
    for l in &listings {
        let sells = match &l.subscription {
            Some(t) => format!("subscription {} {}", t.machine_did, t.topic),
            None => format!("dataset {}", l.dataset_id),
        };
        println!(
            "{}\t{}\t{}\t{sells}\t{}",
            l.id,
            l.state,
            super::market_browse::price_text(&l.price, &l.rail),
            l.title
        );
    }
    Ok(())
}

/// `market listing edit`: PATCH with the file's fields.
fn edit_listing(
    session: &MarketSession,
    id: &str,
    listing: &Path,
    owner_key_file: Option<&Path>,
    ui: Ui,
) -> CliResult {
    let patch = read_body::<PatchListing>(listing)?;
    let owner_key = owner_key_file
        .map(|p| crate::keyfile::x25519_secret(p, "owner recipient key"))
        .transpose()?;
    let mut client = client(session, OWNER)?;
    let answer =
        seller::edit_listing(&mut client, id, &patch, owner_key.as_ref()).map_err(|e| match e {
            seller::SellerError::Invalid { .. } => CliError::input(at(listing, e)),
            e => seller_error("listing edit", e),
        })?;
    ui.say(format!(
        "Changed {} of listing {} ({}): {}",
        patch.given().join(", "),
        answer.id,
        answer.state,
        answer.title
    ));
    if ui.json {
        json_answer(&ui, &answer)?;
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
