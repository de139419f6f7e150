//! Disclosure requests (issue 21): an auditor asks, with a legal basis, for
//! a period's proven totals or for a case (an order, a listing or a party);
//! two distinct approvers with the compliance or admin role, neither the
//! requester, must approve; then the requester may read exactly what was
//! approved until the access ends. The parties a case concerns see that a
//! disclosure happened, and when, unless both approvers sealed it.
//!
//! Routes: `POST|GET /v1/disclosure-requests`, `GET …/{id}`,
//! `POST …/{id}/approve`, `POST …/{id}/reject`, `GET …/{id}/disclosure`,
//! and `GET /v1/disclosure-notices` for the parties.

use serde::{Deserialize, Serialize};
use serde_json::Value;

wire_enum! {
    /// What a request asks for.
    pub enum RequestKind refuse "expected period-total or case" {
        /// The proven totals of a receipt log over a period.
        PeriodTotal = "period-total",
        /// The identities involved in an order, a listing or a party's
        /// orders, and the receipt fields asked for.
        Case = "case",
    }
}

wire_enum! {
    /// Where a request stands.
    pub enum RequestState refuse "expected pending, approved, rejected or expired" {
        /// Waiting for two approvals.
        Pending = "pending",
        /// Approved by two: readable until `accessUntil`.
        Approved = "approved",
        /// Rejected by an approver.
        Rejected = "rejected",
        /// Approved, and the access has ended.
        Expired = "expired",
    }
}

/// Most seconds of access a request may ask for (30 days).
pub const MAX_ACCESS_SECONDS: u64 = 30 * 86_400;
/// Longest legal basis or rejection reason.
pub const MAX_TEXT: usize = 2_000;
/// Most receipts a case discloses.
pub const MAX_CASE_ORDERS: usize = 100;

/// The period of a `period-total` request.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeriodScope {
    /// `market` or `seller:<did>`.
    pub log: String,
    /// Start (on an epoch boundary of the log).
    pub from: String,
    /// End, excluded.
    pub to: String,
}

/// The subject of a `case` request: exactly one of the three.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaseScope {
    /// One order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Every paid order of one listing (at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing_id: Option<String>,
    /// Every paid order one party bought or sold (at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<String>,
}

/// `POST /v1/disclosure-requests` (auditors).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateRequest {
    /// `period-total` or `case`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: RequestKind,
    /// Why the disclosure is lawful (1 to 2,000 characters).
    pub legal_basis: String,
    /// For `period-total`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodScope>,
    /// For `case`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<CaseScope>,
    /// For `case`: the receipt fields to disclose of each order (names of
    /// the receipt's fields; none: the identities only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// How long the access lasts once approved (1 s to 30 days).
    pub access_seconds: u64,
}

/// `POST …/{id}/approve`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Approve {
    /// Seal the case: the parties are not told (takes effect only when
    /// both approvers seal).
    #[serde(default)]
    pub seal: bool,
}

/// `POST …/{id}/reject`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Reject {
    /// Why (1 to 2,000 characters).
    pub reason: String,
}

/// One approval.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApprovalView {
    /// The approver.
    pub did: String,
    /// When.
    pub at: String,
    /// Whether this approver sealed the case.
    pub seal: bool,
}

/// A request as its requester and the approvers see it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RequestView {
    /// `dr_` + 32 hex digits.
    pub id: String,
    /// What it asks for.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: RequestKind,
    /// Where it stands.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: RequestState,
    /// The auditor who asked.
    pub requester: String,
    /// The legal basis given.
    pub legal_basis: String,
    /// For `period-total`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodScope>,
    /// For `case`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<CaseScope>,
    /// For `case`: the receipt fields asked for.
    pub fields: Vec<String>,
    /// The access asked for, in seconds.
    pub access_seconds: u64,
    /// Filed (UTC).
    pub created_at: String,
    /// The approvals so far.
    pub approvals: Vec<ApprovalView>,
    /// Whether both approvers sealed it.
    pub sealed: bool,
    /// Until when the requester may read the disclosure, once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_until: Option<String>,
    /// Who rejected it, when and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Value>,
}

/// `GET /v1/disclosure-requests`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RequestList {
    /// Newest first (at most 200).
    pub items: Vec<RequestView>,
}

/// Who took part in a case.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CaseOrder {
    /// The order.
    pub order_id: String,
    /// Its buyer.
    pub buyer_did: String,
    /// Its seller.
    pub seller_did: String,
    /// The v2 receipt disclosure of the fields approved
    /// (`sealstream.receipt.v2`, checkable with `receipt verify-disclosure`);
    /// `null` when no field was asked for or the order has no v2 receipt.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub disclosure: Option<Value>,
}

/// `GET …/{id}/disclosure`: what the approval grants, while it lasts.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DisclosureView {
    /// The request.
    pub request_id: String,
    /// Until when this may be read.
    pub access_until: String,
    /// For `period-total`: the proof (`sealstream.receipt-log-total.v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub total: Option<Value>,
    /// For `case`: the orders and who took part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<CaseOrder>,
}

/// A disclosure that concerns the caller (`GET /v1/disclosure-notices`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NoticeView {
    /// The request.
    pub request_id: String,
    /// What was disclosed.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: RequestKind,
    /// When it was approved.
    pub approved_at: String,
    /// Until when the requester may read it.
    pub access_until: String,
    /// The legal basis given.
    pub legal_basis: String,
}

/// `GET /v1/disclosure-notices`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NoticeList {
    /// Newest first (at most 200).
    pub items: Vec<NoticeView>,
}
