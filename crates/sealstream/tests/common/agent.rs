//! Helpers for the agent tests: decrypting a delivered topic chain, and
//! checking its dataset manifests; a JSON lines Data Event Map with its
//! input and the checks of its output; agent processes, their status and
//! what a crash may leave behind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealstream_core::chunk::{decrypt_chunk, ChainItem, ChainReader, ChainReaderOptions};
use sealstream_core::dataset::{DatasetManifest, DatasetVerifier};
use sealstream_core::json::{self, Map, Value};
use sealstream_core::keys::RecipientSecretKey;
use sealstream_core::package::DataPackage;
use sealstream_files::layout::{list_chain, read_ciphertext, read_envelope};

pub use sealstream_testkit::files_under;
pub use sealstream_testkit::fixture::MACHINE_SK;

use super::{keyfile, run_ok, sealstream, DID, MACHINE_PK, OPERATOR_PK, OWNER_PK};

fn owner_key() -> RecipientSecretKey {
    RecipientSecretKey::from_hex(
        &std::fs::read_to_string(keyfile("owner.x25519.sk")).unwrap(),
        "o",
    )
    .unwrap()
}

/// Decrypt every chunk of a topic's chain with the owner key: (index, plaintext).
pub fn chunk_plaintexts(chain: &Path) -> Vec<(u64, Vec<u8>)> {
    let owner = owner_key();
    list_chain(chain)
        .unwrap()
        .iter()
        .map(|(i, p)| {
            let env = read_envelope(p).unwrap();
            let entry = env.recipient_of_type("owner").unwrap().clone();
            let ciphertext = read_ciphertext(chain, *i).unwrap().unwrap();
            (*i, decrypt_chunk(&env, &entry, &owner, ciphertext).unwrap())
        })
        .collect()
}

/// Decrypt a topic's chain with the owner key and return its packages.
pub fn packages(chain: &Path) -> Vec<DataPackage> {
    let owner = Arc::new(owner_key());
    let list = list_chain(chain).unwrap();
    let items = list.iter().map(|(i, p)| {
        let env = read_envelope(p).unwrap();
        let entry = env.recipient_of_type("owner").unwrap().clone();
        Ok::<_, std::convert::Infallible>(ChainItem {
            envelope: env,
            key: entry,
            ciphertext: read_ciphertext(chain, *i).unwrap().unwrap(),
        })
    });
    let mut out = Vec::new();
    let options = ChainReaderOptions {
        parallelism: 2,
        ..ChainReaderOptions::default()
    };
    let mut reader = ChainReader::new(items, owner, options);
    std::io::Read::read_to_end(&mut reader, &mut out).unwrap();
    reader.finish().unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| DataPackage::from_json(&json::parse(l.as_bytes()).unwrap()).unwrap())
        .collect()
}

/// The sub-directories of `root` by name (one per topic at a destination).
pub fn chain_dirs(root: &Path) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), e.path())
        })
        .collect()
}

/// The chain directory of an agent's directory destination `root` that
/// received one topic (the first by name).
pub fn only_chain(root: &Path) -> PathBuf {
    chain_dirs(root)
        .into_values()
        .next()
        .expect("a chain directory")
}

/// Check the dataset manifests delivered with a topic's chain: signed, each
/// over the next range of chunks, each matching the chunks' ids (Merkle
/// root). Returns how many chunks they cover, from 0.
pub fn check_datasets(chain: &Path) -> u64 {
    let mut manifests: Vec<(u64, u64, PathBuf)> = std::fs::read_dir(chain)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let (a, b) = name
                .strip_prefix("dataset-")?
                .strip_suffix(".json")?
                .split_once('-')?;
            Some((a.parse().unwrap(), b.parse().unwrap(), e.path()))
        })
        .collect();
    manifests.sort();
    let envelopes: BTreeMap<u64, _> = list_chain(chain)
        .unwrap()
        .into_iter()
        .map(|(i, p)| (i, read_envelope(&p).unwrap()))
        .collect();
    let mut next = 0;
    for (first, last, path) in manifests {
        assert_eq!(first, next, "{}: datasets are contiguous", path.display());
        let m = DatasetManifest::parse(&std::fs::read(&path).unwrap()).unwrap();
        m.verify_signatures().unwrap();
        assert_eq!((m.first_index, m.chunk_count), (first, last - first + 1));
        let mut v = DatasetVerifier::new(&m).unwrap();
        for i in first..=last {
            v.push(&envelopes[&i]).unwrap();
        }
        v.finish().unwrap();
        next = last + 1;
    }
    next
}

