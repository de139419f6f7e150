//! `GapScanner` (the gap records `consume` finds in decrypted chunks): the
//! first byte picks where the rest is cut into two pieces; the records found
//! do not depend on the cut, and a record found is a gap that writes back
//! to fields that read back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_core::gap::{Gap, GapScanner};

fn scan(pieces: &[&[u8]]) -> Vec<Result<Gap, String>> {
    let mut scanner = GapScanner::new();
    let mut found = Vec::new();
    for piece in pieces {
        found.extend(scanner.push(piece));
    }
    found.extend(scanner.finish());
    found
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let whole = scan(&[rest]);
    let at = usize::from(cut).min(rest.len());
    assert_eq!(scan(&[&rest[..at], &rest[at..]]), whole);
    for gap in whole.iter().flatten() {
        assert_eq!(Gap::from_fields(&gap.to_fields()).as_ref(), Ok(gap));
    }
});
