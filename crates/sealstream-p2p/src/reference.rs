//! The reference SDK's P2P delivery wire (`peaq-os-sdk` 0.12.1,
//! `peaq_os_sdk.stream._internal.frames`): the `peaqos-json-frame-v1`
//! encoding of the `/peaqos/stream/chunk/1.0.0` protocol.
//!
//! - One JSON object per line, ending in `\n`, written as Python's
//!   `json.dumps(obj, separators=(",", ":"), sort_keys=True)` writes it: keys
//!   sorted at every depth, no whitespace, non-ASCII as `\uXXXX`.
//! - A line is at most [`MAX_FRAME_BYTES`] without its newline.
//! - Frames: `handshake {purchaseId, sessionId, buyerId}` (buyer → seller,
//!   the first and only buyer frame), `chunk {chunkId, index, envelope,
//!   ciphertextB64}`, `complete {totalChunks}`, `error {code, reason}`
//!   (seller → buyer).
//!
//! Everything read here comes from a peer: decoding never panics, a frame
//! that breaks the format is refused naming the field, and no peer-supplied
//! text (an unknown type, a reason) is echoed in an error.

use std::fmt;
use std::io::BufRead;

use base64::Engine as _;
use sealstream_core::chunk::ChunkEnvelope;
use sealstream_core::json::{self, canonical, Map, Value};

/// The protocol id of the reference's chunk stream.
pub const PROTOCOL: &str = "/peaqos/stream/chunk/1.0.0";
/// The encoding's name, as the reference's transport descriptors give it.
pub const ENCODING: &str = "peaqos-json-frame-v1";
/// The largest frame, in bytes, not counting its newline (the reference's `MAX_FRAME_BYTES`).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Why a frame failed, with the reference's wire codes (`StreamFrameErrorCode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The session, purchase or buyer does not match (`session_mismatch`).
    SessionMismatch,
    /// Not a frame, or not the frame expected (`malformed_frame`).
    MalformedFrame,
    /// A line over [`MAX_FRAME_BYTES`] (`frame_too_large`).
    FrameTooLarge,
    /// More bytes than the transfer may carry (`transfer_too_large`).
    TransferTooLarge,
    /// A chunk the buyer has no access entry for (`unauthorized_chunk`).
    UnauthorizedChunk,
    /// A chunk id or index seen before (`duplicate_chunk`).
    DuplicateChunk,
    /// A chunk missing from the transfer (`missing_chunk`).
    MissingChunk,
    /// `totalChunks` disagrees with the chunks sent (`count_mismatch`).
    CountMismatch,
    /// The sender failed (`internal_error`).
    InternalError,
    /// A code this implementation does not know (its text is not kept).
    Unknown,
}

