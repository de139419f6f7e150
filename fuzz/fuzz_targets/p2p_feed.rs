//! The feed protocol as a peer sends it (`/sealstream/feed/1`,
//! `/sealstream/blocks/1`): lines of at most 64 KiB through the bounded
//! line reader, each decoded as a message. Nothing may panic; a decoded
//! message encodes to a line that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_p2p::feed::Message;
use sealstream_p2p::reference::read_line;

fuzz_target!(|data: &[u8]| {
    let mut input = std::io::Cursor::new(data);
    let mut line = Vec::new();
    while let Ok(true) = read_line(&mut input, &mut line, 1 << 16) {
        if let Ok(message) = Message::decode(&line) {
            let encoded = message.encode();
            assert_eq!(
                Message::decode(&encoded[..encoded.len() - 1]).unwrap(),
                message
            );
        }
    }
});
