//! API fuzzing (issue 14): `schemathesis` (PyPI, pinned in
//! `scripts/setup-test-peers`) reads `GET /openapi.json` from a running
//! server, on SQLite and on PostgreSQL, and sends every documented operation
//! generated requests, valid and invalid, with a fixed seed and a bounded
//! number of examples per operation. A run fails on any 5xx, on a request
//! not answered within [`REQUEST_TIMEOUT_SECS`] (a hang), and on any answer
//! whose status code, content type or body the document does not describe.
//!
//! The server holds the world of [`common::world`] (two owners with a
//! machine and an uploaded chain each, datasets, published and draft
//! listings with samples, a buyer's orders in every state, links, an
//! operator key). Each operation is sent as the caller who reaches the most
//! of its logic: the admin by default (operations, audit, roles, sign-in,
//! the catalog, payment proofs), owner A for machines, datasets, listings
//! and the seller's side of orders, the buyer for ordering, cancelling,
//! release packages and release links, and a throwaway session for
//! `POST /v1/auth/logout` (which ends the session it is sent with). Path,
//! query and body parameters that name things (listing, dataset, order and
//! machine ids, topics, chunk indexes, link tokens, release file names)
//! take the world's real values half of the time, from schemathesis
//! dictionaries, so the generated requests reach past the 404s.
//!
//! The write and proof rate limits are lifted for the run (one client
//! sends thousands of writes in a few minutes); the 429s they answer
//! otherwise are documented on every write (`tests/openapi.rs`).
//!
//! Run alone: `cargo test -p sealstream-market --test api_fuzz -- --nocapture`
//! (prints schemathesis' summary; `SEALSTREAM_FUZZ_EXAMPLES=N` changes the
//! examples per operation for a longer local run, and
//! `SEALSTREAM_FUZZ_ARGS` adds arguments, such as `--report har
//! --report-dir /tmp/fuzz` to keep every request and answer).

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::world::{new_did, world_with, World, CHUNKS, TOPIC};
use common::Db;
use sealstream_core::keys::RecipientSecretKey;
use sealstream_market::auth::Role;
use sealstream_market::limits::Rate;
use sealstream_testkit::on_both_databases;
use serde_json::Value;

/// The schemathesis release `scripts/setup-test-peers` installs.
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// The seed of every run: the same requests each time.
const SEED: u64 = 20_141_214;
/// Generated requests per operation and phase (see the module docs for
/// the time this takes).
const EXAMPLES: u32 = 30;
/// A request not answered within this long fails the run (a hang). The
/// server's own request timeout (30 s, answered 408) is longer, so a hang
/// is caught here and not hidden behind a documented 408.
const REQUEST_TIMEOUT_SECS: u32 = 15;
/// The whole run is killed, and the test failed, past this.
const WALL_CLOCK: Duration = Duration::from_secs(10 * 60);
/// The checks every answer must pass.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance";

/// `schemathesis` beside `$SEALSTREAM_REF_PYTHON`, else in `<repo>/.venv`;
/// fails (never skips) when it is missing or another version.
fn schemathesis_binary() -> PathBuf {
    let bin = sealstream_testkit::reference::venv_program("schemathesis");
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains(SCHEMATHESIS_VERSION),
        "{} is {:?}, expected {SCHEMATHESIS_VERSION}: run scripts/setup-test-peers",
        bin.display(),
        version.trim()
    );
    bin
}

// ------------------------------------------------------------ the config

/// A TOML basic string (JSON's escapes are TOML's).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn toml_value(v: &Value) -> String {
    match v {
        Value::String(s) => toml_str(s),
        Value::Number(n) => n.to_string(),
        other => panic!("no TOML for {other}"),
    }
}

/// Who sends an operation.
#[derive(Clone, Copy, Debug)]
enum Caller {
    Admin,
    Owner,
    Buyer,
    /// A session of its own, ended by the operation.
    Throwaway,
}

/// The caller that reaches the most of `method path`'s logic.
fn caller_for(method: &str, path: &str) -> Caller {
    let buyer_side = matches!(
        (method, path),
        ("POST", "/v1/orders")
            | ("POST", "/v1/orders/{id}/cancel")
            | ("DELETE", "/v1/orders/{id}/links/{link}")
            | ("GET", "/v1/orders/{id}/release/manifest.json")
            | ("GET", "/v1/orders/{id}/release/{name}")
    );
    if path == "/v1/auth/logout" {
        Caller::Throwaway
    } else if buyer_side {
        Caller::Buyer
    } else if path.starts_with("/v1/machines")
        || path.starts_with("/v1/datasets")
        || path.starts_with("/v1/listings")
        || (path.starts_with("/v1/orders") && !path.ends_with("/payment-proof"))
    {
        Caller::Owner
    } else {
        Caller::Admin
    }
}