/// Write the test machine's key files to `<dir>/keys/` and return the Data
/// Event Map's `machine` and `recipients` sections that use them.
pub fn machine_sections(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("keys/machine.secp256k1.sk"), MACHINE_SK).unwrap();
    std::fs::copy(
        keyfile("chain.ed25519.sk"),
        dir.join("keys/chain.ed25519.sk"),
    )
    .unwrap();
    format!(
        "machine:\n  did: {DID}\n  signingKeyFile: keys/machine.secp256k1.sk\n  chainKeyFile: keys/chain.ed25519.sk\n\
         recipients:\n  owner: {OWNER_PK}\n  operator: {OPERATOR_PK}\n  machine: {MACHINE_PK}\n"
    )
}

/// A Data Event Map over one JSON lines file (`input.jsonl`, see
/// [`write_jsonl_input`]) with two topics, `/gps` (with rules) and `/imu`,
/// delivered to the directory `out`, with hourly dataset manifests.
pub struct JsonlMap {
    /// `chunking.maxBytes`.
    pub chunk_bytes: &'static str,
    /// `chunking.maxMessages`.
    pub max_messages: u64,
    /// `spool.maxBytes`.
    pub spool_bytes: &'static str,
}

impl Default for JsonlMap {
    fn default() -> Self {
        JsonlMap {
            chunk_bytes: "1MiB",
            max_messages: 100,
            spool_bytes: "1GiB",
        }
    }
}

impl JsonlMap {
    /// Write `<dir>/map.yaml` (and the machine's keys) and return its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let JsonlMap {
            chunk_bytes,
            max_messages,
            spool_bytes,
        } = self;
        let spool = format!("  maxBytes: {spool_bytes}\n");
        write_map(
            dir,
            (chunk_bytes, *max_messages),
            "1h",
            &spool,
            r#"sources:
  lines: {type: jsonl, path: input.jsonl}
topics:
  - name: /gps
    source: lines
    rules:
      - {fieldPath: lat, action: anonymize, anonymizeStrategy: generalize}
      - {fieldPath: secret, action: exclude}
      - {fieldPath: note, action: anonymize, anonymizeStrategy: hash}
  - name: /imu
    source: lines
destinations:
  - {type: directory, path: out}
"#,
        )
    }
}

