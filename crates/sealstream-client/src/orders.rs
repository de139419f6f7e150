//! Orders: a buyer's order, the caller's orders as buyer or seller, an
//! invoice marked paid, bearer links, receipts, and a seller's grant.

use reqwest::Method;

use sealstream_api::disputes::{DisputeEvidence, EscrowView, ResolveDispute};
use sealstream_api::grants::{GrantView, UploadGrant};
use sealstream_api::orders::{
    Confirmation, CreateLink, CreateOrder, LinkView, ListQuery, OrderList, OrderView,
};
use sealstream_api::payments::{MarkPaid, PaymentProof, ProofAnswer};
use sealstream_api::routes;

use crate::market::{json_body, json_bytes, ClientError, MarketClient, NoFields, Payload};

/// Orders asked for a page.
const PAGE: u32 = 200;

/// Largest receipt read (they are a few KiB).
const MAX_RECEIPT: u64 = 1 << 20;
/// Largest receipt PDF read (some tens of KiB: a page, a font subset, the
/// receipt).
const MAX_RECEIPT_PDF: u64 = 8 << 20;

/// Largest release file read at once (access files are cut at 256 MiB).
const MAX_RELEASE_FILE: u64 = 256 << 20;

/// `path?link=TOKEN` for a bearer link, `path` without one.
fn with_link(path: String, link: Option<&str>) -> String {
    match link {
        Some(token) => routes::with_query(path, &format!("link={}", routes::encode_segment(token))),
        None => path,
    }
}

impl MarketClient {
    /// Orders a published listing.
    pub fn create_order(&mut self, request: &CreateOrder) -> Result<OrderView, ClientError> {
        self.call(Method::POST, routes::ORDERS, json_body(request))
    }

    /// One order of the caller's (as buyer or seller).
    pub fn order(&mut self, id: &str) -> Result<OrderView, ClientError> {
        self.get(&routes::order(id))
    }

    /// A page of the caller's orders.
    pub fn orders(&mut self, query: &ListQuery) -> Result<OrderList, ClientError> {
        self.get(&routes::orders(query))
    }

