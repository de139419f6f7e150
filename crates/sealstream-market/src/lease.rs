//! Which replica runs each background job (issue 24).
//!
//! Several server processes (replicas) may serve one marketplace on one
//! PostgreSQL database. Each starts the same background jobs
//! ([`Job`]); each job's pass runs on the one replica that holds the job's
//! lease, a row of `job_leases` (migration 0023). Before every pass a
//! replica asks for the lease: it gets it when nobody holds it, when it
//! holds it already (a renewal), or when the holder let it expire. The
//! expiry is written and compared with the database's clock, so the
//! replicas' own clocks do not matter. A replica that stops releases its
//! leases; one that dies holds them until they expire, then another takes
//! each job over on its next pass. Every pass is written to be safe to
//! run twice (conditional updates, `ON CONFLICT`), so the moment two
//! replicas overlap (a pass longer than its lease) costs work, not
//! correctness.
//!
//! On SQLite there is one process, which holds every lease; it frees the
//! leases of a process that died before it at start ([`Leases::clear_stale`]),
//! as a PostgreSQL replica frees those of its own id.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::OsRng;
use rand::RngCore;

use crate::store::{Engine, Store, StoreError};

/// The background jobs that run on one replica at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Job {
    /// Watches payment claims on the EVM chains (`orders::watcher`).
    PaymentWatcher,
    /// Grants paid orders and live chunks with operator keys
    /// (`operator_key`).
    Granter,
    /// Moves subscriptions through grace and lapse (`subscriptions`).
    SubscriptionSweep,
    /// Releases and settles escrows (`escrow`).
    Escrow,
    /// Signs the audit log's head (`audit::signed`).
    AuditHead,
    /// Refreshes the delayed public sales counts (`listings::stats`).
    PublicStats,
    /// Deletes expired sessions (`auth`).
    SessionPurge,
}

impl Job {
    /// Every job.
    pub const ALL: [Job; 7] = [
        Job::PaymentWatcher,
        Job::Granter,
        Job::SubscriptionSweep,
        Job::Escrow,
        Job::AuditHead,
        Job::PublicStats,
        Job::SessionPurge,
    ];

    /// The job's name in `job_leases`, the logs and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Job::PaymentWatcher => "payment-watcher",
            Job::Granter => "granter",
            Job::SubscriptionSweep => "subscription-sweep",
            Job::Escrow => "escrow",
            Job::AuditHead => "audit-head",
            Job::PublicStats => "public-stats",
            Job::SessionPurge => "session-purge",
        }
    }
}

/// The shortest lease: the longest a job stops when its replica dies
/// between two passes of a job that runs often (the audit head's, every
/// second). A pass longer than its lease lets another replica start the
/// same work, which costs work only.
pub const MIN_LEASE: Duration = Duration::from_secs(10);

/// The lease of a job whose passes come every `every`: three passes, and
/// at least [`MIN_LEASE`].
pub fn lease_for(every: Duration) -> Duration {
    every.saturating_mul(3).max(MIN_LEASE)
}

/// Why a replica id is refused.
#[derive(Debug, thiserror::Error)]
#[error("replica id: 1 to 64 letters, digits, '.', '_' or '-'")]
pub struct BadReplicaId;

/// Checks a replica id given by the operator (`--replica-id`).
pub fn check_replica_id(id: &str) -> Result<(), BadReplicaId> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(BadReplicaId)
    }
}

/// The replica id a server runs under: the one configured, checked, or a
/// generated one ([`generated_replica_id`]).
pub fn replica_id_of(configured: Option<String>) -> Result<String, BadReplicaId> {
    match configured {
        Some(id) => check_replica_id(&id).map(|()| id),
        None => Ok(generated_replica_id()),
    }
}

/// A replica id for a server not given one: `r-` and 8 random hex digits.
pub fn generated_replica_id() -> String {
    let mut bytes = [0u8; 4];
    OsRng.fill_bytes(&mut bytes);
    format!("r-{}", hex::encode(bytes))
}

/// This process's leases: its holder name and what it last learnt of each
/// job.
#[derive(Debug)]
pub struct Leases {
    holder: String,
    held: Mutex<BTreeMap<Job, bool>>,
}

impl Leases {
    /// The leases of replica `replica`. The holder name adds a random
    /// instance to the id, so two processes given the same id by mistake
    /// (or a restart while the old process's lease is live) never both
    /// believe they hold a job.
    pub fn new(replica: &str) -> Leases {
        let mut bytes = [0u8; 4];
        OsRng.fill_bytes(&mut bytes);
        Leases {
            holder: format!("{replica}/{}", hex::encode(bytes)),
            held: Mutex::new(BTreeMap::new()),
        }
    }

