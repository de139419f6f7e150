//! A listing as a Dazaar-style card: the JSON a Dazaar client reads to
//! find a seller and how to pay it (`name`, `description`, `id`, the
//! seller's key, `payment` entries with `currency`, `amount` and `payTo`),
//! extended with the provider, the license and the dataset commitment.

use axum::extract::State;
use axum::Json;
use sealstream_api::payments::{format_units, NATIVE};

use super::model::{Rail, SubscriptionTerms};
use super::{dataset_of, visible, Listing};
use crate::auth::MaybePrincipal;
use crate::error::{ApiPath, ApiResult};
use crate::server::AppState;

pub use sealstream_api::listings::{Card, CardDataset, PaymentTerm};

/// The payment entry of a rail and a price.
pub fn payment_term(rail: &Rail, price: &str) -> PaymentTerm {
    let decimals = rail.decimals();
    let mut term = PaymentTerm {
        method: rail.kind(),
        currency: String::new(),
        amount: format_units(price, decimals),
        amount_base_units: price.to_string(),
        decimals,
        pay_to: None,
        chain_id: None,
        token: None,
        terms: None,
        unit: None,
        interval: None,
    };
    match rail {
        Rail::Evm {
            chain_id,
            token,
            pay_to,
            symbol,
            ..
        } => {
            let token = token.clone().unwrap_or_else(|| NATIVE.into());
            term.currency = symbol.clone().unwrap_or_else(|| token.clone());
            term.pay_to = Some(pay_to.clone());
            term.chain_id = Some(*chain_id);
            term.token = Some(token);
        }
        Rail::Invoice {
            currency,
            payee,
            terms,
            ..
        } => {
            term.currency = currency.clone();
            term.pay_to = payee.clone();
            term.terms = terms.clone();
        }
    }
    term
}

/// The card of a dataset listing, with its dataset.
pub fn card_of(listing: &Listing, dataset: &super::ListedDataset) -> Card {
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
        dataset: Some(CardDataset {
            id: dataset.id.clone(),
            merkle_root: dataset.merkle_root.clone(),
            chunk_count: dataset.chunk_count,
            topic: dataset.topic.clone(),
        }),
        subscription: None,
        url: sealstream_api::routes::listing(&listing.id),
    }
}

/// The card of a subscription listing: Dazaar's payment terms, `amount`
/// per `interval` `unit`s (`seconds`), and the machine's chain key (if
/// registered) as the seller key.
pub fn subscription_card(
    listing: &Listing,
    terms: &SubscriptionTerms,
    seller_key: Option<String>,
) -> Card {
    let f = &listing.fields;
    let mut term = payment_term(&f.rail, &f.price);
    term.unit = Some("seconds".into());
    term.interval = Some(terms.period_seconds);
    Card {
        name: f.title.clone(),
        description: f.description.clone(),
        id: listing.id.clone(),
        provider: listing.owner_did.clone(),
        seller_key,
        machine_did: terms.machine_did.clone(),
        payment: vec![term],
        license: f.license.clone(),
        delivery: f.delivery.clone(),
        keywords: f.tags.clone(),
        dataset: None,
        subscription: Some(terms.clone()),
        url: sealstream_api::routes::listing(&listing.id),
    }
}

/// A listing as a Dazaar-style card (same visibility as the listing page).
#[utoipa::path(get, path = sealstream_api::routes::LISTING_CARD, tag = "listings",
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
    if let Some(terms) = &listing.subscription {
        tx.commit().await?;
        let seller_key = crate::machines::db::machine(&state.store, &terms.machine_did)
            .await?
            .map(|m| m.chain_public_key);
        return Ok(Json(subscription_card(&listing, terms, seller_key)));
    }
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
            escrow: false,
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
            escrow: false,
        };
        let t = payment_term(&invoice, "1999");
        assert_eq!((t.method.as_str(), t.amount.as_str()), ("invoice", "19.99"));
        assert_eq!(t.pay_to.as_deref(), Some("ACME GmbH"));
    }
}
