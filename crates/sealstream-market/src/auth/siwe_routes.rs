//! Sign-in with Ethereum (EIP-4361): `POST /v1/auth/nonce`,
//! `POST /v1/auth/verify`, `POST /v1/auth/logout`, `GET /v1/me`.
//!
//! The server hands out a nonce (valid [`NONCE_TTL_SECS`], single use,
//! stateless: [`super::nonce`]); the client signs a message
//! (`sealstream_api::siwe`) naming the server's domain (from its configured
//! public URL, [`crate::public_url`], never from request headers), a URI on
//! it, one of the server's chain ids and that nonce, as an EIP-191 personal
//! message; `verify` checks every field and the signature, then, in one
//! transaction, consumes the nonce, records the principal, creates the
//! session and appends the audit events. A refused sign-in stores nothing
//! and in particular does not consume the nonce: only a message whose
//! signature checks out can use it up, and a replay of that message is a
//! 401 naming `message.nonce`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sealstream_api::siwe::SiweMessage;
use sealstream_core::identity::{eip191_recover, Eip191Signature};
use sealstream_core::utc;

use super::db;
use super::{bearer, roles_of, session, Principal, Role};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::logs::Pseudonym;
use crate::server::AppState;

/// How long a nonce can be used: 5 minutes.
pub const NONCE_TTL_SECS: i64 = 300;
/// Oldest `Issued At` accepted: 5 minutes ago.
pub const MAX_MESSAGE_AGE_SECS: i64 = 300;
/// How far ahead of the server's clock `Issued At` and `Not Before` may be.
pub const CLOCK_SKEW_SECS: i64 = 60;
/// Roles a DID that is not a machine gets at its first sign-in.
pub const FIRST_SIGN_IN_ROLES: [Role; 2] = [Role::Owner, Role::Buyer];

pub use sealstream_api::auth::{
    MeResponse, NonceResponse, SessionResponse, VerifyRequest, WebLinkResponse,
};

/// Issues a sign-in nonce for the server's domain. Nothing is stored: the
/// nonce carries its expiry and the server's tag ([`super::nonce`]).
#[utoipa::path(post, path = sealstream_api::routes::AUTH_NONCE, tag = "auth",
    responses(
        (status = 200, description = "A nonce for the sign-in message", body = NonceResponse)))]
pub(crate) async fn nonce(State(state): State<AppState>) -> Response {
    let domain = state.public_url.domain().to_string();
    let now = utc::now_unix();
    let expires = now + NONCE_TTL_SECS;
    let nonce = state.nonce_key.issue(&domain, expires);
    Json(NonceResponse {
        uri: state.public_url.sign_in_uri(),
        nonce,
        domain,
        chain_id: state
            .config
            .sign_in_chain_ids
            .first()
            .copied()
            .unwrap_or(sealstream_api::siwe::PEAQ_CHAIN_ID),
        issued_at: utc::format_seconds(now),
        expires_at: utc::format_seconds(expires),
    })
    .into_response()
}

