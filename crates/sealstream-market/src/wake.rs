//! Wake-ups, on this replica and across replicas (issue 24).
//!
//! Work that waits for something another request does is woken in process
//! when it happens: a live feed when its subscription changed or was
//! granted a chunk (`subscriptions::feed::Feeds`), the grant daemons' long
//! polls when a chunk was ingested, the operator-key granter when an order
//! was paid or a live chunk stored, the escrow job when a dispute was
//! posted, and the granter's cache of opened chunk keys is emptied when an
//! operator key changed. With several replicas on one PostgreSQL database
//! the waiting side may be on another replica, so every wake-up is also
//! sent with `pg_notify` on the channel [`CHANNEL`], and every replica
//! listens there ([`spawn`]) and applies what the others sent, exactly as
//! if it had happened on it. A replica that loses its listening connection
//! may have missed some: when it is back, it wakes everything once.
//!
//! On SQLite (one process) wake-ups stay in process.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::server::AppState;
use crate::store::Engine;

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "sealstream_wake";

/// Wake-ups queued for sending to the other replicas, at most.
const OUTBOX: usize = 4_096;

/// How long the listening connection may stay quiet before it is checked.
const QUIET: Duration = Duration::from_secs(30);

/// The longest a live feed waits without reading its subscription when
/// replicas share the database: a backstop for a wake-up lost on the way
/// (a full queue, a failed `pg_notify`, a listener reconnecting).
pub const FEED_RECHECK: Duration = Duration::from_secs(60);

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// Subscription `id` changed (state, payment, key): its feeds re-read
    /// it, and pending pairs may have appeared.
    Changed(String),
    /// Grants were stored for subscription `id`: its feeds read them.
    Granted(String),
    /// A chunk was ingested: the pending lists' long polls look again.
    Ingested,
    /// The operator-key granter has work (an order paid, a live chunk
    /// stored, an operator key registered).
    Grant,
    /// The escrow job has work (a dispute).
    Escrow,
    /// An operator key was registered, replaced or removed: the chunk keys
    /// opened with the old one are forgotten.
    OperatorKeys,
}

impl Signal {
    /// The notification's payload: a kind, and an argument for some.
    fn encode(&self) -> String {
        match self {
            Signal::Changed(id) => format!("changed {id}"),
            Signal::Granted(id) => format!("granted {id}"),
            Signal::Ingested => "ingested".into(),
            Signal::Grant => "grant".into(),
            Signal::Escrow => "escrow".into(),
            Signal::OperatorKeys => "operator-keys".into(),
        }
    }

    /// The signal of a payload ([`Signal::encode`]); `None` for one this
    /// version does not know (a newer replica's).
    fn decode(payload: &str) -> Option<Signal> {
        let (kind, arg) = payload.split_once(' ').unwrap_or((payload, ""));
        let id = || (!arg.is_empty()).then(|| arg.to_string());
        Some(match kind {
            "changed" => Signal::Changed(id()?),
            "granted" => Signal::Granted(id()?),
            "ingested" => Signal::Ingested,
            "grant" => Signal::Grant,
            "escrow" => Signal::Escrow,
            "operator-keys" => Signal::OperatorKeys,
            _ => return None,
        })
    }
}

/// The queue of wake-ups for the other replicas (empty on SQLite, and
/// until [`spawn`] runs).
#[derive(Debug, Default)]
pub struct Outbox(OnceLock<mpsc::Sender<String>>);

/// Applies `signal` on this replica and sends it to the others. Call after
/// the commit of what it tells of.
pub fn send(state: &AppState, signal: Signal) {
    apply(state, &signal);
    if let Some(queue) = state.outbox.0.get() {
        // A full queue means the database is not keeping up; the replicas
        // that miss this wake-up find the work at their next pass.
        let _ = queue.try_send(format!("{} {}", state.leases.holder(), signal.encode()));
    }
}

/// What `signal` does on this replica.
fn apply(state: &AppState, signal: &Signal) {
    match signal {
        Signal::Changed(id) => state.feeds.changed(id),
        Signal::Granted(id) => state.feeds.granted(id),
        Signal::Ingested => state.feeds.ingested(),
        Signal::Grant => state.grant_wake.notify_one(),
        Signal::Escrow => state.escrow_wake.notify_one(),
        Signal::OperatorKeys => state.opened_keys.forget_all(),
    }
}

/// Everything that may have been missed: every feed, the long polls, the
/// granter and the escrow job are woken, and the opened keys forgotten.
fn apply_all(state: &AppState) {
    state.feeds.wake_all();
    state.grant_wake.notify_one();
    state.escrow_wake.notify_one();
    state.opened_keys.forget_all();
}

