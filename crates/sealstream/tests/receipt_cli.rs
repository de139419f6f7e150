//! `sealstream receipt verify` as a process: receipts signed with
//! sealstream-core, then verified, tampered with, signed by a stranger,
//! malformed; exit codes, the file and field named, `--json` on stdout.

use std::path::{Path, PathBuf};
use std::process::Output;

use sealstream_api::receipts::{LicenseReceipt, ReceiptPayment, SignedReceipt};
use sealstream_core::json::{self, Value};
use sealstream_core::keys::ReceiptSigningKey;
use sealstream_testkit::sealstream;

fn run(args: &[&str], file: &Path) -> (i32, String, String) {
    let out: Output = sealstream()
        .args(["receipt", "verify"])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().expect("exited"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn obj(text: &str) -> Value {
    json::parse(text.as_bytes()).unwrap()
}

fn invoice_receipt() -> LicenseReceipt {
    LicenseReceipt {
        order_id: "or_1".into(),
        listing_id: "ls_1".into(),
        listing_title: "IMU, test track".into(),
        dataset_id: "ds_1".into(),
        dataset_root: format!("0x{}", "5a".repeat(32)),
        machine_did: "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1".into(),
        topic: "/sensor/imu".into(),
        first_index: 10,
        chunk_count: 1,
        seller_did: "did:peaq:0x9C5e5e3F2d1a0B8c7D6e5F4a3B2c1D0e9F8a7B6c".into(),
        buyer_did: "did:peaq:0x000000000000000000000000000000000000b0b0".into(),
        buyer_id: "buyer-7".into(),
        buyer_public_key_hex: "ad".repeat(32),
        amount: "120000".into(),
        decimals: 2,
        rail: obj(r#"{"kind":"invoice","currency":"EUR","decimals":2}"#),
        payment: ReceiptPayment::Invoice {
            invoice_reference: "INV-2026-0042".into(),
            marked_by: "did:peaq:0x9C5e5e3F2d1a0B8c7D6e5F4a3B2c1D0e9F8a7B6c".into(),
        },
        license: "CC BY-NC 4.0".into(),
        ordered_at: "2026-01-02T03:04:05Z".into(),
        paid_at: "2026-01-03T03:04:05Z".into(),
        issued_at: "2026-01-03T03:04:06Z".into(),
        compliance: None,
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    market: ReceiptSigningKey,
    signed: SignedReceipt,
    file: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let market = ReceiptSigningKey::generate();
    let signed = invoice_receipt().sign(&market).unwrap();
    let file = dir.path().join("receipt.json");
    std::fs::write(&file, signed.to_json_pretty()).unwrap();
    Setup {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        market,
        signed,
        file,
    }
}

#[test]
fn a_valid_receipt_with_the_pinned_key() {
    let s = setup();
    let key = s.market.public_key().to_hex();
    let (code, stdout, stderr) = run(&["--server-key", &key], &s.file);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(&format!(
            "receipt valid: signed by the market key {key} (--server-key)\n"
        )),
        "{stderr}"
    );
    for want in [
        "order     or_1",
        "listing   ls_1 \"IMU, test track\"",
        &format!("root 0x{}", "5a".repeat(32)),
        "1 chunk from index 10 of /sensor/imu",
        "amount    1200 EUR (120000 base units, 2 decimals)",
        "payment   invoice INV-2026-0042, marked paid by did:peaq:0x9C5e",
        "license   CC BY-NC 4.0",
        "paid 2026-01-03T03:04:05Z",
    ] {
        assert!(stderr.contains(want), "{want:?} missing from:\n{stderr}");
    }
    // With 0x and quiet: nothing printed, still exit 0.
    let out = sealstream()
        .args(["-q", "receipt", "verify"])
        .arg(&s.file)
        .args(["--server-key", &format!("0x{key}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty() && out.stdout.is_empty());
}

#[test]
fn json_output_carries_the_receipt() {
    let s = setup();
    let key = s.market.public_key().to_hex();
    let (code, stdout, stderr) = run(&["--server-key", &key, "--json"], &s.file);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "");
    let v = json::parse(stdout.as_bytes()).unwrap();
    assert_eq!(v.get("valid"), Some(&Value::Bool(true)));
    assert_eq!(v.get("keyPinned"), Some(&Value::Bool(true)));
    assert_eq!(
        v.get("signerPublicKeyHex").and_then(Value::as_str),
        Some(key.as_str())
    );
    assert_eq!(v.get("amountDisplay").and_then(Value::as_str), Some("1200"));
    assert_eq!(v.get("receipt"), Some(&s.signed.receipt.to_json()));

    // Without a pinned key it is valid but says so.
    let (code, stdout, _) = run(&["--json"], &s.file);
    assert_eq!(code, 0);
    let v = json::parse(stdout.as_bytes()).unwrap();
    assert_eq!(v.get("keyPinned"), Some(&Value::Bool(false)));
    let (code, _, stderr) = run(&[], &s.file);
    assert_eq!(code, 0);
    assert!(stderr.contains("not pinned: pass --server-key"), "{stderr}");
}

#[test]
fn a_changed_receipt_is_an_integrity_failure() {
    let s = setup();
    let key = s.market.public_key().to_hex();
    let text = std::fs::read_to_string(&s.file)
        .unwrap()
        .replace("\"amount\": \"120000\"", "\"amount\": \"12000\"");
    let tampered = s.dir.join("tampered.json");
    std::fs::write(&tampered, text).unwrap();
    let (code, stdout, stderr) = run(&["--server-key", &key], &tampered);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!(
            "error: {}: signature.value: the signature does not verify with signature.publicKeyHex (the receipt was changed after signing, or signed by another key)\n",
            tampered.display()
        )
    );
    let (code, stdout, _) = run(&["--server-key", &key, "--json"], &tampered);
    assert_eq!(code, 2);
    let v = json::parse(stdout.as_bytes()).unwrap();
    assert_eq!(v.get("valid"), Some(&Value::Bool(false)));
    assert!(v
        .get("error")
        .and_then(Value::as_str)
        .unwrap()
        .contains("signature.value"));
}

#[test]
fn a_receipt_by_another_key_is_an_integrity_failure() {
    let s = setup();
    let stranger = ReceiptSigningKey::generate();
    let forged = s.dir.join("forged.json");
    std::fs::write(
        &forged,
        invoice_receipt().sign(&stranger).unwrap().to_json_pretty(),
    )
    .unwrap();
    let key = s.market.public_key().to_hex();
    let (code, _, stderr) = run(&["--server-key", &key], &forged);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: {}: signature.publicKeyHex: signed by {}, not by the pinned market key {key}\n",
            forged.display(),
            stranger.public_key().to_hex()
        )
    );
    // The forgery is self-consistent: without a pin it passes, and says it is unpinned.
    let (code, _, stderr) = run(&[], &forged);
    assert_eq!(code, 0);
    assert!(stderr.contains("not pinned"), "{stderr}");
}

#[test]
fn bad_input_names_the_file_and_the_field() {
    let s = setup();
    let key = s.market.public_key().to_hex();
    let cases: [(&str, String, &str); 5] = [
        (
            "root.json",
            std::fs::read_to_string(&s.file)
                .unwrap()
                .replace(&"5a".repeat(32), &"5A".repeat(32)),
            "receipt.datasetRoot: expected 0x followed by 64 lowercase hex digits",
        ),
        (
            "extra.json",
            std::fs::read_to_string(&s.file).unwrap().replacen(
                "\"receipt\": {",
                "\"receipt\": {\n    \"note\": \"hi\",",
                1,
            ),
            "receipt.note: unknown field (not part of sealstream.receipt.v1)",
        ),
        (
            "payment.json",
            std::fs::read_to_string(&s.file)
                .unwrap()
                .replace("\"invoiceReference\"", "\"invoiceRef\""),
            "receipt.payment: expected exactly one of",
        ),
        (
            "truncated.json",
            std::fs::read_to_string(&s.file).unwrap()[..200].to_string(),
            "invalid JSON: ",
        ),
        (
            "dataset.json",
            r#"{"schemaVersion":"sealstream.dataset.v1"}"#.to_string(),
            "schemaVersion: expected sealstream.receipt.v1",
        ),
    ];
    for (name, text, want) in cases {
        let path = s.dir.join(name);
        std::fs::write(&path, text).unwrap();
        let (code, stdout, stderr) = run(&["--server-key", &key, "--json"], &path);
        assert_eq!(code, 1, "{name}: {stderr}");
        assert_eq!(stdout, "", "{name}");
        assert!(
            stderr.starts_with(&format!("error: {}: {want}", path.display())),
            "{name}: {stderr}"
        );
    }
    let missing = s.dir.join("missing.json");
    let (code, _, stderr) = run(&[], &missing);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(&format!("error: {}: cannot read", missing.display())),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["--server-key", "abcd"], &s.file);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "error: --server-key: expected 32 bytes as hex (64 hex digits, optional 0x), got 4 hex digits\n"
    );
}

