//! The reference implementation (peaq-os-sdk and its `peaqos` CLI) in the
//! virtual environment `scripts/setup-test-peers` makes, and the reference
//! peer: `tests/interop/refpeer.py`, a process answering JSON requests one
//! a line with the reference's results.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use sealstream_core::json::{self, write::to_python_compact, Map, Value};

/// The Python of the environment holding the reference:
/// `$SEALSTREAM_REF_PYTHON`, else `<repo>/.venv/bin/python`. Panics when it
/// is missing.
pub fn reference_python() -> PathBuf {
    if let Some(p) = std::env::var_os("SEALSTREAM_REF_PYTHON") {
        return PathBuf::from(p);
    }
    let p = crate::repo_root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup-test-peers, or set SEALSTREAM_REF_PYTHON to a Python \
         with peaq-os-sdk==0.12.1",
        p.display()
    );
    p
}

/// The program `name` of the reference's environment (`peaqos`,
/// `moto_server`, `schemathesis`…): beside `$SEALSTREAM_REF_PYTHON`, else
/// in `<repo>/.venv/bin`. Panics when it is missing.
pub fn venv_program(name: &str) -> PathBuf {
    let bin = match std::env::var_os("SEALSTREAM_REF_PYTHON") {
        Some(py) => PathBuf::from(py).with_file_name(name),
        None => crate::repo_root().join(".venv/bin").join(name),
    };
    assert!(
        bin.is_file(),
        "{name} not found at {}: run scripts/setup-test-peers (it installs the test peers \
         into .venv), or set SEALSTREAM_REF_PYTHON to the Python of a venv that has it",
        bin.display()
    );
    bin
}

/// The reference CLI `peaqos` ([`venv_program`]).
pub fn peaqos_binary() -> PathBuf {
    venv_program("peaqos")
}

/// A command running the reference CLI without telemetry, in the
/// temporary directory (the reference reads a `.env` from its working
/// directory).
pub fn peaqos() -> Command {
    let mut c = Command::new(peaqos_binary());
    c.env("PEAQOS_TELEMETRY", "0").env("DO_NOT_TRACK", "1");
    c.current_dir(std::env::temp_dir());
    c
}

/// A running reference peer; killed when dropped.
pub struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    /// Starts `tests/interop/refpeer.py` under [`reference_python`].
    pub fn start() -> Peer {
        let mut child = Command::new(reference_python())
            .arg(crate::repo_root().join("tests/interop/refpeer.py"))
            .env("PEAQOS_TELEMETRY", "0")
            .env("DO_NOT_TRACK", "1")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the reference peer");
        let stdin = child.stdin.take().expect("the peer's standard input");
        let stdout = BufReader::new(child.stdout.take().expect("the peer's standard output"));
        Peer {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends `request`; the answer, or a panic with the peer's trace when
    /// it failed.
    pub fn call(&mut self, request: Value) -> Map {
        let answer = self.try_call(request);
        if answer.get("ok") != Some(&Value::Bool(true)) {
            panic!(
                "reference peer failed: {}\n{}",
                answer.get("error").and_then(Value::as_str).unwrap_or("?"),
                answer.get("trace").and_then(Value::as_str).unwrap_or("")
            );
        }
        answer
    }

    /// Sends `request`; the answer, whatever it says.
    pub fn try_call(&mut self, request: Value) -> Map {
        let line = to_python_compact(&request);
        writeln!(self.stdin, "{line}").expect("write to the reference peer");
        self.stdin.flush().expect("write to the reference peer");
        let mut answer = String::new();
        self.stdout
            .read_line(&mut answer)
            .expect("read from the reference peer");
        assert!(!answer.is_empty(), "reference peer exited");
        match json::parse(answer.as_bytes()).expect("the reference peer's JSON") {
            Value::Object(map) => map,
            other => panic!("the reference peer answered {other:?}"),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