/// Checks everything about a sign-in that needs no database: the message,
/// its domain, URI and times, and the signature. Returns the message.
fn check_message(
    request: &VerifyRequest,
    domain: &str,
    chain_ids: &[u64],
    now: i64,
) -> ApiResult<SiweMessage> {
    let message = SiweMessage::parse(&request.message)
        .map_err(|e| ApiError::bad_request(&e.field, e.constraint))?;
    let signature = Eip191Signature::from_hex(&request.signature, "signature")
        .map_err(|e| ApiError::bad_request(&e.field, e.constraint))?;
    if let Some(scheme) = &message.scheme {
        if !matches!(scheme.as_str(), "http" | "https") {
            return Err(ApiError::unauthorized("message.scheme", "http or https"));
        }
    }
    if !message.domain.eq_ignore_ascii_case(domain) {
        return Err(ApiError::unauthorized(
            "message.domain",
            format!("this server signs in for the domain {domain}"),
        ));
    }
    if !message
        .uri_authority()
        .is_some_and(|a| a.eq_ignore_ascii_case(domain))
    {
        return Err(ApiError::unauthorized(
            "message.uri",
            format!("must be a URI on {domain}"),
        ));
    }
    if !chain_ids.contains(&message.chain_id) {
        return Err(ApiError::unauthorized(
            "message.chainId",
            format!("this server signs in on chain ids {chain_ids:?}"),
        ));
    }
    let issued = message.issued_at.unix_seconds();
    if issued > now + CLOCK_SKEW_SECS {
        return Err(ApiError::unauthorized("message.issuedAt", "in the future"));
    }
    if issued < now - MAX_MESSAGE_AGE_SECS {
        return Err(ApiError::unauthorized(
            "message.issuedAt",
            "older than 5 minutes: sign a new message",
        ));
    }
    if let Some(expiration) = &message.expiration_time {
        if expiration.unix_seconds() <= now {
            return Err(ApiError::unauthorized(
                "message.expirationTime",
                "the message has expired",
            ));
        }
    }
    if let Some(not_before) = &message.not_before {
        if not_before.unix_seconds() > now + CLOCK_SKEW_SECS {
            return Err(ApiError::unauthorized(
                "message.notBefore",
                "the message is not valid yet",
            ));
        }
    }
    let signer = eip191_recover(request.message.as_bytes(), &signature)
        .map_err(|e| ApiError::unauthorized("signature", e.to_string()))?;
    if signer != message.address {
        return Err(ApiError::unauthorized(
            "signature",
            "not a signature of the message by its address",
        ));
    }
    Ok(message)
}

/// Signs in with a signed EIP-4361 message and returns a session token.
#[utoipa::path(post, path = sealstream_api::routes::AUTH_VERIFY, tag = "auth",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Signed in", body = SessionResponse),
        (status = 400, description = "Malformed message or signature (field named)", body = crate::openapi::ErrorBody),
        (status = 401, description = "Wrong domain, URI or chain id, out of its time window, unknown, expired or used nonce, or a signature not by the message's address (field named)", body = crate::openapi::ErrorBody)))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> ApiResult<Response> {
    Ok(Json(sign_in(&state, &request).await?).into_response())
}

/// Checks a sign-in message and its signature and opens a session (the
/// API's `verify`, and the web pages' wallet sign-in).
pub(crate) async fn sign_in(
    state: &AppState,
    request: &VerifyRequest,
) -> ApiResult<SessionResponse> {
    let domain = state.public_url.domain().to_string();
    let now = utc::now_unix();
    let message = check_message(request, &domain, &state.config.sign_in_chain_ids, now)?;
    let nonce_expires = state
        .nonce_key
        .check(&message.nonce, &domain, now)
        .map_err(|e| ApiError::unauthorized("message.nonce", e.to_string()))?;
    let did = message.did().to_string();
    let now_text = utc::format_seconds(now);
    let domain_key = domain.to_ascii_lowercase();

    // Single use: the nonce is recorded by the sign-in that uses it, and
    // kept until it expires (after which its tag no longer checks).
    let mut tx = state.store.begin().await?;
    let issued = nonce_expires - NONCE_TTL_SECS;
    if !db::use_nonce(
        &mut tx,
        &message.nonce,
        &domain_key,
        issued,
        nonce_expires,
        now,
        &did,
    )
    .await?
    {
        tracing::warn!(principal = %Pseudonym::of(&did), "sign-in refused: nonce replayed");
        return Err(ApiError::unauthorized(
            "message.nonce",
            "nonce already used: this sign-in message was replayed",
        ));
    }
    db::ensure_principal(&mut tx, &did, &now_text).await?;
    let first = db::mark_first_sign_in(&mut tx, &did, &now_text).await?;
    let is_machine = crate::machines::db::is_registered(&mut *tx, &did).await?;
    let mut granted = Vec::new();
    if first && !is_machine {
        for role in FIRST_SIGN_IN_ROLES {
            if db::insert_role(&mut tx, &did, role, "server", &now_text).await? {
                granted.push(role.as_str());
                let details = super::audit_details(&serde_json::json!({
                    "role": role.as_str(),
                    "reason": "first sign-in",
                }));
                crate::audit::append(&mut tx, "server", "role.grant", &did, &details).await?;
            }
        }
    }
    let expires = message
        .expiration_time
        .as_ref()
        .map_or(i64::MAX, |t| t.unix_seconds())
        .min(now + session::DEFAULT_TTL_SECS);
    let token = session::issue_in(&mut tx, &did, expires).await?;
    let details = super::audit_details(&serde_json::json!({
        "domain": domain_key,
        "expiresAt": utc::format_seconds(expires),
        "firstSignIn": first,
    }));
    crate::audit::append(&mut tx, &did, "auth.sign_in", &did, &details).await?;
    tx.commit().await?;
    let principal = Pseudonym::of(&did);
    for role in granted {
        tracing::info!(%principal, role, by = "server", "role granted");
    }
    tracing::info!(%principal, first_sign_in = first, "signed in");

    let roles = roles_of(&state.store, &did).await?;
    Ok(SessionResponse {
        token: token.expose().to_string(),
        did,
        roles,
        expires_at: utc::format_seconds(expires),
    })
}

