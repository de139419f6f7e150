//! API errors and the strict extractors: the JSON body ([`ApiJson`]), path
//! parameters ([`ApiPath`]) and the query string ([`ApiQuery`]), whose
//! refusals name the part at fault.
//!
//! Every refusal is a JSON body `{"error": {"field": F, "message": M}}`,
//! where `field` names the request part at fault (a JSON path such as
//! `recipients[1].publicKeyHex`, a path or query parameter, a header) or is
//! `null` when no single part is.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sealstream_api::errors::{ErrorBody, FieldError};
use serde::de::DeserializeOwned;

use crate::store::StoreError;

/// A refusal or failure, turned into a JSON response.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The request part at fault, if one is.
    pub field: Option<String>,
    /// What is wrong, for a person to read.
    pub message: String,
}

impl ApiError {
    /// A refusal with `status`.
    pub fn new(status: StatusCode, field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    /// 400: `field` is malformed or invalid.
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(field), message)
    }

    /// 422: `field` is well formed but does not check out (a signature, a
    /// hash, a link).
    pub fn unprocessable(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, Some(field), message)
    }

    /// 401: no valid session (or a failed sign-in).
    pub fn unauthorized(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, Some(field), message)
    }

    /// 403: signed in, but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, None, message)
    }

    /// 404: `what` does not exist (or is not visible to the caller).
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, what)
    }

    /// 409: conflicts with what is stored.
    pub fn conflict(field: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, field, message)
    }

    /// 429: a limit is reached; `message` names it and when to retry.
    pub fn too_many_requests(field: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, field, message)
    }

    /// 413: the body is larger than the route accepts.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("body"),
            format!("request body larger than {limit} bytes"),
        )
    }

    /// 500: logged with its cause; the caller sees only that it failed.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            format!("internal error ({context})"),
        )
    }

    /// A database failure: 503 (with `Retry-After`) when it is transient,
    /// a deadlock or a serialisation failure between concurrent
    /// transactions (replicas on PostgreSQL) or a busy database, which the
    /// same request, sent again, gets past; else 500 ([`ApiError::internal`]).
    pub fn database(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            tracing::warn!("database conflict, the client is asked to retry: {e}");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the database is busy with a conflicting change: try again",
            );
        }
        Self::internal("database", e)
    }

    /// The refusal's body, [`ErrorBody`].
    pub fn error_body(&self) -> ErrorBody {
        ErrorBody::new(self.field.as_deref(), self.message.clone())
    }

    /// The JSON body, as a value (to add to).
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(self.error_body()).unwrap_or_default()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} {field}: {}", self.status.as_u16(), self.message),
            None => write!(f, "{} {}", self.status.as_u16(), self.message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), "{}", self.message);
        } else {
            // Refusals name the field and never carry secrets.
            tracing::warn!(status = self.status.as_u16(), "refused: {self}");
        }
        let body = serde_json::to_vec(&self.error_body()).unwrap_or_default();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// A malformed or invalid request part: 400 naming it.
impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::bad_request(&e.field, e.message)
    }
}

/// Whether `e` is a conflict between transactions that the same request,
/// sent again, gets past: PostgreSQL's deadlock (40P01), serialisation
/// failure (40001) and lock not available (55P03); SQLite's busy (5) and
/// locked (6), with their extended codes (517 a busy snapshot, 261, 262, …).
fn is_transient(e: &sqlx::Error) -> bool {
    let Some(code) = e.as_database_error().and_then(|d| d.code()) else {
        return false;
    };
    match code.parse::<i64>() {
        Ok(sqlite) => matches!(sqlite & 0xff, 5 | 6),
        Err(_) => matches!(code.as_ref(), "40P01" | "40001" | "55P03"),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(e) => ApiError::database(e),
            other => ApiError::internal("database", other),
        }
    }
}

impl From<crate::store::DbError> for ApiError {
    fn from(e: crate::store::DbError) -> Self {
        match e {
            crate::store::DbError::Database(e) => ApiError::database(e),
            crate::store::DbError::Inconsistent { context, message } => {
                ApiError::internal(context, message)
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::database(e)
    }
}

impl From<crate::audit::AppendError> for ApiError {
    fn from(e: crate::audit::AppendError) -> Self {
        ApiError::internal("audit log", e)
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON request body, decoded with the path of the first bad field in the
/// error (`serde_path_to_error`). Types meant to be strict carry
/// `#[serde(deny_unknown_fields)]`; an unknown field is then a 400 naming it.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_rejection(rejection.status(), rejection.body_text()))?;
        decode_json(&bytes).map(ApiJson)
    }
}

/// Path parameters, decoded as axum's [`Path`] does; a parameter that does
/// not decode (bad percent-encoding, not UTF-8, not of its type) is a 400
/// naming it.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

/// A path that did not decode, as a 400 naming the parameter (or `path`
/// when no single one is at fault).
pub fn path_rejection(rejection: PathRejection) -> ApiError {
    let field = match &rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key }
            | ErrorKind::ParseErrorAtKey { key, .. }
            | ErrorKind::DeserializeError { key, .. } => key.clone(),
            _ => "path".to_string(),
        },
        _ => "path".to_string(),
    };
    ApiError::bad_request(&field, rejection.body_text())
}

/// The query string, decoded into `T` with the name of the first bad
/// parameter in the error (types meant to be strict carry
/// `#[serde(deny_unknown_fields)]`; an unknown parameter is then a 400
/// naming it).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        decode_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Decodes a query string into `T`, naming the first bad parameter
/// ([`sealstream_api::errors::decode_query`]).
pub fn decode_query<T: DeserializeOwned>(query: &str) -> ApiResult<T> {
    Ok(sealstream_api::errors::decode_query(query)?)
}

/// Turns a failed body read into a 413 (over the limit) or a 400.
pub fn body_rejection(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, Some("body"), "request body too large")
    } else {
        ApiError::new(status, Some("body"), text)
    }
}

/// Decodes `bytes` as JSON into `T`, naming the first bad field
/// ([`sealstream_api::errors::decode_json`]).
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    Ok(sealstream_api::errors::decode_json(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<u32>,
    }

    /// The decoders are sealstream-api's (tested there); a refusal is a
    /// 400 naming the part at fault, in the JSON error shape.
    #[test]
    fn decoding_refusals_are_400_naming_the_field() {
        let e = decode_json::<Page>(br#"{"limit":"x"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("limit"));
        let e = decode_query::<Page>("colour=red").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("colour"));
        assert_eq!(
            serde_json::to_string(&e.error_body()).unwrap(),
            format!(
                r#"{{"error":{{"field":"colour","message":{:?}}}}}"#,
                e.message
            )
        );
    }
}
