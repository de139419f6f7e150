//! `sealstream agent check` on the documented Data Event Map, and on a broken one.

mod common;

use std::path::Path;

use common::*;

fn setup(dir: &Path) {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let example = repo_root().join("docs/examples/data-event-map.yaml");
    std::fs::copy(example, dir.join("map.yaml")).unwrap();
    std::fs::write(
        dir.join("keys/machine.secp256k1.sk"),
        "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761",
    )
    .unwrap();
    std::fs::copy(
        keyfile("chain.ed25519.sk"),
        dir.join("keys/chain.ed25519.sk"),
    )
    .unwrap();
    std::fs::write(
        dir.join("keys/field.aes256.key"),
        "c84fcf398735bf46fad738fb45ffa606d05e9f01c5886c959abf79ef4e10d01c",
    )
    .unwrap();
}

#[test]
fn the_documented_example_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    let mut c = sealstream();
    c.args(["agent", "check", "--json", "--config"])
        .arg(tmp.path().join("map.yaml"));
    let out = run_ok(c, "agent check");
    let v = sealstream_core::json::parse(&out.stdout).unwrap();
    assert_eq!(
        v.as_object().unwrap()["valid"],
        sealstream_core::json::Value::Bool(true)
    );
}

#[test]
fn every_problem_is_reported_with_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    let text = std::fs::read_to_string(tmp.path().join("map.yaml")).unwrap();
    let broken = text
        .replacen(
            "anonymizeStrategy: generalize",
            "anonymizeStrateg: generalize",
            1,
        )
        .replacen("maxAge: 5s", "maxAge: 5", 1);
    std::fs::write(tmp.path().join("bad.yaml"), broken).unwrap();
    let mut c = sealstream();
    c.current_dir(tmp.path())
        .args(["agent", "check", "--config", "bad.yaml"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml: line "), "{stderr}");
    assert!(
        stderr.contains(": chunking.maxAge: expected a duration"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains(": topics[0].rules[0].anonymizeStrategy: required when action is anonymize"),
        "{stderr}"
    );
    assert!(
        stderr.contains("did you mean anonymizeStrategy?"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("error: bad.yaml: "),
        "{stderr}"
    );
}
