//! The market's owner and buyer commands as processes, with no HTTP written
//! by hand on the selling or buying side: `keys generate` makes a machine;
//! `market machine sign` (on the machine) and `market machine register` (the
//! owner) register it; `publish` and `market upload` upload a chain; `market dataset
//! create` makes an owner-signed dataset of chunks 1..=2 (the source hash
//! computed on the owner's side); `market listing create --publish` lists it
//! with a sample whose key is disclosed; a buyer orders with `market order
//! create`, the seller marks it paid, the grant daemon grants it, and the
//! buyer consumes the release through `market order link` and checks the
//! receipt from `market order receipt`. The plaintext consumed is exactly
//! chunks 1 and 2 of the input. Refusals and bad input are exit codes and
//! messages naming what is wrong.

mod common;

use std::path::Path;
use std::process::Command;

use common::market::{text, Market};
use common::*;
use sealstream_core::identity::Did;
use sealstream_core::json::{self, Value};
use sealstream_core::keys::{MachineSigningKey, RecipientSecretKey};

const CHUNK: usize = 50_000;

/// `sealstream market ARGS… --server URL --key-file KEY`.
fn market_cmd(server: &str, key: &Path, args: &[&str]) -> Command {
    let mut c = sealstream();
    c.arg("market").args(args);
    c.args(["--server", server]).arg("--key-file").arg(key);
    c
}

fn write_key(path: &Path, hex: &str) {
    std::fs::write(path, hex).unwrap();
}

