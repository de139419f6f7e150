//! The license receipt example in docs/formats.md is real and exact: it
//! verifies with the documented key over the documented bytes, and names
//! the documented dataset.

use std::path::{Path, PathBuf};

use sealstream_api::receipts::SignedReceipt;
use sealstream_core::dataset::DatasetManifest;
use sealstream_core::keys::ReceiptPublicKey;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(examples().join(name)).unwrap()
}

#[test]
fn receipt_example_verifies_and_signed_bytes_are_exact() {
    let r = SignedReceipt::parse(&read("receipt.json")).unwrap();
    let doc = std::fs::read_to_string(examples().join("../formats.md")).unwrap();
    // The key the section names (RFC 8032 test 1's public key).
    let key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    assert!(doc.contains(key));
    r.verify(Some(&ReceiptPublicKey::from_hex(key, "key").unwrap()))
        .unwrap();
    assert_eq!(
        r.receipt.signed_bytes().unwrap(),
        read("receipt.signed-bytes.txt")
    );
    assert_eq!(
        r.to_json_pretty().as_bytes(),
        read("receipt.json").as_slice()
    );
    // The documented signed bytes are the file's, line by line.
    let signed = String::from_utf8(read("receipt.signed-bytes.txt")).unwrap();
    for line in signed.lines() {
        assert!(doc.contains(line), "formats.md lacks {line}");
    }
    // The merkle root is the documented dataset's.
    let m = DatasetManifest::parse(&read("dataset.json")).unwrap();
    assert_eq!(r.receipt.dataset_root, m.merkle_root);
    assert_eq!(r.receipt.machine_did, m.machine_did);
}
