//! Web sessions: who a browser is signed in as.
//!
//! A browser holds the token of an ordinary session (the same table as the
//! API's bearer tokens, [`crate::auth::session`]) in an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` when the public URL is HTTPS). The
//! cookie is read by the web pages only: the JSON API never looks at it,
//! so no page elsewhere can make a browser call the API as its user.
//!
//! Every form that changes something carries the session's CSRF token
//! ([`crate::auth::session::csrf_token`]), and every web `POST` must come
//! from the server's own origin (the `Origin` header, when the browser
//! sends one, equals the configured public URL's; `Sec-Fetch-Site`, when
//! sent, is `same-origin`): a page elsewhere can neither read the token nor
//! post as the server's own pages.

use axum::http::{header, HeaderMap, HeaderValue};
use subtle::ConstantTimeEq;

use crate::auth::{roles_of, session, Principal};
use crate::error::ApiError;
use crate::server::AppState;

/// The cookie holding a browser's session token.
pub const COOKIE: &str = "sealstream_session";

/// A browser's session: who it is and the token its forms carry.
#[derive(Clone)]
pub struct WebSession {
    /// The signed-in principal and its roles (as the API sees them).
    pub principal: Principal,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    token: String,
}

impl std::fmt::Debug for WebSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSession")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl WebSession {
    /// The session token (to end the session).
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Whether `given` is this session's CSRF token (in constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        given.len() == self.csrf.len() && bool::from(given.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The session token in the request's cookie, if any.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The browser's session: `None` without a cookie or for a session that
/// ended (the page then shows the sign-in link).
pub async fn of(headers: &HeaderMap, state: &AppState) -> Result<Option<WebSession>, ApiError> {
    let Some(token) = cookie_token(headers) else {
        return Ok(None);
    };
    let Some(did) = session::lookup(&state.store, token).await? else {
        return Ok(None);
    };
    let roles = roles_of(&state.store, &did).await?;
    Ok(Some(WebSession {
        principal: Principal { did, roles },
        csrf: session::csrf_token(token),
        token: token.to_string(),
    }))
}

/// Whether a `POST` comes from the server's own pages: it sends at least
/// one of the two headers; its `Origin` (when sent) is the public URL's
/// origin and its `Sec-Fetch-Site` (when sent) is `same-origin`; an
/// `Origin: null` needs `Sec-Fetch-Site: same-origin`.
pub fn same_origin(headers: &HeaderMap, state: &AppState) -> bool {
    let site = headers.get("sec-fetch-site").map(|v| v.to_str());
    let site_ok = match site {
        None => true,
        Some(Ok(site)) => site == "same-origin",
        Some(Err(_)) => false,
    };
    let origin_ok = match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => true,
        // A browser hides the origin under some referrer policies: then
        // only its Sec-Fetch-Site can tell.
        Some(Ok("null")) => matches!(site, Some(Ok("same-origin"))),
        Some(Ok(origin)) => origin.eq_ignore_ascii_case(&state.public_url.sign_in_uri()),
        Some(Err(_)) => false,
    };
    // A post that names neither its origin nor its site is not from a
    // browser page that could prove it came from here: refused.
    let said = headers.contains_key(header::ORIGIN) || site.is_some();
    said && origin_ok && site_ok
}

/// The `Set-Cookie` value that stores `token` until `expires_unix`.
pub fn set_cookie(state: &AppState, token: &str, expires_unix: i64) -> HeaderValue {
    let max_age = (expires_unix - sealstream_core::utc::now_unix()).max(0);
    let secure = if state.public_url.https() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("a hex token and fixed attributes are a valid header value")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(state: &AppState) -> HeaderValue {
    let secure = if state.public_url.https() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    ))
    .expect("fixed attributes are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_must_be_hex() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sealstream_session=00ff; b=2"),
        );
        assert_eq!(cookie_token(&h), Some("00ff"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("sealstream_session=<script>"),
        );
        assert_eq!(cookie_token(&h), None);
        assert_eq!(cookie_token(&HeaderMap::new()), None);
    }
}
