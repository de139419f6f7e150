//! The signed-in pages' plumbing: the session of a page, the checks of a
//! form post (same origin, CSRF token), reading an API answer, and the
//! overview page `GET /portal`.
//!
//! Every page acts through the API's own handlers as the signed-in
//! principal: it can do exactly what the principal could do with the API,
//! with the same checks, limits and audit events.

use std::collections::HashMap;

use askama::Template;
use std::marker::PhantomData;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::de::DeserializeOwned;

use super::session::{self, WebSession};
use super::view::Section;
use super::{error_page, page};
use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;

pub(super) use super::view::Cell;
pub(super) use super::view::Kind;

/// The portal page template.
#[derive(Template)]
#[template(path = "portal.html")]
pub(super) struct PortalTemplate {
    pub(super) title: String,
    pub(super) description: String,
    pub(super) did: String,
    pub(super) roles: String,
    pub(super) csrf: String,
    pub(super) nav: Vec<(String, String, bool)>,
    pub(super) notice: Option<String>,
    pub(super) once: Option<(String, String)>,
    pub(super) sections: Vec<Section>,
}

/// A form's values as posted.
pub(super) type Values = HashMap<String, String>;

/// The session of a page, or the redirect to the sign-in page.
pub(super) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<WebSession, Response> {
    match session::of(headers, state).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Redirect::to("/signin").into_response()),
        Err(e) => Err(error_page(e.status, "Not available", &e.message)),
    }
}

/// The session of a page a role may see, or the refusal.
pub(super) async fn signed_in_as(
    state: &AppState,
    headers: &HeaderMap,
    roles: &[Role],
) -> Result<WebSession, Response> {
    let web = signed_in(state, headers).await?;
    match web.principal.require_any(roles) {
        Ok(()) => Ok(web),
        Err(e) => Err(error_page(
            StatusCode::FORBIDDEN,
            "Not for your roles",
            &e.message,
        )),
    }
}

/// The roles that may see a page ([`SignedIn`]).
pub(super) trait Roles {
    /// Any one of them will do.
    const ROLES: &'static [Role];
}

/// Anyone signed in.
pub(super) struct Anyone;
/// Owners (sellers).
pub(super) struct Owners;
/// Buyers.
pub(super) struct Buyers;
/// Either party of a sale.
pub(super) struct Parties;
/// Auditors, compliance officers and admins.
pub(super) struct Auditors;
/// Admins.
pub(super) struct Admins;

impl Roles for Anyone {
    const ROLES: &'static [Role] = &[];
}
impl Roles for Owners {
    const ROLES: &'static [Role] = &[Role::Owner];
}
impl Roles for Buyers {
    const ROLES: &'static [Role] = &[Role::Buyer];
}
impl Roles for Parties {
    const ROLES: &'static [Role] = &[Role::Buyer, Role::Owner];
}
impl Roles for Auditors {
    const ROLES: &'static [Role] = &[Role::Auditor, Role::Compliance, Role::Admin];
}
impl Roles for Admins {
    const ROLES: &'static [Role] = &[Role::Admin];
}

/// The session of a page only `R` may see: without a session, a redirect
/// to the sign-in page; without one of the roles, a 403 page.
pub(super) struct SignedIn<R>(pub(super) WebSession, pub(super) PhantomData<R>);

impl<R: Roles> FromRequestParts<AppState> for SignedIn<R> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        signed_in_as(state, &parts.headers, R::ROLES)
            .await
            .map(|web| SignedIn(web, PhantomData))
    }
}

/// The checks of every form post: from this server's pages, signed in,
/// with the session's CSRF token.
pub(super) async fn checked_post(
    state: &AppState,
    headers: &HeaderMap,
    form: Option<&Values>,
) -> Result<WebSession, Response> {
    if !session::same_origin(headers, state) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was not sent from this server's pages.",
        ));
    }
    let web = signed_in(state, headers).await?;
    let given = form
        .and_then(|f| f.get("csrf"))
        .map(String::as_str)
        .unwrap_or("");
    if !web.csrf_matches(given) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form is out of date (its csrf token does not match your session): reload the page and send it again.",
        ));
    }
    Ok(web)
}

