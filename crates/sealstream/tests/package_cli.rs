//! `sealstream package sign` and `package verify` as streams: batches signed
//! and verified on every core come out in input order, with sequence numbers
//! handed out in order; JSON lines, arrays and single documents; invalid
//! packages named by their line or index. (Peak memory: `memory.rs`.)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::agent::MACHINE_SK;
use common::*;
use sealstream_core::json::{self, Value};

fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("machine.secp256k1.sk");
    std::fs::write(&key, MACHINE_SK).unwrap();
    let rules = dir.join("rules.json");
    std::fs::write(
        &rules,
        r#"{"topic": "/sensor/gps", "rules": [{"fieldPath": "lat", "action": "anonymize", "anonymizeStrategy": "generalize"}]}"#,
    )
    .unwrap();
    (key, rules)
}

fn readings(n: usize, explicit: Option<(usize, u64)>, broken: Option<usize>) -> String {
    let mut text = String::new();
    for i in 1..=n {
        if broken == Some(i) {
            text.push_str("this line is not JSON\n");
            continue;
        }
        let seq = match explicit {
            Some((line, seq)) if line == i => format!(",\"sequenceNumber\":{seq}"),
            _ => String::new(),
        };
        text.push_str(&format!(
            "{{\"topic\":\"/sensor/gps\",\"capturedAt\":\"2026-11-21T10:00:{:02}Z\",\"fields\":{{\"lat\":52.{i},\"i\":{i},\"note\":\"sequenceNumber in a field\"}}{seq}}}\n",
            i % 60
        ));
    }
    text
}

fn sign(dir: &Path, input: &str) -> Output {
    let (key, rules) = setup(dir);
    let file = dir.join("readings.jsonl");
    std::fs::write(&file, input).unwrap();
    sealstream()
        .args(["package", "sign", "--machine-did", DID, "--key-file"])
        .arg(key)
        .arg("--rules")
        .arg(rules)
        .stdin(Stdio::from(std::fs::File::open(file).unwrap()))
        .output()
        .unwrap()
}

fn verify(args: &[&str], file: &Path) -> Output {
    let mut c = sealstream();
    c.args(["package", "verify"]).args(args).arg(file);
    c.output().unwrap()
}

fn sequence(line: &str) -> u64 {
    json::parse(line.as_bytes())
        .unwrap()
        .get("sequenceNumber")
        .and_then(Value::as_number)
        .and_then(|n| n.as_u64())
        .unwrap()
}

#[test]
fn signing_keeps_input_order_and_sequence_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 5000;
    let out = sign(tmp.path(), &readings(n, Some((2000, 10_000)), None));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("signed {n} packages as {DID}")),
        "{stderr}"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), n);
    for (k, line) in lines.iter().enumerate() {
        let i = k + 1;
        let v = json::parse(line.as_bytes()).unwrap();
        let payload = v.get("payload").unwrap();
        assert_eq!(
            payload
                .get("i")
                .and_then(Value::as_number)
                .and_then(|n| n.as_u64()),
            Some(i as u64),
            "line {i} out of order"
        );
        let expected = if i < 2000 {
            k as u64
        } else {
            10_000 + (i - 2000) as u64
        };
        assert_eq!(sequence(line), expected, "line {i}");
    }
    // Every one verifies, reported line by line in order.
    let file = tmp.path().join("packages.jsonl");
    std::fs::write(&file, &text).unwrap();
    let out = verify(&["--json"], &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = String::from_utf8(out.stdout).unwrap();
    let ats: Vec<String> = reports
        .lines()
        .map(|l| {
            let v = json::parse(l.as_bytes()).unwrap();
            assert_eq!(v.get("valid"), Some(&Value::Bool(true)), "{l}");
            v.get("at").and_then(Value::as_str).unwrap().to_string()
        })
        .collect();
    let expected: Vec<String> = (1..=n)
        .map(|i| format!("{} line {i}", file.display()))
        .collect();
    assert_eq!(ats, expected);
}

#[test]
fn a_bad_line_stops_signing_after_the_lines_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = sign(tmp.path(), &readings(3000, None, Some(1500)));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: stdin line 1500: "), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1499);
    assert_eq!(sequence(text.lines().last().unwrap()), 1498);
}

