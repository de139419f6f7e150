//! Live subscriptions end to end, every party a process of its own: the
//! market (`market serve`), the machine (`market upload` of a published
//! chain, part by part), the owner's `market grant-daemon --follow`, and two
//! buyers on the invoice rail running `sealstream follow`. One subscription
//! is revoked mid-stream: its follower writes exactly the chunks accepted
//! before the revocation and exits 0 once the feed ends; the other writes
//! the whole chain, byte for byte, and survives a restart in the middle
//! (resuming after the last chunk it wrote, writing none twice).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::market::{owner_with_machine, Market};
use common::*;
use sealstream_core::keys::{MachineSigningKey, RecipientSecretKey};
use sealstream_testkit::fixture::MACHINE_SK;

const CHUNK: usize = 1000;
const CHUNKS: usize = 6;
const TOPIC: &str = "/gps/fix";

/// `sealstream market ARGS… --server URL --key-file KEY`.
fn market_cmd(server: &str, key: &Path, args: &[&str]) -> Command {
    let mut c = sealstream();
    c.arg("market").args(args);
    c.args(["--server", server]).arg("--key-file").arg(key);
    c
}

fn stdout_of(c: Command, what: &str) -> String {
    String::from_utf8_lossy(&run_ok(c, what).stdout)
        .trim()
        .to_string()
}

/// A child killed when dropped (a failing test leaves nothing running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(mut c: Command, log: &Path) -> Running {
    let err = std::fs::File::create(log).unwrap();
    Running(
        c.stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap(),
    )
}

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

/// The index recorded in a follower's state file, if any.
fn recorded(output: &Path) -> Option<u64> {
    let mut state = output.as_os_str().to_os_string();
    state.push(".follow-state");
    let text = std::fs::read_to_string(PathBuf::from(state)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("index "))
        .and_then(|n| n.parse().ok())
}

fn wait_for(what: &str, logs: &[&Path], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if Instant::now() > deadline {
            let logs: Vec<String> = logs
                .iter()
                .map(|l| {
                    format!(
                        "--- {}:\n{}",
                        l.display(),
                        std::fs::read_to_string(l).unwrap_or_default()
                    )
                })
                .collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn follow(server: &str, key: &Path, sub: &str, x25519: &Path, output: &Path) -> Command {
    let mut c = sealstream();
    c.args(["follow", "--server", server, "--subscription", sub])
        .arg("--key-file")
        .arg(key)
        .arg("--buyer-private-key-file")
        .arg(x25519)
        .arg("--output")
        .arg(output);
    c
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
    let input = input_of(CHUNK * CHUNKS, 42);
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
    for name in ["alice", "bob"] {
        let key = t.join(format!("{name}.sk"));
        std::fs::write(&key, MachineSigningKey::generate().to_hex_secret()).unwrap();
        let x25519 = t.join(format!("{name}.x25519.sk"));
        std::fs::write(&x25519, RecipientSecretKey::generate().to_hex_secret()).unwrap();
        let mut subscribe = market_cmd(server, &key, &["subscribe", "--listing", &listing]);
        subscribe.arg("--buyer-private-key-file").arg(&x25519);
        let sub = stdout_of(subscribe, "subscribe");
        let shown = market_cmd(server, &key, &["subscription", "show", &sub, "--json"]);
        let shown = sealstream_core::json::parse(&run_ok(shown, "show").stdout).unwrap();
        let order = shown
            .get("periods")
            .and_then(|p| p.as_array())
            .and_then(|p| p[0].get("orderId"))
            .and_then(|o| o.as_str())
            .unwrap()
            .to_string();
        run_ok(
            market_cmd(
                server,
                &owner_sk,
                &["order", "mark-paid", &order, "--reference", "INV-1"],
            ),
            "mark-paid",
        );
        buyers.push((key, x25519, sub, t.join(format!("{name}.out"))));
    }
    let (alice, bob) = (&buyers[0], &buyers[1]);

    // The granter and both followers run from now on.
    let mut daemon = sealstream();
    daemon
        .args([
            "market",
            "grant-daemon",
            "--follow",
            "--interval",
            "1",
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
        follow(server, &alice.0, &alice.2, &alice.1, &alice.3),
        &alice_log,
    );
    let mut bob_follow = spawn(follow(server, &bob.0, &bob.2, &bob.1, &bob.3), &bob_log);
    let logs = [daemon_log.as_path(), &alice_log, &bob_log];

    // Chunks 0 to 2 arrive: both get them.
    let part = t.join("part");
    copy_chunks(&t.join("chain"), &part, 0..3);
    upload(server, &part, &machine_sk);
    wait_for("chunks 0-2 at both followers", &logs, || {
        recorded(&alice.3) == Some(2) && recorded(&bob.3) == Some(2)
    });

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
        follow(server, &alice.0, &alice.2, &alice.1, &alice.3),
        &alice_log,
    );
    wait_for("every chunk at alice's follower", &logs, || {
        recorded(&alice.3) == Some(CHUNKS as u64 - 1)
    });

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
