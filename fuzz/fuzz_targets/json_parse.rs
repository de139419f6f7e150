//! `json::parse`: never panics; whatever parses writes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_core::json::{self, canonical, write::to_python_compact};

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = json::parse(data) {
        let compact = to_python_compact(&value);
        let back = json::parse(compact.as_bytes()).expect("compact output parses");
        assert_eq!(to_python_compact(&back), compact);
        let canon = canonical::python(&value);
        let back = json::parse(canon.as_bytes()).expect("canonical output parses");
        assert_eq!(canonical::python(&back), canon);
    }
});
