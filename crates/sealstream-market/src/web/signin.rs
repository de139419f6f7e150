//! Signing in and out of the web pages.
//!
//! - `GET /signin`: the sign-in page: a wallet button (`static/signin.js`:
//!   EIP-1193 `window.ethereum`, Sign-In with Ethereum) and the command
//!   that makes a link for people whose keys are files.
//! - `POST /signin/message`: the EIP-4361 message for an address, with a
//!   fresh nonce, as the API's `POST /v1/auth/nonce` would have it built
//!   (the page has no Keccak for the address's EIP-55 form).
//! - `POST /signin/wallet`: the signed message; the API's own sign-in
//!   checks it, and the session's token goes into the cookie (never to
//!   the page's script).
//! - `GET /signin/link?token=…`: a page with a button that uses the link
//!   (`POST /signin/link`): a link preview or a crawler that opens the URL
//!   does not use it up.
//! - `POST /signout`: ends the session.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use sealstream_api::auth::VerifyRequest;
use sealstream_api::siwe::{sign_in_message, Timestamp};
use sealstream_core::identity::Did;
use sealstream_core::utc;
use serde::{Deserialize, Serialize};

use super::session::{self, WebSession};
use super::{error_page, page};
use crate::auth::siwe_routes::{sign_in, NONCE_TTL_SECS};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::logs::Pseudonym;
use crate::server::AppState;

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    title: String,
    description: String,
    link_token: Option<String>,
    /// Whom the link signs in (shown before it is used).
    link_did: String,
    /// Whom the browser is signed in as now, when that is someone else.
    current_did: String,
    error: String,
    domain: String,
    server: String,
}

fn signin_page(state: &AppState, status: StatusCode, error: &str) -> Response {
    page(
        status,
        SigninPage {
            title: "Sign in".into(),
            description: "Sign in to the market with a wallet or a one-time link.".into(),
            link_token: None,
            link_did: String::new(),
            current_did: String::new(),
            error: error.into(),
            domain: state.public_url.domain().to_string(),
            server: state.public_url.base().to_string(),
        }
        .render(),
    )
}

/// `GET /signin`.
pub(super) async fn signin(State(state): State<AppState>) -> Response {
    signin_page(&state, StatusCode::OK, "")
}

/// `POST /signin/message` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageRequest {
    /// The wallet's account (`0x…`, any case).
    address: String,
}

/// `POST /signin/message` answer.
#[derive(Serialize)]
pub(super) struct MessageAnswer {
    /// The text to sign (`personal_sign`).
    message: String,
}

/// `POST /signin/message`: the sign-in message for `address`.
pub(super) async fn message(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<MessageRequest>,
) -> ApiResult<Json<MessageAnswer>> {
    if !session::same_origin(&headers, &state) {
        return Err(ApiError::forbidden("not from this server's pages"));
    }
    let did = Did::parse(&format!("did:peaq:{}", req.address.trim()), "address")
        .map_err(|e| ApiError::bad_request("address", e.constraint))?;
    let domain = state.public_url.domain().to_string();
    let now = utc::now_unix();
    let nonce = state.nonce_key.issue(&domain, now + NONCE_TTL_SECS);
    let mut message = sign_in_message(
        &domain,
        &state.public_url.sign_in_uri(),
        &did,
        &nonce,
        Timestamp::from_unix(now as u64),
        None,
        Some("Sign in to the sealstream market."),
    )
    .map_err(|e| ApiError::bad_request(&e.field, e.constraint))?;
    if let Some(chain_id) = state.config.sign_in_chain_ids.first() {
        message.chain_id = *chain_id;
    }
    Ok(Json(MessageAnswer {
        message: message.to_string(),
    }))
}

/// `POST /signin/wallet`: signs in with a signed message; the session goes
/// into the cookie.
pub(super) async fn wallet(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> ApiResult<Response> {
    if !session::same_origin(&headers, &state) {
        return Err(ApiError::forbidden("not from this server's pages"));
    }
    let signed = sign_in(&state, &req).await?;
    let expires = utc::parse_seconds(&signed.expires_at)
        .unwrap_or_else(|| utc::now_unix() + crate::auth::session::DEFAULT_TTL_SECS);
    let cookie = session::set_cookie(&state, &signed.token, expires);
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(serde_json::json!({ "redirect": "/portal" })),
    )
        .into_response())
}

