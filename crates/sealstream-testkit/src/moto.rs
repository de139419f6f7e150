//! A real S3-compatible server for tests: moto's `moto_server`, from the
//! reference's environment ([`venv_program`]; `scripts/setup-test-peers`
//! installs it), and boto3 (an independent S3 client) to read what a test
//! wrote.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::reference::{reference_python, venv_program};
use crate::{free_port, http};

/// The access key id the tests use.
pub const ACCESS_KEY_ID: &str = "AKIASEALSTREAMTEST01";
/// The secret key the tests use; it must never appear in an error.
pub const SECRET_ACCESS_KEY: &str = "sealstream-test-secret-7f3c9a1e5b2d8f60";

/// A running `moto_server`, killed on drop.
pub struct MotoServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl MotoServer {
    /// Start on a free port.
    pub fn start() -> MotoServer {
        MotoServer::start_on(free_port())
    }

    /// Start on `port` (a port a test has handed out before, say).
    pub fn start_on(port: u16) -> MotoServer {
        let bin = venv_program("moto_server");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let log_file = std::fs::File::create(&log).unwrap();
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
            match http::try_send(
                http::request("GET", &format!("{}/", self.base)).timeout(Duration::from_secs(2)),
            ) {
                Ok(_) => return,
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

    /// Create a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        http::send(http::request("PUT", &format!("{}/{bucket}", self.base))).ok();
    }

    /// Every object in the bucket, key to bytes, as boto3 (an independent
    /// S3 client) lists and downloads them.
    pub fn objects(&self, bucket: &str) -> BTreeMap<String, Vec<u8>> {
        let out = tempfile::tempdir().unwrap();
        let output = Command::new(reference_python())
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

/// Point the object store environment at `endpoint` with the test credentials,
/// clearing every other `AWS_*` variable the process inherited.
pub fn set_s3_env(endpoint: &str) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            std::env::remove_var(name);
        }
    }
    std::env::set_var("AWS_ENDPOINT_URL", endpoint);
    std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
}
