//! Chain state: where the next chunk goes, saved between batches and restarts.

use crate::error::ValidationError;
use crate::json::{self, Map, Value};

/// The position of the next chunk of a chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainState {
    /// Index the next chunk gets.
    pub next_index: u64,
    /// Id of the last chunk (`None` before the first).
    pub previous_chunk_id: Option<String>,
}

impl ChainState {
    /// The state of a new, empty chain.
    pub fn new() -> Self {
        ChainState::default()
    }

    /// The state after `envelope`, to continue a chain that ends with it.
    pub fn after(envelope: &super::ChunkEnvelope) -> Self {
        ChainState {
            next_index: envelope.index + 1,
            previous_chunk_id: Some(envelope.chunk_id.clone()),
        }
    }

    /// `{"nextIndex": N, "previousChunkId": "0x…"|null}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("nextIndex".into(), Value::from(self.next_index));
        m.insert(
            "previousChunkId".into(),
            self.previous_chunk_id.clone().into(),
        );
        Value::Object(m)
    }

    /// Read the form [`ChainState::to_json`] writes.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ValidationError::new("chain state", "expected an object"))?;
        let next_index = obj
            .get("nextIndex")
            .and_then(Value::as_number)
            .and_then(json::Number::as_u64)
            .ok_or_else(|| ValidationError::new("nextIndex", "required non-negative integer"))?;
        let previous_chunk_id = match obj.get("previousChunkId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ValidationError::new(
                    "previousChunkId",
                    "expected a string or null",
                ))
            }
        };
        if (next_index == 0) != previous_chunk_id.is_none() {
            return Err(ValidationError::new(
                "previousChunkId",
                "null exactly when nextIndex is 0",
            ));
        }
        Ok(ChainState {
            next_index,
            previous_chunk_id,
        })
    }
}
