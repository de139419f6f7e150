//! The reading side of [`ChainWriter`](super::ChainWriter): a
//! [`ChainReader`] takes a chain's items in index order (envelope, the
//! reader's key entry, ciphertext), verifies, decrypts and, when given a
//! signed dataset, checks it as the chunks stream by, and gives the
//! plaintext as an [`std::io::Read`].
//!
//! Hashing, signature checks and decryption run on worker threads; links,
//! the dataset check and the output stay in order on the reading thread.
//! At most `4 × parallelism` chunks are in memory whatever the chain's
//! length.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{self, Read};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::decrypt::{decrypt_chunk, DecryptError};
use super::envelope::{ChunkEnvelope, KeyRecipient};
use super::state::ChainState;
use super::verify::{check_self, ChainVerifier, VerifyError};
use crate::dataset::{DatasetMismatch, DatasetVerifier};
use crate::keys::RecipientSecretKey;
use crate::pool::OrderedPool;

/// One chunk of a chain as a [`ChainReader`] takes it.
#[derive(Debug)]
pub struct ChainItem {
    /// The chunk's envelope.
    pub envelope: ChunkEnvelope,
    /// The reader's wrapped key of this chunk (a recipient entry or a
    /// buyer access entry).
    pub key: KeyRecipient,
    /// The chunk's ciphertext.
    pub ciphertext: Vec<u8>,
}

/// How a [`ChainReader`] reads.
#[derive(Debug)]
pub struct ChainReaderOptions<'a> {
    /// Verify the chain as it is read: each ciphertext's hash, each chunk
    /// id and signature, each link. Without it chunks are only decrypted
    /// (the key commitment and the plaintext hash are always checked).
    pub verify: bool,
    /// Where the chain is taken up: `None` from its first chunk; the state
    /// after the chunk before for a segment (a dataset cut from the middle
    /// of a chain).
    pub start: Option<ChainState>,
    /// A signed dataset the chain must be (count, root, first and head
    /// chunk ids, machine and chain key), checked as it streams by.
    pub dataset: Option<DatasetVerifier<'a>>,
    /// Worker threads.
    pub parallelism: usize,
}

impl Default for ChainReaderOptions<'_> {
    fn default() -> Self {
        ChainReaderOptions {
            verify: true,
            start: None,
            dataset: None,
            parallelism: crate::pool::default_parallelism(),
        }
    }
}

/// Why a [`ChainReader`] stopped. Once it has failed it fails again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainReadError<E> {
    /// The item source failed (a file could not be read, a key entry is
    /// missing…).
    #[error(transparent)]
    Source(E),
    /// The chain does not verify.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A chunk does not decrypt.
    #[error("chunk {index}: {error}")]
    Decrypt {
        /// The chunk index.
        index: u64,
        /// What went wrong.
        error: DecryptError,
    },
    /// The chain is not the signed dataset.
    #[error(transparent)]
    Dataset(DatasetMismatch),
    /// Read again after it failed (the failure was given before).
    #[error("the chain reader stopped at an earlier error")]
    Stopped,
    /// [`ChainReader::finish`] before the chain was read to its end.
    #[error("the chain was not read to its end")]
    NotReadToEnd,
}

/// What a [`ChainReader`] read, from [`ChainReader::finish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReadSummary {
    /// Chunks decrypted.
    pub chunks: u64,
    /// Plaintext bytes.
    pub bytes: u64,
    /// `0x` + SHA-256 of the plaintext (a manifest's `sourceHash`).
    pub output_hash: String,
}

/// A worker's answer: the envelope back, and the plaintext or why not.
type Done = (ChunkEnvelope, Result<Vec<u8>, Failure>);

#[derive(Debug)]
enum Failure {
    Verify(VerifyError),
    Decrypt(DecryptError),
}