#[test]
fn the_documented_example_verifies_with_the_documented_key() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/receipt.json");
    let (code, _, stderr) = run(
        &[
            "--server-key",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        ],
        &example,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("amount    1.5 USDC (1500000 base units, 6 decimals)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("payment   transaction 0x5e8d0a4b7c2f91e3d6a8b0c4e2f7193a5d8c6b0e4f2a7d9c1b3e5f8a0c2d4e6f on chain 8453"),
        "{stderr}"
    );
}

/// Issue 21: a v2 receipt (selective disclosure) verifies whole; `receipt
/// disclose` shows two fields, which `receipt verify-disclosure` accepts
/// against the pinned key and prints without the hidden ones; a changed
/// disclosed value is an integrity failure naming the field; a field that
/// is not one is refused.
#[test]
fn a_disclosure_of_two_fields_verifies_and_a_changed_one_fails() {
    let s = setup();
    let key = s.market.public_key().to_hex();
    let v2 = invoice_receipt()
        .sign_v2(&s.market, &mut rand_core::OsRng)
        .unwrap();
    let full = s.dir.join("receipt-v2.json");
    std::fs::write(&full, v2.to_json_pretty()).unwrap();
    let (code, _, stderr) = run(&["--server-key", &key], &full);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("(v2: all 21 fields shown)"), "{stderr}");
    assert!(stderr.contains("amount    1200 EUR"), "{stderr}");

    let part = s.dir.join("disclosure.json");
    let out = sealstream()
        .args(["receipt", "disclose"])
        .arg(&full)
        .args(["--fields", "datasetRoot,license", "--output"])
        .arg(&part)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&part).unwrap();
    assert!(
        !text.contains("b0b0") && !text.contains("120000"),
        "hidden: {text}"
    );
    let out = sealstream()
        .args(["--json", "receipt", "verify-disclosure"])
        .arg(&part)
        .args(["--server-key", &key])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = obj(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(answer.get("valid"), Some(&Value::Bool(true)));
    assert_eq!(answer.get("fieldsShown").and_then(Value::as_u64), Some(2));
    let fields = answer.get("fields").unwrap();
    assert_eq!(
        fields.get("datasetRoot").and_then(Value::as_str),
        Some(format!("0x{}", "5a".repeat(32)).as_str())
    );
    assert_eq!(
        fields.get("license").and_then(Value::as_str),
        Some("CC BY-NC 4.0")
    );
    let (code, _, stderr) = run(&["--server-key", &key], &part);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("receipt disclosure valid"), "{stderr}");
    assert!(
        stderr.contains("2 of the receipt's 21 fields shown"),
        "{stderr}"
    );
    assert!(!stderr.contains("b0b0"), "{stderr}");

    // One changed character of a disclosed value: exit 2, the field named.
    let changed = s.dir.join("changed.json");
    std::fs::write(&changed, text.replace("CC BY-NC 4.0", "CC BY 4.0")).unwrap();
    let (code, _, stderr) = run(&["--server-key", &key], &changed);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("disclosures.license: not a field of the signed receipt"),
        "{stderr}"
    );
    // Not a field: refused, exit 1.
    let out = sealstream()
        .args(["receipt", "disclose"])
        .arg(&full)
        .args(["--fields", "price"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("price is not a receipt field"));
}

