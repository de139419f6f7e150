//! Helpers for the CLI tests, on top of `sealstream-testkit` (our binary,
//! the reference CLI, the fixture keys, the market as a child process, the
//! peers): the CLI's publish, grant and consume flags with the fixture
//! keys, inputs, and a tiny static HTTP server for download tests.
// Each test binary uses a part of the harness (and of what it re-exports).
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod live;
pub mod market;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use sealstream_testkit::fixture::{
    BUYER_ID, BUYER_PK, DID, KEY_ID, MACHINE_PK, OPERATOR_PK, OWNER_PK, STRANGER_PK,
};
pub use sealstream_testkit::{
    anvil, fixtures, free_port, keyfile, moto, peaqos, repo_root, run_fails, run_ok, sealstream,
    test_seed, SplitMix64,
};

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

/// A finished command's standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A finished command's standard output, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A finished command's standard output as JSON (panics with both streams
/// when it is not).
pub fn json_of(o: &Output) -> sealstream_core::json::Value {
    sealstream_core::json::parse(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// The machine whose keys `sealstream keys generate` wrote to `keys_dir`
/// publishes `input` (written to `dir/input.bin`) into `dir/chain` in chunks
/// of `chunk` bytes and uploads that chain as `topic` to the market at
/// `server`, signed in with its key: the upload's output.
pub fn publish_and_upload(
    server: &str,
    keys_dir: &Path,
    dir: &Path,
    input: &[u8],
    chunk: usize,
    topic: &str,
) -> Output {
    std::fs::write(dir.join("input.bin"), input).unwrap();
    let publish = publish_with_keys(keys_dir, &dir.join("input.bin"), &dir.join("chain"), chunk);
    run_ok(publish, "publish");
    let mut upload = sealstream();
    upload
        .args(["market", "upload", "--server", server, "--topic", topic])
        .arg("--chunk-dir")
        .arg(dir.join("chain"))
        .arg("--key-file")
        .arg(keys_dir.join("machine.secp256k1.sk"));
    run_ok(upload, "market upload")
}

/// `sealstream publish` of `input` into `out` in chunks of `chunk` bytes,
/// with the keys `sealstream keys generate` wrote to `keys_dir`.
pub fn publish_with_keys(keys_dir: &Path, input: &Path, out: &Path, chunk: usize) -> Command {
    let keys =
        sealstream_core::json::parse(&std::fs::read(keys_dir.join("keys.json")).unwrap()).unwrap();
    let key = |name: &str| {
        keys.get(name)
            .and_then(sealstream_core::json::Value::as_str)
            .unwrap_or_else(|| panic!("keys.json has no {name}"))
            .to_string()
    };
    let mut publish = sealstream();
    publish
        .args(["publish", "--input"])
        .arg(input)
        .arg("--output-dir")
        .arg(out)
        .args(["--owner-public-key", &key("ownerPublicKeyHex")])
        .args(["--operator-public-key", &key("operatorPublicKeyHex")])
        .args(["--machine-public-key", &key("machinePublicKeyHex")])
        .arg("--signing-key-file")
        .arg(keys_dir.join("chain.ed25519.sk"))
        .args(["--machine-did", &key("machineDid")])
        .args(["--machine-key-id", &key("machineKeyId")])
        .args(["--chunk-size", &chunk.to_string()]);
    publish
}
