//! `sealstream follow`: the buyer follows a live subscription
//! (docs/subscriptions.md, "Following"). Each chunk of the feed is checked
//! and opened by `sealstream_client::live::Follower`, and its plaintext
//! appended to the output, synced, and then recorded in the state file
//! beside it (`OUTPUT.follow-state`: the subscription, the last index and
//! chunk id written, and the output's length after it). A restart cuts the
//! output back to the recorded length (an append that was not recorded is
//! written again) and resumes after the recorded index: every chunk is in
//! the output exactly once.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sealstream_api::subscriptions::{FeedEvent, FeedState, FeedStatus};
use sealstream_client::follow_state::{FollowFormat, FollowState, MAX_STATE, MAX_TAIL};
use sealstream_client::live::{FollowError, Follower, Position};
use sealstream_client::market::MarketClient;
use sealstream_client::windows::{RangeDigest, WindowError, WindowOutcome, WindowState};
use sealstream_core::chunk::ChunkEnvelope;
use sealstream_core::dataset::ResumableSha256;
use sealstream_core::gap::GapScanner;
use sealstream_core::package::DataPackage;

use crate::cli::{FollowArgs, FollowFormatArg};
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

/// Longest wait between reconnections.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the windows are looked for while chunks wait for theirs.
const WINDOW_POLL: Duration = Duration::from_secs(2);

fn state_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_os_string();
    name.push(".follow-state");
    PathBuf::from(name)
}

fn read_state(path: &Path) -> CliResult<Option<FollowState>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::input(at(path, e))),
    };
    let mut text = String::new();
    file.take(MAX_STATE + 1)
        .read_to_string(&mut text)
        .map_err(|e| CliError::input(at(path, format!("not a follow state file ({e})"))))?;
    if text.len() as u64 > MAX_STATE {
        return Err(CliError::input(at(
            path,
            "not a follow state file (too large)",
        )));
    }
    FollowState::parse(&text)
        .map(Some)
        .map_err(|e| CliError::input(at(path, format!("not a follow state file ({e})"))))
}

/// Writes the state file whole (a temporary file renamed over it, synced).
fn write_state(path: &Path, s: &FollowState) -> CliResult {
    let tmp = {
        let mut name = path.as_os_str().to_os_string();
        name.push(".tmp");
        PathBuf::from(name)
    };
    let text = s.render();
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| CliError::input(at(path, e)))
}

/// `0x` + SHA-256 of bytes `start..end` of `path`, and the gap records among them.
fn hash_range(path: &Path, start: u64, end: u64) -> std::io::Result<RangeDigest> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(start))?;
    let mut left = end.saturating_sub(start);
    let mut hasher = ResumableSha256::new();
    let mut scanner = GapScanner::new();
    let mut gaps = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the output is shorter than recorded",
            ));
        }
        hasher.update(&buf[..n]);
        gaps.extend(scanner.push(&buf[..n]));
        left -= n as u64;
    }
    gaps.extend(scanner.finish());
    Ok(RangeDigest {
        source_hash: sealstream_core::dataset::hash_hex(&hasher.finish()),
        // A gap package whose payload is not a gap cannot be one the
        // manifest states: left out, the comparison names the difference.
        gaps: gaps.into_iter().flatten().collect(),
    })
}

/// The packages of `tail` + `plaintext` (JSON lines): each line ended is
/// read as a data package, its signature verified, and written as one
/// compact line; what follows the last newline is the new tail.
fn packages(tail: &[u8], plaintext: &[u8], index: u64) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut data = Vec::with_capacity(tail.len() + plaintext.len());
    data.extend_from_slice(tail);
    data.extend_from_slice(plaintext);
    let ended = data.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let rest = data.split_off(ended);
    if rest.len() > MAX_TAIL {
        return Err(format!(
            "chunk {index}: a package line longer than {MAX_TAIL} bytes"
        ));
    }
    let mut out = Vec::with_capacity(data.len());
    for (n, line) in data.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bad = |m: String| {
            format!(
                "chunk {index}: package line {} (of the lines ended in it): {m}",
                n + 1
            )
        };
        let value = sealstream_core::json::parse(line).map_err(|e| bad(e.to_string()))?;
        let package = DataPackage::from_json(&value).map_err(|e| bad(e.to_string()))?;
        let verified = package.verify();
        if let Err(reason) = verified.outcome {
            return Err(bad(format!("{reason} (did {})", verified.signer_did)));
        }
        out.extend_from_slice(package.to_json_line().as_bytes());
        out.push(b'\n');
    }
    Ok((out, rest))
}

