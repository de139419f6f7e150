//! Live feeds between in-process nodes on 127.0.0.1 (the process-level
//! scenario, with the DHT, the market, relays and a restart, is
//! `crates/sealstream/tests/p2p_feeds.rs`): a feed that grows arrives
//! checked and opened, byte for byte; an entitlement that ends cuts the
//! buyer off with the reason and no later key; a hello for an unknown
//! subscription, or with another buyer key, is refused; chunks older than
//! the hello's entitlement check need no second check; a stream beyond the
//! session limit is told to come back later.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sealstream_core::keys::RecipientSecretKey;
use sealstream_p2p::live::buyer::{subscribe, Event, SubscribeConfig};
use sealstream_p2p::live::seller::{
    Denied, Entitlement, Entitlements, FeedServer, FeedServerConfig, History,
};
use sealstream_p2p::node::{Identity, NodeError, DEFAULT_LISTEN};
use sealstream_testkit::fixtures;

fn key(name: &str) -> RecipientSecretKey {
    let text = std::fs::read_to_string(fixtures().join("keyfiles").join(name)).unwrap();
    RecipientSecretKey::from_hex(text.trim(), name).unwrap()
}

fn chain(name: &str) -> PathBuf {
    fixtures().join("chains").join(name)
}

/// A seller's entitlements held in memory (the CLI asks the market).
struct Fixed(Mutex<Result<Entitlement, Denied>>);

impl Entitlements for Fixed {
    fn check(&self, _feed: &str, subscription: &str) -> Result<Entitlement, Denied> {
        if subscription != "sub_1" {
            return Err(Denied::Refused("no such subscription".into()));
        }
        let mut e = self.0.lock().unwrap().clone()?;
        e.as_of = sealstream_core::utc::now_unix();
        Ok(e)
    }
}

fn active(buyer_key: &str) -> Entitlement {
    Entitlement {
        as_of: 0,
        state: "active".into(),
        is_final: false,
        reason: None,
        active_from: Some(0),
        ends: None,
        paid_through: Some("2030-01-01T00:00:00Z".into()),
        grace_until: Some("2030-01-02T00:00:00Z".into()),
        access_ends: None,
        seconds_left: Some(1000),
        history: History::None,
        keys: vec![(i64::MIN, buyer_key.into())],
        recipient_id: "buyer-1".into(),
        dataset: None,
    }
}

fn copy_chunk(from: &Path, to: &Path, index: u64) {
    for ext in ["bin", "json"] {
        let name = format!("chunk-{index}.{ext}");
        std::fs::copy(from.join(&name), to.join(&name)).unwrap();
    }
}

fn start(dir: &Path, ent: Arc<Fixed>) -> FeedServer {
    start_with(dir, ent, 8)
}

fn start_with(dir: &Path, ent: Arc<Fixed>, max_sessions: usize) -> FeedServer {
    start_full(dir, ent, Duration::from_millis(200), max_sessions)
}

fn start_full(
    dir: &Path,
    ent: Arc<dyn Entitlements>,
    revalidate: Duration,
    max_sessions: usize,
) -> FeedServer {
    FeedServer::start(
        FeedServerConfig {
            feeds: vec![("/t".into(), dir.to_path_buf())],
            listen: DEFAULT_LISTEN.into(),
            bootstrap: vec![],
            dht: false,
            revalidate,
            max_sessions,
            granting: sealstream_core::chunk::recipient_type::OWNER,
        },
        &Identity::generate(),
        key("owner.x25519.sk"),
        ent,
        Arc::new(|_| {}),
    )
    .unwrap()
}

fn config(server: &FeedServer, subscription: &str, buyer: RecipientSecretKey) -> SubscribeConfig {
    SubscribeConfig {
        seller: server.peer_id(),
        feed: "/t".into(),
        subscription: subscription.into(),
        buyer_keys: vec![buyer],
        bootstrap: vec![],
        seller_addr: Some(server.addr()),
        after: None,
        relays: false,
        reconnect_for: Duration::from_secs(5),
    }
}

