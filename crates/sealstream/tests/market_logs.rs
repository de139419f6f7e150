//! Issue 16, item 6: `sealstream market serve` logs one line per request
//! (method, route template, status, latency, principal by pseudonym) and
//! the changes that matter, as text or JSON lines, with no session token,
//! key or DID in it. The server runs as a process; its log is read once it
//! has stopped, so nothing depends on timing.

mod common;

use std::collections::BTreeMap;

use common::market::{register_machine, Market};
use common::{DID, MACHINE_PK};
use sealstream_core::identity::Did;
use sealstream_core::keys::MachineSigningKey;
use sealstream_market::logs::Pseudonym;

/// One log line's level, target, message and fields, whatever the format.
#[derive(Debug)]
struct Line {
    level: String,
    target: String,
    message: String,
    fields: BTreeMap<String, String>,
}

impl Line {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// `2026-…Z  INFO target: message key=value key="value"…` (messages with
/// spaces come before the fields; values here have none).
fn parse_text(line: &str) -> Line {
    let mut words = line.split_whitespace();
    let _timestamp = words.next().unwrap();
    let level = words.next().unwrap().to_string();
    let target = words.next().unwrap().trim_end_matches(':').to_string();
    let mut message = Vec::new();
    let mut fields = BTreeMap::new();
    let mut last: Option<String> = None;
    for word in words {
        let field = word.split_once('=').filter(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        match (field, &last) {
            (Some((k, v)), _) => {
                fields.insert(k.to_string(), v.trim_matches('"').to_string());
                last = Some(k.to_string());
            }
            (None, None) => message.push(word),
            // A value with a space (a path, an error's text).
            (None, Some(k)) => {
                let value = fields.get_mut(k).unwrap();
                value.push(' ');
                value.push_str(word.trim_matches('"'));
            }
        }
    }
    Line {
        level,
        target,
        message: message.join(" "),
        fields,
    }
}

/// One JSON object: timestamp, level, target, message and the fields
/// beside them.
fn parse_json(line: &str) -> Line {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line:?}"));
    let obj = v.as_object().unwrap();
    let text = |name: &str| {
        obj.get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .to_string()
    };
    assert!(text("timestamp").ends_with('Z'), "{line}");
    let fields = obj
        .iter()
        .filter(|(k, _)| !["timestamp", "level", "target", "message"].contains(&k.as_str()))
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), value)
        })
        .collect();
    Line {
        level: text("level"),
        target: text("target"),
        message: text("message"),
        fields,
    }
}

/// What the run used that must not reach the log.
struct Secrets {
    token: String,
    key_hex: String,
    owner_did: String,
}

/// Runs a server with `--log-format format`: a sign-in, a registration and
/// refused requests; its log once stopped, and what must not be in it.
fn run(format: &str) -> (String, Secrets) {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("market.log");
    let mut market = Market::start_logged(
        &tmp.path().join("market"),
        &["--log-format", format, "--replica-id", "logs-1"],
        &log,
    );
    let key = MachineSigningKey::generate();
    let owner_did = Did::of_key(&key).to_string();
    let token = market.sign_in(&key);
    register_machine(&market, &token, &owner_did);
    // Refused: the same machine again (409, the message names it).
    let body = sealstream_testkit::registration::body(
        &owner_did,
        &sealstream_testkit::fixture::machine_signing_key(),
        &sealstream_testkit::fixture::chain_signing_key(),
        &[(
            "machine-1",
            "machine",
            sealstream_core::keys::RecipientPublicKey::from_hex(MACHINE_PK, "pk").unwrap(),
        )],
    );
    let (status, answer) = market.call(
        "POST",
        "/v1/machines",
        Some(&token),
        Some(&body.to_string()),
    );
    assert_eq!(status, 409, "{answer:?}");
    // The machine by its DID, in the path.
    let (status, _) = market.call("GET", &format!("/v1/machines/{DID}"), Some(&token), None);
    assert_eq!(status, 200);
    // A token the server never issued.
    let (status, _) = market.call(
        "GET",
        "/v1/orders/ord_00112233aabbccdd",
        Some(&"ee".repeat(32)),
        None,
    );
    assert_eq!(status, 401);
    // No route: a token-like segment in the path.
    let (status, _) = market.call(
        "GET",
        &format!("/v1/nowhere/{}", "ff".repeat(32)),
        None,
        None,
    );
    assert_eq!(status, 404);
    assert!(market.stop().success());
    let secrets = Secrets {
        token,
        key_hex: key.to_hex_secret().trim_start_matches("0x").to_string(),
        owner_did,
    };
    (std::fs::read_to_string(&log).unwrap(), secrets)
}

