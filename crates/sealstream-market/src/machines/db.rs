//! Registered machines in the database (`machines`). A machine is read
//! back as its API view, [`MachineView`]: what is stored is what is shown.

use sealstream_api::machines::{MachineView, SignedRegistration};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use crate::store::{changed, DbError, Store, Tx};

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
    tx: &mut Tx,
    machine: &MachineView,
    statement: &str,
    chain_key_signature: &str,
) -> Result<bool, DbError> {
    let recipients = serde_json::to_string(&machine.recipients)
        .map_err(|e| DbError::inconsistent("machines.recipients", e.to_string()))?;
    let query = sqlx::query(
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
    .bind(&machine.registered_at);
    Ok(changed(tx, query).await? == 1)
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

/// The signed registration of machine `did` (canonical text), if
/// registered: the document its owner sent, with the owner it names, so
/// that a buyer can check both signatures.
pub(crate) async fn signed_registration(
    store: &Store,
    did: &str,
) -> Result<Option<SignedRegistration>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS}, chain_key_signature FROM machines WHERE did = $1"
    ))
    .bind(did)
    .fetch_optional(store.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let machine = machine_of(&row)?;
    Ok(Some(SignedRegistration {
        owner_did: machine.owner_did,
        machine_did: machine.did,
        chain_public_key: machine.chain_public_key,
        recipients: machine.recipients,
        signature: machine.signature,
        chain_key_signature: row.try_get("chain_key_signature")?,
    }))
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
