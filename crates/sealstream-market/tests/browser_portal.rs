//! The signed-in pages in headless Chromium (issue 20): a whole sale made
//! by people in a browser, with the keys where they belong.
//!
//! - A seller signs in with a one-time link made by `sealstream market
//!   login --web` (the CLI, with the seller's key file), makes a dataset of
//!   a chain range through the form (a draft; the command the page prints
//!   completes it on the seller's machine, where the keys are: the test
//!   runs it), makes a listing through the form and publishes it.
//! - A buyer signs in with Sign-In with Ethereum through an injected
//!   EIP-1193 test wallet (`tests/support/test_wallet.js`: a page script
//!   the test injects before the page's own, signing with a test key in
//!   the page), finds the listing in the catalog, orders it on the invoice
//!   rail with their X25519 key.
//! - The seller marks the order paid on the Sales page; the seller's grant
//!   daemon (`market grant-daemon --once`) grants it.
//! - The buyer makes a download link on the Buyer page and downloads the
//!   release manifest through it, and downloads the signed receipt, which
//!   `sealstream receipt verify` accepts.
//! - An auditor (and admin) signs in with a link and sees the audit log's
//!   signed head, the one the API signs, verified; the admin page lists
//!   principals and their roles.
//!
//! Every form's server-side refusal is shown next to its field (dataset
//! range, listing price, order key, invoice reference, admin role); no
//! page loads anything from another origin; every page fits 390 and 1280
//! pixel wide screens (screenshots in the printed directory).

mod common;

use std::path::Path;
use std::process::Command;

use common::orders_fixtures::{invoice_rail, sale};
use common::{block_on, Db, TestServer};
use sealstream_core::identity::Did;
use sealstream_core::keys::{MachineSigningKey, RecipientSecretKey};
use sealstream_market::auth::Role;
use sealstream_testkit::binary::{run_ok, sealstream};
use sealstream_testkit::browser::fantoccini::Locator;
use sealstream_testkit::browser::Browser;
use serde_json::{json, Value};

/// The server's own Keccak/secp256k1 module and the test wallet on it.
const SECP256K1_JS: &str = include_str!("../static/secp256k1.js");
const WALLET_JS: &str = include_str!("support/test_wallet.js");

/// The wallet as one classic script (the module's `export`s dropped, both
/// in one function scope) holding `secret_hex`.
fn wallet_script(secret_hex: &str) -> String {
    let library = SECP256K1_JS.replace("\nexport ", "\n");
    let wallet = WALLET_JS.replace("__SECRET_KEY_HEX__", secret_hex);
    format!("(() => {{\n{library}\n{wallet}\n}})();")
}

/// The viewports every page is checked and photographed at.
const VIEWPORTS: [(u32, u32); 2] = [(390, 844), (1280, 800)];

/// A `sealstream` command against `server`.
fn cli(server: &TestServer, args: &[&str]) -> Command {
    let mut c = sealstream();
    c.args(args).env("SEALSTREAM_SERVER", &server.base);
    c
}

/// A one-time web sign-in link made by the CLI with `key_file`.
fn login_link(server: &TestServer, key_file: &Path) -> String {
    let out = run_ok(
        cli(
            server,
            &[
                "market",
                "login",
                "--web",
                "--server",
                &server.base,
                "--key-file",
                key_file.to_str().unwrap(),
            ],
        ),
        "market login --web",
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        url.starts_with(&format!("{}/signin/link?token=", server.base)),
        "{url}"
    );
    url
}

fn write_key(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Checks the page: nothing from another origin, and it fits phones and
/// desktops (a screenshot of each). Leaves the desktop viewport set.
async fn check_page(b: &Browser, origin: &str, name: &str) {
    let foreign = b.foreign_requests(origin).await.unwrap();
    let page = b.client().current_url().await.unwrap();
    assert!(foreign.is_empty(), "{page} loaded {foreign:?}");
    for (w, h) in VIEWPORTS {
        b.set_viewport(w, h).await.unwrap();
        b.snapshot(&format!("{name}-{w}x{h}")).await.unwrap();
        b.assert_no_horizontal_overflow().await.unwrap();
    }
}

/// Sets the field `css` to `value` (typed, or chosen for a select).
async fn fill(b: &Browser, css: &str, value: &str) {
    let c = b.client();
    let el = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    if el.tag_name().await.unwrap() == "select" {
        el.select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("{css} = {value}: {e}"));
    } else {
        el.clear().await.unwrap();
        el.send_keys(value).await.unwrap();
    }
}

