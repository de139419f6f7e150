//! The listing page's in-browser verification (`static/verify.js`), run
//! with Node's WebCrypto on the documented examples (`docs/examples`): its
//! canonical JSON is the reference's signed bytes, the manifest's Ed25519
//! signature holds and fails for a changed manifest, the inclusion path
//! leads to the signed root and fails for another chunk or a changed path;
//! the manifest's EIP-191 signature recovers the machine's address with the
//! page's own Keccak/secp256k1 (`static/secp256k1.js`) and not for a
//! changed manifest.
//! (The page itself, in Chromium, is tested with the browser tests.)

use std::process::Command;

use sealstream_testkit::repo_root;

#[test]
fn the_pages_verification_code_checks_the_documented_examples() {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node")
        .arg(crate_dir.join("tests/support/verify_js_check.mjs"))
        .arg(crate_dir.join("static/verify.js"))
        .arg(repo_root().join("docs/examples"))
        .output()
        .expect("node (the machine's Node.js) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for check in [
        "canonicalEqual",
        "signatureHolds",
        "changedManifestFails",
        "rootMatches",
        "otherChunkFails",
        "changedPathFails",
        "eip191Recovers",
        "eip191ChangedManifestFails",
        "eip191MalformedIsNull",
    ] {
        assert_eq!(result[check], true, "{check}: {result}");
    }
    assert_eq!(
        result["keccakEmpty"],
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    );
    // Python's json.dumps with ensure_ascii, as the reference writes it.
    assert_eq!(
        result["unicode"],
        r#"{"a":[1,null,true],"b":"caf\u00e9 \u2028 \ud83d\ude00"}"#
    );
}
