//! The market's web pages (issue 20; docs/market-design.md "Web pages"):
//! server-rendered HTML from askama templates (`templates/`), HTML-escaped
//! by the template engine, with the server's own stylesheet and scripts
//! (`static/`, compiled into the binary: nothing is loaded from anywhere
//! else) under a strict Content-Security-Policy.
//!
//! - `GET /`: the public catalog, searched with the same parameters and
//!   the same code as `GET /v1/catalog`; a parameter the search refuses is
//!   shown next to its field.
//! - `GET /listings/{id}`: a published listing: terms, license, the
//!   dataset's Merkle root and chain key, the Dazaar-style card, and its
//!   samples with a button that verifies one in the browser
//!   (`static/verify.js`: WebCrypto SHA-256 and Ed25519 against the signed
//!   manifest and the card's chain key, without trusting the server).
//! - `GET /static/{name}`, `GET /robots.txt`, `GET /sitemap.xml`.
//!
//! The pages read through the API's own handlers (`crate::catalog`,
//! `crate::listings`), as an anonymous caller: they show what the API shows
//! anyone, nothing more.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sealstream_api::catalog::CatalogItem;
use sealstream_api::listings::{HistoryPolicy, ListingKind, ListingView};
use sealstream_api::payments::{format_units, Rail};

use crate::auth::MaybePrincipal;
use crate::error::{ApiError, ApiPath};
use crate::server::AppState;

mod portal;
mod seller;
pub mod session;
mod signin;
mod staff;
mod trade;
mod view;

/// The Content-Security-Policy of every page: only the server's own
/// scripts, styles and connections; no inline script, no frames, no forms
/// elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages' routes (with their security headers).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(catalog_page))
        .route("/listings/{id}", get(listing_page))
        .route("/static/{name}", get(asset))
        .route("/robots.txt", get(robots))
        .route("/sitemap.xml", get(sitemap))
        .route("/signin", get(signin::signin))
        .route("/signin/message", post(signin::message))
        .route("/signin/wallet", post(signin::wallet))
        .route(
            "/signin/link",
            get(signin::link_page).post(signin::use_link),
        )
        .route("/signout", post(signin::signout))
        .route("/portal", get(portal::overview))
        .route("/portal/seller", get(seller::seller))
        .route("/portal/seller/datasets", post(seller::create_dataset))
        .route("/portal/seller/listings", post(seller::create_listing))
        .route(
            "/portal/seller/listings/{id}",
            get(seller::listing).post(seller::edit_listing),
        )
        .route(
            "/portal/seller/listings/{id}/{action}",
            post(seller::listing_action),
        )
        .route("/portal/sales", get(trade::sales))
        .route("/portal/sales/{id}/mark-paid", post(trade::mark_paid))
        .route("/portal/buyer", get(trade::buyer))
        .route(
            "/portal/buyer/orders/{id}/{action}",
            post(trade::order_action),
        )
        .route("/portal/buyer/links/revoke", post(trade::revoke_link))
        .route(
            "/portal/buyer/subscriptions/{id}/{action}",
            post(trade::subscription_action),
        )
        .route("/portal/buy/{id}", get(trade::buy).post(trade::place_order))
        .route("/portal/orders/{id}/receipt.json", get(trade::receipt))
        .route("/portal/orders/{id}/receipt.pdf", get(trade::receipt_pdf))
        .route("/portal/audit", get(staff::audit))
        .route("/portal/admin", get(staff::admin))
        .route("/portal/admin/roles", post(staff::roles))
        .route("/portal/disclosures/{id}/{action}", post(staff::decide))
        .layer(middleware::from_fn(page_headers))
}

