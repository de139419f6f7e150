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

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now_seconds() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc_seconds(secs)
}

/// Format Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn format_utc_seconds(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc_seconds(1_795_282_537), "2026-11-21T17:35:37Z");
        assert_eq!(format_utc_seconds(951_782_400), "2000-02-29T00:00:00Z");
    }
}
