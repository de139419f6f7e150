//! Listings: what an owner offers for one of its datasets (title,
//! description, tags, domain, schema hint, sample chunks, license, price
//! and payment rail, delivery options), their lifecycle (draft →
//! published → withdrawn), the public listing page, its Dazaar-style card,
//! and sample chunks whose keys anyone may have.
//!
//! Owner routes answer 404 for a listing of another owner, exactly as for
//! one that does not exist; public routes show drafts and withdrawn
//! listings to their owner only. Every change appends an audit event in the
//! same transaction.

pub mod card;
pub(crate) mod db;
pub mod model;
pub mod samples;
pub mod stats;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use rand::RngCore;
use serde_json::{json, Value};

use crate::auth::{MaybePrincipal, Principal, Role};
use crate::catalog::{sales_bucket, QueryParams};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::server::AppState;
use crate::store::Tx;

pub use model::{
    CreateListing, DatasetState, DatasetSummary, HistoryPolicy, ListedDataset, Listing,
    ListingFields, ListingKind, ListingState, PatchListing, Rail, SubscriptionTerms,
};
pub use sealstream_api::listings::{ListingList, ListingView};

/// A new listing id: `ls_` + 32 hex digits.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{}{}", model::ID_PREFIX, hex::encode(bytes))
}

/// Audit details from serde JSON.
pub(crate) fn audit_details(v: Value) -> sealstream_core::json::Value {
    sealstream_core::json::parse(v.to_string().as_bytes())
        .unwrap_or_else(|_| sealstream_core::json::Value::Null)
}

pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("listing {id} not found"))
}

/// The listing if `caller` may see it: published listings to anyone,
/// others to their owner only.
pub(crate) async fn visible(
    tx: &mut Tx,
    id: &str,
    caller: Option<&Principal>,
) -> ApiResult<Listing> {
    let listing = db::listing(tx, id).await?.ok_or_else(|| not_found(id))?;
    if listing.state == ListingState::Published {
        return Ok(listing);
    }
    let owner = match caller {
        Some(p) => p.owner_access(&listing.owner_did)?,
        None => false,
    };
    if owner {
        Ok(listing)
    } else {
        Err(not_found(id))
    }
}

/// The listing if `caller` owns it (404 otherwise; 403 once the caller's
/// owner role is revoked).
pub(crate) async fn owned(tx: &mut Tx, id: &str, caller: &Principal) -> ApiResult<Listing> {
    match db::listing(tx, id).await? {
        Some(l) if caller.owner_access(&l.owner_did)? => Ok(l),
        _ => Err(not_found(id)),
    }
}

/// A transaction begun on the listing `id` for a change by `caller`: the
/// listing if `caller` owns it, as [`owned`]; 409 on `state`, with the
/// message `refusal` gives, when its state does not allow the change.
pub(crate) async fn begin_owned(
    state: &AppState,
    id: &str,
    caller: &Principal,
    refusal: impl FnOnce(ListingState) -> Option<String>,
) -> ApiResult<(Tx, Listing)> {
    let mut tx = state.store.begin().await?;
    let listing = owned(&mut tx, id, caller).await?;
    match refusal(listing.state) {
        Some(message) => Err(ApiError::conflict(Some("state"), message)),
        None => Ok((tx, listing)),
    }
}

pub(crate) async fn dataset_of(tx: &mut Tx, listing: &Listing) -> ApiResult<ListedDataset> {
    if listing.kind != ListingKind::Dataset {
        return Err(ApiError::conflict(
            Some("listingId"),
            format!(
                "listing {} is a subscription listing: it has no dataset",
                listing.id
            ),
        ));
    }
    db::listed_dataset(tx, &listing.dataset_id)
        .await?
        .ok_or_else(|| {
            ApiError::internal(
                "listing",
                format!("dataset {} of {} missing", listing.dataset_id, listing.id),
            )
        })
}

/// A compliance preset on a subscription listing (not offered: a
/// subscription's periods carry no receipt to record it in).
fn no_subscription_presets() -> ApiError {
    ApiError::bad_request(
        "compliance",
        "compliance presets apply to dataset listings, not to subscriptions",
    )
}

