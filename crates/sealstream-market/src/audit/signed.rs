//! Signed heads of the audit log ([`sealstream_api::audit`]).
//!
//! The server signs the log's head with its key (the receipt key) at start,
//! every `--audit-sign-interval` while events are appended, when an auditor
//! asks (`GET /v1/audit/head`) and when it stops. Each signed head is kept
//! in the `audit_heads` table and the newest also in a file outside the
//! database (`<data dir>/audit-head.json`), so that someone who can write
//! the database but not the data directory cannot roll the log back by
//! deleting both events and heads. At start, and in `market audit verify`,
//! the log must verify as a chain *and* still hold the newest signed head
//! (from the table, the file, or an anchor exported earlier with
//! `market audit anchor`): a log cut short or rewritten with recomputed
//! hashes fails, naming the event. Events appended after the newest signed
//! head are covered by the chain only until the next signature.

use std::path::Path;

use sealstream_api::audit::SignedAuditHead;
use sealstream_core::keys::{ReceiptPublicKey, ReceiptSigningKey};

use super::{db, head, verify_against, AuditError, AuditReport};
use crate::store::{Store, StoreError};

/// The file the newest signed head is kept in, under the data directory.
pub const HEAD_FILE: &str = "audit-head.json";

/// Why a signed head could not be made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignedHeadError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The head file could not be written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The filesystem's reason.
        source: std::io::Error,
    },
    /// A stored head is malformed.
    #[error("audit head: {0}")]
    Invalid(#[from] sealstream_core::ValidationError),
    /// The log no longer holds the newest signed head: it was cut short or
    /// rewritten while the server ran. Nothing is signed.
    #[error("the audit log no longer holds the signed head of {events} events: not signing")]
    Diverged {
        /// The event count of the signed head.
        events: u64,
    },
}

impl From<sqlx::Error> for SignedHeadError {
    fn from(e: sqlx::Error) -> Self {
        SignedHeadError::Store(StoreError::Database(e))
    }
}

/// The newest signed head in the database, if any.
pub async fn latest(store: &Store) -> Result<Option<SignedAuditHead>, SignedHeadError> {
    db::latest_head(store).await
}

