//! A stream of feed messages ([`crate::feed::Message`]) read and written
//! by a blocking thread, each line bounded and each call timed out.

use std::io::{self, BufReader, Write};
use std::time::Duration;

use libp2p::identity::PublicKey;
use libp2p::PeerId;

use crate::feed::{Message, MessageError};
use crate::node::{BlockingStream, NodeError};
use crate::reference::{read_line, ReadError};

/// Messages over one libp2p stream.
pub(crate) struct Messages {
    reader: BufReader<BlockingStream>,
    line: Vec<u8>,
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecvError {
    #[error("a message longer than {0} bytes")]
    TooLong(usize),
    #[error("the stream ended inside a message")]
    Truncated,
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("timed out")]
    Timeout,
    #[error("stream: {0}")]
    Io(io::ErrorKind),
}

impl From<RecvError> for NodeError {
    fn from(e: RecvError) -> NodeError {
        match e {
            RecvError::Timeout => NodeError::Timeout("no message from the peer"),
            RecvError::Io(kind) => NodeError::Transport(format!("stream: {kind}")),
            other => NodeError::Protocol {
                code: crate::reference::ErrorCode::MalformedFrame,
                problem: other.to_string(),
            },
        }
    }
}

impl Messages {
    pub(crate) fn new(rt: tokio::runtime::Handle, stream: libp2p::Stream) -> Messages {
        Messages {
            reader: BufReader::with_capacity(64 * 1024, BlockingStream::new(rt, stream)),
            line: Vec::new(),
        }
    }

    /// Bound the next reads and writes by `timeout`.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.reader.get_mut().timeout = timeout;
    }

    /// Make every read and write fail once `within` has passed from now
    /// (`None`: no overall deadline).
    pub(crate) fn set_deadline(&mut self, within: Option<Duration>) {
        self.reader.get_mut().deadline = within.map(|d| std::time::Instant::now() + d);
    }

    /// The next message of at most `max` bytes; `Ok(None)` at the end of the stream.
    pub(crate) fn recv(&mut self, max: usize) -> Result<Option<Message>, RecvError> {
        match read_line(&mut self.reader, &mut self.line, max) {
            Ok(false) => Ok(None),
            Ok(true) => Ok(Some(Message::decode(&self.line)?)),
            Err(ReadError::FrameTooLarge) => Err(RecvError::TooLong(max)),
            Err(ReadError::Truncated) => Err(RecvError::Truncated),
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => Err(RecvError::Timeout),
            Err(ReadError::Io(e)) => Err(RecvError::Io(e.kind())),
            Err(_) => Err(RecvError::Truncated),
        }
    }

    /// Send one message (flushed).
    pub(crate) fn send(&mut self, m: &Message) -> Result<(), NodeError> {
        let io = self.reader.get_mut();
        io.write_all(&m.encode())
            .and_then(|()| io.flush())
            .map_err(|e| match e.kind() {
                io::ErrorKind::TimedOut => NodeError::Timeout("the peer does not read"),
                kind => NodeError::Transport(format!("stream: {kind}")),
            })
    }

    /// Close our half and wait briefly for the peer's (the last message
    /// is not lost with the connection).
    pub(crate) fn finish(mut self) {
        self.reader.get_mut().finish();
    }
}

/// The Ed25519 public key inside an Ed25519 peer id (such ids embed it).
pub(crate) fn peer_public_key(peer: &PeerId) -> Option<PublicKey> {
    let mh = peer.as_ref();
    if mh.code() != 0 {
        return None;
    }
    PublicKey::try_decode_protobuf(mh.digest()).ok()
}

/// Whether `signature_hex` is `peer`'s signature over `payload`.
pub(crate) fn verify_by_peer(peer: &PeerId, payload: &[u8], signature_hex: &str) -> bool {
    let (Some(key), Ok(sig)) = (peer_public_key(peer), hex::decode(signature_hex)) else {
        return false;
    };
    key.verify(payload, &sig)
}

/// Whether `signature_hex` is the Ed25519 key `key_hex`'s signature over `payload`.
pub(crate) fn verify_by_key(key_hex: &str, payload: &[u8], signature_hex: &str) -> bool {
    let (Ok(key), Ok(sig)) = (hex::decode(key_hex), hex::decode(signature_hex)) else {
        return false;
    };
    match libp2p::identity::ed25519::PublicKey::try_from_bytes(&key) {
        Ok(k) => k.verify(payload, &sig),
        Err(_) => false,
    }
}