pub(crate) async fn view(tx: &mut Tx, listing: &Listing) -> ApiResult<ListingView> {
    let dataset = match listing.kind {
        ListingKind::Dataset => Some(dataset_of(tx, listing).await?.summary),
        ListingKind::Subscription => None,
    };
    let samples_available = db::disclosed(tx, &listing.id).await?;
    let f = &listing.fields;
    Ok(ListingView {
        id: listing.id.clone(),
        owner_did: listing.owner_did.clone(),
        kind: listing.kind,
        dataset_id: listing.dataset_id.clone(),
        subscription: listing.subscription.clone(),
        title: f.title.clone(),
        description: f.description.clone(),
        tags: f.tags.clone(),
        domain: f.domain.clone(),
        schema_hint: f.schema_hint.clone(),
        sample_chunk_indexes: f.sample_chunk_indexes.clone(),
        samples_available,
        license: f.license.clone(),
        price: f.price.clone(),
        rail: f.rail.clone(),
        delivery: f.delivery.clone(),
        compliance: f.compliance.clone(),
        compliance_hash: f.compliance.as_ref().map(|c| c.hash()),
        state: listing.state,
        sales: sales_bucket(listing.sales_count),
        created_at: listing.created_at.clone(),
        updated_at: listing.updated_at.clone(),
        published_at: listing.published_at.clone(),
        dataset,
    })
}

/// Appends `action` on `listing` by `caller` (with `details`) to the audit
/// log in `tx`, reads the listing's view in it and commits.
async fn commit_change(
    mut tx: Tx,
    caller: &Principal,
    action: &str,
    listing: &Listing,
    details: &sealstream_core::json::Value,
) -> ApiResult<ListingView> {
    crate::audit::append(&mut tx, &caller.did, action, &listing.id, details).await?;
    let view = view(&mut tx, listing).await?;
    tx.commit().await?;
    tracing::info!(
        listing = %listing.id,
        dataset = %listing.dataset_id,
        owner = %crate::logs::Pseudonym::of(&listing.owner_did),
        state = view.state.as_str(),
        "{}",
        match action {
            "listing.create" => "listing created",
            "listing.publish" => "listing published",
            "listing.withdraw" => "listing withdrawn",
            _ => "listing updated",
        }
    );
    Ok(view)
}

/// Refuses a rail on an EVM chain whose payments this server does not
/// verify (no `--evm-rpc` for its chain id): no order of it could ever be
/// paid. `refuse` makes the refusal from the field and the message (422 at
/// creation or change, 409 at publication).
fn check_rail_verified(
    state: &AppState,
    rail: &Rail,
    refuse: impl FnOnce(&str, String) -> ApiError,
) -> ApiResult<()> {
    match rail {
        Rail::Evm { chain_id, .. } if !state.evm.contains_key(chain_id) => Err(refuse(
            "rail.chainId",
            format!(
                "this server does not verify payments on chain {chain_id} (it has no --evm-rpc \
                 for it), so the listing could not be paid; chains verified: {}",
                verified_chains(state)
            ),
        )),
        _ => Ok(()),
    }
}

/// The chain ids the server verifies payments on, for a message.
fn verified_chains(state: &AppState) -> String {
    if state.evm.is_empty() {
        return "none (use an invoice rail)".into();
    }
    let ids: Vec<String> = state.evm.keys().map(u64::to_string).collect();
    ids.join(", ")
}

/// Refuses a machine that is not registered to `caller` (404 naming
/// `subscription.machineDid`, as for a machine that does not exist).
async fn check_machine_owned(state: &AppState, caller: &Principal, did: &str) -> ApiResult<()> {
    match crate::machines::db::machine(&state.store, did).await? {
        Some(m) if m.owner_did == caller.did => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("subscription.machineDid"),
            format!("machine {did} not found among the caller's"),
        )),
    }
}

