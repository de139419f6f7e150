//! The market server in this process, on a free loopback port, on SQLite
//! (a file in a temporary directory) or on PostgreSQL (a fresh database on
//! the [`postgres`](crate::postgres) cluster of the test binary), with its
//! store opened beside it for setup and inspection, and a small blocking
//! HTTP client.
//!
//! A test of both databases is written once, `fn name(db: Db)`, and run on
//! each by [`on_both_databases!`](crate::on_both_databases).
//!
//! A server verifies payments on chain [`PEAQ_CHAIN_ID`] through
//! [`SILENT_RPC`], an endpoint nothing answers on (the server warns at
//! start; a claim of a payment on it waits): listings of that chain, as the
//! fixtures make them, are accepted, since the market refuses a listing on
//! a chain whose payments it does not verify. The payment tests configure
//! a real node (anvil) for theirs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread::JoinHandle;

use sealstream_api::siwe::SiweMessage;
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey};
use sealstream_market::server::{AppState, Config, Server};
use sealstream_market::store::Store;
use serde_json::Value;

use crate::http::{self, RequestBuilder};
use crate::registration::{self, Recipient};
use crate::{postgres, sign_in};

/// peaq's EIP-155 chain id, the chain of the fixtures' EVM listings.
pub const PEAQ_CHAIN_ID: u64 = 3338;

/// A JSON-RPC endpoint nothing answers on (port 0 cannot be connected to):
/// a server given it for a chain accepts listings on that chain and never
/// confirms a payment on it.
pub const SILENT_RPC: &str = "http://127.0.0.1:0";

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in the server's data directory.
    Sqlite,
    /// A fresh database on the test binary's PostgreSQL cluster.
    Postgres,
}

impl Db {
    /// A new, empty database for a server whose data directory is
    /// `data_dir`: its URL.
    pub fn new_database(self, data_dir: &Path) -> String {
        match self {
            Db::Sqlite => format!("sqlite://{}", data_dir.join("market.db").display()),
            Db::Postgres => postgres::cluster().new_database(),
        }
    }
}

/// Runs each named `fn(Db)` as two tests, `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name($crate::server::Db::Sqlite)
                }
                #[test]
                fn postgres() {
                    super::$name($crate::server::Db::Postgres)
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

/// Runs `f` to completion on the runtime the servers run on.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// `SEALSTREAM_TEST_REPLICAS=N` (N ≥ 2) runs every test server on
/// PostgreSQL as N replicas on one database and one object store behind a
/// round-robin proxy (issue 24): `base` is the proxy's, `state` and
/// `store` the first replica's.
pub const REPLICAS_ENV: &str = "SEALSTREAM_TEST_REPLICAS";

/// With [`REPLICAS_ENV`]: an `s3://bucket[/prefix]` URL the replicas of each
/// test server keep their objects under (a new prefix per server), instead
/// of the first replica's local directory. The endpoint and credentials
/// come from the usual `AWS_*` variables (`scripts/test` starts moto and
/// sets them).
pub const OBJECT_STORE_ENV: &str = "SEALSTREAM_TEST_OBJECT_STORE";

/// The replicas a PostgreSQL test server runs as ([`REPLICAS_ENV`]).
fn replicas_wanted(database_url: &str) -> usize {
    if !database_url.starts_with("postgres") {
        return 1;
    }
    std::env::var(REPLICAS_ENV)
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n >= 2)
        .unwrap_or(1)
}

