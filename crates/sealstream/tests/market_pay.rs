//! `sealstream market order create` and `market order pay` against a real
//! EVM node (anvil) and a server that waits for two confirmations: the
//! order id printed for `$(…)`, the pay command it names, the payment sent
//! and its proof posted, a pending answer with what it waits for, `--wait`
//! until paid once the node mines deeper, and the server's refusal of a
//! transaction already used for another order (exit 2, the reason shown).

mod common;

use std::io::BufRead;

use common::market::{
    datasets, list_for_eth, market_on_anvil, owner_with_machine, run_market_agent, text,
};
use common::*;
use sealstream_core::json::{self, Value};

#[test]
fn the_buyer_pays_with_the_cli_and_sees_what_the_server_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (anvil, market) = market_on_anvil(&t.join("market"), 2, &[]);
    let (_, _, owner) = owner_with_machine(&market);
    run_market_agent(&market, &t.join("agent"), 40, None, false);
    let dataset_id = text(&datasets(&market, &owner)[0], "id");
    let pay_to = anvil.account(2).address.to_string();
    let listing_id = list_for_eth(&market, &owner, &dataset_id, &pay_to);

    // The buyer's key is a funded dev account's.
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
    let order = |_: ()| {
        let out = market_cmd(&[
            "order",
            "create",
            "--listing",
            &listing_id,
            "--buyer-public-key",
            BUYER_PK,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        (stdout(&out).trim().to_string(), stderr(&out))
    };
    let (id, said) = order(());
    assert!(
        id.starts_with("ord_") && !id.contains(char::is_whitespace),
        "{id}"
    );
    assert!(
        said.contains(&format!("sealstream market order pay {id} ")),
        "{said}"
    );
    assert!(said.contains(&payer.address.to_string()), "{said}");

    // Sent, mined, short of its second confirmation: pending, and said so.
    let out = market_cmd(&["order", "pay", &id, "--rpc", &anvil.url, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let paid = json::parse(&out.stdout).unwrap();
    let hash = paid
        .get("txHash")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    let proof = paid.get("proof").unwrap();
    assert_eq!(proof.get("accepted").and_then(Value::as_bool), Some(false));
    assert_eq!(
        proof.get("status").and_then(Value::as_str),
        Some("awaiting-confirmations")
    );
    let out = market_cmd(&["order", "pay", &id, "--rpc", &anvil.url, "--tx-hash", &hash]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("Payment pending, waiting for confirmations (1 of 2 confirmations): waiting for 1 more confirmation"),
        "{said}"
    );
    assert!(said.contains(&format!("--tx-hash {hash} --wait")), "{said}");

    // --wait polls until the server sees it deep enough: the node mines the
    // next block once the command says it waits.
    let mut waiting = sealstream();
    waiting
        .args([
            "market",
            "order",
            "pay",
            &id,
            "--rpc",
            &anvil.url,
            "--tx-hash",
            &hash,
        ])
        .args(["--wait", "--server", &market.base, "--key-file"])
        .arg(&key_file)
        .stderr(std::process::Stdio::piped());
    let mut child = waiting.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line.contains("Waiting for the server to confirm it") {
            break;
        }
    }
    anvil.mine(1);
    for line in lines {
        said.push_str(&line.unwrap());
        said.push('\n');
    }
    assert!(child.wait().unwrap().success(), "{said}");
    assert!(said.contains(&format!("Order {id} is paid")), "{said}");

    // The same transaction for a second order: refused, with the reason.
    let (second, _) = order(());
    assert_ne!(second, id);
    let out = market_cmd(&[
        "order",
        "pay",
        &second,
        "--rpc",
        &anvil.url,
        "--tx-hash",
        &hash,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("order pay: the server refused the payment proof") && said.contains("txHash"),
        "{said}"
    );
    assert!(
        !said.contains(payer.private_key.trim_start_matches("0x")),
        "{said}"
    );
}