/// Security headers of every page and asset.
async fn page_headers(request: Request, next: Next) -> Response {
    let private = ["/portal", "/signin", "/signout"]
        .iter()
        .any(|p| request.uri().path().starts_with(p));
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if private {
        // A signed-in page is the principal's alone: no cache keeps it.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A template rendered as a page with `status`.
fn page(status: StatusCode, rendered: askama::Result<String>) -> Response {
    match rendered {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(
                    "<!doctype html><title>Error</title><p>This page could not be shown.</p>"
                        .to_string(),
                ),
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    description: &'a str,
    message: &'a str,
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        ErrorPage {
            title,
            description: message,
            message,
        }
        .render(),
    )
}

/// The search form's values, as given (shown back in the form).
#[derive(Default)]
struct SearchForm {
    q: String,
    kind: String,
    domain: String,
    min_price: String,
    max_price: String,
    sort: String,
    rail: String,
    tag: String,
}

/// One result of the catalog, as shown.
struct Row {
    id: String,
    title: String,
    kind: &'static str,
    domain: String,
    excerpt: String,
    tags: Vec<String>,
    price: String,
    size_label: &'static str,
    size: String,
    sales: String,
}

#[derive(Template)]
#[template(path = "catalog.html")]
struct CatalogPage {
    title: String,
    description: String,
    form: SearchForm,
    error_field: String,
    error_message: String,
    other_error: Option<String>,
    results_title: String,
    items: Vec<Row>,
    next_href: Option<String>,
}

/// `amount` base units of `rail` as a person reads it (`4.90 EUR`,
/// `0.001 ETH`, per period for a subscription).
fn price(amount: &str, rail: &Rail) -> String {
    let units = format_units(amount, rail.decimals());
    match rail {
        Rail::Invoice { currency, .. } => format!("{units} {currency} (invoice)"),
        Rail::Evm {
            symbol, chain_id, ..
        } => format!(
            "{units} {} (chain {chain_id})",
            symbol.as_deref().unwrap_or("tokens")
        ),
    }
}

fn kind_name(kind: &ListingKind) -> &'static str {
    match kind {
        ListingKind::Subscription => "Subscription",
        _ => "Dataset",
    }
}

/// A duration in seconds as a person reads it.
fn period(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s => format!("{s} s"),
    }
}

fn row(item: CatalogItem) -> Row {
    let subscription = item.kind == ListingKind::Subscription;
    let (size_label, size) = match &item.subscription {
        Some(terms) if subscription => ("Period", period(terms.period_seconds)),
        _ => ("Chunks", item.chunk_count.to_string()),
    };
    Row {
        price: price(&item.price, &item.rail) + if subscription { " per period" } else { "" },
        id: item.id,
        title: item.title,
        kind: kind_name(&item.kind),
        domain: item.domain.unwrap_or_default(),
        excerpt: item.description_excerpt,
        tags: item.tags,
        size_label,
        size,
        sales: item.sales_bucket,
    }
}

