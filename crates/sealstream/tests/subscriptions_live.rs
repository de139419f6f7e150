//! Issue 17's acceptance, every party a real process: an EVM dev node
//! (anvil), the market (`market serve`, periods of seconds allowed by
//! `--min-subscription-period`), the machine's agent streaming a topic from
//! standard input to the market (and to a directory, the test's copy of the
//! raw envelopes), the owner's `market grant-daemon --follow`, and three
//! buyers each running `sealstream follow`:
//!
//! - Ann pays one period on the EVM rail and lets it lapse after its grace;
//! - Ben pays on the EVM rail and renews once with a new X25519 key, then
//!   lapses too;
//! - Cem is on the invoice rail and is revoked by the seller mid-stream.
//!
//! What each is entitled to is recomputed from the market's audit log alone
//! (`market audit export`): chunk acceptance times, activations, rotations,
//! access ends and grants. Every follower's output is byte for byte the
//! plaintext of exactly its entitled chunks; the grants in the log are
//! exactly the entitled pairs; after its access end nobody's key opens any
//! later chunk, tried against the raw envelopes; after the rotation Ben's
//! old key opens none of his later keys. The assertions depend on the
//! times the market recorded, not on how fast anything ran.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::agent::{chunk_plaintexts, machine_sections};
use common::anvil::{Anvil, BASE_CHAIN_ID};
use common::live::*;
use common::market::{owner_with_machine, Market};
use common::*;
use sealstream_core::json::Value;
use sealstream_core::keys::{MachineSigningKey, RecipientSecretKey};
use sealstream_core::sealed_box;
use sealstream_files::layout::read_envelope;

const TOPIC: &str = "/gps/fix";

/// The agent's map: `/gps/fix` from standard input, a chunk every 400 ms
/// (or 200 messages), to the market and to the directory `out`.
fn write_agent(dir: &Path, server: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let machine = machine_sections(dir);
    let config = format!(
        "{machine}chunking:\n  maxBytes: 1MiB\n  maxMessages: 200\n  maxAge: 400ms\n\
         spool:\n  dir: spool\n\
         sources:\n  lines: {{type: jsonl, path: \"-\"}}\n\
         topics:\n  - name: {TOPIC}\n    source: lines\n\
         destinations:\n  - {{type: market, url: \"{server}\"}}\n  - {{type: directory, path: out}}\n"
    );
    let path = dir.join("map.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

/// The directory under `out` that holds the topic's chain.
fn chain_dir(out: &Path) -> PathBuf {
    sealstream_testkit::files_under(out)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "chunk-0.json"))
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .expect("the agent wrote a chain")
}

/// A buyer: its session key, its X25519 keys, its subscription and output.
struct Buyer {
    name: &'static str,
    key: PathBuf,
    x25519: Vec<PathBuf>,
    sub: String,
    out: PathBuf,
    log: PathBuf,
}

fn x25519_file(t: &Path, name: &str) -> PathBuf {
    let path = t.join(format!("{name}.x25519.sk"));
    std::fs::write(&path, RecipientSecretKey::generate().to_hex_secret()).unwrap();
    path
}

fn secret(path: &Path) -> RecipientSecretKey {
    RecipientSecretKey::from_hex(std::fs::read_to_string(path).unwrap().trim(), "x25519").unwrap()
}

fn public_hex(path: &Path) -> String {
    secret(path).public_key().to_hex()
}

/// Whether the sealed chunk key `wrapped_hex` opens with the key in `path`.
fn opens(wrapped_hex: &str, path: &Path) -> bool {
    sealed_box::open(&hex::decode(wrapped_hex).unwrap(), &secret(path)).is_some()
}

fn pay(server: &str, key: &Path, order: &str, rpc: &str) {
    run_ok(
        market_cmd(
            server,
            key,
            &["order", "pay", order, "--rpc", rpc, "--wait"],
        ),
        "order pay",
    );
}

