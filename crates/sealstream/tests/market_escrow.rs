//! Escrowed orders through the CLI, against a real EVM node (anvil) with
//! the escrow contract and a market started with `--escrow` and
//! `--escrow-arbiter-key-file`: `market order pay` deposits into the
//! escrow (the order paid), `market order escrow` shows it held,
//! `sealstream dispute verify` checks evidence offline (exit 2 for
//! evidence of no fault), and `market order dispute` posts it (the
//! market's verdict printed) and sends the on-chain dispute.

mod common;

use common::market::{datasets, market_on_anvil, owner_with_machine, run_market_agent, text};
use common::*;
use sealstream_core::evm::escrow::{deals_call, order_key};
use sealstream_core::identity::EvmAddress;
use sealstream_core::json::{self, write::to_python_compact, Value};

/// The deal of `id`: (state as the contract's enum, buyer, seller), read
/// from the `deals(bytes32)` getter's six words.
fn deal(anvil: &anvil::Anvil, escrow: EvmAddress, id: &str) -> (u8, String, String) {
    let data = anvil.call(escrow, &deals_call(&order_key(id)));
    assert_eq!(data.len(), 6 * 32);
    let address = |w: usize| format!("0x{}", hex::encode(&data[w * 32 + 12..(w + 1) * 32]));
    (data[191], address(0), address(1))
}

/// The address of the first contract dev account 0 deploys on a fresh
/// anvil (nonce 0): where the escrow lands.
const FIRST_CONTRACT: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

