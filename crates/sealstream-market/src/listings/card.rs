//! A listing as a Dazaar-style card: the JSON a Dazaar client reads to
//! find a seller and how to pay it (`name`, `description`, `id`, the
//! seller's key, `payment` entries with `currency`, `amount` and `payTo`),
//! extended with the provider, the license and the dataset commitment.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::model::{format_units, Rail};
use super::{dataset_of, visible, Listing};
use crate::auth::MaybePrincipal;
use crate::error::{ApiPath, ApiResult};
use crate::server::AppState;

/// A Dazaar-style card.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Card {
    /// The listing title.
    pub name: String,
    /// The listing description.
    pub description: String,
    /// The listing id.
    pub id: String,
    /// The owner's DID: who sells.
    pub provider: String,
    /// The Ed25519 public key (hex) that signs every chunk of the chain on
    /// sale: what a buyer checks the data against (Dazaar's seller key).
    pub seller_key: Option<String>,
    /// The machine DID whose chain it is.
    pub machine_did: String,
    /// How to pay, one entry per accepted rail.
    pub payment: Vec<PaymentTerm>,
    /// License terms (text or object), the contract of the sale.
    #[schema(value_type = Option<Object>)]
    pub license: Option<Value>,
    /// Delivery options.
    pub delivery: Vec<String>,
    /// Tags (Dazaar search keywords).
    pub keywords: Vec<String>,
    /// What is sold.
    pub dataset: CardDataset,
    /// The listing page, relative to the server.
    pub url: String,
}

/// One payment entry of a card.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentTerm {
    /// `evm` or `invoice`.
    pub method: String,
    /// The currency: the rail's symbol (or `native`, or the token address)
    /// on EVM; the ISO code for an invoice.
    pub currency: String,
    /// The price in whole units (`1.5`).
    pub amount: String,
    /// The price in base units (`1500000000000000000`).
    pub amount_base_units: String,
    /// Decimals between the two.
    pub decimals: u8,
    /// Where to pay: the EVM address, or the invoicing party.
    pub pay_to: Option<String>,
    /// EVM: the chain id.
    pub chain_id: Option<u64>,
    /// EVM: `native` or the token contract.
    pub token: Option<String>,
    /// Invoice: payment terms.
    pub terms: Option<String>,
}

/// The dataset commitment a card carries.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardDataset {
    /// `ds_…`.
    pub id: String,
    /// Merkle root over its chunk ids.
    pub merkle_root: String,
    /// Number of chunks.
    pub chunk_count: i64,
    /// The topic.
    pub topic: String,
}

/// The payment entry of a rail and a price.
pub fn payment_term(rail: &Rail, price: &str) -> PaymentTerm {
    let amount = format_units(price, rail.decimals());
    match rail {
        Rail::Evm {
            chain_id,
            token,
            decimals,
            pay_to,
            symbol,
        } => PaymentTerm {
            method: "evm".into(),
            currency: symbol
                .clone()
                .or_else(|| token.clone())
                .unwrap_or_else(|| "native".into()),
            amount,
            amount_base_units: price.to_string(),
            decimals: *decimals,
            pay_to: Some(pay_to.clone()),
            chain_id: Some(*chain_id),
            token: Some(token.clone().unwrap_or_else(|| "native".into())),
            terms: None,
        },
        Rail::Invoice {
            currency,
            decimals,
            payee,
            terms,
        } => PaymentTerm {
            method: "invoice".into(),
            currency: currency.clone(),
            amount,
            amount_base_units: price.to_string(),
            decimals: *decimals,
            pay_to: payee.clone(),
            chain_id: None,
            token: None,
            terms: terms.clone(),
        },
    }
}

/// The card of a listing, with its dataset.
pub fn card_of(listing: &Listing, dataset: &super::DatasetSummary) -> Card {
    let f = &listing.fields;
    Card {
        name: f.title.clone(),
        description: f.description.clone(),
        id: listing.id.clone(),
        provider: listing.owner_did.clone(),
        seller_key: dataset.chain_public_key.clone(),
        machine_did: dataset.machine_did.clone(),
        payment: vec![payment_term(&f.rail, &f.price)],
        license: f.license.clone(),
        delivery: f.delivery.clone(),
        keywords: f.tags.clone(),
        dataset: CardDataset {
            id: dataset.id.clone(),
            merkle_root: dataset.merkle_root.clone(),
            chunk_count: dataset.chunk_count,
            topic: dataset.topic.clone(),
        },
        url: format!("/v1/listings/{}", listing.id),
    }
}

/// A listing as a Dazaar-style card (same visibility as the listing page).
#[utoipa::path(get, path = "/v1/listings/{id}/card", tag = "listings",
    params(("id" = String, Path, description = "Listing id")),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "The card", body = Card),
        (status = 404, description = "No such listing visible to the caller", body = crate::openapi::ErrorBody)))]
pub async fn card(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Card>> {
    let mut tx = state.store.begin().await?;
    let listing = visible(&mut tx, &id, caller.as_ref()).await?;
    let dataset = dataset_of(&mut tx, &listing).await?;
    tx.commit().await?;
    Ok(Json(card_of(&listing, &dataset)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_terms_from_rails() {
        let rail = Rail::Evm {
            chain_id: 3338,
            token: None,
            decimals: 18,
            pay_to: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into(),
            symbol: Some("PEAQ".into()),
        };
        let t = payment_term(&rail, "2500000000000000000");
        assert_eq!(
            (t.currency.as_str(), t.amount.as_str(), t.token.as_deref()),
            ("PEAQ", "2.5", Some("native"))
        );
        let invoice = Rail::Invoice {
            currency: "EUR".into(),
            decimals: 2,
            payee: Some("ACME GmbH".into()),
            terms: None,
        };
        let t = payment_term(&invoice, "1999");
        assert_eq!((t.method.as_str(), t.amount.as_str()), ("invoice", "19.99"));
        assert_eq!(t.pay_to.as_deref(), Some("ACME GmbH"));
    }
}
