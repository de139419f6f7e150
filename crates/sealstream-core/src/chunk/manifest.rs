//! The publish manifest (`manifest.json`), unsigned in v1.

use crate::error::ValidationError;
use crate::json::{self, Map, Value};

use super::envelope::CHUNK_SCHEMA_VERSION;

/// `manifest.json` as `peaqos stream publish` writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct PublishManifest {
    /// `0x` + SHA-256 of the whole input.
    pub source_hash: String,
    /// Number of chunks.
    pub total_chunks: u64,
    /// Bytes per chunk.
    pub chunk_size: u64,
    /// The machine DID.
    pub machine_did: String,
    /// Creation time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub created_at: String,
    /// Other fields (such as `s3Bucket`), kept in order.
    pub extra: Map,
}

impl PublishManifest {
    /// Wire JSON in the reference's key order.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("schemaVersion".into(), Value::from(CHUNK_SCHEMA_VERSION));
        m.insert("sourceHash".into(), Value::from(self.source_hash.as_str()));
        m.insert("totalChunks".into(), Value::from(self.total_chunks));
        m.insert("chunkSize".into(), Value::from(self.chunk_size));
        m.insert("machineDid".into(), Value::from(self.machine_did.as_str()));
        m.insert("createdAt".into(), Value::from(self.created_at.as_str()));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }

    /// `json.dumps(manifest, indent=2) + "\n"`.
    pub fn to_pretty_json(&self) -> String {
        json::write::to_python_pretty(&self.to_json())
    }

    /// Read a manifest; `sourceHash`, `totalChunks`, `chunkSize`, `machineDid` are required.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ValidationError::new("manifest", "expected a JSON object"))?;
        if obj.get("schemaVersion").and_then(Value::as_str) != Some(CHUNK_SCHEMA_VERSION) {
            return Err(ValidationError::new(
                "schemaVersion",
                format!("expected {CHUNK_SCHEMA_VERSION}"),
            ));
        }
        let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| {
            obj.get(k)
                .and_then(Value::as_number)
                .and_then(json::Number::as_u64)
        };
        let mut extra = obj.clone();
        for k in [
            "schemaVersion",
            "sourceHash",
            "totalChunks",
            "chunkSize",
            "machineDid",
            "createdAt",
        ] {
            extra.shift_remove(k);
        }
        Ok(PublishManifest {
            source_hash: s("sourceHash")
                .ok_or_else(|| ValidationError::new("sourceHash", "required string"))?,
            total_chunks: n("totalChunks")
                .ok_or_else(|| ValidationError::new("totalChunks", "required integer"))?,
            chunk_size: n("chunkSize")
                .ok_or_else(|| ValidationError::new("chunkSize", "required integer"))?,
            machine_did: s("machineDid")
                .ok_or_else(|| ValidationError::new("machineDid", "required string"))?,
            created_at: s("createdAt").unwrap_or_default(),
            extra,
        })
    }
}
