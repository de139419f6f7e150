//! Receipt PDFs on both databases (issue 21): a paid invoice order's
//! receipt as a PDF/A-3u document (`GET /v1/orders/{id}/receipt?format=pdf`,
//! and the portal's download), checked with real tools — poppler's
//! `pdftotext` (the page shows the order, the amount, the dataset root; a
//! title the font cannot draw comes out as `?`), `pdftoppm` (it renders),
//! `pdfdetach` (the attachment is the signed receipt, byte for byte),
//! `qpdf` (a rewritten PDF still verifies) — and the `sealstream` binary:
//! `receipt verify FILE.pdf` accepts it, and fails with the integrity code
//! once one byte of the embedded receipt is changed. The same receipt
//! gives the same bytes every time.

mod common;

use std::path::Path;
use std::process::Command;

use common::orders_fixtures::{buyer, invoice_rail, mark_paid, order, sale};
use common::{Db, TestServer};
use sealstream_api::receipts::pdf::extract_receipt;
use sealstream_api::receipts::{ReceiptV2, SignedReceipt};
use sealstream_testkit::http::{self, client_without_redirects};
use sealstream_testkit::{on_both_databases, run_fails, run_ok, sealstream};
use serde_json::json;

/// A listing title DejaVu Sans cannot draw in part (CJK).
const TITLE: &str = "激光雷达 Lidar scans, warehouse 3";

/// Runs a poppler or qpdf tool; panics with its output unless it succeeds.
fn tool(name: &str, args: &[&str], dir: &Path) -> std::process::Output {
    let mut c = Command::new(name);
    c.args(args).current_dir(dir);
    run_ok(c, name)
}