fn check_samples_in(dataset: &DatasetSummary, indexes: &[u64]) -> ApiResult<()> {
    for (i, index) in indexes.iter().enumerate() {
        if !dataset.contains(*index) {
            return Err(ApiError::unprocessable(
                &format!("sampleChunkIndexes[{i}]"),
                format!(
                    "chunk {index} is not in dataset {} (chain indexes {} to {})",
                    dataset.id,
                    dataset.first_index,
                    dataset.first_index + dataset.chunk_count - 1
                ),
            ));
        }
    }
    Ok(())
}

/// Creates a draft listing for one of the caller's datasets.
#[utoipa::path(post, path = sealstream_api::routes::LISTINGS, tag = "listings",
    request_body = CreateListing,
    security(("session" = [])),
    responses(
        (status = 201, description = "The new draft listing", body = ListingView),
        (status = 400, description = "A field is malformed (named in `field`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The caller is not an owner", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such dataset of the caller's (`datasetId`)", body = crate::openapi::ErrorBody),
        (status = 422, description = "A sample chunk is outside the dataset, or the rail names an EVM chain whose payments the server does not verify (`rail.chainId`)", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(req): ApiJson<CreateListing>,
) -> ApiResult<(StatusCode, Json<ListingView>)> {
    caller.require(Role::Owner)?;
    let mut fields = ListingFields::from_create(&req)?;
    fields.price = model::snap_price(&fields.price, &state.config.price_ladder);
    let mut terms =
        model::subscription_terms(&req, state.config.min_subscription_period.as_secs())?;
    check_rail_verified(&state, &fields.rail, ApiError::unprocessable)?;
    if terms.is_some() && fields.compliance.is_some() {
        return Err(no_subscription_presets());
    }
    if let Some(t) = &mut terms {
        t.machine_did = crate::auth::canonical_did(&t.machine_did, "subscription.machineDid")?;
        check_machine_owned(&state, &caller, &t.machine_did).await?;
    }
    let mut tx = state.store.begin().await?;
    let dataset_id = if terms.is_some() {
        String::new()
    } else {
        let dataset = match db::listed_dataset(&mut tx, &req.dataset_id).await? {
            Some(d) if d.owner_did == caller.did => d,
            _ => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    Some("datasetId"),
                    format!("dataset {} not found", req.dataset_id),
                ))
            }
        };
        check_samples_in(&dataset, &fields.sample_chunk_indexes)?;
        dataset.id.clone()
    };
    let now = sealstream_core::utc::now();
    let listing = Listing {
        id: new_id(),
        owner_did: caller.did.clone(),
        kind: req.kind,
        dataset_id,
        subscription: terms,
        fields,
        state: ListingState::Draft,
        sales_count: 0,
        created_at: now.clone(),
        updated_at: now,
        published_at: None,
    };
    db::insert(&mut tx, state.store.engine(), &listing).await?;
    let details = audit_details(json!({
        "kind": listing.kind.as_str(),
        "datasetId": listing.dataset_id,
        "subscription": listing.subscription,
        "title": listing.fields.title,
        "price": listing.fields.price,
        "rail": listing.fields.rail.to_json(),
    }));
    let view = commit_change(tx, &caller, "listing.create", &listing, &details).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Changes the given fields of a draft or published listing.
