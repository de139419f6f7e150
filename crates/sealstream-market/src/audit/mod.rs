//! The audit log: an append-only table of events, each carrying the SHA-256
//! of its own content (RFC 8785 canonical JSON of `seq`, `at`, `actor`,
//! `action`, `subject`, `details` and `prev`) and the hash of the event
//! before it, so that changing, removing or reordering any event but the
//! last breaks the chain at a place [`verify`] names. Signed heads
//! ([`signed`]) fix the log's end, so that cutting it short or rewriting it
//! is detected too.

mod db;
pub mod signed;

use sealstream_core::json::{self, canonical, Map, Number, Value};
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError, Tx};

/// `prev` of the first event.
pub const GENESIS: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";

/// One audit event as stored.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Event {
    /// Position in the log, from 1 without gaps.
    pub seq: i64,
    /// UTC time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub at: String,
    /// Who acted (a DID, or `server`).
    pub actor: String,
    /// What was done, e.g. `server.start`.
    pub action: String,
    /// What it was done to.
    pub subject: String,
    /// Details, as RFC 8785 canonical JSON text.
    pub details: String,
    /// Hash of the previous event, or [`GENESIS`].
    pub prev: String,
    /// `0x` + hex SHA-256 of this event's canonical content.
    pub hash: String,
}

/// Why an event could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The details have no RFC 8785 form.
    #[error("audit details: {0}")]
    Details(#[from] canonical::Rfc8785Error),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What an intact log holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// Number of events.
    pub events: u64,
    /// Hash of the last event ([`GENESIS`] for an empty log).
    pub head: String,
}

/// Why the log does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log ends before an event a published head names: events were
    /// cut off its end.
    #[error("truncated: {events} events, but the published head is of event {expected}")]
    Truncated {
        /// Events in the log.
        events: u64,
        /// The event count the published head was taken at.
        expected: u64,
    },
    /// A signed head is not the market's, or does not verify.
    #[error("signed head: {0}")]
    SignedHead(String),
    /// The first event that is wrong, and how.
    #[error("{}", broken_message(*seq, problem))]
    Broken {
        /// The event's sequence number.
        seq: i64,
        /// What is wrong with it.
        problem: Problem,
    },
}

fn broken_message(seq: i64, problem: &Problem) -> String {
    match problem {
        Problem::Missing => format!("seq {seq} missing"),
        _ => format!("seq {seq}: {problem}"),
    }
}

impl From<sqlx::Error> for AuditError {
    fn from(e: sqlx::Error) -> Self {
        AuditError::Store(StoreError::Database(e))
    }
}

/// What is wrong with an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The stored hash is not the hash of the event's content.
    #[error("hash does not match its content")]
    HashMismatch,
    /// The event does not link to its predecessor.
    #[error("prev does not match the hash of seq {0}")]
    PrevMismatch(i64),
    /// The first event does not start from [`GENESIS`].
    #[error("prev is not the genesis value 0x00…00")]
    NotGenesis,
    /// The event is not in the log although later ones are.
    #[error("missing")]
    Missing,
    /// The details are not JSON.
    #[error("details are not valid JSON")]
    BadDetails,
    /// The event's hash is not the head published when it was the last
    /// event: the log was rewritten from here.
    #[error("hash is not the published head")]
    NotPublishedHead,
}

/// `0x` + hex SHA-256 of the RFC 8785 form of
/// `{seq, at, actor, action, subject, details, prev}`.
pub fn event_hash(
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    subject: &str,
    details: &Value,
    prev: &str,
) -> Result<String, canonical::Rfc8785Error> {
    let mut m = Map::new();
    m.insert(
        "seq".into(),
        Value::Number(Number::from_int_text(&seq.to_string()).expect("an i64 is an integer")),
    );
    m.insert("at".into(), Value::String(at.into()));
    m.insert("actor".into(), Value::String(actor.into()));
    m.insert("action".into(), Value::String(action.into()));
    m.insert("subject".into(), Value::String(subject.into()));
    m.insert("details".into(), details.clone());
    m.insert("prev".into(), Value::String(prev.into()));
    let text = canonical::rfc8785(&Value::Object(m))?;
    Ok(format!(
        "0x{}",
        hex::encode(Sha256::digest(text.as_bytes()))
    ))
}

