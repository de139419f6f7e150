//! Issue 19's acceptance for live feeds, every peer a real process on
//! 127.0.0.1: the market (subscriptions on the invoice rail, checked by the
//! seller), the machine's agent streaming a topic to a directory (the data
//! never goes through the market), a DHT bootstrap node, the seller's
//! `p2p serve --feed`, three buyers' `p2p subscribe`, a relay serving one
//! buyer's kept chunks, and an impostor announcing the seller's feed with
//! another chain's chunks.
//!
//! - every buyer finds the seller through the DHT and follows after paying;
//! - Cem is revoked mid-stream: his follower ends with `invalid (revoked)`,
//!   and he holds exactly the chunks that appeared before the revocation
//!   (by the times the seller's directory recorded, not by how fast
//!   anything ran), no key for any later one;
//! - the seller is killed mid-stream and restarted (same identity, same
//!   port): the others resume with no gap and no duplicate;
//! - Dan joins late and takes data from relays: the impostor's blocks and
//!   a block whose byte was flipped on the relay's disk are rejected and
//!   fetched from the seller;
//! - Ann, Ben and Dan end with the same plaintext, byte for byte the
//!   owner's decryption of the whole chain.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::agent::chunk_plaintexts;
use common::live::*;
use common::market::{owner_with_machine, Market};
use common::*;
use sealstream_core::keys::MachineSigningKey;
use sealstream_core::utc;

const TOPIC: &str = "/gps/fix";

/// A market (with `args`) and an owner with the fixture machine: the
/// market, the owner's session key file and key.
fn market_and_owner(t: &Path, args: &[&str]) -> (Market, PathBuf, MachineSigningKey) {
    let market = Market::start_with(&t.join("market"), args);
    let (owner_key, _, _) = owner_with_machine(&market);
    let owner_sk = session_key(t, "owner", Some(&owner_key.to_hex_secret()));
    (market, owner_sk, owner_key)
}

/// The owner's published subscription listing of `TOPIC` (invoice rail,
/// hourly, all history): its id.
fn subscription_listing(t: &Path, server: &str, owner_sk: &Path) -> String {
    let listing_file = t.join("listing.json");
    std::fs::write(
        &listing_file,
        format!(
            r#"{{"kind":"subscription","title":"Truck 7 live GPS","description":"GPS fixes, peer to peer.",
                "delivery":["p2p"],"price":"490",
                "rail":{{"kind":"invoice","currency":"EUR","decimals":2,"payee":"Robots GmbH","terms":"14 days net"}},
                "subscription":{{"machineDid":"{DID}","topic":"{TOPIC}","periodSeconds":3600,
                                 "graceSeconds":0,"history":"all"}}}}"#
        ),
    )
    .unwrap();
    let mut create = market_cmd(server, owner_sk, &["listing", "create", "--publish"]);
    create.arg("--listing").arg(&listing_file);
    stdout_of(create, "listing create")
}

/// Chunks in a chain directory (0.. without a hole).
fn chain_len(dir: &Path) -> u64 {
    (0..)
        .find(|i| !dir.join(format!("chunk-{i}.json")).exists())
        .unwrap()
}

