//! The binary's error: a one-line message and an exit code.

use std::fmt;
use std::path::Path;

/// Exit codes, documented in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 1: bad input — flags, files, keys, malformed documents; `verify`: the chain is not intact.
    Input = 1,
    /// 2: integrity or network — a chain that does not verify or decrypt, a failed download.
    Integrity = 2,
    /// 64: invalid command-line usage (`EX_USAGE`), told apart from both.
    Usage = 64,
}

/// A failure to report: one line, no key material.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn input(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Input,
            message: message.into(),
        }
    }

    pub fn integrity(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Integrity,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep it to one line whatever the source said.
        f.write_str(&self.message.replace('\n', " "))
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// "PATH: message" for errors about a file given on the command line.
pub fn at(path: &Path, message: impl fmt::Display) -> String {
    format!("{}: {message}", path.display())
}
