//! The real `peaqos stream` CLI and ours, in every combination: our publish →
//! their grant and consume; their publish → our grant and consume; their
//! publish, our grant, their consume; our publish, their grant, our consume.
//! Bytes must be equal in every case.

mod common;

use std::path::Path;

use common::*;

fn case(len: usize, chunk_size: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let input = input_of(len, (len % 251) as u8);
    let input_path = t.join("input.bin");
    std::fs::write(&input_path, &input).unwrap();
    let name = format!("len {len}, chunk size {chunk_size}");

    // Both publish the same input.
    let ours = t.join("ours");
    let mut c = sealstream();
    publish_args(&mut c, &input_path, &ours, chunk_size);
    run_ok(c, &format!("{name}: our publish"));
    let theirs = t.join("theirs");
    let mut c = peaqos();
    c.arg("stream");
    publish_args(&mut c, &input_path, &theirs, chunk_size);
    run_ok(c, &format!("{name}: their publish"));
    let expected_chunks = len.div_ceil(chunk_size).max(1);
    for dir in [&ours, &theirs] {
        let n = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".bin")
            })
            .count();
        assert_eq!(n, expected_chunks, "{name}: chunks in {}", dir.display());
    }

    // Grants: theirs on our chain, ours on their chain.
    let their_grant = t.join("their-grant");
    let mut c = peaqos();
    c.arg("stream");
    grant_args(&mut c, &ours, &their_grant, 2048);
    run_ok(c, &format!("{name}: their grant on our chain"));
    let our_grant = t.join("our-grant");
    let mut c = sealstream();
    grant_args(&mut c, &theirs, &our_grant, 2048);
    run_ok(c, &format!("{name}: our grant on their chain"));

    let check = |out: &Path, what: &str| {
        assert_eq!(std::fs::read(out).unwrap(), input, "{name}: {what}");
    };
    // Our publish → their grant → their consume.
    let out = t.join("1.bin");
    let mut c = peaqos();
    c.arg("stream");
    consume_args(&mut c, &ours, &their_grant, &out);
    run_ok(c, &format!("{name}: their consume of our chain"));
    check(&out, "our publish, their grant, their consume");
    // Their publish → our grant → our consume.
    let out = t.join("2.bin");
    let mut c = sealstream();
    consume_args(&mut c, &theirs, &our_grant, &out);
    run_ok(c, &format!("{name}: our consume of their chain"));
    check(&out, "their publish, our grant, our consume");
    // Their publish, our grant, their consume.
    let out = t.join("3.bin");
    let mut c = peaqos();
    c.arg("stream");
    consume_args(&mut c, &theirs, &our_grant, &out);
    run_ok(c, &format!("{name}: their consume with our grant"));
    check(&out, "their publish, our grant, their consume");
    // Our publish, their grant, our consume.
    let out = t.join("4.bin");
    let mut c = sealstream();
    consume_args(&mut c, &ours, &their_grant, &out);
    run_ok(c, &format!("{name}: our consume with their grant"));
    check(&out, "our publish, their grant, our consume");

    // Our verify accepts their chain; the manifests agree on the source hash.
    let mut c = sealstream();
    c.args(["verify", "--chunk-dir"]).arg(&theirs);
    run_ok(c, &format!("{name}: our verify of their chain"));
    let hash = |d: &Path| {
        let v =
            sealstream_core::json::parse(&std::fs::read(d.join("manifest.json")).unwrap()).unwrap();
        v.as_object().unwrap()["sourceHash"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(hash(&ours), hash(&theirs), "{name}: sourceHash");
}

#[test]
fn empty_input() {
    case(0, 4096);
}

#[test]
fn exact_multiple_of_the_chunk_size() {
    case(3 * 4096, 4096);
}

#[test]
fn one_byte_chunks() {
    case(37, 1);
}

#[test]
fn uneven_input_with_several_access_files() {
    case(100_003, 4096);
}

#[test]
fn download_url_with_manifest_listing_and_zip() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let input = input_of(50_000, 9);
    std::fs::write(t.join("input.bin"), &input).unwrap();
    let chain = t.join("chain");
    let mut c = sealstream();
    publish_args(&mut c, t.join("input.bin"), &chain, 8192);
    run_ok(c, "publish");
    let access = t.join("access");
    let mut c = sealstream();
    grant_args(&mut c, &chain, &access, 512_000);
    run_ok(c, "grant");

    // A release directory whose manifest.json lists flat file names.
    let release = t.join("srv/release");
    std::fs::create_dir_all(&release).unwrap();
    let mut names = Vec::new();
    for dir in [&chain, &access] {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if name == "manifest.json" {
                continue;
            }
            std::fs::copy(e.path(), release.join(&name)).unwrap();
            names.push(name);
        }
    }
    let mut manifest =
        sealstream_core::json::parse(&std::fs::read(chain.join("manifest.json")).unwrap()).unwrap();
    if let sealstream_core::json::Value::Object(m) = &mut manifest {
        m.insert(
            "files".into(),
            sealstream_core::json::Value::Array(names.iter().map(|n| n.as_str().into()).collect()),
        );
    }
    std::fs::write(
        release.join("manifest.json"),
        sealstream_core::json::write::to_python_pretty(&manifest),
    )
    .unwrap();

    // A ZIP of the same files (no manifest listing), at another URL.
    let zip_path = t.join("srv/bundle");
    {
        let f = std::fs::File::create(&zip_path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        for name in &names {
            z.start_file(
                format!("pkg/{name}"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            std::io::Write::write_all(&mut z, &std::fs::read(release.join(name)).unwrap()).unwrap();
        }
        z.finish().unwrap();
    }
    let base = serve_dir(t.join("srv"));

    for (url, label) in [
        (format!("{base}/release"), "manifest listing"),
        (format!("{base}/bundle"), "zip"),
    ] {
        for ours in [true, false] {
            let out = t.join(format!("out-{label}-{ours}.bin"));
            let mut c = if ours { sealstream() } else { peaqos() };
            if !ours {
                c.arg("stream");
            }
            c.args(["consume", "--download-url", &url, "--buyer-id", BUYER_ID]);
            c.arg("--buyer-private-key-file")
                .arg(keyfile("buyer.x25519.sk"))
                .arg("--output")
                .arg(&out);
            run_ok(
                c,
                &format!(
                    "{} consume --download-url ({label})",
                    if ours { "our" } else { "their" }
                ),
            );
            assert_eq!(std::fs::read(&out).unwrap(), input, "{label}");
        }
    }
}

#[test]
fn publish_from_stdin_and_url() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let input = input_of(30_000, 1);
    std::fs::create_dir_all(t.join("srv")).unwrap();
    std::fs::write(t.join("srv/data.bin"), &input).unwrap();
    let base = serve_dir(t.join("srv"));

    let from_url = t.join("url");
    let mut c = sealstream();
    publish_args(&mut c, format!("{base}/data.bin"), &from_url, 4096);
    run_ok(c, "publish from URL");

    let from_stdin = t.join("stdin");
    let mut c = sealstream();
    publish_args(&mut c, "-", &from_stdin, 4096);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &input).unwrap();
    drop(child.stdin.take());
    assert!(child.wait_with_output().unwrap().status.success());

    // Their grant and consume on both.
    for chain in [&from_url, &from_stdin] {
        let access = chain.with_extension("access");
        let mut c = peaqos();
        c.arg("stream");
        grant_args(&mut c, chain, &access, 512_000);
        run_ok(c, "their grant");
        let out = chain.with_extension("out");
        let mut c = peaqos();
        c.arg("stream");
        consume_args(&mut c, chain, &access, &out);
        run_ok(c, "their consume");
        assert_eq!(std::fs::read(&out).unwrap(), input);
    }
}
