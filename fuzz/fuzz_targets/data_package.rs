//! `DataPackage::from_json` after `json::parse`, then `verify`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_core::json;
use sealstream_core::package::DataPackage;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = json::parse(data) else { return };
    if let Ok(package) = DataPackage::from_json(&value) {
        let _ = package.verify();
        let back = DataPackage::from_json(&package.to_json()).expect("round trip");
        assert_eq!(back.to_json_line(), package.to_json_line());
    }
});
