//! Peak memory of publish, grant and consume on a 1 GiB input stays under
//! 64 MiB (the reference needs about 4× the input). The size can be changed
//! with SEALSTREAM_MEMORY_TEST_BYTES.
//!
//! The run keeps the ciphertext and the reassembled output on disk at once
//! (twice the input). When the temporary directory's file system has less
//! free space than that plus a margin, the input shrinks to what fits, never
//! below 256 MiB (still four times the memory limit), and the test says so.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const LIMIT_KIB: u64 = 64 * 1024;

fn python() -> String {
    std::env::var("SEALSTREAM_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Run `args` of our binary under the RSS wrapper; returns the peak in KiB.
fn peak_kib(stdin_bytes: Option<u64>, args: &mut Command) -> u64 {
    let wrapper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/maxrss.py");
    let mut c = Command::new(python());
    c.arg(wrapper);
    if let Some(n) = stdin_bytes {
        c.args(["--stdin-bytes", &n.to_string()]);
    }
    c.arg("--").arg(args.get_program()).args(args.get_args());
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("maxrss_kib="))
        .expect("wrapper output");
    line.trim_start_matches("maxrss_kib=")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Free bytes on the file system holding `dir`, from POSIX `df -Pk`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `wanted` if ciphertext plus output (2× the input, plus 256 MiB of margin)
/// fit on `dir`'s file system; otherwise the largest size that does, at
/// least 256 MiB.
fn fitting_size(wanted: u64, dir: &Path) -> u64 {
    const FLOOR: u64 = 256 << 20;
    let Some(free) = free_bytes(dir) else {
        return wanted;
    };
    let fits = free.saturating_sub(FLOOR) / 2;
    if fits >= wanted {
        return wanted;
    }
    let bytes = fits.max(FLOOR).min(wanted) & !0xFFFF;
    eprintln!(
        "only {} MiB free under {}: testing {} MiB instead of {} MiB",
        free >> 20,
        dir.display(),
        bytes >> 20,
        wanted >> 20
    );
    bytes
}

#[test]
fn publish_grant_consume_of_one_gib_stay_under_64_mib() {
    let wanted: u64 = std::env::var("SEALSTREAM_MEMORY_TEST_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 30);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let bytes = fitting_size(wanted, t);
    let chain = t.join("chain");

    let mut publish = sealstream();
    publish.arg("--quiet");
    publish_args(&mut publish, "-", &chain, 262_144);
    let publish_kib = peak_kib(Some(bytes), &mut publish);

    let access = t.join("access");
    let mut grant = sealstream();
    grant.arg("--quiet");
    grant_args(&mut grant, &chain, &access, 512_000);
    let grant_kib = peak_kib(None, &mut grant);

    let out = t.join("out.bin");
    let mut consume = sealstream();
    consume.arg("--quiet");
    consume_args(&mut consume, &chain, &access, &out);
    let consume_kib = peak_kib(None, &mut consume);

    eprintln!("peak RSS for {bytes} bytes: publish {publish_kib} KiB, grant {grant_kib} KiB, consume {consume_kib} KiB");
    // consume checks the reassembled bytes against the manifest's sourceHash itself.
    assert_eq!(std::fs::metadata(&out).unwrap().len(), bytes);
    for (what, kib) in [
        ("publish", publish_kib),
        ("grant", grant_kib),
        ("consume", consume_kib),
    ] {
        assert!(
            kib < LIMIT_KIB,
            "{what} peaked at {kib} KiB, over {LIMIT_KIB} KiB"
        );
    }
}
