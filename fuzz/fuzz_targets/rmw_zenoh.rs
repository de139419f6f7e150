//! What a live ROS 2 source parses of each Zenoh sample: the key expression
//! (`ros2::rmw_zenoh::parse_topic_key`) and the attachment
//! (`Attachment::parse`). The input is `<key>\0<attachment>`. Neither may
//! panic; a parsed attachment encodes back to the same bytes, and a parsed
//! key's type maps back to the DDS name it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_agent::ros2::rmw_zenoh::{dds_type_name, parse_topic_key, Attachment};

fuzz_target!(|data: &[u8]| {
    let (key, attachment) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Some(a) = Attachment::parse(attachment) {
        assert_eq!(a.encode(), attachment);
        assert_eq!(a.gid_hex().len(), 32);
    }
    let Ok(key) = std::str::from_utf8(key) else {
        return;
    };
    for domain in [0, 7] {
        if let Some(k) = parse_topic_key(domain, key) {
            assert!(k.topic.starts_with('/'));
            let dds = dds_type_name(&k.ros_type).expect("a parsed type maps back");
            assert!(key.contains(&format!("/{dds}/")));
        }
    }
});