/// The query string of `pairs` (names and values percent-encoded).
fn query_string(pairs: &[(String, String)]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        for (i, part) in [name, value].into_iter().enumerate() {
            if i == 1 {
                out.push('=');
            }
            for b in part.bytes() {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    out.push(b as char);
                } else {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
    out
}

/// `GET /`: the catalog.
async fn catalog_page(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let pairs = match query {
        Ok(Query(pairs)) => pairs,
        Err(_) => Vec::new(),
    };
    // Empty fields of the form are no filter.
    let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let form = SearchForm {
        q: value("q"),
        kind: value("kind"),
        domain: value("domain"),
        min_price: value("minPrice"),
        max_price: value("maxPrice"),
        sort: value("sort"),
        rail: value("rail"),
        tag: value("tag"),
    };
    let searched = crate::catalog::catalog(State(state), Ok(Query(pairs.clone()))).await;
    let mut view = CatalogPage {
        title: "Catalog".into(),
        description: "Machine data for sale: datasets and live subscriptions, sealed and signed on the machine.".into(),
        form,
        error_field: String::new(),
        error_message: String::new(),
        other_error: None,
        results_title: "Listings".into(),
        items: Vec::new(),
        next_href: None,
    };
    let status = match searched {
        Ok(Json(found)) => {
            view.results_title = if pairs.is_empty() {
                "Newest listings".into()
            } else {
                format!(
                    "Listings found ({}{})",
                    found.items.len(),
                    if found.next_cursor.is_some() { "+" } else { "" }
                )
            };
            view.next_href = found.next_cursor.map(|cursor| {
                let mut next: Vec<(String, String)> = pairs
                    .iter()
                    .filter(|(n, _)| n != "cursor")
                    .cloned()
                    .collect();
                next.push(("cursor".into(), cursor));
                format!("/?{}", query_string(&next))
            });
            view.items = found.items.into_iter().map(row).collect();
            StatusCode::OK
        }
        Err(ApiError { field, message, .. }) => {
            match field {
                Some(f)
                    if ["q", "kind", "domain", "minPrice", "maxPrice", "rail", "tag"]
                        .contains(&f.as_str()) =>
                {
                    view.error_field = f;
                    view.error_message = message;
                }
                Some(f) => view.other_error = Some(format!("{f}: {message}")),
                None => view.other_error = Some(message),
            }
            StatusCode::BAD_REQUEST
        }
    };
    page(status, view.render())
}

/// The dataset part of a listing page.
struct DatasetFacts {
    id: String,
    machine: String,
    topic: String,
    chunks: i64,
    from: String,
    to: String,
    merkle_root: String,
    chain_key: String,
    signer: String,
}

/// The subscription part of a listing page.
struct SubscriptionFacts {
    machine: String,
    topic: String,
    period: String,
    grace: String,
    history: String,
}

/// A listing, as shown.
struct ListingFacts {
    id: String,
    title: String,
    kind: &'static str,
    domain: String,
    description: String,
    tags: Vec<String>,
    price: String,
    rail: String,
    delivery: String,
    schema_hint: String,
    sales: String,
    published_at: String,
    license: String,
    compliance: Option<ComplianceFacts>,
    samples: Vec<u64>,
    dataset: Option<DatasetFacts>,
    subscription: Option<SubscriptionFacts>,
}

/// A listing's compliance preset as its page shows it.
struct ComplianceFacts {
    jurisdictions: String,
    data_classes: String,
    retention: String,
    attestation: String,
    hash: String,
}

#[derive(Template)]
#[template(path = "listing.html")]
struct ListingPage {
    title: String,
    description: String,
    l: ListingFacts,
    card: String,
    /// The card's seller and machine: who may sign the dataset's manifest
    /// (EIP-191), as the page's verification checks.
    seller: String,
    machine: String,
}

fn rail_text(rail: &Rail) -> String {
    match rail {
        Rail::Invoice {
            currency,
            payee,
            terms,
            ..
        } => format!(
            "invoice in {currency}{}{}",
            payee
                .as_deref()
                .map(|p| format!(", payee {p}"))
                .unwrap_or_default(),
            terms
                .as_deref()
                .map(|t| format!(", {t}"))
                .unwrap_or_default()
        ),
        Rail::Evm {
            chain_id,
            token,
            pay_to,
            ..
        } => format!(
            "on chain {chain_id}, {} to {pay_to}",
            token.as_deref().unwrap_or("the native coin")
        ),
    }
}

fn facts(v: ListingView, chain_key: Option<String>) -> ListingFacts {
    let subscription = v.kind == ListingKind::Subscription;
    let dataset = v.dataset.as_ref().map(|d| DatasetFacts {
        id: d.id.clone(),
        machine: d.machine_did.clone(),
        topic: d.topic.clone(),
        chunks: d.chunk_count,
        from: d.from.clone(),
        to: d.to.clone(),
        merkle_root: d.merkle_root.clone(),
        chain_key: chain_key.clone().unwrap_or_default(),
        signer: d.machine_did.clone(),
    });
    ListingFacts {
        price: price(&v.price, &v.rail) + if subscription { " per period" } else { "" },
        rail: rail_text(&v.rail),
        delivery: v.delivery.join(", "),
        id: v.id,
        title: v.title,
        kind: kind_name(&v.kind),
        domain: v.domain.unwrap_or_default(),
        description: v.description,
        tags: v.tags,
        schema_hint: v.schema_hint.unwrap_or_default(),
        sales: v.sales,
        published_at: v.published_at.unwrap_or_default(),
        license: v
            .license
            .map(|l| match l {
                serde_json::Value::String(s) => s,
                other => serde_json::to_string_pretty(&other).unwrap_or_default(),
            })
            .unwrap_or_default(),
        compliance: v.compliance.map(|c| ComplianceFacts {
            jurisdictions: c.jurisdictions.join(", "),
            data_classes: c.data_classes.join(", "),
            retention: c.retention.clone(),
            attestation: c.attestation.clone().unwrap_or_default(),
            hash: c.hash(),
        }),
        samples: v.samples_available,
        dataset,
        subscription: v.subscription.map(|t| SubscriptionFacts {
            machine: t.machine_did,
            topic: t.topic,
            period: period(t.period_seconds),
            grace: period(t.grace_seconds),
            history: match t.history {
                HistoryPolicy::None => "none".into(),
                HistoryPolicy::All => "all chunks before the subscription".into(),
                HistoryPolicy::LastChunks(n) => {
                    format!("the last {n} chunks before the subscription")
                }
            },
        }),
    }
}

/// `GET /listings/{id}`: a published listing.
async fn listing_page(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Response {
    let listing = crate::listings::get(
        State(state.clone()),
        MaybePrincipal(None),
        ApiPath(id.clone()),
    )
    .await;
    let card = crate::listings::card::card(State(state), MaybePrincipal(None), ApiPath(id)).await;
    match (listing, card) {
        (Ok(Json(view)), Ok(Json(card))) => {
            let chain_key = card.seller_key.clone();
            let card_text = serde_json::to_string_pretty(&card).unwrap_or_default();
            let mut description: String = view.description.chars().take(160).collect();
            if description.is_empty() {
                description = view.title.clone();
            }
            page(
                StatusCode::OK,
                ListingPage {
                    title: view.title.clone(),
                    description,
                    l: facts(view, chain_key),
                    card: card_text,
                    seller: card.provider.clone(),
                    machine: card.machine_did.clone(),
                }
                .render(),
            )
        }
        (Err(e), _) | (_, Err(e)) if e.status == StatusCode::NOT_FOUND => error_page(
            StatusCode::NOT_FOUND,
            "No such listing",
            "There is no published listing with this id.",
        ),
        (Err(e), _) | (_, Err(e)) => error_page(e.status, "Not shown", &e.message),
    }
}

/// The server's own stylesheet and scripts.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "portal.css",
        "text/css; charset=utf-8",
        include_str!("../../static/portal.css"),
    ),
    (
        "verify.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/verify.js"),
    ),
    (
        "secp256k1.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/secp256k1.js"),
    ),
    (
        "signin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/signin.js"),
    ),
];

