//! A topic's open batch: messages with the topic's field rules applied and
//! measured as the lines they will be in a chunk's plaintext, and the
//! plaintext of a chunk being filled with them.
//!
//! `chunking.maxBytes` bounds that plaintext: the signed packages, one JSON
//! line each, as they go into the chunk. A message is measured when it joins
//! the batch (its package is complete but for the sequence number and the
//! signature, which has a fixed length), and the pipeline seals the batch
//! before a message that would not fit. Sequence numbers are handed out only
//! when the batch is sealed, so the one a message will get is estimated;
//! sealing measures the real lines and starts a new chunk where one would
//! overflow, so the bound holds whatever the estimate. A single package
//! larger than `maxBytes` is sealed alone, in a chunk of its own.

use std::collections::BTreeMap;

use sealstream_core::gap::{Gap, GAP_SCHEMA_VERSION};
use sealstream_core::json::{Map, Number};
use sealstream_core::package::{DataPackage, PackageSigner};

use crate::config::Topic;
use crate::state::PublisherMark;

/// `0x` and 65 bytes in hex: the length of every package signature.
const SIGNATURE_PLACEHOLDER_LEN: usize = 2 + 2 * 65;

/// A message in a topic's batch.
#[derive(Debug)]
pub struct Pending {
    /// Its position in the source.
    pub position: u64,
    /// Its package, payload after the topic's rules, without sequence number
    /// and signature; or why the rules could not be applied.
    pub package: Result<DataPackage, String>,
    /// The bytes its line will take in a chunk's plaintext (as estimated;
    /// 0 for a message that will be skipped).
    pub bytes: u64,
    /// For a live publisher's message or gap: the publisher and where its
    /// numbering stands once this is committed.
    pub mark: Option<(String, PublisherMark)>,
}

impl Pending {
    /// Apply `topic`'s rules to a message and measure its package as if it
    /// were signed with `sequence`.
    pub fn new(
        signer: &PackageSigner,
        key_id: &str,
        topic: &Topic,
        position: u64,
        fields: Map,
        captured_at: &str,
        sequence: u64,
    ) -> Pending {
        if topic.schema_version.trim().is_empty() {
            // As `PackageSigner::build` refuses it.
            let e = sealstream_core::ValidationError::new("schema_version", "required");
            return Pending {
                position,
                package: Err(e.to_string()),
                bytes: 0,
                mark: None,
            };
        }
        match signer.apply_rules_owned(fields, &topic.rules) {
            Err(e) => Pending {
                position,
                package: Err(e.to_string()),
                bytes: 0,
                mark: None,
            },
            Ok(processed) => {
                let package = DataPackage {
                    did: signer.did().to_string(),
                    timestamp: captured_at.to_string(),
                    schema_version: topic.schema_version.clone(),
                    sequence_number: Number::from(sequence),
                    payload: processed,
                    signature: "0".repeat(SIGNATURE_PLACEHOLDER_LEN),
                    signing_key_id: key_id.to_string(),
                };
                Pending::of(position, package)
            }
        }
    }

    /// A package to seal, measured.
    fn of(position: u64, package: DataPackage) -> Pending {
        Pending {
            position,
            bytes: line_len(&package),
            package: Ok(package),
            mark: None,
        }
    }

    /// A message that will be skipped (it could not be decoded), kept in the
    /// batch so that its publisher's numbering is committed with it.
    pub fn skipped(position: u64, why: String) -> Pending {
        Pending {
            position,
            package: Err(why),
            bytes: 0,
            mark: None,
        }
    }

    /// A gap record (see [`sealstream_core::gap`]): a package of its own
    /// schema whose payload is the gap; no field rules apply to it.
    pub fn gap(
        signer: &PackageSigner,
        key_id: &str,
        position: u64,
        gap: &Gap,
        at: &str,
        sequence: u64,
    ) -> Pending {
        let package = DataPackage {
            did: signer.did().to_string(),
            timestamp: at.to_string(),
            schema_version: GAP_SCHEMA_VERSION.to_string(),
            sequence_number: Number::from(sequence),
            payload: gap.to_fields(),
            signature: "0".repeat(SIGNATURE_PLACEHOLDER_LEN),
            signing_key_id: key_id.to_string(),
        };
        Pending::of(position, package)
    }
}