#[utoipa::path(patch, path = sealstream_api::routes::LISTING, tag = "listings",
    params(("id" = String, Path, description = "Listing id")),
    request_body = PatchListing,
    security(("session" = [])),
    responses(
        (status = 200, description = "The listing after the change", body = ListingView),
        (status = 400, description = "A field is malformed, or none is given", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such listing of the caller's", body = crate::openapi::ErrorBody),
        (status = 409, description = "The listing is withdrawn", body = crate::openapi::ErrorBody),
        (status = 422, description = "A sample chunk is outside the dataset, or the new rail names an EVM chain whose payments the server does not verify (`rail.chainId`)", body = crate::openapi::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PatchListing>,
) -> ApiResult<Json<ListingView>> {
    let given = req.given();
    if given.is_empty() {
        return Err(ApiError::bad_request("body", "no field to change"));
    }
    let (mut tx, mut listing) = begin_owned(&state, &id, &caller, |s| {
        (s == ListingState::Withdrawn)
            .then(|| format!("listing {id} is withdrawn and can no longer change"))
    })
    .await?;
    let mut fields = listing.fields.patched(&req)?;
    if req.price.is_some() {
        fields.price = model::snap_price(&fields.price, &state.config.price_ladder);
    }
    if listing.kind == ListingKind::Subscription && fields.compliance.is_some() {
        return Err(no_subscription_presets());
    }
    if req.rail.is_some() {
        check_rail_verified(&state, &fields.rail, ApiError::unprocessable)?;
    }
    if req.sample_chunk_indexes.is_some() {
        if listing.kind == ListingKind::Subscription && !fields.sample_chunk_indexes.is_empty() {
            return Err(ApiError::bad_request(
                "sampleChunkIndexes",
                "a subscription listing has no sample chunks",
            ));
        }
        let dataset = dataset_of(&mut tx, &listing).await?;
        check_samples_in(&dataset, &fields.sample_chunk_indexes)?;
        // Keys of chunks that are no longer samples are no longer given out.
        for index in db::disclosed(&mut tx, &id).await? {
            if !fields.sample_chunk_indexes.contains(&index) {
                db::delete_sample(&mut tx, &id, index).await?;
            }
        }
    }
    listing.fields = fields;
    listing.updated_at = sealstream_core::utc::now();
    db::update_fields(&mut tx, state.store.engine(), &listing).await?;
    let details = audit_details(json!({ "fields": given }));
    let view = commit_change(tx, &caller, "listing.update", &listing, &details).await?;
    Ok(Json(view))
}

/// Puts a draft listing in the catalog. Its dataset must be signed and the
/// keys of all its sample chunks disclosed (`POST …/samples`) first.
#[utoipa::path(post, path = sealstream_api::routes::LISTING_PUBLISH, tag = "listings",
    params(("id" = String, Path, description = "Listing id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The published listing", body = ListingView),
        (status = 404, description = "No such listing of the caller's", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not a draft (a withdrawn listing stays withdrawn), dataset not signed, sample keys missing, or the rail's EVM chain is not verified by the server (`rail.chainId`)", body = crate::openapi::ErrorBody)))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ListingView>> {
    let (mut tx, mut listing) = begin_owned(&state, &id, &caller, |s| {
        (s != ListingState::Draft).then(|| format!("listing {id} is {}, not a draft", s.as_str()))
    })
    .await?;
    // A draft made while the server verified its chain, published after
    // a restart without it.
    check_rail_verified(&state, &listing.fields.rail, |f, m| {
        ApiError::conflict(Some(f), m)
    })?;
    let details = match &listing.subscription {
        Some(terms) => {
            // The machine must still be the owner's and registered.
            check_machine_owned(&state, &caller, &terms.machine_did).await?;
            audit_details(json!({
                "kind": listing.kind.as_str(),
                "machineDid": terms.machine_did,
                "topic": terms.topic,
            }))
        }
        None => publish_dataset(&mut tx, &listing).await?,
    };
    let now = sealstream_core::utc::now();
    db::publish(&mut tx, &id, &now, sealstream_core::utc::now_unix()).await?;
    listing.state = ListingState::Published;
    listing.published_at = Some(now.clone());
    listing.updated_at = now;
    let view = commit_change(tx, &caller, "listing.publish", &listing, &details).await?;
    Ok(Json(view))
}

/// Makes the signed dataset of a dataset listing being published public,
/// once every sample key is disclosed (409 on `datasetId` or
/// `sampleChunkIndexes` otherwise); the audit details of the publication.
async fn publish_dataset(
    tx: &mut Tx,
    listing: &Listing,
) -> ApiResult<sealstream_core::json::Value> {
    let id = &listing.id;
    let dataset = dataset_of(tx, listing).await?;
    if dataset.state != DatasetState::Signed {
        return Err(ApiError::conflict(
            Some("datasetId"),
            format!(
                "dataset {} is {}: sign its manifest before publishing",
                dataset.id, dataset.state
            ),
        ));
    }
    let have = db::disclosed(tx, id).await?;
    let missing: Vec<u64> = listing
        .fields
        .sample_chunk_indexes
        .iter()
        .copied()
        .filter(|i| !have.contains(i))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::conflict(
            Some("sampleChunkIndexes"),
            format!(
                "keys of sample chunks {missing:?} not disclosed yet: POST /v1/listings/{id}/samples first"
            ),
        ));
    }
    // Buyers verify before paying: the dataset's manifest, proofs and
    // envelopes become public with its first published listing.
    crate::datasets::set_public(tx, &dataset.id, true).await?;
    Ok(audit_details(json!({
        "datasetId": dataset.id,
        "merkleRoot": dataset.merkle_root,
    })))
}

/// Takes a listing out of the catalog for good (a draft or a published
/// listing).
#[utoipa::path(post, path = sealstream_api::routes::LISTING_WITHDRAW, tag = "listings",
    params(("id" = String, Path, description = "Listing id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The withdrawn listing", body = ListingView),
        (status = 404, description = "No such listing of the caller's", body = crate::openapi::ErrorBody),
        (status = 409, description = "Already withdrawn", body = crate::openapi::ErrorBody)))]