    /// Every order `query` selects, page by page (its own paging is
    /// replaced).
    pub fn all_orders(&mut self, query: &ListQuery) -> Result<Vec<OrderView>, ClientError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.orders(&query.clone().page(PAGE, cursor.as_deref()))?;
            let n = page.items.len();
            all.extend(page.items);
            match page.next_cursor {
                Some(next) if n > 0 => cursor = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// Marks an invoice order paid (its seller).
    pub fn mark_paid(&mut self, id: &str, request: &MarkPaid) -> Result<OrderView, ClientError> {
        self.call(
            Method::POST,
            &routes::order_mark_paid(id),
            json_body(request),
        )
    }

    /// The escrow of an escrowed order (its buyer, seller, an arbiter).
    pub fn escrow(&mut self, id: &str) -> Result<EscrowView, ClientError> {
        self.get(&routes::order_dispute(id))
    }

    /// Disputes an escrowed order with evidence (its buyer, within the
    /// window); the answer carries the market checker's verdict.
    pub fn dispute(
        &mut self,
        id: &str,
        evidence: &DisputeEvidence,
    ) -> Result<EscrowView, ClientError> {
        self.call(
            Method::POST,
            &routes::order_dispute(id),
            json_body(evidence),
        )
    }

    /// Decides a disputed order (an arbiter): `to_buyer` back, the rest to
    /// the seller.
    pub fn resolve_dispute(
        &mut self,
        id: &str,
        request: &ResolveDispute,
    ) -> Result<EscrowView, ClientError> {
        self.call(
            Method::POST,
            &routes::order_dispute_resolve(id),
            json_body(request),
        )
    }

    /// Makes a bearer link to an order.
    pub fn create_link(&mut self, id: &str, request: &CreateLink) -> Result<LinkView, ClientError> {
        self.call(Method::POST, &routes::order_links(id), json_body(request))
    }

    /// The signed license receipt of a paid order, exactly as the server
    /// keeps it (`sealstream_api::receipts::SignedReceipt::parse` reads it).
    pub fn receipt(&mut self, id: &str) -> Result<Vec<u8>, ClientError> {
        self.get_bytes(&routes::order_receipt(id), MAX_RECEIPT)
    }

    /// The order's v2 receipt (`sealstream.receipt.v2`: every field salted
    /// and committed to, for selective disclosure), as served.
    pub fn receipt_v2(&mut self, id: &str) -> Result<Vec<u8>, ClientError> {
        self.get_bytes(
            &routes::with_query(routes::order_receipt(id), "version=2"),
            MAX_RECEIPT,
        )
    }

    /// The order's receipt as a PDF/A-3 document (`format=pdf`): a page
    /// showing it, the signed receipt — v2 with `v2`, else v1 — attached as
    /// `receipt.json` (`sealstream_api::receipts::pdf::extract_receipt`
    /// reads it back).
    pub fn receipt_pdf(&mut self, id: &str, v2: bool) -> Result<Vec<u8>, ClientError> {
        let query = if v2 {
            "format=pdf&version=2"
        } else {
            "format=pdf"
        };
        self.get_bytes(
            &routes::with_query(routes::order_receipt(id), query),
            MAX_RECEIPT_PDF,
        )
    }

    /// Uploads the access files of a paid order (its seller).
    pub fn upload_grant(
        &mut self,
        id: &str,
        request: &UploadGrant,
    ) -> Result<GrantView, ClientError> {
        // Access files can be large: sent as an upload, without an overall
        // deadline.
        self.call(
            Method::PUT,
            &routes::order_grant(id),
            Payload::Upload("application/json".into(), json_bytes(request).into()),
        )
    }

    /// Cancels an unpaid order (its buyer).
    pub fn cancel_order(&mut self, id: &str) -> Result<OrderView, ClientError> {
        self.call(
            Method::POST,
            &routes::order_cancel(id),
            json_body(&NoFields {}),
        )
    }

    /// Submits the proof of an on-chain payment (the reference's
    /// `payproof`); the answer says whether it is accepted or what is
    /// missing.
    pub fn payment_proof(
        &mut self,
        id: &str,
        request: &PaymentProof,
    ) -> Result<ProofAnswer, ClientError> {
        self.call(
            Method::POST,
            &routes::order_payment_proof(id),
            json_body(request),
        )
    }

    /// The reference's confirmation of an order: signed in, or through a
    /// bearer link's token.
    pub fn confirmation(
        &mut self,
        id: &str,
        link: Option<&str>,
    ) -> Result<Confirmation, ClientError> {
        let path = with_link(routes::order_confirmation(id), link);
        match link {
            Some(_) => self.get_public(&path),
            None => self.get(&path),
        }
    }

    /// Revokes a bearer link (its maker).
    pub fn revoke_link(&mut self, id: &str, link_id: &str) -> Result<(), ClientError> {
        self.call_empty(
            Method::DELETE,
            &routes::order_link(id, link_id),
            Payload::Empty,
        )
    }

    /// The grant of a granted order (its buyer or seller).
    pub fn grant(&mut self, id: &str) -> Result<GrantView, ClientError> {
        self.get(&routes::order_grant(id))
    }

    /// A file of a granted order's release (`manifest.json` is the
    /// release manifest): signed in, or through a bearer link's token.
    pub fn release_file(
        &mut self,
        id: &str,
        name: &str,
        link: Option<&str>,
    ) -> Result<Vec<u8>, ClientError> {
        let path = if name == "manifest.json" {
            routes::order_release_manifest(id)
        } else {
            routes::order_release_file(id, name)
        };
        let path = with_link(path, link);
        match link {
            Some(_) => self.get_public_bytes(&path, MAX_RELEASE_FILE),
            None => self.get_bytes(&path, MAX_RELEASE_FILE),
        }
    }
}