/// `?token=` of a link.
#[derive(Deserialize)]
pub(super) struct LinkQuery {
    #[serde(default)]
    token: String,
}

fn link_token_ok(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `GET /signin/link?token=…`: whom the link signs in, and the button that
/// uses it (with a warning when the browser is signed in as someone else).
pub(super) async fn link_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let token = query.map(|Query(q)| q.token).unwrap_or_default();
    if !link_token_ok(&token) {
        return signin_page(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in link is malformed: make a new one with `sealstream market login --web`.",
        );
    }
    let link_did = match crate::auth::session::web_link_did(&state.store, &token).await {
        Ok(Some(did)) => did,
        Ok(None) => {
            return signin_page(
                &state,
                StatusCode::UNAUTHORIZED,
                "This sign-in link was used already or has expired: make a new one with `sealstream market login --web`.",
            )
        }
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, "Not available", &format!("database: {e}")),
    };
    let current_did = match session::of(&headers, &state).await {
        Ok(Some(web)) if !crate::auth::same_did(&web.principal.did, &link_did) => web.principal.did,
        _ => String::new(),
    };
    page(
        StatusCode::OK,
        SigninPage {
            title: "Sign in".into(),
            description: "Sign in to the market with a one-time link.".into(),
            link_did,
            current_did,
            link_token: Some(token),
            error: String::new(),
            domain: state.public_url.domain().to_string(),
            server: state.public_url.base().to_string(),
        }
        .render(),
    )
}

/// `POST /signin/link`: uses the link and opens a session.
pub(super) async fn use_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !session::same_origin(&headers, &state) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was not sent from this server's pages.",
        );
    }
    let token = form
        .ok()
        .and_then(|Form(f)| f.get("token").cloned())
        .unwrap_or_default();
    if !link_token_ok(&token) {
        return signin_page(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in link is malformed.",
        );
    }
    match open_link_session(&state, &token).await {
        Ok(Some((session_token, expires))) => (
            [(header::SET_COOKIE, session::set_cookie(&state, &session_token, expires))],
            Redirect::to("/portal"),
        )
            .into_response(),
        Ok(None) => signin_page(
            &state,
            StatusCode::UNAUTHORIZED,
            "This sign-in link was used already or has expired: make a new one with `sealstream market login --web`.",
        ),
        Err(e) => error_page(e.status, "Not signed in", &e.message),
    }
}

/// Uses a link and opens a session for its DID, in one transaction:
/// the session's token and expiry, or `None` for a link that does not work.
async fn open_link_session(state: &AppState, token: &str) -> ApiResult<Option<(String, i64)>> {
    let mut tx = state.store.begin().await?;
    let Some(did) = crate::auth::session::use_web_link_in(&mut tx, token).await? else {
        return Ok(None);
    };
    let expires = utc::now_unix() + crate::auth::session::DEFAULT_TTL_SECS;
    let session_token = crate::auth::session::issue_in(&mut tx, &did, expires).await?;
    let details = crate::auth::audit_details(&serde_json::json!({
        "method": "web-link",
        "expiresAt": utc::format_seconds(expires),
    }));
    crate::audit::append(&mut tx, &did, "auth.sign_in", &did, &details).await?;
    tx.commit().await?;
    tracing::info!(principal = %Pseudonym::of(&did), "signed in with a web link");
    Ok(Some((session_token.expose().to_string(), expires)))
}

/// `POST /signout`.
pub(super) async fn signout(
    State(state): State<AppState>,
    super::portal::WebPost { web, .. }: super::portal::WebPost,
) -> Response {
    if let Err(e) = end_session(&state, &web).await {
        return error_page(e.status, "Not signed out", &e.message);
    }
    (
        [(header::SET_COOKIE, session::clear_cookie(&state))],
        Redirect::to("/"),
    )
        .into_response()
}

async fn end_session(state: &AppState, web: &WebSession) -> ApiResult<()> {
    let mut tx = state.store.begin().await?;
    if crate::auth::session::revoke_in(&mut tx, web.token()).await? {
        let details = crate::auth::audit_details(&serde_json::json!({ "method": "web" }));
        crate::audit::append(
            &mut tx,
            &web.principal.did,
            "auth.sign_out",
            &web.principal.did,
            &details,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