/// Appends one event inside `tx`. The write lock is taken first (SQLite: the
/// database's write lock; PostgreSQL: an advisory lock on the log), so
/// appends from any number of connections or processes are serialised;
/// the event is visible once `tx` commits.
pub async fn append(
    tx: &mut Tx,
    actor: &str,
    action: &str,
    subject: &str,
    details: &Value,
) -> Result<Event, AppendError> {
    let mut events = append_all(
        tx,
        &[NewEvent {
            actor,
            action,
            subject,
            details,
        }],
    )
    .await?;
    Ok(events.pop().expect("one event appended"))
}

/// An event to append: what [`append`] takes.
#[derive(Clone, Copy, Debug)]
pub struct NewEvent<'a> {
    /// Who acted.
    pub actor: &'a str,
    /// What was done (`order.create`, …).
    pub action: &'a str,
    /// What it was done to.
    pub subject: &'a str,
    /// What it carried.
    pub details: &'a Value,
}

/// Appends `events` in order inside `tx`, as [`append`] appends one, with
/// the lock taken and the head read once, and stored in a few statements:
/// a pass that records a thousand changes costs a few statements, not a
/// thousand round trips of three.
pub async fn append_all(tx: &mut Tx, events: &[NewEvent<'_>]) -> Result<Vec<Event>, AppendError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    db::lock(tx).await?;
    let (mut seq, mut prev, last_at) = match db::last_for_append(tx).await? {
        Some((seq, hash, at)) => (seq, hash, Some(at)),
        None => (0, GENESIS.to_string(), None),
    };
    // Never before the event it follows: replicas' clocks may differ by a
    // little, and the log reads in time order as in `seq` order (the
    // times are fixed-width UTC text, so they compare as strings).
    let now = sealstream_core::utc::now();
    let at = match last_at {
        Some(last) if last > now => last,
        _ => now,
    };
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        seq += 1;
        let hash = event_hash(seq, &at, e.actor, e.action, e.subject, e.details, &prev)?;
        out.push(Event {
            seq,
            at: at.clone(),
            actor: e.actor.into(),
            action: e.action.into(),
            subject: e.subject.into(),
            details: canonical::rfc8785(e.details)?,
            prev: std::mem::replace(&mut prev, hash.clone()),
            hash,
        });
    }
    db::insert_all(tx, &out).await?;
    Ok(out)
}

/// Appends one event in a transaction of its own.
pub async fn append_now(
    store: &Store,
    actor: &str,
    action: &str,
    subject: &str,
    details: &Value,
) -> Result<Event, AppendError> {
    let mut tx = store.begin_sqlx().await?;
    let event = append(&mut tx, actor, action, subject, details).await?;
    tx.commit().await?;
    Ok(event)
}

/// Number of events and the head hash, as stored (not verified): the
/// newest event's number and hash, read together in one statement (a count
/// read apart from the hash could pair with an event appended in between;
/// events are numbered from 1 without gaps, which [`verify`] checks).
pub async fn head(store: &Store) -> Result<AuditReport, StoreError> {
    Ok(match db::last(store.pool()).await? {
        Some((seq, hash)) => AuditReport {
            events: u64::try_from(seq).unwrap_or(0),
            head: hash,
        },
        None => AuditReport {
            events: 0,
            head: GENESIS.to_string(),
        },
    })
}

