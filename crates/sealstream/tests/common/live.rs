//! Helpers for the live-subscription tests with real processes: children
//! killed when dropped, waiting on a condition with the logs in the panic,
//! `market …` and `follow` commands, a follower's state file, the feed of a
//! final subscription read whole, and the oracle of who is entitled to which
//! chunk, computed from the market's exported audit log alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sealstream_core::json::{self, Value};

use super::{run_ok, sealstream};

/// `sealstream market ARGS… --server URL --key-file KEY`.
pub fn market_cmd(server: &str, key: &Path, args: &[&str]) -> Command {
    let mut c = sealstream();
    c.arg("market").args(args);
    c.args(["--server", server]).arg("--key-file").arg(key);
    c
}

/// What `c` printed on stdout, trimmed; asserts it succeeded.
pub fn stdout_of(c: Command, what: &str) -> String {
    String::from_utf8_lossy(&run_ok(c, what).stdout)
        .trim()
        .to_string()
}

/// A child killed when dropped (a failing test leaves nothing running).
pub struct Running(pub Child);

impl Running {
    /// SIGKILL and wait (a crash).
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// SIGTERM, then its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.0.wait().unwrap()
    }

    /// Its exit status once it has ended, within `limit`.
    pub fn wait_within(
        &mut self,
        limit: Duration,
        what: &str,
        log: &Path,
    ) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what} did not end\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `c` with stdout discarded and stderr appended to `log`.
pub fn spawn(mut c: Command, log: &Path) -> Running {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Running(
        c.stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap(),
    )
}

/// Waits (up to `limit`) until `done`, polling; on time out, panics with
/// the `logs`.
pub fn wait_until(what: &str, limit: Duration, logs: &[&Path], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            let logs: Vec<String> = logs
                .iter()
                .map(|l| {
                    format!(
                        "--- {}:\n{}",
                        l.display(),
                        std::fs::read_to_string(l).unwrap_or_default()
                    )
                })
                .collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`wait_until`] with a limit of 60 s.
pub fn wait_for(what: &str, logs: &[&Path], done: impl FnMut() -> bool) {
    wait_until(what, Duration::from_secs(60), logs, done)
}

/// `sealstream follow` of subscription `sub` into `output`, with one or
/// more buyer X25519 keys.
pub fn follow(server: &str, key: &Path, sub: &str, x25519: &[&Path], output: &Path) -> Command {
    let mut c = sealstream();
    c.args(["follow", "--server", server, "--subscription", sub])
        .arg("--key-file")
        .arg(key)
        .arg("--output")
        .arg(output);
    for k in x25519 {
        c.arg("--buyer-private-key-file").arg(k);
    }
    c
}

/// The index recorded in a follower's state file, if any.
pub fn recorded(output: &Path) -> Option<u64> {
    let mut state = output.as_os_str().to_os_string();
    state.push(".follow-state");
    let text = std::fs::read_to_string(PathBuf::from(state)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("index "))
        .and_then(|n| n.parse().ok())
}

/// The first period's order id of subscription `sub` (`subscription show`).
pub fn first_period_order(server: &str, key: &Path, sub: &str) -> String {
    let shown = market_cmd(server, key, &["subscription", "show", sub, "--json"]);
    let shown = json::parse(&run_ok(shown, "subscription show").stdout).unwrap();
    shown
        .get("periods")
        .and_then(|p| p.as_array())
        .and_then(|p| p[0].get("orderId"))
        .and_then(|o| o.as_str())
        .unwrap()
        .to_string()
}

/// The `data` of every `chunk` event in an SSE body, by index.
pub fn feed_chunks(body: &[u8]) -> BTreeMap<u64, Value> {
    let text = String::from_utf8_lossy(body);
    let mut out = BTreeMap::new();
    let mut event = String::new();
    let mut data = String::new();
    for line in text.lines() {
        if line.is_empty() {
            if event == "chunk" {
                let v = json::parse(data.as_bytes()).unwrap();
                let index = v.get("index").and_then(Value::as_u64).unwrap();
                assert!(out.insert(index, v).is_none(), "chunk {index} sent twice");
            }
            event.clear();
            data.clear();
        } else if let Some(e) = line.strip_prefix("event:") {
            event = e.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push_str(d.trim_start());
        }
    }
    out
}

