//! License receipts: when an order is paid the server signs a receipt
//! (`sealstream.receipt.v1`, [`sealstream_api::receipts`]) with its Ed25519
//! receipt key, in the same transaction as the payment. Its buyer and its
//! seller fetch it; `sealstream receipt verify` checks it offline, pinned to
//! the key `GET /v1/receipts/key` publishes.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use sealstream_api::receipts::{
    LicenseReceipt, ReceiptKey, ReceiptPayment, RECEIPT_SIGNATURE_ALGORITHM,
};

use super::{db, party_order, Order};
use crate::auth::Principal;
use crate::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use crate::server::AppState;
use crate::store::Tx;

fn core_json(v: &serde_json::Value) -> ApiResult<sealstream_core::json::Value> {
    sealstream_core::json::parse(v.to_string().as_bytes())
        .map_err(|e| ApiError::internal("receipt", e))
}

/// Signs and stores the receipt of `order`, just paid with `payment` (the
/// stored payment details), inside `tx`.
pub(crate) async fn issue(
    state: &AppState,
    tx: &mut Tx,
    order: &Order,
    payment: &serde_json::Value,
) -> ApiResult<()> {
    let listing = crate::listings::db::listing(tx, &order.listing_id)
        .await?
        .ok_or_else(|| ApiError::internal("receipt", "listing missing"))?;
    let dataset = crate::listings::db::listed_dataset(tx, &order.dataset_id)
        .await?
        .ok_or_else(|| ApiError::internal("receipt", "dataset missing"))?;
    let payment = match (payment["txHash"].as_str(), payment["reference"].as_str()) {
        (Some(hash), _) => ReceiptPayment::Evm {
            tx_hash: hash.to_string(),
            chain_id: payment["chainId"].as_u64().unwrap_or_default(),
            payer: payment["payer"].as_str().unwrap_or_default().to_string(),
            block_number: payment["blockNumber"].as_u64().unwrap_or_default(),
        },
        (None, Some(reference)) => ReceiptPayment::Invoice {
            invoice_reference: reference.to_string(),
            marked_by: payment["markedBy"].as_str().unwrap_or_default().to_string(),
        },
        _ => return Err(ApiError::internal("receipt", "payment details malformed")),
    };
    // The receipt's time is read under the receipt logs' locks, so that the
    // logs' leaves are in time order.
    let now = crate::receipt_log::begin_issue(state, tx, &order.seller_did).await?;
    let receipt = LicenseReceipt {
        order_id: order.id.clone(),
        listing_id: listing.id.clone(),
        listing_title: listing.fields.title.clone(),
        dataset_id: order.dataset_id.clone(),
        dataset_root: dataset.summary.merkle_root,
        machine_did: dataset.summary.machine_did,
        topic: dataset.summary.topic,
        first_index: dataset.summary.first_index.max(0) as u64,
        chunk_count: dataset.summary.chunk_count.max(0) as u64,
        seller_did: order.seller_did.clone(),
        buyer_did: order.buyer_did.clone(),
        buyer_id: order.buyer_id.clone(),
        buyer_public_key_hex: order.buyer_public_key_hex.clone(),
        amount: order.amount.clone(),
        decimals: order.rail.decimals(),
        rail: core_json(&order.rail.to_json())?,
        payment,
        license: core_json(listing.fields.license.as_ref().unwrap_or(&json!(null)))?,
        ordered_at: order.created_at.clone(),
        paid_at: order.paid_at.clone().unwrap_or_else(|| now.clone()),
        issued_at: now.clone(),
        compliance: order.compliance.clone(),
    };
    let signed = receipt
        .sign(&state.receipt_key)
        .map_err(|e| ApiError::internal("receipt", e))?;
    let v2 = receipt
        .sign_v2(&state.receipt_key, &mut rand::rngs::OsRng)
        .map_err(|e| ApiError::internal("receipt", e))?;
    db::insert_receipt(
        tx,
        &order.id,
        &signed.to_json_pretty(),
        &v2.to_json_pretty(),
        &now,
    )
    .await?;
    crate::receipt_log::append(state, tx, &signed, &now).await?;
    Ok(())
}

/// `?version=` and `?format=` of `GET /v1/orders/{id}/receipt`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReceiptQuery {
    /// `1` (the default): `sealstream.receipt.v1`; `2`: `sealstream.receipt.v2`,
    /// every field salted and committed to, for selective disclosure.
    #[param(pattern = "^[12]$")]
    pub version: Option<String>,
    /// `json` (the default): the signed receipt; `pdf`: a PDF/A-3 document
    /// showing it, the signed receipt (of `version`) attached as
    /// `receipt.json` (docs/formats.md, "Receipt PDFs").
    #[param(pattern = "^(json|pdf)$")]
    pub format: Option<String>,
}

/// The signed license receipt of a paid order, to its buyer or seller.
#[utoipa::path(get, path = sealstream_api::routes::ORDER_RECEIPT, tag = "orders",
    params(("id" = String, Path, description = "Order id"), ReceiptQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "The `sealstream.receipt.v1` document (`sealstream.receipt.v2` with `version=2`); with `format=pdf` a PDF/A-3 document (`application/pdf`, sent as the attachment `receipt-{id}.pdf`) with that document attached as `receipt.json`",
            content(("application/json"), ("application/pdf"))),
        (status = 400, description = "A version other than 1 or 2, or a format other than json or pdf", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such order for the caller, not paid yet, or (version 2) paid before v2 receipts were issued", body = crate::openapi::ErrorBody)))]
pub async fn get_receipt(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReceiptQuery>,
) -> ApiResult<Response> {
    let v2 = match q.version.as_deref() {
        None | Some("1") => false,
        Some("2") => true,
        Some(_) => return Err(ApiError::bad_request("version", "expected 1 or 2")),
    };
    let pdf = match q.format.as_deref() {
        None | Some("json") => false,
        Some("pdf") => true,
        Some(_) => return Err(ApiError::bad_request("format", "expected json or pdf")),
    };
    let mut tx = state.store.begin().await?;
    party_order(&mut tx, &id, &caller).await?;
    let unpaid = || ApiError::not_found(format!("order {id} has no receipt: it is not paid"));
    let text = if v2 {
        db::receipt_v2(&mut tx, &id)
            .await?
            .ok_or_else(unpaid)?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "order {id} was paid before v2 receipts were issued: it has a v1 receipt only"
                ))
            })?
    } else {
        db::receipt(&mut tx, &id).await?.ok_or_else(unpaid)?
    };
    tx.commit().await?;
    if !pdf {
        return Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response());
    }
    // About 2.5 ms of CPU (the font is subset each time): off the runtime.
    let bytes = tokio::task::spawn_blocking(move || super::receipt_pdf::render(text.as_bytes()))
        .await
        .map_err(|e| ApiError::internal("receipt pdf", e))?
        .map_err(|e| ApiError::internal("receipt pdf", e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"receipt-{id}.pdf\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The public key receipts are signed with (pin it to verify offline).
#[utoipa::path(get, path = sealstream_api::routes::RECEIPTS_KEY, tag = "orders",
    responses((status = 200, description = "`{\"algorithm\": \"ed25519\", \"publicKeyHex\": …}`")))]
pub async fn server_key(State(state): State<AppState>) -> Json<ReceiptKey> {
    Json(ReceiptKey {
        algorithm: RECEIPT_SIGNATURE_ALGORITHM.into(),
        public_key_hex: state.receipt_key.public_key().to_hex(),
    })
}
