//! `DataEventMap::parse` (the agent's YAML configuration) on arbitrary UTF-8.
//! The base directory does not exist, so every key file named is simply an
//! unreadable-file problem. An error must list at least one problem, and every
//! problem must display.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sealstream_agent::config::{ConfigError, DataEventMap};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match DataEventMap::parse(text, Path::new("/nonexistent-fuzz-base")) {
        Ok(map) => {
            let _ = format!("{map:?}");
        }
        Err(e) => {
            if matches!(e, ConfigError::Invalid { .. }) {
                assert!(!e.problems().is_empty(), "Invalid without a problem");
            }
            for problem in e.problems() {
                let _ = problem.to_string();
            }
            let _ = e.to_string();
        }
    }
});
