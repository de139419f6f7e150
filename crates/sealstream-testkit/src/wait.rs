//! Waiting for a condition a real process brings about: polled, with a
//! bound that is only reached when something is wrong.

use std::time::{Duration, Instant};

/// How long [`until`] waits: generous, since only a failure reaches it.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Polls `ready` every 50 ms until it holds; panics naming `what` after
/// [`PATIENCE`].
pub fn until(what: &str, ready: impl FnMut() -> bool) {
    until_or(what, ready, String::new);
}

/// [`until`], with `context()` (a log, say) in the panic message.
pub fn until_or(what: &str, mut ready: impl FnMut() -> bool, context: impl Fn() -> String) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