#[test]
fn a_line_missing_a_field_is_refused_naming_the_field() {
    let good =
        r#"{"topic":"/sensor/gps","capturedAt":"2026-11-21T10:00:00Z","fields":{"lat":52.1}}"#;
    for (line, expected) in [
        (r#"[1, 2]"#.to_string(), "expected a JSON object"),
        (
            good.replace(r#""topic":"/sensor/gps","#, ""),
            "topic: required string",
        ),
        (
            good.replace(r#""2026-11-21T10:00:00Z""#, "7"),
            "capturedAt: required string",
        ),
        (
            good.replace(r#"{"lat":52.1}"#, "[]"),
            "fields: required object",
        ),
        (
            good.replace(r#"}}"#, r#"},"sequenceNumber":-1}"#),
            "sequenceNumber: expected a non-negative integer",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = sign(tmp.path(), &format!("{good}\n{line}\n"));
        assert_eq!(out.status.code(), Some(1), "{line}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with(&format!("error: stdin line 2: {expected}")),
            "{line}: {stderr}"
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
    }
}

#[test]
fn invalid_packages_are_named_by_line_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 5000;
    let out = sign(tmp.path(), &readings(n, None, None));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[1233] = lines[1233].replace("\"i\":1234", "\"i\":4321");
    lines[2499] = "{not json".into();
    let file = tmp.path().join("packages.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = verify(&[], &file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let invalid: Vec<&str> = stderr.lines().filter(|l| l.contains("INVALID")).collect();
    let f = file.display();
    assert_eq!(invalid.len(), 2, "{stderr}");
    assert!(
        invalid[0].starts_with(&format!("{f} line 1234: INVALID: Recovered signer")),
        "{stderr}"
    );
    assert!(
        invalid[1].starts_with(&format!("{f} line 2500: INVALID: not JSON")),
        "{stderr}"
    );
    let tail: Vec<&str> = stderr.lines().rev().take(2).collect();
    assert_eq!(tail[0], "error: 2 of 5000 packages are invalid");
    // (and the rate, when it took a second or more)
    assert!(
        tail[1].starts_with("4998 of 5000 packages valid"),
        "{stderr}"
    );
    // Valid ones are listed too (stderr is not a terminal here), in order.
    let valid: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(": valid, signed by"))
        .collect();
    assert_eq!(valid.len(), n - 2);
    assert!(valid[1232].starts_with(&format!("{f} line 1233: ")));
    assert!(valid[1233].starts_with(&format!("{f} line 1235: ")));
}

#[test]
fn arrays_and_single_documents_are_read_as_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let out = sign(tmp.path(), &readings(600, None, None));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let packages: Vec<&str> = text.lines().collect();

    // An array over many lines, elements pretty-printed.
    let pretty: Vec<String> = packages
        .iter()
        .map(|p| json::write::to_python_pretty(&json::parse(p.as_bytes()).unwrap()))
        .collect();
    let array = tmp.path().join("array.json");
    std::fs::write(&array, format!("[\n{}\n]\n", pretty.join(",\n"))).unwrap();
    let out = verify(&["--json"], &array);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ats: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            json::parse(l.as_bytes())
                .unwrap()
                .get("at")
                .and_then(Value::as_str)
                .unwrap()
                .to_string()
        })
        .collect();
    let expected: Vec<String> = (0..600)
        .map(|i| format!("{}[{i}]", array.display()))
        .collect();
    assert_eq!(ats, expected);

    // One pretty-printed document, from standard input.
    let one = tmp.path().join("one.json");
    std::fs::write(&one, &pretty[7]).unwrap();
    let out = Command::new(sealstream().get_program())
        .args(["package", "verify", "-"])
        .stdin(Stdio::from(std::fs::File::open(&one).unwrap()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr,
        format!("stdin: valid, signed by {DID} (python canonical form)\n1 of 1 packages valid\n")
    );

    // A broken array: the elements before the break, then the break.
    let broken = tmp.path().join("broken.json");
    std::fs::write(&broken, format!("[{},,{}]", packages[0], packages[1])).unwrap();
    let out = verify(&[], &broken);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}[1]: INVALID: not a JSON array: ",
            broken.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 2 packages valid"), "{stderr}");
}
