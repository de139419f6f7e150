//! Helpers for the CLI tests: the real `peaqos` CLI, our binary, fixture keys,
//! and a tiny static HTTP server for download tests.
#![allow(dead_code)]

pub mod agent;
/// anvil, shared with the market crate's tests.
#[path = "../../../sealstream-market/tests/common/anvil.rs"]
pub mod anvil;
pub mod market;
pub mod moto;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("SEALSTREAM_FIXTURES").map_or_else(
        || repo_root().join("../shared/fixtures/peaq-stream-v1"),
        PathBuf::from,
    );
    assert!(
        dir.join("keys.json").is_file(),
        "fixtures not found at {}",
        dir.display()
    );
    dir
}

pub fn keyfile(name: &str) -> PathBuf {
    fixtures().join("keyfiles").join(name)
}

pub const OWNER_PK: &str = "aaa52adfb12f7a161e2d502386cd3cb2eff0dbe38e90c70085a0872229a3b946";
pub const OPERATOR_PK: &str = "36691395f47b6c441acedea1e0bd38a58c7e8119fdc59b39f4c3687fb880106f";
pub const MACHINE_PK: &str = "8c8bf93ac82af74d7526fd1473cc752f352fbb5f8e472bcba67ec7877e4c3f2b";
pub const BUYER_PK: &str = "ad047d9237812541968a9fbd5fc1621d4261352e99a27de75642a9a0bca3d101";
pub const STRANGER_PK: &str = "c4160af7babce0dd8b6562ca3c9594abb5920dda46a22e912a19de431ef0ab3c";
pub const DID: &str = "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1";
pub const KEY_ID: &str = "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1#keys-1";
pub const BUYER_ID: &str = "did:peaq:0x000000000000000000000000000000000000b0b0";

/// The reference CLI (`peaqos`) from the venv `.ci/run` makes.
pub fn peaqos() -> Command {
    let bin = match std::env::var_os("SEALSTREAM_REF_PYTHON") {
        Some(py) => PathBuf::from(py).with_file_name("peaqos"),
        None => repo_root().join(".venv/bin/peaqos"),
    };
    assert!(
        bin.exists(),
        "peaqos not found at {}: run scripts/setup-test-peers",
        bin.display()
    );
    let mut c = Command::new(bin);
    c.env("PEAQOS_TELEMETRY", "0").env("DO_NOT_TRACK", "1");
    // The reference reads a .env from its working directory: give it an empty one.
    c.current_dir(std::env::temp_dir());
    c
}

/// Our binary.
pub fn sealstream() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealstream"))
}

pub fn run_ok(mut c: Command, what: &str) -> Output {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `publish` flags with the fixture keys; `input` is a path, `-` or a URL.
pub fn publish_args(
    c: &mut Command,
    input: impl AsRef<std::ffi::OsStr>,
    out: &Path,
    chunk_size: usize,
) {
    c.args(["publish", "--input"])
        .arg(input.as_ref())
        .arg("--output-dir")
        .arg(out);
    c.args([
        "--owner-public-key",
        OWNER_PK,
        "--operator-public-key",
        OPERATOR_PK,
        "--machine-public-key",
        MACHINE_PK,
    ]);
    c.arg("--signing-key-file").arg(keyfile("chain.ed25519.sk"));
    c.args([
        "--machine-did",
        DID,
        "--machine-key-id",
        KEY_ID,
        "--chunk-size",
        &chunk_size.to_string(),
    ]);
}

pub fn grant_args(c: &mut Command, chunk_dir: &Path, out: &Path, max: usize) {
    c.args(["grant", "--chunk-dir"])
        .arg(chunk_dir)
        .arg("--output-dir")
        .arg(out);
    c.args([
        "--buyer-public-key",
        BUYER_PK,
        "--buyer-id",
        BUYER_ID,
        "--max-file-size",
        &max.to_string(),
    ]);
    c.arg("--owner-private-key-file")
        .arg(keyfile("owner.x25519.sk"));
}

pub fn consume_args(c: &mut Command, chunk_dir: &Path, access: &Path, out: &Path) {
    c.args(["consume", "--chunk-dir"])
        .arg(chunk_dir)
        .arg("--data-dir")
        .arg(chunk_dir);
    c.arg("--access-dir").arg(access).arg("--output").arg(out);
    c.args(["--buyer-id", BUYER_ID])
        .arg("--buyer-private-key-file")
        .arg(keyfile("buyer.x25519.sk"));
}

/// Serve the files of `dir` over HTTP on 127.0.0.1 (a free port) from a
/// background thread; returns the base URL. `/missing/...` paths give 404.
pub fn serve_dir(dir: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                        break;
                    }
                }
                let path = request
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .split('?')
                    .next()
                    .unwrap()
                    .to_string();
                let rel = path.trim_start_matches('/');
                let file = dir.join(rel);
                let ok = !rel.contains("..") && file.is_file();
                if ok {
                    let body = std::fs::read(&file).unwrap();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(&body);
                } else {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

pub fn input_of(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The seed of a randomized test: `SEALSTREAM_TEST_SEED`, or a fixed default;
/// printed, so that a failure can be reproduced (as the core crate's tests do).
pub fn test_seed(name: &str) -> u64 {
    let seed = std::env::var("SEALSTREAM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5ea1_5eed_u64);
    eprintln!("{name}: seed {seed} (set SEALSTREAM_TEST_SEED to change)");
    seed
}

/// SplitMix64: a small deterministic generator for test schedules.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `range` (not empty).
    pub fn in_range(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next_u64() % (range.end - range.start)
    }
}
