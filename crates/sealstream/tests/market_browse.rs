//! The market's browsing, selling and settings commands as processes
//! (issue 16), with no HTTP written by hand on either side: an owner sees
//! its machine's topics, makes a dataset of the whole chain, lists it from
//! the shipped examples (docs/examples/listing.json, listing-evm.json)
//! unchanged, lists and edits its listings; anyone searches the catalog,
//! shows a listing, gets a sample with its proof checked and decrypts it
//! (and a sample changed on the server fails, exit 2), and fetches the
//! receipt key; `login` prints a token that works, an admin grants and
//! revokes a role, the owner sets and removes an operator key, a buyer
//! revokes a link. `--server` comes from `SEALSTREAM_SERVER` when not given.

mod common;

use std::path::Path;
use std::process::Command;

use common::market::{text, Market};
use common::*;
use sealstream_core::identity::Did;
use sealstream_core::json::{self, Value};
use sealstream_core::keys::{MachineSigningKey, RecipientSecretKey};

const CHUNK: usize = 40_000;
const TOPIC: &str = "/arm/torque";

/// `sealstream market ARGS…` with `SEALSTREAM_SERVER` naming `server` (no
/// `--server` flag).
fn market(server: &str, args: &[&str]) -> Command {
    let mut c = sealstream();
    c.arg("market").args(args).env("SEALSTREAM_SERVER", server);
    c
}

/// [`market`] signing in with `key`.
fn signed(server: &str, key: &Path, args: &[&str]) -> Command {
    let mut c = market(server, args);
    c.arg("--key-file").arg(key);
    c
}

fn write_key(path: &Path, key: &MachineSigningKey) -> String {
    std::fs::write(path, key.to_hex_secret().as_str()).unwrap();
    Did::of_key(key).to_string()
}

/// A machine's keys in `t/machine`, registered to the owner signing in
/// with `owner_sk`, and its chain of `chunks` chunks of `input` uploaded as
/// [`TOPIC`]: the machine's DID.
fn machine_with_chain(
    server: &str,
    t: &Path,
    owner_sk: &Path,
    owner_did: &str,
    input: &[u8],
) -> String {
    let mut gen = sealstream();
    gen.args(["keys", "generate", "--output-dir"])
        .arg(t.join("machine"));
    run_ok(gen, "keys generate");
    let keys = json::parse(&std::fs::read(t.join("machine/keys.json")).unwrap()).unwrap();
    let machine_did = text(&keys, "machineDid");
    let mut register = signed(server, owner_sk, &["machine", "register"]);
    register
        .arg("--machine-key-file")
        .arg(t.join("machine/machine.secp256k1.sk"))
        .arg("--keys")
        .arg(t.join("machine/keys.json"));
    let out = run_ok(register, "machine register");
    assert!(stderr(&out).contains(owner_did), "{}", stderr(&out));
    publish_and_upload(server, &t.join("machine"), t, input, CHUNK, TOPIC);
    machine_did
}

/// Creates a listing from `file` of docs/examples, unchanged, for
/// `dataset_id`, with its samples disclosed, and publishes it: its id.
fn list_example(server: &str, t: &Path, owner_sk: &Path, file: &str, dataset_id: &str) -> String {
    let mut create = signed(
        server,
        owner_sk,
        &[
            "listing",
            "create",
            "--publish",
            "--json",
            "--dataset-id",
            dataset_id,
        ],
    );
    create
        .arg("--listing")
        .arg(repo_root().join("docs/examples").join(file))
        .arg("--owner-private-key-file")
        .arg(t.join("machine/owner.x25519.sk"));
    let listed = json_of(&run_ok(create, file));
    assert_eq!(text(&listed, "state"), "published", "{listed:?}");
    text(&listed, "id")
}

/// The listing ids of `market search ARGS… --json`.
fn search(server: &str, args: &[&str]) -> Vec<String> {
    let mut c = market(server, &["search", "--json"]);
    c.args(args);
    let page = json_of(&run_ok(c, "search"));
    page.get("items")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .map(|i| text(i, "id"))
        .collect()
}

