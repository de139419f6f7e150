//! `ChainState::from_json` after `json::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_core::chunk::ChainState;
use sealstream_core::json;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = json::parse(data) else { return };
    if let Ok(state) = ChainState::from_json(&value) {
        assert_eq!(
            ChainState::from_json(&state.to_json()).expect("round trip"),
            state
        );
    }
});