    /// The name this process holds leases under.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes or renews `job`'s lease for `lease`: true when this process
    /// holds it now (and so runs the job's pass).
    ///
    /// The lease is read first, which writes nothing: another's lease in
    /// force is a refusal, and this process's own with more than half of
    /// `lease` left (and no more than `lease`) is held as it is. Only then
    /// is it taken or renewed, a write and so a durable commit. Jobs ask
    /// before every pass (the granter at every chunk stored, each replica
    /// when woken by another), and on PostgreSQL each such commit waited
    /// for the disk beside the chunks' and grants' own.
    pub async fn hold(&self, store: &Store, job: Job, lease: Duration) -> Result<bool, StoreError> {
        let now = crate::store::now_seconds_sql(store.engine());
        let seconds = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX / 2);
        let current: Option<(String, i64, i64)> = sqlx::query_as(&format!(
            "SELECT holder, expires_unix, {now} FROM job_leases WHERE job = $1"
        ))
        .bind(job.name())
        .fetch_optional(store.pool())
        .await?;
        let settled = current.and_then(|(holder, expires, now)| {
            let left = expires.saturating_sub(now);
            if holder != self.holder {
                (left > 0).then_some(false)
            } else {
                (left > seconds / 2 && left <= seconds).then_some(true)
            }
        });
        let holds = match settled {
            Some(holds) => holds,
            None => self.take(store, job, seconds).await?,
        };
        let before = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job, holds);
        match (before.unwrap_or(false), holds) {
            (false, true) => tracing::info!(job = job.name(), "this replica runs the job"),
            (true, false) => tracing::warn!(job = job.name(), "another replica took the job over"),
            _ => {}
        }
        Ok(holds)
    }

    /// Takes `job`'s lease for `seconds` if it is free, expired or this
    /// process's (renewing it): whether it did.
    async fn take(&self, store: &Store, job: Job, seconds: i64) -> Result<bool, StoreError> {
        let now = crate::store::now_seconds_sql(store.engine());
        let sql = format!(
            "INSERT INTO job_leases (job, holder, expires_unix) VALUES ($1, $2, {now} + $3) \
             ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, \
             expires_unix = excluded.expires_unix \
             WHERE job_leases.holder = excluded.holder OR job_leases.expires_unix <= {now}"
        );
        let done = sqlx::query(&sql)
            .bind(job.name())
            .bind(&self.holder)
            .bind(seconds)
            .execute(store.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether `job`, whose passes come every `every`, should run a pass
    /// now: [`Leases::leading_for`] a lease of [`lease_for`]`(every)`.
    pub async fn leading(&self, store: &Store, job: Job, every: Duration) -> bool {
        self.leading_for(store, job, lease_for(every)).await
    }

    /// Whether `job` should run a pass now: [`Leases::hold`] for `lease`,
    /// with an error logged and taken as "not now" (the next pass asks
    /// again).
    pub async fn leading_for(&self, store: &Store, job: Job, lease: Duration) -> bool {
        match self.hold(store, job, lease).await {
            Ok(holds) => holds,
            Err(e) => {
                tracing::warn!(job = job.name(), "job lease: {e}");
                false
            }
        }
    }

    /// At start: frees the leases a dead earlier process of this server
    /// may still hold, so its jobs do not wait for their expiry. On SQLite
    /// (one process) every lease; on PostgreSQL those of `replica` (a
    /// replica id is one process at a time, so a restarted replica's old
    /// leases are its own).
    pub async fn clear_stale(&self, store: &Store, replica: &str) -> Result<u64, StoreError> {
        let done = match store.engine() {
            Engine::Sqlite => {
                sqlx::query("DELETE FROM job_leases")
                    .execute(store.pool())
                    .await?
            }
            Engine::Postgres => {
                sqlx::query("DELETE FROM job_leases WHERE holder LIKE $1")
                    .bind(format!("{replica}/%"))
                    .execute(store.pool())
                    .await?
            }
        };
        Ok(done.rows_affected())
    }

    /// Gives up every lease this process holds (at shutdown), so another
    /// replica takes the jobs over at its next pass.
    pub async fn release_all(&self, store: &Store) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM job_leases WHERE holder = $1")
            .bind(&self.holder)
            .execute(store.pool())
            .await?;
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(done.rows_affected())
    }

    /// Whether this process held each job at its last pass (for the
    /// metrics): jobs not asked about yet are left out.
    pub fn held(&self) -> Vec<(Job, bool)> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(j, h)| (*j, *h))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_are_checked() {
        for ok in ["a", "market-1", "eu.west_2", &"x".repeat(64)] {
            assert!(check_replica_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", "a\"b", &"x".repeat(65)] {
            assert!(check_replica_id(bad).is_err(), "{bad}");
        }
        assert_eq!(replica_id_of(Some("m1".into())).unwrap(), "m1");
        assert!(replica_id_of(Some("a b".into())).is_err());
        assert!(replica_id_of(None).unwrap().starts_with("r-"));
        let generated = generated_replica_id();
        assert!(check_replica_id(&generated).is_ok(), "{generated}");
        assert_ne!(generated, generated_replica_id());
    }

    #[test]
    fn leases_span_three_passes_and_ten_seconds_at_least() {
        assert_eq!(lease_for(Duration::from_secs(1)), MIN_LEASE);
        assert_eq!(lease_for(Duration::from_secs(30)), Duration::from_secs(90));
        assert_eq!(lease_for(Duration::from_secs(5)), Duration::from_secs(15));
    }

    #[test]
    fn holders_differ_even_for_one_replica_id() {
        let (a, b) = (Leases::new("m"), Leases::new("m"));
        assert!(a.holder().starts_with("m/"));
        assert_ne!(a.holder(), b.holder());
    }
}
