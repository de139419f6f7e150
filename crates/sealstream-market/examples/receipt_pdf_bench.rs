//! Time to render one receipt PDF and to verify one (BENCHMARKS.md,
//! "Receipt PDFs"): docs/examples/receipt.json rendered `N` times
//! (`sealstream_market::orders::receipt_pdf::render`), and the result
//! verified `N` times the way `sealstream receipt verify FILE.pdf` does
//! (`extract_receipt`, strict parse, Ed25519 with the pinned key).
//!
//! ```sh
//! cargo run --release -p sealstream-market --example receipt_pdf_bench [N]
//! ```

use std::time::{Duration, Instant};

use sealstream_api::receipts::pdf::extract_receipt;
use sealstream_api::receipts::SignedDocument;
use sealstream_core::keys::ReceiptPublicKey;
use sealstream_market::orders::receipt_pdf::render;

/// The key docs/examples/receipt.json is signed with (docs/formats.md).
const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200)
        .max(1);
    let json = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/receipt.json"),
    )
    .expect("docs/examples/receipt.json");
    let key = ReceiptPublicKey::from_hex(KEY, "key").expect("key");
    let pdf = render(&json).expect("renders");
    let mut rendering = Vec::with_capacity(n);
    let mut verifying = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let again = render(&json).expect("renders");
        rendering.push(t.elapsed());
        assert_eq!(again, pdf);
        let t = Instant::now();
        let attached = extract_receipt(&pdf).expect("attachment");
        SignedDocument::parse(&attached)
            .expect("parses")
            .verify(Some(&key))
            .expect("verifies");
        verifying.push(t.elapsed());
    }
    println!(
        "receipt PDF ({} bytes), {n} runs: render median {:?}, verify median {:?}",
        pdf.len(),
        median(rendering),
        median(verifying)
    );
}
