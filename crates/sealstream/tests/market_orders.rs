//! An order end to end, as processes and over HTTP only (issue 7):
//! `sealstream market serve` verifying payments on a real EVM node (anvil);
//! `sealstream agent run` turns 200 JSON-line messages into signed packages,
//! uploads the topic's chain and its signed window dataset to the server
//! (and keeps a copy in a local directory); the owner lists the dataset,
//! priced in the chain's coin; a buyer signs in with the key
//! of a funded account, orders with their X25519 key, and pays with the
//! reference CLI (`peaqos stream pay --confirmation-url`, which posts the
//! proof); `sealstream market grant-daemon --once` re-wraps the chunk keys
//! to the buyer; the buyer makes a release link, and both `sealstream
//! consume --download-url` and the reference's `peaqos stream consume
//! --download-url` rebuild from it exactly the bytes the agent sealed (its
//! signed packages, every message once, in order). The reference's
//! seller seat works too: `peaqos stream distribute` reads the payment
//! through the seller's confirmation link and delivers the buyer's access
//! files to S3 (moto), and `sealstream consume` opens the chain with them. The signed license
//! receipt verifies with `sealstream receipt verify` against the server's
//! published key.

mod common;

use std::path::Path;

use common::agent::{only_chain, packages};
use common::market::{
    datasets, grant_daemon_once, json_string, list_for_eth, market_on_anvil, owner_with_machine,
    release_link, run_market_agent, text,
};
use common::moto::MotoServer;
use common::*;
use sealstream_core::chunk::decrypt_chunk;
use sealstream_core::json::Value;
use sealstream_core::keys::{MachineSigningKey, RecipientSecretKey};
use sealstream_files::layout::{list_chain, read_ciphertext, read_envelope};

/// The owner's plaintext of the agent's local chain: its signed packages,
/// one per line, as they were sealed.
fn sealed_source(chain: &Path, messages: usize) -> Vec<u8> {
    let packages = packages(chain);
    assert_eq!(packages.len(), messages);
    let mut bytes = Vec::new();
    for (i, p) in packages.iter().enumerate() {
        assert!(p.verify().is_valid(), "package {i}");
        assert_eq!(p.payload["i"].as_number().unwrap().as_u64(), Some(i as u64));
    }
    let mut v = sealstream();
    v.args(["verify", "--chunk-dir"]).arg(chain);
    run_ok(v, "verify the agent's chain");
    let owner = RecipientSecretKey::from_hex(
        &std::fs::read_to_string(keyfile("owner.x25519.sk")).unwrap(),
        "owner",
    )
    .unwrap();
    for (index, path) in list_chain(chain).unwrap() {
        let envelope = read_envelope(&path).unwrap();
        let ciphertext = read_ciphertext(chain, index).unwrap().unwrap();
        let entry = envelope.recipient_of_type("owner").unwrap();
        bytes.extend(decrypt_chunk(&envelope, entry, &owner, ciphertext).unwrap());
    }
    bytes
}

