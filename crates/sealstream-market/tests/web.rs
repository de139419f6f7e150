//! The web pages on both databases (HTTP level; the browser tests of
//! issue 20 come with the portals): the catalog and a listing page render
//! published listings only, with every text escaped; a search parameter the
//! catalog refuses is shown next to its field; every page carries the
//! strict Content-Security-Policy and loads nothing but the server's own
//! stylesheet and script; the sitemap lists the published listings; a
//! session changes nothing on a page (they are not in the authorization
//! matrix, which covers the API's documented routes: this is their row).

mod common;

use common::listings_fixtures::{listing_body, owner, publish, signed_dataset};
use common::{Db, TestServer};
use sealstream_market::web::CSP;
use sealstream_testkit::http;
use sealstream_testkit::on_both_databases;
use serde_json::json;

fn page(server: &TestServer, path: &str) -> http::Answer {
    http::send(server.request("GET", path, None))
}

/// Every `src` and `href` of `html` (the page's own references).
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            out.push(part.split('"').next().unwrap_or_default().to_string());
        }
    }
    out
}

fn catalog_and_listing_pages(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let (_, ds) = signed_dataset(&server, &alice.did, "/soil", 3);
    let mut body = listing_body(&ds, "Soil <script>alert(1)</script> & moisture");
    body["description"] = json!("Readings \"quoted\" <b>bold</b>.");
    body["sampleChunkIndexes"] = json!([]);
    let id = publish(&server, &alice.token, &body);
    // A draft is on no page.
    let draft = listing_body(&ds, "Unpublished draft");
    let (status, created) = server.send("POST", "/v1/listings", Some(&alice.token), &draft);
    assert_eq!(status, 201, "{created}");
    let draft_id = created["id"].as_str().unwrap().to_string();

    let catalog = page(&server, "/");
    assert_eq!(catalog.status, 200);
    assert_eq!(catalog.header("content-security-policy"), Some(CSP));
    assert_eq!(catalog.header("x-content-type-options"), Some("nosniff"));
    assert!(catalog.content_type().starts_with("text/html"));
    let html = catalog.text();
    assert!(html.contains(&format!("href=\"/listings/{id}\"")), "{html}");
    assert!(!html.contains(&draft_id));
    assert!(!html.contains("<script>alert"), "escaped: {html}");
    assert!(
        html.contains("Soil &#60;script&#62;alert(1)&#60;/script&#62; &#38; moisture"),
        "{html}"
    );
    for r in references(&html) {
        assert!(
            r.starts_with('/') || r.starts_with("data:") || r.starts_with('#'),
            "{r}"
        );
    }
    // Search: words, and a refused parameter shown at its field.
    let found = page(&server, "/?q=moisture").text();
    assert!(found.contains(&id));
    let none = page(&server, "/?q=volcano").text();
    assert!(none.contains("No listing matches."), "{none}");
    let refused = page(&server, "/?minPrice=cheap");
    assert_eq!(refused.status, 400);
    let html = refused.text();
    assert!(html.contains("id=\"minPrice\" name=\"minPrice\" inputmode=\"numeric\" value=\"cheap\" aria-invalid=\"true\" aria-describedby=\"minPrice-error\""), "{html}");
    assert!(
        html.contains("<p class=\"error\" id=\"minPrice-error\">"),
        "{html}"
    );

    // The listing page: its terms, dataset and card, escaped.
    let listing = page(&server, &format!("/listings/{id}"));
    assert_eq!(listing.status, 200);
    assert_eq!(listing.header("content-security-policy"), Some(CSP));
    let html = listing.text();
    assert!(html.contains("<title>Soil &#60;script&#62;"), "{html}");
    assert!(
        html.contains("Readings &#34;quoted&#34; &#60;b&#62;bold&#60;/b&#62;."),
        "{html}"
    );
    assert!(html.contains("<script type=\"module\" src=\"/static/verify.js\"></script>"));
    assert!(html.contains("Merkle root"));
    let (_, card) = server.get(&format!("/v1/listings/{id}/card"), None);
    assert!(
        html.contains(card["sellerKey"].as_str().unwrap()),
        "the chain key: {html}"
    );
    assert!(!html.contains("<script>alert"));
    // A draft or unknown listing: a 404 page, not JSON.
    for missing in [draft_id.as_str(), "ls_nope"] {
        let gone = page(&server, &format!("/listings/{missing}"));
        assert_eq!(gone.status, 404);
        assert!(gone.content_type().starts_with("text/html"));
        assert!(gone.text().contains("No such listing"));
    }

    // The pages read as an anonymous caller whoever asks: a session shows
    // nothing more (the owner's own draft stays hidden), and no page sets
    // a cookie.
    for path in [
        "/".to_string(),
        format!("/listings/{id}"),
        format!("/listings/{draft_id}"),
    ] {
        let anonymous = page(&server, &path);
        let owner = http::send(server.request("GET", &path, Some(&alice.token)));
        assert_eq!(
            (owner.status, owner.text()),
            (anonymous.status, anonymous.text()),
            "{path}"
        );
        assert_eq!(owner.header("set-cookie"), None, "{path}");
    }

    // Assets, robots, sitemap.
    let css = page(&server, "/static/portal.css");
    assert_eq!((css.status, css.content_type()), (200, "text/css"));
    let js = page(&server, "/static/verify.js");
    assert_eq!(js.status, 200);
    assert!(js.content_type().starts_with("text/javascript"));
    assert!(js.text().contains("crypto.subtle"));
    assert_eq!(page(&server, "/static/../Cargo.toml").status, 404);
    let sitemap = page(&server, "/sitemap.xml").text();
    assert!(
        sitemap.contains(&format!("/listings/{id}</loc>")),
        "{sitemap}"
    );
    assert!(!sitemap.contains(&draft_id));
    assert!(page(&server, "/robots.txt")
        .text()
        .contains("Disallow: /v1/"));
}

on_both_databases!(catalog_and_listing_pages);