impl ErrorCode {
    /// The wire text (`session_mismatch`, …; `unknown` for [`ErrorCode::Unknown`]).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::SessionMismatch => "session_mismatch",
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::TransferTooLarge => "transfer_too_large",
            ErrorCode::UnauthorizedChunk => "unauthorized_chunk",
            ErrorCode::DuplicateChunk => "duplicate_chunk",
            ErrorCode::MissingChunk => "missing_chunk",
            ErrorCode::CountMismatch => "count_mismatch",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// A wire code; any other text is [`ErrorCode::Unknown`].
    pub fn parse(s: &str) -> ErrorCode {
        match s {
            "session_mismatch" => ErrorCode::SessionMismatch,
            "malformed_frame" => ErrorCode::MalformedFrame,
            "frame_too_large" => ErrorCode::FrameTooLarge,
            "transfer_too_large" => ErrorCode::TransferTooLarge,
            "unauthorized_chunk" => ErrorCode::UnauthorizedChunk,
            "duplicate_chunk" => ErrorCode::DuplicateChunk,
            "missing_chunk" => ErrorCode::MissingChunk,
            "count_mismatch" => ErrorCode::CountMismatch,
            "internal_error" => ErrorCode::InternalError,
            _ => ErrorCode::Unknown,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The buyer's opening frame.
    Handshake {
        /// The purchase (order) id.
        purchase_id: String,
        /// The delivery session id the market gave the buyer.
        session_id: String,
        /// The buyer's id.
        buyer_id: String,
    },
    /// A chunk: its envelope and ciphertext.
    Chunk {
        /// The envelope (its `chunkId` and `index` are the frame's).
        envelope: Box<ChunkEnvelope>,
        /// The ciphertext (`chunk-N.bin`), base64 on the wire.
        ciphertext: Vec<u8>,
    },
    /// The end of a transfer.
    Complete {
        /// How many chunk frames were sent.
        total_chunks: u64,
    },
    /// The sender gives up.
    Error {
        /// Why, as a wire code.
        code: ErrorCode,
        /// The sender's explanation (the reference never shows it to its user).
        reason: String,
    },
}

/// A frame that breaks the format: always [`ErrorCode::MalformedFrame`],
/// with the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed_frame: {field}: {problem}")]
pub struct FrameError {
    /// The field (`envelope.signature.value`, `type`, …), or `frame`.
    pub field: String,
    /// What is wrong (never the peer's text).
    pub problem: String,
}

impl From<crate::fields::Fault> for FrameError {
    fn from((field, problem): crate::fields::Fault) -> FrameError {
        FrameError::new(field, problem)
    }
}

impl FrameError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> FrameError {
        FrameError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl Frame {
    /// The frame as a JSON object, keys as the reference writes them.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        match self {
            Frame::Handshake {
                purchase_id,
                session_id,
                buyer_id,
            } => {
                o.insert("type".into(), "handshake".into());
                o.insert("purchaseId".into(), purchase_id.as_str().into());
                o.insert("sessionId".into(), session_id.as_str().into());
                o.insert("buyerId".into(), buyer_id.as_str().into());
            }
            Frame::Chunk {
                envelope,
                ciphertext,
            } => {
                o.insert("type".into(), "chunk".into());
                o.insert("chunkId".into(), envelope.chunk_id.as_str().into());
                o.insert("index".into(), Value::from(envelope.index));
                o.insert("envelope".into(), envelope.to_json());
                o.insert(
                    "ciphertextB64".into(),
                    base64::engine::general_purpose::STANDARD
                        .encode(ciphertext)
                        .into(),
                );
            }
            Frame::Complete { total_chunks } => {
                o.insert("type".into(), "complete".into());
                o.insert("totalChunks".into(), Value::from(*total_chunks));
            }
            Frame::Error { code, reason } => {
                o.insert("type".into(), "error".into());
                o.insert("code".into(), code.as_str().into());
                o.insert("reason".into(), reason.as_str().into());
            }
        }
        Value::Object(o)
    }

    /// The frame's line, as the reference's `encode_frame` writes it (keys
    /// sorted at every depth, compact, ASCII), with its newline.
    pub fn encode(&self) -> Vec<u8> {
        let mut line = canonical::python(&self.to_json()).into_bytes();
        line.push(b'\n');
        line
    }

    /// Read one line (without its newline). Extra keys are ignored, as the
    /// reference ignores them; a chunk frame's `chunkId` and `index` must be
    /// its envelope's.
    pub fn decode(line: &[u8]) -> Result<Frame, FrameError> {
        if line.len() > MAX_FRAME_BYTES {
            return Err(FrameError::new("frame", "longer than 1 MiB"));
        }
        let value = json::parse(line).map_err(|_| FrameError::new("frame", "not JSON"))?;
        let o = value
            .as_object()
            .ok_or_else(|| FrameError::new("frame", "not a JSON object"))?;
        let text = |k: &str| crate::fields::text(o, k).map_err(FrameError::from);
        let count = |k: &str| crate::fields::count(o, k).map_err(FrameError::from);
        match o.get("type").and_then(Value::as_str) {
            Some("handshake") => Ok(Frame::Handshake {
                purchase_id: text("purchaseId")?,
                session_id: text("sessionId")?,
                buyer_id: text("buyerId")?,
            }),
            Some("chunk") => {
                let envelope = ChunkEnvelope::from_json(
                    o.get("envelope")
                        .ok_or_else(|| FrameError::new("envelope", "required object"))?,
                )
                .map_err(|e| FrameError::new(format!("envelope.{}", e.field), e.constraint))?;
                if text("chunkId")? != envelope.chunk_id {
                    return Err(FrameError::new("chunkId", "not the envelope's chunkId"));
                }
                if count("index")? != envelope.index {
                    return Err(FrameError::new("index", "not the envelope's index"));
                }
                let ciphertext = base64::engine::general_purpose::STANDARD
                    .decode(text("ciphertextB64")?)
                    .map_err(|_| FrameError::new("ciphertextB64", "not base64"))?;
                Ok(Frame::Chunk {
                    envelope: Box::new(envelope),
                    ciphertext,
                })
            }
            Some("complete") => Ok(Frame::Complete {
                total_chunks: count("totalChunks")?,
            }),
            Some("error") => Ok(Frame::Error {
                code: ErrorCode::parse(&text("code")?),
                reason: text("reason")?,
            }),
            Some(_) => Err(FrameError::new(
                "type",
                "not a frame type of peaqos-json-frame-v1",
            )),
            None => Err(FrameError::new("type", "required string")),
        }
    }
}

/// Why a stream of frames could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A line over [`MAX_FRAME_BYTES`] (`frame_too_large`).
    #[error("frame_too_large: a frame is longer than 1 MiB")]
    FrameTooLarge,
    /// More than the transfer's byte limit (`transfer_too_large`).
    #[error("transfer_too_large: more than {limit} bytes of frames")]
    TransferTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The stream ended inside a frame (`malformed_frame`).
    #[error("malformed_frame: the stream ended inside a frame")]
    Truncated,
    /// A frame that breaks the format.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream failed.
    #[error("reading frames: {0}")]
    Io(#[from] std::io::Error),
}

impl ReadError {
    /// The wire code of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            ReadError::FrameTooLarge => ErrorCode::FrameTooLarge,
            ReadError::TransferTooLarge { .. } => ErrorCode::TransferTooLarge,
            ReadError::Truncated | ReadError::Frame(_) => ErrorCode::MalformedFrame,
            ReadError::Io(_) => ErrorCode::InternalError,
        }
    }
}

