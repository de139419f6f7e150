//! The reference's own codec (`peaq_os_sdk.stream._internal.frames`,
//! `encode_frame` / `decode_frame`, run in the venv's Python) and ours write
//! the same bytes for every frame of the fixture chains and for handshake,
//! complete and error frames with non-ASCII text, and each reads the other's.

use std::path::Path;
use std::process::Command;

use sealstream_files::layout::{list_chain, read_ciphertext, read_envelope};
use sealstream_p2p::reference::{ErrorCode, Frame, FrameReader};
use sealstream_testkit::{fixture, reference_python};

/// Frames the reference encodes: for each chain directory given, a chunk
/// frame per chunk (from its chunk-N.json and chunk-N.bin), then three
/// frames of its own; one line each, as encode_frame writes them.
const ENCODE: &str = r#"
import json, pathlib, sys
from peaq_os_sdk.stream._internal import frames as f
out = sys.stdout.buffer
for d in sys.argv[1:]:
    d = pathlib.Path(d)
    n = len(list(d.glob("chunk-*.json")))
    for i in range(n):
        env = f._chunk_from_camel(json.loads((d / f"chunk-{i}.json").read_text()))
        ct = (d / f"chunk-{i}.bin").read_bytes()
        out.write(f.encode_frame(f.ChunkFrame(type="chunk", chunk_id=env.chunk_id, index=env.index,
                                              envelope=env, ciphertext_b64=f.encode_ciphertext_b64(ct))))
out.write(f.encode_frame(f.HandshakeFrame(type="handshake", purchase_id="ord-ü 1", session_id="sess-1", buyer_id="did:peaq:0xb0b0")))
out.write(f.encode_frame(f.CompleteFrame(type="complete", total_chunks=3)))
out.write(f.encode_frame(f.ErrorFrame(type="error", code="session_mismatch", reason="session already consumed — ✓")))
"#;

/// Decode every line of stdin with the reference and re-encode it.
const ROUND_TRIP: &str = r#"
import sys
from peaq_os_sdk.stream._internal import frames as f
for line in sys.stdin.buffer.read().split(b"\n"):
    if line:
        sys.stdout.buffer.write(f.encode_frame(f.decode_frame(line)))
"#;

fn python(script: &str, args: &[&Path], stdin: Option<&[u8]>) -> Vec<u8> {
    let mut c = Command::new(reference_python());
    c.arg("-c").arg(script).args(args);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("the reference's Python");
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "reference: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn ours(chains: &[&Path]) -> Vec<u8> {
    let mut out = Vec::new();
    for dir in chains {
        for (i, path) in list_chain(dir).unwrap() {
            let frame = Frame::Chunk {
                envelope: Box::new(read_envelope(&path).unwrap()),
                ciphertext: read_ciphertext(dir, i).unwrap().unwrap(),
            };
            out.extend(frame.encode());
        }
    }
    for frame in [
        Frame::Handshake {
            purchase_id: "ord-ü 1".into(),
            session_id: "sess-1".into(),
            buyer_id: "did:peaq:0xb0b0".into(),
        },
        Frame::Complete { total_chunks: 3 },
        Frame::Error {
            code: ErrorCode::SessionMismatch,
            reason: "session already consumed — ✓".into(),
        },
    ] {
        out.extend(frame.encode());
    }
    out
}

#[test]
fn both_codecs_write_the_same_bytes_and_read_each_other() {
    let root = fixture::fixtures().join("chains");
    let dirs: Vec<_> = ["small", "exact2", "odd", "empty"]
        .iter()
        .map(|n| root.join(n).join("published"))
        .collect();
    let dirs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
    let reference = python(ENCODE, &dirs, None);
    let mine = ours(&dirs);
    assert!(reference.iter().filter(|&&b| b == b'\n').count() >= 7);
    assert_eq!(
        String::from_utf8(mine.clone()).unwrap(),
        String::from_utf8(reference.clone()).unwrap()
    );
    // We read the reference's lines back to frames that encode to the same bytes.
    let mut reader = FrameReader::new(std::io::Cursor::new(&reference), None);
    let mut again = Vec::new();
    while let Some(frame) = reader.next_frame().unwrap() {
        again.extend(frame.encode());
    }
    assert_eq!(again, reference);
    // The reference reads ours.
    assert_eq!(python(ROUND_TRIP, &[], Some(&mine)), mine);
}
