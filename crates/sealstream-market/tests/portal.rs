//! The signed-in web pages at the HTTP level, on both databases (the
//! browser tests drive the same pages in Chromium): a web link signs in
//! once; the wallet route signs in with a SIWE message; the session lives
//! in an HttpOnly SameSite=Strict cookie that the JSON API ignores; every
//! form post needs the session's CSRF token and the server's own origin;
//! a refused form comes back with the error next to its field; a listing
//! made and published through the forms is in the catalog; signing out
//! ends the session. Role pages refuse principals without the role.

mod common;

use common::listings_fixtures::{owner, signed_dataset};
use common::{Db, TestServer};
use sealstream_core::identity::{eip191_sign, Did};
use sealstream_core::keys::MachineSigningKey;
use sealstream_testkit::http::{self, client_without_redirects, Answer};
use sealstream_testkit::on_both_databases;
use serde_json::json;

/// A browser's view of one session: the cookie it holds.
struct Browser<'a> {
    server: &'a TestServer,
    cookie: Option<String>,
}

impl Browser<'_> {
    fn get(&self, path: &str) -> Answer {
        let mut r = client_without_redirects().get(format!("{}{path}", self.server.base));
        if let Some(c) = &self.cookie {
            r = r.header("Cookie", c);
        }
        http::send(r)
    }

    fn post(&self, path: &str, origin: Option<&str>, form: &[(&str, &str)]) -> Answer {
        let body: Vec<String> = form
            .iter()
            .map(|(n, v)| format!("{}={}", http::path_segment(n), http::path_segment(v)))
            .collect();
        let mut r = client_without_redirects()
            .post(format!("{}{path}", self.server.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        if let Some(c) = &self.cookie {
            r = r.header("Cookie", c);
        }
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        http::send(r)
    }

    /// The CSRF token of a page's forms.
    fn csrf(&self, path: &str) -> String {
        let html = self.get(path).text();
        let at = html
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field on {path}: {html}"));
        html[at + 19..at + 19 + 32].to_string()
    }
}

/// The `name=value` of the session cookie a `Set-Cookie` sets, after
/// checking its attributes.
fn session_cookie(answer: &Answer) -> String {
    let set = answer
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no cookie: {answer:?}"));
    assert!(set.starts_with("sealstream_session="), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    set.split(';').next().unwrap().to_string()
}

fn web_link_signs_in_once(db: Db) {
    let server = TestServer::start(db);
    let origin = server.base.clone();
    let alice = owner(&server);
    let (status, link) = server.send("POST", "/v1/auth/web-link", Some(&alice.token), &json!({}));
    assert_eq!(status, 200, "{link}");
    let url = link["url"].as_str().unwrap();
    let prefix = format!("{}/signin/link?token=", server.base);
    assert!(url.starts_with(&prefix), "{url}");
    let token = &url[prefix.len()..];
    // The link is not a bearer token, nor is its stored hash's preimage.
    assert_eq!(server.get("/v1/me", Some(token)).0, 401);
    let disguised = format!("sealstream web link v1:{token}");
    assert_eq!(server.get("/v1/me", Some(&disguised)).0, 401);

    let anonymous = Browser {
        server: &server,
        cookie: None,
    };
    // Opening the link does not use it: a button does.
    let opened = anonymous.get(&format!("/signin/link?token={token}"));
    assert_eq!(opened.status, 200);
    assert_eq!(opened.header("cache-control"), Some("no-store"));
    let html = opened.text();
    assert!(html.contains(&format!("name=\"token\" value=\"{token}\"")));
    // It says whom it signs in.
    assert!(
        html.contains(&format!("id=\"link-did\">{}</span>", alice.did)),
        "{html}"
    );
    assert!(!html.contains("link-other"));
    // From another site's page: refused, and the link still works.
    let foreign = anonymous.post(
        "/signin/link",
        Some("http://evil.example"),
        &[("token", token)],
    );
    assert_eq!(foreign.status, 403);
    let used = anonymous.post("/signin/link", Some(&origin), &[("token", token)]);
    assert_eq!(used.status, 303, "{}", used.text());
    assert_eq!(used.header("location"), Some("/portal"));
    let cookie = session_cookie(&used);
    // Once only.
    let again = anonymous.post("/signin/link", Some(&origin), &[("token", token)]);
    assert_eq!(again.status, 401);
    assert!(again.text().contains("used already or has expired"));
    assert_eq!(
        anonymous.get(&format!("/signin/link?token={token}")).status,
        401,
        "a used link's page says so"
    );

    let alice_web = Browser {
        server: &server,
        cookie: Some(cookie.clone()),
    };
    // Someone else's link opened in Alice's browser warns her.
    let bob = owner(&server);
    let (_, bob_link) = server.send("POST", "/v1/auth/web-link", Some(&bob.token), &json!({}));
    let bob_url = bob_link["url"].as_str().unwrap();
    let warned = alice_web.get(&bob_url[server.base.len()..]).text();
    assert!(
        warned.contains(&bob.did) && warned.contains("id=\"link-other\""),
        "{warned}"
    );
    assert!(warned.contains(&alice.did), "{warned}");
    let portal = alice_web.get("/portal");
    assert_eq!(portal.status, 200);
    let html = portal.text();
    assert!(html.contains(&alice.did), "{html}");
    assert!(html.contains("href=\"/portal/seller\""));
    // The JSON API ignores the cookie.
    let me = http::send(
        http::request("GET", &format!("{}/v1/me", server.base)).header("Cookie", &cookie),
    );
    assert_eq!(me.status, 401);
    // Anonymous portal pages go to the sign-in page.
    let redirected = anonymous.get("/portal/seller");
    assert_eq!(redirected.status, 303);
    assert_eq!(redirected.header("location"), Some("/signin"));
    // Roles: an owner is no auditor or admin, and a post that fails does
    // not show the page either.
    assert_eq!(alice_web.get("/portal/audit").status, 403);
    assert_eq!(alice_web.get("/portal/admin").status, 403);
    let csrf = alice_web.csrf("/portal");
    let refused = alice_web.post(
        "/portal/admin/roles",
        Some(&origin),
        &[
            ("csrf", &csrf),
            ("did", "x"),
            ("role", "admin"),
            ("change", "grant"),
        ],
    );
    assert_eq!(refused.status, 403);
    assert!(
        !refused.text().contains("Principals and roles"),
        "{}",
        refused.text()
    );
    // Nor may a principal without the buyer role order.
    let refused = alice_web.post(
        "/portal/buyer/links/revoke",
        Some(&origin),
        &[("csrf", &csrf), ("order", "ord_1"), ("link", "lnk_1")],
    );
    assert_eq!(refused.status, 403);

    // Sign out: the session ends.
    let csrf = alice_web.csrf("/portal");
    let out = alice_web.post("/signout", Some(&origin), &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(alice_web.get("/portal").status, 303);
}

fn forms_need_the_csrf_token_and_show_errors_at_their_fields(db: Db) {
    let server = TestServer::start(db);
    let origin = server.base.clone();
    let alice = owner(&server);
    let (_, ds) = signed_dataset(&server, &alice.did, "/soil", 3);
    let (_, link) = server.send("POST", "/v1/auth/web-link", Some(&alice.token), &json!({}));
    let token = link["url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    let anonymous = Browser {
        server: &server,
        cookie: None,
    };
    let cookie =
        session_cookie(&anonymous.post("/signin/link", Some(&origin), &[("token", &token)]));
    let web = Browser {
        server: &server,
        cookie: Some(cookie),
    };
    let csrf = web.csrf("/portal/seller");
    let form = |csrf: &str, price: &str| -> Vec<(String, String)> {
        vec![
            ("csrf".into(), csrf.into()),
            ("datasetId".into(), ds.clone()),
            ("title".into(), "Soil moisture <b>2026</b>".into()),
            ("description".into(), "Hourly readings.".into()),
            ("tags".into(), "soil, moisture".into()),
            ("rail".into(), "invoice".into()),
            ("currency".into(), "EUR".into()),
            ("decimals".into(), "2".into()),
            ("price".into(), price.into()),
            ("delivery".into(), "api".into()),
        ]
    };
    fn refs(f: &[(String, String)]) -> Vec<(&str, &str)> {
        f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
    }
    // Without the token, with another's, or from elsewhere: refused, nothing made.
    for (csrf, origin) in [
        ("", origin.as_str()),
        ("0123456789abcdef0123456789abcdef", origin.as_str()),
        (csrf.as_str(), "http://evil.example"),
    ] {
        let f = form(csrf, "4.90");
        let refused = web.post("/portal/seller/listings", Some(origin), &refs(&f));
        assert_eq!(refused.status, 403, "{}", refused.text());
    }
    // Nor without saying where it comes from (no Origin, no Sec-Fetch-Site).
    let f = form(&csrf, "4.90");
    let refused = web.post("/portal/seller/listings", None, &refs(&f));
    assert_eq!(refused.status, 403, "{}", refused.text());
    let (_, mine) = server.get("/v1/listings?mine=true", Some(&alice.token));
    assert_eq!(mine["items"].as_array().unwrap().len(), 0, "{mine}");
    // A price the form refuses: the error is next to the price field, and
    // what was typed is kept.
    let f = form(&csrf, "4.901");
    let bad = web.post("/portal/seller/listings", Some(&origin), &refs(&f));
    assert_eq!(bad.status, 400);
    let html = bad.text();
    assert!(html.contains("id=\"listing-form-price\" name=\"price\" value=\"4.901\" required aria-invalid=\"true\" aria-describedby=\"listing-form-price-error\""), "{html}");
    assert!(html.contains("<p class=\"error\" id=\"listing-form-price-error\">an amount such as 4.90, with at most 2 digits after the point</p>"), "{html}");
    // A field the API refuses (an empty title): shown at the title.
    let mut f = form(&csrf, "4.90");
    f[2].1 = String::new();
    let bad = web.post("/portal/seller/listings", Some(&origin), &refs(&f));
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("id=\"listing-form-title-error\""),
        "{}",
        bad.text()
    );
    // Made, then published through the forms: in the catalog.
    let f = form(&csrf, "4.90");
    let made = web.post("/portal/seller/listings", Some(&origin), &refs(&f));
    assert_eq!(made.status, 303, "{}", made.text());
    let location = made.header("location").unwrap().to_string();
    let id = location
        .strip_prefix("/portal/seller/listings/")
        .and_then(|l| l.split('?').next())
        .unwrap()
        .to_string();
    let listing_page = web.get(&location).text();
    assert!(
        listing_page.contains("Soil moisture &#60;b&#62;2026&#60;/b&#62;"),
        "{listing_page}"
    );
    assert!(listing_page.contains("Listing created as a draft."));
    let published = web.post(
        &format!("/portal/seller/listings/{id}/publish"),
        Some(&origin),
        &[("csrf", &csrf)],
    );
    assert_eq!(published.status, 303, "{}", published.text());
    let (status, view) = server.get(&format!("/v1/listings/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(view["state"], "published");
    assert_eq!(view["price"], "490");
    assert_eq!(view["tags"], json!(["soil", "moisture"]));
    // Publishing twice: refused, shown on the page.
    let twice = web.post(
        &format!("/portal/seller/listings/{id}/publish"),
        Some(&origin),
        &[("csrf", &csrf)],
    );
    assert_eq!(twice.status, 409);
    assert!(twice.text().contains("not a draft"), "{}", twice.text());
    // The dataset form: a range the server refuses is shown at its field.
    let bad = web.post(
        "/portal/seller/datasets",
        Some(&origin),
        &[
            ("csrf", &csrf),
            (
                "machineDid",
                "did:peaq:0x0000000000000000000000000000000000000001",
            ),
            ("topic", "/soil"),
            ("fromIndex", "x"),
            ("toIndex", "2"),
        ],
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("id=\"dataset-form-fromIndex-error\""),
        "{}",
        bad.text()
    );
}

fn a_wallet_signs_in_with_siwe(db: Db) {
    let server = TestServer::start(db);
    let origin = server.base.clone();
    let key = MachineSigningKey::generate();
    let did = Did::of_key(&key);
    let checksummed = did.address().to_string();
    let address = checksummed.to_lowercase();
    let anonymous = Browser {
        server: &server,
        cookie: None,
    };
    let json_post = |path: &str, body: serde_json::Value, origin: &str| {
        http::send(
            client_without_redirects()
                .post(format!("{}{path}", server.base))
                .header("Origin", origin)
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        )
    };
    let message = json_post("/signin/message", json!({ "address": address }), &origin)
        .ok()
        .json();
    let message = message["message"].as_str().unwrap().to_string();
    assert!(message.contains(&checksummed), "checksummed: {message}");
    let signature = eip191_sign(&key, message.as_bytes()).to_hex();
    // From elsewhere: refused.
    assert_eq!(
        json_post(
            "/signin/wallet",
            json!({"message": message, "signature": signature}),
            "http://evil.example"
        )
        .status,
        403
    );
    // A signature by another key: refused, naming the field.
    let other = eip191_sign(&MachineSigningKey::generate(), message.as_bytes()).to_hex();
    let refused = json_post(
        "/signin/wallet",
        json!({"message": message, "signature": other}),
        &origin,
    );
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["error"]["field"], "signature");
    let signed = json_post(
        "/signin/wallet",
        json!({"message": message, "signature": signature}),
        &origin,
    );
    assert_eq!(signed.status, 200, "{}", signed.text());
    assert_eq!(
        signed.json(),
        json!({"redirect": "/portal"}),
        "no token to the page"
    );
    let cookie = session_cookie(&signed);
    let web = Browser {
        server: &server,
        cookie: Some(cookie),
    };
    let html = web.get("/portal/buyer").text();
    assert!(html.contains(&did.to_string()), "{html}");
    // The message works once.
    assert_eq!(
        json_post(
            "/signin/wallet",
            json!({"message": message, "signature": signature}),
            &origin
        )
        .status,
        401
    );
    drop(anonymous);
}

on_both_databases!(web_link_signs_in_once);
on_both_databases!(forms_need_the_csrf_token_and_show_errors_at_their_fields);
on_both_databases!(a_wallet_signs_in_with_siwe);

/// A browser signed in as `token`'s principal (through a web link).
fn browser_for<'a>(server: &'a TestServer, token: &str) -> Browser<'a> {
    let (status, link) = server.send("POST", "/v1/auth/web-link", Some(token), &json!({}));
    assert_eq!(status, 200, "{link}");
    let t = link["url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    let anonymous = Browser {
        server,
        cookie: None,
    };
    let cookie =
        session_cookie(&anonymous.post("/signin/link", Some(&server.base), &[("token", &t)]));
    Browser {
        server,
        cookie: Some(cookie),
    }
}

/// The Audit page lists disclosure requests; an approver approves one
/// through its form (the second approval puts it in effect) and cannot
/// approve its own; a refused post comes back with the error.
fn approvers_decide_disclosure_requests_on_the_audit_page(db: Db) {
    use common::orders_fixtures::{buyer, invoice_rail, paid_order, sale};
    use sealstream_market::auth::Role;
    let server = TestServer::start(db);
    let sale = sale(&server, 2, "100", invoice_rail());
    let alice = buyer(&server);
    let order = paid_order(&server, &sale, &alice);
    let auditor = server.session_for(&common::listings_fixtures::new_did(), &[Role::Auditor]);
    let officer = server.session_for(&common::listings_fixtures::new_did(), &[Role::Compliance]);
    let admin = server.session_for(&common::listings_fixtures::new_did(), &[Role::Admin]);
    let (status, req) = server.send(
        "POST",
        "/v1/disclosure-requests",
        Some(&auditor),
        &json!({"kind": "case", "legalBasis": "Portal test", "case": {"orderId": order}, "accessSeconds": 60}),
    );
    assert_eq!(status, 201, "{req}");
    let id = req["id"].as_str().unwrap().to_string();
    // The auditor sees its request, with no form to approve it.
    let page = browser_for(&server, &auditor).get("/portal/audit").text();
    assert!(page.contains(&id) && page.contains("Portal test"), "{page}");
    assert!(
        !page.contains(&format!("/portal/disclosures/{id}/approve")),
        "{page}"
    );
    // The officer approves through the form.
    let web = browser_for(&server, &officer);
    let page = web.get("/portal/audit").text();
    assert!(
        page.contains(&format!("/portal/disclosures/{id}/approve")),
        "{page}"
    );
    let csrf = web.csrf("/portal/audit");
    let answer = web.post(
        &format!("/portal/disclosures/{id}/approve"),
        Some(&server.base),
        &[("csrf", &csrf), ("seal", "no")],
    );
    assert_eq!(answer.status, 303, "{}", answer.text());
    // Once approved by the officer, its form is gone for the officer; a
    // second post is refused on the page.
    let again = web.post(
        &format!("/portal/disclosures/{id}/approve"),
        Some(&server.base),
        &[("csrf", &csrf), ("seal", "no")],
    );
    assert_eq!(again.status, 400, "{}", again.text());
    assert!(
        again.text().contains("approved request"),
        "{}",
        again.text()
    );
    let admin_web = browser_for(&server, &admin);
    let csrf = admin_web.csrf("/portal/audit");
    let answer = admin_web.post(
        &format!("/portal/disclosures/{id}/approve"),
        Some(&server.base),
        &[("csrf", &csrf), ("seal", "no")],
    );
    assert_eq!(answer.status, 303, "{}", answer.text());
    let (_, view) = server.get(&format!("/v1/disclosure-requests/{id}"), Some(&auditor));
    assert_eq!(view["state"], "approved", "{view}");
    // A buyer may not see the page.
    let page = browser_for(&server, &alice.token).get("/portal/audit");
    assert_eq!(page.status, 403);
}

on_both_databases!(approvers_decide_disclosure_requests_on_the_audit_page);
