//! Issue 14, item 14: `sealstream market serve` keeps its data private.
//! After a real agent upload, every directory under the data directory is
//! 0700 and every file 0600 (the database and its WAL, ciphertext objects,
//! keys, the signed audit head), a data directory created open by an
//! earlier version is narrowed, and the operator key-encryption key kept
//! beside the database is warned about at start.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::market::{owner_with_machine, run_market_agent, Market};
use sealstream_core::identity::Did;
use sealstream_core::keys::MachineSigningKey;

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// (path, mode) of everything under `dir` that group or others may use.
fn open_to_others(dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if mode(&d) != 0o700 {
            out.push((d.display().to_string(), mode(&d)));
        }
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if mode(&p) != 0o600 {
                out.push((p.display().to_string(), mode(&p)));
            }
        }
    }
    out
}

#[test]
fn the_data_directory_is_private() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("market");
    // As an earlier version left it: open to everyone.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = tmp.path().join("market.log");
    let mut market = Market::start_logged(&data, &[], &log);
    owner_with_machine(&market);
    run_market_agent(&market, &tmp.path().join("agent"), 120, None, false);
    // Files written while running (WAL, objects) and at shutdown.
    assert!(
        open_to_others(&data).is_empty(),
        "{:?}",
        open_to_others(&data)
    );
    assert!(market.stop().success());

    let objects: Vec<_> = sealstream_testkit::files_under(&data.join("objects"));
    assert!(
        objects.len() >= 3,
        "ciphertext objects were written: {objects:?}"
    );
    for name in [
        "market.db",
        "receipt-key",
        "operator-kek",
        "nonce-key",
        "audit-head.json",
    ] {
        assert!(data.join(name).is_file(), "{name}");
    }
    let open = open_to_others(&data);
    assert!(open.is_empty(), "readable by other users: {open:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("the operator key-encryption key is stored beside the database"),
        "{text}"
    );
    assert!(
        text.contains("readable by other users"),
        "the narrowing is logged: {text}"
    );
}

/// Issue 14, item 16: a failed sign-in is logged at warn level, naming the
/// field, without the signature, and no session token reaches the log.
#[test]
fn refusals_are_logged_without_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("market.log");
    let mut market = Market::start_logged(&tmp.path().join("market"), &[], &log);
    let key = MachineSigningKey::generate();
    let token = market.sign_in(&key);
    let (status, nonce) = market.call("POST", "/v1/auth/nonce", None, Some("{}"));
    assert_eq!(status, 200);
    let field = |name: &str| {
        nonce
            .get(name)
            .and_then(sealstream_core::json::Value::as_str)
            .unwrap()
            .to_string()
    };
    let message = sealstream_api::siwe::sign_in_message(
        &field("domain"),
        &field("uri"),
        &Did::of_key(&key),
        &field("nonce"),
        sealstream_api::siwe::Timestamp::parse(&field("issuedAt"), "issuedAt").unwrap(),
        None,
        None,
    )
    .unwrap()
    .to_string();
    // Signed by another key than the message's address.
    let forged =
        sealstream_core::identity::eip191_sign(&MachineSigningKey::generate(), message.as_bytes())
            .to_hex();
    let body = format!(
        "{{\"message\":{},\"signature\":\"{forged}\"}}",
        common::market::json_string(&message)
    );
    let (status, answer) = market.call("POST", "/v1/auth/verify", None, Some(&body));
    assert_eq!(status, 401, "{answer:?}");
    assert!(market.stop().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let refusal = text
        .lines()
        .find(|l| l.contains("refused") && l.contains("signature"))
        .unwrap_or_else(|| panic!("no refusal logged: {text}"));
    assert!(refusal.contains("WARN"), "{refusal}");
    let forged_hex = forged.trim_start_matches("0x");
    assert!(!text.contains(forged_hex), "the signature is not logged");
    assert!(!text.contains(&token), "no session token in the log");
}
