//! The buyer's check of a topic's signed dataset windows
//! (docs/subscriptions.md, "Following"): each `sealstream.dataset.v1`
//! manifest the machine signed for a range of its topic (the agent's time
//! windows), once every chunk of the range has been followed, is checked
//! against the chunks followed: both signatures (EIP-191 by the machine of
//! the chunks, Ed25519 by their chain key), the Merkle root over the chunk
//! ids (`sealstream_core::dataset::chunk_leaf`, `merkle::RootBuilder`: the
//! one definition), the first and head ids, and `sourceHash` when the
//! follower still holds the range's plaintext, with the gap records in it,
//! which must be the manifest's `gaps`.
//!
//! [`WindowState`] is what a follower keeps between runs (in its state
//! file, `crate::follow_state`): the chunks followed and not yet covered by
//! a window, the windows checked, and the cursor of the manifests read.

use sealstream_api::routes;
use sealstream_api::subscriptions::{SubscriptionDataset, SubscriptionDatasets};
use sealstream_core::chunk::ChunkEnvelope;
use sealstream_core::dataset::{chunk_leaf, hash_hex, DatasetManifest, DatasetSignature};
use sealstream_core::gap::Gap;
use sealstream_core::merkle::RootBuilder;

pub use crate::follow_state::{CheckedWindow, Followed, WindowState};
use crate::market::{ClientError, MarketClient};

/// Manifests asked for per page.
const PAGE: u32 = 50;
/// Most chunks held while they wait for their window (a topic without
/// windows would otherwise grow the state without end): the oldest go.
pub const MAX_PENDING: usize = 100_000;

impl MarketClient {
    /// The machine-signed datasets of subscription `id`'s topic overlapping
    /// the chunks granted to it, with a last index above `after` (its
    /// buyer).
    pub fn subscription_datasets(
        &mut self,
        id: &str,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<SubscriptionDatasets, ClientError> {
        self.get(&routes::subscription_datasets(id, after, limit))
    }
}

/// What the plaintext of a range of the output holds, as a window is
/// checked against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeDigest {
    /// `0x` + SHA-256 of the bytes.
    pub source_hash: String,
    /// The gap records among them, in order
    /// ([`GapScanner`](sealstream_core::gap::GapScanner)).
    pub gaps: Vec<Gap>,
}

/// What became of one window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowOutcome {
    /// Every check held.
    Verified {
        /// The window.
        window: CheckedWindow,
        /// Whether `sourceHash` and `gaps` were checked (the plaintext was at hand).
        source_checked: bool,
        /// The gaps the signed manifest states (`gaps`), in order.
        gaps: Vec<Gap>,
    },
    /// It cannot be checked by this follower (named, with why): it starts
    /// before the first chunk followed, or a chunk of it was not followed.
    NotCheckable {
        /// Index of its first chunk.
        first: u64,
        /// Index of its last chunk.
        last: u64,
        /// Why.
        why: String,
    },
}

/// Why the windows could not be checked, or one does not hold.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// The server refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A window does not match the chunks followed (or its signatures).
    #[error("window {first}..{last} ({dataset}): {message}")]
    Mismatch {
        /// The dataset.
        dataset: String,
        /// Index of its first chunk.
        first: u64,
        /// Index of its last chunk.
        last: u64,
        /// What does not hold.
        message: String,
    },
    /// The plaintext of the window could not be read back.
    #[error("window {first}..{last}: reading its plaintext: {message}")]
    Plaintext {
        /// Index of its first chunk.
        first: u64,
        /// Index of its last chunk.
        last: u64,
        /// What failed.
        message: String,
    },
}

impl WindowState {
    /// Records chunk `envelope`, just followed (its plaintext at `span` of
    /// the output, if the output is the plaintext).
    pub fn followed(&mut self, envelope: &ChunkEnvelope, span: Option<(u64, u64)>) {
        self.first_followed.get_or_insert(envelope.index);
        if self.chain.is_none() {
            self.chain = Some((
                envelope.signature.machine_did.clone(),
                envelope.signature.public_key_hex.clone(),
            ));
        }
        self.pending.insert(
            envelope.index,
            Followed {
                chunk_id: envelope.chunk_id.clone(),
                span,
            },
        );
        while self.pending.len() > MAX_PENDING {
            self.pending.pop_first();
        }
    }

