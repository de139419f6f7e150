//! Registered machines in the database (`machines`). A machine is read
//! back as its API view, [`MachineView`]: what is stored is what is shown.

use sealstream_api::machines::MachineView;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::store::{DbError, Store};

const COLUMNS: &str = "did, owner_did, chain_public_key, recipients, signature, registered_at";

fn machine_of(row: &AnyRow) -> Result<MachineView, DbError> {
    let recipients: String = row.try_get("recipients")?;
    Ok(MachineView {
        did: row.try_get("did")?,
        owner_did: row.try_get("owner_did")?,
        chain_public_key: row.try_get("chain_public_key")?,
        recipients: serde_json::from_str(&recipients)
            .map_err(|e| DbError::inconsistent("machines.recipients", e.to_string()))?,
        signature: row.try_get("signature")?,
        registered_at: row.try_get("registered_at")?,
    })
}

/// Registers `machine` with its statement and chain key signature, inside
/// `tx`. Returns `false` when its DID is taken or (a unique index) its
/// chain key is another machine's.
pub(crate) async fn insert(
    tx: &mut Transaction<'static, Any>,
    machine: &MachineView,
    statement: &str,
    chain_key_signature: &str,
) -> Result<bool, DbError> {
    let recipients = serde_json::to_string(&machine.recipients)
        .map_err(|e| DbError::inconsistent("machines.recipients", e.to_string()))?;
    let inserted = sqlx::query(
        "INSERT INTO machines (did, owner_did, chain_public_key, recipients, statement, signature, \
         chain_key_signature, registered_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(&machine.did)
    .bind(&machine.owner_did)
    .bind(&machine.chain_public_key)
    .bind(&recipients)
    .bind(statement)
    .bind(&machine.signature)
    .bind(chain_key_signature)
    .bind(&machine.registered_at)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Whether `did` is a registered machine.
pub(crate) async fn is_registered<'e, E>(executor: E, did: &str) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    Ok(sqlx::query("SELECT 1 FROM machines WHERE did = $1")
        .bind(did)
        .fetch_optional(executor)
        .await?
        .is_some())
}

/// The machine `did` (canonical text), if registered.
pub(crate) async fn machine(store: &Store, did: &str) -> Result<Option<MachineView>, DbError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM machines WHERE did = $1"))
        .bind(did)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(machine_of).transpose()
}

/// The machines of `owner` (every machine when `None`), oldest first.
pub(crate) async fn list(store: &Store, owner: Option<&str>) -> Result<Vec<MachineView>, DbError> {
    let rows = match owner {
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM machines ORDER BY registered_at, did"
            ))
            .fetch_all(store.pool())
            .await?
        }
        Some(owner) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM machines WHERE owner_did = $1 ORDER BY registered_at, did"
            ))
            .bind(owner)
            .fetch_all(store.pool())
            .await?
        }
    };
    rows.iter().map(machine_of).collect()
}
