//! Stopping the long-running commands (`agent run`, `market grant-daemon`,
//! `follow`, `market subscription renew --auto`) on SIGTERM or SIGINT: a
//! flag they check between steps, and a sleep that ends when it is set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{CliError, CliResult};

/// A flag set by SIGTERM or SIGINT.
pub fn on_signals() -> CliResult<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| CliError::input(format!("cannot handle signals: {e}")))?;
    }
    Ok(stop)
}

/// Sleeps `d` unless `stop` is set meanwhile (checked every 50 ms);
/// whether it was.
pub fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.load(Ordering::Relaxed)
}