/// A form post that passed [`checked_post`], from a principal with one of
/// `R`'s roles (none: anyone signed in): the session that sent it and the
/// form's values (an unreadable body is an empty form, which then fails the
/// CSRF check). A page a post shows again with an error is then shown only
/// to those who may see it.
pub(super) struct WebPost<R = Anyone> {
    /// Who sent it.
    pub(super) web: WebSession,
    /// The form's fields.
    pub(super) values: Values,
    _roles: PhantomData<R>,
}

impl<R: Roles> FromRequest<AppState> for WebPost<R> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let headers = request.headers().clone();
        let values = Form::<Values>::from_request(request, state)
            .await
            .map(|Form(f)| f)
            .unwrap_or_default();
        let web = checked_post(state, &headers, Some(&values)).await?;
        if !R::ROLES.is_empty() {
            if let Err(e) = web.principal.require_any(R::ROLES) {
                return Err(error_page(
                    StatusCode::FORBIDDEN,
                    "Not for your roles",
                    &e.message,
                ));
            }
        }
        Ok(WebPost {
            web,
            values,
            _roles: PhantomData,
        })
    }
}

/// The body of an API handler's answer as `T` (for the handlers that
/// answer a [`Response`]).
pub(super) async fn json_of<T: DeserializeOwned>(response: Response) -> ApiResult<T> {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .map_err(|e| ApiError::internal("reading an answer", e))?;
    if !status.is_success() {
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let err = &body["error"];
        let message = err["message"].as_str().unwrap_or("refused").to_string();
        return Err(ApiError::new(status, err["field"].as_str(), message));
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::internal("reading an answer", e))
}

/// The navigation of a principal: the parts its roles open.
pub(super) fn nav(web: &WebSession, current: &str) -> Vec<(String, String, bool)> {
    let p = &web.principal;
    let mut links = vec![("/portal", "Portal")];
    if p.has(Role::Owner) {
        links.push(("/portal/seller", "Seller"));
        links.push(("/portal/sales", "Sales"));
    }
    if p.has(Role::Buyer) {
        links.push(("/portal/buyer", "Buyer"));
    }
    if p.has(Role::Auditor) || p.has(Role::Compliance) || p.has(Role::Admin) {
        links.push(("/portal/audit", "Audit"));
    }
    if p.has(Role::Admin) {
        links.push(("/portal/admin", "Admin"));
    }
    links
        .into_iter()
        .map(|(h, t)| (h.to_string(), t.to_string(), h == current))
        .collect()
}

/// A portal page for `web`.
pub(super) fn render(
    web: &WebSession,
    current: &str,
    title: &str,
    notice: Option<String>,
    once: Option<(String, String)>,
    sections: Vec<Section>,
) -> Response {
    render_status(StatusCode::OK, web, current, title, notice, once, sections)
}

/// A portal page for `web` with `status` (a form sent back with an error
/// is a 400 or the status of the API's refusal).
pub(super) fn render_status(
    status: StatusCode,
    web: &WebSession,
    current: &str,
    title: &str,
    notice: Option<String>,
    once: Option<(String, String)>,
    sections: Vec<Section>,
) -> Response {
    let roles: Vec<&str> = web.principal.roles.iter().map(|r| r.as_str()).collect();
    page(
        status,
        PortalTemplate {
            title: title.into(),
            description: format!("{title}: sealstream market portal"),
            did: web.principal.did.clone(),
            roles: if roles.is_empty() {
                "no role".into()
            } else {
                roles.join(", ")
            },
            csrf: web.csrf.clone(),
            nav: nav(web, current),
            notice,
            once,
            sections,
        }
        .render(),
    )
}