/// `GET /static/{name}`.
async fn asset(ApiPath(name): ApiPath<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => error_page(StatusCode::NOT_FOUND, "Not found", "No such file."),
    }
}

/// `GET /robots.txt`: everything public may be indexed; the API not.
async fn robots(State(state): State<AppState>) -> Response {
    let base = state.public_url.base().trim_end_matches('/').to_string();
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("User-agent: *\nAllow: /\nDisallow: /v1/\nSitemap: {base}/sitemap.xml\n"),
    )
        .into_response()
}

/// `GET /sitemap.xml`: the catalog and the newest published listings.
async fn sitemap(State(state): State<AppState>) -> Response {
    let base = state.public_url.base().trim_end_matches('/').to_string();
    let found = crate::catalog::catalog(
        State(state),
        Ok(Query(vec![("limit".to_string(), "100".to_string())])),
    )
    .await;
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    xml.push_str(&format!("<url><loc>{}/</loc></url>\n", xml_escape(&base)));
    if let Ok(Json(page)) = found {
        for item in page.items {
            xml.push_str(&format!(
                "<url><loc>{}/listings/{}</loc></url>\n",
                xml_escape(&base),
                xml_escape(&item.id)
            ));
        }
    }
    xml.push_str("</urlset>\n");
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        xml,
    )
        .into_response()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(
            query_string(&[
                ("q".into(), "air & <soil>".into()),
                ("cursor".into(), "a/b=".into())
            ]),
            "q=air%20%26%20%3Csoil%3E&cursor=a%2Fb%3D"
        );
    }

    #[test]
    fn prices_read_as_people_read_them() {
        let invoice = Rail::Invoice {
            currency: "EUR".into(),
            decimals: 2,
            payee: None,
            terms: None,
            escrow: false,
        };
        assert_eq!(price("490", &invoice), "4.9 EUR (invoice)");
        assert_eq!(period(86_400), "1 day(s)");
        assert_eq!(period(7200), "2 hour(s)");
        assert_eq!(period(90), "90 s");
    }
}