/// The head kept in `path`, if the file exists.
pub fn read_file(path: &Path) -> Result<Option<SignedAuditHead>, SignedHeadError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(SignedAuditHead::parse(&bytes)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SignedHeadError::File {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Signs the log's current head with `key` unless the newest signed head
/// already covers it; stores it in `audit_heads` and, when `file` is given,
/// writes it there (atomically, mode 0600). Returns the newest signed head.
/// Refuses ([`SignedHeadError::Diverged`]) when the log no longer holds the
/// newest signed head (in the table or the file): a head is never signed
/// over a log that was cut short or rewritten.
///
/// Calls in one process take turns: the periodic signer, `GET
/// /v1/audit/head` and the signing at shutdown can come at once, and each
/// reads the newest head before it writes its own.
pub async fn sign_current(
    store: &Store,
    key: &ReceiptSigningKey,
    file: Option<&Path>,
) -> Result<SignedAuditHead, SignedHeadError> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = TURN.lock().await;
    let current = head(store).await?;
    let stored = latest(store).await?;
    let kept = match file {
        Some(path) => read_file(path)?,
        None => None,
    };
    let newest = [stored.clone(), kept]
        .into_iter()
        .flatten()
        .max_by_key(|h| h.events);
    if let Some(last) = &newest {
        let held: Option<String> = if last.events == 0 {
            Some(super::GENESIS.to_string())
        } else {
            db::hash_of(store, last.events).await?
        };
        if held.as_deref() != Some(last.head.as_str()) {
            tracing::error!(
                signed_events = last.events,
                events = current.events,
                "the audit log no longer holds its signed head: cut short or rewritten"
            );
            return Err(SignedHeadError::Diverged {
                events: last.events,
            });
        }
    }
    if let Some(last) = stored {
        if last.events == current.events && last.head == current.head {
            return Ok(last);
        }
    }
    let signed = SignedAuditHead::sign(current.events, &current.head, key)?;
    db::insert_head(store, &signed).await?;
    if let Some(path) = file {
        crate::files::write_private(path, signed.to_pretty_json().as_bytes()).map_err(
            |source| SignedHeadError::File {
                path: path.display().to_string(),
                source,
            },
        )?;
    }
    Ok(signed)
}

/// Checks the log: the chain from the first event to the last, and that it
/// holds the newest of the signed heads found — in `audit_heads`, in `file`
/// and `anchor` — each of which must be signed by `key`. Returns the log's
/// report and the head it was checked against.
pub async fn verify_signed(
    store: &Store,
    key: &ReceiptPublicKey,
    file: Option<&Path>,
    anchor: Option<&SignedAuditHead>,
) -> Result<(AuditReport, Option<SignedAuditHead>), AuditError> {
    let bad =
        |what: &str, e: &dyn std::fmt::Display| AuditError::SignedHead(format!("{what}: {e}"));
    let mut heads = Vec::new();
    match latest(store).await {
        Ok(Some(h)) => heads.push(("the newest head in audit_heads", h)),
        Ok(None) => {}
        Err(e) => return Err(bad("audit_heads", &e)),
    }
    if let Some(path) = file {
        match read_file(path) {
            Ok(Some(h)) => heads.push(("the head file", h)),
            Ok(None) => {}
            Err(e) => return Err(bad("the head file", &e)),
        }
    }
    if let Some(h) = anchor {
        heads.push(("the anchor", h.clone()));
    }
    for (what, h) in &heads {
        h.verify(Some(key)).map_err(|e| bad(what, &e))?;
    }
    let newest = heads.into_iter().map(|(_, h)| h).max_by_key(|h| h.events);
    let published = newest.as_ref().map(|h| AuditReport {
        events: h.events,
        head: h.head.clone(),
    });
    let report = verify_against(store, published.as_ref()).await?;
    Ok((report, newest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{append_now, event_hash, Problem};
    use sealstream_core::json::{Map, Value};

    async fn store_with(n: u64) -> Store {
        let store = Store::open("sqlite::memory:").await.unwrap();
        for _ in 0..n {
            append_now(
                &store,
                "server",
                "test.event",
                "s",
                &Value::Object(Map::new()),
            )
            .await
            .unwrap();
        }
        store
    }

    async fn exec(store: &Store, sql: &str) {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }

    /// The periodic signer, `GET /v1/audit/head` and the signing at
    /// shutdown may run at once, each writing the head file: none fails
    /// (they shared one temporary file, and `/v1/audit/head` answered 503
    /// now and then).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn heads_signed_at_once_all_succeed() {
        let key = std::sync::Arc::new(ReceiptSigningKey::generate());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(HEAD_FILE);
        let store = store_with(1).await;
        let mut tasks = Vec::new();
        for i in 0..32 {
            let (store, key, file) = (store.clone(), key.clone(), file.clone());
            tasks.push(tokio::spawn(async move {
                if i % 4 == 0 {
                    append_now(
                        &store,
                        "server",
                        "test.event",
                        "s",
                        &Value::Object(Map::new()),
                    )
                    .await
                    .unwrap();
                }
                sign_current(&store, &key, Some(&file)).await
            }));
        }
        for task in tasks {
            task.await.unwrap().expect("every signing succeeds");
        }
        let last = sign_current(&store, &key, Some(&file)).await.unwrap();
        assert_eq!(last.events, 9);
        assert_eq!(read_file(&file).unwrap().unwrap().events, 9);
        let debris: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != HEAD_FILE)
            .collect();
        assert!(debris.is_empty(), "{debris:?}");
    }

    #[tokio::test]
    async fn a_cut_log_fails_against_its_signed_head() {
        let key = ReceiptSigningKey::generate();
        let store = store_with(4).await;
        let signed = sign_current(&store, &key, None).await.unwrap();
        assert_eq!(signed.events, 4);
        verify_signed(&store, &key.public_key(), None, None)
            .await
            .unwrap();
        exec(&store, "DELETE FROM audit_events WHERE seq = 4").await;
        let e = verify_signed(&store, &key.public_key(), None, None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::Truncated {
                    events: 3,
                    expected: 4
                }
            ),
            "{e}"
        );
        // And the running server will not sign over it.
        assert!(matches!(
            sign_current(&store, &key, None).await,
            Err(SignedHeadError::Diverged { events: 4 })
        ));
    }

    #[tokio::test]
    async fn a_rewritten_tail_fails_even_with_recomputed_hashes() {
        let key = ReceiptSigningKey::generate();
        let store = store_with(3).await;
        sign_current(&store, &key, None).await.unwrap();
        let (at, prev): (String, String) =
            sqlx::query_as("SELECT at, prev FROM audit_events WHERE seq = 3")
                .fetch_one(store.pool())
                .await
                .unwrap();
        let forged = Value::String("forged".into());
        let hash = event_hash(3, &at, "server", "test.event", "s", &forged, &prev).unwrap();
        sqlx::query("UPDATE audit_events SET details = '\"forged\"', hash = $1 WHERE seq = 3")
            .bind(hash)
            .execute(store.pool())
            .await
            .unwrap();
        crate::audit::verify(&store)
            .await
            .expect("the chain alone is fine");
        let e = verify_signed(&store, &key.public_key(), None, None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::Broken {
                    seq: 3,
                    problem: Problem::NotPublishedHead
                }
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_head_file_and_an_anchor_outlive_the_database() {
        let key = ReceiptSigningKey::generate();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(HEAD_FILE);
        let store = store_with(2).await;
        let early = sign_current(&store, &key, Some(&file)).await.unwrap();
        for _ in 0..3 {
            append_now(
                &store,
                "server",
                "test.event",
                "s",
                &Value::Object(Map::new()),
            )
            .await
            .unwrap();
        }
        let anchor = sign_current(&store, &key, Some(&file)).await.unwrap();
        assert_eq!(anchor.events, 5);
        // Events and heads rolled back together in the database.
        exec(&store, "DELETE FROM audit_events WHERE seq > 2").await;
        exec(&store, "DELETE FROM audit_heads WHERE events > 2").await;
        verify_signed(&store, &key.public_key(), None, None)
            .await
            .expect("the database alone cannot tell");
        let e = verify_signed(&store, &key.public_key(), Some(&file), None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::Truncated {
                    events: 2,
                    expected: 5
                }
            ),
            "{e}"
        );
        // The file rolled back too: the anchor kept elsewhere still tells.
        crate::files::write_private(&file, early.to_pretty_json().as_bytes()).unwrap();
        verify_signed(&store, &key.public_key(), Some(&file), None)
            .await
            .unwrap();
        let e = verify_signed(&store, &key.public_key(), Some(&file), Some(&anchor))
            .await
            .unwrap_err();
        assert!(matches!(e, AuditError::Truncated { .. }), "{e}");
    }

    #[tokio::test]
    async fn heads_signed_by_another_key_are_refused() {
        let key = ReceiptSigningKey::generate();
        let mallory = ReceiptSigningKey::generate();
        let store = store_with(2).await;
        sign_current(&store, &mallory, None).await.unwrap();
        let e = verify_signed(&store, &key.public_key(), None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, AuditError::SignedHead(_)), "{e}");
        assert!(e.to_string().contains("not by the market key"), "{e}");
    }
}