/// `bytes` with the first `from` replaced by `to` (same length).
fn replace_once(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{} not in the PDF", String::from_utf8_lossy(from)));
    let mut out = bytes.to_vec();
    out[at..at + from.len()].copy_from_slice(to);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn verify(file: &Path, key: &str) -> Command {
    let mut c = sealstream();
    c.args(["receipt", "verify"])
        .arg(file)
        .args(["--server-key", key]);
    c
}

fn receipt_pdf_end_to_end(db: Db) {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let server = TestServer::start(db);
    let sale = sale(&server, 3, "125000", invoice_rail());
    let listing = format!("/v1/listings/{}", sale.listing_id);
    let (status, body) = server.send(
        "PATCH",
        &listing,
        Some(&sale.owner),
        &json!({"title": TITLE}),
    );
    assert_eq!(status, 200, "{body}");
    let alice = buyer(&server);
    let mallory = buyer(&server);
    let id = order(&server, &alice, &sale.listing_id)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("/v1/orders/{id}/receipt");
    assert_eq!(
        server
            .get(&format!("{base}?format=pdf"), Some(&alice.token))
            .0,
        404,
        "no receipt before it is paid"
    );
    let (status, body) = mark_paid(&server, &id, &sale.owner, "INV-2026-0042");
    assert_eq!(status, 200, "{body}");
    let json_text = http::send(server.request("GET", &base, Some(&alice.token)))
        .ok()
        .body;
    let receipt = SignedReceipt::parse(&json_text).unwrap();
    assert_eq!(receipt.receipt.listing_title, TITLE);
    let root = receipt.receipt.dataset_root.clone();

    let answer =
        http::send(server.request("GET", &format!("{base}?format=pdf"), Some(&alice.token))).ok();
    assert_eq!(answer.content_type(), "application/pdf");
    assert_eq!(
        answer.header("content-disposition"),
        Some(format!("attachment; filename=\"receipt-{id}.pdf\"").as_str())
    );
    let pdf = answer.body;
    assert!(pdf.starts_with(b"%PDF-1.7"), "{:?}", &pdf[..16]);
    // Written by krilla with its PDF/A-3u validator on (an error otherwise):
    // the XMP says so, and the receipt is an associated file.
    for marker in [
        &b"pdfaid:part>3<"[..],
        b"pdfaid:conformance>U<",
        b"/AFRelationship/Source",
        b"/Subtype/application#2Fjson",
        b"/AF[",
    ] {
        assert!(
            contains(&pdf, marker),
            "{}",
            String::from_utf8_lossy(marker)
        );
    }
    // The same receipt, the same bytes: again, and for the seller.
    let again =
        http::send(server.request("GET", &format!("{base}?format=pdf"), Some(&alice.token))).ok();
    assert_eq!(again.body, pdf, "a second rendering differs");
    let sellers =
        http::send(server.request("GET", &format!("{base}?format=pdf"), Some(&sale.owner))).ok();
    assert_eq!(sellers.body, pdf, "the seller's copy differs");
    // The attachment is the signed receipt exactly as served.
    assert_eq!(extract_receipt(&pdf).unwrap(), json_text);
    let file = t.join("receipt.pdf");
    std::fs::write(&file, &pdf).unwrap();

    // What a person sees: the facts, the root wrapped but whole, the
    // CJK characters as `?`.
    let text =
        String::from_utf8(tool("pdftotext", &["-layout", "receipt.pdf", "-"], t).stdout).unwrap();
    let squeezed: String = text.split_whitespace().collect();
    assert!(text.contains("License receipt"), "{text}");
    assert!(text.contains(&id), "{text}");
    assert!(text.contains("1250 EUR"), "{text}");
    assert!(text.contains("INV-2026-0042"), "{text}");
    assert!(squeezed.contains(&root), "{root} not in {text}");
    assert!(text.contains("???? Lidar scans, warehouse 3"), "{text}");
    assert!(!text.contains("激光"), "{text}");
    assert!(
        text.contains("sealstream receipt verify FILE.pdf"),
        "{text}"
    );
    // It renders.
    tool(
        "pdftoppm",
        &["-r", "50", "-png", "-singlefile", "receipt.pdf", "page"],
        t,
    );
    let png = std::fs::read(t.join("page.png")).unwrap();
    assert!(
        png.len() > 1000 && png.starts_with(b"\x89PNG"),
        "{}",
        png.len()
    );
    // poppler finds the one attachment, and it is the receipt.
    let listed = String::from_utf8(tool("pdfdetach", &["-list", "receipt.pdf"], t).stdout).unwrap();
    assert!(
        listed.contains("1 embedded files") && listed.contains("1: receipt.json"),
        "{listed}"
    );
    tool(
        "pdfdetach",
        &["-save", "1", "-o", "detached.json", "receipt.pdf"],
        t,
    );
    assert_eq!(std::fs::read(t.join("detached.json")).unwrap(), json_text);
    let detached = SignedReceipt::parse(&std::fs::read(t.join("detached.json")).unwrap()).unwrap();
    assert_eq!(
        detached.receipt.listing_title, TITLE,
        "the JSON keeps the title"
    );

    // `sealstream receipt verify` accepts the PDF, pinned to the server key.
    let (_, key) = server.get("/v1/receipts/key", None);
    let key = key["publicKeyHex"].as_str().unwrap().to_string();
    let out = run_ok(verify(&file, &key), "receipt verify receipt.pdf");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("receipt valid") && said.contains(&id),
        "{said}"
    );
    // One digit of the embedded amount changed: the integrity code.
    let tampered = replace_once(&pdf, b"\"amount\": \"125000\"", b"\"amount\": \"925000\"");
    let tampered_file = t.join("tampered.pdf");
    std::fs::write(&tampered_file, &tampered).unwrap();
    let said = run_fails(verify(&tampered_file, &key), 2);
    assert!(
        said.contains("receipt.pdf#receipt.json") || said.contains("tampered.pdf#receipt.json"),
        "{said}"
    );
    assert!(said.contains("signature"), "{said}");
    // A PDF without the attachment is bad input.
    let plain = replace_once(&pdf, b"/EmbeddedFiles", b"/EmbeddedFileX");
    let plain_file = t.join("plain.pdf");
    std::fs::write(&plain_file, &plain).unwrap();
    let said = run_fails(verify(&plain_file, &key), 1);
    assert!(said.contains("no receipt.json attachment"), "{said}");

    // Rewritten by another tool (object streams, every stream compressed,
    // the JSON no longer visible as bytes): still the same receipt.
    if Command::new("qpdf").arg("--version").output().is_ok() {
        tool(
            "qpdf",
            &[
                "--object-streams=generate",
                "--compress-streams=y",
                "--stream-data=compress",
                "receipt.pdf",
                "rewritten.pdf",
            ],
            t,
        );
        let rewritten = std::fs::read(t.join("rewritten.pdf")).unwrap();
        assert!(
            !contains(&rewritten, b"\"orderId\""),
            "the JSON is still plain"
        );
        assert_eq!(extract_receipt(&rewritten).unwrap(), json_text);
        run_ok(
            verify(&t.join("rewritten.pdf"), &key),
            "receipt verify rewritten.pdf",
        );
    } else {
        eprintln!("NOTE: qpdf is not installed (scripts/setup-test-peers installs it): the rewritten-PDF check was skipped");
    }

    // version=2 attaches the v2 receipt, which verifies the same way.
    let v2_pdf = http::send(server.request(
        "GET",
        &format!("{base}?format=pdf&version=2"),
        Some(&alice.token),
    ))
    .ok()
    .body;
    let v2_json =
        http::send(server.request("GET", &format!("{base}?version=2"), Some(&alice.token)))
            .ok()
            .body;
    assert_eq!(extract_receipt(&v2_pdf).unwrap(), v2_json);
    ReceiptV2::parse(&v2_json).unwrap();
    let v2_file = t.join("receipt-v2.pdf");
    std::fs::write(&v2_file, &v2_pdf).unwrap();
    run_ok(verify(&v2_file, &key), "receipt verify receipt-v2.pdf");

    // Refused: another format, someone else's order.
    let (status, body) = server.get(&format!("{base}?format=xml"), Some(&alice.token));
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("format")),
        "{body}"
    );
    assert_eq!(
        server
            .get(&format!("{base}?format=pdf"), Some(&mallory.token))
            .0,
        404
    );

    // The buyer's portal page links the PDF, which downloads the same bytes.
    let cookie = web_session(&server, &alice.token);
    let page = http::send(
        client_without_redirects()
            .get(format!("{}/portal/buyer", server.base))
            .header("Cookie", &cookie),
    );
    assert_eq!(page.status, 200);
    assert!(
        page.text()
            .contains(&format!("href=\"/portal/orders/{id}/receipt.pdf\"")),
        "{}",
        page.text()
    );
    let download = http::send(
        client_without_redirects()
            .get(format!("{}/portal/orders/{id}/receipt.pdf", server.base))
            .header("Cookie", &cookie),
    );
    assert_eq!(download.status, 200);
    assert_eq!(download.content_type(), "application/pdf");
    assert_eq!(
        download.header("content-disposition"),
        Some(format!("attachment; filename=\"receipt-{id}.pdf\"").as_str())
    );
    assert_eq!(download.body, pdf);
}

/// A portal session cookie for the holder of `token`, through a web link.
fn web_session(server: &TestServer, token: &str) -> String {
    let (status, link) = server.send("POST", "/v1/auth/web-link", Some(token), &json!({}));
    assert_eq!(status, 200, "{link}");
    let url = link["url"].as_str().unwrap();
    let secret = url.split("token=").nth(1).unwrap();
    let used = http::send(
        client_without_redirects()
            .post(format!("{}/signin/link", server.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Origin", &server.base)
            .body(format!("token={}", http::path_segment(secret))),
    );
    assert_eq!(used.status, 303, "{}", used.text());
    let set = used.header("set-cookie").unwrap();
    set.split(';').next().unwrap().to_string()
}

on_both_databases!(receipt_pdf_end_to_end);
