//! Orders: a buyer orders a published listing with their X25519 public
//! key, pays ([`crate::payments`]), the seller's grant daemon (or the
//! server, with an operator key) grants ([`crate::grants`]); bearer links
//! open an order's confirmation or release package to whoever holds them.
//!
//! States: `awaiting-payment` → `paid` → `granted`; an unpaid order may be
//! `cancelled` by its buyer.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::payments::{ClaimView, PaymentInstructions};

wire_enum! {
    /// The life of an order.
    pub enum OrderState refuse "expected awaiting-payment, paid, granted or cancelled" {
        /// Made; no verified payment yet.
        AwaitingPayment = "awaiting-payment",
        /// Payment verified (or invoice marked paid); not granted yet.
        Paid = "paid",
        /// Access files uploaded: the release package is ready.
        Granted = "granted",
        /// Cancelled by the buyer before payment.
        Cancelled = "cancelled",
    }
}

impl OrderState {
    /// Paid or granted.
    pub fn is_paid(self) -> bool {
        matches!(self, OrderState::Paid | OrderState::Granted)
    }
}

wire_enum! {
    /// Which of the caller's orders (or subscriptions) a list shows.
    pub enum OrderSide refuse "expected buyer or seller" {
        /// The caller's own: its purchases, its subscriptions.
        Buyer = "buyer",
        /// Those of the caller's listings.
        Seller = "seller",
    }
}

/// `POST /v1/orders`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateOrder {
    /// The published listing to buy.
    pub listing_id: String,
    /// The X25519 public key the chunk keys are to be wrapped to (hex).
    pub buyer_public_key_hex: String,
    /// The recipient id of the access entries (default: the buyer's DID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer_id: Option<String>,
    /// Where the buyer is (ISO 3166-1 alpha-2): required by a listing with
    /// a compliance preset, which must allow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// What the data is for (1 to 500 characters): required by a listing
    /// with a compliance preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// `true` accepts the preset's attestation (required when it has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_attestation: Option<bool>,
}

/// Where to go next with an order.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OrderUrls {
    /// POST the payment proof here (`peaqos stream pay --confirmation-url`).
    pub payment_proof: String,
    /// Poll the confirmation here (`peaqos stream distribute --confirmation-url`,
    /// with a seller link).
    pub confirmation: String,
    /// The release package (`consume --download-url`), once granted.
    pub release: String,
    /// The signed license receipt, once paid.
    pub receipt: String,
}

/// An order as its buyer and seller see it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// `ord_…`.
    pub id: String,
    /// The listing.
    pub listing_id: String,
    /// The dataset.
    pub dataset_id: String,
    /// The seller.
    pub seller_did: String,
    /// The buyer.
    pub buyer_did: String,
    /// The access entries' recipient id.
    pub buyer_id: String,
    /// The buyer's X25519 key.
    pub buyer_public_key_hex: String,
    /// `awaiting-payment`, `paid`, `granted` or `cancelled`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: OrderState,
    /// The open claim nearest to paying the order (a transaction the node
    /// knows before one it does not), while the order awaits payment.
    pub claimed_tx: Option<String>,
    /// `<tx hash>: <what it waits for>` of that claim (with `<n> of <m>
    /// confirmations` once mined), or of the last closed claim (`<tx
    /// hash>: <why it was refused or dropped>`) when none is open.
    pub claim_status: Option<String>,
    /// The order's payment claims: every open one and the last closed ones
    /// (only open ones in lists), each with what it waits for or why it
    /// closed.
    pub claims: Vec<ClaimView>,
    /// How to pay.
    pub payment: PaymentInstructions,
    /// Where to go next.
    pub urls: OrderUrls,
    /// Created (UTC).
    pub created_at: String,
    /// Paid (UTC).
    pub paid_at: Option<String>,
    /// Granted (UTC).
    pub granted_at: Option<String>,
    /// The subscription whose period this order pays, if it pays one (it
    /// then has no dataset, grant or release package).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// The compliance preset the buyer accepted and the buyer's statement,
    /// when the listing has a preset (recorded in the receipt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<crate::compliance::Accepted>,
}

/// `GET /v1/orders` query, and `GET /v1/subscriptions`'s
/// ([`crate::subscriptions::SubscriptionQuery`]): `S` is the state of what
/// is listed. The values are read as text and checked by the server, which
/// names the one at fault; [`ListQuery::new`] and its setters build one from
/// typed values.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields, bound = "")]
pub struct ListQuery<S = OrderState> {
    /// `buyer` (the caller's own, the default) or `seller` (those of the
    /// caller's listings).
    #[serde(rename = "as", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(pattern = "^(buyer|seller)$"))]
    pub as_: Option<String>,
    /// Only those in this state (an order's or a subscription's `state`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Only those of this listing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing: Option<String>,
    /// After this id (the previous page's `nextCursor`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// What is listed (not a parameter).
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", param(ignore))]
    pub listed: PhantomData<S>,
}

impl<S> Default for ListQuery<S> {
    fn default() -> Self {
        ListQuery {
            as_: None,
            state: None,
            listing: None,
            cursor: None,
            limit: None,
            listed: PhantomData,
        }
    }
}

impl<S> ListQuery<S> {
    /// The caller's orders or subscriptions on `side`.
    pub fn new(side: OrderSide) -> Self {
        ListQuery {
            as_: Some(side.as_str().to_string()),
            ..ListQuery::default()
        }
    }

    /// Only those of `listing`.
    pub fn listing(mut self, listing: &str) -> Self {
        self.listing = Some(listing.to_string());
        self
    }

