//! `sealstream keys generate --role machine|owner|buyer|p2p`: each role's files
//! (secret ones 0600 in a 0700 directory), its keys.json and the labels it
//! prints; `keys show` names the role of a file `keys generate` wrote.

mod common;

use std::path::Path;

use common::*;
use sealstream_core::json::{self, Value};

fn generate(dir: &Path, role: Option<&str>) -> std::process::Output {
    let mut c = sealstream();
    c.args(["keys", "generate", "--output-dir"]).arg(dir);
    if let Some(role) = role {
        c.args(["--role", role]);
    }
    c.output().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn keys_json(dir: &Path) -> Value {
    json::parse(&std::fs::read(dir.join("keys.json")).unwrap()).unwrap()
}

fn show(file: &Path) -> Value {
    let mut c = sealstream();
    c.args(["keys", "show", "--json"]).arg(file);
    json::parse(&run_ok(c, "keys show").stdout).unwrap()
}

#[test]
fn the_machine_set_is_the_default_and_names_its_role() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("machine");
    let out = generate(&dir, None);
    assert!(out.status.success());
    assert_eq!(
        names(&dir),
        [
            "chain.ed25519.sk",
            "field.aes256.key",
            "keys.json",
            "machine.did",
            "machine.secp256k1.sk",
            "machine.x25519.sk",
            "operator.x25519.sk",
            "owner.x25519.sk"
        ]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("  Machine DID:   did:peaq:0x"), "{stderr}");
    let keys = keys_json(&dir);
    assert_eq!(keys.get("role"), Some(&Value::from("machine")));
    for field in [
        "machineDid",
        "machineAddress",
        "machineKeyId",
        "chainPublicKeyHex",
        "ownerPublicKeyHex",
        "operatorPublicKeyHex",
        "machinePublicKeyHex",
    ] {
        assert!(keys.get(field).and_then(Value::as_str).is_some(), "{field}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("machine.did")).unwrap(),
        keys.get("machineDid").and_then(Value::as_str).unwrap()
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700);
        for secret in [
            "machine.secp256k1.sk",
            "chain.ed25519.sk",
            "field.aes256.key",
            "owner.x25519.sk",
        ] {
            assert_eq!(mode(&dir.join(secret)), 0o600, "{secret}");
        }
    }
    let shown = show(&dir.join("machine.secp256k1.sk"));
    assert_eq!(shown.get("role"), Some(&Value::from("machine")));
    assert_eq!(shown.get("did"), keys.get("machineDid"));
    // The same flag spelled out makes the same set; nothing is overwritten.
    let again = generate(&dir, Some("machine"));
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn owners_and_buyers_get_files_and_labels_of_their_own() {
    let tmp = tempfile::tempdir().unwrap();
    for (role, label) in [("owner", "Owner"), ("buyer", "Buyer")] {
        let dir = tmp.path().join(role);
        let out = generate(&dir, Some(role));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let mut expected = [
            format!("{role}.did"),
            format!("{role}.secp256k1.sk"),
            format!("{role}.x25519.sk"),
            "keys.json".to_string(),
        ];
        expected.sort();
        assert_eq!(names(&dir), expected);
        assert!(stderr.contains(&format!("{label} DID:")), "{stderr}");
        assert!(stderr.contains(&format!("{label} address:")), "{stderr}");
        assert!(!stderr.contains("Machine"), "{stderr}");
        let keys = keys_json(&dir);
        assert_eq!(keys.get("role"), Some(&Value::from(role)));
        let did = keys
            .get(&format!("{role}Did"))
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        assert_eq!(
            std::fs::read_to_string(dir.join(format!("{role}.did"))).unwrap(),
            did
        );
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join(format!("{role}.secp256k1.sk"))), 0o600);
            assert_eq!(mode(&dir.join(format!("{role}.x25519.sk"))), 0o600);
        }
        // keys show names the role and gives the DID keys.json lists.
        let shown = show(&dir.join(format!("{role}.secp256k1.sk")));
        assert_eq!(shown.get("role"), Some(&Value::from(role)));
        assert_eq!(shown.get("did").and_then(Value::as_str), Some(did.as_str()));
        let x = show(&dir.join(format!("{role}.x25519.sk")));
        assert_eq!(x.get("role"), Some(&Value::from(role)));
        assert_eq!(
            x.get("publicKeyHex"),
            keys.get(&format!("{role}PublicKeyHex"))
        );
        // --json prints keys.json.
        let json_dir = tmp.path().join(format!("{role}-json"));
        let mut c = sealstream();
        c.args(["keys", "generate", "--json", "--role", role, "--output-dir"])
            .arg(&json_dir);
        let printed = json::parse(&run_ok(c, "keys generate --json").stdout).unwrap();
        assert_eq!(printed, keys_json(&json_dir));
    }
}

#[test]
fn a_key_file_of_no_known_role_shows_no_role() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("mine.x25519.sk");
    std::fs::copy(keyfile("owner.x25519.sk"), &file).unwrap();
    assert_eq!(show(&file).get("role"), None);
}

#[test]
fn a_p2p_identity_is_a_private_seed_and_its_peer_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("seller");
    // Beside an owner's keys: it writes no keys.json of its own.
    assert!(generate(&dir, Some("owner")).status.success());
    let out = generate(&dir, Some("p2p"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peer = std::fs::read_to_string(dir.join("p2p.peer-id")).unwrap();
    assert!(peer.trim().starts_with("12D3KooW"), "{peer}");
    #[cfg(unix)]
    assert_eq!(mode(&dir.join("p2p.ed25519.sk")), 0o600);
    assert_eq!(text(&keys_json(&dir), "role"), "owner");
    let shown = show(&dir.join("p2p.ed25519.sk"));
    assert_eq!(text(&shown, "role"), "p2p");
    assert_eq!(text(&shown, "peerId"), peer.trim());
    // Never overwritten.
    let again = generate(&dir, Some("p2p"));
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(dir.join("p2p.peer-id")).unwrap(),
        peer
    );
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
