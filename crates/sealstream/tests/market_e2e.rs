//! The market end to end, as processes and over HTTP only: `sealstream
//! market serve`; an owner signs in (Sign-In with Ethereum) and registers
//! the machine with the machine's signature; `sealstream agent run` uploads
//! a topic's chain and its signed window dataset to the server through its
//! `market` destination; the owner lists the dataset with a sample chunk and
//! publishes; an anonymous client finds the listing by full-text search,
//! fetches the sample (key sealed to its own X25519 key), the dataset
//! manifest and the chunk's inclusion proof, checks the chunk against the
//! dataset root with `sealstream dataset verify-chunk`, and decrypts it.
//! The owner then creates a dataset of its own by chunk range (the server
//! computes the root, the owner decrypts the chunks for the source hash and
//! signs), lists it, and the anonymous client verifies its sample with the
//! owner accepted as signer (`--signer`), and not without.
//! A plaintext canary in the agent's input is nowhere on the server's disk.
//! `sealstream publish --to` uploads a second chain the same way.

mod common;

use std::path::Path;

use common::agent::{only_chain, MACHINE_SK};
use common::market::{
    datasets, owner_with_machine, publish_listing, run_market_agent, text, write_market_agent,
    Market,
};
use common::*;
use sealstream_core::chunk::{decrypt_chunk, ChunkEnvelope, KeyRecipient};
use sealstream_core::dataset::{DatasetBuilder, DatasetInfo};
use sealstream_core::json::{self, Value};
use sealstream_core::keys::RecipientSecretKey;

/// `sealstream dataset verify-chunk` on `dir`'s dataset.json, proof.json,
/// chunk-2.json and chunk-2.bin, accepting `signer` too if given.
fn verify_chunk(dir: &Path, signer: Option<&str>) -> std::process::Output {
    let mut c = sealstream();
    c.args(["dataset", "verify-chunk", "--dataset"])
        .arg(dir.join("dataset.json"))
        .arg("--proof")
        .arg(dir.join("proof.json"))
        .arg("--envelope")
        .arg(dir.join("chunk-2.json"))
        .arg("--data")
        .arg(dir.join("chunk-2.bin"));
    if let Some(s) = signer {
        c.args(["--dataset-signer", s]);
    }
    c.output().unwrap()
}

