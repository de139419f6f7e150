//! ROS 2 message definitions and CDR payloads: the input is
//! `<root type name>\n<definition text>\0<payload>`. `Registry::parse` reads
//! the definition; if it parses, `cdr::decode` decodes the payload with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_agent::ros2::{cdr, msgdef::Registry};

fuzz_target!(|data: &[u8]| {
    let (schema, payload) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(schema) = std::str::from_utf8(schema) else {
        return;
    };
    let (root, text) = schema.split_once('\n').unwrap_or((schema, ""));
    match Registry::parse(root, text) {
        Ok(registry) => {
            assert!(registry.get(registry.root()).is_some());
            match cdr::decode(&registry, payload) {
                Ok(fields) => {
                    // One entry per distinct field name: `Registry::parse`
                    // accepts a name twice in one message (ROS 2 does not),
                    // and the later value replaces the earlier one.
                    let def = registry.root_def();
                    let mut names: Vec<&str> = def.fields.iter().map(|f| f.name.as_str()).collect();
                    names.sort_unstable();
                    names.dedup();
                    assert_eq!(fields.len(), names.len());
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