/// Where the output goes.
enum Sink {
    /// A file, with its state file.
    File {
        file: File,
        path: PathBuf,
        state: PathBuf,
        length: u64,
    },
    Stdout,
}

/// The output and what the follower knows (kept in the state file).
pub(crate) struct Output {
    sink: Sink,
    subscription: String,
    format: FollowFormat,
    /// `jsonl`: the start of a package line not ended yet.
    tail: Vec<u8>,
    windows: WindowState,
    /// The last chunk written.
    pub(crate) last: Option<Position>,
}

impl Output {
    pub(crate) fn open(path: &Path, subscription: &str, format: FollowFormat) -> CliResult<Output> {
        let mut out = Output {
            sink: Sink::Stdout,
            subscription: subscription.to_string(),
            format,
            tail: Vec::new(),
            windows: WindowState::default(),
            last: None,
        };
        if path.as_os_str() == "-" {
            return Ok(out);
        }
        let state = state_path(path);
        let recorded = read_state(&state)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| CliError::input(at(path, e)))?;
        let held = file
            .metadata()
            .map_err(|e| CliError::input(at(path, e)))?
            .len();
        let length = match recorded {
            Some(r) => {
                if r.subscription != subscription {
                    return Err(CliError::input(at(
                        &state,
                        format!(
                            "records subscription {}, not {subscription}: use another --output",
                            r.subscription
                        ),
                    )));
                }
                if r.format != format {
                    return Err(CliError::input(at(
                        &state,
                        format!(
                            "records --format {}, not {}: use the same format or another --output",
                            r.format.as_str(),
                            format.as_str()
                        ),
                    )));
                }
                if held < r.length {
                    return Err(CliError::integrity(at(
                        path,
                        format!(
                            "shorter ({held} bytes) than its state records ({} bytes)",
                            r.length
                        ),
                    )));
                }
                if held > r.length {
                    // An append whose record did not follow: cut it, the
                    // chunk comes again.
                    file.set_len(r.length)
                        .and_then(|()| file.sync_all())
                        .map_err(|e| CliError::input(at(path, e)))?;
                }
                out.tail = r.tail;
                out.windows = r.windows;
                out.last = Some(Position {
                    index: r.last_index,
                    chunk_id: r.last_chunk_id,
                });
                r.length
            }
            None if held > 0 => {
                return Err(CliError::input(at(
                    path,
                    "exists without a follow state beside it: use another --output",
                )))
            }
            None => 0,
        };
        out.sink = Sink::File {
            file,
            path: path.to_path_buf(),
            state,
            length,
        };
        Ok(out)
    }

    /// Appends what chunk `last` (its `envelope`, its `plaintext`) gives
    /// (synced), then records it.
    pub(crate) fn append(
        &mut self,
        last: &Position,
        envelope: &ChunkEnvelope,
        plaintext: &[u8],
    ) -> CliResult {
        let (bytes, tail) = match self.format {
            FollowFormat::Raw => (plaintext.to_vec(), Vec::new()),
            FollowFormat::Jsonl => packages(&self.tail, plaintext, last.index)
                .map_err(|e| CliError::integrity(format!("{}: {e}", self.subscription)))?,
        };
        let span = match &mut self.sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)
                    .and_then(|()| out.flush())
                    .map_err(|e| CliError::input(format!("stdout: {e}")))?;
                None
            }
            Sink::File {
                file, path, length, ..
            } => {
                file.write_all(&bytes)
                    .and_then(|()| file.sync_data())
                    .map_err(|e| CliError::input(at(path, e)))?;
                let start = *length;
                *length += bytes.len() as u64;
                (self.format == FollowFormat::Raw).then_some((start, *length))
            }
        };
        self.tail = tail;
        self.windows.followed(envelope, span);
        self.last = Some(last.clone());
        self.save()
    }

    /// Records where the output stands (a file output, once a chunk is in).
    fn save(&self) -> CliResult {
        let (Sink::File { state, length, .. }, Some(last)) = (&self.sink, &self.last) else {
            return Ok(());
        };
        write_state(
            state,
            &FollowState {
                subscription: self.subscription.clone(),
                last_index: last.index,
                last_chunk_id: last.chunk_id.clone(),
                length: *length,
                format: self.format,
                tail: self.tail.clone(),
                windows: self.windows.clone(),
            },
        )
    }

    /// Checks the windows whose chunks are all written; each outcome on
    /// stderr. A window that does not hold is an integrity error.
    fn check_windows(&mut self, client: &mut MarketClient) -> CliResult {
        if self.windows.pending.is_empty() {
            return Ok(());
        }
        let path = match &self.sink {
            Sink::File { path, .. } => Some(path.clone()),
            Sink::Stdout => None,
        };
        let mut hash = |start: u64, end: u64| match &path {
            Some(p) => hash_range(p, start, end),
            None => Err(std::io::Error::other("no output file")),
        };
        let before = self.windows.clone();
        let result = self.windows.check(client, &self.subscription, &mut hash);
        let sub = &self.subscription;
        let outcomes = match result {
            Ok(o) => o,
            Err(WindowError::Client(e)) if e.is_transient() => {
                eprintln!("{sub}: the signed windows: {e}; trying again later");
                Vec::new()
            }
            Err(WindowError::Client(e)) => {
                return Err(super::market_session::client_error("follow (windows)", e))
            }
            Err(e) => return Err(CliError::integrity(format!("{sub}: {e}"))),
        };
        for o in &outcomes {
            match o {
                WindowOutcome::Verified {
                    window,
                    source_checked,
                    gaps,
                } => {
                    eprintln!(
                        "{sub}: window {}..{} verified (root {}){}",
                        window.first,
                        window.last,
                        window.root,
                        if *source_checked {
                            ", sourceHash too, and its gaps"
                        } else {
                            "; sourceHash not checked, nor its gaps (the output is not the plaintext)"
                        }
                    );
                    // Stated by the signed manifest: facts, not failures.
                    for g in gaps {
                        eprintln!("{sub}: window {}..{}: gap: {g}", window.first, window.last);
                    }
                }
                WindowOutcome::NotCheckable { first, last, why } => {
                    eprintln!("{sub}: window {first}..{last} not checkable: {why}")
                }
            }
        }
        if self.windows != before {
            self.save()?;
        }
        Ok(())
    }
}