#[test]
fn an_owner_sells_and_anyone_browses_with_the_cli_only() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let admin_key = MachineSigningKey::generate();
    let admin_sk = t.join("admin.sk");
    let admin_did = write_key(&admin_sk, &admin_key);
    // The examples' EVM rail is on peaq (3338): the server must verify it
    // (through an endpoint nothing answers on; no order is paid here).
    let market_server = Market::start_with(
        &t.join("market"),
        &[
            "--evm-rpc",
            "3338=http://127.0.0.1:0",
            "--admin",
            &admin_did,
        ],
    );
    let server = market_server.base.as_str();
    let owner_sk = t.join("owner.sk");
    let owner_did = write_key(&owner_sk, &MachineSigningKey::generate());
    let buyer_sk = t.join("buyer.sk");
    let buyer_did = write_key(&buyer_sk, &MachineSigningKey::generate());
    let input: Vec<u8> = (0..3 * CHUNK).map(|i| (i * 11 % 253) as u8).collect();
    let machine_did = machine_with_chain(server, t, &owner_sk, &owner_did, &input);

    // The machine's topics, with their chunk counts.
    let topics = json_of(&run_ok(
        signed(
            server,
            &owner_sk,
            &["topics", "--json", "--machine-did", &machine_did],
        ),
        "topics --json",
    ));
    let listed = topics.get("topics").and_then(Value::as_array).unwrap();
    assert_eq!(listed.len(), 1, "{topics:?}");
    assert_eq!(text(&listed[0], "topic"), TOPIC);
    assert_eq!(listed[0].get("chunkCount").and_then(Value::as_u64), Some(3));
    let table = run_ok(
        signed(
            server,
            &owner_sk,
            &["topics", "--machine-did", &machine_did],
        ),
        "topics",
    );
    let table = stdout(&table);
    assert!(table.starts_with("TOPIC"), "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{TOPIC}  3 ")),
        "{table}"
    );

    // A dataset without a range: the whole chain.
    let dataset = |topic: &str| {
        let mut c = signed(server, &owner_sk, &["dataset", "create", "--json"]);
        c.args(["--machine-did", &machine_did, "--topic", topic])
            .arg("--owner-private-key-file")
            .arg(t.join("machine/owner.x25519.sk"));
        c
    };
    let made = json_of(&run_ok(dataset(TOPIC), "dataset create (whole chain)"));
    assert_eq!(made.get("firstIndex").and_then(Value::as_u64), Some(0));
    assert_eq!(made.get("chunkCount").and_then(Value::as_u64), Some(3));
    assert_eq!(
        text(&made, "sourceHash"),
        sealstream_core::chunk::sha256_hex(&input)
    );
    let dataset_id = text(&made, "id");
    // A topic the server does not hold: exit 1, the topics it holds named.
    let err = run_fails(dataset("/no/such"), 1);
    assert!(
        err.contains(&format!(
            "holds no chunk of {machine_did} /no/such (its topics: {TOPIC})"
        )),
        "{err}"
    );

    // Both examples, as shipped.
    let invoice = list_example(server, t, &owner_sk, "listing.json", &dataset_id);
    let evm = list_example(server, t, &owner_sk, "listing-evm.json", &dataset_id);

    // The catalog, anonymously, filtered on the server and here.
    let mut both = search(server, &[]);
    both.sort();
    let mut expected = vec![invoice.clone(), evm.clone()];
    expected.sort();
    assert_eq!(both, expected);
    assert_eq!(search(server, &["torque"]), vec![invoice.clone()]);
    assert_eq!(search(server, &["--rail", "evm"]), vec![evm.clone()]);
    assert_eq!(
        search(server, &["--tag", "ROBOTICS", "--kind", "dataset"]),
        vec![invoice.clone()]
    );
    assert!(search(server, &["--tag", "robotics", "--rail", "evm"]).is_empty());
    assert_eq!(search(server, &["--domain", "mobility"]), vec![evm.clone()]);
    assert_eq!(
        search(server, &["--max-price", "1250"]),
        vec![invoice.clone()]
    );
    assert_eq!(search(server, &["--limit", "1"]).len(), 1);
    let out = run_ok(market(server, &["search", "welding"]), "search (table)");
    let table = stdout(&out);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&invoice) && table.contains("12.5 EUR") && table.contains("invoice EUR"),
        "{table}"
    );
    assert!(stderr(&out).contains("1 listing found"), "{}", stderr(&out));

    // A listing's page, anonymously.
    let out = run_ok(market(server, &["listing", "show", &evm]), "listing show");
    let page = stdout(&out);
    assert!(page.contains("Delivery robot GPS fixes, Lisbon"), "{page}");
    assert!(
        page.contains("2.5 PEAQ") && page.contains("evm chain 3338"),
        "{page}"
    );
    assert!(page.contains(&format!("provider: {owner_did}")), "{page}");
    let shown = json_of(&run_ok(
        market(server, &["listing", "show", &invoice, "--json"]),
        "listing show --json",
    ));
    assert_eq!(text(&shown, "ownerDid"), owner_did);
    assert_eq!(text(&shown, "rail.kind"), "invoice");

    // The owner's listings, and an edit.
    let mine = json_of(&run_ok(
        signed(server, &owner_sk, &["listing", "list", "--json"]),
        "listing list",
    ));
    let mine = mine.get("listings").and_then(Value::as_array).unwrap();
    assert_eq!(mine.len(), 2);
    std::fs::write(
        t.join("patch.json"),
        r#"{"price": "900", "tags": ["robotics", "welding"], "domain": null}"#,
    )
    .unwrap();
    let mut edit = signed(server, &owner_sk, &["listing", "edit", &invoice, "--json"]);
    edit.arg("--listing").arg(t.join("patch.json"));
    let edited = json_of(&run_ok(edit, "listing edit"));
    assert_eq!(text(&edited, "price"), "900");
    assert!(
        edited.get("domain").is_some_and(|d| d.is_null()),
        "{edited:?}"
    );
    assert_eq!(search(server, &["--tag", "welding"]), vec![invoice.clone()]);
    // A patch naming a field that does not exist: the file and field named.
    std::fs::write(t.join("bad-patch.json"), r#"{"colour": "red"}"#).unwrap();
    let mut edit = signed(server, &owner_sk, &["listing", "edit", &invoice]);
    edit.arg("--listing").arg(t.join("bad-patch.json"));
    let err = run_fails(edit, 1);
    assert!(err.contains("bad-patch.json: "), "{err}");

    // A sample, checked against the signed root and decrypted, by anyone.
    let mut get = market(
        server,
        &["sample", "get", &invoice, "--verify", "--decrypt", "--json"],
    );
    get.arg("--output-dir").arg(t.join("sample"));
    let got = json_of(&run_ok(get, "sample get"));
    assert_eq!(got.get("verified").and_then(Value::as_bool), Some(true));
    assert_eq!(got.get("index").and_then(Value::as_u64), Some(0));
    assert_eq!(text(&got, "merkleRoot"), text(&made, "merkleRoot"));
    assert_eq!(
        std::fs::read(t.join("sample/chunk-0.plaintext")).unwrap(),
        input[..CHUNK]
    );
    for name in [
        "dataset.json",
        "chunk-0.json",
        "chunk-0.bin",
        "proof-0.json",
    ] {
        assert!(t.join("sample").join(name).is_file(), "{name}");
    }
    // The files check offline as well (the owner signed the dataset).
    let mut offline = sealstream();
    offline
        .args(["dataset", "verify-chunk", "--dataset-signer", &owner_did])
        .arg("--dataset")
        .arg(t.join("sample/dataset.json"))
        .arg("--proof")
        .arg(t.join("sample/proof-0.json"))
        .arg("--envelope")
        .arg(t.join("sample/chunk-0.json"))
        .arg("--data")
        .arg(t.join("sample/chunk-0.bin"));
    run_ok(offline, "dataset verify-chunk of the sample's files");
    // Without --output-dir the plaintext goes to stdout.
    let out = run_ok(
        market(
            server,
            &[
                "sample",
                "get",
                &evm,
                "--index",
                "0",
                "--verify",
                "--decrypt",
            ],
        ),
        "sample get (stdout)",
    );
    assert!(out.stdout == input[..CHUNK]);
    assert!(
        stderr(&out).contains(&format!("signed by {owner_did}")),
        "{}",
        stderr(&out)
    );
    // A chunk that is not a sample: the server's refusal, exit 2.
    run_fails(
        market(
            server,
            &["sample", "get", &invoice, "--index", "1", "--verify"],
        ),
        2,
    );
    // The ciphertext changed on the server: it does not verify, exit 2,
    // and nothing is written.
    let stored = t.join("chain/chunk-0.bin");
    let original = std::fs::read(&stored).unwrap();
    let objects: Vec<_> = sealstream_testkit::files_under(&t.join("market"))
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b == original))
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    let mut changed = original.clone();
    changed[100] ^= 1;
    std::fs::write(&objects[0], &changed).unwrap();
    let mut get = market(
        server,
        &["sample", "get", &invoice, "--verify", "--decrypt"],
    );
    get.arg("--output-dir").arg(t.join("tampered"));
    let err = run_fails(get, 2);
    assert!(
        err.contains(&format!(
            "listing {invoice}: chunk 0 does not verify: chunk: "
        )),
        "{err}"
    );
    assert!(!t.join("tampered").exists());
    std::fs::write(&objects[0], &original).unwrap();

    // The receipt key, anonymously.
    let out = run_ok(market(server, &["receipt", "key"]), "receipt key");
    let (_, key) = market_server.call("GET", "/v1/receipts/key", None, None);
    assert_eq!(stdout(&out).trim(), text(&key, "publicKeyHex"));

    // A session token for scripts.
    let out = run_ok(signed(server, &owner_sk, &["login"]), "login");
    let token = stdout(&out).trim().to_string();
    let (status, me) = market_server.call("GET", "/v1/me", Some(&token), None);
    assert_eq!(status, 200, "{me:?}");
    assert_eq!(text(&me, "did"), owner_did);
    assert!(stderr(&out).contains("roles: owner"), "{}", stderr(&out));

    // An admin grants and revokes a role; others may not.
    // The buyer's roles after `admin role ACTION BUYER auditor` by the admin.
    let roles_after = |action: &str| {
        let out = run_ok(
            signed(
                server,
                &admin_sk,
                &["admin", "role", action, &buyer_did, "auditor", "--json"],
            ),
            action,
        );
        json_of(&out)
            .get("roles")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(roles_after("grant").contains(&"auditor".to_string()));
    assert!(!roles_after("revoke").contains(&"auditor".to_string()));
    let err = run_fails(
        signed(
            server,
            &owner_sk,
            &["admin", "role", "grant", &buyer_did, "admin"],
        ),
        2,
    );
    assert!(err.contains("admin role grant: market "), "{err}");

    // The operator key: the machine's, then removed; another key is refused.
    let operator = |args: &[&str], key: &str| {
        let mut c = signed(server, &owner_sk, args);
        c.args(["--machine-did", &machine_did]);
        if !key.is_empty() {
            c.arg("--operator-private-key-file")
                .arg(t.join("machine").join(key));
        }
        c
    };
    run_fails(
        operator(&["operator-key", "set", "--json"], "owner.x25519.sk"),
        2,
    );
    let set = json_of(&run_ok(
        operator(&["operator-key", "set", "--json"], "operator.x25519.sk"),
        "operator-key set",
    ));
    assert_eq!(text(&set, "machineDid"), machine_did);
    run_ok(
        operator(&["operator-key", "remove"], ""),
        "operator-key remove",
    );

    // A buyer's order, a release link, and its revocation.
    write_key_x25519(&t.join("buyer.x25519.sk"));
    let mut order = signed(
        server,
        &buyer_sk,
        &["order", "create", "--json", "--listing", &invoice],
    );
    order
        .arg("--buyer-private-key-file")
        .arg(t.join("buyer.x25519.sk"));
    let order_id = text(&json_of(&run_ok(order, "order create")), "id");
    let link = json_of(&run_ok(
        signed(server, &buyer_sk, &["order", "link", &order_id, "--json"]),
        "order link",
    ));
    let link_id = text(&link, "id");
    let out = run_ok(
        signed(server, &buyer_sk, &["link", "revoke", &order_id, &link_id]),
        "link revoke",
    );
    assert!(stderr(&out).contains(&format!("Link {link_id} of order {order_id} revoked")));
    // Only its maker can revoke it.
    run_fails(
        signed(server, &owner_sk, &["link", "revoke", &order_id, &link_id]),
        2,
    );
}

