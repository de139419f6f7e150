//! `sealstream p2p` against the reference's own P2P delivery (peaq-os-sdk
//! 0.12.1 with its p2p extra, py-libp2p 0.8.1), over real libp2p
//! connections on 127.0.0.1, both ways: our `serve` to the reference's
//! `P2PDeliveryReceiver`, and the reference's `P2PDeliveryChannel` to our
//! `fetch` (then `consume`); refusals both ways (a wrong session, chunks
//! too large for the protocol). The reference's side runs in
//! `tests/support/p2p_reference.py`, with the market's orchestration calls
//! stubbed in-process.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sealstream_core::json::{self, Value};
use sealstream_testkit::files_under;

const CHAINS: [&str; 4] = ["small", "exact2", "odd", "empty"];

fn chain(name: &str) -> PathBuf {
    fixtures().join("chains").join(name)
}

fn driver() -> Command {
    let mut c = Command::new(sealstream_testkit::reference_python());
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/p2p_reference.py"));
    c
}

/// A child process killed (and reaped) when dropped.
struct Running(Option<Child>);

impl Running {
    fn spawn(mut c: Command) -> Running {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        Running(Some(c.spawn().expect("starting a peer")))
    }

    /// Wait for its end (at most `limit`); its output.
    fn wait(mut self, limit: Duration) -> Output {
        let mut child = self.0.take().unwrap();
        let until = Instant::now() + limit;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > until {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "still running after {limit:?}:\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The URL a peer writes to `file`, once it is there.
fn url_from(file: &Path) -> String {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            if !text.trim().is_empty() {
                return text.trim().to_string();
            }
        }
        assert!(Instant::now() < until, "no URL in {}", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Our seller of the chain `root` (`root/published`).
fn serve(dir: &Path, root: &Path, url_file: &Path, timeout: u64, extra: &[&str]) -> Running {
    let mut c = sealstream();
    c.args(extra);
    c.args(["p2p", "serve", "--chunk-dir"])
        .arg(root.join("published"))
        .args(["--purchase-id", "ord-1", "--session-id", "sess-1"])
        .args(["--buyer-id", BUYER_ID, "--listen", "/ip4/127.0.0.1/tcp/0"])
        .arg("--url-file")
        .arg(url_file)
        .arg("--identity-file")
        .arg(dir.join("seller.key"))
        .args(["--timeout", &timeout.to_string()]);
    Running::spawn(c)
}

/// The reference receiver's answer (one JSON line) and its exit code, for
/// the chain `root` (its `access/` and `input.bin`).
fn receive(root: &Path, url: &str, session: &str) -> (Value, Option<i32>) {
    let name = root.display();
    let out = driver()
        .arg("receive")
        .arg(fixtures())
        .arg(root)
        .args([url, "ord-1", session])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let answer = json::parse(text.trim().as_bytes()).unwrap_or_else(|_| {
        panic!(
            "{name}: the receiver said {text:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (answer, out.status.code())
}

fn field<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.as_object().unwrap().get(k).unwrap()
}

#[test]
fn serve_delivers_to_the_reference_receiver() {
    for name in CHAINS {
        let tmp = tempfile::tempdir().unwrap();
        let url_file = tmp.path().join("url");
        let seller = serve(tmp.path(), &chain(name), &url_file, 60, &[]);
        let url = url_from(&url_file);
        assert!(url.starts_with("peaqos-p2p://"), "{url}");
        let (answer, code) = receive(&chain(name), &url, "sess-1");
        assert_eq!(code, Some(0), "{name}: {answer:?}");
        assert_eq!(field(&answer, "identical"), &Value::Bool(true), "{name}");
        let out = seller.wait(Duration::from_secs(30));
        assert!(out.status.success(), "{name}: {out:?}");
        // The URL went to stdout too, a line of its own.
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), url);
        // The identity file was made private, and is a seed.
        let key = tmp.path().join("seller.key");
        assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

#[test]
fn a_3_mib_chain_of_ours_reaches_the_reference_receiver() {
    // Our publish and grant (12 chunks of 256 KiB), our serve, their receiver.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("big");
    let input = input_of(3 << 20, 42);
    published_chain(&root, &input, 262_144);
    let url_file = tmp.path().join("url");
    let seller = serve(tmp.path(), &root, &url_file, 60, &["--json"]);
    let (answer, code) = receive(&root, &url_from(&url_file), "sess-1");
    assert_eq!(code, Some(0), "{answer:?}");
    assert_eq!(field(&answer, "chunks"), &Value::from(12u64));
    assert_eq!(field(&answer, "identical"), &Value::Bool(true));
    let out = seller.wait(Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    let result = json::parse(&out.stdout).unwrap();
    assert_eq!(field(&result, "chunks"), &Value::from(12u64));
}

#[test]
fn the_same_identity_file_gives_the_same_peer_id() {
    let tmp = tempfile::tempdir().unwrap();
    let mut peers = Vec::new();
    for _ in 0..2 {
        let url_file = tmp.path().join("url");
        let _ = std::fs::remove_file(&url_file);
        let seller = serve(tmp.path(), &chain("small"), &url_file, 60, &[]);
        let url = url_from(&url_file);
        peers.push(url.split("%2Fp2p%2F").nth(1).unwrap().to_string());
        drop(seller);
    }
    assert_eq!(peers[0], peers[1]);
    assert!(peers[0].starts_with("12D3KooW"), "{peers:?}");
}

/// The reference's seller of the chain `root` (`published/`, `access/`).
fn channel(tmp: &Path, root: &Path, connect_timeout: &str) -> (Running, String) {
    let url_file = tmp.join("url");
    let mut c = driver();
    c.arg("channel")
        .arg(fixtures())
        .arg(root)
        .args(["ord-1", "sess-1"])
        .arg(&url_file)
        .arg(connect_timeout);
    let seller = Running::spawn(c);
    let url = url_from(&url_file);
    (seller, url)
}

fn fetch(url: &str, session: &str, out: &Path) -> Command {
    let mut c = sealstream();
    c.args(["p2p", "fetch", url, "--session-id", session])
        .args(["--buyer-id", BUYER_ID])
        .arg("--output-dir")
        .arg(out);
    c
}

#[test]
fn fetch_receives_from_the_reference_channel() {
    for name in CHAINS {
        let tmp = tempfile::tempdir().unwrap();
        let (seller, url) = channel(tmp.path(), &chain(name), "30");
        let out = tmp.path().join("fetched");
        run_ok(fetch(&url, "sess-1", &out), &format!("{name}: p2p fetch"));
        let said = seller.wait(Duration::from_secs(60));
        assert!(said.status.success(), "{name}: {said:?}");

        // Envelopes and ciphertext byte for byte as published.
        let published = chain(name).join("published");
        let mut files = 0;
        for entry in std::fs::read_dir(&published).unwrap() {
            let file = entry.unwrap().file_name();
            if file.to_string_lossy().starts_with("chunk-") {
                assert_eq!(
                    std::fs::read(out.join(&file)).unwrap(),
                    std::fs::read(published.join(&file)).unwrap(),
                    "{name}: {file:?}"
                );
                files += 1;
            }
        }
        let fetched = files_under(&out).len();
        assert_eq!(fetched, files, "{name}: only the chunks, no staging left");

        // And the buyer's access files open them.
        let plain = tmp.path().join("plain.bin");
        let mut c = sealstream();
        consume_args(&mut c, &out, &chain(name).join("access"), &plain);
        run_ok(c, &format!("{name}: consume"));
        assert_eq!(
            std::fs::read(&plain).unwrap(),
            std::fs::read(chain(name).join("input.bin")).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn fetch_stops_at_a_frame_over_1_mib_from_the_reference() {
    // The reference's channel sends frames over the limit (it never checks):
    // a chain of 785,000-byte chunks makes frames of about 1,048,800 bytes.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("over");
    published_chain(&root, &input_of(1_000_000, 3), 785_000);
    let (_seller, url) = channel(tmp.path(), &root, "10");
    let out = tmp.path().join("fetched");
    let stderr = run_fails(fetch(&url, "sess-1", &out), 2);
    assert!(stderr.contains("frame_too_large"), "{stderr}");
    assert!(files_under(&out).is_empty(), "{:?}", files_under(&out));
}

#[test]
fn a_wrong_session_is_refused_both_ways() {
    // Our seller refuses the reference buyer with session_mismatch, and
    // keeps waiting for the right one.
    let tmp = tempfile::tempdir().unwrap();
    let url_file = tmp.path().join("url");
    let seller = serve(tmp.path(), &chain("small"), &url_file, 60, &["--json"]);
    let url = url_from(&url_file);
    let (answer, code) = receive(&chain("small"), &url, "sess-WRONG");
    assert_eq!(code, Some(3), "{answer:?}");
    assert_eq!(field(&answer, "code"), &Value::from("protocol"));
    assert_eq!(field(&answer, "reason"), &Value::from("session_mismatch"));
    let (answer, code) = receive(&chain("small"), &url, "sess-1");
    assert_eq!(code, Some(0), "{answer:?}");
    let out = seller.wait(Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("session_mismatch (session or buyer mismatch)"),
        "{stderr}"
    );
    // With --json: only the result on stdout, once delivered.
    let result = json::parse(&out.stdout).unwrap();
    assert_eq!(field(&result, "url"), &Value::from(url.as_str()));
    assert_eq!(field(&result, "chunks"), &Value::from(1u64));

    // The reference seller refuses our buyer: exit 2 naming the code, and
    // nothing written.
    let tmp = tempfile::tempdir().unwrap();
    let (seller, url) = channel(tmp.path(), &chain("small"), "3");
    let out = tmp.path().join("fetched");
    let stderr = run_fails(fetch(&url, "sess-WRONG", &out), 2);
    assert!(
        stderr.contains("the seller refused the transfer: session_mismatch"),
        "{stderr}"
    );
    assert!(files_under(&out).is_empty(), "{:?}", files_under(&out));
    // It then gives up waiting for the right buyer.
    let said = seller.wait(Duration::from_secs(60));
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(said.contains("\"ok\": false"), "{said}");
}

#[test]
fn serve_refuses_chunks_the_protocol_cannot_carry() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input.bin");
    // A 785,000-byte chunk makes a frame over 1 MiB (base64 and the envelope).
    std::fs::write(&input, input_of(800_000, 7)).unwrap();
    let dir = tmp.path().join("chain");
    let mut c = sealstream();
    publish_args(&mut c, &input, &dir, 785_000);
    run_ok(c, "publish");
    let mut c = sealstream();
    c.args(["p2p", "serve", "--chunk-dir"]).arg(&dir).args([
        "--purchase-id",
        "p",
        "--session-id",
        "s",
        "--buyer-id",
        "b",
    ]);
    let stderr = run_fails(c, 1);
    assert!(stderr.contains("chunk 0: its frame would be"), "{stderr}");
    assert!(stderr.contains("1048576"), "{stderr}");
}

#[test]
fn bad_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let stderr = run_fails(fetch("http://x?addr=a&session=b", "s", &out), 1);
    assert!(stderr.contains("URL"), "{stderr}");
    let stderr = run_fails(
        fetch(
            "peaqos-p2p://x?addr=%2Fip4%2F127.0.0.1&session=b",
            "s",
            &out,
        ),
        1,
    );
    assert!(stderr.contains("/p2p/<peer id>"), "{stderr}");
    let mut c = sealstream();
    c.args(["p2p", "serve", "--chunk-dir"])
        .arg(chain("small").join("published"))
        .args(["--purchase-id", "p", "--session-id", "s", "--buyer-id", "b"])
        .args(["--listen", "not-an-address"]);
    let stderr = run_fails(c, 1);
    assert!(stderr.contains("--listen"), "{stderr}");
    // An output directory that holds a chain already is refused before dialling.
    let used = tmp.path().join("used");
    std::fs::create_dir_all(&used).unwrap();
    std::fs::write(used.join("chunk-0.json"), "{}").unwrap();
    let stderr = run_fails(
        fetch(
            "peaqos-p2p://x?addr=%2Fip4%2F127.0.0.1%2Ftcp%2F1%2Fp2p%2F12D3KooWEanXrcP4feFmrVcvCcpP8KL1fqZ3wwjYMPPadBiJbjS7&session=b",
            "s",
            &used,
        ),
        1,
    );
    assert!(
        stderr.contains("--output-dir: already holds chunk files"),
        "{stderr}"
    );
    let bad_key = tmp.path().join("bad.key");
    std::fs::write(&bad_key, "secret-not-hex").unwrap();
    let mut c = fetch("peaqos-p2p://x?addr=a&session=b", "s", &out);
    c.arg("--identity-file").arg(&bad_key);
    let stderr = run_fails(c, 1);
    assert!(stderr.contains("64 hex digits"), "{stderr}");
    assert!(!stderr.contains("secret-not-hex"), "{stderr}");
}

/// `root/input.bin` holding `input`, published by us in chunks of `chunk`
/// bytes to `root/published`, with the buyer's access files in `root/access`.
fn published_chain(root: &Path, input: &[u8], chunk: usize) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("input.bin"), input).unwrap();
    let mut c = sealstream();
    publish_args(
        &mut c,
        root.join("input.bin"),
        &root.join("published"),
        chunk,
    );
    run_ok(c, "publish");
    let mut c = sealstream();
    grant_args(
        &mut c,
        &root.join("published"),
        &root.join("access"),
        512_000,
    );
    run_ok(c, "grant");
}
