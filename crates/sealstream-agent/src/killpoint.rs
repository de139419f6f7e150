//! Test-only kill points: named places in the pipeline and the forwarder
//! where a crash is the most dangerous, so that tests can crash the agent
//! exactly there instead of hoping a random `SIGKILL` lands on them.
//!
//! **For tests only.** Setting [`ENV`] (`SEALSTREAM_AGENT_KILL_AT`) to
//! `<point>` or `<point>:<n>` makes the process kill itself with `SIGKILL`
//! the first (or `n`-th) time it reaches that point. Unset, as in
//! production, a kill point does nothing but look at a value read once; an
//! unknown point name never matches. The variable gives no capability
//! beyond ending the process, which whoever can set the agent's environment
//! can do anyway.
//!
//! | point | where |
//! |---|---|
//! | `after-seal-before-commit` | a chunk is written to the spool; `state.json` does not yet commit it |
//! | `after-dataset-before-commit` | a dataset manifest is written to the spool; `state.json` does not yet record its window as closed |
//! | `prune-between-files` | the forwarder removed one of a delivered chunk's two spool files, not yet the other |
//!
//! At the two commit points the agent first lets the forwarder deliver
//! everything it has been told of (up to 30 s), then dies: the worst moment
//! for an object that would reach the forwarder before its commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable that arms a kill point (test-only).
pub const ENV: &str = "SEALSTREAM_AGENT_KILL_AT";

/// A chunk is durably in the spool; `state.json` does not yet commit it.
pub const AFTER_SEAL_BEFORE_COMMIT: &str = "after-seal-before-commit";
/// A dataset manifest is in the spool; `state.json` does not yet record its window closed.
pub const AFTER_DATASET_BEFORE_COMMIT: &str = "after-dataset-before-commit";
/// Between the removals of a delivered chunk's two spool files.
pub const PRUNE_BETWEEN_FILES: &str = "prune-between-files";

/// The longest a kill point waits for the forwarder before dying.
const SETTLE: Duration = Duration::from_secs(30);

static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn armed() -> Option<&'static (String, u64)> {
    ARMED
        .get_or_init(|| {
            let text = std::env::var(ENV).ok()?;
            let (name, nth) = match text.split_once(':') {
                Some((name, n)) => (name, n.parse().ok().filter(|n| *n > 0)?),
                None => (text.as_str(), 1),
            };
            Some((name.to_string(), nth))
        })
        .as_ref()
}

/// The pipeline or the forwarder reached `point`. If [`ENV`] arms it and
/// this is the armed occurrence, wait until `settled` holds (polled, at most
/// 30 s), then kill the process with `SIGKILL`. Otherwise nothing happens.
pub fn reached(point: &str, settled: impl Fn() -> bool) {
    let Some((name, nth)) = armed() else {
        return;
    };
    if name != point || HITS.fetch_add(1, Ordering::Relaxed) + 1 != *nth {
        return;
    }
    let deadline = Instant::now() + SETTLE;
    while !settled() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    die();
}

/// End the process as a `SIGKILL` would: no destructors, no flushing.
fn die() -> ! {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    // The signal is on its way; if `kill` could not be run, abort instead.
    std::thread::sleep(Duration::from_secs(5));
    std::process::abort()
}