/// On PostgreSQL, starts the two tasks that carry wake-ups between
/// replicas: one sends this replica's with `pg_notify`, one listens to the
/// others'. `None` on SQLite.
pub fn spawn(state: &AppState) -> Option<[tokio::task::JoinHandle<()>; 2]> {
    if state.store.engine() != Engine::Postgres {
        return None;
    }
    let (queue, outgoing) = mpsc::channel(OUTBOX);
    state.outbox.0.set(queue).ok()?;
    let sender = tokio::spawn(send_loop(state.clone(), outgoing));
    let listener = tokio::spawn(listen_loop(state.clone()));
    Some([sender, listener])
}

/// Wake-ups sent in one statement, at most.
const BURST: usize = 512;

/// Sends the queued wake-ups: each distinct one of a burst once, the whole
/// burst in one statement (one round trip; a granter's pass over a topic
/// wakes one subscription per buyer).
async fn send_loop(state: AppState, mut outgoing: mpsc::Receiver<String>) {
    let mut seen = std::collections::HashSet::new();
    while let Some(first) = outgoing.recv().await {
        seen.clear();
        seen.insert(first.clone());
        let mut burst = vec![first];
        while burst.len() < BURST {
            match outgoing.try_recv() {
                Ok(more) => {
                    if seen.insert(more.clone()) {
                        burst.push(more);
                    }
                }
                Err(_) => break,
            }
        }
        // The statement's text depends on the burst's size: not kept
        // prepared (it would churn the connections' statement caches).
        let sql = notify_sql(burst.len());
        let notify = || {
            let mut query = sqlx::query(&sql).bind(CHANNEL).persistent(false);
            for payload in &burst {
                query = query.bind(payload);
            }
            query.execute(state.store.pool())
        };
        // One retry: a lost burst leaves the other replicas to their next
        // pass (and the feeds to their 60 s backstop).
        let mut sent = notify().await;
        if sent.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sent = notify().await;
        }
        if let Err(e) = sent {
            tracing::warn!(
                count = burst.len(),
                "wake-ups for the other replicas not sent: {e}"
            );
        }
    }
}

/// One statement notifying `n` payloads (`$2` to `$n+1`) on the channel
/// `$1`: PostgreSQL delivers them as `n` notifications.
fn notify_sql(n: usize) -> String {
    let mut sql = String::from("SELECT pg_notify($1, p) FROM (VALUES ");
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(CAST(${} AS TEXT))", i + 2));
    }
    sql.push_str(") AS v(p)");
    sql
}

/// Listens on [`CHANNEL`] and applies the other replicas' wake-ups;
/// after a lost connection (or at first), wakes everything once.
async fn listen_loop(state: AppState) {
    let url = state.config.database_url();
    let own = format!("{} ", state.leases.holder());
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("wake-ups from the other replicas: cannot connect: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!("wake-ups from the other replicas: cannot listen: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Whatever was sent before this point was missed.
        apply_all(&state);
        loop {
            // A connection dropped silently (a NAT's idle timeout) would
            // never answer: after a quiet while it is asked something, and
            // replaced when that fails.
            let next = match tokio::time::timeout(QUIET, listener.try_recv()).await {
                Ok(next) => next,
                Err(_) => match sqlx::query("SELECT 1").execute(&mut listener).await {
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!("wake-ups from the other replicas: {e}; reconnecting");
                        break;
                    }
                },
            };
            match next {
                Ok(Some(n)) => {
                    let payload = n.payload();
                    if payload.starts_with(&own) {
                        continue;
                    }
                    let signal = payload.split_once(' ').and_then(|(_, s)| Signal::decode(s));
                    match signal {
                        Some(signal) => apply(&state, &signal),
                        None => tracing::debug!("unknown wake-up ignored"),
                    }
                }
                Ok(None) => {
                    tracing::warn!("wake-ups from the other replicas: connection lost, again");
                    apply_all(&state);
                }
                Err(e) => {
                    tracing::warn!("wake-ups from the other replicas: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_notifies_a_burst() {
        assert_eq!(
            notify_sql(1),
            "SELECT pg_notify($1, p) FROM (VALUES (CAST($2 AS TEXT))) AS v(p)"
        );
        assert_eq!(
            notify_sql(3),
            "SELECT pg_notify($1, p) FROM (VALUES (CAST($2 AS TEXT)), (CAST($3 AS TEXT)), \
             (CAST($4 AS TEXT))) AS v(p)"
        );
    }

    #[test]
    fn signals_round_trip_and_unknown_ones_are_none() {
        for s in [
            Signal::Changed("sub_1".into()),
            Signal::Granted("sub_2".into()),
            Signal::Ingested,
            Signal::Grant,
            Signal::Escrow,
            Signal::OperatorKeys,
        ] {
            assert_eq!(Signal::decode(&s.encode()), Some(s));
        }
        for bad in ["", "changed", "changed ", "later-kind x", "granted"] {
            assert_eq!(Signal::decode(bad), None, "{bad}");
        }
    }
}