#[test]
fn agent_to_market_to_anonymous_verifier() {
    let tmp = tempfile::tempdir().unwrap();
    // The listing below is paid on peaq (3338): the server must verify that
    // chain to accept it; nothing here pays, so an endpoint nobody answers on.
    let peaq = format!(
        "{}={}",
        sealstream_testkit::server::PEAQ_CHAIN_ID,
        sealstream_testkit::server::SILENT_RPC
    );
    let market = Market::start_with(&tmp.path().join("market"), &["--evm-rpc", &peaq]);
    let (owner_key, owner_did, owner) = owner_with_machine(&market);

    // The agent uploads the chain and its window's signed dataset manifest.
    let canary = format!(
        "CANARY-{}-{}",
        std::process::id() ^ 0x5eed_c0de,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    run_market_agent(
        &market,
        &tmp.path().join("agent"),
        200,
        Some(&canary),
        false,
    );

    // The server holds the chain: 200 messages, 40 per chunk.
    let machine_path = format!("/v1/machines/{}", DID);
    let (status, topics) =
        market.call("GET", &format!("{machine_path}/topics"), Some(&owner), None);
    assert_eq!(status, 200, "{topics:?}");
    let topic = &topics.get("topics").and_then(Value::as_array).unwrap()[0];
    assert_eq!(text(topic, "topic"), "/field/soil");
    assert_eq!(topic.get("chunkCount").and_then(Value::as_u64), Some(5));

    // The machine's signed window manifest became a dataset of the owner.
    let datasets = datasets(&market, &owner);
    assert_eq!(datasets.len(), 1, "{datasets:?}");
    let dataset = &datasets[0];
    assert_eq!(text(dataset, "state"), "signed");
    assert_eq!(dataset.get("chunkCount").and_then(Value::as_u64), Some(5));
    let dataset_id = text(dataset, "id");
    let root = text(dataset, "merkleRoot");

    // The owner lists it with chunk 2 as a sample, discloses that chunk's
    // key (unwrapped with the owner's recipient key) and publishes.
    let listing = format!(
        "{{\"datasetId\":\"{dataset_id}\",\"title\":\"Soil moisture, vineyard block 7\",\
         \"description\":\"Capacitive soil moisture probes every minute.\",\"tags\":[\"agriculture\",\"soil\"],\
         \"domain\":\"agriculture\",\"schemaHint\":\"{{i, moisture}}\",\"license\":{{\"spdx\":\"CC-BY-4.0\"}},\
         \"price\":\"2500000000000000000\",\"rail\":{{\"kind\":\"evm\",\"chainId\":3338,\"token\":\"native\",\
         \"decimals\":18,\"payTo\":\"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed\",\"symbol\":\"PEAQ\"}},\
         \"delivery\":[\"api\"],\"sampleChunkIndexes\":[2]}}"
    );
    let (status, created) = market.call("POST", "/v1/listings", Some(&owner), Some(&listing));
    assert_eq!(status, 201, "{created:?}");
    let listing_id = text(&created, "id");
    let (status, envelope_text) = market.call(
        "GET",
        &format!("{machine_path}/topics/%2Ffield%2Fsoil/chunks/2/envelope"),
        Some(&owner),
        None,
    );
    assert_eq!(status, 200);
    let envelope =
        ChunkEnvelope::parse(json::canonical::rfc8785(&envelope_text).unwrap().as_bytes()).unwrap();
    let owner_secret = RecipientSecretKey::from_hex(
        std::fs::read_to_string(keyfile("owner.x25519.sk"))
            .unwrap()
            .trim(),
        "owner",
    )
    .unwrap();
    let entry = envelope.recipient_of_type("owner").unwrap();
    let chunk_key = sealstream_core::sealed_box::open(
        &sealstream_core::keys::parse_hex_bytes(&entry.wrapped_key_hex, "wrapped").unwrap(),
        &owner_secret,
    )
    .unwrap();
    let (status, answer) = market.call(
        "POST",
        &format!("/v1/listings/{listing_id}/samples"),
        Some(&owner),
        Some(&format!(
            "{{\"keys\":[{{\"index\":2,\"chunkKeyHex\":\"{}\"}}]}}",
            chunk_key
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )),
    );
    assert_eq!(status, 200, "{answer:?}");
    publish_listing(&market, &owner, &listing_id);

    // Anonymous: search finds it.
    let (status, page) = market.call(
        "GET",
        "/v1/catalog?q=soil%20moisture&domain=agriculture",
        None,
        None,
    );
    assert_eq!(status, 200, "{page:?}");
    let items = page.get("items").and_then(Value::as_array).unwrap();
    assert_eq!(items.len(), 1, "{page:?}");
    assert_eq!(text(&items[0], "id"), listing_id);
    assert_eq!(text(&items[0], "merkleRoot"), root);

    // Anonymous: the sample, sealed to a fresh key of its own; the dataset
    // manifest; the proof; the ciphertext.
    let mine = RecipientSecretKey::generate();
    let (status, sample) = market.call(
        "GET",
        &format!(
            "/v1/listings/{listing_id}/samples/2?recipientPublicKey={}",
            mine.public_key().to_hex()
        ),
        None,
        None,
    );
    assert_eq!(status, 200, "{sample:?}");
    let ciphertext = market.bytes(&text(&sample, "ciphertextUrl"));
    let (status, ds) = market.call("GET", &format!("/v1/datasets/{dataset_id}"), None, None);
    assert_eq!(status, 200, "{ds:?}");
    let manifest = ds.get("manifest").expect("the signed manifest").clone();
    let (status, proof) = market.call(
        "GET",
        &format!("/v1/datasets/{dataset_id}/proofs/2"),
        None,
        None,
    );
    assert_eq!(status, 200, "{proof:?}");
    let check = tmp.path().join("check");
    std::fs::create_dir_all(&check).unwrap();
    let write = |name: &str, v: &Value| {
        std::fs::write(check.join(name), json::canonical::rfc8785(v).unwrap()).unwrap()
    };
    write("dataset.json", &manifest);
    write("proof.json", &proof);
    write("chunk-2.json", sample.get("envelope").unwrap());
    std::fs::write(check.join("chunk-2.bin"), &ciphertext).unwrap();
    let verified = verify_chunk(&check, None);
    assert!(
        verified.status.success(),
        "verify-chunk: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    // A tampered ciphertext does not verify.
    let mut bad = ciphertext.clone();
    bad[0] ^= 1;
    std::fs::write(check.join("chunk-2.bin"), &bad).unwrap();
    let refused = verify_chunk(&check, None);
    assert!(!refused.status.success());

    // And decrypts the sample with its own key: the packages of chunk 2.
    let w = sample.get("wrappedKey").unwrap();
    let wrapped = KeyRecipient {
        recipient_id: text(w, "recipientId"),
        recipient_type: text(w, "recipientType"),
        algorithm: text(w, "algorithm"),
        public_key_hex: text(w, "publicKeyHex"),
        wrapped_key_hex: text(w, "wrappedKeyHex"),
    };
    let plaintext = decrypt_chunk(&envelope, &wrapped, &mine, ciphertext).unwrap();
    let plaintext = String::from_utf8(plaintext).unwrap();
    assert!(
        plaintext.contains("\"i\":80"),
        "chunk 2 holds messages 80..119"
    );
    assert!(plaintext.contains(&canary));

    // The owner also makes a dataset of its own: chunks 1 to 3, by range.
    // The server computes the root; the owner decrypts those chunks with its
    // recipient key for the source hash, signs the manifest and completes
    // the draft; lists it with chunk 2 as a sample.
    let (status, draft) = market.call(
        "POST",
        "/v1/datasets",
        Some(&owner),
        Some(&format!(
            "{{\"machineDid\":\"{DID}\",\"topic\":\"/field/soil\",\"fromIndex\":1,\"toIndex\":3}}"
        )),
    );
    assert_eq!(status, 201, "{draft:?}");
    assert_eq!(text(&draft, "state"), "draft");
    let own_id = text(&draft, "id");
    let mut builder = DatasetBuilder::new();
    let mut plain = Vec::new();
    for i in 1..=3 {
        let chunk = format!("{machine_path}/topics/%2Ffield%2Fsoil/chunks/{i}");
        let (_, e) = market.call("GET", &format!("{chunk}/envelope"), Some(&owner), None);
        let e = ChunkEnvelope::parse(json::canonical::rfc8785(&e).unwrap().as_bytes()).unwrap();
        let ct = market.bytes_as(&format!("{chunk}/ciphertext"), Some(&owner));
        let entry = e.recipient_of_type("owner").unwrap().clone();
        plain.extend(decrypt_chunk(&e, &entry, &owner_secret, ct).unwrap());
        builder.push(&e).unwrap();
    }
    let mut own = builder
        .finish(DatasetInfo {
            topic: Some("/field/soil".into()),
            source_hash: sealstream_core::chunk::sha256_hex(&plain),
            ..DatasetInfo::default()
        })
        .unwrap();
    own.sign_eip191_as(&owner_key);
    let body = format!(
        "{{\"manifest\":{}}}",
        json::canonical::rfc8785(&own.to_json()).unwrap()
    );
    let (status, signed) = market.call(
        "PUT",
        &format!("/v1/datasets/{own_id}/manifest"),
        Some(&owner),
        Some(&body),
    );
    assert_eq!(status, 200, "{signed:?}");
    assert_eq!(text(&signed, "signerDid"), owner_did);
    let listing2 = listing
        .replace(&dataset_id, &own_id)
        .replace("block 7", "block 7, rows 1-3");
    let (status, created) = market.call("POST", "/v1/listings", Some(&owner), Some(&listing2));
    assert_eq!(status, 201, "{created:?}");
    let listing2_id = text(&created, "id");
    for (path, body) in [
        (
            format!("/v1/listings/{listing2_id}/samples"),
            format!(
                "{{\"keys\":[{{\"index\":2,\"chunkKeyHex\":\"{}\"}}]}}",
                chunk_key
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
        ),
        (
            format!("/v1/listings/{listing2_id}/publish"),
            "{}".to_string(),
        ),
    ] {
        let (status, answer) = market.call("POST", &path, Some(&owner), Some(&body));
        assert_eq!(status, 200, "{path}: {answer:?}");
    }
    // Anonymous: the owner-signed dataset verifies when the verifier
    // accepts the owner (the listing's provider) as a signer, not otherwise.
    let (_, card) = market.call(
        "GET",
        &format!("/v1/listings/{listing2_id}/card"),
        None,
        None,
    );
    let provider = text(&card, "provider");
    assert_eq!(provider, owner_did);
    let (status, ds) = market.call("GET", &format!("/v1/datasets/{own_id}"), None, None);
    assert_eq!(status, 200, "{ds:?}");
    write("dataset.json", ds.get("manifest").unwrap());
    let (status, proof) = market.call(
        "GET",
        &format!("/v1/datasets/{own_id}/proofs/2"),
        None,
        None,
    );
    assert_eq!(status, 200, "{proof:?}");
    write("proof.json", &proof);
    std::fs::write(
        check.join("chunk-2.bin"),
        market.bytes(&text(&sample, "ciphertextUrl")),
    )
    .unwrap();
    let with_owner = verify_chunk(&check, Some(&provider));
    assert!(
        with_owner.status.success(),
        "{}",
        String::from_utf8_lossy(&with_owner.stderr)
    );
    assert!(!verify_chunk(&check, None).status.success());

    // The canary never reached the server's disk in the clear.
    drop(market);
    for file in sealstream_testkit::files_under(&tmp.path().join("market")) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "plaintext canary found in {}",
            file.display()
        );
    }
}

#[test]
fn publish_to_uploads_a_chain_and_its_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let market = Market::start(&tmp.path().join("market"));
    let (_, _, owner) = owner_with_machine(&market);
    let input = tmp.path().join("input.bin");
    let machine_key_file = tmp.path().join("machine.sk");
    std::fs::write(&machine_key_file, MACHINE_SK).unwrap();
    let run = |out: &str, fill: u8| {
        std::fs::write(&input, vec![fill; 300_000]).unwrap();
        let mut c = sealstream();
        publish_args(&mut c, &input, &tmp.path().join(out), 100_000);
        c.args(["--topic", "/lidar/raw", "--server", &market.base])
            .arg("--dataset-key-file")
            .arg(&machine_key_file)
            .output()
            .unwrap()
    };
    let out = run("out", 7);
    assert!(
        out.status.success(),
        "publish --to: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 chunks stored"));
    let (_, topics) = market.call(
        "GET",
        &format!("/v1/machines/{DID}/topics"),
        Some(&owner),
        None,
    );
    let topic = &topics.get("topics").and_then(Value::as_array).unwrap()[0];
    assert_eq!(topic.get("chunkCount").and_then(Value::as_u64), Some(3));
    let (_, datasets) = market.call("GET", "/v1/datasets", Some(&owner), None);
    assert_eq!(
        datasets
            .get("datasets")
            .and_then(Value::as_array)
            .unwrap()
            .len(),
        1
    );
    // The same chain again: the server holds it all, nothing is sent twice.
    let again = sealstream()
        .args([
            "market",
            "upload",
            "--server",
            &market.base,
            "--topic",
            "/lidar/raw",
        ])
        .arg("--chunk-dir")
        .arg(tmp.path().join("out"))
        .arg("--key-file")
        .arg(&machine_key_file)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 chunks stored, 3 already held"));
    // Another chain for the same topic does not link: refused, exit 2.
    let out = run("out2", 9);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("409"), "{stderr}");
}

