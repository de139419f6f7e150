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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::agent::chunk_plaintexts;
use common::anvil::{Anvil, BASE_CHAIN_ID};
use common::live::*;
use common::market::{owner_with_machine, Market};
use common::*;
use sealstream_core::json::Value;
use sealstream_core::keys::{MachineSigningKey, RecipientSecretKey};
use sealstream_core::sealed_box;
use sealstream_files::layout::read_envelope;

const TOPIC: &str = "/gps/fix";

/// A buyer: its session key, its X25519 keys, its subscription and output.
struct Buyer {
    name: &'static str,
    key: PathBuf,
    x25519: Vec<PathBuf>,
    sub: String,
    out: PathBuf,
    log: PathBuf,
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

/// The `kind`, title and `subscription` members of a listing of the topic
/// without history.
fn subscription_terms(period: u64, grace: u64) -> String {
    format!(
        r#""kind":"subscription","title":"Truck 7 live GPS","description":"GPS fixes as recorded.",
           "delivery":["api"],
           "subscription":{{"machineDid":"{DID}","topic":"{TOPIC}","periodSeconds":{period},
                            "graceSeconds":{grace},"history":"none"}}"#
    )
}

/// `market listing create --publish` of `body`: the listing's id.
fn create_listing(t: &Path, server: &str, owner_sk: &Path, name: &str, body: &str) -> String {
    let file = t.join(format!("listing-{name}.json"));
    std::fs::write(&file, body).unwrap();
    let mut create = market_cmd(server, owner_sk, &["listing", "create", "--publish"]);
    create.arg("--listing").arg(&file);
    stdout_of(create, "listing create")
}

/// The owner's `market grant-daemon --follow`.
fn grant_daemon(server: &str, owner_sk: &Path) -> Command {
    let mut daemon = sealstream();
    daemon
        .args(["market", "grant-daemon", "--follow", "--interval", "1"])
        .args(["--server", server])
        .arg("--key-file")
        .arg(owner_sk)
        .arg("--owner-private-key-file")
        .arg(keyfile("owner.x25519.sk"));
    daemon
}

/// The market's wrapped keys for subscription `sub` (its buyer's feed, read
/// whole: the subscription is over) are exactly its entitled chunks, each
/// wrapped to the buyer key in force at the chunk's time and opened by that
/// key only among `keys`; none of `keys` opens any chunk accepted after its
/// access end (tried against every entry of the raw envelopes in `chain`),
/// and the market serves none of those to it. Returns the number of chunks
/// after the end.
fn check_keys(
    market: &Market,
    oracle: &AuditOracle,
    chain: &Path,
    (name, key, sub): (&str, &Path, &str),
    keys: &[PathBuf],
) -> usize {
    let audited = &oracle.subscriptions[sub];
    let entitled = oracle.due(sub);
    assert_eq!(
        audited.granted, entitled,
        "{name}: grants against the oracle"
    );
    let token = market.sign_in(
        &MachineSigningKey::from_hex(std::fs::read_to_string(key).unwrap().trim(), "k").unwrap(),
    );
    let feed =
        feed_chunks(&market.bytes_as(&format!("/v1/subscriptions/{sub}/feed"), Some(&token)));
    assert_eq!(
        feed.keys()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        entitled,
        "{name}: the feed"
    );
    for (i, event) in &feed {
        let buyer = event.get("buyer").unwrap();
        let wrapped_to = buyer.get("publicKeyHex").and_then(Value::as_str).unwrap();
        assert_eq!(
            wrapped_to,
            audited.key_granted(*i, oracle.time_of(TOPIC, *i)),
            "{name}: chunk {i} (accepted at {}) wrapped to; keys in the log: {:?}",
            oracle.time_of(TOPIC, *i),
            audited.keys
        );
        let wrapped = buyer.get("wrappedKeyHex").and_then(Value::as_str).unwrap();
        for k in keys {
            assert_eq!(
                opens(wrapped, k),
                public_hex(k) == wrapped_to,
                "{name}: chunk {i} with {}",
                k.display()
            );
        }
    }
    let Some(end) = audited.access_ends else {
        return 0;
    };
    let mut after = 0;
    // (A chunk of the end's own second granted before the end stays
    // granted: `due` has it.)
    let after_end = oracle
        .chunks
        .iter()
        .filter(|((_, i), t)| **t >= end && !entitled.contains(i));
    for (&(_, i), _) in after_end {
        let envelope = read_envelope(&chain.join(format!("chunk-{i}.json"))).unwrap();
        for k in keys {
            for r in &envelope.encryption.key_recipients {
                assert!(
                    !opens(&r.wrapped_key_hex, k),
                    "{name}: chunk {i} opens after the end"
                );
            }
        }
        let (status, _) = market.call(
            "GET",
            &format!("/v1/subscriptions/{sub}/chunks/{i}/ciphertext"),
            Some(&token),
            None,
        );
        assert_eq!(status, 404, "{name}: chunk {i} served after the end");
        after += 1;
    }
    after
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
    let agent_log = t.join("agent.log");
    let mut stream = Stream::start(
        &agent_dir,
        &agent_log,
        TOPIC,
        "400ms",
        &[
            &format!("{{type: market, url: \"{server}\"}}"),
            "{type: directory, path: out}",
        ],
        Duration::from_millis(20),
    );

    // Two listings of the topic: 10 s periods with 5 s of grace on the EVM
    // rail, hourly on the invoice rail; no history.
    let pay_to = anvil.account(2).address.to_string();
    let evm_listing = format!(
        r#"{{{},"price":"1000000000000000",
            "rail":{{"kind":"evm","chainId":{BASE_CHAIN_ID},"token":"native","decimals":18,
                     "payTo":"{pay_to}","symbol":"ETH"}}}}"#,
        subscription_terms(10, 5)
    );
    let invoice_listing = format!(
        r#"{{{},"price":"490",
            "rail":{{"kind":"invoice","currency":"EUR","decimals":2,"payee":"Robots GmbH",
                     "terms":"14 days net"}}}}"#,
        subscription_terms(3600, 0)
    );
    let listings = [
        create_listing(t, server, &owner_sk, "evm", &evm_listing),
        create_listing(t, server, &owner_sk, "invoice", &invoice_listing),
    ];

    // The owner's granter runs throughout.
    let daemon_log = t.join("daemon.log");
    let _daemon = spawn(grant_daemon(server, &owner_sk), &daemon_log);

    // Three buyers subscribe and pay their first period; each follows.
    let mut buyers = Vec::new();
    for (i, name) in ["ann", "ben", "cem"].into_iter().enumerate() {
        let evm = i < 2;
        let secp = evm.then(|| anvil.account([1, 3][i]).private_key.clone());
        let key = session_key(t, name, secp.as_deref());
        let x25519 = x25519_file(t, name);
        let listing = &listings[usize::from(!evm)];
        let sub = subscribe(
            server,
            &key,
            &x25519,
            listing,
            (!evm).then_some(owner_sk.as_path()),
        );
        if evm {
            pay(
                server,
                &key,
                &first_period_order(server, &key, &sub),
                &anvil.url,
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
    stream.stop(&agent_log);

    // The oracle: the market's audit log, exported.
    let oracle = AuditOracle::from_export(&audit_export(&data_dir));
    let chain = chain_dir(&agent_dir.join("out")).expect("the agent wrote a chain");
    let plaintexts: std::collections::BTreeMap<u64, Vec<u8>> =
        chunk_plaintexts(&chain).into_iter().collect();
    let last_index = *plaintexts.keys().last().unwrap();
    assert_eq!(
        oracle.chunks.len() as u64,
        last_index + 1,
        "the market accepted every chunk the agent sealed"
    );
    for b in &buyers {
        let entitled = oracle.due(&b.sub);
        assert!(!entitled.is_empty(), "{}: entitled to nothing", b.name);
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
        // Grants exactly the entitled chunks, each to the key in force; no
        // key of its opens anything after its end.
        assert!(
            oracle.subscriptions[&b.sub].access_ends.is_some(),
            "{}: not ended",
            b.name
        );
        let after = check_keys(
            &market,
            &oracle,
            &chain,
            (b.name, &b.key, &b.sub),
            &b.x25519,
        );
        assert!(after > 0, "{}: no chunk after its end to try", b.name);
    }

    // Ann and Ben went on without a gap past Cem's revocation.
    let cem_end = oracle.due(&buyers[2].sub).last().copied().unwrap();
    for b in &buyers[..2] {
        assert!(oracle.due(&b.sub).contains(&(cem_end + 1)), "{}", b.name);
    }
    // Ben's rotation: chunks after it are wrapped to the new key only
    // (checked above per chunk); there are some on each side of it.
    let ben = &oracle.subscriptions[&buyers[1].sub];
    let rotated = ben.keys[1].0;
    let ben_entitled = oracle.due(&buyers[1].sub);
    assert!(ben_entitled
        .iter()
        .any(|i| oracle.time_of(TOPIC, *i) < rotated));
    assert!(ben_entitled
        .iter()
        .any(|i| oracle.time_of(TOPIC, *i) >= rotated));
    let said = std::fs::read_to_string(&daemon_log).unwrap();
    assert!(!said.contains("not granted"), "{said}");
}

/// Runs a change of a subscription; one refused because the subscription
/// is over already (a 409 naming `state`) is skipped: the oracle takes what
/// happened.
fn unless_over(mut c: Command, what: &str) {
    let out = c.output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || said.contains(": 409 state: "),
        "{what}: {said}"
    );
}

/// One step of the crash test's schedule.
enum Step {
    /// SIGKILL the server, and start it again after a pause.
    KillServer,
    /// SIGKILL the grant daemon, and start it again.
    KillGranter,
    /// The next subscription change, if any is left.
    Change,
}

#[test]
fn server_and_granter_killed_at_random_points_grant_exactly_the_entitled() {
    let seed = test_seed("subscriptions crash");
    let mut rng = SplitMix64::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data_dir = t.join("market");
    let market_log = t.join("market.log");
    let mut market = Market::start_logged(
        &data_dir,
        &[
            "--min-subscription-period",
            "1",
            "--subscription-sweep",
            "1",
        ],
        &market_log,
    );
    let server = market.base.clone();
    let server = server.as_str();
    let (owner_key, _, owner_token) = owner_with_machine(&market);
    let owner_sk = t.join("owner.sk");
    std::fs::write(&owner_sk, owner_key.to_hex_secret()).unwrap();
    let agent_dir = t.join("agent");
    let agent_log = t.join("agent.log");
    let mut stream = Stream::start(
        &agent_dir,
        &agent_log,
        TOPIC,
        "400ms",
        &[
            &format!("{{type: market, url: \"{server}\"}}"),
            "{type: directory, path: out}",
        ],
        Duration::from_millis(20),
    );
    let listing = create_listing(
        t,
        server,
        &owner_sk,
        "invoice",
        &format!(
            r#"{{{},"price":"490","rail":{{"kind":"invoice","currency":"EUR","decimals":2,
                "payee":"Robots GmbH","terms":"14 days net"}}}}"#,
            subscription_terms(15, 5)
        ),
    );
    let daemon_log = t.join("daemon.log");
    let mut daemon = spawn(grant_daemon(server, &owner_sk), &daemon_log);

    // Buyers 0-3 subscribe now; buyer 4 later. Each first period is marked
    // paid by the seller.
    let buyer = |i: usize| -> (PathBuf, PathBuf, String) {
        let name = format!("buyer{i}");
        let key = session_key(t, &name, None);
        let x25519 = x25519_file(t, &name);
        let sub = subscribe(server, &key, &x25519, &listing, Some(&owner_sk));
        (key, x25519, sub)
    };
    let mut buyers: Vec<(PathBuf, Vec<PathBuf>, String)> = (0..4)
        .map(|i| {
            let (k, x, s) = buyer(i);
            (k, vec![x], s)
        })
        .collect();
    // A renewal (optionally with a new key), paid by invoice; skipped when
    // the subscription has ended meanwhile (the oracle takes what happened).
    let renew = |key: &Path, sub: &str, rotate: Option<&Path>| {
        let mut c = market_cmd(server, key, &["subscription", "renew", sub]);
        if let Some(r) = rotate {
            c.arg("--rotate-key").arg(r);
        }
        let out = c.output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || said.contains(": 409 state: "),
            "renew: {said}"
        );
        if out.status.success() {
            let order = String::from_utf8_lossy(&out.stdout).trim().to_string();
            run_ok(
                market_cmd(
                    server,
                    &owner_sk,
                    &["order", "mark-paid", &order, "--reference", "R"],
                ),
                "mark-paid",
            );
        }
    };

    // Kills and changes at random points while the agent streams.
    let started = std::time::Instant::now();
    let (mut kills, mut change) = (0, 0);
    while change < 6 || started.elapsed() < Duration::from_secs(20) || kills < 6 {
        std::thread::sleep(Duration::from_millis(rng.in_range(200..1200)));
        let step = match rng.in_range(0..4) {
            0 => Step::KillServer,
            1 => Step::KillGranter,
            _ => Step::Change,
        };
        match step {
            Step::KillServer => {
                market.kill();
                std::thread::sleep(Duration::from_millis(rng.in_range(0..600)));
                market.restart();
                kills += 1;
            }
            Step::KillGranter => {
                daemon.kill();
                daemon = spawn(grant_daemon(server, &owner_sk), &daemon_log);
                kills += 1;
            }
            Step::Change => {
                match change {
                    0 => unless_over(
                        market_cmd(
                            server,
                            &buyers[3].0,
                            &["subscription", "cancel", &buyers[3].2],
                        ),
                        "cancel",
                    ),
                    1 => unless_over(
                        market_cmd(
                            server,
                            &owner_sk,
                            &[
                                "subscription",
                                "revoke",
                                &buyers[2].2,
                                "--reason",
                                "crash test",
                            ],
                        ),
                        "revoke",
                    ),
                    2 => renew(&buyers[1].0, &buyers[1].2, None),
                    3 => {
                        let (k, x, s) = buyer(4);
                        buyers.push((k, vec![x], s));
                    }
                    4 => renew(&buyers[1].0, &buyers[1].2, None),
                    5 => {
                        let rotated = x25519_file(t, "buyer4-2");
                        renew(&buyers[4].0, &buyers[4].2, Some(&rotated));
                        buyers[4].1.push(rotated);
                    }
                    _ => {}
                }
                change += 1;
            }
        }
    }
    eprintln!("{kills} kills, {change} changes in {:?}", started.elapsed());

    // The machine stops; every subscription ends (at most 2 × 15 + 5 s after
    // its last renewal); the granter catches up.
    stream.stop(&agent_log);
    let logs = [market_log.as_path(), &daemon_log, &agent_log];
    for (key, _, sub) in &buyers {
        wait_until(
            "every subscription final",
            Duration::from_secs(90),
            &logs,
            || {
                let out = market_cmd(server, key, &["subscription", "show", sub, "--json"])
                    .output()
                    .unwrap();
                let shown = sealstream_core::json::parse(&out.stdout).unwrap();
                matches!(
                    shown.get("state").and_then(Value::as_str),
                    Some("lapsed" | "cancelled" | "revoked")
                )
            },
        );
    }
    let pending = sealstream_api::routes::topic_pending_grants(DID, TOPIC, None);
    wait_for("no pending grant", &logs, || {
        let (status, body) = market.call("GET", &pending, Some(&owner_token), None);
        assert_eq!(status, 200, "{body:?}");
        body.get("items")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
    });

    // Against the oracle from the audit log: every chunk granted exactly to
    // the subscribers entitled to it, each to the key in force.
    let oracle = AuditOracle::from_export(&audit_export(&data_dir));
    let chain = chain_dir(&agent_dir.join("out")).expect("the agent wrote a chain");
    assert_eq!(
        oracle.chunks.len(),
        sealstream_files::layout::list_chain(&chain).unwrap().len(),
        "the market accepted every chunk the agent sealed"
    );
    let mut granted = 0;
    for (i, (key, x25519, sub)) in buyers.iter().enumerate() {
        check_keys(
            &market,
            &oracle,
            &chain,
            (&format!("buyer{i}"), key, sub),
            x25519,
        );
        granted += oracle.subscriptions[sub].granted.len();
    }
    assert!(granted > 0);
    let ended: Vec<_> = oracle
        .subscriptions
        .values()
        .filter_map(|s| s.ended.clone())
        .collect();
    for how in ["lapsed", "revoked", "cancelled"] {
        assert!(ended.iter().any(|e| e == how), "none {how}: {ended:?}");
    }
}
