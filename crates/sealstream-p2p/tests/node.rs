//! The libp2p node against itself on 127.0.0.1 (the reference's side is in
//! `crates/sealstream/tests/p2p_reference.rs`): a delivery arrives byte for
//! byte; a handshake for another session is refused and the seller waits on;
//! a chunk changed on the seller's disk, or more chunks than the buyer
//! accepts, are refused by the buyer, which then leaves nothing behind;
//! identity files keep the peer id; a URL naming another peer id than the
//! seller's is refused when dialling.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use sealstream_p2p::node::{
    fetch, FetchConfig, Identity, NodeError, Refusal, ServeConfig, Server, DEFAULT_LISTEN,
    DEFAULT_MAX_CHUNKS,
};
use sealstream_p2p::reference::ErrorCode;
use sealstream_testkit::{files_under, fixtures};

const BUYER: &str = "did:peaq:0x000000000000000000000000000000000000b0b0";

fn published(chain: &str) -> PathBuf {
    fixtures().join("chains").join(chain).join("published")
}

/// How a delivery ended (chunks sent, or the error) and the refusals heard of.
type Outcome = (Result<u64, String>, Vec<Refusal>);

/// A seller of `dir` on its own thread: the URL, then the delivery's outcome.
fn seller(dir: &Path) -> (String, mpsc::Receiver<Outcome>) {
    let server = Server::bind(
        ServeConfig {
            chunk_dir: dir.to_path_buf(),
            purchase_id: "ord-1".into(),
            session_id: "sess-1".into(),
            buyer_id: BUYER.into(),
            listen: DEFAULT_LISTEN.into(),
        },
        &Identity::generate(),
    )
    .unwrap();
    let url = server.url().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut refusals = Vec::new();
        let outcome = server
            .deliver(Duration::from_secs(30), &mut |r| refusals.push(r.clone()))
            .map(|d| d.chunks)
            .map_err(|e| e.to_string());
        let _ = tx.send((outcome, refusals));
    });
    (url, rx)
}

fn buyer(url: &str, session: &str, out: &Path) -> FetchConfig {
    FetchConfig {
        url: url.into(),
        purchase_id: None,
        session_id: session.into(),
        buyer_id: BUYER.into(),
        output_dir: out.to_path_buf(),
        max_chunks: DEFAULT_MAX_CHUNKS,
        connect_timeout: Duration::from_secs(30),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_delivery_arrives_byte_for_byte_after_a_refused_session() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = published("odd");
    let (url, done) = seller(&dir);
    let out = tmp.path().join("out");

    let wrong = fetch(&buyer(&url, "sess-2", &out), &Identity::generate()).unwrap_err();
    assert!(
        matches!(wrong, NodeError::Refused(ErrorCode::SessionMismatch)),
        "{wrong}"
    );
    assert!(files_under(&out).is_empty());

    let got = fetch(&buyer(&url, "sess-1", &out), &Identity::generate()).unwrap();
    assert_eq!(got.chunks, 4);
    let (outcome, refusals) = done.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(outcome, Ok(4));
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].code, ErrorCode::SessionMismatch);
    assert_eq!(refusals[0].reason, "session or buyer mismatch");
    for i in 0..4 {
        for name in [format!("chunk-{i}.json"), format!("chunk-{i}.bin")] {
            assert_eq!(
                std::fs::read(out.join(&name)).unwrap(),
                std::fs::read(dir.join(&name)).unwrap(),
                "{name}"
            );
        }
    }
    assert_eq!(files_under(&out).len(), 8);
}

#[test]
fn a_changed_chunk_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chain");
    copy_dir(&published("odd"), &dir);
    let bin = dir.join("chunk-2.bin");
    let mut bytes = std::fs::read(&bin).unwrap();
    bytes[7] ^= 1;
    std::fs::write(&bin, bytes).unwrap();
    let (url, done) = seller(&dir);
    let out = tmp.path().join("out");
    let e = fetch(&buyer(&url, "sess-1", &out), &Identity::generate()).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("chunk 2"), "{text}");
    assert!(text.contains("encryptedDataHash"), "{text}");
    assert!(files_under(&out).is_empty(), "{:?}", files_under(&out));
    let _ = done.recv_timeout(Duration::from_secs(30));
}

#[test]
fn more_chunks_than_accepted_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, done) = seller(&published("odd"));
    let out = tmp.path().join("out");
    let mut config = buyer(&url, "sess-1", &out);
    config.max_chunks = 3;
    let e = fetch(&config, &Identity::generate()).unwrap_err();
    assert!(
        matches!(
            e,
            NodeError::Protocol {
                code: ErrorCode::TransferTooLarge,
                ..
            }
        ),
        "{e}"
    );
    assert!(files_under(&out).is_empty());
    let _ = done.recv_timeout(Duration::from_secs(30));
}

#[test]
fn identity_files_keep_the_peer_id_and_stay_private() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("node.key");
    let a = Identity::load_or_create(&path).unwrap();
    let b = Identity::load_or_create(&path).unwrap();
    assert_eq!(a.peer_id(), b.peer_id());
    assert_ne!(a.peer_id(), Identity::generate().peer_id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::write(&path, "zz".repeat(32)).unwrap();
    let e = Identity::load_or_create(&path).unwrap_err().to_string();
    assert!(e.contains("64 hex digits"), "{e}");
    assert!(!e.contains("zzzz"), "{e}");
}

#[test]
fn a_seller_with_another_peer_id_is_not_dialled_through() {
    use sealstream_p2p::reference::ConnectUrl;
    let tmp = tempfile::tempdir().unwrap();
    let (url, _done) = seller(&published("small"));
    let mut parsed = ConnectUrl::parse(&url).unwrap();
    let real = parsed.addr.rsplit('/').next().unwrap().to_string();
    let other = Identity::generate().peer_id().to_string();
    parsed.addr = parsed.addr.replace(&real, &other);
    let out = tmp.path().join("out");
    let mut config = buyer(&parsed.to_url("x"), "sess-1", &out);
    config.connect_timeout = Duration::from_secs(10);
    let e = fetch(&config, &Identity::generate()).unwrap_err();
    // Refused at the Noise handshake, at once (not after the timeout).
    assert!(matches!(e, NodeError::Transport(_)), "{e}");
    assert!(e.to_string().contains("Unexpected peer ID"), "{e}");
    assert!(files_under(&out).is_empty());
}