fn write_key_x25519(path: &Path) {
    std::fs::write(
        path,
        RecipientSecretKey::generate().to_hex_secret().as_str(),
    )
    .unwrap();
}

#[test]
fn server_defaults_help_and_usage() {
    // --server from the environment (nobody listening there): exit 1, the
    // server named; without it, the default.
    let server = format!("http://127.0.0.1:{}", free_port());
    let err = run_fails(market(&server, &["search"]), 1);
    assert!(err.contains(&format!("search: market {server}")), "{err}");
    let err = run_fails(
        market(&server, &["receipt", "key", "--server", "ftp://x"]),
        1,
    );
    assert!(
        err.contains("--server: expected an http:// or https:// URL"),
        "{err}"
    );
    let help = |args: &[&str]| {
        let mut c = sealstream();
        c.arg("market")
            .args(args)
            .arg("--help")
            .env_remove("SEALSTREAM_SERVER");
        stdout(&run_ok(c, "--help"))
    };
    for command in [
        &["search"][..],
        &["login"],
        &["topics"],
        &["listing", "show"],
        &["sample", "get"],
        &["receipt", "key"],
        &["link", "revoke"],
        &["operator-key", "set"],
        &["admin", "role", "grant"],
        &["order", "show"],
        &["upload"],
    ] {
        // Help wraps long lines: compare with the whitespace folded.
        let text = help(command)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains("[env: SEALSTREAM_SERVER=]")
                && text.contains("[default: http://127.0.0.1:8080]"),
            "{command:?}: {text}"
        );
    }
    let publish = help(&["listing", "publish"]);
    assert!(
        publish.contains("ls_…") && !publish.contains("lst_"),
        "{publish}"
    );
    assert!(
        publish.contains("A withdrawn listing stays withdrawn"),
        "{publish}"
    );
    assert!(help(&["listing", "create"]).contains("docs/examples/listing.json"));
    // A role that does not exist, a missing listing id: usage, exit 64.
    let key = tempfile::NamedTempFile::new().unwrap();
    let mut c = sealstream();
    c.args([
        "market",
        "admin",
        "role",
        "grant",
        DID,
        "wizard",
        "--key-file",
    ])
    .arg(key.path());
    assert_eq!(c.output().unwrap().status.code(), Some(64));
    let mut c = sealstream();
    c.args(["market", "sample", "get", "--verify"]);
    assert_eq!(c.output().unwrap().status.code(), Some(64));
}
