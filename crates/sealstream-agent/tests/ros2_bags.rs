//! ROS 2 bags written by third-party tools (`rosbags`, `mcap-ros2-support`)
//! decode to exactly the values the tools were given.
//!
//! `tests/support/make_bags.py` writes the bags and an `expected.json`; it runs
//! under `SEALSTREAM_REF_PYTHON` or `<repo>/.venv/bin/python`, which needs
//! `pip install rosbags mcap-ros2-support`.

use std::path::Path;
use std::process::Command;

use sealstream_agent::mcap_source::{McapSource, Message};
use sealstream_core::json::{self, Value};
use sealstream_testkit::reference_python;

/// Run make_bags.py into a fresh temporary directory.
fn make_bags() -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/make_bags.py");
    let output = Command::new(reference_python())
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("run make_bags.py");
    assert!(
        output.status.success(),
        "make_bags.py failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = std::fs::read(dir.path().join("expected.json")).unwrap();
    let expected = json::parse(&expected).unwrap();
    (dir, expected)
}

/// Compare exactly: integers by decimal text, floats by value, objects in order.
fn assert_same(path: &str, got: &Value, want: &Value) {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => {
            assert_eq!(g.is_int(), w.is_int(), "{path}: {g:?} vs {w:?}");
            if w.is_int() {
                assert_eq!(g.as_int_text(), w.as_int_text(), "{path}");
            } else {
                assert_eq!(g.as_f64(), w.as_f64(), "{path}");
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{path}: array length");
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert_same(&format!("{path}[{i}]"), g, w);
            }
        }
        (Value::Object(g), Value::Object(w)) => {
            let gk: Vec<&String> = g.keys().collect();
            let wk: Vec<&String> = w.keys().collect();
            assert_eq!(gk, wk, "{path}: keys");
            for (k, wv) in w {
                assert_same(&format!("{path}.{k}"), &g[k], wv);
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

fn check(source: McapSource, expected: &Value) -> usize {
    let messages: Vec<Message> = source.map(|m| m.expect("file-level error")).collect();
    let expected = expected.as_array().unwrap();
    let topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        messages.len(),
        expected.len(),
        "message count; got {topics:?}"
    );
    let mut last = 0;
    for (i, (m, e)) in messages.iter().zip(expected).enumerate() {
        let e = e.as_object().unwrap();
        assert_eq!(Some(m.topic.as_str()), e["topic"].as_str(), "message {i}");
        let want_time = e["log_time_ns"].as_number().unwrap().as_u64().unwrap();
        assert_eq!(m.log_time_ns, want_time, "message {i} log time");
        assert!(m.log_time_ns >= last, "log-time order");
        last = m.log_time_ns;
        assert_eq!(m.sequence, i as u64, "index within the file");
        let fields = m
            .fields
            .as_ref()
            .unwrap_or_else(|err| panic!("message {i} on {}: {err}", m.topic));
        assert_same(
            &format!("{}#{i}", m.topic),
            &Value::Object(fields.clone()),
            &e["fields"],
        );
    }
    messages.len()
}

#[test]
fn third_party_bags_decode_exactly() {
    let (dir, expected) = make_bags();
    let expected = expected.as_object().unwrap();

    // (a) rosbag2 directory written by rosbags.
    let source = McapSource::open(dir.path().join("rosbag2")).unwrap();
    assert_eq!(source.paths().len(), 1);
    let n = check(source, &expected["rosbag2"]);
    assert!(n >= 15, "{n}");

    // The .mcap inside the directory also opens on its own.
    let inner = McapSource::open(dir.path().join("rosbag2/rosbag2.mcap")).unwrap();
    check(inner, &expected["rosbag2"]);

    // (b) single .mcap written by mcap-ros2-support, with a json channel.
    let source = McapSource::open(dir.path().join("ros2.mcap")).unwrap();
    let n = check(source, &expected["mcap"]);
    assert!(n >= 17, "{n}");
}

#[test]
fn directory_with_several_files_merges_by_log_time() {
    let (dir, expected) = make_bags();
    let expected = expected.as_object().unwrap();
    // Put the two files in one rosbag2-like directory without metadata.yaml.
    let multi = dir.path().join("multi");
    std::fs::create_dir(&multi).unwrap();
    std::fs::copy(
        dir.path().join("rosbag2/rosbag2.mcap"),
        multi.join("a_0.mcap"),
    )
    .unwrap();
    std::fs::copy(dir.path().join("ros2.mcap"), multi.join("b_1.mcap")).unwrap();
    let source = McapSource::open(&multi).unwrap();
    assert_eq!(source.paths().len(), 2);
    let messages: Vec<Message> = source.map(|m| m.unwrap()).collect();
    let total =
        expected["rosbag2"].as_array().unwrap().len() + expected["mcap"].as_array().unwrap().len();
    assert_eq!(messages.len(), total);
    assert!(messages
        .windows(2)
        .all(|w| w[0].log_time_ns <= w[1].log_time_ns));
    assert!(messages.iter().all(|m| m.fields.is_ok()));
}

#[test]
fn corrupted_payload_yields_error_for_that_message_and_continues() {
    let (dir, expected) = make_bags();
    // An uncompressed copy is easier to corrupt: rewrite the bag's message
    // records with the mcap crate, truncating the NavSatFix payloads.
    let src = std::fs::read(dir.path().join("rosbag2/rosbag2.mcap")).unwrap();
    let out_path = dir.path().join("broken.mcap");
    {
        let file = std::io::BufWriter::new(std::fs::File::create(&out_path).unwrap());
        let mut writer = mcap::WriteOptions::new()
            .compression(None)
            .create(file)
            .unwrap();
        for message in mcap::MessageStream::new(&src).unwrap() {
            let mut message = message.unwrap();
            if message.channel.topic == "/gps" {
                let cut = message.data.len() / 2;
                message.data = message.data[..cut].to_vec().into();
            }
            writer.write(&message).unwrap();
        }
        writer.finish().unwrap();
    }
    let messages: Vec<Message> = McapSource::open(&out_path)
        .unwrap()
        .map(|m| m.unwrap())
        .collect();
    assert_eq!(
        messages.len(),
        expected.as_object().unwrap()["rosbag2"]
            .as_array()
            .unwrap()
            .len()
    );
    let mut bad = 0;
    for m in &messages {
        match (&m.fields, m.topic.as_str()) {
            (Err(e), "/gps") => {
                bad += 1;
                let text = e.to_string();
                assert!(text.contains("/gps"), "{text}");
                assert!(text.contains(&format!("message {}", m.sequence)), "{text}");
                assert!(text.contains("at byte"), "{text}");
            }
            (Ok(_), topic) => assert_ne!(topic, "/gps"),
            (Err(e), _) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(bad, 2);
}

#[test]
fn unindexed_file_is_read_whole_and_sorted() {
    let (dir, expected) = make_bags();
    let expected = &expected.as_object().unwrap()["rosbag2"];
    let src = std::fs::read(dir.path().join("rosbag2/rosbag2.mcap")).unwrap();
    for (name, chunks, summary) in [("plain.mcap", false, true), ("nosummary.mcap", true, false)] {
        let out_path = dir.path().join(name);
        let file = std::io::BufWriter::new(std::fs::File::create(&out_path).unwrap());
        let mut writer = mcap::WriteOptions::new()
            .use_chunks(chunks)
            .emit_summary_records(summary)
            .emit_chunk_indexes(summary)
            .emit_message_indexes(summary)
            .emit_summary_offsets(summary)
            .create(file)
            .unwrap();
        // Written in file order, which is not log-time order.
        for message in mcap::MessageStream::new(&src).unwrap() {
            writer.write(&message.unwrap()).unwrap();
        }
        writer.finish().unwrap();
        check(McapSource::open(&out_path).unwrap(), expected);
    }
}

#[test]
fn missing_and_empty_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(McapSource::open(dir.path().join("nope.mcap")).is_err());
    let err = McapSource::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("no .mcap files"), "{err}");
    std::fs::write(dir.path().join("junk.mcap"), b"not an mcap file").unwrap();
    // A file that is not MCAP: an error, not a panic (at open or while iterating).
    if let Ok(source) = McapSource::open(dir.path().join("junk.mcap")) {
        assert!(source.into_iter().any(|m| m.is_err()));
    }
}