#[test]
fn an_owner_and_a_buyer_trade_with_the_cli_only() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let market = Market::start(&t.join("market"));
    let server = market.base.as_str();

    // The machine's keys, as a user makes them.
    run_ok(
        {
            let mut c = sealstream();
            c.args(["keys", "generate", "--output-dir"])
                .arg(t.join("machine"));
            c
        },
        "keys generate",
    );
    let keys = json::parse(&std::fs::read(t.join("machine/keys.json")).unwrap()).unwrap();
    let machine_did = text(&keys, "machineDid");
    // The owner's and the buyer's sign-in keys, and the buyer's X25519 key.
    let owner_key = MachineSigningKey::generate();
    let owner_did = Did::of_key(&owner_key).to_string();
    write_key(&t.join("owner.sk"), &owner_key.to_hex_secret());
    let buyer_key = MachineSigningKey::generate();
    let buyer_did = Did::of_key(&buyer_key).to_string();
    write_key(&t.join("buyer.sk"), &buyer_key.to_hex_secret());
    write_key(
        &t.join("buyer.x25519.sk"),
        &RecipientSecretKey::generate().to_hex_secret(),
    );
    let owner_sk = t.join("owner.sk");
    let buyer_sk = t.join("buyer.sk");

    // On the machine: the signed registration for this owner.
    let mut sign = sealstream();
    sign.args(["market", "machine", "sign", "--machine-key-file"])
        .arg(t.join("machine/machine.secp256k1.sk"))
        .arg("--keys")
        .arg(t.join("machine/keys.json"))
        .args(["--owner", &owner_did, "--output"])
        .arg(t.join("registration.json"));
    run_ok(sign, "machine sign");

    // Another principal cannot send it: named before anything is sent.
    let mut wrong = market_cmd(server, &buyer_sk, &["machine", "register"]);
    wrong.arg("--registration").arg(t.join("registration.json"));
    let err = run_fails(wrong, 1);
    assert!(
        err.contains("registration: ownerDid: the machine signed it for"),
        "{err}"
    );

    let mut register = market_cmd(server, &owner_sk, &["machine", "register", "--json"]);
    register
        .arg("--registration")
        .arg(t.join("registration.json"));
    let machine = json_of(&run_ok(register, "machine register"));
    assert_eq!(text(&machine, "did"), machine_did);
    assert_eq!(text(&machine, "ownerDid"), owner_did);

    // The machine publishes 4 chunks and uploads them (no dataset.json: the
    // owner makes the only dataset).
    let input: Vec<u8> = (0..4 * CHUNK).map(|i| (i * 7 % 251) as u8).collect();
    let out = publish_and_upload(server, &t.join("machine"), t, &input, CHUNK, "/arm/torque");
    assert!(stderr(&out).contains("4 chunks stored"), "{}", stderr(&out));

    // A dataset of chunks 1..=2, signed by the owner.
    let dataset_args = |from: &str, to: &str| {
        let mut c = market_cmd(server, &owner_sk, &["dataset", "create", "--json"]);
        c.args(["--machine-did", &machine_did, "--topic", "/arm/torque"])
            .args(["--from-index", from, "--to-index", to])
            .arg("--owner-private-key-file")
            .arg(t.join("machine/owner.x25519.sk"));
        c
    };
    let made = json_of(&run_ok(dataset_args("1", "2"), "dataset create"));
    let dataset_id = text(&made, "id");
    assert_eq!(made.get("chunkCount").and_then(Value::as_u64), Some(2));
    assert_eq!(made.get("signedNow").and_then(Value::as_bool), Some(true));
    assert_eq!(
        text(&made, "sourceHash"),
        sealstream_core::chunk::sha256_hex(&input[CHUNK..3 * CHUNK])
    );
    // Again: the same dataset, already signed.
    let again = json_of(&run_ok(dataset_args("1", "2"), "dataset create again"));
    assert_eq!(text(&again, "id"), dataset_id);
    assert_eq!(again.get("signedNow").and_then(Value::as_bool), Some(false));
    // With a key the chunks are not wrapped for: exit 2, the chunk named.
    write_key(
        &t.join("stranger.x25519.sk"),
        &RecipientSecretKey::generate().to_hex_secret(),
    );
    let mut stranger = market_cmd(server, &owner_sk, &["dataset", "create"]);
    stranger
        .args(["--machine-did", &machine_did, "--topic", "/arm/torque"])
        .args([
            "--from-index",
            "0",
            "--to-index",
            "3",
            "--owner-private-key-file",
        ])
        .arg(t.join("stranger.x25519.sk"));
    let err = run_fails(stranger, 2);
    assert!(
        err.contains("chunk 0: its key is not wrapped for the owner key given"),
        "{err}"
    );
    // A range the server does not hold: its refusal, exit 2.
    let err = run_fails(dataset_args("2", "9"), 2);
    assert!(err.contains("dataset create: market "), "{err}");

    // The listing, with chunk 2 as a sample, published.
    let listing = format!(
        r#"{{"datasetId":"{dataset_id}","title":"Arm torque, cell 4","description":"Joint torque of a welding arm.",
            "tags":["robotics","torque"],"domain":"robotics","license":{{"spdx":"CC-BY-4.0"}},"price":"1250",
            "rail":{{"kind":"invoice","currency":"EUR","decimals":2,"payee":"Robots GmbH","terms":"30 days net"}},
            "delivery":["api"],"sampleChunkIndexes":[2]}}"#
    );
    std::fs::write(t.join("listing.json"), listing).unwrap();
    // Samples without the owner's key: exit 1, the file and field named.
    let mut no_key = market_cmd(server, &owner_sk, &["listing", "create"]);
    no_key.arg("--listing").arg(t.join("listing.json"));
    let err = run_fails(no_key, 1);
    assert!(err.contains("listing.json: sampleChunkIndexes:"), "{err}");
    let mut create = market_cmd(
        server,
        &owner_sk,
        &["listing", "create", "--publish", "--json"],
    );
    create
        .arg("--listing")
        .arg(t.join("listing.json"))
        .arg("--owner-private-key-file")
        .arg(t.join("machine/owner.x25519.sk"));
    let listed = json_of(&run_ok(create, "listing create"));
    let listing_id = text(&listed, "id");
    assert_eq!(text(&listed, "state"), "published");

    // Anonymous: the catalog finds it, and the sample's key is there.
    let (status, page) = market.call("GET", "/v1/catalog?q=torque", None, None);
    assert_eq!(status, 200, "{page:?}");
    let items = page.get("items").and_then(Value::as_array).unwrap();
    assert_eq!(items.len(), 1, "{page:?}");
    assert_eq!(text(&items[0], "id"), listing_id);
    let (status, sample) = market.call(
        "GET",
        &format!(
            "/v1/listings/{listing_id}/samples/2?recipientPublicKey={}",
            RecipientSecretKey::generate().public_key().to_hex()
        ),
        None,
        None,
    );
    assert_eq!(status, 200, "{sample:?}");

    // The buyer orders; the seller marks it paid; the daemon grants it.
    let mut order = market_cmd(server, &buyer_sk, &["order", "create"]);
    order
        .args(["--listing", &listing_id])
        .arg("--buyer-private-key-file")
        .arg(t.join("buyer.x25519.sk"));
    // The order id on stdout (for `ORDER=$(…)`), what to do next on stderr.
    let created = run_ok(order, "order create");
    let order_id = String::from_utf8(created.stdout.clone())
        .unwrap()
        .trim()
        .to_string();
    assert!(order_id.starts_with("ord_"), "{order_id}");
    let order = json_of(&run_ok(
        market_cmd(server, &buyer_sk, &["order", "show", &order_id, "--json"]),
        "order show",
    ));
    // It says what the seller runs to mark it paid (issue 16).
    let said = stderr(&created);
    assert!(
        said.contains(&format!(
            "the seller then runs: sealstream market order mark-paid {order_id} --server {server} \
             --key-file SELLER_KEY --reference INVOICE_REF"
        )),
        "{said}"
    );
    assert_eq!(text(&order, "state"), "awaiting-payment");
    assert_eq!(text(&order, "buyerId"), buyer_did);
    // Only the seller may mark it paid.
    let err = run_fails(
        market_cmd(
            server,
            &buyer_sk,
            &["order", "mark-paid", &order_id, "--reference", "INV-7"],
        ),
        2,
    );
    assert!(err.contains("order mark-paid: market "), "{err}");
    let paid = json_of(&run_ok(
        market_cmd(
            server,
            &owner_sk,
            &[
                "order",
                "mark-paid",
                &order_id,
                "--reference",
                "INV-7",
                "--json",
            ],
        ),
        "mark-paid",
    ));
    assert_eq!(text(&paid, "state"), "paid");
    let mut daemon = sealstream();
    daemon
        .args(["market", "grant-daemon", "--once", "--server", server])
        .arg("--key-file")
        .arg(&owner_sk)
        .arg("--owner-private-key-file")
        .arg(t.join("machine/owner.x25519.sk"));
    run_ok(daemon, "grant-daemon --once");
    let show = run_ok(
        market_cmd(server, &buyer_sk, &["order", "show", &order_id, "--json"]),
        "order show",
    );
    let shown = json_of(&show);
    assert_eq!(text(&shown, "state"), "granted");
    // Every URL it prints works: the release is reached through the link
    // command it prints (issue 16), run here as printed.
    let said = stderr(&run_ok(
        market_cmd(server, &buyer_sk, &["order", "show", &order_id]),
        "order show",
    ));
    let release = said
        .lines()
        .find_map(|l| l.trim().strip_prefix("release: "))
        .unwrap_or_else(|| panic!("no release line: {said}"));
    let command = release.split("   (").next().unwrap();
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(
        words[..4],
        ["sealstream", "market", "order", "link"],
        "{said}"
    );
    let mut printed = sealstream();
    printed.args(&words[1..]);
    let printed_url = String::from_utf8(run_ok(printed, "the printed link command").stdout)
        .unwrap()
        .trim()
        .to_string();
    let (path, query) = printed_url
        .strip_prefix(&market.base)
        .and_then(|p| p.split_once('?'))
        .unwrap_or_else(|| panic!("{printed_url}"));
    let (status, manifest) =
        market.call("GET", &format!("{path}/manifest.json?{query}"), None, None);
    assert_eq!(status, 200, "{printed_url}: {manifest:?}");
    let sold = json_of(&run_ok(
        market_cmd(
            server,
            &owner_sk,
            &["order", "list", "--as", "seller", "--json"],
        ),
        "order list",
    ));
    let sold = sold.get("orders").and_then(Value::as_array).unwrap();
    assert_eq!(sold.len(), 1);
    assert_eq!(text(&sold[0], "id"), order_id);

    // The buyer consumes the release through a link: chunks 1 and 2.
    let link = run_ok(
        market_cmd(server, &buyer_sk, &["order", "link", &order_id]),
        "order link",
    );
    let url = String::from_utf8(link.stdout).unwrap().trim().to_string();
    assert!(url.starts_with("http://"), "{url}");
    let consume = |buyer_key: &Path| {
        let mut c = sealstream();
        c.args(["consume", "--download-url", &url, "--buyer-id", &buyer_did])
            .arg("--buyer-private-key-file")
            .arg(buyer_key)
            .arg("--output")
            .arg(t.join("bought.bin"));
        c
    };
    // The owner signed the dataset, not the machine. The release package
    // carries the machine's signed registration naming the owner, so the
    // buyer's consumer accepts the owner without --dataset-signer (issue 16;
    // before, this was refused). A failed consume leaves no download
    // behind; --keep-download keeps it.
    let wrong_buyer = t.join("stranger.x25519.sk");
    let mut failed = consume(&wrong_buyer);
    failed.arg("--work-dir").arg(t.join("work"));
    let err = run_fails(failed, 2);
    assert!(err.contains("The download was removed"), "{err}");
    assert!(
        !t.join("work").exists(),
        "the download is removed after a failure"
    );
    assert!(!t.join("bought.bin").exists());
    assert_eq!(text(&shown, "sellerDid"), owner_did);
    let mut kept = consume(&t.join("buyer.x25519.sk"));
    kept.arg("--keep-download").arg(t.join("kept"));
    let out = run_ok(kept, "consume --download-url");
    assert!(
        stderr(&out).contains(&format!("Accepting the machine's owner {owner_did}")),
        "{}",
        stderr(&out)
    );
    assert!(std::fs::read(t.join("bought.bin")).unwrap() == input[CHUNK..3 * CHUNK]);
    for kept in [
        "chunks/dataset.json",
        "chunks/chunk-1.json",
        "data/chunk-2.bin",
        "registration.json",
    ] {
        assert!(t.join("kept").join(kept).is_file(), "{kept}");
    }
    // From the directories alone (no registration), the owner's signature
    // is refused unless the buyer names the signer, and the error says how.
    std::fs::remove_file(t.join("bought.bin")).unwrap();
    let from_dirs = |signer: Option<&str>| {
        let mut c = sealstream();
        c.args(["consume", "--buyer-id", &buyer_did])
            .arg("--chunk-dir")
            .arg(t.join("kept/chunks"))
            .arg("--data-dir")
            .arg(t.join("kept/data"))
            .arg("--access-dir")
            .arg(t.join("kept/access"))
            .arg("--buyer-private-key-file")
            .arg(t.join("buyer.x25519.sk"))
            .arg("--output")
            .arg(t.join("bought.bin"));
        if let Some(did) = signer {
            c.args(["--dataset-signer", did]);
        }
        c
    };
    let err = run_fails(from_dirs(None), 2);
    assert!(
        err.contains(&format!("pass --dataset-signer {owner_did}")),
        "{err}"
    );
    assert!(!t.join("bought.bin").exists());
    run_ok(from_dirs(Some(&owner_did)), "consume --dataset-signer");
    assert!(std::fs::read(t.join("bought.bin")).unwrap() == input[CHUNK..3 * CHUNK]);

    // The receipt verifies against the market's key.
    let mut receipt = market_cmd(server, &buyer_sk, &["order", "receipt", &order_id]);
    receipt.arg("--output").arg(t.join("receipt.json"));
    run_ok(receipt, "order receipt");
    let (_, key) = market.call("GET", "/v1/receipts/key", None, None);
    let mut verify = sealstream();
    verify
        .args(["receipt", "verify"])
        .arg(t.join("receipt.json"))
        .args(["--server-key", &text(&key, "publicKeyHex")]);
    run_ok(verify, "receipt verify");

    // Lists, and withdrawal.
    let datasets = json_of(&run_ok(
        market_cmd(server, &owner_sk, &["dataset", "list", "--json"]),
        "dataset list",
    ));
    let datasets = datasets.get("datasets").and_then(Value::as_array).unwrap();
    // The signed one, and the draft of 0..=3 the stranger key could not
    // sign (a rerun with the right key completes it).
    assert_eq!(datasets.len(), 2, "{datasets:?}");
    let signed = datasets
        .iter()
        .find(|d| text(d, "id") == dataset_id)
        .unwrap();
    assert_eq!(text(signed, "signerDid"), owner_did);
    let draft = datasets
        .iter()
        .find(|d| text(d, "id") != dataset_id)
        .unwrap();
    assert_eq!(text(draft, "state"), "draft");
    let completed = json_of(&run_ok(dataset_args("0", "3"), "dataset create 0..=3"));
    assert_eq!(text(&completed, "id"), text(draft, "id"));
    assert_eq!(
        text(&completed, "sourceHash"),
        sealstream_core::chunk::sha256_hex(&input)
    );
    let machines = run_ok(
        market_cmd(server, &owner_sk, &["machine", "list"]),
        "machine list",
    );
    assert!(String::from_utf8_lossy(&machines.stdout).contains(&machine_did));
    let withdrawn = json_of(&run_ok(
        market_cmd(
            server,
            &owner_sk,
            &["listing", "withdraw", &listing_id, "--json"],
        ),
        "listing withdraw",
    ));
    assert_eq!(text(&withdrawn, "state"), "withdrawn");
    let (_, page) = market.call("GET", "/v1/catalog?q=torque", None, None);
    assert_eq!(
        page.get("items").and_then(Value::as_array).unwrap().len(),
        0
    );
}