/// Clicks the submit button of the form `form` (an id) and waits for the
/// next page (the old document's marker gone, the new one loaded).
async fn submit(b: &Browser, form: &str) {
    b.js("window.__oldPage = true; return null;").await.unwrap();
    b.client()
        .find(Locator::Css(&format!("#{form} button[type=submit]")))
        .await
        .unwrap_or_else(|e| panic!("{form}: {e}"))
        .click()
        .await
        .unwrap();
    next_page(b).await;
}

/// Clicks the button with text `label` (a small form) and waits for the
/// next page.
async fn press(b: &Browser, label: &str) {
    b.js("window.__oldPage = true; return null;").await.unwrap();
    let xpath = format!(
        "//button[normalize-space(.)={}]",
        Value::String(label.into())
    );
    b.client()
        .find(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|e| panic!("button {label}: {e}"))
        .click()
        .await
        .unwrap();
    next_page(b).await;
}

async fn next_page(b: &Browser) {
    b.wait_until("window.__oldPage === undefined && document.readyState === 'complete'")
        .await
        .unwrap();
}

async fn goto(b: &Browser, url: &str) {
    b.client().goto(url).await.unwrap();
}

/// The error shown for field `name` of form `form`: it must be right
/// under the field, named by its `aria-describedby`, the field marked
/// invalid.
async fn field_error(b: &Browser, form: &str, name: &str) -> String {
    let id = format!("{form}-{name}");
    let field = b
        .js(&format!(
            "const input = document.getElementById({id}); \
             if (!input) return null; \
             const error = document.getElementById(input.getAttribute('aria-describedby')); \
             return {{invalid: input.getAttribute('aria-invalid'), \
               message: error && error.textContent, \
               sameField: !!error && error.parentElement === input.parentElement, \
               below: !!error && error.getBoundingClientRect().top >= input.getBoundingClientRect().bottom}};",
            id = Value::String(id.clone())
        ))
        .await
        .unwrap();
    assert_eq!(field["invalid"], "true", "{id}: {field}");
    assert_eq!(field["sameField"], true, "{id}: {field}");
    assert_eq!(field["below"], true, "{id}: {field}");
    field["message"].as_str().unwrap().to_string()
}