/// A market that refuses for good (here: the machine is not registered,
/// 404) stops that destination with one log line instead of retrying
/// forever; the directory destination still receives everything, `agent
/// status` shows the market as stopped, and the run exits 2. Once the owner
/// registers the machine, the next run delivers what the spool kept.
#[test]
fn a_market_refusing_for_good_is_stopped_and_the_rest_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let market = Market::start(&tmp.path().join("market"));
    let agent_dir = tmp.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let config = write_market_agent(&agent_dir, &market.base, 100, None, true);
    let run = || {
        sealstream()
            .args(["agent", "run", "--config"])
            .arg(&config)
            .current_dir(&agent_dir)
            .output()
            .unwrap()
    };
    let started = std::time::Instant::now();
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{stderr}"
    );
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("refused for good"))
        .collect();
    // One line when the destination stops, one error line at exit.
    assert_eq!(refused.len(), 2, "{stderr}");
    assert!(
        refused
            .iter()
            .all(|l| l.contains("404") && l.contains(&format!("machine {DID} is not registered"))),
        "{stderr}"
    );
    assert!(
        refused[1].starts_with(&format!("error: destination market {}", market.base)),
        "{stderr}"
    );
    assert!(!stderr.contains("retrying"), "{stderr}");

    // The directory got the whole chain.
    let chain = only_chain(&agent_dir.join("out"));
    let mut v = sealstream();
    v.args(["verify", "--chunk-dir"]).arg(&chain);
    run_ok(v, "verify");

    let status = || {
        let mut c = sealstream();
        c.args(["agent", "status", "--json", "--config"])
            .arg(&config);
        json::parse(&run_ok(c, "agent status").stdout).unwrap()
    };
    let market_health = |v: &Value| {
        v.get("destinations")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .find(|d| text(d, "destination").starts_with("market "))
            .cloned()
            .unwrap()
    };
    let stopped = market_health(&status());
    assert_eq!(
        stopped.get("stopped"),
        Some(&Value::Bool(true)),
        "{stopped:?}"
    );
    assert!(text(&stopped, "lastError").contains("is not registered"));
    let mut c = sealstream();
    c.args(["agent", "status", "--config"]).arg(&config);
    let human = String::from_utf8_lossy(&run_ok(c, "agent status").stderr).into_owned();
    assert!(
        human.contains("stopped, refused for good: ") && human.contains("is not registered"),
        "{human}"
    );

    // Registered, the next run delivers what the spool kept for the market.
    owner_with_machine(&market);
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = status();
    let delivered = after.get("topics").and_then(Value::as_array).unwrap()[0]
        .get("deliveredChunks")
        .and_then(Value::as_object)
        .unwrap()
        .iter()
        .find(|(d, _)| d.starts_with("market "))
        .map(|(_, n)| n.clone())
        .unwrap();
    let chunks = after.get("topics").and_then(Value::as_array).unwrap()[0]
        .get("chunks")
        .cloned()
        .unwrap();
    assert_eq!(delivered, chunks);
    assert_eq!(
        market_health(&after).get("stopped"),
        Some(&Value::Bool(false))
    );
}
