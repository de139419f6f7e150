//! The object-store sink against a real S3 server: moto's `moto_server`, from
//! `<repo>/.venv` (`scripts/setup-test-peers` installs it).
//!
//! The sink reads its endpoint and credentials from the process environment,
//! which is global, so everything runs in one test function.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod common;

use common::free_port;
use common::moto::{set_s3_env, MotoServer, SECRET_ACCESS_KEY};
use sealstream_agent::config::ObjectStoreLocation;
use sealstream_agent::sink::{ObjectStoreDestination, Sink};

fn s3(bucket: &str, prefix: &str) -> (String, ObjectStoreLocation) {
    let url = if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    };
    let location = ObjectStoreLocation::S3 {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    };
    (url, location)
}

fn assert_clean_error(message: &str, url: &str, key: &str) {
    assert!(
        message.contains(url),
        "error does not name {url}: {message}"
    );
    assert!(
        message.contains(key),
        "error does not name {key}: {message}"
    );
    assert!(
        !message.contains(SECRET_ACCESS_KEY),
        "error leaks the secret access key: {message}"
    );
}

#[test]
fn object_store_sink_against_moto() {
    let moto = MotoServer::start();
    // No AWS_ALLOW_HTTP and no region: an http:// endpoint and the default
    // region must work as they are.
    set_s3_env(&moto.base);
    moto.create_bucket("chains");
    moto.create_bucket("flat");

    // Objects land under the prefix, byte for byte; a second put replaces.
    let (url, location) = s3("chains", "fleet/robot-7");
    let mut sink = ObjectStoreDestination::open(&url, &location).unwrap();
    assert_eq!(sink.describe(), "object store s3://chains/fleet/robot-7");
    let bin: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let json = br#"{"chunk_index": 0}"#.to_vec();
    sink.put("t/chunk-0.bin", b"to be replaced").unwrap();
    sink.put("t/chunk-0.bin", &bin).unwrap();
    sink.put("t/chunk-0.json", &json).unwrap();
    sink.put("t/empty", b"").unwrap();
    let expected = BTreeMap::from([
        ("fleet/robot-7/t/chunk-0.bin".to_owned(), bin.clone()),
        ("fleet/robot-7/t/chunk-0.json".to_owned(), json),
        ("fleet/robot-7/t/empty".to_owned(), Vec::new()),
    ]);
    assert!(moto.objects("chains") == expected, "objects differ");

    // An empty prefix puts keys at the bucket's root (no leading `/`).
    let (url, location) = s3("flat", "");
    let mut sink = ObjectStoreDestination::open(&url, &location).unwrap();
    sink.put("t/dataset-0-9.json", b"[]").unwrap();
    assert_eq!(
        moto.objects("flat"),
        BTreeMap::from([("t/dataset-0-9.json".to_owned(), b"[]".to_vec())])
    );

    // A missing bucket: the server's refusal, naming URL and key, no secret.
    let (url, location) = s3("no-such-bucket", "p");
    let mut sink = ObjectStoreDestination::open(&url, &location).unwrap();
    let err = sink.put("t/chunk-1.bin", b"x").unwrap_err();
    assert_clean_error(&err.to_string(), &url, "t/chunk-1.bin");
    assert_clean_error(&format!("{err:?}"), &url, "t/chunk-1.bin");
    let message = err.to_string();
    assert!(
        message.contains("NoSuchBucket") && !message.contains('\n'),
        "{message}"
    );
    eprintln!("missing bucket: {message}");

    // AWS_ALLOW_HTTP, when set, decides over the http:// endpoint.
    std::env::set_var("AWS_ALLOW_HTTP", "false");
    let (url, location) = s3("chains", "fleet/robot-7");
    let mut sink = ObjectStoreDestination::open(&url, &location).unwrap();
    let err = sink.put("t/chunk-2.bin", b"x").unwrap_err().to_string();
    assert_clean_error(&err, &url, "t/chunk-2.bin");
    eprintln!("AWS_ALLOW_HTTP=false: {err}");
    assert!(!moto
        .objects("chains")
        .contains_key("fleet/robot-7/t/chunk-2.bin"));
    std::env::remove_var("AWS_ALLOW_HTTP");

    // Nothing listening: `put` fails soon (few retries, short backoff).
    let closed = format!("http://127.0.0.1:{}", free_port());
    set_s3_env(&closed);
    let (url, location) = s3("chains", "fleet/robot-7");
    let mut sink = ObjectStoreDestination::open(&url, &location).unwrap();
    let started = Instant::now();
    let err = sink.put("t/chunk-3.bin", &bin).unwrap_err().to_string();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(20),
        "put to a closed port took {elapsed:?}: {err}"
    );
    assert_clean_error(&err, &url, "t/chunk-3.bin");
    eprintln!("closed port after {elapsed:?}: {err}");
}
