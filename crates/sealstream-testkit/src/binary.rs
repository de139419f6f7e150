//! The `sealstream` binary under test, and running commands that must
//! succeed or fail with a given exit code.
//!
//! Cargo tells only the `sealstream` crate's own integration tests where
//! its binary is (`CARGO_BIN_EXE_sealstream`, at compile time). Every test
//! binary of the workspace sits in `<target>/<profile>/deps/`, and Cargo
//! builds the `sealstream` binary beside that directory before it runs the
//! `sealstream` crate's tests; [`sealstream_binary`] looks there, unless
//! `SEALSTREAM_BIN` names another.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `sealstream` binary: `$SEALSTREAM_BIN`, else `sealstream` in the
/// profile directory above the running test binary's `deps/`. Panics when
/// it does not exist.
pub fn sealstream_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SEALSTREAM_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut dir = exe.parent().expect("the test binary's directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().expect("the profile directory");
    }
    let path = dir.join(format!("sealstream{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: run the sealstream crate's tests (cargo builds the binary for them), \
         `cargo build -p sealstream`, or set SEALSTREAM_BIN",
        path.display()
    );
    path
}

/// A command running the `sealstream` binary.
pub fn sealstream() -> Command {
    Command::new(sealstream_binary())
}

/// Runs `c` to its end; panics (with `what`, the status and both outputs)
/// unless it started and succeeded.
pub fn run_ok(mut c: Command, what: &str) -> Output {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `c` to its end; panics (with the status and both outputs) unless
/// it started and exited with `code`. Its standard error, as text.
pub fn run_fails(mut c: Command, code: i32) -> String {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{c:?}:\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}