#[test]
fn bad_flags_and_unreachable_servers_are_input_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k.sk");
    write_key(&key, &MachineSigningKey::generate().to_hex_secret());
    // Not a URL.
    let err = run_fails(market_cmd("ftp://x", &key, &["machine", "list"]), 1);
    assert!(
        err.contains("--server: expected an http:// or https:// URL"),
        "{err}"
    );
    // Nobody listening: exit 1, the server named.
    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");
    let err = run_fails(market_cmd(&server, &key, &["order", "list"]), 1);
    assert!(
        err.contains(&format!("order list: market {server}")),
        "{err}"
    );
    // A dataset without a range.
    // Without a range it takes the whole chain (issue 16): the only
    // problem left is the server out of reach, an input error naming it.
    let mut create = market_cmd(&server, &key, &["dataset", "create"]);
    create
        .args([
            "--machine-did",
            DID,
            "--topic",
            "/t",
            "--owner-private-key-file",
        ])
        .arg(&key);
    let err = run_fails(create, 1);
    assert!(
        err.contains(&format!("dataset create: market {server}")),
        "{err}"
    );
    // keys.json of another machine: the file and the field named.
    let other = tempfile::tempdir().unwrap();
    let mut gen = sealstream();
    gen.args(["keys", "generate", "--output-dir"])
        .arg(other.path().join("k"));
    run_ok(gen, "keys generate");
    let mut sign = sealstream();
    sign.args(["market", "machine", "sign", "--machine-key-file"])
        .arg(&key)
        .arg("--keys")
        .arg(other.path().join("k/keys.json"))
        .args(["--owner", DID]);
    let err = run_fails(sign, 1);
    assert!(err.contains("keys.json: machineDid:"), "{err}");
}