/// Issue 21: the documented receipt PDF (docs/examples/receipt.pdf, the
/// market's rendering of docs/examples/receipt.json) verifies with the
/// documented key, its attached receipt checked as the JSON file is; one
/// changed digit of the attached amount is an integrity failure naming the
/// attachment; a PDF whose attachment is not an associated file any more
/// is one too; a PDF without the attachment is bad input.
#[test]
fn the_documented_pdf_receipt_verifies_and_a_changed_one_fails() {
    const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/receipt.pdf");
    let (code, _, stderr) = run(&["--server-key", KEY], &example);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("amount    1.5 USDC (1500000 base units, 6 decimals)"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run(&["--server-key", KEY, "--json"], &example);
    assert_eq!(code, 0, "{stderr}");
    let out = obj(&stdout);
    assert_eq!(out.get("valid"), Some(&Value::Bool(true)), "{stdout}");

    let pdf = std::fs::read(&example).unwrap();
    let changed = |from: &[u8], to: &[u8]| -> Vec<u8> {
        let at = pdf
            .windows(from.len())
            .position(|w| w == from)
            .unwrap_or_else(|| panic!("{} not in the PDF", String::from_utf8_lossy(from)));
        let mut out = pdf.clone();
        out[at..at + from.len()].copy_from_slice(to);
        out
    };
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[u8], &[u8], i32, &str); 3] = [
        (
            b"\"amount\": \"1500000\"",
            b"\"amount\": \"1500001\"",
            2,
            "receipt.pdf#receipt.json: signature.value: the signature does not verify",
        ),
        (
            b"/AF[",
            b"/XF[",
            2,
            "not listed in the document's associated files",
        ),
        (
            b"/EmbeddedFiles",
            b"/EmbeddedFileX",
            1,
            "no receipt.json attachment",
        ),
    ];
    for (from, to, want, says) in cases {
        let file = dir.path().join("receipt.pdf");
        std::fs::write(&file, changed(from, to)).unwrap();
        let (code, _, stderr) = run(&["--server-key", KEY], &file);
        assert_eq!(code, want, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}