    /// Reads the windows past the cursor from the server and checks each
    /// one whose chunks have all been followed, in order; stops at the
    /// first one not followed to its end. `hash` gives `0x` + SHA-256 of
    /// the output's bytes `start..end` and the gap records among them.
    pub fn check(
        &mut self,
        client: &mut MarketClient,
        subscription: &str,
        hash: &mut dyn FnMut(u64, u64) -> std::io::Result<RangeDigest>,
    ) -> Result<Vec<WindowOutcome>, WindowError> {
        let mut outcomes = Vec::new();
        let Some(&followed_to) = self.pending.keys().next_back() else {
            return Ok(outcomes);
        };
        loop {
            let page = client.subscription_datasets(subscription, self.cursor, Some(PAGE))?;
            let mut advanced = false;
            for item in &page.items {
                if item.last_index > followed_to {
                    return Ok(outcomes);
                }
                if self.cursor.is_some_and(|c| item.last_index <= c) {
                    continue;
                }
                outcomes.push(self.check_one(item, hash)?);
                advanced = true;
            }
            if !page.more || !advanced {
                return Ok(outcomes);
            }
        }
    }

    /// Checks one window (all of whose range is at or below the last chunk
    /// followed), then moves the cursor past it.
    pub fn check_one(
        &mut self,
        item: &SubscriptionDataset,
        hash: &mut dyn FnMut(u64, u64) -> std::io::Result<RangeDigest>,
    ) -> Result<WindowOutcome, WindowError> {
        let last = item.last_index;
        let outcome = self.evaluate(item, hash);
        if !matches!(outcome, Err(WindowError::Client(_))) {
            self.cursor = Some(self.cursor.map_or(last, |c| c.max(last)));
            self.pending.retain(|&i, _| i > last);
        }
        let outcome = outcome?;
        if let WindowOutcome::Verified { window, .. } = &outcome {
            self.checked.push(window.clone());
        }
        Ok(outcome)
    }