/// Unix seconds of a `YYYY-MM-DDTHH:MM:SSZ` time.
pub fn unix(text: &str) -> i64 {
    sealstream_core::utc::parse_seconds(text).unwrap_or_else(|| panic!("not a UTC time: {text}"))
}

/// One subscription as the audit log tells it.
#[derive(Clone, Debug, Default)]
pub struct AuditedSubscription {
    /// `topic` of its listing.
    pub topic: String,
    /// The first key, then `(from, key)` of each rotation.
    pub keys: Vec<(i64, String)>,
    /// The log position of each rotation (of `keys[1..]`).
    pub rotated_at_seq: Vec<u64>,
    /// When the first period was paid.
    pub active_from: Option<i64>,
    /// When access ended (lapsed, cancelled, revoked), if it did.
    pub access_ends: Option<i64>,
    /// How it ended (`lapsed`, `cancelled`, `revoked`).
    pub ended: Option<String>,
    /// The chunk indexes whose keys were stored for it.
    pub granted: BTreeSet<u64>,
    /// The log position of the event that stored each index's key.
    pub granted_at_seq: BTreeMap<u64, u64>,
    /// The log position of the event that ended it.
    pub ended_at_seq: Option<u64>,
}

impl AuditedSubscription {
    /// The key chunk `index`, accepted at `t`, must be wrapped to: the key
    /// in force at `t`, except that a key stored before a rotation in the
    /// very second the rotation took effect (times are whole seconds) is
    /// to the key before it, which the rotation cannot take back.
    pub fn key_granted(&self, index: u64, t: i64) -> &str {
        let granted_seq = self.granted_at_seq.get(&index).copied().unwrap_or(u64::MAX);
        let mut key = &self.keys[0].1;
        for ((from, k), seq) in self.keys[1..].iter().zip(&self.rotated_at_seq) {
            if *from < t || (*from == t && *seq < granted_seq) {
                key = k;
            }
        }
        key
    }
}

/// The market's decisions recomputed from its audit log (`market audit
/// export`): chunk acceptance times per topic, and each subscription's
/// activation, key rotations, end and grants.
#[derive(Debug, Default)]
pub struct AuditOracle {
    /// `(topic, index)` → acceptance time.
    pub chunks: BTreeMap<(String, u64), i64>,
    /// Subscriptions by id.
    pub subscriptions: BTreeMap<String, AuditedSubscription>,
}

impl AuditOracle {
    /// Reads the export (JSON lines); checks the events are numbered and
    /// linked.
    pub fn from_export(text: &str) -> AuditOracle {
        let mut o = AuditOracle::default();
        let mut prev: Option<String> = None;
        for (i, line) in text.lines().enumerate() {
            let e = json::parse(line.as_bytes()).unwrap();
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            assert_eq!(e.get("seq").and_then(Value::as_u64), Some(i as u64 + 1));
            if let Some(p) = &prev {
                assert_eq!(&s("prev"), p, "event {} not linked", i + 1);
            }
            prev = Some(s("hash"));
            let details = e.get("details").cloned().unwrap_or(Value::Null);
            let d = |k: &str| details.get(k).and_then(Value::as_str).map(str::to_string);
            let (action, subject) = (s("action"), s("subject"));
            let seq = i as u64 + 1;
            match action.as_str() {
                "chunk.ingest" => {
                    let mut parts = subject.split(' ');
                    let (_did, topic, index) =
                        (parts.next(), parts.next().unwrap(), parts.next().unwrap());
                    // The chunk's time is `acceptedAt` (set before the
                    // transaction), not the event's own `at`.
                    let at = d("acceptedAt").unwrap_or_else(|| panic!("{line}: no acceptedAt"));
                    o.chunks
                        .insert((topic.to_string(), index.parse().unwrap()), unix(&at));
                }
                "subscription.created" => {
                    let sub = o.subscriptions.entry(subject).or_default();
                    sub.topic = d("topic").unwrap();
                    sub.keys.push((0, d("buyerPublicKeyHex").unwrap()));
                    assert_eq!(
                        details.get("history").and_then(Value::as_str),
                        Some("none"),
                        "the oracle knows subscriptions without history only"
                    );
                }
                "subscription.activated" => {
                    let sub = o.subscriptions.get_mut(&subject).unwrap();
                    sub.active_from = Some(unix(&d("effectiveAt").unwrap()));
                }
                "subscription.key-rotated" => {
                    let sub = o.subscriptions.get_mut(&subject).unwrap();
                    sub.keys.push((
                        unix(&d("effectiveAt").unwrap()),
                        d("buyerPublicKeyHex").unwrap(),
                    ));
                    sub.rotated_at_seq.push(seq);
                }
                "subscription.lapsed" | "subscription.cancelled" | "subscription.revoked" => {
                    let sub = o.subscriptions.get_mut(&subject).unwrap();
                    sub.access_ends = Some(unix(&d("accessEnds").unwrap()));
                    sub.ended = Some(action.trim_start_matches("subscription.").to_string());
                    sub.ended_at_seq = Some(i as u64 + 1);
                }
                "subscription.grant" => {
                    let sub = o.subscriptions.get_mut(&subject).unwrap();
                    for i in details.get("indexes").and_then(Value::as_array).unwrap() {
                        assert!(
                            sub.granted.insert(i.as_u64().unwrap()),
                            "{subject}: chunk {i:?} granted twice"
                        );
                        sub.granted_at_seq.insert(i.as_u64().unwrap(), seq);
                    }
                }
                _ => {}
            }
        }
        o
    }

