//! What the tests of the sealstream crates share, written once.
//!
//! - Where things are: the repository ([`repo_root`]), the reference's
//!   fixtures and their keys ([`fixture`]), the `sealstream` binary
//!   ([`binary`]), the reference's Python and CLI ([`mod@reference`]).
//! - Chunk chains in memory: input bytes and the items verifiers and
//!   readers take ([`chain`]); watching output for secret keys
//!   ([`secrets`]).
//! - Small tools: free ports ([`free_port`]), waiting for a condition
//!   ([`wait`]), files under a directory ([`files_under`]), seeded schedules
//!   ([`seed`]).
//! - The interop tests' random JSON documents and field rules, seeded by
//!   name ([`corpus`]); the `interop-corpus` binary prints them for the
//!   Python package's tests, which compare with the reference on the same
//!   documents.
//! - The market as a client sees it: sign-in with Ethereum ([`sign_in`]),
//!   machine registration ([`registration`]), plain HTTP ([`http`]), the
//!   server as a child process ([`market_process`]) and, with the `market`
//!   feature, in this process on SQLite or PostgreSQL (`server`,
//!   `postgres`).
//! - The peers tests run against: the reference peer ([`reference::Peer`]),
//!   an S3 server ([`moto`]), an MQTT broker ([`mosquitto`]) and, with the
//!   `market` feature, an EVM node (`anvil`).
//! - With the `browser` feature: headless Chromium through chromedriver,
//!   for the tests of the market's web pages (`browser`).
//!
//! The peers are installed by `scripts/setup-test-peers`; a missing one
//! fails its test with a message that says so.
//!
//! A dev-dependency only: nothing here is for production use.
#![warn(missing_docs)]

#[cfg(feature = "market")]
pub mod anvil;
pub mod binary;
#[cfg(feature = "browser")]
pub mod browser;
pub mod chain;
pub mod corpus;
pub mod fixture;
pub mod http;
pub mod market_process;
pub mod mosquitto;
pub mod moto;
#[cfg(feature = "market")]
pub mod postgres;
#[cfg(feature = "market")]
pub mod proxy;
pub mod reference;
pub mod registration;
pub mod secrets;
pub mod seed;
#[cfg(feature = "market")]
pub mod server;
pub mod sign_in;
pub mod wait;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

pub use binary::{run_fails, run_ok, sealstream, sealstream_binary};
pub use fixture::{fixtures, keyfile};
pub use reference::{peaqos, peaqos_binary, reference_python};
pub use seed::{test_seed, SplitMix64};

/// The repository's root directory (this crate sits at
/// `<root>/crates/sealstream-testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// A TCP port on 127.0.0.1 free at the time of asking (bound, then
/// released: another process may take it before the caller binds it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Seconds since the Unix epoch by the wall clock.
pub fn unix_now() -> u64 {
    u64::try_from(sealstream_core::utc::now_unix()).expect("the clock is after 1970")
}

/// Every file under `dir`, recursively, sorted (none when `dir` does not
/// exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
