//! The market for the CLI tests: `sealstream market serve` as a child
//! process (from `sealstream-testkit`), an agent configuration delivering
//! to it, and the grant daemon's command.

use std::path::{Path, PathBuf};
use std::process::Command;

use sealstream_core::identity::Did;
use sealstream_core::json::Value;
use sealstream_core::keys::MachineSigningKey;
pub use sealstream_testkit::market_process::{json_string, register_machine, text, Market};

use super::anvil::BASE_CHAIN_ID;
use super::keyfile;

/// A new owner signed in to `market` with the fixture machine registered
/// to it: its key, DID and session token.
pub fn owner_with_machine(market: &Market) -> (MachineSigningKey, String, String) {
    let key = MachineSigningKey::generate();
    let did = Did::of_key(&key).to_string();
    let token = market.sign_in(&key);
    register_machine(market, &token, &did);
    (key, did, token)
}

/// `sealstream agent run --json` of [`write_market_agent`]'s map (with the
/// same arguments) in `dir` (made here), to its end; asserts it succeeded.
pub fn run_market_agent(
    market: &Market,
    dir: &Path,
    messages: usize,
    note: Option<&str>,
    also_directory: bool,
) {
    std::fs::create_dir_all(dir).unwrap();
    let config = write_market_agent(dir, &market.base, messages, note, also_directory);
    let out = super::sealstream()
        .args(["agent", "run", "--json", "--config"])
        .arg(&config)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "agent run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The datasets `token` sees on `market`.
pub fn datasets(market: &Market, token: &str) -> Vec<Value> {
    let (status, page) = market.call("GET", "/v1/datasets", Some(token), None);
    assert_eq!(status, 200, "{page:?}");
    page.get("datasets")
        .and_then(Value::as_array)
        .unwrap()
        .clone()
}

/// A release link of order `id` made by its buyer (session `buyer`).
pub fn release_link(market: &Market, buyer: &str, id: &str) -> Value {
    let (status, link) = market.call(
        "POST",
        &format!("/v1/orders/{id}/links"),
        Some(buyer),
        Some(r#"{"purpose":"release"}"#),
    );
    assert_eq!(status, 201, "{link:?}");
    link
}

/// `POST /v1/listings/{id}/publish` as `token`; asserts it succeeded.
pub fn publish_listing(market: &Market, token: &str, listing_id: &str) {
    let (status, body) = market.call(
        "POST",
        &format!("/v1/listings/{listing_id}/publish"),
        Some(token),
        Some("{}"),
    );
    assert_eq!(status, 200, "{body:?}");
}

/// Creates the listing `body` as `token` and publishes it: its id.
pub fn list_and_publish(market: &Market, token: &str, body: &str) -> String {
    let (status, created) = market.call("POST", "/v1/listings", Some(token), Some(body));
    assert_eq!(status, 201, "{created:?}");
    let listing_id = text(&created, "id");
    publish_listing(market, token, &listing_id);
    listing_id
}

/// Lists `dataset_id` as `token` at 0.25 ETH on the base chain's native
/// coin, paid to `pay_to`, and publishes it: its id.
pub fn list_for_eth(market: &Market, token: &str, dataset_id: &str, pay_to: &str) -> String {
    let listing = format!(
        r#"{{"datasetId":"{dataset_id}","title":"Soil moisture","description":"Soil moisture readings.",
            "tags":["soil"],"domain":"robotics","license":{{"spdx":"CC-BY-4.0"}},
            "price":"250000000000000000",
            "rail":{{"kind":"evm","chainId":{BASE_CHAIN_ID},"token":"native","decimals":18,
                     "payTo":"{pay_to}","symbol":"ETH"}},
            "delivery":["api"]}}"#
    );
    list_and_publish(market, token, &listing)
}

/// A Data Event Map in `dir` for an agent reading `messages` JSON lines of
/// `/field/soil`, 40 messages to a chunk, hourly dataset windows, delivering
/// to the market at `server` (and to the directory `out` with
/// `also_directory`). Each message carries `note` when given (a canary the
/// server must never see in the clear). Returns the map's path.
pub fn write_market_agent(
    dir: &Path,
    server: &str,
    messages: usize,
    note: Option<&str>,
    also_directory: bool,
) -> PathBuf {
    let directory = if also_directory {
        "  - {type: directory, path: out}\n"
    } else {
        ""
    };
    let rest = format!(
        r#"sources:
  lines: {{type: jsonl, path: input.jsonl}}
topics:
  - name: /field/soil
    source: lines
destinations:
  - {{type: market, url: "{server}"}}
{directory}"#
    );
    let note = note
        .map(|n| format!(",\"note\":\"{n}\""))
        .unwrap_or_default();
    let mut input = String::new();
    for i in 0..messages {
        input.push_str(&format!(
            "{{\"topic\":\"/field/soil\",\"capturedAt\":\"2026-11-21T10:00:{:02}.{i:06}Z\",\"fields\":{{\"i\":{i},\"moisture\":0.{i}{note}}}}}\n",
            i % 60
        ));
    }
    std::fs::write(dir.join("input.jsonl"), input).unwrap();
    super::agent::write_map(dir, ("1MiB", 40), "1h", "", &rest)
}

/// `sealstream market grant-daemon --once --json` against `server`, signed
/// in with `owner_key_file`, opening chunk keys with the fixture owner key.
pub fn grant_daemon_once(server: &str, owner_key_file: &Path) -> Command {
    let mut c = super::sealstream();
    c.args([
        "market",
        "grant-daemon",
        "--server",
        server,
        "--once",
        "--json",
    ])
    .arg("--key-file")
    .arg(owner_key_file)
    .arg("--owner-private-key-file")
    .arg(keyfile("owner.x25519.sk"));
    c
}

/// An EVM dev node (anvil, Base's chain id) and a market in `dir` checking
/// payments on it, a payment taking effect after `confirmations`, with
/// `extra` flags.
pub fn market_on_anvil(
    dir: &Path,
    confirmations: u32,
    extra: &[&str],
) -> (super::anvil::Anvil, Market) {
    let anvil = super::anvil::Anvil::start();
    let rpc = format!("{}={}", super::anvil::BASE_CHAIN_ID, anvil.url);
    let confirmations = confirmations.to_string();
    let mut flags = vec!["--evm-rpc", rpc.as_str(), "--confirmations", &confirmations];
    flags.extend_from_slice(extra);
    let market = Market::start_with(dir, &flags);
    (anvil, market)
}
