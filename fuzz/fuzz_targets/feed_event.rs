//! `read_feed_event` (the server-sent events of a subscription's feed, as
//! `sealstream follow` reads them from the network): any bytes give events,
//! an end, or an error — never a panic — and reading stops.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_api::subscriptions::read_feed_event;

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    // Bounded: an event takes at least one line of the input.
    for _ in 0..=data.len() {
        match read_feed_event(&mut input) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
