//! The market integration harness: a real server in this process on a free
//! port, on SQLite (a file in a temporary directory) or on PostgreSQL (a
//! throwaway cluster started once per test binary with `initdb` and
//! `postgres`, one fresh database per server), and a small blocking HTTP
//! client.
//!
//! Every suite test is written once, `fn name(db: Db)`, and run on both
//! databases by `on_both_databases!(name, …)`.
#![allow(dead_code)]

pub mod chains;
pub mod postgres;

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

    fn launch(config: Config, database_url: String, data_dir: PathBuf) -> TestServer {
        let bound = block_on(Server::bind(config.clone())).expect("server starts");
        let addr = bound.local_addr();
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
