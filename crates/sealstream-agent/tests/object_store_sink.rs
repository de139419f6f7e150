//! The object-store sink against a real S3 server: moto's `moto_server`, from
//! `<repo>/.venv` (`scripts/setup-test-peers` installs it).
//!
//! The sink reads its endpoint and credentials from the process environment,
//! which is global, so everything runs in one test function.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sealstream_agent::config::ObjectStoreLocation;
use sealstream_agent::sink::{ObjectStoreDestination, Sink};

const ACCESS_KEY_ID: &str = "AKIASEALSTREAMTEST01";
const SECRET_ACCESS_KEY: &str = "sealstream-test-secret-7f3c9a1e5b2d8f60";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `moto_server`, killed on drop.
struct MotoServer {
    child: Child,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl MotoServer {
    fn start() -> MotoServer {
        let bin = repo_root().join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/setup-test-peers (installs moto[server] into .venv)",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut server = MotoServer {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("moto_server exited ({status}):\n{}", self.log_text());
            }
            // GET / is ListBuckets; any HTTP answer means the server is up.
            match ureq::get(&format!("{}/", self.base))
                .timeout(Duration::from_secs(2))
                .call()
            {
                Ok(_) | Err(ureq::Error::Status(..)) => return,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!(
                    "moto_server did not answer at {} within 60 s: {e}\n{}",
                    self.base,
                    self.log_text()
                ),
            }
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn create_bucket(&self, bucket: &str) {
        ureq::put(&format!("{}/{bucket}", self.base))
            .call()
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
    }

    /// Every object in the bucket, key to bytes, as boto3 (an independent
    /// S3 client) lists and downloads them.
    fn objects(&self, bucket: &str) -> BTreeMap<String, Vec<u8>> {
        let out = tempfile::tempdir().unwrap();
        let output = Command::new(repo_root().join(".venv/bin/python"))
            .args(["-c", DUMP_BUCKET, &self.base, bucket])
            .arg(out.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "boto3 dump of {bucket} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|key| {
                let bytes = std::fs::read(out.path().join(key)).unwrap();
                (key.to_owned(), bytes)
            })
            .collect()
    }
}

/// `python -c DUMP_BUCKET ENDPOINT BUCKET DIR`: download every object of the
/// bucket to `DIR/<key>` and print the keys, one a line.
const DUMP_BUCKET: &str = r#"
import os, sys, boto3
endpoint, bucket, out = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="reader", aws_secret_access_key="reader")
keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])]
for key in keys:
    path = os.path.join(out, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    s3.download_file(bucket, key, path)
print("\n".join(keys))
"#;

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Point the sink's environment at `endpoint` with the test credentials,
/// clearing every other `AWS_*` variable the process inherited.
fn set_s3_env(endpoint: &str) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            std::env::remove_var(name);
        }
    }
    std::env::set_var("AWS_ENDPOINT_URL", endpoint);
    std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
}

fn s3(bucket: &str, prefix: &str) -> (String, ObjectStoreLocation) {
    let url = if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    };
    let location = ObjectStoreLocation::S3 {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    };
    (url, location)
}

fn assert_clean_error(message: &str, url: &str, key: &str) {
    assert!(
        message.contains(url),
        "error does not name {url}: {message}"
    );
    assert!(
        message.contains(key),
        "error does not name {key}: {message}"
    );
    assert!(
        !message.contains(SECRET_ACCESS_KEY),
        "error leaks the secret access key: {message}"
    );
}

#[test]
fn object_store_sink_against_moto() {
    let moto = MotoServer::start();
    // No AWS_ALLOW_HTTP and no region: an http:// endpoint and the default
    // region must work as they are.
    set_s3_env(&moto.base);
    moto.create_bucket("chains");
    moto.create_bucket("flat");

    // Objects land under the prefix, byte for byte; a second put replaces.
    let (url, location) = s3("chains", "fleet/robot-7");
    let mut sink = ObjectStoreDestination::open(&url, &location).unwrap();
    assert_eq!(sink.describe(), "object store s3://chains/fleet/robot-7");
    let bin: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let json = br#"{"chunk_index": 0}"#.to_vec();
    sink.put("t/chunk-0.bin", b"to be replaced").unwrap();
    sink.put("t/chunk-0.bin", &bin).unwrap();
    sink.put("t/chunk-0.json", &json).unwrap();
    sink.put("t/empty", b"").unwrap();
    let expected = BTreeMap::from([
        ("fleet/robot-7/t/chunk-0.bin".to_owned(), bin.clone()),
        ("fleet/robot-7/t/chunk-0.json".to_owned(), json),
        ("fleet/robot-7/t/empty".to_owned(), Vec::new()),
    ]);
    assert!(moto.objects("chains") == expected, "objects differ");

    // An empty prefix puts keys at the bucket's root (no leading `/`).
    let (url, location) = s3("flat", "");
    let mut sink = ObjectStoreDestination::open(&url, &location).unwrap();
    sink.put("t/dataset-0-9.json", b"[]").unwrap();
    assert_eq!(
        moto.objects("flat"),
        BTreeMap::from([("t/dataset-0-9.json".to_owned(), b"[]".to_vec())])
    );

    // A missing bucket: the server's refusal, naming URL and key, no secret.
    let (url, location) = s3("no-such-bucket", "p");
    let mut sink = ObjectStoreDestination::open(&url, &location).unwrap();
    let err = sink.put("t/chunk-1.bin", b"x").unwrap_err();
    assert_clean_error(&err.to_string(), &url, "t/chunk-1.bin");
    assert_clean_error(&format!("{err:?}"), &url, "t/chunk-1.bin");
    let message = err.to_string();
    assert!(
        message.contains("NoSuchBucket") && !message.contains('\n'),
        "{message}"
    );
    eprintln!("missing bucket: {message}");

    // AWS_ALLOW_HTTP, when set, decides over the http:// endpoint.
    std::env::set_var("AWS_ALLOW_HTTP", "false");
    let (url, location) = s3("chains", "fleet/robot-7");
    let mut sink = ObjectStoreDestination::open(&url, &location).unwrap();
    let err = sink.put("t/chunk-2.bin", b"x").unwrap_err().to_string();
    assert_clean_error(&err, &url, "t/chunk-2.bin");
    eprintln!("AWS_ALLOW_HTTP=false: {err}");
    assert!(!moto
        .objects("chains")
        .contains_key("fleet/robot-7/t/chunk-2.bin"));
    std::env::remove_var("AWS_ALLOW_HTTP");

    // Nothing listening: `put` fails soon (few retries, short backoff).
    let closed = format!("http://127.0.0.1:{}", free_port());
    set_s3_env(&closed);
    let (url, location) = s3("chains", "fleet/robot-7");
    let mut sink = ObjectStoreDestination::open(&url, &location).unwrap();
    let started = Instant::now();
    let err = sink.put("t/chunk-3.bin", &bin).unwrap_err().to_string();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(20),
        "put to a closed port took {elapsed:?}: {err}"
    );
    assert_clean_error(&err, &url, "t/chunk-3.bin");
    eprintln!("closed port after {elapsed:?}: {err}");
}
