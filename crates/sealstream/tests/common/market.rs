//! `sealstream market serve` as a child process, for the tests that drive
//! the market over HTTP only: start on a free loopback port, wait for
//! `/healthz`, call it with JSON, sign in with Sign-In with Ethereum, stop
//! it with SIGTERM (graceful) or SIGKILL (a crash).

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sealstream_api::registration::{MachineRegistration, RegistrationRecipient};
use sealstream_api::siwe::{sign_in_message, Timestamp};
use sealstream_core::identity::{eip191_sign, Did};
use sealstream_core::json::{self, Value};
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientPublicKey};

use super::agent::MACHINE_SK;
use super::{free_port, keyfile, DID, MACHINE_PK, OPERATOR_PK, OWNER_PK};

/// A running `sealstream market serve`; killed when dropped.
pub struct Market {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The port, kept across [`restart`](Self::restart).
    port: u16,
    data_dir: std::path::PathBuf,
    extra: Vec<String>,
    /// Where the server's stderr goes (appended), when not inherited.
    log: Option<std::path::PathBuf>,
}

impl Market {
    /// Starts a server on `data_dir` (embedded defaults).
    pub fn start(data_dir: &Path) -> Market {
        Self::start_with(data_dir, &[])
    }

    /// Starts a server on `data_dir` with `extra` flags appended.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Market {
        let mut market = Market {
            child: None,
            base: String::new(),
            port: free_port(),
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log: None,
        };
        market.spawn();
        market
    }

    /// [`start_with`](Self::start_with), the server's stderr appended to
    /// `log`.
    pub fn start_logged(data_dir: &Path, extra: &[&str], log: &Path) -> Market {
        let mut market = Market {
            child: None,
            base: String::new(),
            port: free_port(),
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log: Some(log.to_path_buf()),
        };
        market.spawn();
        market
    }

    fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_sealstream"))
            .args(["market", "serve", "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(match &self.log {
                Some(path) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .expect("the server's log file"),
                ),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("start sealstream market serve");
        self.child = Some(child);
        self.base = format!("http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = ureq::get(&format!("{}/healthz", self.base)).call() {
                if r.status() == 200 {
                    assert_eq!(r.into_string().unwrap(), r#"{"status":"ok"}"#);
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
        ureq::get(&format!("{}{path}", self.base))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .into_string()
            .unwrap()
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
        let mut r = ureq::request(method, &format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        let result = match body {
            Some(b) => r.set("Content-Type", "application/json").send_string(b),
            None => r.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap();
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
        let mut r = ureq::get(&format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut r
                .call()
                .unwrap_or_else(|e| panic!("GET {path}: {e}"))
                .into_reader(),
            &mut out,
        )
        .unwrap();
        out
    }

    /// Signs in as `key`'s DID; the session token.
    pub fn sign_in(&self, key: &MachineSigningKey) -> String {
        let (status, nonce) = self.call("POST", "/v1/auth/nonce", None, Some("{}"));
        assert_eq!(status, 200, "{nonce:?}");
        let s = |name: &str| nonce.get(name).and_then(Value::as_str).unwrap().to_string();
        let mut message = sign_in_message(
            &s("domain"),
            &s("uri"),
            &Did::of_key(key),
            &s("nonce"),
            Timestamp::parse(&s("issuedAt"), "issuedAt").unwrap(),
            None,
            Some("Sign in to the sealstream market."),
        )
        .unwrap();
        if let Some(chain_id) = nonce.get("chainId").and_then(Value::as_u64) {
            message.chain_id = chain_id;
        }
        let message = message.to_string();
        let signature = eip191_sign(key, message.as_bytes()).to_hex();
        let body = format!(
            "{{\"message\":{},\"signature\":\"{signature}\"}}",
            json_string(&message)
        );
        let (status, answer) = self.call("POST", "/v1/auth/verify", None, Some(&body));
        assert_eq!(status, 200, "{answer:?}");
        answer
            .get("token")
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
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

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    json::canonical::rfc8785(&Value::String(s.to_string())).unwrap()
}

/// The fixture chain key's public half (hex).
pub fn chain_public_key() -> String {
    let hex = std::fs::read_to_string(keyfile("chain.ed25519.sk")).unwrap();
    ChainSigningKey::from_hex(hex.trim(), "chain key")
        .unwrap()
        .public_key()
        .to_hex()
}

/// The owner registers the test machine (its fixture keys) with the
/// machine's signature over the registration statement.
pub fn register_machine(market: &Market, owner_token: &str, owner_did: &str) {
    let machine_key = MachineSigningKey::from_hex(MACHINE_SK, "machine").unwrap();
    let recipients = [
        ("owner-1", "owner", OWNER_PK),
        ("operator-1", "operator", OPERATOR_PK),
        ("machine-1", "machine", MACHINE_PK),
    ];
    let registration = MachineRegistration {
        machine: Did::of_key(&machine_key),
        owner: Did::parse(owner_did, "owner").unwrap(),
        chain_public_key: sealstream_core::keys::ChainPublicKey::from_hex(
            &chain_public_key(),
            "chain",
        )
        .unwrap(),
        recipients: recipients
            .iter()
            .map(|(id, kind, hex)| RegistrationRecipient {
                recipient_id: (*id).into(),
                recipient_type: (*kind).into(),
                public_key: RecipientPublicKey::from_hex(hex, "pk").unwrap(),
            })
            .collect(),
    };
    let signature = registration.sign(&machine_key).to_hex();
    let chain_key = ChainSigningKey::from_hex(
        std::fs::read_to_string(keyfile("chain.ed25519.sk"))
            .unwrap()
            .trim(),
        "chain key",
    )
    .unwrap();
    let chain_key_signature = registration.sign_chain_key(&chain_key).unwrap();
    let recipients_json: Vec<String> = recipients
        .iter()
        .map(|(id, kind, hex)| {
            format!("{{\"recipientId\":\"{id}\",\"recipientType\":\"{kind}\",\"publicKeyHex\":\"{hex}\"}}")
        })
        .collect();
    let body = format!(
        "{{\"machineDid\":\"{DID}\",\"chainPublicKey\":\"{}\",\"recipients\":[{}],\"signature\":\"{signature}\",\"chainKeySignature\":\"{chain_key_signature}\"}}",
        chain_public_key(),
        recipients_json.join(",")
    );
    let (status, answer) = market.call("POST", "/v1/machines", Some(owner_token), Some(&body));
    assert_eq!(status, 201, "{answer:?}");
}

/// A Data Event Map in `dir` for an agent reading `messages` JSON lines of
/// `/field/soil`, 40 messages to a chunk, hourly dataset windows, delivering
/// to the market at `server` (and to the directory `out` with
/// `also_directory`). Each message carries `note` when given (a canary the
/// server must never see in the clear). Returns the map's path.
pub fn write_market_agent(
    dir: &Path,
    server: &str,
    messages: usize,
    note: Option<&str>,
    also_directory: bool,
) -> std::path::PathBuf {
    let machine = super::agent::machine_sections(dir);
    let directory = if also_directory {
        "  - {type: directory, path: out}\n"
    } else {
        ""
    };
    let config = format!(
        r#"{machine}chunking:
  maxBytes: 1MiB
  maxMessages: 40
  maxAge: 1h
datasets:
  window: 1h
spool:
  dir: spool
sources:
  lines: {{type: jsonl, path: input.jsonl}}
topics:
  - name: /field/soil
    source: lines
destinations:
  - {{type: market, url: "{server}"}}
{directory}"#
    );
    let note = note
        .map(|n| format!(",\"note\":\"{n}\""))
        .unwrap_or_default();
    let mut input = String::new();
    for i in 0..messages {
        input.push_str(&format!(
            "{{\"topic\":\"/field/soil\",\"capturedAt\":\"2026-11-21T10:00:{:02}.{i:06}Z\",\"fields\":{{\"i\":{i},\"moisture\":0.{i}{note}}}}}\n",
            i % 60
        ));
    }
    std::fs::write(dir.join("input.jsonl"), input).unwrap();
    let path = dir.join("map.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

/// `sealstream market grant-daemon --once --json` against `server`, signed
/// in with `owner_key_file`, opening chunk keys with the fixture owner key.
pub fn grant_daemon_once(server: &str, owner_key_file: &Path) -> Command {
    let mut c = super::sealstream();
    c.args([
        "market",
        "grant-daemon",
        "--server",
        server,
        "--once",
        "--json",
    ])
    .arg("--key-file")
    .arg(owner_key_file)
    .arg("--owner-key-file")
    .arg(keyfile("owner.x25519.sk"));
    c
}