/// The bytes of `package`'s line in a chunk's plaintext: its JSON line and
/// the newline.
pub fn line_len(package: &DataPackage) -> u64 {
    thread_local! {
        /// The line is written only to be measured: into one buffer, reused.
        static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    LINE.with_borrow_mut(|line| {
        line.clear();
        package.write_json_line(line);
        let len = line.len() as u64 + 1;
        if line.capacity() > 1 << 20 {
            // Not kept for one large package.
            *line = String::new();
        }
        len
    })
}

/// The plaintext of a chunk being filled, and what it commits.
#[derive(Debug, Default)]
pub struct Draft {
    /// The package lines.
    pub plaintext: Vec<u8>,
    /// Packages in it.
    pub packages: u64,
    /// Messages skipped since the last chunk (their rules could not be applied).
    pub skipped: u64,
    /// Source position of the last message it takes (packages and skipped).
    pub last_position: Option<u64>,
    /// Capture times of its first and last package.
    pub captured: (Option<String>, Option<String>),
    /// Live publishers' numbering as committed by it.
    pub marks: BTreeMap<String, PublisherMark>,
    /// Gap records in it, and the messages they say are missing.
    pub gaps: (u64, u64),
}

impl Draft {
    /// Whether a line of `len` bytes fits under `max_bytes` (anything fits
    /// in an empty draft).
    pub fn fits(&self, len: usize, max_bytes: u64) -> bool {
        self.packages == 0 || (self.plaintext.len() + len) as u64 <= max_bytes
    }

    /// Add a signed package's line.
    pub fn push(&mut self, position: u64, line: &[u8], captured_at: &str) {
        self.plaintext.extend_from_slice(line);
        self.packages += 1;
        self.last_position = Some(position);
        if self.captured.0.is_none() {
            self.captured.0 = Some(captured_at.to_string());
        }
        self.captured.1 = Some(captured_at.to_string());
    }

    /// Count `package` if it is a gap record.
    pub fn count_gap(&mut self, package: &DataPackage) {
        if let Some(gap) = Gap::from_package(package) {
            self.gaps.0 += 1;
            self.gaps.1 += gap.ok().and_then(|g| g.missing()).unwrap_or(0);
        }
    }

    /// A message skipped at `position`.
    pub fn skip(&mut self, position: u64) {
        self.skipped += 1;
        self.last_position = Some(position);
    }

    /// A publisher's numbering as it stands after what the draft holds.
    pub fn mark(&mut self, mark: Option<(String, PublisherMark)>) {
        if let Some((publisher, mark)) = mark {
            self.marks.insert(publisher, mark);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealstream_core::json::{self, Value};
    use sealstream_core::keys::MachineSigningKey;

    const SK: &str = "feba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761";
    const DID: &str = "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1";

    #[test]
    fn the_estimate_is_the_signed_line_with_the_same_sequence_digits() {
        let signer = PackageSigner::new(
            MachineSigningKey::from_hex(SK, "k").unwrap(),
            DID,
            None,
            None,
        )
        .unwrap();
        let key_id = format!("{DID}#keys-1");
        let topic = Topic {
            name: "/t".into(),
            source: "s".into(),
            matcher: "/t".into(),
            schema_version: "1.0.0".into(),
            rules: sealstream_core::rules::TopicRules::new("/t", Vec::new()),
            ros2: None,
        };
        for (fields, sequence) in [
            (
                r#"{"a": 1, "b": "ünï", "c": [1.5, null, {"d": true}]}"#,
                7u64,
            ),
            (r#"{"x": "\"quoted\" \\ and \u0001"}"#, 123_456),
        ] {
            let Value::Object(fields) = json::parse(fields.as_bytes()).unwrap() else {
                panic!()
            };
            let p = Pending::new(
                &signer,
                &key_id,
                &topic,
                0,
                fields,
                "2026-11-21T10:00:00Z",
                sequence,
            );
            let package = p.package.unwrap();
            let signed = signer.sign_processed(
                package.payload,
                &package.timestamp,
                &package.schema_version,
                sequence,
            );
            assert_eq!(p.bytes, line_len(&signed));
        }
    }

    #[test]
    fn a_draft_takes_anything_when_empty_and_then_what_fits() {
        let mut d = Draft::default();
        assert!(d.fits(1000, 10));
        d.push(4, b"0123456789", "t0");
        assert!(!d.fits(1, 10));
        assert!(d.fits(0, 10));
        d.skip(5);
        assert_eq!((d.packages, d.skipped, d.last_position), (1, 1, Some(5)));
        assert_eq!(d.captured, (Some("t0".into()), Some("t0".into())));
    }
}
