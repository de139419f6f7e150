//! Gap records: what a live capture could not record, stated in the chain.
//!
//! A live source cannot be replayed. When the agent misses messages (it was
//! down, its queue overflowed, the network lost them, or its spool dropped
//! chunks never delivered), it seals a **gap record** into the topic's chain
//! in place of what is missing: an ordinary signed data package (so a v1
//! reader verifies and decrypts it like any other) whose `schemaVersion` is
//! [`GAP_SCHEMA_VERSION`] and whose payload is the [`Gap`]'s fields.
//!
//! ```json
//! {"reason": "agent-offline", "sourceTopic": "/gps/fix",
//!  "after": "2026-12-05T10:00:01.250000000Z", "before": "2026-12-05T10:00:04.010000000Z",
//!  "publisher": "21d98a1fa3fec7d01427854f7bea31e3",
//!  "firstSequence": 126, "lastSequence": 401, "missing": 276,
//!  "firstChunk": null, "lastChunk": null}
//! ```
//!
//! Every key is always present (`null` when unknown), so the signed bytes of
//! a gap do not depend on which facts were known. A dataset manifest lists
//! the gaps of the chunks it covers (`gaps`, see `docs/formats.md`).

use std::fmt;

use crate::error::ValidationError;
use crate::json::{self, Map, Number, Value};
use crate::package::DataPackage;

/// The `schemaVersion` of a gap record's package.
pub const GAP_SCHEMA_VERSION: &str = "sealstream.gap.v1";

/// Why messages are missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GapReason {
    /// The agent was not running (or crashed before it committed them).
    AgentOffline,
    /// The agent received them but had no room to queue them (backpressure).
    AgentOverloaded,
    /// They never arrived: lost on the way, or never sent.
    NotReceived,
    /// Sealed, but dropped from the full spool before any destination had
    /// them (`whenFull: drop-oldest`).
    SpoolDropped,
}

impl GapReason {
    /// The wire name (`agent-offline`, `agent-overloaded`, `not-received`, `spool-dropped`).
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::AgentOffline => "agent-offline",
            GapReason::AgentOverloaded => "agent-overloaded",
            GapReason::NotReceived => "not-received",
            GapReason::SpoolDropped => "spool-dropped",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<GapReason> {
        Some(match s {
            "agent-offline" => GapReason::AgentOffline,
            "agent-overloaded" => GapReason::AgentOverloaded,
            "not-received" => GapReason::NotReceived,
            "spool-dropped" => GapReason::SpoolDropped,
            _ => return None,
        })
    }
}

impl fmt::Display for GapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One gap: what is missing, as far as it is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Why.
    pub reason: GapReason,
    /// The topic on the source (the ROS 2 topic) the missing messages were published on.
    pub source_topic: String,
    /// The time of the last message before the gap (ISO 8601), if known.
    pub after: Option<String>,
    /// The time of the first message after the gap (ISO 8601), if known.
    pub before: Option<String>,
    /// The publisher (ROS 2 global id in hex), if known.
    pub publisher: Option<String>,
    /// The publisher's sequence numbers missing, first and last, if known.
    pub sequences: Option<(u64, u64)>,
    /// The chain indexes of chunks dropped from the spool, first and last (for [`GapReason::SpoolDropped`]).
    pub chunks: Option<(u64, u64)>,
}

fn opt_str(v: &Option<String>) -> Value {
    v.as_deref().map_or(Value::Null, Value::from)
}

fn opt_u64(v: Option<u64>) -> Value {
    v.map_or(Value::Null, Value::from)
}

impl Gap {
    /// How many messages are missing, when the sequence range is known.
    pub fn missing(&self) -> Option<u64> {
        self.sequences
            .map(|(a, b)| b.saturating_sub(a).saturating_add(1))
    }