    /// The chunk indexes of its topic that subscription `id` is entitled
    /// to: accepted at or after its activation and before its access end
    /// (subscriptions without history).
    pub fn entitled(&self, id: &str) -> BTreeSet<u64> {
        let sub = &self.subscriptions[id];
        let Some(from) = sub.active_from else {
            return BTreeSet::new();
        };
        let end = sub.access_ends.unwrap_or(i64::MAX);
        self.chunks
            .iter()
            .filter(|((topic, _), t)| *topic == sub.topic && from <= **t && **t < end)
            .map(|((_, i), _)| *i)
            .collect()
    }

    /// What subscription `id` must have been granted: its [`entitled`]
    /// chunks, and those accepted in the very second its access ended
    /// (a revocation, a cancellation in grace: times are whole seconds)
    /// whose keys were stored before the event that ended it, which the
    /// end cannot take back.
    ///
    /// [`entitled`]: Self::entitled
    pub fn due(&self, id: &str) -> BTreeSet<u64> {
        let sub = &self.subscriptions[id];
        let mut due = self.entitled(id);
        if let (Some(end), Some(end_seq)) = (sub.access_ends, sub.ended_at_seq) {
            for (i, seq) in &sub.granted_at_seq {
                if self.time_of(&sub.topic, *i) == end && *seq < end_seq {
                    due.insert(*i);
                }
            }
        }
        due
    }

    /// Acceptance time of chunk `index` of `topic`.
    pub fn time_of(&self, topic: &str, index: u64) -> i64 {
        self.chunks[&(topic.to_string(), index)]
    }
}

/// `market audit export` of the market in `data_dir`: the events as text.
pub fn audit_export(data_dir: &Path) -> String {
    let mut c = sealstream();
    c.args(["market", "audit", "export", "--data-dir"])
        .arg(data_dir);
    String::from_utf8(run_ok(c, "market audit export").stdout).unwrap()
}

/// `market subscribe` to `listing` with the session key `key` and the buyer
/// key file `x25519`; on the invoice rail (`owner_sk` given), the seller
/// then marks the first period paid. The subscription's id.
pub fn subscribe(
    server: &str,
    key: &Path,
    x25519: &Path,
    listing: &str,
    owner_sk: Option<&Path>,
) -> String {
    let mut subscribe = market_cmd(server, key, &["subscribe", "--listing", listing]);
    subscribe.arg("--buyer-private-key-file").arg(x25519);
    let sub = stdout_of(subscribe, "subscribe");
    if let Some(owner_sk) = owner_sk {
        let order = first_period_order(server, key, &sub);
        run_ok(
            market_cmd(
                server,
                owner_sk,
                &["order", "mark-paid", &order, "--reference", "INV"],
            ),
            "mark-paid",
        );
    }
    sub
}

/// The directory under `out` that holds a topic's chain (the one with
/// `chunk-0.json`), once there is one.
pub fn chain_dir(out: &Path) -> Option<PathBuf> {
    sealstream_testkit::files_under(out)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "chunk-0.json"))
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

