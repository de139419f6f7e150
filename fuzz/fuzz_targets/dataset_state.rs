//! `ResumableDataset::from_json` and `DatasetBuilder::from_json` (the saved
//! state of an open dataset window) after `json::parse`. A restored state
//! saves to the same JSON after another round trip (as a value and as text);
//! then a chunk fitted to the state is pushed (exercising the restored Merkle
//! frontier and SHA-256 midstate), the state round-trips again, and `finish`
//! makes a manifest.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealstream_core::chunk::ChunkEnvelope;
use sealstream_core::dataset::{DatasetBuilder, DatasetInfo, ResumableDataset};
use sealstream_core::json::{self, Value};

fn example_chunk() -> &'static ChunkEnvelope {
    static CHUNK: OnceLock<ChunkEnvelope> = OnceLock::new();
    CHUNK.get_or_init(|| {
        ChunkEnvelope::parse(include_bytes!("../../docs/examples/chunk-0.json"))
            .expect("docs/examples/chunk-0.json parses")
    })
}

/// `from_json(to_json(x))` saves as `to_json(x)`, also through JSON text.
fn round_trip<T>(
    saved: &Value,
    from_json: impl Fn(&Value) -> Result<T, sealstream_core::ValidationError>,
    to_json: impl Fn(&T) -> Value,
) {
    let again = from_json(saved).expect("saved state restores");
    assert_eq!(&to_json(&again), saved);
    let text = json::write::to_python_compact(saved);
    let reparsed = json::parse(text.as_bytes()).expect("saved state is JSON");
    let again = from_json(&reparsed).expect("saved state restores from text");
    assert_eq!(&to_json(&again), saved);
}

/// A copy of the example chunk that extends a dataset saved as `saved`.
fn fitted_chunk(saved: &Value, next_index: Option<u64>) -> ChunkEnvelope {
    let mut env = example_chunk().clone();
    let s = |k: &str| {
        let v = saved.as_object().and_then(|o| o.get(k));
        v.and_then(Value::as_str).map(str::to_string)
    };
    if let Some(index) = next_index {
        env.index = index;
        env.previous_chunk_id = s("headChunkId");
    }
    if let Some(did) = s("machineDid") {
        env.signature.machine_did = did;
    }
    if let Some(key) = s("chainPublicKeyHex") {
        env.signature.public_key_hex = key;
    }
    env
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = json::parse(data) else { return };

    if let Ok(mut dataset) = ResumableDataset::from_json(&value) {
        let saved = dataset.to_json();
        round_trip(
            &saved,
            ResumableDataset::from_json,
            ResumableDataset::to_json,
        );
        let _ = (dataset.count(), dataset.source_len(), dataset.source_hash());
        let _ = dataset.finish(DatasetInfo::default()).map(|m| m.to_json());
        let env = fitted_chunk(&saved, dataset.next_index());
        if dataset.push(&env, data).is_ok() {
            assert_eq!(dataset.head_chunk_id(), Some(env.chunk_id.as_str()));
            let saved = dataset.to_json();
            round_trip(
                &saved,
                ResumableDataset::from_json,
                ResumableDataset::to_json,
            );
            let manifest = dataset
                .finish(DatasetInfo::default())
                .expect("a dataset with a chunk has a manifest");
            let _ = manifest.to_json();
        }
    }

    if let Ok(mut builder) = DatasetBuilder::from_json(&value) {
        let saved = builder.to_json();
        round_trip(&saved, DatasetBuilder::from_json, DatasetBuilder::to_json);
        let _ = builder.clone().finish(DatasetInfo::default());
        let env = fitted_chunk(&saved, None);
        if builder.push(&env).is_ok() {
            let saved = builder.to_json();
            round_trip(&saved, DatasetBuilder::from_json, DatasetBuilder::to_json);
            let _ = builder.finish(DatasetInfo::default()).map(|m| m.to_json());
        }
    }
});