/// The world's names of things, as schemathesis dictionaries.
fn dictionaries(w: &World) -> BTreeMap<&'static str, Vec<Value>> {
    let (a, b, o) = (&w.a, &w.b, &w.orders);
    let s = |v: &str| Value::String(v.to_string());
    let token = |link: &str| s(link.trim_start_matches("?link="));
    let mut d = BTreeMap::new();
    d.insert("waits", vec![Value::from(1u64), Value::from(2u64)]);
    d.insert(
        "listings",
        [
            &a.listing_published,
            &a.listing_published_spare,
            &a.listing_draft,
            &a.listing_draft_spare,
            &b.listing_published,
            &o.listing,
        ]
        .map(|v| s(v))
        .to_vec(),
    );
    d.insert(
        "datasets",
        [&a.ds_public, &a.ds_private, &a.ds_draft, &b.ds_public]
            .map(|v| s(v))
            .to_vec(),
    );
    d.insert(
        "machines",
        [&a.machine_did, &w.operator_machine, &b.machine_did]
            .map(|v| s(v))
            .to_vec(),
    );
    d.insert("topics", vec![s(TOPIC)]);
    d.insert(
        "indexes",
        (0..=CHUNKS as u64).map(Value::from).collect::<Vec<_>>(),
    );
    d.insert(
        "orders",
        [&o.awaiting, &o.to_cancel, &o.paid, &o.granted]
            .map(|v| s(v))
            .to_vec(),
    );
    d.insert(
        "link-tokens",
        vec![token(&o.confirmation_link), token(&o.release_link)],
    );
    d.insert("link-ids", vec![s(&o.spare_link)]);
    let mut names = vec![s("dataset.json")];
    for i in 0..3 {
        names.push(s(&format!("chunk-{i}.json")));
        names.push(s(&format!("chunk-{i}.bin")));
    }
    d.insert("release-files", names);
    d.insert(
        "recipient-keys",
        vec![s(&RecipientSecretKey::generate().public_key().to_hex())],
    );
    // Principals nobody else uses: granting and revoking their roles
    // leaves the world's callers as they are.
    d.insert("spare-principals", vec![s(&new_did()), s(&new_did())]);
    d.insert(
        "roles",
        ["admin", "auditor", "buyer", "owner"].map(s).to_vec(),
    );
    d
}

/// (parameter, dictionary) bindings of `method path`.
fn bindings(method: &str, path: &str) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let id = if path.starts_with("/v1/listings/") {
        Some("listings")
    } else if path.starts_with("/v1/datasets/") {
        Some("datasets")
    } else if path.starts_with("/v1/orders/") {
        Some("orders")
    } else {
        None
    };
    if let Some(dictionary) = id {
        out.push(("path.id", dictionary));
    }
    if path.starts_with("/v1/machines/") {
        out.push(("path.did", "machines"));
    }
    if path.starts_with("/v1/admin/principals/") {
        out.push(("path.did", "spare-principals"));
        out.push(("path.role", "roles"));
    }
    if path.contains("{topic}") {
        out.push(("path.topic", "topics"));
    }
    if path.contains("{index}") {
        out.push(("path.index", "indexes"));
    }
    if path.contains("{link}") {
        out.push(("path.link", "link-ids"));
    }
    if path.ends_with("/release/{name}") {
        out.push(("path.name", "release-files"));
    }
    if path.contains("/release/") || path.ends_with("/confirmation") {
        out.push(("query.link", "link-tokens"));
    }
    if path == "/v1/listings/{id}/samples/{index}" {
        out.push(("query.recipientPublicKey", "recipient-keys"));
    }
    if path.ends_with("/subscription-grants") {
        // A long poll waits up to `wait` seconds when nothing is pending:
        // kept under the run's request timeout (the route's own limits on
        // `wait` are tested in tests/subscriptions.rs).
        out.push(("query.wait", "waits"));
    }
    if path == "/v1/catalog" {
        out.push(("query.machine", "machines"));
        out.push(("query.topic", "topics"));
    }
    match (method, path) {
        ("POST", "/v1/orders") => {
            out.push(("body.listingId", "listings"));
            out.push(("body.buyerPublicKeyHex", "recipient-keys"));
        }
        ("POST", "/v1/datasets") => {
            out.push(("body.machineDid", "machines"));
            out.push(("body.topic", "topics"));
            out.push(("body.fromIndex", "indexes"));
            out.push(("body.toIndex", "indexes"));
        }
        ("POST", "/v1/orders/{id}/payment-proof") => out.push(("body.orderId", "orders")),
        _ => {}
    }
    out
}

