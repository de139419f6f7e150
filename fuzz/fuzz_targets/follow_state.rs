//! `FollowState::parse` (the state file `sealstream follow` keeps beside its
//! output, read back after a crash): any text is read or refused with its
//! line, never a panic; a text it accepts renders to a text that reads back
//! to the same state, and renders the same again.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The parser is a file of its own in sealstream-client that depends on
// nothing else of the crate (the client's HTTP and TLS stack is not built
// here).
#[path = "../../crates/sealstream-client/src/follow_state.rs"]
#[allow(dead_code)]
mod follow_state;

use follow_state::FollowState;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(state) = FollowState::parse(text) {
        let rendered = state.render();
        let again = FollowState::parse(&rendered).expect("a rendered state reads back");
        assert_eq!(again, state);
        assert_eq!(again.render(), rendered);
    }
});