fn mtime(path: &Path) -> i64 {
    std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn p2p(args: &[&str]) -> Command {
    let mut c = sealstream();
    c.arg("p2p").args(args);
    c
}

/// Wait for `file` to hold a line; the line.
fn line_of(file: &Path, logs: &[&Path]) -> String {
    wait_for(&format!("{}", file.display()), logs, || {
        std::fs::read_to_string(file).is_ok_and(|t| t.ends_with('\n'))
    });
    std::fs::read_to_string(file).unwrap().trim().to_string()
}

struct Buyer {
    name: &'static str,
    x25519: PathBuf,
    sub: String,
    out: PathBuf,
    log: PathBuf,
    keep: Option<PathBuf>,
}

impl Buyer {
    fn follow(&self, seller: &str, boot: &str, relays: bool) -> Command {
        let mut c = p2p(&[
            "subscribe",
            "--seller",
            seller,
            "--feed",
            TOPIC,
            "--subscription",
            &self.sub,
            "--bootstrap",
            boot,
            "--reconnect-for",
            "60",
        ]);
        c.arg("--buyer-private-key-file")
            .arg(&self.x25519)
            .arg("--output")
            .arg(&self.out);
        if let Some(k) = &self.keep {
            c.arg("--keep-chunks").arg(k);
        }
        if relays {
            c.arg("--relays");
        }
        c
    }
}

#[test]
fn buyers_find_the_seller_follow_through_revocation_restart_relays_and_an_impostor() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (market, owner_sk, _) = market_and_owner(
        t,
        &[
            "--min-subscription-period",
            "1",
            "--subscription-sweep",
            "1",
        ],
    );
    let server = market.base.as_str();

    // The machine streams to a directory from now on.
    let agent_log = t.join("agent.log");
    let mut stream = Stream::start(
        &t.join("agent"),
        &agent_log,
        TOPIC,
        "300ms",
        &["{type: directory, path: out}"],
        Duration::from_millis(15),
    );
    let mut logs: Vec<PathBuf> = vec![agent_log.clone()];
    let chain = {
        let l: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
        wait_for("the agent's first chunk", &l, || {
            chain_dir(&t.join("agent/out")).is_some()
        });
        chain_dir(&t.join("agent/out")).unwrap()
    };

    // A listing of the topic with all history, on the invoice rail.
    let listing = subscription_listing(t, server, &owner_sk);

    // The DHT's bootstrap node, and the seller.
    let boot_log = t.join("boot.log");
    logs.push(boot_log.clone());
    let boot_addr_file = t.join("boot.addr");
    let mut boot_cmd = p2p(&["bootstrap", "--addr-file"]);
    boot_cmd.arg(&boot_addr_file);
    let _boot = spawn(boot_cmd, &boot_log);
    let l: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    let boot = line_of(&boot_addr_file, &l);

    let seller_port = free_port();
    let seller_id = t.join("seller.p2p");
    let seller_log = t.join("seller.log");
    logs.push(seller_log.clone());
    let seller_addr_file = t.join("seller.addr");
    let status_file = t.join("seller.status.json");
    let seller_cmd = || {
        let mut c = p2p(&["serve", "--feed"]);
        c.arg(format!("{TOPIC}={}", chain.display()))
            .args([
                "--machine-did",
                DID,
                "--server",
                server,
                "--bootstrap",
                &boot,
            ])
            .args(["--revalidate", "1"])
            .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{seller_port}")])
            .arg("--owner-private-key-file")
            .arg(keyfile("owner.x25519.sk"))
            .arg("--key-file")
            .arg(&owner_sk)
            .arg("--identity-file")
            .arg(&seller_id)
            .arg("--addr-file")
            .arg(&seller_addr_file)
            .arg("--status-file")
            .arg(&status_file);
        c
    };
    let mut seller = spawn(seller_cmd(), &seller_log);
    let l: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    let seller_addr = line_of(&seller_addr_file, &l);
    let seller_peer = seller_addr.rsplit('/').next().unwrap().to_string();

    // Ann, Ben and Cem subscribe (the seller marks each invoice paid) and follow.
    let mut buyers = Vec::new();
    for name in ["ann", "ben", "cem", "dan"] {
        let key = session_key(t, name, None);
        let x25519 = x25519_file(t, name);
        let sub = subscribe(server, &key, &x25519, &listing, Some(&owner_sk));
        buyers.push(Buyer {
            name,
            x25519,
            sub,
            out: t.join(format!("{name}.out")),
            log: t.join(format!("{name}.log")),
            keep: (name == "ben").then(|| t.join("ben-chunks")),
        });
        logs.push(t.join(format!("{name}.log")));
    }
    let mut followers: Vec<Running> = buyers[..3]
        .iter()
        .map(|b| spawn(b.follow(&seller_peer, &boot, false), &b.log))
        .collect();
    let l: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    for b in &buyers[..3] {
        wait_for(&format!("three chunks at {}", b.name), &l, || {
            recorded(&b.out).is_some_and(|i| i >= 2)
        });
    }
    // The seller's status file names the three sessions (it is written
    // every second).
    wait_for("the three sessions in the seller's status", &l, || {
        let status = std::fs::read_to_string(&status_file).unwrap_or_default();
        buyers[..3].iter().all(|b| status.contains(&b.sub))
    });
    run_ok(
        p2p(&["status", "--status-file", status_file.to_str().unwrap()]),
        "p2p status",
    );
    // It names the subscriptions served: its owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&status_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Cem is revoked; his follower ends with the reason.
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
    let cem_status = followers[2].wait_within(Duration::from_secs(60), "cem", &buyers[2].log);
    let said = std::fs::read_to_string(&buyers[2].log).unwrap();
    assert!(cem_status.success(), "cem: {cem_status:?}\n{said}");
    assert!(said.contains("invalid (revoked)"), "{said}");
    assert!(said.contains("trial over"), "{said}");

    // The seller is killed mid-stream and restarted on the same port.
    let before = recorded(&buyers[0].out).unwrap();
    seller.kill();
    let l: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_for("ann to notice", &l, || {
        std::fs::read_to_string(&buyers[0].log).is_ok_and(|s| s.contains("reconnecting"))
    });
    let _ = std::fs::remove_file(&seller_addr_file);
    let _seller = spawn(seller_cmd(), &seller_log);
    wait_for("ann and ben past the restart", &l, || {
        buyers[..2]
            .iter()
            .all(|b| recorded(&b.out).is_some_and(|i| i > before + 2))
    });

    // A relay of Ben's kept chunks, one of them with a byte flipped on its
    // disk, and an impostor announcing the seller's feed with another
    // chain; Dan joins late and takes data from relays.
    let kept = buyers[1].keep.clone().unwrap();
    let flipped = kept.join("chunk-1.bin");
    let mut bytes = std::fs::read(&flipped).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&flipped, bytes).unwrap();
    // `p2p relay` of `dir` for the seller's feed, named `name`: the
    // process, its log, and its peer id once it listens.
    let relay_of = |name: &str, dir: &Path, logs: &mut Vec<PathBuf>| {
        let addr = t.join(format!("{name}.addr"));
        let log = t.join(format!("{name}.log"));
        let mut c = p2p(&[
            "relay",
            "--seller",
            &seller_peer,
            "--feed",
            TOPIC,
            "--bootstrap",
            &boot,
        ]);
        c.arg("--chunk-dir").arg(dir).arg("--addr-file").arg(&addr);
        let running = spawn(c, &log);
        logs.push(log);
        let l: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
        let peer = line_of(&addr, &l).rsplit('/').next().unwrap().to_string();
        (running, peer)
    };
    let (_relay, relay_peer) = relay_of("relay", &kept, &mut logs);
    let (_impostor, impostor_peer) = relay_of(
        "impostor",
        &fixtures().join("chains/odd/published"),
        &mut logs,
    );
    let l: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    followers.push(spawn(
        buyers[3].follow(&seller_peer, &boot, true),
        &buyers[3].log,
    ));
    wait_for("dan past chunk 2", &l, || {
        recorded(&buyers[3].out).is_some_and(|i| i >= 2)
    });
    let dan = std::fs::read_to_string(&buyers[3].log).unwrap();
    // (The impostor is rejected at the first chunk it is asked for: 0 or
    // 1, as the providers come in either order.)
    assert!(
        dan.contains(&format!("relay {impostor_peer} rejected at chunk")),
        "{dan}"
    );
    assert!(
        dan.contains(&format!("relay {relay_peer} rejected at chunk 1")),
        "{dan}"
    );
    assert!(dan.contains(&format!("(from {relay_peer})")), "{dan}");

    // The machine stops; every follower catches up with the whole chain.
    stream.stop(&agent_log);
    let last = chain_len(&chain) - 1;
    wait_for("every follower at the last chunk", &l, || {
        [0, 1, 3]
            .iter()
            .all(|&b| recorded(&buyers[b].out) == Some(last))
    });
    for f in [0, 1, 3] {
        let status = followers[f].terminate();
        assert!(status.success(), "{}: {status:?}", buyers[f].name);
    }

    let plain = chunk_plaintexts(&chain);
    let whole: Vec<u8> = plain.iter().flat_map(|(_, p)| p.clone()).collect();
    for b in [0, 1, 3] {
        assert!(
            std::fs::read(&buyers[b].out).unwrap() == whole,
            "{}: the output is not the chain's plaintext",
            buyers[b].name
        );
    }

    // Cem holds exactly the chunks that appeared before his access end.
    let shown = stdout_of(
        market_cmd(
            server,
            &owner_sk,
            &["subscription", "show", &buyers[2].sub, "--json"],
        ),
        "subscription show",
    );
    let v = sealstream_core::json::parse(shown.as_bytes()).unwrap();
    let end = utc::parse_rfc3339(v.get("accessEnds").and_then(|x| x.as_str()).unwrap()).unwrap();
    let cem_last = recorded(&buyers[2].out).unwrap();
    for (i, p) in &plain {
        let t = mtime(&chain.join(format!("chunk-{i}.json")));
        assert_eq!(
            *i <= cem_last,
            t < end,
            "chunk {i} at {t}, access end {end}"
        );
        let _ = p;
    }
    let cem_plain: Vec<u8> = plain
        .iter()
        .filter(|(i, _)| *i <= cem_last)
        .flat_map(|(_, p)| p.clone())
        .collect();
    assert!(std::fs::read(&buyers[2].out).unwrap() == cem_plain);
}

