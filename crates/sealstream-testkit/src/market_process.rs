//! `sealstream market serve` as a child process, for the tests that drive
//! the market over HTTP only, as its clients and operators do: start on a
//! free loopback port, wait for `/healthz`, call it with JSON, sign in, stop
//! it with SIGTERM (graceful) or SIGKILL (a crash) and start it again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sealstream_core::identity::Did;
use sealstream_core::json::{self, Value};
use sealstream_core::keys::{MachineSigningKey, RecipientPublicKey};

use crate::fixture::{self, MACHINE_PK, OPERATOR_PK, OWNER_PK};
use crate::{free_port, http, registration, sign_in};

/// A running `sealstream market serve`; stopped (SIGTERM, then SIGKILL)
/// when dropped.
pub struct Market {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The port, kept across [`restart`](Self::restart).
    port: u16,
    data_dir: PathBuf,
    extra: Vec<String>,
    /// Where the server's standard error goes (appended), when not
    /// inherited.
    log: Option<PathBuf>,
}

impl Market {
    /// Starts a server on `data_dir` (embedded defaults).
    pub fn start(data_dir: &Path) -> Market {
        Self::start_with(data_dir, &[])
    }

    /// Starts a server on `data_dir` with `extra` flags appended.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Market {
        Self::launch(data_dir, extra, None)
    }

    /// [`start_with`](Self::start_with), the server's standard error
    /// appended to `log`.
    pub fn start_logged(data_dir: &Path, extra: &[&str], log: &Path) -> Market {
        Self::launch(data_dir, extra, Some(log.to_path_buf()))
    }

    fn launch(data_dir: &Path, extra: &[&str], log: Option<PathBuf>) -> Market {
        let mut market = Market {
            child: None,
            base: String::new(),
            port: free_port(),
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log,
        };
        market.spawn();
        market
    }

    fn spawn(&mut self) {
        let stderr = match &self.log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("the server's log file"),
            ),
            None => Stdio::inherit(),
        };
        let child = crate::sealstream()
            .args(["market", "serve", "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start sealstream market serve");
        self.child = Some(child);
        self.base = format!("http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = http::request("GET", &format!("{}/healthz", self.base));
            if let Ok(answer) = http::try_send(health) {
                if answer.status == 200 {
                    assert_eq!(answer.text(), r#"{"status":"ok"}"#);
                    break;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sealstream market serve exited with {status}");
            }
            assert!(Instant::now() < deadline, "server did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again, on the same port, data and flags.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the server first");
        self.spawn();
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (a crash); waits for the process to be gone.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// `GET path` as text (panics unless 2xx).
    pub fn get(&self, path: &str) -> String {
        http::send(http::request("GET", &format!("{}{path}", self.base)))
            .ok()
            .text()
    }

    /// `method path` with an optional JSON body and token: (status, JSON,
    /// or the text as a JSON string when it is not JSON).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let body = body.map(|b| ("application/json", b.as_bytes()));
        let (status, text) = http::call(&self.base, method, path, token, body);
        (
            status,
            json::parse(text.as_bytes()).unwrap_or(Value::String(text)),
        )
    }

    /// The bytes of `GET path` (panics unless 2xx).
    pub fn bytes(&self, path: &str) -> Vec<u8> {
        self.bytes_as(path, None)
    }

    /// The bytes of `GET path` with `token` (panics unless 2xx).
    pub fn bytes_as(&self, path: &str, token: Option<&str>) -> Vec<u8> {
        let mut r = http::request("GET", &format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        http::send(r).ok().body
    }

    /// Signs in as `key`'s DID; the session token.
    pub fn sign_in(&self, key: &MachineSigningKey) -> String {
        sign_in::sign_in(&self.base, key)
    }
}

impl Drop for Market {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The text at the dotted `path` (`"order.id"`) of `v`; panics when there
/// is none.
pub fn text(v: &Value, path: &str) -> String {
    let mut at = v;
    for name in path.split('.') {
        at = at.get(name).unwrap_or_else(|| panic!("no {path} in {v:?}"));
    }
    at.as_str()
        .unwrap_or_else(|| panic!("{path} is not text in {v:?}"))
        .to_string()
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    json::canonical::rfc8785(&Value::String(s.to_string())).unwrap()
}

/// The owner (`owner_token`, `owner_did`) registers the fixture machine
/// ([`fixture::DID`], its chain key, owner, operator and machine
/// recipients), signed by the machine's and the chain's keys.
pub fn register_machine(market: &Market, owner_token: &str, owner_did: &str) {
    let recipient = |hex: &str| RecipientPublicKey::from_hex(hex, "recipient").unwrap();
    let machine_key = fixture::machine_signing_key();
    assert_eq!(Did::of_key(&machine_key).to_string(), fixture::DID);
    let body = registration::body(
        owner_did,
        &machine_key,
        &fixture::chain_signing_key(),
        &[
            ("owner-1", "owner", recipient(OWNER_PK)),
            ("operator-1", "operator", recipient(OPERATOR_PK)),
            ("machine-1", "machine", recipient(MACHINE_PK)),
        ],
    );
    let (status, answer) = market.call(
        "POST",
        sealstream_api::routes::MACHINES,
        Some(owner_token),
        Some(&body.to_string()),
    );
    assert_eq!(status, 201, "{answer:?}");
}
