//! Verified, streaming ingest of chunk chains, and reading them back
//! (docs/market-design.md, "Ingest").
//!
//! - [`upload`]: `PUT /v1/machines/{did}/topics/{topic}/chunks/{index}`,
//!   a `multipart/form-data` body with the `envelope` part first and the
//!   `ciphertext` part streamed to the object store while it is hashed.
//! - [`checks`]: what an envelope must satisfy before anything is stored.
//! - [`read`]: the chains of a machine, its chunks' envelopes and
//!   ciphertext, for the machine, its owner and admins.
//! - [`db`]: chains and chunks in the database, for ingest and for the
//!   datasets, listings and orders that read them.
//!
//! The topic is a path segment, percent-encoded (`%2Fsensor%2Fgps`); it is
//! kept as text in the database, and objects are keyed by its SHA-256
//! ([`object_key`]).

pub mod checks;
pub mod db;
pub mod read;
pub mod upload;

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::auth::canonical_did;
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use db::db_index;

/// Longest topic accepted, in bytes.
pub const MAX_TOPIC_LEN: usize = 1024;

/// The upload route (the server gives it the chunk body limit and the
/// upload timeout).
pub fn upload_routes() -> Router<AppState> {
    upload::routes()
}

/// The read routes (bodiless GETs; they go under the small body limit).
pub fn read_routes() -> Router<AppState> {
    read::routes()
}

/// The object key of a chunk's ciphertext:
/// `chunks/<machine address, lowercase hex>/<SHA-256 of the topic, hex>/<index, 20 digits>-<chunk id>`.
/// `machine_did` is a canonical DID and `chunk_id` a verified chunk id, so
/// the key is plain ASCII with no empty or dot segments.
pub fn object_key(machine_did: &str, topic: &str, index: u64, chunk_id: &str) -> String {
    let address = machine_did
        .rsplit_once(':')
        .map_or(machine_did, |(_, a)| a)
        .trim_start_matches("0x")
        .to_ascii_lowercase();
    let topic_hash = hex::encode(Sha256::digest(topic.as_bytes()));
    format!("chunks/{address}/{topic_hash}/{index:020}-{chunk_id}")
}

/// A topic from a request path: non-empty, at most [`MAX_TOPIC_LEN`] bytes,
/// no control characters.
pub fn check_topic(topic: &str) -> ApiResult<()> {
    if topic.is_empty() {
        return Err(ApiError::bad_request("topic", "must not be empty"));
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(ApiError::bad_request(
            "topic",
            format!("longer than {MAX_TOPIC_LEN} bytes"),
        ));
    }
    if topic.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "topic",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A chunk index from a request path or query (`field`).
pub fn parse_index(text: &str, field: &str) -> ApiResult<u64> {
    let index: u64 = text
        .parse()
        .map_err(|_| ApiError::bad_request(field, "expected a non-negative integer"))?;
    if db_index(index).is_none() {
        return Err(ApiError::bad_request(field, "too large"));
    }
    Ok(index)
}

/// Turns a path that did not decode (bad percent-encoding, not UTF-8) into
/// a 400 naming the parameter.
pub(crate) fn path_error(rejection: PathRejection) -> ApiError {
    crate::error::path_rejection(rejection)
}

/// `/v1/machines/{did}/topics/{topic}`: the machine's canonical DID and the
/// topic.
pub(crate) fn topic_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<(String, String)> {
    let Path((did, topic)) = path.map_err(path_error)?;
    let did = canonical_did(&did, "did")?;
    check_topic(&topic)?;
    Ok((did, topic))
}

/// `/v1/machines/{did}/topics/{topic}/chunks/{index}…`: the machine's
/// canonical DID, the topic and the index.
pub(crate) fn chunk_path(
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult<(String, String, u64)> {
    let Path((did, topic, index)) = path.map_err(path_error)?;
    let did = canonical_did(&did, "did")?;
    check_topic(&topic)?;
    let index = parse_index(&index, "index")?;
    Ok((did, topic, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_hide_the_topic_and_sort_by_index() {
        let did = "did:peaq:0xAbCdEf0123456789aBcDeF0123456789AbCdEf01";
        let key = object_key(did, "/sensor/gps", 7, "0xff");
        assert_eq!(
            key,
            format!(
                "chunks/abcdef0123456789abcdef0123456789abcdef01/{}/00000000000000000007-0xff",
                hex::encode(Sha256::digest(b"/sensor/gps"))
            )
        );
        assert!(object_key(did, "/a", 10, "x") > object_key(did, "/a", 9, "x"));
        assert!(object_store::path::Path::parse(&key).is_ok());
    }

    #[test]
    fn topics_and_indexes_are_checked() {
        assert!(check_topic("/sensor/gps").is_ok());
        assert_eq!(check_topic("").unwrap_err().field.as_deref(), Some("topic"));
        assert!(check_topic("a\nb").is_err());
        assert!(check_topic(&"x".repeat(MAX_TOPIC_LEN + 1)).is_err());
        assert_eq!(parse_index("12", "index").unwrap(), 12);
        assert!(parse_index("-1", "index").is_err());
        assert!(parse_index("18446744073709551615", "index").is_err());
    }
}
