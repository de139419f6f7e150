//! Several replicas on one PostgreSQL database (issue 24): the write
//! limits count a principal's writes on every replica together, and each
//! background job runs on one replica at a time, taken over by another
//! when its holder stops.

mod common;

use common::chains::new_owner;
use common::TestServer;
use sealstream_market::auth::Role;
use sealstream_market::lease::Job;
use sealstream_testkit::server::Db;
use sealstream_testkit::wait;

/// A principal's write burst is spent across the replicas: three writes
/// allowed in all, whichever replica takes them.
#[test]
fn the_write_limit_is_one_for_all_replicas() {
    let first = TestServer::start_with(Db::Postgres, |c| {
        c.write_rate = 0.001;
        c.write_burst = 3;
    });
    let second = first.replica(|_| {});
    let (_, alice) = new_owner();
    let token = first.session_for(&alice, &[Role::Owner]);
    let empty = serde_json::json!({});
    let write = |server: &TestServer| server.send("POST", "/v1/listings", Some(&token), &empty).0;
    // Refused for their bodies, but writes all the same.
    assert_eq!(write(&first), 400);
    assert_eq!(write(&second), 400);
    assert_eq!(write(&first), 400);
    assert_eq!(write(&second), 429, "the burst was spent on both");
    assert_eq!(write(&first), 429);
    // Another principal has its own bucket.
    let (_, bob) = new_owner();
    let other = second.session_for(&bob, &[Role::Owner]);
    assert_eq!(
        second.send("POST", "/v1/listings", Some(&other), &empty).0,
        400
    );
}

/// The audit head signer (a pass every second) runs on one of two
/// replicas; when that one stops (releasing its leases), the other takes
/// the job over.
#[test]
fn a_job_runs_on_one_replica_and_moves_when_it_stops() {
    let first = TestServer::start(Db::Postgres);
    let second = first.replica(|c| c.replica_id = Some("second".into()));
    let mut servers = [first, second];
    let asked = |s: &TestServer| {
        s.state
            .leases
            .held()
            .into_iter()
            .find(|(j, _)| *j == Job::AuditHead)
            .map(|(_, held)| held)
    };
    wait::until("both replicas asked for the audit head's lease", || {
        servers.iter().all(|s| asked(s).is_some())
    });
    wait::until("one of them holds it", || {
        servers.iter().any(|s| asked(s) == Some(true))
    });
    let holder = usize::from(asked(&servers[0]) != Some(true));
    let other = 1 - holder;
    assert_eq!(asked(&servers[other]), Some(false), "never both");
    servers[holder].stop();
    wait::until("the other replica takes it over", || {
        asked(&servers[other]) == Some(true)
    });
}

/// Two transactions that lock two rows in opposite orders (as two
/// replicas' requests may): PostgreSQL ends one with a deadlock error,
/// which the API answers as a 503 with `Retry-After`, a conflict worth
/// sending again, not a 500.
#[test]
fn a_deadlock_is_a_503_to_retry() {
    use axum::response::IntoResponse;
    use sealstream_market::error::ApiError;
    let server = TestServer::start(Db::Postgres);
    let store = &server.store;
    common::block_on(async {
        sqlx::query("CREATE TABLE pair (id BIGINT PRIMARY KEY)")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO pair (id) VALUES (1), (2)")
            .execute(store.pool())
            .await
            .unwrap();
        let mut one = store.begin_sqlx().await.unwrap();
        let mut two = store.begin_sqlx().await.unwrap();
        let lock = |id: i64| sqlx::query("UPDATE pair SET id = id WHERE id = $1").bind(id);
        lock(1).execute(&mut *one).await.unwrap();
        lock(2).execute(&mut *two).await.unwrap();
        let (a, b) = tokio::join!(lock(2).execute(&mut *one), lock(1).execute(&mut *two));
        let failed = match (a, b) {
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => e,
            other => panic!("expected one deadlock: {other:?}"),
        };
        let answer = ApiError::from(failed).into_response();
        assert_eq!(answer.status().as_u16(), 503);
        assert_eq!(answer.headers()["retry-after"], "1");
    });
}

/// A burst of wake-ups (a granter's pass wakes one subscription per buyer)
/// reaches the other replicas whole: every one is a notification on the
/// channel, though they are sent in one statement.
#[test]
fn a_burst_of_wake_ups_reaches_the_other_replicas_whole() {
    use sealstream_market::wake::{self, Signal};
    let server = TestServer::start(Db::Postgres);
    let ids: std::collections::BTreeSet<String> = (0..700).map(|i| format!("sub_{i}")).collect();
    let heard = common::block_on(async {
        let mut listener = sqlx::postgres::PgListener::connect(&server.database_url)
            .await
            .unwrap();
        listener.listen(wake::CHANNEL).await.unwrap();
        for id in &ids {
            wake::send(&server.state, Signal::Granted(id.clone()));
        }
        let mut heard = std::collections::BTreeSet::new();
        let patience = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
        while heard.len() < ids.len() {
            let next = tokio::time::timeout_at(patience, listener.recv()).await;
            let n = next.expect("every wake-up heard").unwrap();
            let (_holder, signal) = n.payload().split_once(' ').unwrap();
            if let Some(id) = signal.strip_prefix("granted ") {
                assert!(heard.insert(id.to_string()), "{id} twice");
            }
        }
        heard
    });
    assert_eq!(heard, ids);
}
