//! Reading files never quotes them: an envelope, a chain directory, a
//! ciphertext or a key file that holds a secret key (or is one) fails with
//! errors whose `Display`, `Debug` and `{:#?}` contain neither the secret
//! nor any 16-hex-digit window of it, in any letter case.

use sealstream_core::chunk::CHUNK_SCHEMA_VERSION;
use sealstream_core::keys::{ChainPublicKey, RecipientSecretKey};
use sealstream_files::keyfile::read_key_file;
use sealstream_files::layout::{list_chain, read_ciphertext, read_envelope, write_atomic};
use sealstream_testkit::secrets::{contains_secret, Watch};

// A test-only key of fixtures/peaq-stream-v1/keys.json (the owner's).
const OWNER_SK: &str = "51b48b68b1a9f4a820f7fb161053d09345b11e4eef1b81b2847556789e0db8e3";

#[test]
fn the_detector_finds_windows_in_any_case() {
    let s = OWNER_SK;
    assert!(contains_secret(&s.to_uppercase(), s));
    assert!(contains_secret(&format!("x {} y", &s[20..36]), s));
    assert!(!contains_secret(&format!("x {} y", &s[20..35]), s));
}

#[test]
fn file_errors_do_not_quote_file_contents() {
    let generated = RecipientSecretKey::generate().to_hex_secret().to_string();
    let mut w = Watch::new();
    w.add("owner", OWNER_SK);
    w.add("generated", &generated);
    for s in [OWNER_SK.to_string(), generated] {
        let dir = tempfile::tempdir().unwrap();
        // An envelope file that is the secret, a broken envelope holding it, and a
        // key file in a place where a chunk is expected.
        std::fs::write(dir.path().join("chunk-0.json"), &s).unwrap();
        w.fails(
            "read_envelope",
            read_envelope(&dir.path().join("chunk-0.json")),
        );
        w.fails("list_chain", list_chain(dir.path()));
        std::fs::write(
            dir.path().join("chunk-0.json"),
            format!("{{\"schemaVersion\": \"{CHUNK_SCHEMA_VERSION}\", \"index\": \"{s}\"}}"),
        )
        .unwrap();
        w.fails(
            "read_envelope",
            read_envelope(&dir.path().join("chunk-0.json")),
        );
        w.fails("list_chain", list_chain(dir.path()));
        w.fails(
            "read_envelope missing",
            read_envelope(&dir.path().join("chunk-9.json")),
        );
        w.fails(
            "list_chain missing dir",
            list_chain(&dir.path().join("nope")),
        );
        std::fs::create_dir(dir.path().join("chunk-1.bin")).unwrap();
        w.fails(
            "read_ciphertext of a directory",
            read_ciphertext(dir.path(), 1),
        );
        w.fails(
            "write_atomic into a missing directory",
            write_atomic(&dir.path().join("nope/x.json"), s.as_bytes()),
        );
        std::fs::write(dir.path().join("key.sk"), &s).unwrap();
        let text = std::fs::read_to_string(dir.path().join("key.sk")).unwrap();
        w.fails(
            "key file read as a public key with a newline",
            ChainPublicKey::from_hex(&format!("{text}{text}"), "key file"),
        );
        // Key files that hold the secret twice, or cut short.
        std::fs::write(dir.path().join("twice.sk"), format!("{s}\n{s}")).unwrap();
        w.fails(
            "read_key_file of a key given twice",
            read_key_file(&dir.path().join("twice.sk"), |t| {
                RecipientSecretKey::from_hex(t, "owner key")
            }),
        );
        std::fs::write(dir.path().join("short.sk"), &s[..62]).unwrap();
        w.fails(
            "read_key_file of a key cut short",
            read_key_file(&dir.path().join("short.sk"), |t| {
                RecipientSecretKey::from_hex(t, "owner key")
            }),
        );
    }
    assert_eq!(w.checked, 2 * 11 * 3);
}
