//! Live subscriptions end to end, every party a process of its own: the
//! market (`market serve`), the machine (`market upload` of a published
//! chain, part by part), the owner's `market grant-daemon --follow`, and two
//! buyers on the invoice rail running `sealstream follow`. One subscription
//! is revoked mid-stream: its follower writes exactly the chunks accepted
//! before the revocation and exits 0 once the feed ends; the other writes
//! the whole chain, byte for byte, and survives a restart in the middle
//! (resuming after the last chunk it wrote, writing none twice). The
//! chain's plaintext is signed data packages (JSON lines cut across chunk
//! boundaries); the machine uploads a signed dataset manifest per window
//! (chunks 0–2, 3–5): the followers check each one ("window N..M verified"),
//! and a third buyer follows with `--format jsonl`, writing the packages.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::live::{follow, market_cmd, recorded, spawn, stdout_of, subscribe, wait_for};
use common::market::{owner_with_machine, Market};
use common::*;
use sealstream_core::chunk::{sha256_hex, ChunkEnvelope};
use sealstream_core::dataset::{DatasetBuilder, DatasetInfo};
use sealstream_core::keys::{MachineSigningKey, RecipientSecretKey};
use sealstream_testkit::fixture::{chain_signing_key, machine_signing_key, MACHINE_SK};

const CHUNK: usize = 1000;
const CHUNKS: usize = 6;
const TOPIC: &str = "/gps/fix";

/// Copies chunks `range` of the published chain in `from` to `to`.
fn copy_chunks(from: &Path, to: &Path, range: std::ops::Range<usize>) {
    std::fs::create_dir_all(to).unwrap();
    for i in range {
        for ext in ["json", "bin"] {
            let name = format!("chunk-{i}.{ext}");
            std::fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
    }
}

fn upload(server: &str, dir: &Path, machine_key: &Path) {
    let mut c = sealstream();
    c.args(["market", "upload", "--server", server, "--topic", TOPIC])
        .arg("--chunk-dir")
        .arg(dir)
        .arg("--key-file")
        .arg(machine_key);
    run_ok(c, "market upload");
}

/// Signed data packages, one compact JSON line each, `len` bytes at most
/// and more than `len - CHUNK`.
fn package_lines(len: usize) -> Vec<u8> {
    let key = machine_signing_key();
    let signer = sealstream_core::package::PackageSigner::new(key, DID, None, None).unwrap();
    let rules = sealstream_core::rules::TopicRules::new(TOPIC, Vec::new());
    let mut out = Vec::new();
    for i in 0.. {
        let mut fields = sealstream_core::json::Map::new();
        fields.insert("lat".into(), sealstream_core::json::Value::from(48 + i % 3));
        fields.insert("seq".into(), sealstream_core::json::Value::from(i));
        let payload = sealstream_core::package::UnsignedPayload {
            topic: TOPIC.into(),
            fields,
            captured_at: "2026-12-05T09:00:00Z".into(),
        };
        let line = signer
            .build(&payload, &rules, "gps.v1", i)
            .unwrap()
            .to_json_line()
            + "\n";
        if out.len() + line.len() > len {
            break;
        }
        out.extend(line.into_bytes());
    }
    assert!(out.len() > len - CHUNK);
    out
}

/// The machine signs the manifest of chunks `range` of the chain in `dir`
/// (as the agent does per window) and uploads it.
fn upload_window(
    market: &Market,
    dir: &Path,
    input: &[u8],
    range: std::ops::RangeInclusive<usize>,
) {
    let mut b = DatasetBuilder::new();
    for i in range.clone() {
        let bytes = std::fs::read(dir.join(format!("chunk-{i}.json"))).unwrap();
        b.push(&ChunkEnvelope::parse(&bytes).unwrap()).unwrap();
    }
    let end = ((range.end() + 1) * CHUNK).min(input.len());
    let mut m = b
        .finish(DatasetInfo {
            topic: Some(TOPIC.into()),
            source_hash: sha256_hex(&input[range.start() * CHUNK..end]),
            ..DatasetInfo::default()
        })
        .unwrap();
    m.sign_eip191(&machine_signing_key()).unwrap();
    m.sign_ed25519(&chain_signing_key()).unwrap();
    let token = market.sign_in(&machine_signing_key());
    let body = format!("{{\"manifest\": {}}}", m.to_pretty_json());
    let (status, answer) = market.call("POST", "/v1/datasets", Some(&token), Some(&body));
    assert_eq!(status, 201, "{answer:?}");
}

fn log_has(log: &Path, text: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|l| l.contains(text))
}