/// Writes `<dir>/map.yaml`, a Data Event Map: the machine's sections (its
/// keys written to `dir`), chunks of at most `max_bytes` and `max_messages`
/// messages (or an hour's), dataset windows of `window`, the spool in
/// `spool/` with the further `spool` members `spool_more` (indented lines),
/// then `rest` (sources, topics, destinations). Returns its path.
pub fn write_map(
    dir: &Path,
    (max_bytes, max_messages): (&str, u64),
    window: &str,
    spool_more: &str,
    rest: &str,
) -> PathBuf {
    let machine = machine_sections(dir);
    let config = format!(
        "{machine}chunking:\n  maxBytes: {max_bytes}\n  maxMessages: {max_messages}\n  maxAge: 1h\n\
         datasets:\n  window: {window}\nspool:\n  dir: spool\n{spool_more}{rest}"
    );
    let path = dir.join("map.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

/// `<dir>/input.jsonl`: messages 0..n (one in three on `/imu`, the others
/// on `/gps`), and one line that is not JSON after message 10. Writing a
/// longer input over a shorter one appends to it, as far as the agent knows.
pub fn write_jsonl_input(dir: &Path, n: usize) {
    let mut text = String::new();
    for i in 0..n {
        let topic = if i % 3 == 0 { "/imu" } else { "/gps" };
        text.push_str(&format!(
            "{{\"topic\":\"{topic}\",\"capturedAt\":\"2026-11-21T10:00:00.{i:06}Z\",\"fields\":{{\"i\":{i},\"lat\":52.5{i},\"secret\":\"s{i}\",\"note\":\"n{i}\"}}}}\n"
        ));
        if i == 10 {
            text.push_str("this line is not JSON\n");
        }
    }
    std::fs::write(dir.join("input.jsonl"), text).unwrap();
}

/// Check what a [`JsonlMap`] agent delivered to `<dir>/out` for the first
/// `n` messages: chains that verify, dataset manifests over each whole
/// chain, every message exactly once with its topic's rules applied, and
/// sequence numbers 0..n without gaps or repeats.
pub fn check_jsonl_output(dir: &Path, n: usize) {
    let mut seen = BTreeSet::new();
    let mut sequences = Vec::new();
    for (name, chain) in chain_dirs(&dir.join("out")) {
        let mut v = sealstream();
        v.args(["verify", "--chunk-dir"]).arg(&chain);
        run_ok(v, &format!("verify {name}"));
        // The run ended with every source read: its dataset windows closed,
        // and their manifests cover the whole chain.
        assert_eq!(
            check_datasets(&chain),
            list_chain(&chain).unwrap().len() as u64,
            "{name}: dataset manifests cover the chain"
        );
        for p in packages(&chain) {
            assert!(p.verify().is_valid(), "{name}: package signature");
            let i = p.payload["i"].as_number().unwrap().as_u64().unwrap();
            assert!(seen.insert(i), "{name}: message {i} appears twice");
            if name.starts_with("gps") {
                assert!(
                    !p.payload.contains_key("secret"),
                    "{name}: excluded field present"
                );
                assert!(
                    p.payload["lat"].as_object().is_some(),
                    "{name}: rules applied"
                );
            } else {
                assert!(
                    p.payload.contains_key("secret"),
                    "{name}: no rules, all fields"
                );
            }
            sequences.push(p.sequence_number.as_u64().unwrap());
        }
    }
    assert_eq!(seen.len(), n, "every message once");
    sequences.sort_unstable();
    assert_eq!(
        sequences,
        (0..n as u64).collect::<Vec<_>>(),
        "sequence numbers without gaps or repeats"
    );
}

/// Generous bound for an agent run; only reached when a run hangs.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// An agent process, killed if the test ends (or panics) while it runs.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `c` (an agent command) with its standard error going to `log`.
pub fn spawn_logged(mut c: Command, log: &Path) -> Running {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    Running(c.spawn().unwrap())
}

/// Wait for the agent to exit. A run still going after [`PATIENCE`] hangs:
/// it is killed and the test fails with its log.
pub fn wait_exit(agent: &mut Running, log: &Path) -> ExitStatus {
    let child = &mut agent.0;
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!(
                "agent did not finish:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `c` (an agent command) to its end, which must be a success.
pub fn run_agent_ok(c: Command, log: &Path) {
    let mut agent = spawn_logged(c, log);
    let status = wait_exit(&mut agent, log);
    assert!(
        status.success(),
        "agent run failed ({status}):\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Whether the process was ended by `SIGKILL`.
pub fn killed(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

/// `sealstream agent status --json` of `config`.
pub fn agent_status(config: &Path) -> Map {
    let mut c = sealstream();
    c.args(["agent", "status", "--json", "--config"])
        .arg(config);
    match json::parse(&run_ok(c, "agent status").stdout).unwrap() {
        Value::Object(o) => o,
        other => panic!("agent status: {other:?}"),
    }
}

/// Temporary files under `root` that an interrupted write leaves:
/// `.<name>.tmp-<pid>` (ours) and `<name>#<n>` (the `object_store` crate's
/// local files).
pub fn temp_files(root: &Path) -> Vec<PathBuf> {
    files_under(root)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            (name.starts_with('.') && name.contains(".tmp-")) || name.contains('#')
        })
        .collect()
}

/// The committed chain head (`chain.nextIndex`) of each topic in `<spool>/state.json`.
pub fn committed_heads(spool: &Path) -> BTreeMap<String, u64> {
    let state = json::parse(&std::fs::read(spool.join("state.json")).unwrap()).unwrap();
    state.as_object().unwrap()["topics"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, t)| {
            let next = t.as_object().unwrap()["chain"].as_object().unwrap()["nextIndex"]
                .as_number()
                .unwrap()
                .as_u64()
                .unwrap();
            (name.clone(), next)
        })
        .collect()
}
