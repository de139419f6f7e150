//! The reference P2P wire as a peer sends it: a stream of
//! `peaqos-json-frame-v1` lines through `FrameReader` (bounded frames and
//! transfer), and the input as a `peaqos-p2p://` URL. Nothing may panic; a
//! decoded frame encodes to a line that decodes to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_p2p::reference::{ConnectUrl, Frame, FrameReader};

fuzz_target!(|data: &[u8]| {
    let mut reader = FrameReader::new(std::io::Cursor::new(data), Some(1 << 16));
    while let Ok(Some(frame)) = reader.next_frame() {
        let line = frame.encode();
        assert_eq!(Frame::decode(&line[..line.len() - 1]).unwrap(), frame);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(url) = ConnectUrl::parse(text) {
            assert!(!url.addr.is_empty() && !url.session.is_empty());
        }
    }
});
