//! Documents of the formats (`sealstream-core`: chunk envelopes, dataset
//! manifests, buyer access files) carried inside market bodies.
//!
//! The formats are read and written by `sealstream_core::json`, which keeps
//! what their signatures depend on (exact integers, key order); the bodies
//! around them are serde types. A [`JsonDocument`] is such a document inside
//! a body: as the server reads and writes it (serde's value), and turned
//! into the core's value for the format's own parser
//! ([`JsonDocument::to_core`]) or built from it ([`JsonDocument::from_core`]).

use serde::{Deserialize, Serialize};

use sealstream_core::json as core_json;

/// A format document inside a body (shown in the OpenAPI document as an
/// object).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonDocument(pub serde_json::Value);

/// A document that the core's JSON reader refused.
#[derive(Debug, thiserror::Error)]
#[error("not a JSON document the formats read: {0}")]
pub struct DocumentError(#[from] core_json::JsonError);

impl JsonDocument {
    /// The document of a core value (its text, read back).
    pub fn from_core(value: &core_json::Value) -> JsonDocument {
        let text = core_json::write::to_python_compact(value);
        JsonDocument(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// The document as the core's value, for a format's `from_json`.
    pub fn to_core(&self) -> Result<core_json::Value, DocumentError> {
        let text = serde_json::to_vec(&self.0).unwrap_or_default();
        Ok(core_json::parse(&text)?)
    }

    /// The serde value (as the server stores and checks it).
    pub fn as_value(&self) -> &serde_json::Value {
        &self.0
    }

    /// Whether the document is `null`.
    pub fn is_null(&self) -> bool {
        self.0.is_null()
    }
}

/// Any body as the core's JSON value, its keys in the order the body
/// writes them (for tools that print answers as the reference prints
/// JSON).
pub fn core_value_of<T: Serialize>(body: &T) -> Result<core_json::Value, DocumentError> {
    let text = serde_json::to_vec(body).unwrap_or_default();
    Ok(core_json::parse(&text)?)
}

impl From<serde_json::Value> for JsonDocument {
    fn from(value: serde_json::Value) -> Self {
        JsonDocument(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_cross_between_the_core_and_serde() {
        let core =
            core_json::parse(br#"{"b":1,"a":[true,null,"\u00e9"],"n":12345678901234}"#).unwrap();
        let doc = JsonDocument::from_core(&core);
        assert_eq!(doc.0["n"], serde_json::json!(12345678901234u64));
        assert_eq!(doc.0["a"][2], serde_json::json!("é"));
        let back = doc.to_core().unwrap();
        assert_eq!(back.get("b"), core.get("b"));
        assert_eq!(back.get("a"), core.get("a"));
    }

    #[test]
    fn bodies_keep_their_key_order() {
        #[derive(Serialize)]
        struct Body {
            zulu: u8,
            alpha: &'static str,
        }
        let v = core_value_of(&Body {
            zulu: 1,
            alpha: "a",
        })
        .unwrap();
        assert_eq!(
            core_json::write::to_python_compact(&v),
            r#"{"zulu":1,"alpha":"a"}"#
        );
    }
}