/// Calls `each` with events `1..=upto` in order, read as a stream (the log
/// is never held whole): an export of the part of the log a [`verify`]
/// covered, whatever is appended meanwhile. Stops at the first error of
/// `each` and returns it.
pub async fn for_each_upto<E>(
    store: &Store,
    upto: u64,
    mut each: impl FnMut(Event) -> Result<(), E>,
) -> Result<Result<(), E>, StoreError> {
    use futures_util::TryStreamExt;
    let mut events = db::events_upto(store, upto);
    while let Some(event) = events.try_next().await? {
        if let Err(e) = each(event) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

impl Event {
    /// The event as one JSON object (`seq`, `at`, `actor`, `action`,
    /// `subject`, `details` as an object, `prev`, `hash`): a line of
    /// `market audit export`. `None` when the stored details are not JSON
    /// (which [`verify`] reports first).
    pub fn to_json(&self) -> Option<Value> {
        let mut m = Map::new();
        m.insert(
            "seq".into(),
            Value::Number(Number::from_int_text(&self.seq.to_string())?),
        );
        m.insert("at".into(), Value::String(self.at.clone()));
        m.insert("actor".into(), Value::String(self.actor.clone()));
        m.insert("action".into(), Value::String(self.action.clone()));
        m.insert("subject".into(), Value::String(self.subject.clone()));
        m.insert("details".into(), json::parse(self.details.as_bytes()).ok()?);
        m.insert("prev".into(), Value::String(self.prev.clone()));
        m.insert("hash".into(), Value::String(self.hash.clone()));
        Some(Value::Object(m))
    }
}

/// Checks every event: numbering from 1 without gaps, each hash against its
/// content, each link to the event before; reads the log as a stream.
pub async fn verify(store: &Store) -> Result<AuditReport, AuditError> {
    verify_against(store, None).await
}

/// [`verify`], and also that the log still holds a head published earlier
/// (`/v1/audit/head`, the server's start log line): event `events` has hash
/// `head`. An edited or deleted event anywhere, a rewritten log, and a log
/// cut short after the head was published are all detected.
pub async fn verify_against(
    store: &Store,
    published: Option<&AuditReport>,
) -> Result<AuditReport, AuditError> {
    use futures_util::TryStreamExt;
    let mut events = db::events(store);
    let mut expected = 1i64;
    let mut head = GENESIS.to_string();
    while let Some(Event {
        seq,
        at,
        actor,
        action,
        subject,
        details,
        prev,
        hash,
    }) = events.try_next().await?
    {
        let broken = |seq, problem| AuditError::Broken { seq, problem };
        if seq != expected {
            return Err(broken(expected, Problem::Missing));
        }
        let value =
            json::parse(details.as_bytes()).map_err(|_| broken(seq, Problem::BadDetails))?;
        let computed = event_hash(seq, &at, &actor, &action, &subject, &value, &prev)
            .map_err(|_| broken(seq, Problem::BadDetails))?;
        if computed != hash {
            return Err(broken(seq, Problem::HashMismatch));
        }
        if prev != head {
            return Err(broken(
                seq,
                if seq == 1 {
                    Problem::NotGenesis
                } else {
                    Problem::PrevMismatch(seq - 1)
                },
            ));
        }
        if let Some(p) = published {
            if p.events == seq as u64 && !p.head.eq_ignore_ascii_case(&hash) {
                return Err(broken(seq, Problem::NotPublishedHead));
            }
        }
        head = hash;
        expected += 1;
    }
    let events = (expected - 1) as u64;
    if let Some(p) = published {
        if events < p.events {
            return Err(AuditError::Truncated {
                events,
                expected: p.events,
            });
        }
    }
    Ok(AuditReport { events, head })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn details(n: u64) -> Value {
        let mut m = Map::new();
        m.insert("z".into(), Value::String("last".into()));
        m.insert(
            "n".into(),
            Value::Number(Number::from_int_text(&n.to_string()).unwrap()),
        );
        Value::Object(m)
    }

    /// Appends one test event with `details(n)`.
    pub(super) async fn append_test_event(store: &Store, n: u64) {
        append_now(store, "server", "test.event", "subject", &details(n))
            .await
            .unwrap();
    }

    /// A private in-memory store whose log holds `n` test events.
    pub(super) async fn memory_store_with(n: u64) -> Store {
        let store = Store::open("sqlite::memory:").await.unwrap();
        for i in 0..n {
            append_test_event(&store, i).await;
        }
        store
    }

    pub(super) use super::db::tamper::exec;

    /// Every event of the log, in order.
    pub(super) async fn events_of(store: &Store) -> Vec<Event> {
        use futures_util::TryStreamExt;
        db::events(store).try_collect().await.unwrap()
    }

    /// Rewrites event `seq` with other `details` and/or `prev`, and the
    /// hash of that content: a forgery only a signed head catches.
    pub(super) async fn forge(
        store: &Store,
        seq: i64,
        details: Option<&Value>,
        prev: Option<&str>,
    ) {
        let mut event = events_of(store)
            .await
            .into_iter()
            .find(|e| e.seq == seq)
            .unwrap();
        if let Some(details) = details {
            event.details = canonical::rfc8785(details).unwrap();
        }
        if let Some(prev) = prev {
            event.prev = prev.to_string();
        }
        let details = json::parse(event.details.as_bytes()).unwrap();
        let e = &event;
        event.hash = event_hash(
            seq, &e.at, &e.actor, &e.action, &e.subject, &details, &e.prev,
        )
        .unwrap();
        db::tamper::rewrite(store, &event).await;
    }

    #[test]
    fn hash_is_sha256_of_rfc8785_form() {
        let h = event_hash(
            1,
            "2026-01-02T03:04:05Z",
            "server",
            "server.start",
            "market",
            &details(7),
            GENESIS,
        )
        .unwrap();
        let text = format!(
            "{{\"action\":\"server.start\",\"actor\":\"server\",\"at\":\"2026-01-02T03:04:05Z\",\
             \"details\":{{\"n\":7,\"z\":\"last\"}},\"prev\":\"{GENESIS}\",\"seq\":1,\
             \"subject\":\"market\"}}"
        );
        let expected = format!("0x{}", hex::encode(Sha256::digest(text.as_bytes())));
        assert_eq!(h, expected);
        assert_eq!(h.len(), 66);
    }

    /// Eight tasks append five events each to `store` at once; the log
    /// verifies with all 40 (numbered without gaps or twins).
    async fn appends_from_eight_tasks_make_one_chain(store: &Store) {
        let mut tasks = Vec::new();
        for t in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..5 {
                    append_test_event(&store, t * 10 + i).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(verify(store).await.unwrap().events, 40);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_are_serialised() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("market.db").display());
        let store = Store::open(&url).await.unwrap();
        appends_from_eight_tasks_make_one_chain(&store).await;
    }

    /// Appends from many connections at once make one chain on PostgreSQL
    /// too (without the log's lock they would read the same head and
    /// number two events alike).
    #[test]
    fn concurrent_appends_are_serialised_on_postgres() {
        let (runtime, store) = crate::store::test_postgres::store();
        runtime.block_on(async {
            appends_from_eight_tasks_make_one_chain(&store).await;
        });
    }

    /// An append does not wait for a vacuum of the log: it holds the lock
    /// VACUUM takes (`SHARE UPDATE EXCLUSIVE`) on `audit_events` from
    /// another connection while appending. A lock on the table itself
    /// would wait for the vacuum to end (the timeout below turns that
    /// wait into a failure, not a hang).
    #[test]
    fn appends_do_not_wait_for_a_vacuum_of_the_log() {
        let (runtime, store) = crate::store::test_postgres::store();
        runtime.block_on(async {
            let mut vacuum = store.pool().begin().await.unwrap();
            sqlx::query("LOCK TABLE audit_events IN SHARE UPDATE EXCLUSIVE MODE")
                .execute(&mut *vacuum)
                .await
                .unwrap();
            let appended = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                append_test_event(&store, 1),
            )
            .await;
            vacuum.rollback().await.unwrap();
            assert!(appended.is_ok(), "the append waited for the vacuum's lock");
            assert_eq!(verify(&store).await.unwrap().events, 1);
        });
    }

    /// An event appended after one stamped later (by a replica whose clock
    /// is ahead) takes that time, not an earlier one.
    #[tokio::test]
    async fn times_never_go_back_along_the_log() {
        let store = memory_store_with(1).await;
        let mut first = events_of(&store).await.remove(0);
        first.at = "2999-01-01T00:00:00Z".into();
        let details = json::parse(first.details.as_bytes()).unwrap();
        let e = &first;
        first.hash =
            event_hash(1, &e.at, &e.actor, &e.action, &e.subject, &details, &e.prev).unwrap();
        db::tamper::rewrite(&store, &first).await;
        append_test_event(&store, 2).await;
        let events = events_of(&store).await;
        assert_eq!(events[1].at, "2999-01-01T00:00:00Z");
        assert_eq!(verify(&store).await.unwrap().events, 2);
    }

    #[tokio::test]
    async fn empty_log_verifies_at_genesis() {
        let store = memory_store_with(0).await;
        let report = verify(&store).await.unwrap();
        assert_eq!(report.events, 0);
        assert_eq!(report.head, GENESIS);
    }

    #[tokio::test]
    async fn appended_events_link_and_verify() {
        let store = memory_store_with(3).await;
        let report = verify(&store).await.unwrap();
        assert_eq!(report.events, 3);
        assert_eq!(head(&store).await.unwrap(), report);
        let events = events_of(&store).await;
        assert_eq!(events[0].prev, GENESIS);
        assert_eq!(events[1].prev, events[0].hash);
        assert_eq!(events[1].details, r#"{"n":1,"z":"last"}"#);
    }

    async fn broken(store: &Store) -> String {
        verify(store).await.unwrap_err().to_string()
    }

    #[tokio::test]
    async fn changed_details_are_named() {
        let store = memory_store_with(4).await;
        exec(
            &store,
            r#"UPDATE audit_events SET details = '{"n":99,"z":"last"}' WHERE seq = 3"#,
        )
        .await;
        assert_eq!(
            broken(&store).await,
            "seq 3: hash does not match its content"
        );
    }

    #[tokio::test]
    async fn deleted_event_is_named() {
        let store = memory_store_with(4).await;
        exec(&store, "DELETE FROM audit_events WHERE seq = 2").await;
        assert_eq!(broken(&store).await, "seq 2 missing");
    }

    #[tokio::test]
    async fn renumbered_gap_breaks_the_link() {
        let store = memory_store_with(4).await;
        exec(&store, "DELETE FROM audit_events WHERE seq = 2").await;
        exec(
            &store,
            "UPDATE audit_events SET seq = seq - 1 WHERE seq > 2",
        )
        .await;
        // seq 2 is now the old seq 3: its content hash names seq 3, so it fails first.
        assert_eq!(
            broken(&store).await,
            "seq 2: hash does not match its content"
        );
    }

    #[tokio::test]
    async fn rehashed_event_breaks_the_next_link() {
        let store = memory_store_with(3).await;
        forge(&store, 2, Some(&details(42)), None).await;
        assert_eq!(
            broken(&store).await,
            "seq 3: prev does not match the hash of seq 2"
        );
    }

    #[tokio::test]
    async fn first_event_must_start_at_genesis() {
        let store = memory_store_with(1).await;
        forge(&store, 1, None, Some(&format!("0x{}", "1".repeat(64)))).await;
        assert_eq!(
            broken(&store).await,
            "seq 1: prev is not the genesis value 0x00…00"
        );
    }
}