#[test]
fn two_followers_one_revoked_mid_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let market = Market::start(&t.join("market"));
    let server = market.base.as_str();
    let (owner_key, _, _) = owner_with_machine(&market);
    let owner_sk = t.join("owner.sk");
    std::fs::write(&owner_sk, owner_key.to_hex_secret()).unwrap();
    let machine_sk = t.join("machine.sk");
    std::fs::write(&machine_sk, MACHINE_SK).unwrap();

    // The chain the machine records, published whole, uploaded in parts.
    let input = package_lines(CHUNK * CHUNKS);
    std::fs::write(t.join("input.bin"), &input).unwrap();
    let mut publish = sealstream();
    publish_args(&mut publish, t.join("input.bin"), &t.join("chain"), CHUNK);
    run_ok(publish, "publish");

    // The owner's subscription listing; two buyers subscribe, the seller
    // marks both first periods paid.
    let mut create = market_cmd(server, &owner_sk, &["listing", "create", "--publish"]);
    create
        .arg("--listing")
        .arg(repo_root().join("docs/examples/listing-subscription.json"))
        .args(["--machine-did", DID]);
    let listing = stdout_of(create, "listing create");
    let mut buyers = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let key = t.join(format!("{name}.sk"));
        std::fs::write(&key, MachineSigningKey::generate().to_hex_secret()).unwrap();
        let x25519 = t.join(format!("{name}.x25519.sk"));
        std::fs::write(&x25519, RecipientSecretKey::generate().to_hex_secret()).unwrap();
        let sub = subscribe(server, &key, &x25519, &listing, Some(&owner_sk));
        buyers.push((key, x25519, sub, t.join(format!("{name}.out"))));
    }
    let (alice, bob, carol) = (&buyers[0], &buyers[1], &buyers[2]);

    // The granter and both followers run from now on.
    let mut daemon = sealstream();
    daemon
        .args([
            "market",
            "grant-daemon",
            "--follow",
            "--interval",
            "3600",
            "--server",
            server,
        ])
        .arg("--key-file")
        .arg(&owner_sk)
        .arg("--owner-private-key-file")
        .arg(keyfile("owner.x25519.sk"));
    let daemon_log = t.join("daemon.log");
    let _daemon = spawn(daemon, &daemon_log);
    let (alice_log, bob_log) = (t.join("alice.log"), t.join("bob.log"));
    let mut alice_follow = spawn(
        follow(server, &alice.0, &alice.2, &[&alice.1], &alice.3),
        &alice_log,
    );
    let mut bob_follow = spawn(follow(server, &bob.0, &bob.2, &[&bob.1], &bob.3), &bob_log);
    let carol_log = t.join("carol.log");
    let mut carol_follow = follow(server, &carol.0, &carol.2, &[&carol.1], &carol.3);
    carol_follow.args(["--format", "jsonl"]);
    let _carol_follow = spawn(carol_follow, &carol_log);
    let logs = [daemon_log.as_path(), &alice_log, &bob_log, &carol_log];

    // Chunks 0 to 2 arrive: both get them.
    let part = t.join("part");
    // The daemon's passes are an hour apart (--interval 3600), but it
    // long-polls the pending list: the server wakes it when the chunks
    // are ingested, so they are granted and written long before its next
    // pass.
    std::thread::sleep(Duration::from_secs(2));
    copy_chunks(&t.join("chain"), &part, 0..3);
    upload(server, &part, &machine_sk);
    wait_for("chunks 0-2 at the followers", &logs, || {
        recorded(&alice.3) == Some(2)
            && recorded(&bob.3) == Some(2)
            && recorded(&carol.3) == Some(2)
    });
    // The machine's window over them: each follower checks it.
    upload_window(&market, &t.join("chain"), &input, 0..=2);
    wait_for("window 0..2 checked", &logs, || {
        [&alice_log, &bob_log, &carol_log]
            .iter()
            .all(|l| log_has(l, "window 0..2 verified (root 0x"))
    });
    assert!(log_has(&alice_log, "window 0..2 verified (root 0x"));
    assert!(
        log_has(&alice_log, ", sourceHash too"),
        "raw output: sourceHash checked"
    );
    assert!(log_has(&carol_log, "sourceHash not checked"));

    // Alice's follower is stopped (SIGTERM) and started again later; the
    // seller revokes Bob's subscription; then chunks 3 to 5 arrive.
    let pid = alice_follow.0.id().to_string();
    run_ok(
        {
            let mut k = Command::new("kill");
            k.args(["-TERM", &pid]);
            k
        },
        "kill -TERM",
    );
    let status = alice_follow.0.wait().unwrap();
    assert!(status.success(), "follow on SIGTERM: {status:?}");
    run_ok(
        market_cmd(
            server,
            &owner_sk,
            &["subscription", "revoke", &bob.2, "--reason", "end of trial"],
        ),
        "revoke",
    );
    // Chunk times are whole seconds: the next chunks are accepted after
    // the revocation's second.
    std::thread::sleep(Duration::from_millis(1100));
    copy_chunks(&t.join("chain"), &part, 3..CHUNKS);
    upload(server, &part, &machine_sk);
    let _alice_again = spawn(
        follow(server, &alice.0, &alice.2, &[&alice.1], &alice.3),
        &alice_log,
    );
    wait_for(
        "every chunk at alice's and carol's followers",
        &logs,
        || {
            recorded(&alice.3) == Some(CHUNKS as u64 - 1)
                && recorded(&carol.3) == Some(CHUNKS as u64 - 1)
        },
    );
    upload_window(&market, &t.join("chain"), &input, 3..=CHUNKS - 1);
    let last_window = format!("window 3..{} verified (root 0x", CHUNKS - 1);
    wait_for("window 3..5 checked", &logs, || {
        log_has(&alice_log, &last_window) && log_has(&carol_log, &last_window)
    });
    // carol wrote the packages, each once, as the machine signed them.
    assert_eq!(
        std::fs::read(&carol.3).unwrap(),
        input,
        "carol: every package"
    );

    // Bob's follower saw the revocation, got nothing after it, and ended.
    let deadline = Instant::now() + Duration::from_secs(30);
    let bob_status = loop {
        if let Some(s) = bob_follow.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "bob's follower did not end");
        std::thread::sleep(Duration::from_millis(100));
    };
    let bob_stderr = std::fs::read_to_string(&bob_log).unwrap();
    assert!(bob_status.success(), "{bob_stderr}");
    assert!(
        bob_stderr.contains("invalid (revoked)") && bob_stderr.contains("end of trial"),
        "{bob_stderr}"
    );
    assert!(bob_stderr.contains("valid (active)"), "{bob_stderr}");

    assert_eq!(
        std::fs::read(&alice.3).unwrap(),
        input,
        "alice: the whole chain"
    );
    assert_eq!(
        std::fs::read(&bob.3).unwrap(),
        input[..3 * CHUNK],
        "bob: the chunks accepted before the revocation"
    );
    assert_eq!(recorded(&bob.3), Some(2));
    // The server holds no key of chunks 3-5 for Bob (and the granter was
    // refused none: it never asked).
    let bob_token = market.sign_in(
        &MachineSigningKey::from_hex(std::fs::read_to_string(&bob.0).unwrap().trim(), "bob")
            .unwrap(),
    );
    for i in 3..CHUNKS {
        let (status, _) = market.call(
            "GET",
            &format!("/v1/subscriptions/{}/chunks/{i}/ciphertext", bob.2),
            Some(&bob_token),
            None,
        );
        assert_eq!(status, 404, "chunk {i} granted to the revoked subscription");
    }
    // Bob's signed cut-off notice: revoked, entitled up to chunk 2,
    // verified offline against the market's published receipt key; a
    // changed copy does not verify (exit 2).
    let notice = t.join("bob.cutoff.json");
    run_ok(
        market_cmd(
            server,
            &bob.0,
            &[
                "subscription",
                "cutoff",
                &bob.2,
                "--output",
                notice.to_str().unwrap(),
            ],
        ),
        "subscription cutoff",
    );
    let mut key_cmd = sealstream();
    key_cmd.args(["market", "receipt", "key", "--server", server]);
    let server_key = stdout_of(key_cmd, "market receipt key");
    let verify = |file: &Path| {
        let mut c = sealstream();
        c.args(["receipt", "verify"])
            .arg(file)
            .args(["--server-key", &server_key]);
        c.output().unwrap()
    };
    let out = verify(&notice);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("cut-off notice valid"), "{said}");
    assert!(said.contains("revoked: end of trial"), "{said}");
    assert!(said.contains("last chunk index entitled: 2"), "{said}");
    let text = std::fs::read_to_string(&notice).unwrap();
    let bent = t.join("bent.cutoff.json");
    std::fs::write(
        &bent,
        text.replace("\"lastIndexEntitled\": 2", "\"lastIndexEntitled\": 5"),
    )
    .unwrap();
    assert_ne!(std::fs::read_to_string(&bent).unwrap(), text);
    assert_eq!(verify(&bent).status.code(), Some(2));

    let daemon_text = std::fs::read_to_string(&daemon_log).unwrap();
    assert!(!daemon_text.contains("not granted"), "{daemon_text}");
    let alice_text = std::fs::read_to_string(&alice_log).unwrap();
    assert!(
        alice_text.contains("Resuming after chunk 2"),
        "{alice_text}"
    );
}