fn check(format: &str) {
    let (text, secrets) = run(format);
    let parse = if format == "json" {
        parse_json
    } else {
        parse_text
    };
    let lines: Vec<Line> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse)
        .collect();
    let owner = Pseudonym::of(&secrets.owner_did).to_string();
    let machine = Pseudonym::of(DID).to_string();
    // Every line names the replica (--replica-id).
    for l in &lines {
        assert_eq!(l.field("replica"), Some("logs-1"), "{l:?}");
    }
    assert!(lines.iter().any(|l| l.message == "market server started"));

    let requests: Vec<&Line> = lines
        .iter()
        .filter(|l| l.target == "sealstream_market::request")
        .collect();
    for r in &requests {
        assert_eq!(r.level, "INFO", "{r:?}");
        assert_eq!(r.message, "request", "{r:?}");
        let latency: f64 = r.field("latency_ms").unwrap().parse().unwrap();
        assert!(latency >= 0.0, "{r:?}");
        let status: u16 = r.field("status").unwrap().parse().unwrap();
        assert!((200..600).contains(&status), "{r:?}");
        assert!(r.field("principal").is_some(), "{r:?}");
        assert_ne!(
            r.field("route"),
            Some(sealstream_api::routes::HEALTHZ),
            "probes are at debug"
        );
    }
    let find = |method: &str, route: &str, status: &str| {
        requests
            .iter()
            .find(|r| {
                r.field("method") == Some(method)
                    && r.field("route") == Some(route)
                    && r.field("status") == Some(status)
            })
            .unwrap_or_else(|| panic!("no {method} {route} {status} line in\n{text}"))
    };
    assert_eq!(
        find("POST", "/v1/auth/nonce", "200").field("principal"),
        Some("anonymous")
    );
    assert_eq!(
        find("POST", "/v1/auth/verify", "200").field("principal"),
        Some("anonymous")
    );
    let registered = find("POST", "/v1/machines", "201");
    assert_eq!(registered.field("principal"), Some(owner.as_str()));
    assert!(registered.field("bytes").unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(
        find("POST", "/v1/machines", "409").field("principal"),
        Some(owner.as_str())
    );
    assert_eq!(
        find("GET", "/v1/machines/{did}", "200").field("principal"),
        Some(owner.as_str())
    );
    assert_eq!(
        find("GET", "/v1/orders/{id}", "401").field("principal"),
        Some("invalid-token")
    );
    let unmatched = find("GET", "unmatched", "404");
    assert_eq!(unmatched.field("path"), Some("/v1/nowhere/…"));
    assert_eq!(unmatched.field("principal"), Some("anonymous"));

    let event = |message: &str| {
        lines
            .iter()
            .find(|l| l.message == message)
            .unwrap_or_else(|| panic!("no {message:?} line in\n{text}"))
    };
    assert_eq!(event("signed in").field("principal"), Some(owner.as_str()));
    let machine_line = event("machine registered");
    assert_eq!(machine_line.level, "INFO");
    assert_eq!(machine_line.field("machine"), Some(machine.as_str()));
    assert_eq!(machine_line.field("owner"), Some(owner.as_str()));
    assert_eq!(
        event("role granted").field("principal"),
        Some(owner.as_str())
    );
    let refusal = lines
        .iter()
        .find(|l| l.message.contains("already registered"))
        .unwrap_or_else(|| panic!("no refusal line in\n{text}"));
    assert_eq!(refusal.level, "WARN");
    assert!(refusal.message.contains(&machine), "{refusal:?}");

    // Nothing that identifies or grants: the session token, the key, the
    // DIDs and addresses in any case, the raw ids and tokens of the paths.
    let lower = text.to_ascii_lowercase();
    let address = |did: &str| did.trim_start_matches("did:peaq:").to_ascii_lowercase();
    for (what, secret) in [
        ("session token", secrets.token.to_ascii_lowercase()),
        ("owner key", secrets.key_hex.to_ascii_lowercase()),
        ("owner address", address(&secrets.owner_did)),
        ("machine address", address(DID)),
        ("order id in a path", "ord_00112233aabbccdd".into()),
        ("refused token", "ee".repeat(32)),
        ("unmatched token", "ff".repeat(32)),
    ] {
        assert!(
            !lower.contains(&secret),
            "the {what} is in the log:\n{text}"
        );
    }
}

#[test]
fn text_log_lines_name_routes_and_pseudonyms_only() {
    check("text");
}

#[test]
fn json_log_lines_name_routes_and_pseudonyms_only() {
    check("json");
}
