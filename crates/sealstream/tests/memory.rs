//! Peak memory of publish, grant and consume on a 1 GiB input stays under
//! 64 MiB (the reference needs about 4× the input). The size can be changed
//! with SEALSTREAM_MEMORY_TEST_BYTES.
//!
//! `package sign` and `package verify` stream too: 256 MiB of packages as
//! JSON lines and as one array (SEALSTREAM_PACKAGE_MEMORY_TEST_BYTES),
//! and the readings they were signed from, stay under 64 MiB as well.
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
    peak_kib_with(
        stdin_bytes.map(|n| vec!["--stdin-bytes".to_string(), n.to_string()]),
        args,
    )
}

/// [`peak_kib`] with the wrapper's options (`--stdin-file F`, `--stdout-null` …).
fn peak_kib_with(options: Option<Vec<String>>, args: &mut Command) -> u64 {
    let wrapper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/maxrss.py");
    let mut c = Command::new(python());
    c.arg(wrapper);
    c.args(options.unwrap_or_default());
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

/// Readings of `/sensor/gps` for `package sign`, at least `bytes` of them.
fn write_readings(path: &Path, bytes: u64) -> u64 {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let (mut written, mut i) = (0u64, 0u64);
    while written < bytes {
        let line = format!(
            "{{\"topic\":\"/sensor/gps\",\"capturedAt\":\"2026-11-21T10:{:02}:{:02}Z\",\"fields\":{{\"latitude\":52.{i},\"longitude\":13.405,\"speed\":{}}}}}\n",
            i / 60 % 60,
            i % 60,
            i % 17
        );
        out.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        i += 1;
    }
    out.flush().unwrap();
    i
}

#[test]
fn package_sign_and_verify_of_256_mib_stay_under_64_mib() {
    use std::io::Write;
    let wanted: u64 = std::env::var("SEALSTREAM_PACKAGE_MEMORY_TEST_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let key = t.join("machine.secp256k1.sk");
    std::fs::write(&key, common::agent::MACHINE_SK).unwrap();
    let rules = t.join("rules.json");
    std::fs::write(
        &rules,
        r#"{"topic": "/sensor/gps", "rules": [{"fieldPath": "latitude", "action": "anonymize", "anonymizeStrategy": "generalize"}, {"fieldPath": "speed", "action": "exclude"}]}"#,
    )
    .unwrap();
    let sign = |c: &mut Command| {
        c.args([
            "--quiet",
            "package",
            "sign",
            "--machine-did",
            DID,
            "--key-file",
        ])
        .arg(&key)
        .arg("--rules")
        .arg(&rules);
    };

    // Signing a quarter of the size (the readings are a third of their
    // packages' size): streamed, whatever goes in.
    let readings = t.join("readings.jsonl");
    write_readings(&readings, wanted / 4);
    let mut c = sealstream();
    sign(&mut c);
    let sign_kib = peak_kib_with(
        Some(vec![
            "--stdin-file".into(),
            readings.display().to_string(),
            "--stdout-null".into(),
        ]),
        &mut c,
    );

    // Packages to verify: a few thousand signed ones, repeated up to the size.
    let seed_readings = t.join("seed.jsonl");
    let seeds = write_readings(&seed_readings, 1 << 20);
    let mut c = sealstream();
    sign(&mut c);
    c.stdin(std::fs::File::open(&seed_readings).unwrap());
    let seed = run_ok(c, "package sign").stdout;
    let lines = t.join("packages.jsonl");
    let array = t.join("packages.json");
    let (mut count, mut bytes) = (0u64, 0u64);
    {
        let mut l = std::io::BufWriter::new(std::fs::File::create(&lines).unwrap());
        let mut a = std::io::BufWriter::new(std::fs::File::create(&array).unwrap());
        a.write_all(b"[\n").unwrap();
        while bytes < wanted {
            for line in seed.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if count > 0 {
                    a.write_all(b",\n").unwrap();
                }
                l.write_all(line).unwrap();
                l.write_all(b"\n").unwrap();
                a.write_all(line).unwrap();
                bytes += line.len() as u64 + 1;
                count += 1;
            }
        }
        a.write_all(b"\n]\n").unwrap();
        l.flush().unwrap();
        a.flush().unwrap();
    }
    assert_eq!(count % seeds, 0);
    let verify_kib = |input: &Path| {
        let mut c = sealstream();
        c.args(["--quiet", "package", "verify"]).arg(input);
        peak_kib(None, &mut c)
    };
    let lines_kib = verify_kib(&lines);
    let array_kib = verify_kib(&array);
    eprintln!(
        "peak RSS: package sign of {} MiB of readings {sign_kib} KiB; package verify of {count} packages ({} MiB) as JSON lines {lines_kib} KiB, as an array {array_kib} KiB",
        (wanted / 4) >> 20,
        bytes >> 20
    );
    for (what, kib) in [
        ("package sign", sign_kib),
        ("package verify (JSON lines)", lines_kib),
        ("package verify (array)", array_kib),
    ] {
        assert!(
            kib < LIMIT_KIB,
            "{what} peaked at {kib} KiB, over {LIMIT_KIB} KiB"
        );
    }
}