/// Frames from a byte stream: each line bounded by [`MAX_FRAME_BYTES`]
/// (memory never holds more than one frame and a read buffer), and all
/// lines together, newlines counted, by an optional transfer limit.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    line: Vec<u8>,
    total: u64,
    limit: Option<u64>,
}

impl<R: BufRead> FrameReader<R> {
    /// Frames from `inner`; `limit`: the most bytes all frames may take.
    pub fn new(inner: R, limit: Option<u64>) -> FrameReader<R> {
        FrameReader {
            inner,
            line: Vec::new(),
            total: 0,
            limit,
        }
    }

    /// The stream the frames come from (to answer on the same stream).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The next frame; `Ok(None)` at the end of the stream between frames.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        if !read_line(&mut self.inner, &mut self.line, MAX_FRAME_BYTES)? {
            return Ok(None);
        }
        self.total += self.line.len() as u64 + 1;
        if let Some(limit) = self.limit.filter(|l| self.total > *l) {
            return Err(ReadError::TransferTooLarge { limit });
        }
        Ok(Some(Frame::decode(&self.line)?))
    }
}

/// Read one line of at most `max` bytes (newline not counted) into `line`
/// (cleared first), without its newline: `Ok(false)` at the end of the
/// stream between lines. Memory holds at most `max` bytes and the reader's
/// buffer.
pub fn read_line<R: BufRead>(
    inner: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> Result<bool, ReadError> {
    line.clear();
    loop {
        let buf = inner.fill_buf()?;
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(false)
            } else {
                Err(ReadError::Truncated)
            };
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Err(ReadError::FrameTooLarge);
        }
        line.extend_from_slice(&buf[..take]);
        inner.consume(if done { take + 1 } else { take });
        if done {
            return Ok(true);
        }
    }
}

/// A `peaqos-p2p://` connection URL: where the seller listens and the
/// purchase it delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectUrl {
    /// The seller's multiaddr, with `/p2p/<peer id>`.
    pub addr: String,
    /// The purchase id (the reference's `session` parameter).
    pub session: String,
}