#[test]
fn three_buyers_follow_a_live_topic_lapse_renew_with_rotation_and_revocation() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let anvil = Anvil::start();
    let rpc = format!("{BASE_CHAIN_ID}={}", anvil.url);
    let data_dir = t.join("market");
    let market = Market::start_with(
        &data_dir,
        &[
            "--evm-rpc",
            &rpc,
            "--confirmations",
            "1",
            "--min-subscription-period",
            "1",
            "--subscription-sweep",
            "1",
        ],
    );
    let server = market.base.as_str();
    let (owner_key, _, _) = owner_with_machine(&market);
    let owner_sk = t.join("owner.sk");
    std::fs::write(&owner_sk, owner_key.to_hex_secret()).unwrap();

    // The machine streams from now on: a GPS fix every 20 ms.
    let agent_dir = t.join("agent");
    let map = write_agent(&agent_dir, server);
    let agent_log = t.join("agent.log");
    let mut agent = sealstream();
    agent
        .args(["agent", "run", "--config"])
        .arg(&map)
        .current_dir(&agent_dir)
        .stdin(Stdio::piped());
    let mut agent = spawn(agent, &agent_log);
    let mut stdin = agent.0.stdin.take().unwrap();
    let streaming = Arc::new(AtomicBool::new(true));
    let feeder = {
        let streaming = streaming.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while streaming.load(Ordering::Relaxed) {
                let line = format!(
                    "{{\"topic\":\"{TOPIC}\",\"capturedAt\":\"2026-12-05T10:{:02}:{:02}.{:03}Z\",\"fields\":{{\"seq\":{i},\"lat\":52.{i},\"lon\":13.{i}}}}}\n",
                    (i / 60_000) % 60,
                    (i / 1000) % 60,
                    i % 1000
                );
                if stdin.write_all(line.as_bytes()).is_err() {
                    break;
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            // Dropping stdin ends the agent's input: it seals and delivers
            // what it holds, then exits.
        })
    };

    // Two listings of the topic: 10 s periods with 5 s of grace on the EVM
    // rail, hourly on the invoice rail; no history.
    let pay_to = anvil.account(2).address.to_string();
    let subscription = |period: u64, grace: u64| {
        format!(
            r#""kind":"subscription","title":"Truck 7 live GPS","description":"GPS fixes as recorded.",
               "delivery":["api"],
               "subscription":{{"machineDid":"{DID}","topic":"{TOPIC}","periodSeconds":{period},
                                "graceSeconds":{grace},"history":"none"}}"#
        )
    };
    let evm_listing = format!(
        r#"{{{},"price":"1000000000000000",
            "rail":{{"kind":"evm","chainId":{BASE_CHAIN_ID},"token":"native","decimals":18,
                     "payTo":"{pay_to}","symbol":"ETH"}}}}"#,
        subscription(10, 5)
    );
    let invoice_listing = format!(
        r#"{{{},"price":"490",
            "rail":{{"kind":"invoice","currency":"EUR","decimals":2,"payee":"Robots GmbH",
                     "terms":"14 days net"}}}}"#,
        subscription(3600, 0)
    );
    let mut listings = Vec::new();
    for (name, body) in [("evm", evm_listing), ("invoice", invoice_listing)] {
        let file = t.join(format!("listing-{name}.json"));
        std::fs::write(&file, body).unwrap();
        let mut create = market_cmd(server, &owner_sk, &["listing", "create", "--publish"]);
        create.arg("--listing").arg(&file);
        listings.push(stdout_of(create, "listing create"));
    }

    // The owner's granter runs throughout.
    let mut daemon = sealstream();
    daemon
        .args(["market", "grant-daemon", "--follow", "--interval", "1"])
        .args(["--server", server])
        .arg("--key-file")
        .arg(&owner_sk)
        .arg("--owner-private-key-file")
        .arg(keyfile("owner.x25519.sk"));
    let daemon_log = t.join("daemon.log");
    let _daemon = spawn(daemon, &daemon_log);

    // Three buyers subscribe and pay their first period; each follows.
    let mut buyers = Vec::new();
    for (i, name) in ["ann", "ben", "cem"].into_iter().enumerate() {
        let key = t.join(format!("{name}.sk"));
        let evm = i < 2;
        let secp = if evm {
            anvil
                .account([1, 3][i])
                .private_key
                .trim_start_matches("0x")
                .to_string()
        } else {
            MachineSigningKey::generate().to_hex_secret().to_string()
        };
        std::fs::write(&key, secp).unwrap();
        let x25519 = x25519_file(t, name);
        let listing = &listings[usize::from(!evm)];
        let mut subscribe = market_cmd(server, &key, &["subscribe", "--listing", listing]);
        subscribe.arg("--buyer-private-key-file").arg(&x25519);
        let sub = stdout_of(subscribe, "subscribe");
        let order = first_period_order(server, &key, &sub);
        if evm {
            pay(server, &key, &order, &anvil.url);
        } else {
            run_ok(
                market_cmd(
                    server,
                    &owner_sk,
                    &["order", "mark-paid", &order, "--reference", "INV-7"],
                ),
                "mark-paid",
            );
        }
        buyers.push(Buyer {
            name,
            key,
            x25519: vec![x25519],
            sub,
            out: t.join(format!("{name}.out")),
            log: t.join(format!("{name}.log")),
        });
    }

    // Ben's follower holds his next key from the start.
    let ben_new = x25519_file(t, "ben-2");
    buyers[1].x25519.push(ben_new.clone());

    let mut followers: Vec<Running> = buyers
        .iter()
        .map(|b| {
            let keys: Vec<&Path> = b.x25519.iter().map(PathBuf::as_path).collect();
            spawn(follow(server, &b.key, &b.sub, &keys, &b.out), &b.log)
        })
        .collect();
    let logs: Vec<&Path> = [&daemon_log, &agent_log]
        .into_iter()
        .map(PathBuf::as_path)
        .chain(buyers.iter().map(|b| b.log.as_path()))
        .collect();

    // Ben renews, with his new key, once he has three chunks, and pays the
    // second period.
    wait_for("three chunks at ben's follower", &logs, || {
        recorded(&buyers[1].out).is_some_and(|i| i >= 2)
    });
    let mut renew = market_cmd(
        server,
        &buyers[1].key,
        &["subscription", "renew", &buyers[1].sub],
    );
    renew.arg("--rotate-key").arg(&ben_new);
    let renewal = stdout_of(renew, "subscription renew");
    pay(server, &buyers[1].key, &renewal, &anvil.url);

    // Cem is revoked once his follower has written three chunks.
    wait_for("three chunks at cem's follower", &logs, || {
        recorded(&buyers[2].out).is_some_and(|i| i >= 2)
    });
    run_ok(
        market_cmd(
            server,
            &owner_sk,
            &[
                "subscription",
                "revoke",
                &buyers[2].sub,
                "--reason",
                "trial over",
            ],
        ),
        "revoke",
    );

    // Every feed ends: Cem's at once, Ann's after 10 + 5 s, Ben's after
    // 20 + 5 s. Each follower then exits 0 having said why.
    for (b, f) in buyers.iter().zip(followers.iter_mut()) {
        let status = f.wait_within(Duration::from_secs(120), b.name, &b.log);
        let said = std::fs::read_to_string(&b.log).unwrap();
        assert!(status.success(), "{}: {status:?}\n{said}", b.name);
        assert!(said.contains("valid (active)"), "{}: {said}", b.name);
        let reason = if b.name == "cem" {
            "invalid (revoked)"
        } else {
            "invalid (lapsed)"
        };
        assert!(said.contains(reason), "{}: {said}", b.name);
    }
    assert!(std::fs::read_to_string(&buyers[2].log)
        .unwrap()
        .contains("trial over"));

    // The machine keeps streaming a little after the last access end, then
    // stops; the agent delivers what it holds and exits.
    std::thread::sleep(Duration::from_secs(2));
    streaming.store(false, Ordering::Relaxed);
    feeder.join().unwrap();
    let status = agent.wait_within(Duration::from_secs(60), "agent", &agent_log);
    assert!(
        status.success(),
        "agent: {}",
        std::fs::read_to_string(&agent_log).unwrap()
    );

    // The oracle: the market's audit log, exported.
    let oracle = AuditOracle::from_export(&audit_export(&data_dir));
    let chain = chain_dir(&agent_dir.join("out"));
    let plaintexts: std::collections::BTreeMap<u64, Vec<u8>> =
        chunk_plaintexts(&chain).into_iter().collect();
    let last_index = *plaintexts.keys().last().unwrap();
    assert_eq!(
        oracle.chunks.len() as u64,
        last_index + 1,
        "the market accepted every chunk the agent sealed"
    );
    for b in &buyers {
        let sub = &oracle.subscriptions[&b.sub];
        let entitled = oracle.entitled(&b.sub);
        assert!(!entitled.is_empty(), "{}: entitled to nothing", b.name);
        // The grants are exactly the entitled chunks: no missing, no extra.
        assert_eq!(
            sub.granted, entitled,
            "{}: grants against the oracle",
            b.name
        );
        // A contiguous run of the chain, written byte for byte.
        let (first, last) = (*entitled.first().unwrap(), *entitled.last().unwrap());
        assert_eq!(entitled.len() as u64, last - first + 1, "{}: a gap", b.name);
        let expected: Vec<u8> = entitled
            .iter()
            .flat_map(|i| plaintexts[i].clone())
            .collect();
        assert_eq!(
            std::fs::read(&b.out).unwrap(),
            expected,
            "{}: output",
            b.name
        );
        assert!(
            last < last_index,
            "{}: the stream went on after its end",
            b.name
        );

        // The wrapped keys the market holds for it, as its feed (read whole:
        // the subscription is over) delivers them; each to the key in force.
        let token = market.sign_in(
            &MachineSigningKey::from_hex(std::fs::read_to_string(&b.key).unwrap().trim(), "k")
                .unwrap(),
        );
        let feed = feed_chunks(
            &market.bytes_as(&format!("/v1/subscriptions/{}/feed", b.sub), Some(&token)),
        );
        assert_eq!(
            feed.keys()
                .copied()
                .collect::<std::collections::BTreeSet<_>>(),
            entitled
        );
        for (i, event) in &feed {
            let buyer = event.get("buyer").unwrap();
            let wrapped_to = buyer.get("publicKeyHex").and_then(Value::as_str).unwrap();
            let t_c = oracle.time_of(TOPIC, *i);
            assert_eq!(
                wrapped_to,
                sub.key_at(t_c),
                "{}: chunk {i} wrapped to",
                b.name
            );
            let wrapped = buyer.get("wrappedKeyHex").and_then(Value::as_str).unwrap();
            let opens: Vec<bool> = b.x25519.iter().map(|k| opens(wrapped, k)).collect();
            let current = b
                .x25519
                .iter()
                .position(|k| public_hex(k) == wrapped_to)
                .unwrap();
            for (k, opened) in opens.iter().enumerate() {
                assert_eq!(*opened, k == current, "{}: chunk {i} with key {k}", b.name);
            }
        }

        // After its access end, none of its keys opens any later chunk:
        // tried against every entry of the raw envelopes, and the market has
        // no grant and serves no ciphertext of them to it.
        let end = sub.access_ends.expect("every subscription ended");
        let mut after = 0;
        for (i, _) in plaintexts
            .iter()
            .filter(|(i, _)| oracle.time_of(TOPIC, **i) >= end)
        {
            let envelope = read_envelope(&chain.join(format!("chunk-{i}.json"))).unwrap();
            for k in &b.x25519 {
                for r in &envelope.encryption.key_recipients {
                    assert!(
                        !opens(&r.wrapped_key_hex, k),
                        "{}: chunk {i} opens after the end",
                        b.name
                    );
                }
            }
            let (status, _) = market.call(
                "GET",
                &format!("/v1/subscriptions/{}/chunks/{i}/ciphertext", b.sub),
                Some(&token),
                None,
            );
            assert_eq!(status, 404, "{}: chunk {i} served after the end", b.name);
            after += 1;
        }
        assert!(after > 0, "{}: no chunk after its end to try", b.name);
    }

    // Ann and Ben went on without a gap past Cem's revocation.
    let cem_end = oracle.entitled(&buyers[2].sub).last().copied().unwrap();
    for b in &buyers[..2] {
        assert!(
            oracle.entitled(&b.sub).contains(&(cem_end + 1)),
            "{}",
            b.name
        );
    }
    // Ben's rotation: chunks after it are wrapped to the new key only
    // (checked above per chunk); there are some on each side of it.
    let ben = &oracle.subscriptions[&buyers[1].sub];
    let rotated = ben.keys[1].0;
    let ben_entitled = oracle.entitled(&buyers[1].sub);
    assert!(ben_entitled
        .iter()
        .any(|i| oracle.time_of(TOPIC, *i) < rotated));
    assert!(ben_entitled
        .iter()
        .any(|i| oracle.time_of(TOPIC, *i) >= rotated));
    let said = std::fs::read_to_string(&daemon_log).unwrap();
    assert!(!said.contains("not granted"), "{said}");
}