/// A machine's agent (`agent run`) streaming one topic from its standard
/// input, fed a GPS fix every `every` by a thread until [`Stream::stop`].
pub struct Stream {
    /// The agent process.
    pub agent: Running,
    streaming: std::sync::Arc<std::sync::atomic::AtomicBool>,
    feeder: Option<std::thread::JoinHandle<()>>,
}

impl Stream {
    /// The agent in `dir` (its map written there: the fixture machine,
    /// chunks sealed after `max_age` or 200 messages, `destinations` as
    /// flow-style YAML maps), its stderr appended to `log`.
    pub fn start(
        dir: &Path,
        log: &Path,
        topic: &str,
        max_age: &str,
        destinations: &[&str],
        every: Duration,
    ) -> Stream {
        use std::io::Write;
        use std::sync::atomic::{AtomicBool, Ordering};
        std::fs::create_dir_all(dir).unwrap();
        let machine = super::agent::machine_sections(dir);
        let destinations: String = destinations.iter().map(|d| format!("  - {d}\n")).collect();
        let map = dir.join("map.yaml");
        std::fs::write(
            &map,
            format!(
                "{machine}chunking:\n  maxBytes: 1MiB\n  maxMessages: 200\n  maxAge: {max_age}\n\
                 spool:\n  dir: spool\n\
                 sources:\n  lines: {{type: jsonl, path: \"-\"}}\n\
                 topics:\n  - name: {topic}\n    source: lines\n\
                 destinations:\n{destinations}"
            ),
        )
        .unwrap();
        let mut agent = sealstream();
        agent
            .args(["agent", "run", "--config"])
            .arg(&map)
            .current_dir(dir)
            .stdin(Stdio::piped());
        let mut agent = spawn(agent, log);
        let mut stdin = agent.0.stdin.take().unwrap();
        let streaming = std::sync::Arc::new(AtomicBool::new(true));
        let feeding = streaming.clone();
        let topic = topic.to_string();
        let feeder = std::thread::spawn(move || {
            let mut i = 0u64;
            while feeding.load(Ordering::Relaxed) {
                let line = format!(
                    "{{\"topic\":\"{topic}\",\"capturedAt\":\"2026-12-05T10:{:02}:{:02}.{:03}Z\",\"fields\":{{\"seq\":{i},\"lat\":52.{i},\"lon\":13.{i}}}}}\n",
                    (i / 60_000) % 60,
                    (i / 1000) % 60,
                    i % 1000
                );
                if stdin.write_all(line.as_bytes()).is_err() {
                    break;
                }
                i += 1;
                std::thread::sleep(every);
            }
            // Dropping stdin ends the agent's input: it seals and delivers
            // what it holds, then exits.
        });
        Stream {
            agent,
            streaming,
            feeder: Some(feeder),
        }
    }

    /// Ends the input and waits for the agent to deliver all and exit 0.
    pub fn stop(&mut self, log: &Path) {
        self.streaming
            .store(false, std::sync::atomic::Ordering::Relaxed);
        if let Some(f) = self.feeder.take() {
            f.join().unwrap();
        }
        let status = self
            .agent
            .wait_within(Duration::from_secs(120), "agent", log);
        assert!(
            status.success(),
            "agent: {}",
            std::fs::read_to_string(log).unwrap()
        );
    }
}

/// A new X25519 secret key in `t/NAME.x25519.sk`.
pub fn x25519_file(t: &Path, name: &str) -> PathBuf {
    let path = t.join(format!("{name}.x25519.sk"));
    std::fs::write(
        &path,
        sealstream_core::keys::RecipientSecretKey::generate().to_hex_secret(),
    )
    .unwrap();
    path
}

/// A session (sign-in) key file `t/NAME.sk`: `secp` (hex) or a new key.
pub fn session_key(t: &Path, name: &str, secp: Option<&str>) -> PathBuf {
    let key = t.join(format!("{name}.sk"));
    let text = match secp {
        Some(s) => s.trim_start_matches("0x").to_string(),
        None => sealstream_core::keys::MachineSigningKey::generate()
            .to_hex_secret()
            .to_string(),
    };
    std::fs::write(&key, text).unwrap();
    key
}