    /// The gap as a package payload / JSON object (every key present).
    pub fn to_fields(&self) -> Map {
        let mut m = Map::new();
        m.insert("reason".into(), Value::from(self.reason.as_str()));
        m.insert(
            "sourceTopic".into(),
            Value::from(self.source_topic.as_str()),
        );
        m.insert("after".into(), opt_str(&self.after));
        m.insert("before".into(), opt_str(&self.before));
        m.insert("publisher".into(), opt_str(&self.publisher));
        m.insert("firstSequence".into(), opt_u64(self.sequences.map(|s| s.0)));
        m.insert("lastSequence".into(), opt_u64(self.sequences.map(|s| s.1)));
        m.insert("missing".into(), opt_u64(self.missing()));
        m.insert("firstChunk".into(), opt_u64(self.chunks.map(|c| c.0)));
        m.insert("lastChunk".into(), opt_u64(self.chunks.map(|c| c.1)));
        m
    }

    /// Read a gap from its JSON object; each problem names the field.
    pub fn from_fields(o: &Map) -> Result<Gap, ValidationError> {
        let reason = o
            .get("reason")
            .and_then(Value::as_str)
            .and_then(GapReason::parse)
            .ok_or_else(|| {
                ValidationError::new(
                    "reason",
                    "expected agent-offline, agent-overloaded, not-received or spool-dropped",
                )
            })?;
        let source_topic = o
            .get("sourceTopic")
            .and_then(Value::as_str)
            .ok_or_else(|| ValidationError::new("sourceTopic", "required string"))?
            .to_string();
        let s = |k: &'static str| -> Result<Option<String>, ValidationError> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ValidationError::new(k, "expected a string or null")),
            }
        };
        let n = |k: &'static str| -> Result<Option<u64>, ValidationError> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_number()
                    .and_then(Number::as_u64)
                    .map(Some)
                    .ok_or_else(|| ValidationError::new(k, "expected an unsigned integer or null")),
            }
        };
        let pair =
            |a: &'static str, b: &'static str| -> Result<Option<(u64, u64)>, ValidationError> {
                match (n(a)?, n(b)?) {
                    (Some(x), Some(y)) if x <= y => Ok(Some((x, y))),
                    (Some(_), Some(_)) => Err(ValidationError::new(b, format!("less than {a}"))),
                    (None, None) => Ok(None),
                    (Some(_), None) => Err(ValidationError::new(b, format!("required with {a}"))),
                    (None, Some(_)) => Err(ValidationError::new(a, format!("required with {b}"))),
                }
            };
        Ok(Gap {
            reason,
            source_topic,
            after: s("after")?,
            before: s("before")?,
            publisher: s("publisher")?,
            sequences: pair("firstSequence", "lastSequence")?,
            chunks: pair("firstChunk", "lastChunk")?,
        })
    }

    /// The gap a package records, if it is a gap record
    /// (`schemaVersion` [`GAP_SCHEMA_VERSION`]); `Some(Err)` if it claims to
    /// be one but its payload is not a gap.
    pub fn from_package(package: &DataPackage) -> Option<Result<Gap, ValidationError>> {
        (package.schema_version == GAP_SCHEMA_VERSION).then(|| Gap::from_fields(&package.payload))
    }

    /// Every gap record among the package lines of a chunk's plaintext, in
    /// order. Lines that are not gap records are passed over cheaply (a
    /// substring search); a line that names the gap schema but does not
    /// parse is reported as an error naming its line (from 1).
    pub fn scan_plaintext(plaintext: &[u8]) -> Vec<Result<Gap, String>> {
        let marker = GAP_SCHEMA_VERSION.as_bytes();
        let mut out = Vec::new();
        if memchr::memmem::find(plaintext, marker).is_none() {
            return out;
        }
        for (i, line) in plaintext.split(|&b| b == b'\n').enumerate() {
            if memchr::memmem::find(line, marker).is_none() {
                continue;
            }
            let parsed = json::parse(line)
                .map_err(|e| e.to_string())
                .and_then(|v| DataPackage::from_json(&v).map_err(|e| e.to_string()));
            match parsed {
                Ok(p) => {
                    if let Some(gap) = Gap::from_package(&p) {
                        out.push(gap.map_err(|e| format!("line {}: gap record: {e}", i + 1)));
                    }
                }
                Err(e) => out.push(Err(format!("line {}: {e}", i + 1))),
            }
        }
        out
    }
}