pub async fn withdraw(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ListingView>> {
    let (mut tx, mut listing) = begin_owned(&state, &id, &caller, |s| {
        (s == ListingState::Withdrawn).then(|| format!("listing {id} is already withdrawn"))
    })
    .await?;
    let now = sealstream_core::utc::now();
    db::withdraw(&mut tx, &id, &now).await?;
    // The dataset stays public while another listing of it is published.
    if listing.kind == ListingKind::Dataset {
        let still_listed = db::other_published(&mut tx, &listing.dataset_id, &id).await?;
        crate::datasets::set_public(&mut tx, &listing.dataset_id, still_listed).await?;
    }
    let details = audit_details(json!({ "from": listing.state.as_str() }));
    listing.state = ListingState::Withdrawn;
    listing.updated_at = now;
    let view = commit_change(tx, &caller, "listing.withdraw", &listing, &details).await?;
    Ok(Json(view))
}

/// The caller's own listings in every state (`mine=true` is required; the
/// public list is `/v1/catalog`), by id, `limit` (≤ 100) at a time.
#[utoipa::path(get, path = sealstream_api::routes::LISTINGS, tag = "listings",
    params(
        ("mine" = bool, Query, description = "Must be `true`"),
        ("limit" = Option<u32>, Query, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The caller's listings", body = ListingList),
        (status = 400, description = "A parameter is wrong (named in `field`)", body = crate::openapi::ErrorBody)))]
pub async fn list_mine(
    State(state): State<AppState>,
    caller: Principal,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ListingList>> {
    let params = QueryParams::new(query, &["mine", "limit", "cursor"])?;
    match params.get("mine") {
        Some("true") => {}
        _ => {
            return Err(ApiError::bad_request(
                "mine",
                "must be true (the public list is GET /v1/catalog)",
            ))
        }
    }
    let limit = params.limit()?;
    let after = params.get("cursor").unwrap_or("");
    if !after.is_empty() && !model::plausible_id(after) {
        return Err(ApiError::bad_request("cursor", "not an id"));
    }
    let mut tx = state.store.begin().await?;
    let listings = db::listings_of(&mut tx, &caller.did, after, limit as i64 + 1).await?;
    let mut items = Vec::new();
    for listing in listings.iter().take(limit) {
        items.push(view(&mut tx, listing).await?);
    }
    let next_cursor = (listings.len() > limit)
        .then(|| items.last().map(|v| v.id.clone()))
        .flatten();
    tx.commit().await?;
    Ok(Json(ListingList { items, next_cursor }))
}

/// A listing's page: anyone for a published listing, the owner only for a
/// draft or withdrawn one (404 for others).
#[utoipa::path(get, path = sealstream_api::routes::LISTING, tag = "listings",
    params(("id" = String, Path, description = "Listing id")),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "The listing with its dataset summary", body = ListingView),
        (status = 404, description = "No such listing visible to the caller", body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ListingView>> {
    let mut tx = state.store.begin().await?;
    let listing = visible(&mut tx, &id, caller.as_ref()).await?;
    let view = view(&mut tx, &listing).await?;
    tx.commit().await?;
    Ok(Json(view))
}
