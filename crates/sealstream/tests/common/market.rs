//! The market for the CLI tests: `sealstream market serve` as a child
//! process (from `sealstream-testkit`), an agent configuration delivering
//! to it, and the grant daemon's command.

use std::path::Path;
use std::process::Command;

pub use sealstream_testkit::market_process::{json_string, register_machine, text, Market};

use super::keyfile;

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
    .arg("--owner-private-key-file")
    .arg(keyfile("owner.x25519.sk"));
    c
}