/// `schemathesis.toml`: the dictionaries, and per operation its caller and
/// its bindings.
fn config(w: &World, throwaway: &str, doc: &Value) -> String {
    let mut toml = String::new();
    let bearer = |token: &str| toml_str(&format!("Bearer {token}"));
    toml.push_str(&format!(
        "headers = {{ Authorization = {} }}\n\n",
        bearer(&w.admin)
    ));
    for (name, values) in dictionaries(w) {
        let values: Vec<String> = values.iter().map(toml_value).collect();
        toml.push_str(&format!(
            "[dictionaries.{name}]\nvalues = [{}]\n\n",
            values.join(", ")
        ));
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            let method = method.to_ascii_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            let token = match caller_for(&method, path) {
                Caller::Admin => &w.admin,
                Caller::Owner => &w.a.owner_token,
                Caller::Buyer => &w.buyer,
                Caller::Throwaway => throwaway,
            };
            // One filter per entry: schemathesis ORs the filters of an
            // entry, and an operation's name is "METHOD /path".
            toml.push_str(&format!(
                "[[operations]]\ninclude-name = {}\n\
                 headers = {{ Authorization = {} }}\n",
                toml_str(&format!("{method} {path}")),
                bearer(token)
            ));
            let bound = bindings(&method, path);
            if !bound.is_empty() {
                let pairs: Vec<String> = bound
                    .iter()
                    .map(|(param, dictionary)| {
                        // Waits are always bound (a random one would
                        // outlast the request timeout); the world's names
                        // half of the time.
                        let probability = if *dictionary == "waits" { "1.0" } else { "0.5" };
                        format!(
                            "{} = {{ dictionary = {}, probability = {probability} }}",
                            toml_str(param),
                            toml_str(dictionary)
                        )
                    })
                    .collect();
                toml.push_str(&format!("parameters = {{ {} }}\n", pairs.join(", ")));
            }
            toml.push('\n');
        }
    }
    toml
}

// ------------------------------------------------------------------ run

/// The run's output and exit status, or a panic past [`WALL_CLOCK`].
fn run_guarded(mut command: Command, log: &Path) -> (std::process::ExitStatus, String) {
    let file = std::fs::File::create(log).expect("the report file");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("the report file"))
        .stderr(file)
        .spawn()
        .expect("schemathesis starts");
    let start = Instant::now();
    let read = || {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    };
    loop {
        if let Some(status) = child.try_wait().expect("schemathesis' status") {
            return (status, read());
        }
        if start.elapsed() > WALL_CLOCK {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis did not finish within {} s (a hang?); killed. Its output:\n{}",
                WALL_CLOCK.as_secs(),
                read()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The operations `/openapi.json` documents.
fn operations(doc: &Value) -> usize {
    doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| {
            item.as_object()
                .expect("a path item")
                .keys()
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .count()
        })
        .sum()
}

fn schemathesis_finds_nothing(db: Db) {
    let bin = schemathesis_binary();
    let w = world_with(db, |c| {
        // One client sends thousands of writes and proofs in minutes.
        c.write_burst = 1_000_000;
        c.anonymous_write_burst = 1_000_000;
        c.proof_rate_per_client = Rate::new(1_000_000, Duration::from_millis(1));
        c.proof_rate_per_order = Rate::new(1_000_000, Duration::from_millis(1));
    });
    let server = &w.server;
    let throwaway = server.session_for(&new_did(), &[Role::Buyer]);
    let (status, doc) = server.get("/openapi.json", None);
    assert_eq!(status, 200, "{doc}");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, config(&w, &throwaway, &doc)).expect("write the config");
    let examples = std::env::var("SEALSTREAM_FUZZ_EXAMPLES")
        .ok()
        .map(|n| {
            n.parse::<u32>()
                .expect("SEALSTREAM_FUZZ_EXAMPLES: a number")
        })
        .unwrap_or(EXAMPLES);

    let mut command = Command::new(&bin);
    command
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(format!("{}/openapi.json", server.base))
        .args(["--checks", CHECKS])
        .args(["--max-examples", &examples.to_string()])
        .args(["--seed", &SEED.to_string()])
        .args(["--workers", "1"])
        .args(["--request-timeout", &REQUEST_TIMEOUT_SECS.to_string()])
        .args(["--generation-database", "none"])
        .args(["--continue-on-failure"])
        .args(["--output-truncate", "false"])
        .arg("--no-color");
    if let Ok(extra) = std::env::var("SEALSTREAM_FUZZ_ARGS") {
        command.args(extra.split_whitespace());
    }
    let started = Instant::now();
    let (status, report) = run_guarded(command, &dir.path().join("report.txt"));
    let took = started.elapsed();
    let summary = report
        .find("===================================")
        .map_or(report.as_str(), |i| &report[i..]);
    println!(
        "schemathesis {SCHEMATHESIS_VERSION} on {db:?}, {examples} examples per operation, \
         seed {SEED}: {:.0} s\n{summary}",
        took.as_secs_f64()
    );
    assert!(
        status.success(),
        "schemathesis found problems on {db:?} ({status}); its report:\n{report}"
    );
    // Every documented operation was sent requests.
    let documented = operations(&doc);
    assert!(
        report.contains(&format!("Tested: {documented}")),
        "not every one of the {documented} operations was tested:\n{report}"
    );
    // The server still answers.
    let (status, body) = server.get("/healthz", None);
    assert_eq!(status, 200, "{body}");
}

on_both_databases!(schemathesis_finds_nothing);