/// The longest line [`GapScanner`] reads: a gap record is a few hundred
/// bytes, so a longer line is not taken for one, however the input is cut
/// (and memory stays bounded whatever the input).
pub const MAX_GAP_RECORD_LINE: usize = 1 << 20;

/// Finds gap records in a plaintext that arrives in pieces (chunk after
/// chunk, however the pieces cut its lines), holding at most one partial
/// line of at most [`MAX_GAP_RECORD_LINE`] bytes.
///
/// Unlike [`Gap::scan_plaintext`] (for an agent's chunks, whose every line
/// is a package), any input is allowed: a line that is not a data package
/// is not a gap record, whatever it mentions. A data package whose
/// `schemaVersion` is [`GAP_SCHEMA_VERSION`] but whose payload is not a gap
/// is an error.
#[derive(Clone, Debug, Default)]
pub struct GapScanner {
    /// The partial line after the last newline pushed.
    carry: Vec<u8>,
    /// The partial line grew past [`MAX_GAP_RECORD_LINE`]: passed over up
    /// to the next newline.
    skipping: bool,
}

/// The gap record on one line, if it holds one (see [`GapScanner`]).
fn scan_line(line: &[u8]) -> Option<Result<Gap, String>> {
    if line.len() > MAX_GAP_RECORD_LINE {
        return None;
    }
    memchr::memmem::find(line, GAP_SCHEMA_VERSION.as_bytes())?;
    let value = json::parse(line).ok()?;
    let package = DataPackage::from_json(&value).ok()?;
    Gap::from_package(&package).map(|g| g.map_err(|e| format!("gap record: {e}")))
}

impl GapScanner {
    /// Nothing scanned yet.
    pub fn new() -> Self {
        GapScanner::default()
    }

    /// Scan the next piece; returns the gap records on the lines it ends, in order.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Result<Gap, String>> {
        let mut out = Vec::new();
        // The line carried over from earlier pieces.
        if !self.carry.is_empty() || self.skipping {
            match memchr::memchr(b'\n', bytes) {
                None => {
                    self.keep(bytes);
                    return out;
                }
                Some(end) => {
                    if !self.skipping && self.carry.len() + end <= MAX_GAP_RECORD_LINE {
                        self.carry.extend_from_slice(&bytes[..end]);
                        out.extend(scan_line(&self.carry));
                    }
                    self.carry.clear();
                    self.skipping = false;
                    bytes = &bytes[end + 1..];
                }
            }
        }
        let (whole, tail) = match memchr::memrchr(b'\n', bytes) {
            Some(end) => (&bytes[..end], &bytes[end + 1..]),
            None => (&[][..], bytes),
        };
        if memchr::memmem::find(whole, GAP_SCHEMA_VERSION.as_bytes()).is_some() {
            out.extend(whole.split(|&b| b == b'\n').filter_map(scan_line));
        }
        self.keep(tail);
        out
    }

    /// The end of the plaintext: the gap record on its last line, when that
    /// line has no newline.
    pub fn finish(mut self) -> Option<Result<Gap, String>> {
        if self.skipping {
            return None;
        }
        scan_line(&std::mem::take(&mut self.carry))
    }

    fn keep(&mut self, partial: &[u8]) {
        if self.skipping {
            return;
        }
        if self.carry.len() + partial.len() > MAX_GAP_RECORD_LINE {
            self.carry = Vec::new();
            self.skipping = true;
        } else {
            self.carry.extend_from_slice(partial);
        }
    }
}