/// Verifies, decrypts and reassembles a chain: see the `chunk::reader` module documentation.
///
/// Read it to the end ([`Read`], or [`next_chunk`](Self::next_chunk) for a
/// chunk at a time), then call [`finish`](Self::finish) for the dataset's
/// last checks and the plaintext's hash. A failure while reading is an
/// [`io::Error`] from `read`; [`take_error`](Self::take_error) gives it
/// typed.
pub struct ChainReader<'a, I, E> {
    items: I,
    items_done: bool,
    /// The source's error, given once the chunks before it are.
    source_error: Option<E>,
    pool: OrderedPool<ChainItem, Done>,
    ready: VecDeque<Done>,
    verify: bool,
    verifier: ChainVerifier,
    dataset: Option<DatasetVerifier<'a>>,
    current: Vec<u8>,
    position: usize,
    hasher: Sha256,
    chunks: u64,
    bytes: u64,
    error: Option<ChainReadError<E>>,
    failed: bool,
}

impl<'a, I, E> ChainReader<'a, I, E>
where
    I: Iterator<Item = Result<ChainItem, E>>,
{
    /// A reader of `items` (in index order) with the reader's secret key.
    pub fn new(
        items: impl IntoIterator<IntoIter = I>,
        secret: Arc<RecipientSecretKey>,
        options: ChainReaderOptions<'a>,
    ) -> Self {
        let verify = options.verify;
        let parallelism = options.parallelism.max(1);
        let pool = OrderedPool::new(
            parallelism,
            parallelism * super::IN_FLIGHT_PER_WORKER,
            move |item: ChainItem| {
                let ChainItem {
                    envelope,
                    key,
                    ciphertext,
                } = item;
                let index = envelope.index;
                if verify {
                    if let Err(reason) = check_self(&envelope, Some(&ciphertext)) {
                        return (
                            envelope,
                            Err(Failure::Verify(VerifyError { index, reason })),
                        );
                    }
                }
                let result =
                    decrypt_chunk(&envelope, &key, &secret, ciphertext).map_err(Failure::Decrypt);
                (envelope, result)
            },
        );
        ChainReader {
            items: items.into_iter(),
            items_done: false,
            source_error: None,
            pool,
            ready: VecDeque::new(),
            verify,
            verifier: options
                .start
                .map_or_else(ChainVerifier::new, ChainVerifier::resuming),
            dataset: options.dataset,
            current: Vec::new(),
            position: 0,
            hasher: Sha256::new(),
            chunks: 0,
            bytes: 0,
            error: None,
            failed: false,
        }
    }

    /// The next chunk's plaintext, `None` at the end of the chain.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ChainReadError<E>> {
        self.advance()
            .map_err(|()| self.error.take().unwrap_or(ChainReadError::Stopped))
    }

    /// The error that made `read` fail, typed (once).
    pub fn take_error(&mut self) -> Option<ChainReadError<E>> {
        self.error.take()
    }

    /// After the last chunk: the dataset's count, root, first and head
    /// checks, and what was read. Fails if the chain was not read to its
    /// end or a read failed.
    pub fn finish(mut self) -> Result<ChainReadSummary, ChainReadError<E>> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        if self.failed {
            return Err(ChainReadError::Stopped);
        }
        let at_end = self.items_done
            && self.ready.is_empty()
            && self.source_error.is_none()
            && self.pool.idle()
            && self.position >= self.current.len();
        if !at_end {
            return Err(ChainReadError::NotReadToEnd);
        }
        if let Some(dataset) = self.dataset.take() {
            dataset.finish().map_err(ChainReadError::Dataset)?;
        }
        Ok(ChainReadSummary {
            chunks: self.chunks,
            bytes: self.bytes,
            output_hash: crate::keys::hex_with_prefix("0x", &self.hasher.finalize()),
        })
    }

    /// Moves to the next chunk: `Ok(Some(plaintext))`, `Ok(None)` at the
    /// end, `Err(())` with the error kept in `self.error`.
    fn advance(&mut self) -> Result<Option<Vec<u8>>, ()> {
        if self.failed {
            return Err(());
        }
        match self.next_done() {
            Ok(None) => Ok(None),
            Ok(Some(done)) => match self.accept(done) {
                Ok(plaintext) => Ok(Some(plaintext)),
                Err(e) => self.fail(e),
            },
            Err(e) => self.fail(e),
        }
    }

    fn fail<T>(&mut self, error: ChainReadError<E>) -> Result<T, ()> {
        self.failed = true;
        self.error = Some(error);
        Err(())
    }

    /// The next worker answer in order, submitting items as needed.
    fn next_done(&mut self) -> Result<Option<Done>, ChainReadError<E>> {
        loop {
            if let Some(done) = self.ready.pop_front() {
                return Ok(Some(done));
            }
            if self.items_done {
                return match self.pool.next_result() {
                    Some(done) => Ok(Some(done)),
                    None => match self.source_error.take() {
                        Some(e) => Err(ChainReadError::Source(e)),
                        None => Ok(None),
                    },
                };
            }
            match self.items.next() {
                Some(Ok(item)) => {
                    let ready = &mut self.ready;
                    let _: Result<(), Infallible> = self.pool.submit(item, &mut |done| {
                        ready.push_back(done);
                        Ok(())
                    });
                }
                // The chunks already taken come first.
                Some(Err(e)) => {
                    self.source_error = Some(e);
                    self.items_done = true;
                }
                None => self.items_done = true,
            }
        }
    }

    /// The in-order checks of one chunk, then its plaintext.
    fn accept(&mut self, (envelope, result): Done) -> Result<Vec<u8>, ChainReadError<E>> {
        if self.verify {
            self.verifier
                .check_link(&envelope)
                .map_err(|reason| self.verifier.fail(reason))?;
        }
        let plaintext = result.map_err(|failure| match failure {
            Failure::Verify(e) => ChainReadError::Verify(e),
            Failure::Decrypt(error) => ChainReadError::Decrypt {
                index: envelope.index,
                error,
            },
        })?;
        if self.verify {
            self.verifier.advance(&envelope);
        }
        if let Some(dataset) = self.dataset.as_mut() {
            dataset.push(&envelope).map_err(ChainReadError::Dataset)?;
        }
        self.hasher.update(&plaintext);
        self.chunks += 1;
        self.bytes += plaintext.len() as u64;
        Ok(plaintext)
    }
}

