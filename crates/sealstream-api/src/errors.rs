//! The refusal shape, `{"error": {"field": F, "message": M}}`, and the
//! strict decoders of request bodies and query strings whose refusals name
//! the part at fault.
//!
//! `field` names the request part at fault: a JSON path such as
//! `recipients[1].publicKeyHex`, a path or query parameter, a header, a
//! multipart part, or `body`; it is `null` when no single part is.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The body of every refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// The request part at fault: a JSON path (`recipients[1].publicKeyHex`),
    /// a path or query parameter, a header, a multipart part, or `body`;
    /// `null` when no single part is.
    pub field: Option<String>,
    /// What is wrong, for a person to read.
    pub message: String,
}

impl ErrorBody {
    /// A refusal naming `field` (or no field).
    pub fn new(field: Option<&str>, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                field: field.map(str::to_string),
                message: message.into(),
            },
        }
    }
}

/// A request part that is malformed or invalid: the field (a JSON path, a
/// parameter name, `body`, `query`) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The part at fault.
    pub field: String,
    /// What is wrong, for a person to read.
    pub message: String,
}

impl FieldError {
    /// `field` is wrong: `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<sealstream_core::ValidationError> for FieldError {
    fn from(e: sealstream_core::ValidationError) -> Self {
        FieldError::new(e.field, e.constraint)
    }
}

/// A name outside the set an enum of the API accepts; the text says what
/// was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnknownName(pub &'static str);

/// Decodes `bytes` as a JSON document into `T`, naming the first bad field
/// (`items[1].publicKeyHex`; `body` for the document as a whole). Types
/// meant to be strict carry `#[serde(deny_unknown_fields)]`: an unknown
/// field is then refused by its name. Bytes after the document are refused.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FieldError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." || path.is_empty() {
            "body".to_string()
        } else {
            path
        };
        FieldError::new(field, json_message(&inner))
    })?;
    de.end()
        .map_err(|e| FieldError::new("body", json_message(&e)))?;
    Ok(value)
}

/// serde_json's message without its "at line 1 column 7" suffix, which
/// names a position the field already names better.
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) if e.line() > 0 => text[..i].to_string(),
        _ => text,
    }
}

/// Decodes a query string (without its `?`) into `T`, naming the first bad
/// parameter (`query` when none is: a parameter missing, or a malformed
/// string). The message starts with `query string: `.
pub fn decode_query<T: DeserializeOwned>(query: &str) -> Result<T, FieldError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // An unknown parameter's path is its own name; a missing one's is
        // the query as a whole.
        let field = if path == "." || path.is_empty() {
            match unknown_field(&message) {
                Some(name) if !name.is_empty() => name.to_string(),
                _ => "query".to_string(),
            }
        } else {
            path
        };
        FieldError::new(field, format!("query string: {message}"))
    })
}

/// The name in serde's "unknown field `NAME`, expected …".
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(name, _)| name)
}

/// `value` as a query string (without `?`): its fields in declaration
/// order, absent ones left out, names and values form-encoded.
pub fn encode_query<T: Serialize>(value: &T) -> String {
    serde_urlencoded::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Inner {
        public_key_hex: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        items: Vec<Inner>,
    }

    #[test]
    fn names_the_bad_field() {
        let e = decode_json::<Outer>(
            br#"{"name":"a","items":[{"publicKeyHex":"x"},{"publicKeyHex":3}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "items[1].publicKeyHex");
        assert!(e.message.contains("invalid type"), "{}", e.message);
    }

    #[test]
    fn names_unknown_and_missing_fields() {
        let e = decode_json::<Outer>(br#"{"name":"a","items":[],"extra":1}"#).unwrap_err();
        assert_eq!(e.field, "extra");
        assert!(e.message.contains("unknown field `extra`"), "{}", e.message);
        let e = decode_json::<Outer>(br#"{"items":[]}"#).unwrap_err();
        assert_eq!(e.field, "body");
        assert!(e.message.contains("missing field `name`"), "{}", e.message);
    }

    #[derive(Debug, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Page {
        #[serde(skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        link: Option<String>,
    }

    #[test]
    fn query_refusals_name_the_parameter() {
        let page: Page = decode_query("limit=5&link=x%20y").unwrap();
        assert_eq!((page.limit, page.link.as_deref()), (Some(5), Some("x y")));
        let e = decode_query::<Page>("limit=five").unwrap_err();
        assert_eq!(e.field, "limit");
        let e = decode_query::<Page>("link=a&colour=red").unwrap_err();
        assert_eq!(e.field, "colour");
        assert!(
            e.message.contains("unknown field `colour`"),
            "{}",
            e.message
        );
        let e = decode_query::<Page>("=x").unwrap_err();
        assert_eq!(e.field, "query");
    }

    #[test]
    fn queries_round_trip() {
        let page = Page {
            limit: Some(5),
            link: Some("a b&c".into()),
        };
        let text = encode_query(&page);
        assert_eq!(text, "limit=5&link=a+b%26c");
        let back: Page = decode_query(&text).unwrap();
        assert_eq!(back.link.as_deref(), Some("a b&c"));
        let none = Page {
            limit: None,
            link: None,
        };
        assert_eq!(encode_query(&none), "");
    }

    #[test]
    fn malformed_json_and_trailing_bytes_are_refused() {
        assert!(decode_json::<Outer>(b"{\"name\":").is_err());
        let e = decode_json::<Outer>(br#"{"name":"a","items":[]} x"#).unwrap_err();
        assert_eq!(e.field, "body");
    }
}
