//! `journal::Record::parse_line` (one line of a live source's journal); a
//! parsed record re-serialised with `Record::to_line` is a single line that
//! parses back to an equal record, with or without its newline.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_agent::journal::Record;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(record) = Record::parse_line(line) {
        let out = record.to_line();
        let body = out.strip_suffix('\n').expect("to_line ends in a newline");
        assert!(!body.contains('\n'), "to_line wrote more than one line");
        assert_eq!(Record::parse_line(&out).as_ref(), Some(&record));
        assert_eq!(Record::parse_line(body).as_ref(), Some(&record));
    }
});