impl<I, E> Read for ChainReader<'_, I, E>
where
    I: Iterator<Item = Result<ChainItem, E>>,
    E: std::fmt::Display,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position >= self.current.len() {
            match self.advance() {
                Ok(Some(plaintext)) => {
                    self.current = plaintext;
                    self.position = 0;
                }
                Ok(None) => return Ok(0),
                Err(()) => {
                    let message = self.error.as_ref().map_or_else(
                        || "the chain reader failed".to_string(),
                        ToString::to_string,
                    );
                    return Err(io::Error::other(message));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::io::Read;
    use std::sync::Arc;

    use super::*;
    use crate::chunk::{sha256_hex, ChainConfig, ChainWriter, Recipient, SealedChunk};
    use crate::keys::ChainSigningKey;

    fn chain(owner: &RecipientSecretKey, input: &[u8], chunk_size: usize) -> Vec<SealedChunk> {
        let recipients = vec![Recipient::new("owner-1", "owner", owner.public_key())];
        let mut config = ChainConfig::new(
            ChainSigningKey::generate(),
            "did:peaq:0x0000000000000000000000000000000000000001",
            "k",
            recipients,
        );
        config.chunk_size = chunk_size;
        let mut out = Vec::new();
        let mut w = ChainWriter::new(config, ChainState::new(), |c: SealedChunk| {
            out.push(c);
            Ok::<(), Infallible>(())
        })
        .unwrap();
        w.write(input).unwrap();
        let _summary = w.finish().unwrap();
        out
    }

    fn items(chunks: &[SealedChunk]) -> Vec<Result<ChainItem, Infallible>> {
        chunks
            .iter()
            .map(|c| {
                Ok(ChainItem {
                    envelope: c.envelope.clone(),
                    key: c.envelope.encryption.key_recipients[0].clone(),
                    ciphertext: c.ciphertext.clone(),
                })
            })
            .collect()
    }

    fn options(parallelism: usize) -> ChainReaderOptions<'static> {
        ChainReaderOptions {
            parallelism,
            ..ChainReaderOptions::default()
        }
    }

    #[test]
    fn reads_back_what_the_writer_wrote_with_any_buffer() {
        let owner = Arc::new(RecipientSecretKey::generate());
        let input: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let chunks = chain(&owner, &input, 97);
        for (parallelism, buffer) in [(1, 1), (2, 13), (4, 4096)] {
            let mut reader = ChainReader::new(items(&chunks), owner.clone(), options(parallelism));
            let mut out = Vec::new();
            let mut buf = vec![0u8; buffer];
            loop {
                let n = reader.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, input);
            let summary = reader.finish().unwrap();
            assert_eq!(summary.chunks as usize, chunks.len());
            assert_eq!(summary.bytes as usize, input.len());
            assert_eq!(summary.output_hash, sha256_hex(&input));
        }
    }

    #[test]
    fn a_dropped_chunk_is_a_link_error_at_its_index_and_stays_an_error() {
        let owner = Arc::new(RecipientSecretKey::generate());
        let mut chunks = chain(&owner, &[5u8; 1000], 100);
        chunks.remove(4);
        let mut reader = ChainReader::new(items(&chunks), owner, options(2));
        let mut out = Vec::new();
        let e = reader.read_to_end(&mut out).unwrap_err();
        assert!(e.to_string().contains("chunk 4"), "{e}");
        assert_eq!(out.len(), 400, "the chunks before the gap were given");
        match reader.take_error() {
            Some(ChainReadError::Verify(v)) => assert_eq!(v.index, 4),
            other => panic!("expected a verify error, got {other:?}"),
        }
        assert!(matches!(reader.next_chunk(), Err(ChainReadError::Stopped)));
        assert!(matches!(reader.finish(), Err(ChainReadError::Stopped)));
    }

    #[test]
    fn finish_before_the_end_is_an_error() {
        let owner = Arc::new(RecipientSecretKey::generate());
        let chunks = chain(&owner, &[4u8; 500], 100);
        let mut reader = ChainReader::new(items(&chunks), owner, options(2));
        reader.next_chunk().unwrap().unwrap();
        assert!(matches!(reader.finish(), Err(ChainReadError::NotReadToEnd)));
    }

    #[test]
    fn the_wrong_key_is_a_decrypt_error_without_verification_too() {
        let owner = Arc::new(RecipientSecretKey::generate());
        let chunks = chain(&owner, &[1u8; 300], 100);
        let stranger = Arc::new(RecipientSecretKey::generate());
        for verify in [true, false] {
            let options = ChainReaderOptions {
                verify,
                ..options(2)
            };
            let mut reader = ChainReader::new(items(&chunks), stranger.clone(), options);
            assert!(matches!(
                reader.next_chunk(),
                Err(ChainReadError::Decrypt {
                    index: 0,
                    error: DecryptError::Unwrap
                })
            ));
        }
    }

    #[test]
    fn a_segment_resumes_from_the_state_before_it() {
        let owner = Arc::new(RecipientSecretKey::generate());
        let input = vec![9u8; 1000];
        let chunks = chain(&owner, &input, 100);
        let start = ChainState::after(&chunks[2].envelope);
        let segment = &chunks[3..];
        // From the first chunk's state it does not link.
        let mut reader = ChainReader::new(items(segment), owner.clone(), options(2));
        assert!(matches!(
            reader.next_chunk(),
            Err(ChainReadError::Verify(_))
        ));
        let options = ChainReaderOptions {
            start: Some(start),
            ..options(2)
        };
        let mut reader = ChainReader::new(items(segment), owner, options);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, &input[300..]);
    }

    #[test]
    fn a_source_error_stops_the_reader() {
        let owner = Arc::new(RecipientSecretKey::generate());
        let chunks = chain(&owner, &[3u8; 500], 100);
        let mut list: Vec<Result<ChainItem, String>> = items(&chunks)
            .into_iter()
            .map(|i| i.map_err(|never| match never {}))
            .collect();
        list[2] = Err("chunk-2.bin: unreadable".into());
        let mut reader = ChainReader::new(list, owner, options(2));
        let mut given = 0;
        let error = loop {
            match reader.next_chunk() {
                Ok(Some(_)) => given += 1,
                Ok(None) => panic!("the chain ended without the error"),
                Err(e) => break e,
            }
        };
        assert_eq!(given, 2);
        assert!(matches!(error, ChainReadError::Source(ref s) if s.contains("unreadable")));
    }
}
