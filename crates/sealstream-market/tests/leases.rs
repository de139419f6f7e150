//! Job leases (issue 24) on both databases: one holder at a time per job,
//! renewals by the holder, a lease taken over once it has expired (by the
//! database's clock) or been released, and the replica id and the leases
//! in the metrics.

mod common;

use std::time::Duration;

use common::{block_on, Db, TestServer};
use sealstream_market::lease::{Job, Leases};
use sealstream_testkit::{http, on_both_databases};

const HOUR: Duration = Duration::from_secs(3_600);

/// The public statistics job: its first pass in the test server is ten
/// minutes after start, so the test's holders are alone on its lease.
const JOB: Job = Job::PublicStats;

fn one_holder_at_a_time_until_expiry_or_release(db: Db) {
    let server = TestServer::start(db);
    let store = &server.store;
    let a = &server.state.leases;
    let b = Leases::new("other");
    let hold = |l: &Leases, lease: Duration| block_on(l.hold(store, JOB, lease)).unwrap();

    let expires = || -> i64 {
        block_on(
            sqlx::query_scalar("SELECT expires_unix FROM job_leases WHERE job = $1")
                .bind(JOB.name())
                .fetch_one(store.pool()),
        )
        .unwrap()
    };
    let set_expires = |at: i64| {
        block_on(
            sqlx::query("UPDATE job_leases SET expires_unix = $1 WHERE job = $2")
                .bind(at)
                .bind(JOB.name())
                .execute(store.pool()),
        )
        .unwrap();
    };

    assert!(hold(a, HOUR), "a free lease is taken");
    assert!(!hold(&b, HOUR), "a live lease is another's");
    // With more than half of it left, the holder holds it as it is (no
    // write); with less, it renews it.
    let first = expires();
    assert!(hold(a, HOUR), "the holder keeps it");
    assert_eq!(expires(), first, "kept without a write");
    let soon = sealstream_core::utc::now_unix() + 10;
    set_expires(soon);
    assert!(hold(a, HOUR), "the holder renews it");
    assert!(expires() >= soon + 1_700, "renewed for the lease");
    assert!(!hold(&b, HOUR));

    // The holder lets it lapse (a lease that ends now): another takes it
    // over, and the old holder is refused until that one's ends.
    assert!(hold(a, Duration::ZERO));
    assert!(hold(&b, HOUR), "an expired lease is taken over");
    assert!(!hold(a, HOUR));

    // A release hands it over at once.
    assert_eq!(block_on(b.release_all(store)).unwrap(), 1);
    assert!(hold(a, HOUR), "a released lease is taken");
    assert!(a.held().contains(&(JOB, true)), "{:?}", a.held());
    assert!(b.held().is_empty(), "a release forgets: {:?}", b.held());
    assert!(!hold(&b, HOUR));
    assert_eq!(b.held(), vec![(JOB, false)]);

    // Jobs are leased apart: b, refused this one, takes another.
    assert!(block_on(b.hold(store, Job::SessionPurge, HOUR)).unwrap());
    assert!(!block_on(a.hold(store, Job::SessionPurge, HOUR)).unwrap());
    assert!(hold(a, HOUR));
}

fn the_metrics_name_the_replica_and_its_leases(db: Db) {
    let server = TestServer::start_with(db, |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c.replica_id = Some("eu-1".into());
    });
    assert_eq!(&*server.state.replica, "eu-1");
    assert!(block_on(server.state.leases.hold(&server.store, JOB, HOUR)).unwrap());
    let other = Leases::new("eu-2");
    assert!(!block_on(other.hold(&server.store, JOB, HOUR)).unwrap());
    let base = server.metrics_base.as_ref().unwrap();
    let scraped = http::send(http::request("GET", &format!("{base}/metrics")))
        .ok()
        .text();
    assert!(
        scraped.contains("sealstream_market_replica_info{replica=\"eu-1\"} 1"),
        "{scraped}"
    );
    for line in [
        "sealstream_market_feed_reads_total{path=\"gathered\"} 0",
        "sealstream_market_feed_reads_total{path=\"alone\"} 0",
        "sealstream_market_feed_read_statements_total 0",
    ] {
        assert!(scraped.contains(line), "{line} in {scraped}");
    }
    assert!(
        scraped.contains("sealstream_market_job_lease{job=\"public-stats\"} 1"),
        "{scraped}"
    );
}

on_both_databases!(
    one_holder_at_a_time_until_expiry_or_release,
    the_metrics_name_the_replica_and_its_leases
);
