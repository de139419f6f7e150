//! `AgentState::parse` (the agent's `state.json`); a parsed state written
//! with `to_json_bytes` (what `save` writes) parses back to an equal state.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sealstream_agent::state::AgentState;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/fuzz/state.json");
    match AgentState::parse(data, path) {
        Ok(state) => {
            let bytes = state.to_json_bytes();
            let back = AgentState::parse(&bytes, path).expect("round trip parses");
            assert_eq!(back, state);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
