//! Machines: `POST /v1/machines` (an owner registers a machine with the
//! machine's signature over the registration statement,
//! `sealstream_api::registration`), `GET /v1/machines` (the caller's
//! machines; an admin's: all) and `GET /v1/machines/{did}` (its owner, the
//! machine itself and admins; anyone else gets the same 404 as for a machine
//! that does not exist).

pub(crate) mod db;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sealstream_core::identity::Eip191Signature;

use crate::auth::{audit_details, canonical_did, same_did, Principal, Role};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::logs::Pseudonym;
use crate::server::AppState;

pub use sealstream_api::machines::{MachineList, MachineRecipient, MachineView, RegisterMachine};

/// The machine routes.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route(sealstream_api::routes::MACHINES, get(list).post(register))
        .route(sealstream_api::routes::MACHINE, get(show))
}

/// Whether `principal` may read `machine` and its chains: the machine
/// itself, its owner (while an owner: a 403 once the role is revoked), or
/// an admin.
pub fn may_read(principal: &Principal, machine: &MachineView) -> ApiResult<bool> {
    Ok(same_did(&principal.did, &machine.did)
        || principal.has(Role::Admin)
        || principal.owner_access(&machine.owner_did)?)
}

/// The machine `did` (as given in a request path, field `did`) if
/// `principal` may read it; a 404 otherwise, whether it is not registered
/// or belongs to someone else.
pub async fn readable_machine(
    state: &AppState,
    principal: &Principal,
    did: &str,
) -> ApiResult<MachineView> {
    let did = canonical_did(did, "did")?;
    match db::machine(&state.store, &did).await? {
        Some(m) if may_read(principal, &m)? => Ok(m),
        _ => Err(ApiError::not_found(format!("machine {did} not found"))),
    }
}

/// Registers a machine under the caller (who needs the owner role).
#[utoipa::path(post, path = sealstream_api::routes::MACHINES, tag = "machines",
    security(("session" = [])),
    request_body = RegisterMachine,
    responses(
        (status = 201, description = "Registered", body = MachineView),
        (status = 400, description = "A malformed field (named)", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an owner", body = crate::openapi::ErrorBody),
        (status = 409, description = "The machine is already registered, or its chain key is another machine's", body = crate::openapi::ErrorBody),
        (status = 422, description = "A signature is not the machine's or the chain key's over the statement naming the caller", body = crate::openapi::ErrorBody)))]
pub(crate) async fn register(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<RegisterMachine>,
) -> ApiResult<(StatusCode, Json<MachineView>)> {
    principal.require(Role::Owner)?;
    let registration = request
        .registration(&principal.did)
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
    let mut tx = state.store.begin().await?;
    let chain_key_signature = request.chain_key_signature.to_ascii_lowercase();
    if !db::insert(
        &mut tx,
        &machine,
        &registration.statement(),
        &chain_key_signature,
    )
    .await?
    {
        // The DID is taken, or (a unique index) the chain key is another
        // machine's.
        if db::is_registered(&mut *tx, &machine.did).await? {
            return Err(ApiError::conflict(
                Some("machineDid"),
                format!("machine {} is already registered", machine.did),
            ));
        }
        tracing::warn!(
            owner = %Pseudonym::of(&principal.did),
            machine = %Pseudonym::of(&machine.did),
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
    tracing::info!(
        machine = %Pseudonym::of(&machine.did),
        owner = %Pseudonym::of(&machine.owner_did),
        recipients = machine.recipients.len(),
        "machine registered"
    );
    Ok((StatusCode::CREATED, Json(machine)))
}

/// The caller's machines (an admin's: all machines).
#[utoipa::path(get, path = sealstream_api::routes::MACHINES, tag = "machines",
    security(("session" = [])),
    responses(
        (status = 200, description = "The machines", body = MachineList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<MachineList>> {
    let owner = (!principal.has(Role::Admin)).then_some(principal.did.as_str());
    let machines = db::list(&state.store, owner).await?;
    Ok(Json(MachineList { machines }))
}

/// One machine, for its owner, itself and admins.
#[utoipa::path(get, path = sealstream_api::routes::MACHINE, tag = "machines",
    security(("session" = [])),
    params(("did" = String, Path, description = "The machine, did:peaq:0x…", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$")),
    responses(
        (status = 200, description = "The machine", body = MachineView),
        (status = 400, description = "Malformed DID", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such machine visible to the caller", body = crate::openapi::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(did): ApiPath<String>,
) -> ApiResult<Json<MachineView>> {
    Ok(Json(readable_machine(&state, &principal, &did).await?))
}