#[test]
fn the_agent_serves_its_own_topic_to_a_subscriber() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (market, owner_sk, _) = market_and_owner(t, &["--min-subscription-period", "1"]);
    let server = market.base.as_str();
    let listing = subscription_listing(t, server, &owner_sk);
    let key = session_key(t, "eve", None);
    let x25519 = x25519_file(t, "eve");
    let sub = subscribe(server, &key, &x25519, &listing, Some(&owner_sk));

    // The machine's agent keeps its chain in feeds/ and serves it.
    let dir = t.join("agent");
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::copy(
        keyfile("machine.x25519.sk"),
        dir.join("keys/machine.x25519.sk"),
    )
    .unwrap();
    let agent_log = t.join("agent.log");
    let destination = format!(
        "{{type: p2p, path: feeds, identityFile: keys/p2p.ed25519.sk, market: \"{server}\", \
         recipientKeyFile: keys/machine.x25519.sk, revalidate: 1s}}"
    );
    let mut stream = Stream::start(
        &dir,
        &agent_log,
        TOPIC,
        "300ms",
        &[&destination],
        Duration::from_millis(15),
    );
    let log = t.join("eve.log");
    let logs = [agent_log.as_path(), log.as_path()];
    let addr = line_of(&dir.join("feeds/p2p.addr"), &logs);
    let seller = addr.rsplit('/').next().unwrap().to_string();
    let out = t.join("eve.out");
    let mut follow = p2p(&[
        "subscribe",
        "--seller",
        &seller,
        "--feed",
        TOPIC,
        "--subscription",
        &sub,
    ]);
    follow
        .args(["--seller-addr", &addr])
        .arg("--buyer-private-key-file")
        .arg(&x25519)
        .arg("--output")
        .arg(&out);
    let mut follower = spawn(follow, &log);
    wait_for("three chunks at eve", &logs, || {
        recorded(&out).is_some_and(|i| i >= 2)
    });
    let status = follower.terminate();
    assert!(status.success(), "{status:?}");
    stream.stop(&agent_log);
    let said = std::fs::read_to_string(&agent_log).unwrap();
    assert!(said.contains(&format!("{sub}: buyer")), "{said}");
    // What Eve holds is the chain's plaintext, chunk by chunk from 0.
    let chain = chain_dir(&dir.join("feeds")).unwrap();
    let last = recorded(&out).unwrap();
    let expected: Vec<u8> = chunk_plaintexts(&chain)
        .into_iter()
        .filter(|(i, _)| *i <= last)
        .flat_map(|(_, p)| p)
        .collect();
    assert!(std::fs::read(&out).unwrap() == expected);
}