/// A running server; stopped (gracefully) when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:PORT` (the proxy's, with [`REPLICAS_ENV`]).
    pub base: String,
    /// `http://127.0.0.1:PORT` of this server itself.
    pub own_base: String,
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
    pub state: AppState,
    /// `http://ADDR` of the metrics listener, when configured.
    pub metrics_base: Option<String>,
    /// With [`REPLICAS_ENV`]: the other replicas, on the same database and
    /// objects, and the proxy `base` names, which sends each request to
    /// the next replica in turn.
    pub others: Vec<TestServer>,
    proxy: Option<crate::proxy::RoundRobin>,
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
        let database_url = db.new_database(&data_dir);
        let replicas = replicas_wanted(&database_url);
        Self::launch_in(dir, data_dir, database_url, replicas, adjust)
    }

    /// [`start_with`](Self::start_with), always one process, whatever
    /// [`REPLICAS_ENV`] says: for tests of what one process does with its
    /// own connections (caps per client, feeds per principal, stopping).
    pub fn start_single_with(db: Db, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data_dir = dir.path().join("data");
        let database_url = db.new_database(&data_dir);
        Self::launch_in(dir, data_dir, database_url, 1, adjust)
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
        let database_url = db.new_database(&data_dir);
        prepare(&database_url);
        let replicas = replicas_wanted(&database_url);
        Self::launch_in(dir, data_dir, database_url, replicas, adjust)
    }

    /// Starts a server on `database_url` and `data_dir` (inside `dir`,
    /// which it keeps), listening on a free port; as `replicas` processes
    /// behind a proxy when more than 1.
    fn launch_in(
        dir: tempfile::TempDir,
        data_dir: PathBuf,
        database_url: String,
        replicas: usize,
        adjust: impl FnOnce(&mut Config),
    ) -> TestServer {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.clone(),
            database_url: Some(database_url.clone()),
            evm_rpc: [(PEAQ_CHAIN_ID, SILENT_RPC.to_string())].into(),
            ..Config::default()
        };
        adjust(&mut config);
        if replicas > 1 && config.object_store.is_none() {
            if let Some(url) = std::env::var(OBJECT_STORE_ENV)
                .ok()
                .filter(|u| !u.is_empty())
            {
                config.object_store = Some(format!(
                    "{}/t-{:016x}",
                    url.trim_end_matches('/'),
                    rand::random::<u64>()
                ));
            }
        }
        let proxy = (replicas > 1).then(|| {
            let proxy =
                crate::proxy::RoundRobin::start(runtime().handle(), vec![String::new(); replicas]);
            // The address clients sign in for is the proxy's, unless the
            // test names one.
            if config.public_url.is_none() {
                config.public_url = Some(proxy.base());
            }
            proxy
        });
        let mut server = Self::launch(config, database_url, data_dir);
        server._dir = Some(dir);
        if let Some(proxy) = proxy {
            server.put_behind(proxy, replicas);
        }
        server
    }

    /// Starts `replicas − 1` replicas of this server and puts them all
    /// behind `proxy`, which `base` then names.
    fn put_behind(&mut self, proxy: crate::proxy::RoundRobin, replicas: usize) {
        proxy.set_backend(0, self.authority());
        for i in 1..replicas {
            let other = self.replica(|c| c.replica_id = Some(format!("replica-{i}")));
            proxy.set_backend(i, other.authority());
            self.others.push(other);
        }
        self.base = proxy.base();
        self.proxy = Some(proxy);
    }

    /// `host:port` of this very server (not of a proxy in front).
    fn authority(&self) -> String {
        let own = self.own_base.trim_start_matches("http://");
        own.to_string()
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
            own_base: format!("http://{addr}"),
            database_url,
            data_dir,
            store,
            config,
            state,
            metrics_base,
            others: Vec::new(),
            proxy: None,
            stop: Some(stop),
            thread: Some(thread),
            _dir: None,
        }
    }

    /// Another replica of this server (issue 24): a second server on the
    /// same database and the same object store, with the same receipt,
    /// operator key-encryption and nonce keys (this server's files), its
    /// own data directory and port, and `adjust` applied to its
    /// configuration.
    pub fn replica(&self, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("data directory");
        let keys = |configured: &Option<PathBuf>, name: &str| {
            Some(
                configured
                    .clone()
                    .unwrap_or_else(|| self.data_dir.join(name)),
            )
        };
        let first = &self.config;
        let receipt_key_file = keys(
            &first.receipt_key_file,
            sealstream_market::server::RECEIPT_KEY_FILE,
        );
        let operator_kek_file = keys(
            &first.operator_kek_file,
            sealstream_market::operator_key::KEK_FILE,
        );
        let nonce_key_file = keys(
            &first.nonce_key_file,
            sealstream_market::auth::nonce::KEY_FILE,
        );
        let object_store = first
            .object_store
            .clone()
            .or_else(|| Some(format!("file://{}", self.objects_dir().display())));
        let mut config = Config {
            data_dir: data_dir.clone(),
            receipt_key_file,
            operator_kek_file,
            nonce_key_file,
            object_store,
            replica_id: None,
            metrics_listen: None,
            ..first.clone()
        };
        config.listen = "127.0.0.1:0".parse().unwrap();
        adjust(&mut config);
        let mut server = Self::launch(config, self.database_url.clone(), data_dir);
        server._dir = Some(dir);
        server
    }

    /// Stops the server (finishing requests in flight) and starts it again on
    /// the same database and data directory, on a new port.
    pub fn restart(&mut self) {
        // Replicas restart together, with the configuration as the test
        // left it.
        let replicas = 1 + self.others.len();
        self.others.clear();
        self.shutdown();
        let dir = self._dir.take();
        let mut next = Self::launch(
            self.config.clone(),
            self.database_url.clone(),
            self.data_dir.clone(),
        );
        next._dir = dir;
        if let Some(proxy) = self.proxy.take() {
            next.put_behind(proxy, replicas);
        }
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

    /// The keys of every object in the server's object store (its local
    /// directory, or its S3 bucket under its prefix), sorted.
    ///
    /// A local store is walked as files, so that debris a write left
    /// (a temporary file) counts too.
    pub fn object_keys(&self) -> Vec<String> {
        match self.state.objects.local_dir() {
            Some(dir) => {
                let mut keys: Vec<String> = crate::files_under(dir)
                    .iter()
                    .filter_map(|f| f.strip_prefix(dir).ok())
                    .map(|k| k.to_string_lossy().into_owned())
                    .collect();
                keys.sort();
                keys
            }
            None => block_on(self.state.objects.keys()).expect("list the objects"),
        }
    }

    /// Every object in the server's object store, as (key, bytes), sorted
    /// by key.
    pub fn objects(&self) -> Vec<(String, Vec<u8>)> {
        self.object_keys()
            .into_iter()
            .map(|key| {
                let bytes = self.object(&key);
                (key, bytes)
            })
            .collect()
    }

    /// The object `key`'s bytes.
    pub fn object(&self, key: &str) -> Vec<u8> {
        block_on(self.state.objects.read(key))
            .unwrap_or_else(|e| panic!("read object {key}: {e}"))
            .to_vec()
    }

    /// Writes the object `key` into the server's object store, as ingest
    /// does (for fixtures that insert rows directly).
    pub fn put_object(&self, key: &str, bytes: &[u8]) {
        block_on(self.put_object_async(key, bytes));
    }

    /// [`put_object`](Self::put_object), for fixtures already in async
    /// code.
    pub async fn put_object_async(&self, key: &str, bytes: &[u8]) {
        let write = async {
            let mut upload = self.state.objects.upload(key)?;
            upload.write(bytes::Bytes::copy_from_slice(bytes)).await?;
            upload.finish().await
        };
        write
            .await
            .unwrap_or_else(|e| panic!("write object {key}: {e}"));
    }

    /// A request builder for `method` on `path`, with the bearer token if
    /// given; send it with [`http::send`] or [`reply`].
    pub fn request(&self, method: &str, path: &str, token: Option<&str>) -> RequestBuilder {
        let r = http::request(method, &format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// GET, as (status, JSON body).
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        reply(self.request("GET", path, token))
    }

    /// GET from this very server, never through the proxy of
    /// [`REPLICAS_ENV`]: for tests of what one process keeps (its caches).
    pub fn get_here(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let r = http::request("GET", &format!("{}{path}", self.own_base));
        reply(match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        })
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
                .header("Content-Type", "application/json")
                .body(body.to_string()),
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
                .header("Content-Type", content_type)
                .body(body.to_vec()),
        )
    }

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

    /// `POST /v1/auth/nonce`: `{nonce, domain, uri, issuedAt, expiresAt}`.
    pub fn new_nonce(&self) -> Value {
        sign_in::nonce(&self.base)
    }

    /// A sign-in message for `key` with a fresh nonce, issued now, valid
    /// for 10 minutes.
    pub fn siwe_message(&self, key: &MachineSigningKey) -> SiweMessage {
        sign_in::message(&self.new_nonce(), key)
    }

    /// `POST /v1/auth/verify` with `message` and the EIP-191 signature of
    /// it by `key`.
    pub fn siwe_verify(&self, message: &str, key: &MachineSigningKey) -> (u16, Value) {
        self.send(
            "POST",
            sealstream_api::routes::AUTH_VERIFY,
            None,
            &sign_in::verify_body(message, key),
        )
    }

    /// Signs in with `key` through the real nonce/verify flow; returns the
    /// session token.
    pub fn sign_in(&self, key: &MachineSigningKey) -> String {
        sign_in::sign_in(&self.base, key)
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
        recipients: &[Recipient<'_>],
    ) -> (u16, Value) {
        self.send(
            "POST",
            sealstream_api::routes::MACHINES,
            Some(owner_token),
            &registration::body(owner_did, machine_key, chain_key, recipients),
        )
    }

    /// `{"events": N, "head": "0x…"}` of the audit log as stored (the
    /// route `/v1/audit/head` is for auditors, and signs).
    pub fn audit_head(&self) -> Value {
        let report = block_on(sealstream_market::audit::head(&self.store)).unwrap();
        serde_json::json!({"events": report.events, "head": report.head})
    }

    /// The number of rows of `table`.
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

impl Drop for TestServer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shutdown();
        } else if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Sends `request`: (status, body as JSON, or `Value::String` of the text
/// when not JSON), whatever the status. Panics only when no answer came.
#[track_caller]
pub fn reply(request: RequestBuilder) -> (u16, Value) {
    let answer = http::send(request);
    (answer.status, answer.json())
}