#[test]
fn a_growing_feed_arrives_opened_and_ends_when_the_entitlement_does() {
    let tmp = tempfile::tempdir().unwrap();
    let src = chain("odd").join("published");
    let dir = tmp.path().join("feed");
    std::fs::create_dir_all(&dir).unwrap();
    copy_chunk(&src, &dir, 0);
    let buyer = key("buyer.x25519.sk");
    let ent = Arc::new(Fixed(Mutex::new(Ok(active(&buyer.public_key().to_hex())))));
    let server = start(&dir, ent.clone());
    let cfg = config(&server, "sub_1", buyer);
    let mut plain = Vec::new();
    let mut indexes = Vec::new();
    let mut valid = 0;
    let ended = subscribe(&cfg, &Identity::generate(), &mut |e| {
        match e {
            Event::Valid(v) => {
                // Revalidations repeat the state: revoked once it is, with
                // chunks before the access end still due.
                assert!(
                    ["active", "revoked"].contains(&v.state.as_str()),
                    "{}",
                    v.state
                );
                valid += 1;
            }
            Event::Chunk {
                envelope,
                plaintext,
                ..
            } => {
                indexes.push(envelope.index);
                plain.extend_from_slice(plaintext);
                // The feed grows while the buyer follows.
                if envelope.index < 3 {
                    copy_chunk(&src, &dir, envelope.index + 1);
                } else {
                    // Then the entitlement ends, with chunk 3 the last covered.
                    let mut e = active("");
                    e.keys = vec![(i64::MIN, cfg.buyer_keys[0].public_key().to_hex())];
                    e.state = "revoked".into();
                    e.is_final = true;
                    e.reason = Some("seller revoked: test".into());
                    e.ends = Some(envelope_time(&dir, 3) + 1);
                    *ent.0.lock().unwrap() = Ok(e);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(indexes, [0, 1, 2, 3]);
    assert_eq!(
        plain,
        std::fs::read(chain("odd").join("input.bin")).unwrap()
    );
    assert!(ended.reason.contains("revoked"), "{}", ended.reason);
    assert_eq!(ended.state.as_deref(), Some("revoked"));
    assert!(valid >= 1);
}

fn envelope_time(dir: &Path, index: u64) -> i64 {
    std::fs::metadata(dir.join(format!("chunk-{index}.json")))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn hellos_for_other_subscriptions_or_keys_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    std::fs::create_dir_all(&dir).unwrap();
    copy_chunk(&chain("odd").join("published"), &dir, 0);
    let buyer = key("buyer.x25519.sk");
    let ent = Arc::new(Fixed(Mutex::new(Ok(active(&buyer.public_key().to_hex())))));
    let server = start(&dir, ent);
    let unknown = subscribe(
        &config(&server, "sub_2", key("buyer.x25519.sk")),
        &Identity::generate(),
        &mut |e| panic!("{e:?}"),
    )
    .unwrap();
    assert_eq!(unknown.reason, "no such subscription");
    let other_key = subscribe(
        &config(&server, "sub_1", key("operator.x25519.sk")),
        &Identity::generate(),
        &mut |e| panic!("{e:?}"),
    )
    .unwrap();
    assert!(
        other_key.reason.starts_with("buyerKey:"),
        "{}",
        other_key.reason
    );
}

#[test]
fn a_stream_beyond_the_session_limit_is_told_to_come_back_later() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    std::fs::create_dir_all(&dir).unwrap();
    copy_chunk(&chain("odd").join("published"), &dir, 0);
    let buyer = key("buyer.x25519.sk");
    let ent = Arc::new(Fixed(Mutex::new(Ok(active(&buyer.public_key().to_hex())))));
    let server = start_with(&dir, ent, 1);
    // The first buyer holds the one session (its handler waits on the test).
    let first = config(&server, "sub_1", buyer);
    let (holding, held) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let follower = std::thread::spawn(move || {
        subscribe(&first, &Identity::generate(), &mut |e| {
            if let Event::Chunk { .. } = e {
                holding.send(()).unwrap();
                released.recv().unwrap();
                return Err("done".into());
            }
            Ok(())
        })
    });
    held.recv_timeout(Duration::from_secs(30)).unwrap();
    // A second one is told to come back later: it tries again until it
    // gives up.
    let mut second = config(&server, "sub_1", key("buyer.x25519.sk"));
    second.reconnect_for = Duration::from_secs(1);
    let mut told = Vec::new();
    let gave_up = subscribe(&second, &Identity::generate(), &mut |e| {
        match e {
            Event::Disconnected { problem } => told.push(problem),
            other => panic!("{other:?}"),
        }
        Ok(())
    });
    assert!(matches!(gave_up, Err(NodeError::Timeout(_))), "{gave_up:?}");
    assert!(
        told.iter().any(|p| p.contains("try again later")),
        "{told:?}"
    );
    release.send(()).unwrap();
    assert!(follower.join().unwrap().is_err());
}

/// An entitlement in force, and how many times it was checked.
struct Counted {
    ent: Entitlement,
    checks: AtomicUsize,
}

impl Entitlements for Counted {
    fn check(&self, _feed: &str, _subscription: &str) -> Result<Entitlement, Denied> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        let mut e = self.ent.clone();
        e.as_of = sealstream_core::utc::now_unix();
        Ok(e)
    }
}

#[test]
fn chunks_older_than_the_hellos_check_need_no_second_check() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    std::fs::create_dir_all(&dir).unwrap();
    let src = chain("odd").join("published");
    copy_chunk(&src, &dir, 0);
    copy_chunk(&src, &dir, 1);
    // The chunks appeared an hour before the buyer's hello.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::File::options()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
    }
    let buyer = key("buyer.x25519.sk");
    let counted = Arc::new(Counted {
        ent: active(&buyer.public_key().to_hex()),
        checks: AtomicUsize::new(0),
    });
    // No revalidation during the test.
    let server = start_full(&dir, counted.clone(), Duration::from_secs(600), 8);
    let mut checks_at = Vec::new();
    let stopped = subscribe(
        &config(&server, "sub_1", buyer),
        &Identity::generate(),
        &mut |e| match e {
            Event::Valid(_) => Ok(()),
            Event::Chunk { envelope, .. } => {
                checks_at.push((envelope.index, counted.checks.load(Ordering::SeqCst)));
                if envelope.index == 1 {
                    Err("enough".into())
                } else {
                    Ok(())
                }
            }
            other => panic!("unexpected {other:?}"),
        },
    );
    assert!(
        matches!(&stopped, Err(NodeError::Sink(m)) if m == "enough"),
        "{stopped:?}"
    );
    // The hello's check, and no other: it started after both chunks appeared.
    assert_eq!(checks_at, [(0, 1), (1, 1)]);
}