    fn evaluate(
        &self,
        item: &SubscriptionDataset,
        hash: &mut dyn FnMut(u64, u64) -> std::io::Result<RangeDigest>,
    ) -> Result<WindowOutcome, WindowError> {
        let (first, last) = (item.first_index, item.last_index);
        let bad = |message: String| WindowError::Mismatch {
            dataset: item.dataset_id.clone(),
            first,
            last,
            message,
        };
        let not = |why: String| Ok(WindowOutcome::NotCheckable { first, last, why });
        let manifest = item
            .manifest
            .to_core()
            .map_err(|e| e.to_string())
            .and_then(|v| DatasetManifest::from_json(&v).map_err(|e| e.to_string()))
            .map_err(|e| bad(format!("the manifest: {e}")))?;
        if manifest.first_index != first
            || manifest.chunk_count == 0
            || manifest.first_index.checked_add(manifest.chunk_count - 1) != Some(last)
        {
            return Err(bad(format!(
                "the manifest covers {} chunks from {}, the server says {first}..{last}",
                manifest.chunk_count, manifest.first_index
            )));
        }
        match self.first_followed {
            Some(f) if f <= first => {}
            Some(f) => return not(format!("starts before the first chunk followed ({f})")),
            None => return not("no chunk followed".into()),
        }
        let mut ids = Vec::new();
        let mut spans = Vec::new();
        for i in first..=last {
            match self.pending.get(&i) {
                Some(f) => {
                    ids.push(f.chunk_id.as_str());
                    spans.push(f.span);
                }
                None if self.cursor.is_some_and(|c| i <= c) => {
                    return not(format!("overlaps a window handled before (chunk {i})"))
                }
                None if self.pending.keys().next().is_some_and(|&p| i < p) => {
                    return not(format!(
                        "chunk {i} is no longer held (at most {MAX_PENDING} chunks wait for their window)"
                    ))
                }
                None => return not(format!("chunk {i} was not followed")),
            }
        }
        let Some((machine, chain_key)) = &self.chain else {
            return not("no chunk followed".into());
        };
        if !manifest.machine_did.eq_ignore_ascii_case(machine) {
            return Err(bad(format!(
                "signed for machine {}, the chunks are {machine}'s",
                manifest.machine_did
            )));
        }
        if manifest.chain_public_key_hex != *chain_key {
            return Err(bad(format!(
                "chain key {}, the chunks are signed with {chain_key}",
                manifest.chain_public_key_hex
            )));
        }
        let by_machine = manifest.signatures.iter().any(|s| {
            matches!(s, DatasetSignature::Eip191 { signer, .. } if signer.eq_ignore_ascii_case(machine))
        });
        let by_chain = manifest
            .signatures
            .iter()
            .any(|s| matches!(s, DatasetSignature::Ed25519 { .. }));
        if !by_machine || !by_chain {
            return Err(bad(
                "not signed by both the machine (EIP-191) and its chain key (Ed25519)".into(),
            ));
        }
        manifest
            .verify_signatures()
            .map_err(|e| bad(format!("signature: {e}")))?;
        let mut tree = RootBuilder::new();
        for (i, id) in (first..).zip(&ids) {
            tree.push(chunk_leaf(id).ok_or_else(|| bad(format!("chunk {i}: id {id}")))?);
        }
        let root = hash_hex(&tree.root());
        if root != manifest.merkle_root {
            return Err(bad(format!(
                "Merkle root {} signed, {root} over the chunks followed",
                manifest.merkle_root
            )));
        }
        if ids.first().copied() != Some(manifest.first_chunk_id.as_str())
            || ids.last().copied() != Some(manifest.head_chunk_id.as_str())
        {
            return Err(bad("the first or head chunk id differs".into()));
        }
        // sourceHash: when the output holds the range's plaintext, whole.
        let contiguous = spans
            .iter()
            .zip(spans.iter().skip(1))
            .all(|(a, b)| matches!((a, b), (Some(a), Some(b)) if a.1 == b.0));
        let source_checked = match (spans.first(), spans.last()) {
            (Some(Some((start, _))), Some(Some((_, end)))) if contiguous => {
                let found = hash(*start, *end).map_err(|e| WindowError::Plaintext {
                    first,
                    last,
                    message: e.to_string(),
                })?;
                if !found
                    .source_hash
                    .eq_ignore_ascii_case(&manifest.source_hash)
                {
                    return Err(bad(format!(
                        "sourceHash {} signed, {} over the plaintext followed",
                        manifest.source_hash, found.source_hash
                    )));
                }
                manifest
                    .check_gaps(&found.gaps)
                    .map_err(|e| bad(format!("{e} (in the plaintext followed)")))?;
                true
            }
            _ => false,
        };
        Ok(WindowOutcome::Verified {
            window: CheckedWindow { first, last, root },
            source_checked,
            gaps: manifest.gaps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealstream_core::chunk::sha256_hex;
    use sealstream_core::identity::Did;
    use sealstream_core::keys::{ChainSigningKey, MachineSigningKey};

    struct Chain {
        machine: MachineSigningKey,
        chain: ChainSigningKey,
        ids: Vec<String>,
        plaintext: Vec<u8>,
    }

    /// Four chunks followed (ids made up), each 10 bytes of plaintext.
    fn followed(first_followed: u64) -> (Chain, WindowState) {
        let c = Chain {
            machine: MachineSigningKey::generate(),
            chain: ChainSigningKey::generate(),
            ids: (0..4u8)
                .map(|i| format!("0x{}", hex::encode([i + 1; 32])))
                .collect(),
            plaintext: (0..40u8).collect(),
        };
        let mut w = WindowState {
            first_followed: Some(first_followed),
            chain: Some((
                Did::of_key(&c.machine).to_string(),
                c.chain.public_key().to_hex(),
            )),
            ..WindowState::default()
        };
        for i in first_followed..4 {
            w.pending.insert(
                i,
                Followed {
                    chunk_id: c.ids[i as usize].clone(),
                    span: Some((i * 10, i * 10 + 10)),
                },
            );
        }
        (c, w)
    }

    /// The window `first..=last` as the machine signs it, changed by `edit`
    /// before signing.
    fn window(
        c: &Chain,
        first: u64,
        last: u64,
        edit: impl FnOnce(&mut DatasetManifest),
    ) -> SubscriptionDataset {
        let ids = &c.ids[first as usize..=last as usize];
        let leaves: Vec<_> = ids.iter().map(|id| chunk_leaf(id).unwrap()).collect();
        let mut m = DatasetManifest {
            machine_did: Did::of_key(&c.machine).to_string(),
            topic: Some("/t".into()),
            data_schema_version: None,
            first_captured_at: None,
            last_captured_at: None,
            chunk_size: 0,
            first_index: first,
            chunk_count: last - first + 1,
            first_chunk_id: ids[0].clone(),
            head_chunk_id: ids[ids.len() - 1].clone(),
            source_hash: sha256_hex(&c.plaintext[first as usize * 10..(last as usize + 1) * 10]),
            merkle_root: hash_hex(&sealstream_core::merkle::root(&leaves)),
            chain_public_key_hex: c.chain.public_key().to_hex(),
            sample_chunk_indexes: Vec::new(),
            gaps: Vec::new(),
            created_at: "2026-01-01T00:00:00Z".into(),
            signatures: Vec::new(),
        };
        edit(&mut m);
        m.sign_eip191(&c.machine).unwrap();
        m.sign_ed25519(&c.chain).unwrap();
        let text = m.to_pretty_json();
        SubscriptionDataset {
            dataset_id: format!("ds_{first}"),
            first_index: first,
            last_index: last,
            manifest: sealstream_api::JsonDocument(serde_json::from_str(&text).unwrap()),
        }
    }

    fn hasher(c: &Chain) -> impl FnMut(u64, u64) -> std::io::Result<RangeDigest> + '_ {
        |s, e| {
            let bytes = &c.plaintext[s as usize..e as usize];
            let mut scanner = sealstream_core::gap::GapScanner::new();
            let mut gaps: Vec<Gap> = scanner.push(bytes).into_iter().flatten().collect();
            gaps.extend(scanner.finish().and_then(Result::ok));
            Ok(RangeDigest {
                source_hash: sha256_hex(bytes),
                gaps,
            })
        }
    }

    #[test]
    fn a_window_followed_whole_verifies_and_leaves_the_cursor_after_it() {
        let (c, mut w) = followed(0);
        let out = w
            .check_one(&window(&c, 0, 1, |_| {}), &mut hasher(&c))
            .unwrap();
        let WindowOutcome::Verified {
            window: got,
            source_checked,
            gaps,
        } = out
        else {
            panic!("{out:?}")
        };
        assert!(source_checked);
        assert!(gaps.is_empty());
        assert_eq!((got.first, got.last), (0, 1));
        assert_eq!(w.cursor, Some(1));
        assert_eq!(w.pending.keys().copied().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(w.checked, [got]);
        // Without the plaintext at hand, the root is still checked.
        for p in w.pending.values_mut() {
            p.span = None;
        }
        let out = w
            .check_one(&window(&c, 2, 3, |_| {}), &mut hasher(&c))
            .unwrap();
        assert!(matches!(
            out,
            WindowOutcome::Verified {
                source_checked: false,
                ..
            }
        ));
    }

    #[test]
    fn a_window_that_does_not_match_is_a_mismatch() {
        let (c, mut w) = followed(0);
        let bad_source = window(&c, 0, 1, |m| m.source_hash = sha256_hex(b"other"));
        let e = w.check_one(&bad_source, &mut hasher(&c)).unwrap_err();
        assert!(e.to_string().contains("sourceHash"), "{e}");
        let other_ids = window(&c, 2, 3, |m| {
            m.merkle_root = hash_hex(&sealstream_core::merkle::root(&[
                chunk_leaf(&c.ids[0]).unwrap()
            ]))
        });
        let e = w.check_one(&other_ids, &mut hasher(&c)).unwrap_err();
        assert!(e.to_string().contains("Merkle root"), "{e}");
        // Signed by another machine.
        let (other, _) = followed(0);
        let mut w = followed(0).1;
        w.chain = Some((
            Did::of_key(&c.machine).to_string(),
            c.chain.public_key().to_hex(),
        ));
        let e = w
            .check_one(&window(&other, 0, 1, |_| {}), &mut hasher(&c))
            .unwrap_err();
        assert!(e.to_string().contains("machine"), "{e}");
        // A gap stated that the plaintext does not hold.
        let (c, mut w) = followed(0);
        let gap = Gap {
            reason: sealstream_core::gap::GapReason::NotReceived,
            source_topic: "/t".into(),
            after: None,
            before: None,
            publisher: None,
            sequences: Some((3, 4)),
            chunks: None,
        };
        let stated = window(&c, 0, 1, |m| m.gaps = vec![gap.clone()]);
        let e = w.check_one(&stated, &mut hasher(&c)).unwrap_err();
        assert!(
            e.to_string()
                .contains("gaps: the dataset lists 1 gap, the decrypted chunks hold 0"),
            "{e}"
        );
        // Without the plaintext at hand, the gaps stated are reported as signed.
        for p in w.pending.values_mut() {
            p.span = None;
        }
        let stated = window(&c, 2, 3, |m| m.gaps = vec![gap.clone()]);
        let out = w.check_one(&stated, &mut hasher(&c)).unwrap();
        assert_eq!(
            out,
            WindowOutcome::Verified {
                window: w.checked[0].clone(),
                source_checked: false,
                gaps: vec![gap],
            }
        );
    }

    #[test]
    fn a_window_partly_before_the_first_chunk_followed_is_not_checkable() {
        let (c, mut w) = followed(1);
        let out = w
            .check_one(&window(&c, 0, 1, |_| {}), &mut hasher(&c))
            .unwrap();
        assert!(
            matches!(
                out,
                WindowOutcome::NotCheckable {
                    first: 0,
                    last: 1,
                    ..
                }
            ),
            "{out:?}"
        );
        assert_eq!(w.cursor, Some(1));
        let out = w
            .check_one(&window(&c, 2, 3, |_| {}), &mut hasher(&c))
            .unwrap();
        assert!(matches!(out, WindowOutcome::Verified { .. }), "{out:?}");
    }
}