impl fmt::Display for Gap {
    /// `/gps/fix: 276 messages missing (sequences 126..=401 of publisher 21d9…), agent-offline, after T1, before T2`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.source_topic)?;
        match (self.missing(), self.chunks) {
            (Some(n), _) => write!(f, "{n} message{} missing", if n == 1 { "" } else { "s" })?,
            (None, Some((a, b))) => write!(f, "chunks {a}..={b} missing")?,
            (None, None) => f.write_str("messages missing")?,
        }
        if let Some((a, b)) = self.sequences {
            write!(f, " (sequences {a}..={b}")?;
            if let Some(p) = &self.publisher {
                write!(f, " of publisher {p}")?;
            }
            f.write_str(")")?;
        }
        write!(f, ", {}", self.reason)?;
        if let Some(a) = &self.after {
            write!(f, ", after {a}")?;
        }
        if let Some(b) = &self.before {
            write!(f, ", before {b}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap() -> Gap {
        Gap {
            reason: GapReason::AgentOffline,
            source_topic: "/gps/fix".into(),
            after: Some("2026-12-05T10:00:01Z".into()),
            before: None,
            publisher: Some("21d98a1fa3fec7d01427854f7bea31e3".into()),
            sequences: Some((126, 401)),
            chunks: None,
        }
    }

    #[test]
    fn fields_round_trip_with_every_key_present() {
        let g = gap();
        let fields = g.to_fields();
        assert_eq!(fields.len(), 10);
        assert_eq!(fields["missing"].as_number().unwrap().as_u64(), Some(276));
        assert_eq!(Gap::from_fields(&fields).unwrap(), g);
        assert_eq!(
            g.to_string(),
            "/gps/fix: 276 messages missing (sequences 126..=401 of publisher 21d98a1fa3fec7d01427854f7bea31e3), agent-offline, after 2026-12-05T10:00:01Z"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let mut f = gap().to_fields();
        f.insert("lastSequence".into(), Value::from(3u64));
        assert_eq!(Gap::from_fields(&f).unwrap_err().field, "lastSequence");
        let mut f = gap().to_fields();
        f.insert("reason".into(), Value::from("tired"));
        assert_eq!(Gap::from_fields(&f).unwrap_err().field, "reason");
        let mut f = gap().to_fields();
        f.insert("firstSequence".into(), Value::Null);
        assert_eq!(Gap::from_fields(&f).unwrap_err().field, "firstSequence");
    }

    /// Package lines: a data package, a gap record, a data package.
    fn plaintext_with_a_gap() -> Vec<u8> {
        use crate::keys::MachineSigningKey;
        use crate::package::PackageSigner;
        let signer = PackageSigner::new(
            MachineSigningKey::from_hex(
                "feba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761",
                "k",
            )
            .unwrap(),
            "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1",
            None,
            None,
        )
        .unwrap();
        let mut plain = Vec::new();
        let mut data = Map::new();
        data.insert("x".into(), Value::from(1u64));
        for (i, (fields, schema)) in [
            (data.clone(), "1.0.0"),
            (gap().to_fields(), GAP_SCHEMA_VERSION),
            (data, "1.0.0"),
        ]
        .into_iter()
        .enumerate()
        {
            let p = signer.sign_processed(fields, "2026-12-05T10:00:00Z", schema, i as u64);
            assert!(p.verify().is_valid());
            plain.extend_from_slice(p.to_json_line().as_bytes());
            plain.push(b'\n');
        }
        plain
    }

    #[test]
    fn a_chunk_is_scanned_for_gap_records() {
        let plain = plaintext_with_a_gap();
        let found = Gap::scan_plaintext(&plain);
        assert_eq!(found, vec![Ok(gap())]);
        assert!(Gap::scan_plaintext(b"{\"a\":1}\n").is_empty());
        let bad = Gap::scan_plaintext(b"not json sealstream.gap.v1\n");
        assert!(bad[0].as_ref().unwrap_err().starts_with("line 1: "));
    }

    fn scan_in_pieces(plain: &[u8], cuts: &[usize]) -> Vec<Result<Gap, String>> {
        let mut scanner = GapScanner::new();
        let mut found = Vec::new();
        let mut at = 0;
        for &cut in cuts.iter().chain([plain.len()].iter()) {
            found.extend(scanner.push(&plain[at..cut]));
            at = cut;
        }
        found.extend(scanner.finish());
        found
    }

    #[test]
    fn the_scanner_finds_a_gap_record_however_the_plaintext_is_cut() {
        let plain = plaintext_with_a_gap();
        for cut in 0..=plain.len() {
            assert_eq!(
                scan_in_pieces(&plain, &[cut]),
                vec![Ok(gap())],
                "cut at {cut}"
            );
        }
        // Byte by byte, and without the last newline.
        let cuts: Vec<usize> = (0..plain.len()).collect();
        assert_eq!(scan_in_pieces(&plain, &cuts), vec![Ok(gap())]);
        let trimmed = &plain[..plain.len() - 1];
        assert_eq!(scan_in_pieces(trimmed, &[]), vec![Ok(gap())]);
        // Twice in a row, across pieces.
        let twice = [plain.clone(), plain.clone()].concat();
        assert_eq!(
            scan_in_pieces(&twice, &[plain.len() / 2, plain.len() + 7]),
            vec![Ok(gap()), Ok(gap())]
        );
    }

    #[test]
    fn the_scanner_passes_over_what_is_not_a_package() {
        let text =
            b"the docs mention sealstream.gap.v1\n{\"schemaVersion\": \"sealstream.gap.v1\"}\n";
        assert!(scan_in_pieces(text, &[10]).is_empty());
        // A line longer than the limit is not kept (nor is a record after
        // it on the same line), but the next line is scanned.
        let plain = plaintext_with_a_gap();
        let mut long = vec![b'a'; MAX_GAP_RECORD_LINE + 5];
        long.extend_from_slice(&plain);
        long.push(b'\n');
        long.extend_from_slice(&plain);
        let cuts: Vec<usize> = (1..long.len()).step_by(4096).collect();
        let found = scan_in_pieces(&long, &cuts);
        // The first package line joins the long line; the record after it is found,
        // and the second copy is found in full.
        assert_eq!(found, vec![Ok(gap()), Ok(gap())]);
        assert_eq!(scan_in_pieces(&long, &[]), found, "in one piece");
        // A record at the end of a line too long is not one, however it is cut.
        let mut padded = vec![b' '; MAX_GAP_RECORD_LINE];
        let record = plain.split(|&b| b == b'\n').nth(1).unwrap();
        padded.extend_from_slice(record);
        for cuts in [vec![], vec![10], vec![MAX_GAP_RECORD_LINE + 3]] {
            assert!(scan_in_pieces(&padded, &cuts).is_empty(), "{cuts:?}");
        }
        // One of exactly the limit is read, however it is cut.
        let mut exact = vec![b' '; MAX_GAP_RECORD_LINE - record.len()];
        exact.extend_from_slice(record);
        for cuts in [vec![], vec![10], vec![MAX_GAP_RECORD_LINE - 3]] {
            assert_eq!(scan_in_pieces(&exact, &cuts), vec![Ok(gap())], "{cuts:?}");
            let mut line = exact.clone();
            line.push(b'\n');
            assert_eq!(scan_in_pieces(&line, &cuts), vec![Ok(gap())], "{cuts:?}");
        }
    }

    #[test]
    fn the_scanner_reports_a_gap_package_whose_payload_is_not_a_gap() {
        use crate::keys::MachineSigningKey;
        use crate::package::PackageSigner;
        let key = MachineSigningKey::generate();
        let did = crate::identity::Did::of_key(&key).to_string();
        let signer = PackageSigner::new(key, &did, None, None).unwrap();
        let mut fields = gap().to_fields();
        fields.insert("reason".into(), Value::from("tired"));
        let line = signer
            .sign_processed(fields, "2026-12-05T10:00:00Z", GAP_SCHEMA_VERSION, 0)
            .to_json_line();
        let found = scan_in_pieces(line.as_bytes(), &[3]);
        assert_eq!(found.len(), 1);
        assert!(found[0]
            .as_ref()
            .unwrap_err()
            .starts_with("gap record: reason: "));
    }
}
