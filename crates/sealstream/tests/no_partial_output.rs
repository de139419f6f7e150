//! A failing command leaves no partial output behind: outputs are staged and
//! renamed into place only when complete.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;

use common::*;

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn data_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cmd/data");
    copy_dir(&src, tmp.path());
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn failed_consume_writes_no_output_file() {
    let d = data_copy();
    let t = d.path();
    for (chain, skip) in [
        ("chain-tampered", false),
        ("chain-tampered", true),
        ("chain-truncated", false),
    ] {
        let out_dir = t.join(format!("out-{chain}-{skip}"));
        std::fs::create_dir_all(&out_dir).unwrap();
        let mut c = sealstream();
        consume_args(
            &mut c,
            &t.join(chain),
            &t.join("access"),
            &out_dir.join("data.bin"),
        );
        c.current_dir(t);
        if skip {
            c.arg("--skip-verify");
        }
        let out = c.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{chain}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            entries(&out_dir),
            Vec::<String>::new(),
            "{chain}: nothing left in the output directory"
        );
    }
}

#[test]
fn failed_grant_writes_no_access_files() {
    let d = data_copy();
    let t = d.path();
    let out_dir = t.join("granted");
    let mut c = sealstream();
    c.args(["grant", "--chunk-dir"])
        .arg(t.join("chain"))
        .arg("--output-dir")
        .arg(&out_dir);
    c.args(["--buyer-public-key", BUYER_PK, "--buyer-id", BUYER_ID]);
    c.arg("--owner-private-key-file")
        .arg(t.join("keys/stranger.x25519.sk"));
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !out_dir.exists(),
        "the output directory it created is gone: {:?}",
        entries(&out_dir)
    );
}

/// A server that promises 200 000 bytes, sends 70 000 and hangs up.
fn broken_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(&vec![7u8; 70_000]);
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    });
    format!("http://127.0.0.1:{port}/data.bin")
}

#[test]
fn publish_interrupted_mid_stream_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let url = broken_server();
    // A fresh output directory, and one that already holds a file of the user's.
    let existing = tmp.path().join("existing");
    std::fs::create_dir_all(&existing).unwrap();
    std::fs::write(existing.join("notes.txt"), "mine").unwrap();
    for out_dir in [tmp.path().join("fresh"), existing.clone()] {
        let mut c = sealstream();
        publish_args(&mut c, &url, &out_dir, 4096);
        c.arg("--quiet");
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("reading input failed"), "{stderr}");
        if out_dir == existing {
            assert_eq!(entries(&out_dir), vec!["notes.txt".to_string()]);
        } else {
            assert!(!out_dir.exists(), "{:?}", entries(&out_dir));
        }
    }
}