#[test]
fn an_escrowed_order_is_paid_shown_and_disputed_with_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let arbiter_file = t.join("arbiter.secp256k1.sk");
    // Dev account 4 is the arbiter; its key is written before anvil starts
    // (the well-known test mnemonic's), then checked against anvil's.
    let escrow_flag = format!("{}={FIRST_CONTRACT}", anvil::BASE_CHAIN_ID);
    std::fs::write(&arbiter_file, "").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&arbiter_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // The market reads the key at start: write it from a first anvil's
    // accounts (the same mnemonic on every anvil).
    let probe = anvil::Anvil::start();
    std::fs::write(&arbiter_file, &probe.account(4).private_key).unwrap();
    drop(probe);
    // An admin, who makes a person an arbiter with the CLI.
    let admin_key = sealstream_core::keys::MachineSigningKey::generate();
    let admin_did = sealstream_core::identity::Did::of_key(&admin_key).to_string();
    let admin_file = t.join("admin.secp256k1.sk");
    std::fs::write(&admin_file, admin_key.to_hex_secret().as_str()).unwrap();
    let (anvil, market) = market_on_anvil(
        &t.join("market"),
        1,
        &[
            "--escrow",
            &escrow_flag,
            "--escrow-arbiter-key-file",
            arbiter_file.to_str().unwrap(),
            "--admin",
            &admin_did,
        ],
    );
    let escrow = anvil.deploy_escrow(
        anvil.account(0).address,
        anvil.account(4).address,
        3_600,
        86_400,
    );
    assert_eq!(escrow.to_string(), FIRST_CONTRACT);

    let (_, _, owner) = owner_with_machine(&market);
    run_market_agent(&market, &t.join("agent"), 40, None, false);
    let dataset_id = text(&datasets(&market, &owner)[0], "id");
    let seller = anvil.account(2).address;
    let listing = format!(
        r#"{{"datasetId":"{dataset_id}","title":"Soil moisture","description":"Escrowed.",
            "tags":["soil"],"domain":"robotics","license":{{"spdx":"CC-BY-4.0"}},
            "price":"250000000000000000",
            "rail":{{"kind":"evm","chainId":{},"token":"native","decimals":18,
                     "payTo":"{seller}","symbol":"ETH","escrow":true}},
            "delivery":["api"]}}"#,
        anvil::BASE_CHAIN_ID
    );
    let listing_id = common::market::list_and_publish(&market, &owner, &listing);

    let payer = anvil.account(1);
    let key_file = t.join("buyer.secp256k1.sk");
    std::fs::write(&key_file, payer.private_key.trim_start_matches("0x")).unwrap();
    let market_cmd = |args: &[&str]| {
        let mut c = sealstream();
        c.arg("market")
            .args(args)
            .args(["--server", &market.base, "--key-file"])
            .arg(&key_file);
        c.output().unwrap()
    };
    let out = market_cmd(&[
        "order",
        "create",
        "--listing",
        &listing_id,
        "--buyer-public-key",
        BUYER_PK,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();

    // Paid by a deposit into the escrow, confirmed at once (1 confirmation).
    let out = market_cmd(&["order", "pay", &id, "--rpc", &anvil.url, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let paid = json::parse(&out.stdout).unwrap();
    assert_eq!(
        paid.get("proof")
            .and_then(|p| p.get("accepted"))
            .and_then(Value::as_bool),
        Some(true),
        "{}",
        stderr(&out)
    );
    let (state, _, dealt_seller) = deal(&anvil, escrow, &id);
    assert_eq!(state, 1, "held");
    assert_eq!(dealt_seller, seller.to_string().to_lowercase());
    assert_eq!(anvil.balance(escrow).to_string(), "250000000000000000");

    let out = market_cmd(&["order", "escrow", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(": held, 250000000000000000 held"),
        "{}",
        stderr(&out)
    );

    // Evidence of no fault: chunk 0 with a valid proof that the root
    // commits to it.
    let get = |path: &str| {
        let (status, v) = market.call("GET", path, Some(&owner), None);
        assert_eq!(status, 200, "{path}: {v:?}");
        to_python_compact(&v)
    };
    let (_, view) = market.call(
        "GET",
        &format!("/v1/datasets/{dataset_id}"),
        Some(&owner),
        None,
    );
    let manifest = to_python_compact(view.get("manifest").expect("a signed dataset"));
    let envelope = get(&format!("/v1/datasets/{dataset_id}/chunks/0/envelope"));
    let proof = get(&format!("/v1/datasets/{dataset_id}/proofs/0"));
    let evidence = format!(
        r#"{{"schemaVersion":"sealstream.dispute-evidence.v1","orderId":"{id}","kind":"not-in-root",
            "dataset":{manifest},"envelope":{envelope},"proof":{proof}}}"#
    );
    let evidence_file = t.join("evidence.json");
    std::fs::write(&evidence_file, &evidence).unwrap();
    let out = sealstream()
        .args(["dispute", "verify"])
        .arg(&evidence_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the root commits to this very chunk"),
        "{}",
        stderr(&out)
    );
    // Not evidence at all: exit 1.
    let junk = t.join("junk.json");
    std::fs::write(&junk, r#"{"schemaVersion":1}"#).unwrap();
    let out = sealstream()
        .args(["dispute", "verify"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // Disputed: the market records the verdict, the chain the dispute.
    let out = market_cmd(&[
        "order",
        "dispute",
        &id,
        "--evidence",
        evidence_file.to_str().unwrap(),
        "--rpc",
        &anvil.url,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("disputed") && said.contains("evidence not valid"),
        "{said}"
    );
    assert!(said.contains("Disputed on chain in block"), "{said}");
    let (state, buyer, _) = deal(&anvil, escrow, &id);
    assert_eq!(state, 2, "disputed");
    assert_eq!(buyer, payer.address.to_string().to_lowercase());

    // An arbiter splits it: 0.1 ETH back to the buyer, 0.15 to the seller.
    let person = sealstream_core::keys::MachineSigningKey::generate();
    let person_did = sealstream_core::identity::Did::of_key(&person).to_string();
    let person_file = t.join("arbiter-person.secp256k1.sk");
    std::fs::write(&person_file, person.to_hex_secret().as_str()).unwrap();
    let cli = |key: &std::path::Path, args: &[&str]| {
        let mut c = sealstream();
        c.arg("market")
            .args(args)
            .args(["--server", &market.base, "--key-file"])
            .arg(key);
        c.output().unwrap()
    };
    let resolve = [
        "order",
        "resolve",
        id.as_str(),
        "--to-buyer",
        "100000000000000000",
    ];
    let out = cli(&person_file, &resolve);
    assert_eq!(
        out.status.code(),
        Some(2),
        "not an arbiter yet: {}",
        stderr(&out)
    );
    let out = cli(
        &admin_file,
        &["admin", "role", "grant", &person_did, "arbiter"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (buyer_before, seller_before) = (anvil.balance(payer.address), anvil.balance(seller));
    let out = cli(&person_file, &resolve);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("resolved")
            && said.contains("100000000000000000 to the buyer, 150000000000000000 to the seller"),
        "{said}"
    );
    assert_eq!(
        anvil.balance(payer.address).to_string(),
        (buyer_before.to_string().parse::<u128>().unwrap() + 100_000_000_000_000_000).to_string()
    );
    assert_eq!(
        anvil.balance(seller).to_string(),
        (seller_before.to_string().parse::<u128>().unwrap() + 150_000_000_000_000_000).to_string()
    );
    let (state, _, _) = deal(&anvil, escrow, &id);
    assert_eq!(state, 4, "resolved");
}