/// What just happened, from the fixed codes pages redirect with (a page
/// never shows text taken from the address).
pub(super) fn notice(code: Option<&String>) -> Option<String> {
    let text = match code.map(String::as_str)? {
        "dataset-created" => "Dataset created.",
        "listing-created" => "Listing created as a draft.",
        "listing-saved" => "Listing saved.",
        "listing-published" => "Listing published: it is in the catalog.",
        "listing-withdrawn" => "Listing withdrawn: it left the catalog.",
        "order-created" => "Order placed: pay as its instructions say.",
        "order-cancelled" => "Order cancelled.",
        "order-paid" => "Order marked paid.",
        "link-revoked" => "Download link revoked.",
        "subscription-cancelled" => "Subscription cancelled: it ends with the period paid for.",
        "subscription-renewed" => "Renewal ordered: pay its order to extend the subscription.",
        "role-granted" => "Role granted.",
        "role-revoked" => "Role revoked.",
        "disclosure-approved" => {
            "Approval recorded: a request takes effect with its second approval."
        }
        "disclosure-rejected" => "Request rejected.",
        _ => return None,
    };
    Some(text.into())
}

/// A 303 to `path` with a notice code.
pub(super) fn done(path: &str, code: &str) -> Response {
    let (base, anchor) = path.split_once('#').unwrap_or((path, ""));
    let sep = if base.contains('?') { '&' } else { '?' };
    let anchor = if anchor.is_empty() {
        String::new()
    } else {
        format!("#{anchor}")
    };
    Redirect::to(&format!("{base}{sep}notice={code}{anchor}")).into_response()
}

/// `GET /portal`: who the principal is and where to go.
pub(super) async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let web = match signed_in(&state, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let p = &web.principal;
    let mut sections = Vec::new();
    if p.has(Role::Owner) {
        sections.push(guide(
            "selling",
            "Selling",
            "Your machines, their chains, your datasets and listings are on the Seller page; orders, subscriptions, payments and revenue on the Sales page.",
            &[
                ("/portal/seller", "Seller", "machines, datasets, listings"),
                ("/portal/sales", "Sales", "orders, subscriptions, revenue, grants"),
            ],
        ));
    }
    if p.has(Role::Buyer) {
        sections.push(guide(
            "buying",
            "Buying",
            "Find data in the catalog; your orders, subscriptions, download links, receipts and keys are on the Buyer page.",
            &[
                ("/", "Catalog", "search and verify samples"),
                ("/portal/buyer", "Buyer", "orders, subscriptions, receipts"),
            ],
        ));
    }
    if p.has(Role::Auditor) || p.has(Role::Compliance) || p.has(Role::Admin) {
        sections.push(guide(
            "auditing",
            "Auditing",
            "The audit log's signed head and its verification, and the disclosure requests (filed by auditors, approved by two others) are on the Audit page.",
            &[("/portal/audit", "Audit", "audit head, disclosure requests")],
        ));
    }
    if p.roles.is_empty() {
        sections.push(Section {
            id: "none".into(),
            heading: "No role yet".into(),
            paragraphs: vec!["An administrator grants roles.".into()],
            ..Section::default()
        });
    }
    render(&web, "/portal", "Your portal", None, None, sections)
}

/// A section of the overview: what a role finds where.
fn guide(id: &str, heading: &str, text: &str, links: &[(&str, &str, &str)]) -> Section {
    Section {
        id: id.into(),
        heading: heading.into(),
        paragraphs: vec![text.into()],
        tables: vec![super::view::Table {
            caption: "Where to go".into(),
            headers: vec!["Page".into(), "What".into()],
            rows: links
                .iter()
                .map(|(href, page, what)| {
                    vec![
                        Cell::Link((*href).into(), (*page).into()),
                        Cell::Text((*what).into()),
                    ]
                })
                .collect(),
            empty: String::new(),
        }],
        ..Section::default()
    }
}
