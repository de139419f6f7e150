//! The public pages in headless Chromium (issue 20; the kit's
//! [`browser`](sealstream_testkit::browser)), as an anonymous visitor:
//! a search typed into the catalog's form finds the listing, its link opens
//! the listing page, and the page's verify button checks a sample chunk
//! with the browser's own cryptography against the machine-signed dataset
//! manifest (pass, with what was checked); after one byte of the stored
//! ciphertext is flipped, the same check fails and says which. A search
//! parameter the server refuses is shown next to its field; no page loads
//! anything from another origin; an inline script is blocked by the
//! Content-Security-Policy; the verify button is reached with the keyboard
//! and has a label; the catalog and the listing fit phones (390x844) and
//! desktops (1280x800), with a screenshot of each in the test's screenshot
//! directory (printed).
//!
//! The dataset is real: a machine's chain sealed with core's `ChainWriter`,
//! its manifest built with core's `DatasetBuilder` and signed by the
//! machine (EIP-191) and by its chain key (Ed25519, which the page checks),
//! posted through `POST /v1/datasets`; the listing is published through
//! the API and its sample key disclosed as an owner's client would.
//! Browser tests run on SQLite only: they test the pages, which read the
//! same handlers on both databases (tests/web.rs covers both).

mod common;

use std::time::Instant;

use common::orders_fixtures::{invoice_rail, sale, Sale};
use common::{block_on, Db, TestServer};
use sealstream_testkit::browser::fantoccini::key::Key;
use sealstream_testkit::browser::fantoccini::Locator;
use sealstream_testkit::browser::Browser;
use serde_json::{json, Value};

/// The viewports every page is checked and photographed at.
const VIEWPORTS: [(u32, u32); 2] = [(390, 844), (1280, 800)];

/// Makes chunk `index` of `sale`'s listing a sample and discloses its key,
/// unwrapped with the owner's recipient secret as the owner's client does.
fn disclose_sample(server: &TestServer, sale: &Sale, index: usize) {
    let (status, patched) = server.send(
        "PATCH",
        &format!("/v1/listings/{}", sale.listing_id),
        Some(&sale.owner),
        &json!({ "sampleChunkIndexes": [index] }),
    );
    assert_eq!(status, 200, "{patched}");
    let entry = &sale.chunks[index].envelope.encryption.key_recipients[0];
    let sealed = hex::decode(&entry.wrapped_key_hex).unwrap();
    let key = sealstream_core::sealed_box::open(&sealed, &sale.owner_recipient).unwrap();
    let (status, disclosed) = server.send(
        "POST",
        &format!("/v1/listings/{}/samples", sale.listing_id),
        Some(&sale.owner),
        &json!({"keys": [{"index": index, "chunkKeyHex": hex::encode(&key[..])}]}),
    );
    assert_eq!(status, 200, "{disclosed}");
}

/// The object key of chunk `index` of `sale`'s chain.
fn stored_object(server: &TestServer, sale: &Sale, index: usize) -> String {
    let (key,): (String,) = block_on(
        sqlx::query_as("SELECT object_key FROM chunks WHERE machine_did = $1 AND idx = $2")
            .bind(&sale.machine.did)
            .bind(index as i64)
            .fetch_one(server.store.pool()),
    )
    .unwrap();
    key
}

/// Checks the page on screen at every viewport: a screenshot
/// `<name>-<w>x<h>.png`, and nothing wider than the viewport. Leaves the
/// desktop viewport set.
async fn photograph(b: &Browser, name: &str) {
    for (w, h) in VIEWPORTS {
        b.set_viewport(w, h).await.unwrap();
        let path = b.snapshot(&format!("{name}-{w}x{h}")).await.unwrap();
        b.assert_no_horizontal_overflow().await.unwrap();
        assert!(path.is_file());
    }
}

/// Recorded from the start of every document, before the page's own
/// scripts: each violation of the page's Content-Security-Policy.
const RECORD_VIOLATIONS: &str = "window.__violations = []; \
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push( \
      e.effectiveDirective + ' blocked ' + e.blockedURI + ' at ' + e.sourceFile + ':' + e.lineNumber));";

/// Fails unless every request of the page went to `origin` and nothing on
/// it violated its Content-Security-Policy (an inline style or script the
/// browser silently dropped).
async fn assert_clean(b: &Browser, origin: &str) {
    let foreign = b.foreign_requests(origin).await.unwrap();
    let page = b.client().current_url().await.unwrap();
    assert!(foreign.is_empty(), "{page} loaded {foreign:?}");
    let violations = b.js("return window.__violations;").await.unwrap();
    assert_eq!(violations, json!([]), "{page} violates its CSP");
}

