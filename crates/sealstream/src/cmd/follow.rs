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
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use sealstream_api::subscriptions::{FeedEvent, FeedState, FeedStatus};
use sealstream_client::live::{FollowError, Follower, Position};

use crate::cli::FollowArgs;
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

/// The first line of a state file.
const STATE_MAGIC: &str = "sealstream-follow v1";
/// Longest wait between reconnections.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where the output stands.
struct Recorded {
    subscription: String,
    last: Position,
    length: u64,
}

fn state_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_os_string();
    name.push(".follow-state");
    PathBuf::from(name)
}

fn read_state(path: &Path) -> CliResult<Option<Recorded>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::input(at(path, e))),
    };
    let bad = || CliError::input(at(path, "not a follow state file"));
    let mut lines = text.lines();
    if lines.next() != Some(STATE_MAGIC) {
        return Err(bad());
    }
    let mut field = |name: &str| -> CliResult<String> {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .and_then(|l| l.strip_prefix(' '))
            .map(str::to_string)
            .ok_or_else(bad)
    };
    let subscription = field("subscription")?;
    let index = field("index")?.parse().map_err(|_| bad())?;
    let chunk_id = field("chunk")?;
    let length = field("length")?.parse().map_err(|_| bad())?;
    Ok(Some(Recorded {
        subscription,
        last: Position { index, chunk_id },
        length,
    }))
}

/// Writes the state file whole (a temporary file renamed over it, synced).
fn write_state(path: &Path, r: &Recorded) -> CliResult {
    let tmp = {
        let mut name = path.as_os_str().to_os_string();
        name.push(".tmp");
        PathBuf::from(name)
    };
    let text = format!(
        "{STATE_MAGIC}\nsubscription {}\nindex {}\nchunk {}\nlength {}\n",
        r.subscription, r.last.index, r.last.chunk_id, r.length
    );
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

/// The output: a file with its state, or stdout.
enum Output {
    File {
        file: File,
        path: PathBuf,
        state: PathBuf,
        length: u64,
    },
    Stdout,
}

impl Output {
    fn open(path: &Path, subscription: &str) -> CliResult<(Output, Option<Position>)> {
        if path.as_os_str() == "-" {
            return Ok((Output::Stdout, None));
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
        let (last, length) = match recorded {
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
                (Some(r.last), r.length)
            }
            None if held > 0 => {
                return Err(CliError::input(at(
                    path,
                    "exists without a follow state beside it: use another --output",
                )))
            }
            None => (None, 0),
        };
        Ok((
            Output::File {
                file,
                path: path.to_path_buf(),
                state,
                length,
            },
            last,
        ))
    }

    /// Appends the plaintext of `last`, synced, then records it.
    fn append(&mut self, subscription: &str, last: &Position, plaintext: &[u8]) -> CliResult {
        match self {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(plaintext)
                    .and_then(|()| out.flush())
                    .map_err(|e| CliError::input(format!("stdout: {e}")))
            }
            Output::File {
                file,
                path,
                state,
                length,
            } => {
                file.write_all(plaintext)
                    .and_then(|()| file.sync_data())
                    .map_err(|e| CliError::input(at(path, e)))?;
                *length += plaintext.len() as u64;
                write_state(
                    state,
                    &Recorded {
                        subscription: subscription.to_string(),
                        last: last.clone(),
                        length: *length,
                    },
                )
            }
        }
    }
}

/// The state line printed on stderr.
fn state_line(id: &str, s: &FeedState) -> String {
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
    } = args;
    let mut client = super::market_session::client(&session, "a buyer (follow)")?;
    let secrets = buyer_key_file
        .iter()
        .map(|f| crate::keyfile::x25519_secret(f, "buyer recipient key"))
        .collect::<CliResult<Vec<_>>>()?;
    let (mut out, last) = Output::open(&output, &subscription)?;
    if let Some(p) = &last {
        ui.say(format!("Resuming after chunk {}", p.index));
    }
    let mut follower = Follower::with_keys(&subscription, secrets, last);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| CliError::input(format!("cannot handle signals: {e}")))?;
    }
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
                if sleep_unless_stopped(backoff, &stop) {
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
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
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
                        out.append(&subscription, &last, &plaintext)?;
                        ui.say(format!("chunk {}: {} bytes", c.index, plaintext.len()));
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
        if sleep_unless_stopped(backoff, &stop) {
            ui.say("Stopped");
            return Ok(());
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sleeps `d` unless `stop` is set meanwhile; whether it was.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(index: u64) -> Position {
        Position {
            index,
            chunk_id: format!("0x{index:064x}"),
        }
    }

    #[test]
    fn an_append_without_its_record_is_cut_and_resumed_after_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let (mut out, last) = Output::open(&path, "sub_1").unwrap();
        assert_eq!(last, None);
        out.append("sub_1", &position(0), b"chunk zero|").unwrap();
        out.append("sub_1", &position(1), b"chunk one|").unwrap();
        drop(out);
        // A crash after the append of chunk 2 and before its record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"chunk two, unrecorded").unwrap();
        drop(f);
        let (mut out, last) = Output::open(&path, "sub_1").unwrap();
        assert_eq!(last, Some(position(1)));
        assert_eq!(std::fs::read(&path).unwrap(), b"chunk zero|chunk one|");
        out.append("sub_1", &position(2), b"chunk two|").unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"chunk zero|chunk one|chunk two|"
        );
        let state = read_state(&state_path(&path)).unwrap().unwrap();
        assert_eq!((state.last, state.length), (position(2), 31));
    }

    #[test]
    fn an_output_of_another_subscription_or_without_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let (mut out, _) = Output::open(&path, "sub_1").unwrap();
        out.append("sub_1", &position(0), b"x").unwrap();
        drop(out);
        let e = Output::open(&path, "sub_2").err().unwrap();
        assert!(
            e.message.contains("records subscription sub_1"),
            "{}",
            e.message
        );
        let other = dir.path().join("other.bin");
        std::fs::write(&other, b"data").unwrap();
        let e = Output::open(&other, "sub_1").err().unwrap();
        assert!(
            e.message.contains("without a follow state"),
            "{}",
            e.message
        );
        // Shorter than recorded: something else cut it.
        std::fs::write(&path, b"").unwrap();
        let e = Output::open(&path, "sub_1").err().unwrap();
        assert_eq!(e.exit, crate::error::Exit::Integrity);
    }
}
