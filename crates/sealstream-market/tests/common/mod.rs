//! The market integration harness: a real server in this process on a free
//! port, on SQLite (a file in a temporary directory) or on PostgreSQL (a
//! throwaway cluster started once per test binary with `initdb` and
//! `postgres`, one fresh database per server), and a small blocking HTTP
//! client.
//!
//! Every suite test is written once, `fn name(db: Db)`, and run on both
//! databases by `on_both_databases!(name, …)`.
#![allow(dead_code)]

pub mod anvil;
pub mod chains;
pub mod listings_fixtures;
pub mod orders_fixtures;
pub mod postgres;
pub mod world;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread::JoinHandle;

use sealstream_market::server::{Config, Server};
use sealstream_market::store::Store;
use serde_json::Value;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in the server's data directory.
    Sqlite,
    /// A fresh database on the shared PostgreSQL cluster.
    Postgres,
}

/// Runs each named `fn(Db)` as two tests, `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name($crate::common::Db::Sqlite)
                }
                #[test]
                fn postgres() {
                    super::$name($crate::common::Db::Postgres)
                }
            }
        )*
    };
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// Runs `f` to completion on the harness runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// A running server; stopped (gracefully) when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The database URL (kept across restarts).
    pub database_url: String,
    /// The data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// The store, opened beside the server's, for setup and inspection.
    pub store: Store,
    /// The configuration, reused by [`restart`](Self::restart).
    pub config: Config,
    /// The running server's state (its store, keys and wake-ups), for
    /// driving its background passes by hand.
    pub state: sealstream_market::server::AppState,
    /// `http://ADDR` of the metrics listener, when configured.
    pub metrics_base: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A new server on a new, empty database.
    pub fn start(db: Db) -> TestServer {
        Self::start_with(db, |_| {})
    }

    /// A new server on a new, empty database, with `adjust` applied to its
    /// configuration.
    pub fn start_with(db: Db, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data_dir = dir.path().join("data");
        let database_url = match db {
            Db::Sqlite => format!("sqlite://{}", data_dir.join("market.db").display()),
            Db::Postgres => postgres::cluster().new_database(),
        };
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.clone(),
            database_url: Some(database_url.clone()),
            ..Config::default()
        };
        adjust(&mut config);
        let mut server = Self::launch(config, database_url, data_dir);
        server._dir = Some(dir);
        server
    }

    /// A new server on a new database that `prepare` filled first (given
    /// the database URL; the data directory exists), with `adjust` applied
    /// to its configuration: for upgrades of databases made by older
    /// schemas.
    pub fn start_prepared(
        db: Db,
        prepare: impl FnOnce(&str),
        adjust: impl FnOnce(&mut Config),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("data directory");
        let database_url = match db {
            Db::Sqlite => format!("sqlite://{}", data_dir.join("market.db").display()),
            Db::Postgres => postgres::cluster().new_database(),
        };
        prepare(&database_url);
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.clone(),
            database_url: Some(database_url.clone()),
            ..Config::default()
        };
        adjust(&mut config);
        let mut server = Self::launch(config, database_url, data_dir);
        server._dir = Some(dir);
        server
    }

    fn launch(config: Config, database_url: String, data_dir: PathBuf) -> TestServer {
        let bound = block_on(Server::bind(config.clone())).expect("server starts");
        let addr = bound.local_addr();
        let metrics_base = bound.metrics_addr().map(|a| format!("http://{a}"));
        let state = bound.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = runtime().handle().clone();
        let thread = std::thread::spawn(move || {
            handle
                .block_on(bound.run(async move {
                    let _ = stopped.await;
                }))
                .expect("server runs");
        });
        let store = block_on(Store::open(&database_url)).expect("open the store beside the server");
        TestServer {
            base: format!("http://{addr}"),
            database_url,
            data_dir,
            store,
            config,
            state,
            metrics_base,
            stop: Some(stop),
            thread: Some(thread),
            _dir: None,
        }
    }

    /// Stops the server (finishing requests in flight) and starts it again on
    /// the same database and data directory, on a new port.
    pub fn restart(&mut self) {
        self.shutdown();
        let dir = self._dir.take();
        let mut next = Self::launch(
            self.config.clone(),
            self.database_url.clone(),
            self.data_dir.clone(),
        );
        next._dir = dir;
        *self = next;
    }

    /// Stops the server (finishing requests in flight); the data stays.
    pub fn stop(&mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread ends cleanly");
        }
        block_on(self.store.close());
    }

    /// A session token for `did` with `roles` granted (bypassing sign-in,
    /// for tests of other routes; sign-in has its own tests).
    pub fn session_for(&self, did: &str, roles: &[sealstream_market::auth::Role]) -> String {
        block_on(async {
            for role in roles {
                sealstream_market::auth::grant_role(&self.store, did, *role, "test")
                    .await
                    .unwrap();
            }
            sealstream_market::auth::session::issue(&self.store, did)
                .await
                .unwrap()
                .expose()
                .to_string()
        })
    }

    /// The objects directory of the default local object store.
    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }

    /// A request builder for `method` on `path`, with the bearer token if
    /// given.
    pub fn request(&self, method: &str, path: &str, token: Option<&str>) -> ureq::Request {
        let mut r = ureq::request(method, &format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        r
    }

    /// GET, as (status, JSON body).
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        reply(self.request("GET", path, token).call())
    }

    /// A JSON request with a JSON body, as (status, JSON body).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        reply(
            self.request(method, path, token)
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
        )
    }

    /// A request with a raw body, as (status, JSON body).
    pub fn send_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Value) {
        reply(
            self.request(method, path, token)
                .set("Content-Type", content_type)
                .send_bytes(body),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shutdown();
        } else if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Opens `url` (creating a SQLite file) and applies the market's
/// migrations numbered below `before` only: the schema as an older server
/// left it.
pub fn migrate_below(db: Db, url: &str, before: i64) -> sqlx::AnyPool {
    block_on(async {
        sqlx::any::install_default_drivers();
        let engine = match db {
            Db::Sqlite => "sqlite",
            Db::Postgres => "postgres",
        };
        let all = repo_root()
            .join("crates/sealstream-market/migrations")
            .join(engine);
        let older = tempfile::tempdir().expect("temporary directory");
        for entry in std::fs::read_dir(&all).expect("the migrations") {
            let path = entry.expect("a migration").path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let version: i64 = name.split('_').next().unwrap().parse().expect("NNNN_");
            if version < before {
                std::fs::copy(&path, older.path().join(&name)).expect("copy a migration");
            }
        }
        let url = match db {
            Db::Sqlite => format!("{url}?mode=rwc"),
            Db::Postgres => url.to_string(),
        };
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .expect("open the database");
        sqlx::migrate::Migrator::new(older.path())
            .await
            .expect("the older migrations")
            .run(&pool)
            .await
            .expect("the older schema");
        pool
    })
}

/// (status, body as JSON, or `Value::String` of the text when not JSON).
pub fn reply(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let text = response.into_string().expect("response body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------- sign-in

use sealstream_api::registration::{MachineRegistration, RegistrationRecipient};
use sealstream_api::siwe::{sign_in_message, SiweMessage, Timestamp};
use sealstream_core::identity::{eip191_sign, Did};
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientPublicKey};

/// Seconds since the epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl TestServer {
    /// `POST /v1/auth/nonce`: `{nonce, domain, uri, issuedAt, expiresAt}`.
    pub fn new_nonce(&self) -> Value {
        let (status, body) = self.send_raw("POST", "/v1/auth/nonce", None, "text/plain", b"");
        assert_eq!(status, 200, "nonce: {body}");
        body
    }

    /// A sign-in message for `key` with a fresh nonce, issued now, valid
    /// for 10 minutes.
    pub fn siwe_message(&self, key: &MachineSigningKey) -> SiweMessage {
        let n = self.new_nonce();
        let now = now_unix();
        let mut message = sign_in_message(
            n["domain"].as_str().unwrap(),
            n["uri"].as_str().unwrap(),
            &Did::of_key(key),
            n["nonce"].as_str().unwrap(),
            Timestamp::from_unix(now),
            Some(Timestamp::from_unix(now + 600)),
            Some("Sign in to the sealstream market."),
        )
        .expect("a valid sign-in message");
        if let Some(chain_id) = n["chainId"].as_u64() {
            message.chain_id = chain_id;
        }
        message
    }

    /// `POST /v1/auth/verify` with `message` and the EIP-191 signature of
    /// it by `key`.
    pub fn siwe_verify(&self, message: &str, key: &MachineSigningKey) -> (u16, Value) {
        let signature = eip191_sign(key, message.as_bytes()).to_hex();
        self.send(
            "POST",
            "/v1/auth/verify",
            None,
            &serde_json::json!({ "message": message, "signature": signature }),
        )
    }

    /// Signs in with `key` through the real nonce/verify flow; returns the
    /// session token.
    pub fn sign_in(&self, key: &MachineSigningKey) -> String {
        let message = self.siwe_message(key).to_string();
        let (status, body) = self.siwe_verify(&message, key);
        assert_eq!(status, 200, "sign-in: {body}");
        body["token"].as_str().expect("a token").to_string()
    }

    /// `POST /v1/machines` as the owner (`owner_token`, `owner_did`), with
    /// `machine_key`'s signature over the registration statement;
    /// `recipients` are `(recipientId, recipientType, key)`.
    pub fn register_machine(
        &self,
        owner_token: &str,
        owner_did: &str,
        machine_key: &MachineSigningKey,
        chain_key: &ChainSigningKey,
        recipients: &[(&str, &str, RecipientPublicKey)],
    ) -> (u16, Value) {
        let chain_public_key = &chain_key.public_key();
        let registration = MachineRegistration {
            machine: Did::of_key(machine_key),
            owner: Did::parse(owner_did, "owner").unwrap(),
            chain_public_key: *chain_public_key,
            recipients: recipients
                .iter()
                .map(|(id, kind, key)| RegistrationRecipient {
                    recipient_id: (*id).to_string(),
                    recipient_type: (*kind).to_string(),
                    public_key: *key,
                })
                .collect(),
        };
        let signature = registration.sign(machine_key).to_hex();
        let chain_key_signature = registration.sign_chain_key(chain_key).unwrap();
        let recipients: Vec<Value> = recipients
            .iter()
            .map(|(id, kind, key)| {
                serde_json::json!({"recipientId": id, "recipientType": kind, "publicKeyHex": key.to_hex()})
            })
            .collect();
        self.send(
            "POST",
            "/v1/machines",
            Some(owner_token),
            &serde_json::json!({
                "machineDid": Did::of_key(machine_key).to_string(),
                "chainPublicKey": chain_public_key.to_hex(),
                "recipients": recipients,
                "signature": signature,
                "chainKeySignature": chain_key_signature,
            }),
        )
    }

    /// The number of rows of `table`.
    /// `{"events": N, "head": "0x…"}` of the audit log as stored (the
    /// route `/v1/audit/head` is for auditors, and signs).
    pub fn audit_head(&self) -> Value {
        let report = block_on(sealstream_market::audit::head(&self.store)).unwrap();
        serde_json::json!({"events": report.events, "head": report.head})
    }

    pub fn count_rows(&self, table: &str) -> i64 {
        block_on(async {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(self.store.pool())
                .await
                .unwrap();
            n
        })
    }
}

// ---- Ingest helpers (machines registered by SQL, multipart bodies) ----

// One moto harness for both crates' tests (it needs `free_port` and
// `repo_root` from here).
#[path = "../../../sealstream/tests/common/moto.rs"]
pub mod moto;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A TCP port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One recipient registered for a machine: (recipientId, recipientType,
/// publicKeyHex).
pub type RegisteredRecipient<'a> = (&'a str, &'a str, &'a str);

/// Registers `machine_did` under `owner_did` by inserting its `machines` row
/// directly (the registration route has its own tests).
pub fn register_machine_row(
    server: &TestServer,
    machine_did: &str,
    owner_did: &str,
    chain_public_key_hex: &str,
    recipients: &[RegisteredRecipient<'_>],
) {
    let recipients: Vec<Value> = recipients
        .iter()
        .map(|(id, kind, key)| {
            serde_json::json!({"recipientId": id, "recipientType": kind, "publicKeyHex": key})
        })
        .collect();
    block_on(async {
        sqlx::query(
            "INSERT INTO machines (did, owner_did, chain_public_key, recipients, statement, \
             signature, registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(machine_did)
        .bind(owner_did)
        .bind(chain_public_key_hex)
        .bind(Value::Array(recipients).to_string())
        .bind("registered by a test")
        .bind("0x00")
        .bind("2025-01-01T00:00:00Z")
        .execute(server.store.pool())
        .await
        .unwrap();
    });
}

/// The boundary [`multipart`] uses.
pub const BOUNDARY: &str = "sealstream-test-boundary-4f2b9c7e1a";

/// A `multipart/form-data` body of `parts` (name, content type, bytes) in
/// order, and its Content-Type header value.
pub fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, content_type, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let filename = if *content_type == "application/octet-stream" {
            format!("; filename=\"{name}.bin\"")
        } else {
            String::new()
        };
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{name}\"{filename}\r\n\
                 Content-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// `text` percent-encoded as one path segment (everything but unreserved
/// characters).
pub fn path_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl TestServer {
    /// Sends only the head of a request announcing a `content_length`-byte
    /// body, and reads the answer. For refusals made on the head alone (413
    /// from the body limit): sending the body would race the server closing
    /// the connection after its early answer.
    pub fn send_head_only(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        content_length: usize,
    ) -> (u16, Value) {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: {content_type}\r\n\
             Content-Length: {content_length}\r\nConnection: close\r\n\r\n"
        )
        .expect("send the request head");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read the answer");
        let text = String::from_utf8_lossy(&raw);
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        let value = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
        (status, value)
    }
}