#[test]
fn a_dataset_order_is_delivered_from_the_markets_chain_and_the_feed_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (market, owner_sk, owner_key) = market_and_owner(t, &[]);
    let server = market.base.as_str();
    // The machine uploads 5 chunks of /field/soil to the market only.
    common::market::run_market_agent(&market, &t.join("agent"), 200, None, false);
    let mut dataset = market_cmd(server, &owner_sk, &["dataset", "create", "--json"]);
    dataset
        .args(["--machine-did", DID, "--topic", "/field/soil"])
        .args(["--from-index", "1", "--to-index", "3"])
        .arg("--owner-private-key-file")
        .arg(keyfile("owner.x25519.sk"));
    let dataset = sealstream_core::json::parse(&run_ok(dataset, "dataset create").stdout).unwrap();
    let dataset_id = dataset
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap()
        .to_string();
    let listing = t.join("listing.json");
    std::fs::write(
        &listing,
        format!(
            r#"{{"datasetId":"{dataset_id}","title":"Soil, field 3","description":"Soil moisture.",
                "price":"1250","delivery":["p2p"],
                "rail":{{"kind":"invoice","currency":"EUR","decimals":2,"payee":"Robots GmbH","terms":"30 days net"}}}}"#
        ),
    )
    .unwrap();
    let mut create = market_cmd(server, &owner_sk, &["listing", "create", "--publish"]);
    create.arg("--listing").arg(&listing);
    let listing_id = stdout_of(create, "listing create");
    let buyer_sk = session_key(t, "fay", None);
    let x25519 = x25519_file(t, "fay");
    let mut order = market_cmd(
        server,
        &buyer_sk,
        &["order", "create", "--listing", &listing_id],
    );
    order.arg("--buyer-private-key-file").arg(&x25519);
    let order_id = stdout_of(order, "order create");

    // The seller serves the topic from the market's chain (--mirror).
    let feeds = t.join("feeds/soil");
    let addr_file = t.join("seller.addr");
    let seller_log = t.join("seller.log");
    let mut serve = p2p(&["serve", "--feed"]);
    serve
        .arg(format!("/field/soil={}", feeds.display()))
        .args(["--mirror", "--machine-did", DID, "--server", server])
        .arg("--owner-private-key-file")
        .arg(keyfile("owner.x25519.sk"))
        .arg("--key-file")
        .arg(&owner_sk)
        .arg("--addr-file")
        .arg(&addr_file);
    let _seller = spawn(serve, &seller_log);
    let log = t.join("fay.log");
    let logs = [seller_log.as_path(), log.as_path()];
    let addr = line_of(&addr_file, &logs);
    let seller = addr.rsplit('/').next().unwrap().to_string();
    let out = t.join("fay.out");
    let follow = |out: &Path| {
        let mut c = p2p(&["subscribe", "--seller", &seller, "--feed", "/field/soil"]);
        c.args(["--order", &order_id, "--seller-addr", &addr])
            .arg("--buyer-private-key-file")
            .arg(&x25519)
            .arg("--output")
            .arg(out);
        c
    };
    // Unpaid: refused with the reason.
    let said = run_fails(follow(&t.join("early.out")), 2);
    assert!(
        said.contains("the seller refused: the order is awaiting-payment"),
        "{said}"
    );
    run_ok(
        market_cmd(
            server,
            &owner_sk,
            &["order", "mark-paid", &order_id, "--reference", "INV-9"],
        ),
        "mark-paid",
    );
    // Paid: chunks 1 to 3, then the feed ends.
    let done = run_ok(follow(&out), "p2p subscribe");
    let said = String::from_utf8_lossy(&done.stderr);
    assert!(said.contains("is delivered: chunks 1 to 3"), "{said}");
    assert_eq!(recorded(&out), Some(3));
    let expected: Vec<u8> = chunk_plaintexts(&feeds)
        .into_iter()
        .filter(|(i, _)| (1..=3).contains(i))
        .flat_map(|(_, p)| p)
        .collect();
    assert!(std::fs::read(&out).unwrap() == expected);
    // The mirror holds the market's chain, stamped with its acceptance times.
    let (status, page) = market.call(
        "GET",
        &format!("/v1/machines/{DID}/topics/%2Ffield%2Fsoil/chunks"),
        Some(&market.sign_in(&owner_key)),
        None,
    );
    assert_eq!(status, 200, "{page:?}");
    for c in page.get("chunks").and_then(|v| v.as_array()).unwrap() {
        let i = c.get("index").and_then(|v| v.as_u64()).unwrap();
        let at = c.get("receivedAt").and_then(|v| v.as_str()).unwrap();
        assert_eq!(
            mtime(&feeds.join(format!("chunk-{i}.json"))),
            utc::parse_rfc3339(at).unwrap(),
            "chunk {i}"
        );
    }
}