    /// `limit` a page, after `cursor`.
    pub fn page(mut self, limit: u32, cursor: Option<&str>) -> Self {
        self.limit = Some(limit);
        self.cursor = cursor.map(str::to_string);
        self
    }
}

impl<S: ListedState> ListQuery<S> {
    /// Only those in `state`.
    pub fn state(mut self, state: S) -> Self {
        self.state = Some(state.name().to_string());
        self
    }
}

/// The state of what a [`ListQuery`] lists: [`OrderState`], or
/// [`crate::subscriptions::SubscriptionState`].
pub trait ListedState: Copy {
    /// Its name on the wire.
    fn name(self) -> &'static str;
}

impl ListedState for OrderState {
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// A page of orders.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OrderList {
    /// Orders by id.
    pub items: Vec<OrderView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

wire_enum! {
    /// What a bearer link opens.
    pub enum LinkPurpose refuse "expected release or confirmation" {
        /// The release package (made by the buyer).
        Release = "release",
        /// The confirmation (made by the seller).
        Confirmation = "confirmation",
    }
}

/// `POST /v1/orders/{id}/links`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateLink {
    /// `release` (the buyer) or `confirmation` (the seller).
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, pattern = "^(release|confirmation)$")
    )]
    pub purpose: LinkPurpose,
}

/// A link, as its maker sees it once.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LinkView {
    /// `lnk_…`, to revoke it.
    pub id: String,
    /// `release` or `confirmation`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub purpose: LinkPurpose,
    /// The URL to hand out (carries the token).
    pub url: String,
    /// The token alone.
    pub token: String,
    /// Made (UTC).
    pub created_at: String,
}

impl std::fmt::Debug for LinkView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkView")
            .field("id", &self.id)
            .field("purpose", &self.purpose)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// `?link=` on routes bearer links open.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct LinkQuery {
    /// A bearer link's token (`POST /v1/orders/{id}/links`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

wire_enum! {
    /// What the reference's confirmation says of an order.
    pub enum ConfirmationStatus refuse "expected confirmed, awaiting-payment, awaiting-confirmations, awaiting-transaction or cancelled" {
        /// Paid.
        Confirmed = "confirmed",
        /// No claim of a payment yet.
        AwaitingPayment = "awaiting-payment",
        /// A claimed transaction the node knows: not mined, or not deep enough.
        AwaitingConfirmations = "awaiting-confirmations",
        /// Only claims of transactions the node does not know.
        AwaitingTransaction = "awaiting-transaction",
        /// Cancelled by the buyer.
        Cancelled = "cancelled",
    }
}

/// `GET /v1/orders/{id}/confirmation`, in the reference's snake_case form:
/// a paid order, or one still waiting.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Confirmation {
    /// Paid (keys in byte order).
    Confirmed(Confirmed),
    /// Not paid yet (keys in byte order).
    Waiting(Waiting),
}

/// A paid order's confirmation.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Confirmed {
    /// The access entries' recipient id.
    pub buyer_id: String,
    /// The buyer's X25519 key.
    pub buyer_public_key_hex: String,
    /// When it was paid (UTC).
    pub confirmed_at: Option<String>,
    /// The order.
    pub order_id: String,
    /// `paid` or `granted`.
    pub state: OrderState,
    /// `confirmed`.
    pub status: ConfirmationStatus,
    /// The paying transaction (`invoice:<reference>` for an invoice).
    pub tx_hash: String,
}

/// An unpaid order's confirmation.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Waiting {
    /// What the nearest claim waits for, or why the last one closed.
    pub claim_status: Option<String>,
    /// The order.
    pub order_id: String,
    /// `awaiting-payment`, `awaiting-confirmations`,
    /// `awaiting-transaction` or `cancelled`.
    pub status: ConfirmationStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_query_is_text_on_the_wire() {
        let q = ListQuery::new(OrderSide::Seller)
            .state(OrderState::AwaitingPayment)
            .page(200, Some("ord_1"));
        assert_eq!(
            crate::errors::encode_query(&q),
            "as=seller&state=awaiting-payment&cursor=ord_1&limit=200"
        );
        let back: ListQuery =
            crate::errors::decode_query("as=seller&state=awaiting-payment&cursor=ord_1&limit=200")
                .unwrap();
        assert_eq!(back, q);
    }

    #[test]
    fn a_link_purpose_outside_the_set_is_named() {
        let e = crate::errors::decode_json::<CreateLink>(br#"{"purpose":"gift"}"#).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("purpose", "expected release or confirmation")
        );
    }

    #[test]
    fn confirmations_keep_the_reference_form() {
        let waiting = Confirmation::Waiting(Waiting {
            claim_status: None,
            order_id: "ord_1".into(),
            status: ConfirmationStatus::AwaitingPayment,
        });
        let text = serde_json::to_string(&waiting).unwrap();
        assert_eq!(
            text,
            r#"{"claim_status":null,"order_id":"ord_1","status":"awaiting-payment"}"#
        );
        assert_eq!(
            serde_json::from_str::<Confirmation>(&text).unwrap(),
            waiting
        );
        let paid = Confirmation::Confirmed(Confirmed {
            buyer_id: "b".into(),
            buyer_public_key_hex: "00".into(),
            confirmed_at: Some("2026-01-01T00:00:00Z".into()),
            order_id: "ord_1".into(),
            state: OrderState::Paid,
            status: ConfirmationStatus::Confirmed,
            tx_hash: "0xaa".into(),
        });
        let text = serde_json::to_string(&paid).unwrap();
        assert_eq!(serde_json::from_str::<Confirmation>(&text).unwrap(), paid);
    }
}