/// The verification's outcome once shown: (verdict, summary, each check
/// as [passed, text]).
async fn verdict(b: &Browser) -> (String, String, Vec<(bool, String)>) {
    let shown = b
        .wait_until(
            "(() => { const v = document.querySelector('#verify-result [data-verdict]'); \
             return v && {verdict: v.dataset.verdict, summary: v.textContent, \
               checks: [...document.querySelectorAll('#verify-result li')] \
                 .map(li => [li.className === 'ok', li.textContent])}; })()",
        )
        .await
        .unwrap();
    let checks = shown["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c[0] == Value::Bool(true),
                c[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (
        shown["verdict"].as_str().unwrap().to_string(),
        shown["summary"].as_str().unwrap().to_string(),
        checks,
    )
}

#[test]
fn a_visitor_finds_a_listing_and_verifies_its_sample_in_chromium() {
    let started = Instant::now();
    let server = TestServer::start(Db::Sqlite);
    let origin = server.base.clone();
    assert!(origin.starts_with("http://127.0.0.1:"), "{origin}");
    let lidar = sale(&server, 3, "490", invoice_rail());
    disclose_sample(&server, &lidar, 1);
    // A second listing the search must leave out, with words longer than
    // a phone is wide (a hash, a URL, a tag): they wrap.
    let other = sale(&server, 2, "990", invoice_rail());
    let long_word = format!("sha256:{}", "ab01".repeat(24));
    let (status, renamed) = server.send(
        "PATCH",
        &format!("/v1/listings/{}", other.listing_id),
        Some(&other.owner),
        &json!({"title": "Soil moisture, field 7",
                "description": format!("Probes in a wheat field, calibration file {long_word}, see \
                                        https://example.org/a/very/long/path/without/any/break/at/all/soil-moisture-probes"),
                "tags": ["soil", "volumetric-water-content-at-30cm-depth"]}),
    );
    assert_eq!(status, 200, "{renamed}");
    let sample = stored_object(&server, &lidar, 1);
    assert!(!server.object(&sample).is_empty(), "{sample}");
    let seeded = started.elapsed();

    let b = block_on(Browser::start()).unwrap();
    println!("screenshots: {}", b.screenshots_dir().display());
    block_on(b.inject_on_new_document(RECORD_VIOLATIONS)).unwrap();
    let in_browser = Instant::now();
    let listing_path = format!("/listings/{}", lidar.listing_id);

    block_on(async {
        let c = b.client();
        // The catalog: both listings, on every screen.
        c.goto(&format!("{origin}/")).await.unwrap();
        let titles = b
            .js("return [...document.querySelectorAll('.result h3 a')].map(a => a.textContent);")
            .await
            .unwrap();
        assert_eq!(titles.as_array().map(Vec::len), Some(2), "{titles}");
        assert_clean(&b, &origin).await;
        photograph(&b, "catalog").await;

        // An anonymous search, typed and submitted.
        let words = c.find(Locator::Css("#q")).await.unwrap();
        words.send_keys("lidar").await.unwrap();
        c.find(Locator::Css("form.search button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.wait_until("location.search.includes('q=lidar')")
            .await
            .unwrap();
        let found = b
            .js("return [...document.querySelectorAll('.result h3 a')] \
                 .map(a => [a.textContent, a.getAttribute('href')]);")
            .await
            .unwrap();
        assert_eq!(
            found,
            json!([["Lidar scans, warehouse 3", listing_path]]),
            "the search finds the lidar listing only"
        );
        assert_eq!(
            c.find(Locator::Css("#q"))
                .await
                .unwrap()
                .prop("value")
                .await
                .unwrap()
                .as_deref(),
            Some("lidar"),
            "the form shows the words searched"
        );
        assert_clean(&b, &origin).await;

        // The result's link opens the listing page.
        c.find(Locator::LinkText("Lidar scans, warehouse 3"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.wait_until(&format!(
            "location.pathname === {}",
            Value::String(listing_path.clone())
        ))
        .await
        .unwrap();
        let heading = c
            .find(Locator::Css("h1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(heading, "Lidar scans, warehouse 3");
        assert_clean(&b, &origin).await;
        photograph(&b, "listing").await;
        let severe: Vec<Value> = b
            .console_log()
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .collect();
        assert!(severe.is_empty(), "console errors: {severe:?}");

        // The verify button: labelled, reached with Tab.
        let button = c.find(Locator::Css("button.verify")).await.unwrap();
        let label = button.text().await.unwrap();
        assert_eq!(label, "Verify sample chunk 1");
        b.js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); return null;")
            .await
            .unwrap();
        let presses = b.tab_to("button.verify", 60).await.unwrap();
        assert!(presses > 0);

        // Verified in the browser: the manifest's Ed25519 signature by the
        // card's chain key, the chunk's hash, id, signature and inclusion.
        button.click().await.unwrap();
        let (verdict_shown, summary, checks) = verdict(&b).await;
        assert_eq!(verdict_shown, "verified", "{summary}: {checks:#?}");
        assert!(
            summary.starts_with("Verified: every check passed."),
            "{summary}"
        );
        for what in [
            "the dataset manifest (its Merkle root) is signed with that chain key (Ed25519)",
            "the sample's ciphertext hashes to the envelope's encryptedDataHash (SHA-256)",
            "the chunk id recomputes from its link, hash and index",
            "the chunk is signed with the chain key (Ed25519)",
            "its inclusion path leads to the signed Merkle root",
        ] {
            assert!(
                checks.iter().any(|(ok, text)| *ok && text.ends_with(what)),
                "passed: {what}: {checks:#?}"
            );
        }
        assert!(checks.iter().all(|(ok, _)| *ok), "{checks:#?}");
        b.snapshot("listing-verified-1280x800").await.unwrap();
        assert_clean(&b, &origin).await;
    });

    // One byte of the stored ciphertext flipped, behind the server's back.
    let mut bytes = server.object(&sample);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    server.put_object(&sample, &bytes);

    block_on(async {
        // Again, from the keyboard this time: Enter on the focused button.
        b.js(
            "document.getElementById('verify-result').replaceChildren(); \
              document.activeElement && document.activeElement.blur(); return null;",
        )
        .await
        .unwrap();
        b.tab_to("button.verify", 60).await.unwrap();
        b.client()
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Enter.to_string())
            .await
            .unwrap();
        let (verdict_shown, summary, checks) = verdict(&b).await;
        assert_eq!(verdict_shown, "failed", "{summary}: {checks:#?}");
        assert!(summary.starts_with("Not verified"), "{summary}");
        let failed: Vec<&str> = checks
            .iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, text)| text.as_str())
            .collect();
        assert_eq!(
            failed,
            ["✗ the sample's ciphertext hashes to the envelope's encryptedDataHash (SHA-256)"],
            "the failure names the ciphertext hash"
        );
        b.snapshot("listing-tampered-1280x800").await.unwrap();

        // An inline script is blocked by the page's Content-Security-Policy.
        assert_clean(&b, &origin).await;
        let blocked = b
            .client()
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 document.addEventListener('securitypolicyviolation', \
                   (e) => done({directive: e.effectiveDirective, blocked: e.blockedURI}), {once: true}); \
                 const s = document.createElement('script'); \
                 s.textContent = 'window.__inlineRan = true;'; \
                 document.body.append(s);",
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            blocked,
            json!({"directive": "script-src-elem", "blocked": "inline"})
        );
        let recorded = b.js("return window.__violations;").await.unwrap();
        assert_eq!(
            recorded.as_array().map(Vec::len),
            Some(1),
            "the recorder injected before the page's scripts saw it: {recorded}"
        );
        assert_eq!(
            b.js("return window.__inlineRan === undefined;")
                .await
                .unwrap(),
            true,
            "the inline script did not run"
        );
        let log = b.console_log().await.unwrap();
        assert!(
            log.iter().any(|e| e["level"] == "SEVERE"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Content Security Policy"))),
            "{log:?}"
        );

        // A refused search parameter, shown next to its field.
        b.client().goto(&format!("{origin}/")).await.unwrap();
        let c = b.client();
        c.find(Locator::Css("#minPrice"))
            .await
            .unwrap()
            .send_keys("abc")
            .await
            .unwrap();
        c.find(Locator::Css("form.search button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.wait_until("location.search.includes('minPrice=abc')")
            .await
            .unwrap();
        let field = b
            .js("const input = document.getElementById('minPrice'); \
                 const error = document.getElementById(input.getAttribute('aria-describedby')); \
                 const a = input.getBoundingClientRect(), e = error && error.getBoundingClientRect(); \
                 return {invalid: input.getAttribute('aria-invalid'), value: input.value, \
                   message: error && error.textContent, \
                   adjacent: input.nextElementSibling === error, \
                   sameField: error && error.parentElement === input.parentElement, \
                   gap: e && e.top - a.bottom, visible: e && e.height > 0};")
            .await
            .unwrap();
        assert_eq!(field["invalid"], "true", "{field}");
        assert_eq!(field["value"], "abc", "{field}");
        assert_eq!(field["adjacent"], true, "{field}");
        assert_eq!(field["sameField"], true, "{field}");
        assert_eq!(field["visible"], true, "{field}");
        let gap = field["gap"].as_f64().unwrap();
        assert!(
            (0.0..=16.0).contains(&gap),
            "right under the field: {field}"
        );
        assert!(
            field["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{field}"
        );
        assert_clean(&b, &origin).await;
        photograph(&b, "catalog-refused").await;

        // The other listing's page, its long words wrapped on a phone.
        b.client()
            .goto(&format!("{origin}/listings/{}", other.listing_id))
            .await
            .unwrap();
        let description = b
            .client()
            .find(Locator::Css(".description"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(description.contains(&long_word), "{description}");
        assert_clean(&b, &origin).await;
        photograph(&b, "listing-long-words").await;
    });
    block_on(b.close()).unwrap();
    println!(
        "seeded in {seeded:?}; in Chromium {:?}; total {:?}",
        in_browser.elapsed(),
        started.elapsed()
    );
}