/// The state line printed on stderr.
pub(crate) fn state_line(id: &str, s: &FeedState) -> String {
    match s.status {
        FeedStatus::Valid => {
            let left = s.seconds_left.unwrap_or(0);
            format!(
                "{id}: valid ({}), paid through {}, grace until {} ({}h{:02}m left)",
                s.state,
                s.paid_through.as_deref().unwrap_or("?"),
                s.grace_until.as_deref().unwrap_or("?"),
                left / 3600,
                (left % 3600) / 60
            ) + &s
                .remedy
                .as_deref()
                .map(|r| format!("; {r}"))
                .unwrap_or_default()
        }
        FeedStatus::Invalid => format!(
            "{id}: invalid ({}): {}{}",
            s.state,
            s.reason.as_deref().unwrap_or("no access"),
            s.remedy
                .as_deref()
                .map(|r| format!("; {r}"))
                .unwrap_or_default()
        ),
    }
}

/// What the reader thread hands over.
enum Read {
    Event(FeedEvent),
    /// The server ended the feed.
    End,
    /// The connection failed.
    Failed(String),
}

/// `sealstream follow`.
pub fn run(args: FollowArgs, ui: Ui) -> CliResult {
    let FollowArgs {
        session,
        subscription,
        buyer_key_file,
        output,
        format,
    } = args;
    let format = match format {
        FollowFormatArg::Raw => FollowFormat::Raw,
        FollowFormatArg::Jsonl => FollowFormat::Jsonl,
    };
    let mut client = super::market_session::client(&session, "a buyer (follow)")?;
    let secrets = buyer_key_file
        .iter()
        .map(|f| crate::keyfile::x25519_secret(f, "buyer recipient key"))
        .collect::<CliResult<Vec<_>>>()?;
    let mut out = Output::open(&output, &subscription, format)?;
    if let Some(p) = &out.last {
        ui.say(format!("Resuming after chunk {}", p.index));
    }
    let mut follower = Follower::with_keys(&subscription, secrets, out.last.clone());
    let mut windows_checked = Instant::now();
    let stop = super::stop::on_signals()?;
    let mut backoff = Duration::from_millis(500);
    let mut final_state = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            ui.say("Stopped");
            return Ok(());
        }
        let after = follower.last.as_ref().map(|p| p.index);
        let mut feed = match client.subscription_feed(&subscription, after) {
            Ok(feed) => feed,
            Err(e) if e.is_transient() => {
                eprintln!(
                    "{subscription}: {e}; reconnecting in {} s",
                    backoff.as_secs_f64()
                );
                if super::stop::sleep_unless_stopped(backoff, &stop) {
                    ui.say("Stopped");
                    return Ok(());
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(e) => return Err(super::market_session::client_error("follow", e)),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || loop {
            let read = match feed.next_event() {
                Ok(Some(e)) => Read::Event(e),
                Ok(None) => Read::End,
                Err(e) => Read::Failed(e.to_string()),
            };
            let last = !matches!(read, Read::Event(_));
            if tx.send(read).is_err() || last {
                return;
            }
        });
        let ended = loop {
            if stop.load(Ordering::Relaxed) {
                ui.say("Stopped");
                return Ok(());
            }
            let read = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if windows_checked.elapsed() >= WINDOW_POLL {
                        out.check_windows(&mut client)?;
                        windows_checked = Instant::now();
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            };
            match read {
                Read::Event(FeedEvent::State(s)) => {
                    backoff = Duration::from_millis(500);
                    final_state = s.is_final;
                    eprintln!("{}", state_line(&subscription, &s));
                }
                Read::Event(FeedEvent::Chunk(c)) => match follower.open(&mut client, &c) {
                    Ok(plaintext) => {
                        let last = follower.last.clone().expect("the chunk just opened");
                        let envelope = c
                            .envelope
                            .to_core()
                            .map_err(|e| e.to_string())
                            .and_then(|v| ChunkEnvelope::from_json(&v).map_err(|e| e.to_string()))
                            .map_err(|e| CliError::integrity(format!("chunk {}: {e}", c.index)))?;
                        out.append(&last, &envelope, &plaintext)?;
                        ui.say(format!("chunk {}: {} bytes", c.index, plaintext.len()));
                        if windows_checked.elapsed() >= WINDOW_POLL {
                            out.check_windows(&mut client)?;
                            windows_checked = Instant::now();
                        }
                    }
                    Err(FollowError::Client(e)) if e.is_transient() => {
                        break Some(format!("chunk {}: {e}", c.index));
                    }
                    Err(FollowError::Client(e)) => {
                        return Err(super::market_session::client_error("follow", e))
                    }
                    Err(e) => return Err(CliError::integrity(format!("{subscription}: {e}"))),
                },
                Read::End if final_state => {
                    out.check_windows(&mut client)?;
                    ui.say(format!(
                        "{subscription}: the feed ended (the subscription is over); {} written",
                        match &follower.last {
                            Some(p) => format!("chunks up to {}", p.index),
                            None => "no chunk".into(),
                        }
                    ));
                    return Ok(());
                }
                Read::End => break Some("the server ended the feed".into()),
                Read::Failed(e) => break Some(e),
            }
        };
        if let Some(why) = ended {
            eprintln!(
                "{subscription}: {why}; reconnecting in {} s",
                backoff.as_secs_f64()
            );
        }
        if super::stop::sleep_unless_stopped(backoff, &stop) {
            ui.say("Stopped");
            return Ok(());
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealstream_core::chunk::{ChunkEncryption, ChunkSignature};

    fn position(index: u64) -> Position {
        Position {
            index,
            chunk_id: format!("0x{index:064x}"),
        }
    }

    fn envelope(index: u64) -> ChunkEnvelope {
        ChunkEnvelope {
            schema_version: String::new(),
            chunk_id: position(index).chunk_id,
            previous_chunk_id: None,
            index,
            encrypted_data_hash: String::new(),
            plaintext_hash: String::new(),
            storage_ref: None,
            encryption: ChunkEncryption {
                algorithm: String::new(),
                nonce: String::new(),
                key_commitment: String::new(),
                key_recipients: Vec::new(),
            },
            signature: ChunkSignature {
                algorithm: String::new(),
                machine_did: "did:peaq:0x01".into(),
                key_id: String::new(),
                public_key_hex: "ab".into(),
                value: String::new(),
            },
        }
    }

    fn append(out: &mut Output, index: u64, bytes: &[u8]) -> CliResult {
        out.append(&position(index), &envelope(index), bytes)
    }

    #[test]
    fn an_append_without_its_record_is_cut_and_resumed_after_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let mut out = Output::open(&path, "sub_1", FollowFormat::Raw).unwrap();
        assert_eq!(out.last, None);
        append(&mut out, 0, b"chunk zero|").unwrap();
        append(&mut out, 1, b"chunk one|").unwrap();
        drop(out);
        // A crash after the append of chunk 2 and before its record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"chunk two, unrecorded").unwrap();
        drop(f);
        let mut out = Output::open(&path, "sub_1", FollowFormat::Raw).unwrap();
        assert_eq!(out.last, Some(position(1)));
        assert_eq!(std::fs::read(&path).unwrap(), b"chunk zero|chunk one|");
        append(&mut out, 2, b"chunk two|").unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"chunk zero|chunk one|chunk two|"
        );
        let state = read_state(&state_path(&path)).unwrap().unwrap();
        assert_eq!(
            (state.last_index, state.last_chunk_id, state.length),
            (2, position(2).chunk_id, 31)
        );
        // The chunks wait for their window, with where their plaintext is.
        let spans: Vec<_> = state.windows.pending.values().map(|p| p.span).collect();
        assert_eq!(spans, [Some((0, 11)), Some((11, 21)), Some((21, 31))]);
        assert_eq!(
            hash_range(&path, 11, 31).unwrap(),
            RangeDigest {
                source_hash: sealstream_core::chunk::sha256_hex(b"chunk one|chunk two|"),
                gaps: Vec::new(),
            }
        );
    }

    #[test]
    fn an_output_of_another_subscription_or_format_or_without_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let mut out = Output::open(&path, "sub_1", FollowFormat::Raw).unwrap();
        append(&mut out, 0, b"x").unwrap();
        drop(out);
        let e = Output::open(&path, "sub_2", FollowFormat::Raw)
            .err()
            .unwrap();
        assert!(
            e.message.contains("records subscription sub_1"),
            "{}",
            e.message
        );
        let e = Output::open(&path, "sub_1", FollowFormat::Jsonl)
            .err()
            .unwrap();
        assert!(e.message.contains("records --format raw"), "{}", e.message);
        let other = dir.path().join("other.bin");
        std::fs::write(&other, b"data").unwrap();
        let e = Output::open(&other, "sub_1", FollowFormat::Raw)
            .err()
            .unwrap();
        assert!(
            e.message.contains("without a follow state"),
            "{}",
            e.message
        );
        // Shorter than recorded: something else cut it.
        std::fs::write(&path, b"").unwrap();
        let e = Output::open(&path, "sub_1", FollowFormat::Raw)
            .err()
            .unwrap();
        assert_eq!(e.exit, crate::error::Exit::Integrity);
    }

    fn signed_lines(n: u64) -> Vec<String> {
        let key = sealstream_core::keys::MachineSigningKey::generate();
        let did = sealstream_core::identity::Did::of_key(&key).to_string();
        let signer = sealstream_core::package::PackageSigner::new(key, &did, None, None).unwrap();
        let rules = sealstream_core::rules::TopicRules::new("/gps/fix", Vec::new());
        (0..n)
            .map(|i| {
                let mut fields = sealstream_core::json::Map::new();
                fields.insert("seq".into(), sealstream_core::json::Value::from(i));
                let payload = sealstream_core::package::UnsignedPayload {
                    topic: "/gps/fix".into(),
                    fields,
                    captured_at: "2026-01-01T00:00:00Z".into(),
                };
                signer
                    .build(&payload, &rules, "gps.v1", i)
                    .unwrap()
                    .to_json_line()
            })
            .collect()
    }

    #[test]
    fn packages_split_across_chunks_are_written_once_each_and_checked() {
        let lines = signed_lines(3);
        let text = lines.join("\n") + "\n";
        let (a, b) = text.as_bytes().split_at(lines[0].len() + 10);
        let (out1, tail) = packages(b"", a, 0).unwrap();
        assert_eq!(out1, format!("{}\n", lines[0]).into_bytes());
        assert_eq!(tail, &a[lines[0].len() + 1..]);
        let (out2, tail) = packages(&tail, b, 1).unwrap();
        assert!(tail.is_empty());
        assert_eq!(out2, format!("{}\n{}\n", lines[1], lines[2]).into_bytes());
        // A package changed after signing.
        let forged = lines[1].replace("\"seq\":1", "\"seq\":7");
        assert_ne!(forged, lines[1]);
        let e = packages(b"", format!("{forged}\n").as_bytes(), 4).unwrap_err();
        assert!(e.starts_with("chunk 4: package line 1"), "{e}");
        let e = packages(b"", b"not json\n", 5).unwrap_err();
        assert!(e.starts_with("chunk 5"), "{e}");
    }
    #[test]
    fn the_range_of_a_window_is_read_for_its_gap_records() {
        use sealstream_core::gap::{Gap, GapReason, GAP_SCHEMA_VERSION};
        use sealstream_core::identity::Did;
        use sealstream_core::keys::MachineSigningKey;
        use sealstream_core::package::PackageSigner;
        let key = MachineSigningKey::generate();
        let did = Did::of_key(&key).to_string();
        let signer = PackageSigner::new(key, &did, None, None).unwrap();
        let gap = Gap {
            reason: GapReason::AgentOverloaded,
            source_topic: "/imu".into(),
            after: None,
            before: None,
            publisher: None,
            sequences: Some((5, 5)),
            chunks: None,
        };
        let line = signer
            .sign_processed(
                gap.to_fields(),
                "2026-12-05T10:00:00Z",
                GAP_SCHEMA_VERSION,
                0,
            )
            .to_json_line();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let bytes = format!("before\n{line}\nafter\n");
        std::fs::write(&path, &bytes).unwrap();
        let whole = hash_range(&path, 0, bytes.len() as u64).unwrap();
        assert_eq!(whole.gaps, vec![gap]);
        assert_eq!(
            whole.source_hash,
            sealstream_core::chunk::sha256_hex(bytes.as_bytes())
        );
        // A range that cuts the record holds none.
        assert!(hash_range(&path, 0, 20).unwrap().gaps.is_empty());
    }
}