async fn text_of(b: &Browser, css: &str) -> String {
    b.client()
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Signs in with a one-time link: opens it, presses Continue.
async fn sign_in_with_link(b: &Browser, url: &str) {
    goto(b, url).await;
    submit_button(b, "#link-continue").await;
    if b.wait_until("location.pathname === '/portal'")
        .await
        .is_err()
    {
        let shown = b
            .js("return location.href + ': ' + document.body.innerText;")
            .await
            .unwrap();
        panic!("not signed in with the link: {shown}");
    }
}

async fn submit_button(b: &Browser, css: &str) {
    b.js("window.__oldPage = true; return null;").await.unwrap();
    b.client()
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    next_page(b).await;
}

async fn sign_out(b: &Browser) {
    press(b, "Sign out").await;
    b.wait_until("location.pathname === '/'").await.unwrap();
}

async fn sign_in_with_wallet(b: &Browser, origin: &str) {
    goto(b, &format!("{origin}/signin")).await;
    b.js("window.__oldPage = true; return null;").await.unwrap();
    b.client()
        .find(Locator::Css("#wallet-signin"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_until("window.__oldPage === undefined && location.pathname === '/portal'")
        .await
        .unwrap();
}

#[test]
fn a_seller_and_a_buyer_trade_through_the_portal_in_chromium() {
    let server = TestServer::start(Db::Sqlite);
    let origin = server.base.clone();
    let keys = tempfile::tempdir().unwrap();
    // The seller: a machine's chain of 6 chunks on the market (and a first
    // listing of all of it).
    let s = sale(&server, 6, "100", invoice_rail());
    let owner_key = write_key(
        keys.path(),
        "owner.secp256k1.sk",
        &s.owner_key.to_hex_secret(),
    );
    let owner_x25519 = write_key(
        keys.path(),
        "owner.x25519.sk",
        &s.owner_recipient.to_hex_secret(),
    );
    // The buyer: a wallet key, and an X25519 pair for the data.
    let buyer_key = MachineSigningKey::generate();
    let buyer_did = Did::of_key(&buyer_key).to_string();
    let buyer_x25519 = RecipientSecretKey::generate();
    let wallet = wallet_script(buyer_key.to_hex_secret().trim_start_matches("0x"));
    // The auditor, also an admin.
    let auditor = MachineSigningKey::generate();
    let auditor_did = Did::of_key(&auditor).to_string();
    server.session_for(&auditor_did, &[Role::Auditor, Role::Admin]);
    let auditor_key = write_key(
        keys.path(),
        "auditor.secp256k1.sk",
        &auditor.to_hex_secret(),
    );

    let b = block_on(Browser::start()).unwrap();
    println!("screenshots: {}", b.screenshots_dir().display());
    block_on(b.inject_on_new_document(&wallet)).unwrap();

    // 1. The seller signs in with a link and makes a dataset through the form.
    let link = login_link(&server, &owner_key);
    let listing_title = "Lidar scans, first three";
    block_on(async {
        sign_in_with_link(&b, &link).await;
        assert!(text_of(&b, ".who").await.contains(&s.owner_did));
        check_page(&b, &origin, "portal").await;
        goto(&b, &format!("{origin}/portal/seller")).await;
        let chains = text_of(&b, "#machines").await;
        assert!(
            chains.contains(&s.topic) && chains.contains(&s.machine.did),
            "{chains}"
        );
        // A range the form refuses: the error at its field.
        fill(&b, "#dataset-form-topic", &s.topic).await;
        fill(&b, "#dataset-form-fromIndex", "first").await;
        fill(&b, "#dataset-form-toIndex", "2").await;
        submit(&b, "dataset-form").await;
        let error = field_error(&b, "dataset-form", "fromIndex").await;
        assert!(error.contains("whole number"), "{error}");
        // The server's own refusal of a range past the chain's end.
        fill(&b, "#dataset-form-fromIndex", "0").await;
        fill(&b, "#dataset-form-toIndex", "60").await;
        submit(&b, "dataset-form").await;
        let error = field_error(&b, "dataset-form", "toIndex").await;
        assert!(!error.is_empty());
        fill(&b, "#dataset-form-toIndex", "2").await;
        submit(&b, "dataset-form").await;
        assert_eq!(text_of(&b, ".notice").await, "Dataset created.");
        check_page(&b, &origin, "seller").await;
    });
    // The page's command completes the draft on the seller's machine.
    let command = block_on(text_of(&b, "#datasets pre code"));
    assert!(
        command.starts_with("sealstream market dataset create --machine-did"),
        "{command}"
    );
    assert!(command.contains("--from-index 0 --to-index 2"), "{command}");
    let dataset = run_ok(
        cli(
            &server,
            &[
                "market",
                "dataset",
                "create",
                "--server",
                &origin,
                "--machine-did",
                &s.machine.did,
                "--topic",
                &s.topic,
                "--from-index",
                "0",
                "--to-index",
                "2",
                "--key-file",
                owner_key.to_str().unwrap(),
                "--owner-private-key-file",
                owner_x25519.to_str().unwrap(),
            ],
        ),
        "market dataset create",
    );
    let dataset_id = String::from_utf8(dataset.stdout)
        .unwrap()
        .trim()
        .to_string();
    assert!(dataset_id.starts_with("ds_"), "{dataset_id}");

    // 2. A listing through the form, published.
    let listing_id = block_on(async {
        goto(&b, &format!("{origin}/portal/seller")).await;
        let state = text_of(&b, "#datasets table").await;
        assert!(
            state.contains(&format!("signed by {}", s.owner_did)),
            "{state}"
        );
        fill(&b, "#listing-form-datasetId", &dataset_id).await;
        fill(&b, "#listing-form-title", listing_title).await;
        fill(
            &b,
            "#listing-form-description",
            "Three scans from the warehouse robot.",
        )
        .await;
        fill(&b, "#listing-form-tags", "lidar, warehouse").await;
        fill(&b, "#listing-form-license", "CC-BY-4.0").await;
        fill(&b, "#listing-form-price", "2.505").await;
        submit(&b, "listing-form").await;
        let error = field_error(&b, "listing-form", "price").await;
        assert!(error.contains("at most 2 digits"), "{error}");
        // The typed values are kept.
        let kept = b
            .js("return document.getElementById('listing-form-title').value;")
            .await
            .unwrap();
        assert_eq!(kept, listing_title);
        fill(&b, "#listing-form-price", "2.50").await;
        submit(&b, "listing-form").await;
        assert_eq!(text_of(&b, ".notice").await, "Listing created as a draft.");
        check_page(&b, &origin, "seller-listing").await;
        // The edit form's refusals are at their fields too.
        fill(&b, "#edit-form-price", "free").await;
        submit(&b, "edit-form").await;
        let error = field_error(&b, "edit-form", "price").await;
        assert!(error.contains("an amount such as 4.90"), "{error}");
        fill(&b, "#edit-form-price", "2.50").await;
        fill(&b, "#edit-form-samples", "1, x").await;
        submit(&b, "edit-form").await;
        let error = field_error(&b, "edit-form", "samples").await;
        assert!(error.contains("not a chunk index"), "{error}");
        let path = b.js("return location.pathname;").await.unwrap();
        path.as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    });
    // A sample: its key disclosed on the seller's machine, as the edit
    // form's hint says.
    let samples = keys.path().join("samples.json");
    std::fs::write(&samples, r#"{"sampleChunkIndexes": [1]}"#).unwrap();
    run_ok(
        cli(
            &server,
            &[
                "market",
                "listing",
                "edit",
                &listing_id,
                "--server",
                &origin,
                "--listing",
                samples.to_str().unwrap(),
                "--key-file",
                owner_key.to_str().unwrap(),
                "--owner-private-key-file",
                owner_x25519.to_str().unwrap(),
            ],
        ),
        "market listing edit (samples)",
    );
    block_on(async {
        goto(&b, &format!("{origin}/portal/seller/listings/{listing_id}")).await;
        let samples = b
            .js("return document.getElementById('edit-form-samples').value;")
            .await
            .unwrap();
        assert_eq!(samples, "1");
        press(&b, "Publish").await;
        assert_eq!(
            text_of(&b, ".notice").await,
            "Listing published: it is in the catalog."
        );
        sign_out(&b).await;
    });
    let (status, view) = server.get(&format!("/v1/listings/{listing_id}"), None);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "published");
    assert_eq!(view["datasetId"], dataset_id.as_str());
    assert_eq!(view["price"], "250");

    // 3. The buyer signs in with the injected wallet, finds and orders it.
    block_on(async {
        goto(&b, &format!("{origin}/signin")).await;
        check_page(&b, &origin, "signin").await;
        sign_in_with_wallet(&b, &origin).await;
        assert!(
            text_of(&b, ".who").await.contains(&buyer_did),
            "signed in as the wallet's key"
        );
        goto(&b, &format!("{origin}/?q=first+three")).await;
        b.client()
            .find(Locator::LinkText(listing_title))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.wait_until(&format!("location.pathname === '/listings/{listing_id}'"))
            .await
            .unwrap();
        // The seller signed this dataset with their own key (EIP-191): the
        // page recovers the signer with its secp256k1 and checks it is the
        // card's seller, and the chunk against the chain key.
        b.client()
            .find(Locator::Css("button.verify"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let shown = b
            .wait_until(
                "(() => { const v = document.querySelector('#verify-result [data-verdict]'); \
                 return v && {verdict: v.dataset.verdict, \
                   checks: [...document.querySelectorAll('#verify-result li')].map(li => li.textContent)}; })()",
            )
            .await
            .unwrap();
        assert_eq!(shown["verdict"], "verified", "{shown}");
        let seller_signed = format!(
            "✓ the dataset manifest (its Merkle root) is signed by {}, the listing's seller (EIP-191, secp256k1)",
            s.owner_did
        );
        assert!(
            shown["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == &json!(seller_signed)),
            "{shown}"
        );
        check_page(&b, &origin, "listing-seller-signed").await;
        b.client()
            .find(Locator::LinkText("Buy"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.wait_until(&format!("location.pathname === '/portal/buy/{listing_id}'"))
            .await
            .unwrap();
        check_page(&b, &origin, "buy").await;
        fill(&b, "#order-form-buyerPublicKeyHex", "not a key").await;
        submit(&b, "order-form").await;
        let error = field_error(&b, "order-form", "buyerPublicKeyHex").await;
        assert!(!error.is_empty());
        fill(
            &b,
            "#order-form-buyerPublicKeyHex",
            &buyer_x25519.public_key().to_hex(),
        )
        .await;
        submit(&b, "order-form").await;
        assert_eq!(
            text_of(&b, ".notice").await,
            "Order placed: pay as its instructions say."
        );
        let orders = text_of(&b, "#orders table").await;
        assert!(
            orders.contains("awaiting-payment") && orders.contains("2.5 EUR"),
            "{orders}"
        );
        check_page(&b, &origin, "buyer").await;
        sign_out(&b).await;
    });
    let (_, list) = server.get("/v1/orders?as=seller", Some(&s.owner));
    let order_id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["listingId"] == listing_id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // 4. The seller marks it paid on the Sales page.
    let link = login_link(&server, &owner_key);
    block_on(async {
        sign_in_with_link(&b, &link).await;
        goto(&b, &format!("{origin}/portal/sales")).await;
        let form = format!("paid-{order_id}");
        submit(&b, &form).await;
        let error = field_error(&b, &form, "reference").await;
        assert!(error.contains("1 to 200 characters"), "{error}");
        fill(&b, &format!("#{form}-reference"), "INV-2026-0042").await;
        submit(&b, &form).await;
        assert_eq!(text_of(&b, ".notice").await, "Order marked paid.");
        assert!(text_of(&b, "#grants")
            .await
            .contains("1 paid order(s) await a grant."));
        assert!(text_of(&b, "#revenue").await.contains("2.5 EUR"));
        check_page(&b, &origin, "sales").await;
    });
    // The seller's grant daemon, on the seller's machine.
    run_ok(
        cli(
            &server,
            &[
                "market",
                "grant-daemon",
                "--server",
                &origin,
                "--key-file",
                owner_key.to_str().unwrap(),
                "--owner-private-key-file",
                owner_x25519.to_str().unwrap(),
                "--once",
            ],
        ),
        "market grant-daemon --once",
    );
    block_on(async {
        goto(&b, &format!("{origin}/portal/sales")).await;
        assert!(text_of(&b, "#grants")
            .await
            .contains("0 paid order(s) await a grant."));
        sign_out(&b).await;
    });

    // 5. The buyer makes a download link, downloads through it, and gets
    // the receipt.
    let receipt = block_on(async {
        sign_in_with_wallet(&b, &origin).await;
        goto(&b, &format!("{origin}/portal/buyer")).await;
        assert!(text_of(&b, "#orders table").await.contains("granted"));
        press(&b, "Make a download link").await;
        let url = text_of(&b, "#once-link").await;
        assert!(
            url.starts_with(&format!("{origin}/v1/orders/{order_id}/release")),
            "{url}"
        );
        let manifest_url = url.replacen("/release?", "/release/manifest.json?", 1);
        let revoked_url = manifest_url.clone();
        let fetched = b
            .client()
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 fetch(arguments[0]).then(async r => done({status: r.status, body: await r.json()})) \
                   .catch(e => done({error: String(e)}));",
                vec![Value::String(manifest_url)],
            )
            .await
            .unwrap();
        assert_eq!(fetched["status"], 200, "{fetched}");
        assert_eq!(
            fetched["body"]["files"].as_array().map(|f| f.len() >= 3),
            Some(true),
            "{fetched}"
        );
        let receipt = b
            .client()
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 fetch(arguments[0]).then(async r => done({status: r.status, \
                   disposition: r.headers.get('content-disposition'), text: await r.text()}));",
                vec![Value::String(format!(
                    "/portal/orders/{order_id}/receipt.json"
                ))],
            )
            .await
            .unwrap();
        assert_eq!(receipt["status"], 200, "{receipt}");
        assert!(
            receipt["disposition"]
                .as_str()
                .unwrap()
                .starts_with("attachment"),
            "{receipt}"
        );
        check_page(&b, &origin, "buyer-link").await;
        // Revoke it: a malformed id is refused at its field; then the link
        // stops working.
        let shown = text_of(&b, ".once").await;
        let link_id = shown
            .split_whitespace()
            .find(|w| w.starts_with("lnk_"))
            .unwrap()
            .to_string();
        fill(&b, "#revoke-form-order", &order_id).await;
        fill(&b, "#revoke-form-link", "link-1").await;
        submit(&b, "revoke-form").await;
        let error = field_error(&b, "revoke-form", "link").await;
        assert!(error.contains("lnk_"), "{error}");
        fill(&b, "#revoke-form-link", &link_id).await;
        submit(&b, "revoke-form").await;
        assert_eq!(text_of(&b, ".notice").await, "Download link revoked.");
        let refused = b
            .client()
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 fetch(arguments[0]).then(r => done(r.status));",
                vec![Value::String(revoked_url.clone())],
            )
            .await
            .unwrap();
        assert!(
            refused == 401 || refused == 404 || refused == 403,
            "{refused}"
        );
        sign_out(&b).await;
        receipt["text"].as_str().unwrap().to_string()
    });
    let receipt_file = keys.path().join("receipt.json");
    std::fs::write(&receipt_file, &receipt).unwrap();
    let server_key = run_ok(
        cli(&server, &["market", "receipt", "key", "--server", &origin]),
        "market receipt key",
    );
    let server_key = String::from_utf8(server_key.stdout)
        .unwrap()
        .trim()
        .to_string();
    run_ok(
        cli(
            &server,
            &[
                "receipt",
                "verify",
                receipt_file.to_str().unwrap(),
                "--server-key",
                &server_key,
            ],
        ),
        "receipt verify",
    );
    let receipt: Value = serde_json::from_str(&receipt).unwrap();
    assert!(receipt.to_string().contains(&order_id), "{receipt}");

    // 6. The auditor sees the signed audit head, verified; the admin page.
    let link = login_link(&server, &auditor_key);
    block_on(sign_in_with_link(&b, &link));
    let auditor_token = server.session_for(&auditor_did, &[]);
    let (_, api_head) = server.get("/v1/audit/head", Some(&auditor_token));
    block_on(async {
        goto(&b, &format!("{origin}/portal/audit")).await;
        let head = text_of(&b, "#head").await;
        assert!(
            head.contains(api_head["head"].as_str().unwrap()),
            "{head}\n{api_head}"
        );
        assert!(head.contains("verified:"), "{head}");
        check_page(&b, &origin, "audit").await;
        goto(&b, &format!("{origin}/portal/admin")).await;
        let people = text_of(&b, "#principals table").await;
        assert!(
            people.contains(&buyer_did) && people.contains(&s.owner_did),
            "{people}"
        );
        fill(&b, "#role-form-did", "did:peaq:0xnope").await;
        submit(&b, "role-form").await;
        let error = field_error(&b, "role-form", "did").await;
        assert!(!error.is_empty());
        fill(&b, "#role-form-did", &buyer_did).await;
        fill(&b, "#role-form-role", "auditor").await;
        submit(&b, "role-form").await;
        assert_eq!(text_of(&b, ".notice").await, "Role granted.");
        check_page(&b, &origin, "admin").await;
        let severe: Vec<Value> = b
            .console_log()
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .filter(|e| {
                // The refused forms above answer 400, and the revoked
                // link 404, as they should.
                !(e["source"] == "network"
                    && e["message"].as_str().is_some_and(|m| {
                        m.contains("status of 400")
                            || m.contains("/release/manifest.json") && m.contains("status of 404")
                    }))
            })
            .collect();
        assert!(severe.is_empty(), "console errors: {severe:?}");
    });
    let (_, roles) = server.get("/v1/me", Some(&server.session_for(&buyer_did, &[])));
    assert!(
        roles["roles"]
            .as_array()
            .unwrap()
            .contains(&json!("auditor")),
        "{roles}"
    );
    block_on(b.close()).unwrap();
}