/// Why a connection URL was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("connection URL: {0}")]
pub struct UrlError(&'static str);

/// What Python's `urllib.parse.quote(value, safe="")` leaves as it is.
const QUOTE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

impl ConnectUrl {
    /// The URL as the reference's seller writes it:
    /// `peaqos-p2p://seller-<label>?addr=<quoted addr>&session=<quoted purchase id>`.
    pub fn to_url(&self, label: &str) -> String {
        format!(
            "peaqos-p2p://seller-{label}?addr={}&session={}",
            percent_encoding::utf8_percent_encode(&self.addr, QUOTE),
            percent_encoding::utf8_percent_encode(&self.session, QUOTE)
        )
    }

    /// Read a URL as the reference's buyer reads it: scheme `peaqos-p2p`,
    /// `addr` and `session` present and non-empty, each value decoded as
    /// a query value (`+` is a space) and then percent-decoded once more
    /// (`parse_qs` then `unquote`), so a literal `%` written by
    /// [`ConnectUrl::to_url`] does not come back as itself, for the
    /// reference's buyer either.
    pub fn parse(url: &str) -> Result<ConnectUrl, UrlError> {
        let rest = url
            .strip_prefix("peaqos-p2p://")
            .ok_or(UrlError("expected the scheme peaqos-p2p://"))?;
        let query = rest
            .split_once('?')
            .map(|(_, q)| q.split('#').next().unwrap_or(""))
            .ok_or(UrlError("no query: expected ?addr=…&session=…"))?;
        let mut addr = None;
        let mut session = None;
        for pair in query.split(['&', ';']) {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let once = |s: &str| -> Result<String, UrlError> {
                let spaced = s.replace('+', " ");
                percent_encoding::percent_decode_str(&spaced)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| UrlError("a parameter is not UTF-8"))
            };
            let key = once(k)?;
            let value = once(v)?;
            let twice = percent_encoding::percent_decode_str(&value)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| UrlError("a parameter is not UTF-8"))?;
            // The first occurrence counts, as parse_qs()[k][0] takes it.
            match key.as_str() {
                "addr" if addr.is_none() => addr = Some(twice),
                "session" if session.is_none() => session = Some(twice),
                _ => {}
            }
        }
        let addr = addr
            .filter(|a| !a.is_empty())
            .ok_or(UrlError("addr: required"))?;
        let session = session
            .filter(|s| !s.is_empty())
            .ok_or(UrlError("session: required"))?;
        Ok(ConnectUrl { addr, session })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frames_are_the_references_bytes() {
        let h = Frame::Handshake {
            purchase_id: "ord-1".into(),
            session_id: "sess-1".into(),
            buyer_id: "did:peaq:0x000000000000000000000000000000000000b0b0".into(),
        };
        assert_eq!(
            h.encode(),
            b"{\"buyerId\":\"did:peaq:0x000000000000000000000000000000000000b0b0\",\"purchaseId\":\"ord-1\",\"sessionId\":\"sess-1\",\"type\":\"handshake\"}\n"
        );
        assert_eq!(
            Frame::Complete { total_chunks: 4 }.encode(),
            b"{\"totalChunks\":4,\"type\":\"complete\"}\n"
        );
        let e = Frame::Error {
            code: ErrorCode::SessionMismatch,
            reason: "unknown session".into(),
        };
        assert_eq!(
            e.encode(),
            b"{\"code\":\"session_mismatch\",\"reason\":\"unknown session\",\"type\":\"error\"}\n"
        );
        for f in [h, e, Frame::Complete { total_chunks: 0 }] {
            let line = f.encode();
            assert_eq!(Frame::decode(&line[..line.len() - 1]).unwrap(), f);
        }
        // Non-ASCII as Python writes it.
        let caf = Frame::Error {
            code: ErrorCode::Unknown,
            reason: "café".into(),
        };
        assert!(String::from_utf8(caf.encode())
            .unwrap()
            .contains("caf\\u00e9"));
    }

    #[test]
    fn bad_frames_name_the_field_and_never_echo() {
        let err = |line: &str| Frame::decode(line.as_bytes()).unwrap_err();
        assert_eq!(err("nope").field, "frame");
        assert_eq!(err("[1]").field, "frame");
        let e = err(r#"{"type":"secret-token-123"}"#);
        assert_eq!(e.field, "type");
        assert!(!e.to_string().contains("secret"));
        assert_eq!(
            err(r#"{"type":"handshake","purchaseId":"p","sessionId":"s"}"#).field,
            "buyerId"
        );
        assert_eq!(
            err(r#"{"type":"complete","totalChunks":-1}"#).field,
            "totalChunks"
        );
        assert_eq!(
            err(r#"{"type":"chunk","chunkId":"x","index":0}"#).field,
            "envelope"
        );
        assert_eq!(
            Frame::decode(br#"{"type":"error","code":"weird","reason":"r","extra":1}"#).unwrap(),
            Frame::Error {
                code: ErrorCode::Unknown,
                reason: "r".into()
            }
        );
    }

    #[test]
    fn the_reader_bounds_frames_and_transfers() {
        let ok = |bytes: Vec<u8>, limit| {
            let mut r = FrameReader::new(std::io::Cursor::new(bytes), limit);
            let mut out = Vec::new();
            loop {
                match r.next_frame() {
                    Ok(Some(f)) => out.push(f),
                    Ok(None) => return Ok(out),
                    Err(e) => return Err(e),
                }
            }
        };
        let complete = Frame::Complete { total_chunks: 1 }.encode();
        let two = [complete.clone(), complete.clone()].concat();
        assert_eq!(ok(two.clone(), None).unwrap().len(), 2);
        assert_eq!(ok(two.clone(), Some(two.len() as u64)).unwrap().len(), 2);
        assert!(matches!(
            ok(two.clone(), Some(two.len() as u64 - 1)),
            Err(ReadError::TransferTooLarge { .. })
        ));
        assert!(matches!(
            ok(complete[..5].to_vec(), None),
            Err(ReadError::Truncated)
        ));
        // Exactly 1 MiB is a frame (not JSON here); one byte more is too large.
        let mut big = vec![b' '; MAX_FRAME_BYTES];
        big.push(b'\n');
        assert!(matches!(ok(big.clone(), None), Err(ReadError::Frame(_))));
        big.insert(0, b' ');
        let e = ok(big, None).unwrap_err();
        assert_eq!(e.code(), ErrorCode::FrameTooLarge);
        assert!(ok(Vec::new(), None).unwrap().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn any_small_frame_round_trips(
            a in ".{0,40}", b in ".{0,40}", c in ".{0,40}", n in proptest::prelude::any::<u64>(),
            code in 0usize..10,
        ) {
            let codes = [
                ErrorCode::SessionMismatch, ErrorCode::MalformedFrame, ErrorCode::FrameTooLarge,
                ErrorCode::TransferTooLarge, ErrorCode::UnauthorizedChunk, ErrorCode::DuplicateChunk,
                ErrorCode::MissingChunk, ErrorCode::CountMismatch, ErrorCode::InternalError,
                ErrorCode::Unknown,
            ];
            for f in [
                Frame::Handshake { purchase_id: a.clone(), session_id: b.clone(), buyer_id: c.clone() },
                Frame::Complete { total_chunks: n },
                Frame::Error { code: codes[code], reason: a.clone() },
            ] {
                let line = f.encode();
                proptest::prop_assert!(line.is_ascii());
                proptest::prop_assert_eq!(line.iter().filter(|&&x| x == b'\n').count(), 1);
                proptest::prop_assert_eq!(Frame::decode(&line[..line.len() - 1]).unwrap(), f);
            }
            // Without `%`: a literal one is decoded twice, as by the reference's buyer.
            let (a, b) = (a.replace('%', ""), b.replace('%', ""));
            let url = ConnectUrl { addr: format!("/ip4/127.0.0.1/tcp/1/p2p/{a}x"), session: format!("{b}y") };
            proptest::prop_assert_eq!(ConnectUrl::parse(&url.to_url("1")).unwrap(), url);
        }
    }

    #[test]
    fn connection_urls_as_the_reference_writes_and_reads_them() {
        let url = ConnectUrl {
            addr: "/ip4/127.0.0.1/tcp/33917/p2p/12D3KooWP7Ea".into(),
            session: "ord 1/ä".into(),
        };
        let text = url.to_url("140534027466448");
        assert_eq!(
            text,
            "peaqos-p2p://seller-140534027466448?addr=%2Fip4%2F127.0.0.1%2Ftcp%2F33917%2Fp2p%2F12D3KooWP7Ea&session=ord%201%2F%C3%A4"
        );
        assert_eq!(ConnectUrl::parse(&text).unwrap(), url);
        // Decoded twice, as parse_qs + unquote do: %2541 → %41 → A.
        assert_eq!(
            ConnectUrl::parse("peaqos-p2p://x?addr=a%2541&session=b+c").unwrap(),
            ConnectUrl {
                addr: "aA".into(),
                session: "b c".into()
            }
        );
        for bad in [
            "http://x?addr=a&session=b",
            "peaqos-p2p://x",
            "peaqos-p2p://x?addr=&session=b",
            "peaqos-p2p://x?addr=a",
        ] {
            assert!(ConnectUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