#[test]
fn an_order_paid_on_chain_is_granted_and_consumed_by_both_clis() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // One-second receipt-log epochs, so the sale's period is over at once.
    let admin_key = MachineSigningKey::generate();
    let admin_did = sealstream_core::identity::Did::of_key(&admin_key).to_string();
    let (anvil, market) = market_on_anvil(
        &t.join("market"),
        1,
        &["--receipt-log-epoch", "1", "--admin", &admin_did],
    );

    // The owner registers the machine; the machine's agent uploads a
    // topic's chain and its window's signed dataset.
    let (owner_key, _, owner) = owner_with_machine(&market);
    let agent_dir = t.join("agent");
    run_market_agent(&market, &agent_dir, 200, None, true);
    let chain = only_chain(&agent_dir.join("out"));
    let source = sealed_source(&chain, 200);
    let datasets = datasets(&market, &owner);
    assert_eq!(datasets.len(), 1, "{datasets:?}");
    let dataset = &datasets[0];
    assert_eq!(dataset.get("chunkCount").and_then(Value::as_u64), Some(5));
    let dataset_id = text(dataset, "id");

    // Listed at 0.25 ETH, paid to a dev account.
    let pay_to = anvil.account(2).address.to_string();
    let listing_id = list_for_eth(&market, &owner, &dataset_id, &pay_to);

    // The buyer signs in with a funded account's key and orders.
    let payer = anvil.account(1);
    let buyer_key =
        MachineSigningKey::from_hex(payer.private_key.trim_start_matches("0x"), "dev key").unwrap();
    let buyer = market.sign_in(&buyer_key);
    let order_body = format!(
        r#"{{"listingId":"{listing_id}","buyerPublicKeyHex":"{BUYER_PK}","buyerId":{}}}"#,
        json_string(BUYER_ID)
    );
    let (status, order) = market.call("POST", "/v1/orders", Some(&buyer), Some(&order_body));
    assert_eq!(status, 201, "{order:?}");
    let id = text(&order, "id");
    assert_eq!(text(&order, "payment.amountDisplay"), "0.25");
    assert_eq!(text(&order, "payment.chain"), "base");

    // Anyone who knows the order id may claim a hash for it (the proof
    // URL takes no credentials): the claim is kept apart, and `order show`
    // says what it waits for (issue 14, items 10 and 11).
    let bogus = format!("0x{}", "5e".repeat(32));
    let bogus_proof = format!(
        r#"{{"txHash":"{bogus}","orderId":"{id}","chain":"base","payerAddress":"{}",
            "payeeAddress":"{}","amount":"0.25","tokenAddress":null}}"#,
        payer.address,
        text(&order, "payment.payTo")
    );
    let proof_path = format!("/v1/orders/{id}/payment-proof");
    let (status, answer) = market.call("POST", &proof_path, None, Some(&bogus_proof));
    assert_eq!(status, 200, "{answer:?}");
    let buyer_key_file = t.join("buyer.sk");
    std::fs::write(&buyer_key_file, buyer_key.to_hex_secret().as_bytes()).unwrap();
    let mut show = sealstream();
    show.args(["market", "order", "show", &id, "--server", &market.base])
        .arg("--key-file")
        .arg(&buyer_key_file);
    let shown = run_ok(show, "market order show");
    let said = String::from_utf8_lossy(&shown.stderr);
    assert!(
        said.contains(&bogus) && said.contains("transaction not yet known to the node"),
        "{said}"
    );

    // The reference pays and posts the proof to the order's proof URL.
    let paid = anvil.peaqos_pay(
        payer,
        &[
            "--seller-address",
            &text(&order, "payment.payTo"),
            "--amount",
            &text(&order, "payment.amountDisplay"),
            "--order-id",
            &id,
            "--confirmation-url",
            &text(&order, "urls.paymentProof"),
        ],
    );
    assert!(
        paid.status.success(),
        "peaqos stream pay: {}\n{}",
        String::from_utf8_lossy(&paid.stderr),
        String::from_utf8_lossy(&paid.stdout)
    );
    let reply: serde_json::Value = serde_json::from_slice(&paid.stdout).unwrap();
    let hash =
        sealstream_market::evm::TxHash::parse(reply["txHash"].as_str().unwrap(), "txHash").unwrap();
    anvil.wait_mined(&hash);
    // The buyer's poll of the confirmation settles a proof that arrived
    // before the node had the transaction; once paid it just reads back.
    let (status, confirmation) = market.call(
        "GET",
        &format!("/v1/orders/{id}/confirmation"),
        Some(&buyer),
        None,
    );
    assert_eq!(status, 200, "{confirmation:?}");
    assert_eq!(text(&confirmation, "status"), "confirmed");
    assert_eq!(text(&confirmation, "tx_hash"), hash.to_string());

    // The owner's grant daemon grants it, once.
    let owner_key_file = t.join("owner.sk");
    std::fs::write(&owner_key_file, owner_key.to_hex_secret().as_bytes()).unwrap();
    let daemon = || {
        run_ok(
            grant_daemon_once(&market.base, &owner_key_file),
            "grant-daemon --once",
        )
    };
    let first = daemon();
    let report = String::from_utf8_lossy(&first.stdout);
    assert!(report.contains(&id), "{report}");
    let (_, shown) = market.call("GET", &format!("/v1/orders/{id}"), Some(&buyer), None);
    assert_eq!(text(&shown, "state"), "granted");
    let second = daemon();
    assert!(
        !String::from_utf8_lossy(&second.stdout).contains(&id),
        "granted twice"
    );

    // A release link; both consumers rebuild the source from it.
    let link = release_link(&market, &buyer, &id);
    let url = text(&link, "url");
    for ours in [true, false] {
        let out = t.join(format!("out-{ours}.bin"));
        let mut c = if ours { sealstream() } else { peaqos() };
        if !ours {
            c.arg("stream");
        }
        c.args(["consume", "--download-url", &url, "--buyer-id", BUYER_ID])
            .arg("--buyer-private-key-file")
            .arg(keyfile("buyer.x25519.sk"))
            .arg("--output")
            .arg(&out);
        run_ok(
            c,
            if ours {
                "sealstream consume"
            } else {
                "peaqos stream consume"
            },
        );
        assert_eq!(std::fs::read(&out).unwrap(), source, "ours: {ours}");
    }

    // The reference's seller seat: distribute waits for the confirmation
    // behind the seller's link, then delivers the chain and access files.
    let moto = MotoServer::start();
    moto.create_bucket("deliveries");
    let (status, link) = market.call(
        "POST",
        &format!("/v1/orders/{id}/links"),
        Some(&owner),
        Some(r#"{"purpose":"confirmation"}"#),
    );
    assert_eq!(status, 201, "{link:?}");
    let mut distribute = peaqos();
    distribute
        .args(["stream", "distribute", "--chunk-dir"])
        .arg(&chain)
        .arg("--owner-private-key-file")
        .arg(keyfile("owner.x25519.sk"))
        .args(["--confirmation-url", &text(&link, "url"), "--order-id", &id])
        .args([
            "--poll-interval",
            "1",
            "--timeout",
            "120",
            "--delivery",
            "s3",
        ])
        .args([
            "--s3",
            "s3://deliveries/orders/",
            "--s3-endpoint",
            &moto.base,
            "--json",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("PEAQOS_S3_ACCESS_KEY_ID", "testing")
        .env("PEAQOS_S3_SECRET_ACCESS_KEY", "testing");
    let out = run_ok(distribute, "peaqos stream distribute");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["buyer_id"], BUYER_ID, "{reply}");
    assert_eq!(reply["tx_hash"], hash.to_string(), "{reply}");
    assert_eq!(reply["chunks_distributed"], 5, "{reply}");
    // The delivery is the buyer's access files alone (the download URL
    // points at the first); the chain comes from the published directory.
    let objects = moto.objects("deliveries");
    let keys: Vec<&String> = objects.keys().collect();
    let (chunks, access) = (chain.clone(), t.join("delivered"));
    std::fs::create_dir_all(&access).unwrap();
    for (key, bytes) in &objects {
        let name = key.rsplit('/').next().unwrap();
        assert!(
            key.starts_with("orders/") && name.starts_with(BUYER_PK),
            "{keys:?}"
        );
        std::fs::write(access.join(name), bytes).unwrap();
    }
    assert_eq!(
        std::fs::read_dir(&access).unwrap().count(),
        reply["access_files_count"].as_u64().unwrap() as usize,
        "{keys:?}"
    );
    let out = t.join("out-distributed.bin");
    let mut c = sealstream();
    c.args(["consume", "--buyer-id", BUYER_ID])
        .arg("--chunk-dir")
        .arg(&chunks)
        .arg("--data-dir")
        .arg(&chunks)
        .arg("--access-dir")
        .arg(&access)
        .arg("--buyer-private-key-file")
        .arg(keyfile("buyer.x25519.sk"))
        .arg("--output")
        .arg(&out);
    run_ok(
        c,
        &format!("sealstream consume of the reference's delivery {keys:?}"),
    );
    assert_eq!(std::fs::read(&out).unwrap(), source);

    // The receipt verifies offline against the key the server publishes.
    let receipt = market.bytes_as(&format!("/v1/orders/{id}/receipt"), Some(&buyer));
    std::fs::write(t.join("receipt.json"), &receipt).unwrap();
    let (_, key) = market.call("GET", "/v1/receipts/key", None, None);
    let mut verify = sealstream();
    verify
        .args(["receipt", "verify"])
        .arg(t.join("receipt.json"))
        .args(["--server-key", &text(&key, "publicKeyHex"), "--json"]);
    run_ok(verify, "receipt verify");

    // The v2 receipt through the CLI, two fields disclosed, the disclosure
    // verified against the same key (issue 21).
    let v2_file = t.join("receipt-v2.json");
    let mut fetch = sealstream();
    fetch
        .args([
            "market",
            "order",
            "receipt",
            &id,
            "--v2",
            "--server",
            &market.base,
        ])
        .arg("--key-file")
        .arg(&buyer_key_file)
        .arg("--output")
        .arg(&v2_file);
    run_ok(fetch, "market order receipt --v2");
    let disclosure = t.join("disclosure.json");
    let mut disclose = sealstream();
    disclose
        .args(["receipt", "disclose"])
        .arg(&v2_file)
        .args(["--fields", "datasetRoot,paidAt", "--output"])
        .arg(&disclosure);
    run_ok(disclose, "receipt disclose");
    let mut check = sealstream();
    check
        .args(["receipt", "verify-disclosure"])
        .arg(&disclosure)
        .args(["--server-key", &text(&key, "publicKeyHex")]);
    let checked = run_ok(check, "receipt verify-disclosure");
    let said = String::from_utf8_lossy(&checked.stderr);
    assert!(
        said.contains("2 of the receipt's 21 fields shown"),
        "{said}"
    );

    // The receipt log (issue 21): the buyer checks its receipt's leaf; the
    // seller proves the period's total, which verifies offline with the
    // market's key and the expected amount, and fails with one wei more.
    let mut logged = sealstream();
    logged
        .args([
            "market",
            "order",
            "receipt-log",
            &id,
            "--server",
            &market.base,
        ])
        .arg("--key-file")
        .arg(&buyer_key_file);
    let said =
        String::from_utf8_lossy(&run_ok(logged, "market order receipt-log").stderr).to_string();
    assert!(
        said.contains("in log market") && said.contains("committing to 0.25 (evm:"),
        "{said}"
    );
    let signed: Value = sealstream_core::json::parse(&receipt).unwrap();
    let issued = text(&signed, "receipt.issuedAt");
    let unix = sealstream_core::utc::parse_seconds(&issued).unwrap();
    while sealstream_core::utc::now_unix() <= unix + 1 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let chain_id = signed
        .get("receipt")
        .and_then(|r| r.get("rail"))
        .and_then(|r| r.get("chainId"))
        .and_then(Value::as_u64)
        .unwrap();
    let currency = format!("evm:{chain_id}:native:18");
    let total = t.join("total.json");
    let mut prove = sealstream();
    prove
        .args(["market", "audit", "prove-total", "--server", &market.base])
        .args(["--from", &issued, "--to"])
        .arg(sealstream_core::utc::format_seconds(unix + 1))
        .args(["--server-key", &text(&key, "publicKeyHex")])
        .arg("--key-file")
        .arg(&owner_key_file)
        .arg("--output")
        .arg(&total);
    run_ok(prove, "market audit prove-total");
    let mut verify_total = sealstream();
    verify_total
        .args(["market", "audit", "verify-total"])
        .arg(&total)
        .args(["--server-key", &text(&key, "publicKeyHex")])
        .args(["--expect", &format!("{currency}=0.25")]);
    let said = String::from_utf8_lossy(&run_ok(verify_total, "market audit verify-total").stderr)
        .to_string();
    assert!(
        said.contains("1 receipts") && said.contains("total: 0.25 (evm:"),
        "{said}"
    );
    let mut wrong = sealstream();
    wrong
        .args(["market", "audit", "verify-total"])
        .arg(&total)
        .args(["--expect", &format!("{currency}=0.250000000000000001")]);
    let out = wrong.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The proof file with its total raised by one wei: exit 2.
    let forged = std::fs::read_to_string(&total)
        .unwrap()
        .replace("\"250000000000000000\"", "\"250000000000000001\"");
    assert!(forged.contains("250000000000000001"));
    std::fs::write(t.join("forged.json"), forged).unwrap();
    let mut check = sealstream();
    check
        .args(["market", "audit", "verify-total"])
        .arg(t.join("forged.json"));
    let out = check.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The seller keeps its log's head; later the log is consistent with it.
    let head = t.join("head.json");
    let mut keep = sealstream();
    keep.args(["market", "audit", "log-head", "--server", &market.base])
        .arg("--key-file")
        .arg(&owner_key_file)
        .arg("--output")
        .arg(&head);
    run_ok(keep, "market audit log-head");
    let mut consistent = sealstream();
    consistent
        .args([
            "market",
            "audit",
            "log-consistency",
            "--server",
            &market.base,
            "--old",
        ])
        .arg(&head)
        .arg("--key-file")
        .arg(&owner_key_file);
    let said = String::from_utf8_lossy(&run_ok(consistent, "market audit log-consistency").stderr)
        .to_string();
    assert!(said.contains("is consistent"), "{said}");

    // A disclosure under dual approval (issue 21): an auditor asks for the
    // order's dataset root; a compliance officer and the admin approve; the
    // auditor fetches and verifies it; the buyer sees the notice.
    let key_file = |name: &str, key: &MachineSigningKey| {
        let path = t.join(name);
        std::fs::write(&path, key.to_hex_secret().as_bytes()).unwrap();
        (
            path,
            sealstream_core::identity::Did::of_key(key).to_string(),
        )
    };
    let (admin_sk, _) = key_file("admin.sk", &admin_key);
    let (auditor_sk, auditor_did) = key_file("auditor.sk", &MachineSigningKey::generate());
    let (officer_sk, officer_did) = key_file("officer.sk", &MachineSigningKey::generate());
    let cli = |key: &Path, args: &[&str]| {
        let mut c = sealstream();
        c.arg("market")
            .args(args)
            .args(["--server", &market.base])
            .arg("--key-file")
            .arg(key);
        c
    };
    // Sign each in once so the admin can grant them roles.
    for k in [&auditor_sk, &officer_sk] {
        run_ok(cli(k, &["login"]), "market login");
    }
    run_ok(
        cli(
            &admin_sk,
            &["admin", "role", "grant", &auditor_did, "auditor"],
        ),
        "grant auditor",
    );
    run_ok(
        cli(
            &admin_sk,
            &["admin", "role", "grant", &officer_did, "compliance"],
        ),
        "grant compliance",
    );
    let filed = run_ok(
        cli(
            &auditor_sk,
            &[
                "disclosure",
                "request",
                "--order",
                &id,
                "--fields",
                "datasetRoot",
                "--legal-basis",
                "Audit 2026/9",
                "--access-seconds",
                "600",
            ],
        ),
        "market disclosure request",
    );
    let request = String::from_utf8_lossy(&filed.stdout).trim().to_string();
    assert!(request.starts_with("dr_"), "{request}");
    let refused = cli(&auditor_sk, &["disclosure", "fetch", &request])
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    run_ok(
        cli(&officer_sk, &["disclosure", "approve", &request]),
        "approve (compliance)",
    );
    let approved = run_ok(
        cli(&admin_sk, &["disclosure", "approve", &request]),
        "approve (admin)",
    );
    assert!(String::from_utf8_lossy(&approved.stderr).contains("(approved): 2 of 2 approvals"));
    let mut fetch = cli(&auditor_sk, &["disclosure", "fetch", &request]);
    fetch
        .args(["--server-key", &text(&key, "publicKeyHex")])
        .arg("--output")
        .arg(t.join("disclosure-case.json"));
    let said =
        String::from_utf8_lossy(&run_ok(fetch, "market disclosure fetch").stderr).to_string();
    assert!(
        said.contains(&format!("order {id}: buyer ")) && said.contains("datasetRoot: \"0x"),
        "{said}"
    );
    let notices = run_ok(
        cli(&buyer_key_file, &["disclosure", "notices"]),
        "market disclosure notices",
    );
    assert!(String::from_utf8_lossy(&notices.stderr).contains(&request));
}
