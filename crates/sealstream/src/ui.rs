//! Output: summaries on stderr, `--json` on stdout, progress bars on stderr
//! when it is a terminal.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sealstream_core::json::{write::to_python_pretty, Value};

/// How to talk to the user.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    /// No progress or summaries.
    pub quiet: bool,
    /// Machine output on stdout (summaries are then suppressed too).
    pub json: bool,
}

impl Ui {
    /// A summary line on stderr.
    pub fn say(&self, line: impl AsRef<str>) {
        if !self.quiet && !self.json {
            eprintln!("{}", line.as_ref());
        }
    }

    /// The id a command made, on stdout (its result, for `ID=$(sealstream …)`),
    /// unless `--json` prints the whole answer instead. Printed with `-q` too.
    #[cfg(feature = "agent")]
    pub fn id_out(&self, id: &str) {
        if !self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{id}").and_then(|()| out.flush());
        }
    }

    /// Print `value` as `json.dumps(value, indent=2)` on stdout.
    pub fn json_out(&self, value: &Value) {
        let text = to_python_pretty(value);
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth reporting.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// A progress bar over `total` units (bytes when `bytes`), shown only on a
    /// terminal and when not quiet.
    pub fn progress(&self, total: Option<u64>, bytes: bool, message: &str) -> ProgressBar {
        let visible = !self.quiet && std::io::stderr().is_terminal();
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), hidden_or_stderr(visible)),
            None => ProgressBar::with_draw_target(None, hidden_or_stderr(visible)),
        };
        let template = match (total.is_some(), bytes) {
            (true, true) => "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            (true, false) => "{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
            (false, true) => "{msg} {bytes} {bytes_per_sec}",
            (false, false) => "{msg} {pos} {per_sec}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_string());
        bar
    }
}

fn hidden_or_stderr(visible: bool) -> ProgressDrawTarget {
    if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// Human size like the reference's grant summary: `512 B`, `1.5 KB`, `2.0 MB`.
pub fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let kb = bytes as f64 / 1024.0;
    if kb < 1024.0 {
        return format!("{kb:.1} KB");
    }
    format!("{:.1} MB", kb / 1024.0)
}
