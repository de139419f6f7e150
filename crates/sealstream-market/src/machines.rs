//! Machines: `POST /v1/machines` (an owner registers a machine with the
//! machine's signature over the registration statement,
//! `sealstream_api::registration`), `GET /v1/machines` (the caller's
//! machines; an admin's: all) and `GET /v1/machines/{did}` (its owner, the
//! machine itself and admins; anyone else gets the same 404 as for a machine
//! that does not exist).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sealstream_api::registration::MachineRegistration;
use sealstream_core::identity::{Did, Eip191Signature};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::auth::{audit_details, Principal, Role};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::server::AppState;

pub use sealstream_api::machines::{MachineList, MachineRecipient, MachineView, RegisterMachine};

/// The machine routes.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route(sealstream_api::routes::MACHINES, get(list).post(register))
        .route(sealstream_api::routes::MACHINE, get(show))
}

const COLUMNS: &str = "did, owner_did, chain_public_key, recipients, signature, registered_at";

fn view(row: &AnyRow) -> ApiResult<MachineView> {
    let recipients: String = row.try_get("recipients")?;
    Ok(MachineView {
        did: row.try_get("did")?,
        owner_did: row.try_get("owner_did")?,
        chain_public_key: row.try_get("chain_public_key")?,
        recipients: serde_json::from_str(&recipients)
            .map_err(|e| ApiError::internal("machines.recipients", e))?,
        signature: row.try_get("signature")?,
        registered_at: row.try_get("registered_at")?,
    })
}

/// Registers a machine under the caller (who needs the owner role).
#[utoipa::path(post, path = sealstream_api::routes::MACHINES, tag = "machines",
    security(("session" = [])),
    request_body = RegisterMachine,
    responses(
        (status = 201, description = "Registered", body = MachineView),
        (status = 400, description = "A malformed field (named)", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid session", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an owner", body = crate::openapi::ErrorBody),
        (status = 409, description = "The machine is already registered, or its chain key is another machine's", body = crate::openapi::ErrorBody),
        (status = 422, description = "A signature is not the machine's or the chain key's over the statement naming the caller", body = crate::openapi::ErrorBody)))]
pub(crate) async fn register(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<RegisterMachine>,
) -> ApiResult<(StatusCode, Json<MachineView>)> {
    principal.require(Role::Owner)?;
    let recipients: Vec<(&str, &str, &str)> = request
        .recipients
        .iter()
        .map(|r| {
            (
                r.recipient_id.as_str(),
                r.recipient_type.as_str(),
                r.public_key_hex.as_str(),
            )
        })
        .collect();
    let registration = MachineRegistration::from_text(
        &principal.did,
        &request.machine_did,
        &request.chain_public_key,
        &recipients,
    )
    .map_err(|e| ApiError::bad_request(&e.field, e.constraint))?;
    let signature = Eip191Signature::from_hex(&request.signature, "signature")
        .map_err(|e| ApiError::bad_request(&e.field, e.constraint))?;
    registration
        .verify(&signature)
        .map_err(|e| ApiError::unprocessable(&e.field, e.constraint))?;
    registration
        .verify_chain_key(&request.chain_key_signature)
        .map_err(|e| ApiError::unprocessable(&e.field, e.constraint))?;

    let machine = MachineView {
        did: registration.machine.to_string(),
        owner_did: registration.owner.to_string(),
        chain_public_key: registration.chain_public_key.to_hex(),
        recipients: registration
            .recipients
            .iter()
            .map(|r| MachineRecipient {
                recipient_id: r.recipient_id.clone(),
                recipient_type: r.recipient_type.clone(),
                public_key_hex: r.public_key.to_hex(),
            })
            .collect(),
        signature: signature.to_hex(),
        registered_at: sealstream_core::utc::now(),
    };
    let recipients_json = serde_json::to_string(&machine.recipients)
        .map_err(|e| ApiError::internal("machines.recipients", e))?;

    let mut tx = state.store.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO machines (did, owner_did, chain_public_key, recipients, statement, signature, \
         chain_key_signature, registered_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(&machine.did)
    .bind(&machine.owner_did)
    .bind(&machine.chain_public_key)
    .bind(&recipients_json)
    .bind(registration.statement())
    .bind(&machine.signature)
    .bind(request.chain_key_signature.to_ascii_lowercase())
    .bind(&machine.registered_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted != 1 {
        // The DID is taken, or (a unique index) the chain key is another
        // machine's.
        let registered = sqlx::query("SELECT 1 FROM machines WHERE did = $1")
            .bind(&machine.did)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if registered {
            return Err(ApiError::conflict(
                Some("machineDid"),
                format!("machine {} is already registered", machine.did),
            ));
        }
        tracing::warn!(
            owner = %principal.did,
            machine = %machine.did,
            "machine registration refused: its chain key belongs to another machine"
        );
        return Err(ApiError::conflict(
            Some("chainPublicKey"),
            "this chain key is registered to another machine",
        ));
    }
    let details = audit_details(&serde_json::json!({
        "ownerDid": machine.owner_did,
        "chainPublicKey": machine.chain_public_key,
        "recipients": machine.recipients,
    }));
    crate::audit::append(
        &mut tx,
        &principal.did,
        "machine.register",
        &machine.did,
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(machine)))
}

/// The caller's machines (an admin's: all machines).
#[utoipa::path(get, path = sealstream_api::routes::MACHINES, tag = "machines",
    security(("session" = [])),
    responses(
        (status = 200, description = "The machines", body = MachineList),
        (status = 401, description = "No valid session", body = crate::openapi::ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<MachineList>> {
    let rows = if principal.has(Role::Admin) {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM machines ORDER BY registered_at, did"
        ))
        .fetch_all(state.store.pool())
        .await?
    } else {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM machines WHERE owner_did = $1 ORDER BY registered_at, did"
        ))
        .bind(&principal.did)
        .fetch_all(state.store.pool())
        .await?
    };
    let machines = rows.iter().map(view).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(MachineList { machines }))
}

/// One machine, for its owner, itself and admins.
#[utoipa::path(get, path = sealstream_api::routes::MACHINE, tag = "machines",
    security(("session" = [])),
    params(("did" = String, Path, description = "The machine, did:peaq:0x…", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$")),
    responses(
        (status = 200, description = "The machine", body = MachineView),
        (status = 400, description = "Malformed DID", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid session", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such machine visible to the caller", body = crate::openapi::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(did): ApiPath<String>,
) -> ApiResult<Json<MachineView>> {
    let did = Did::parse(&did, "did")
        .map_err(|e| ApiError::bad_request(&e.field, e.constraint))?
        .to_string();
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM machines WHERE did = $1"))
        .bind(&did)
        .fetch_optional(state.store.pool())
        .await?;
    let missing = || ApiError::not_found(format!("machine {did} not found"));
    let machine = view(&row.ok_or_else(missing)?)?;
    let visible = principal.has(Role::Admin)
        || principal.did == machine.did
        || principal.owner_access(&machine.owner_did)?;
    if !visible {
        return Err(missing());
    }
    Ok(Json(machine))
}