/// The caller's DID and roles.
#[utoipa::path(get, path = sealstream_api::routes::ME, tag = "auth",
    security(("session" = [])),
    responses(
        (status = 200, description = "The caller", body = MeResponse)))]
pub(crate) async fn me(principal: Principal) -> Json<MeResponse> {
    Json(MeResponse {
        roles: principal.roles.clone(),
        did: principal.did,
    })
}

/// Ends the caller's session (the token stops working at once).
#[utoipa::path(post, path = sealstream_api::routes::AUTH_LOGOUT, tag = "auth",
    security(("session" = [])),
    responses(
        (status = 204, description = "Signed out")))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let token = bearer_of(&headers)?;
    let mut tx = state.store.begin().await?;
    if session::revoke_in(&mut tx, &token).await? {
        let details = super::audit_details(&serde_json::json!({}));
        crate::audit::append(
            &mut tx,
            &principal.did,
            "auth.sign_out",
            &principal.did,
            &details,
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(principal = %Pseudonym::of(&principal.did), "signed out");
    Ok(StatusCode::NO_CONTENT)
}

fn bearer_of(headers: &HeaderMap) -> ApiResult<String> {
    bearer(headers)?
        .map(str::to_string)
        .ok_or_else(|| ApiError::unauthorized("Authorization", "no session token"))
}

/// Makes a link that signs the caller in to the web pages once, within
/// [`session::WEB_LINK_TTL_SECS`] (`sealstream market login --web`).
#[utoipa::path(post, path = sealstream_api::routes::AUTH_WEB_LINK, tag = "auth",
    security(("session" = [])),
    responses(
        (status = 200, description = "A single-use sign-in link for a browser", body = WebLinkResponse)))]
pub(crate) async fn web_link(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<WebLinkResponse>> {
    let expires = utc::now_unix() + session::WEB_LINK_TTL_SECS;
    let mut tx = state.store.begin().await?;
    let token = session::issue_web_link_in(&mut tx, &principal.did, expires).await?;
    let details = super::audit_details(&serde_json::json!({
        "expiresAt": utc::format_seconds(expires),
    }));
    crate::audit::append(
        &mut tx,
        &principal.did,
        "auth.web_link",
        &principal.did,
        &details,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(principal = %Pseudonym::of(&principal.did), "web sign-in link made");
    Ok(Json(WebLinkResponse {
        url: format!(
            "{}/signin/link?token={}",
            state.public_url.base().trim_end_matches('/'),
            token.expose()
        ),
        expires_at: utc::format_seconds(expires),
    }))
}
