//! The caller's session and roles, an admin's role changes, the audit
//! head, the server's receipt key, and the public catalog.

use reqwest::Method;

use sealstream_api::audit::SignedAuditHead;
use sealstream_api::auth::{MeResponse, WebLinkResponse};
use sealstream_api::catalog::{CatalogPage, CatalogQuery};
use sealstream_api::receipts::ReceiptKey;
use sealstream_api::routes;

use crate::market::{json_body, ClientError, MarketClient, NoFields, Payload};

/// Largest signed audit head read (a few hundred bytes).
const MAX_AUDIT_HEAD: u64 = 64 << 10;

impl MarketClient {
    /// Who the caller is, and its roles.
    pub fn me(&mut self) -> Result<MeResponse, ClientError> {
        self.get(routes::ME)
    }

    /// A link that signs a browser in to the web pages as the caller, once,
    /// within 5 minutes.
    pub fn web_link(&mut self) -> Result<WebLinkResponse, ClientError> {
        self.call(Method::POST, routes::AUTH_WEB_LINK, json_body(&NoFields {}))
    }

    /// Ends the session: its token stops working at once. The next request
    /// signs in again.
    pub fn logout(&mut self) -> Result<(), ClientError> {
        self.call_empty(Method::POST, routes::AUTH_LOGOUT, json_body(&NoFields {}))?;
        self.forget_session();
        Ok(())
    }

    /// Grants `role` to the principal `did` (an admin); answers its roles
    /// now.
    pub fn grant_role(&mut self, did: &str, role: &str) -> Result<MeResponse, ClientError> {
        self.call(Method::PUT, &routes::admin_role(did, role), Payload::Empty)
    }

    /// Revokes `role` from the principal `did` (an admin); answers its
    /// roles now.
    pub fn revoke_role(&mut self, did: &str, role: &str) -> Result<MeResponse, ClientError> {
        self.call(
            Method::DELETE,
            &routes::admin_role(did, role),
            Payload::Empty,
        )
    }

    /// The audit log's head signed by the server (admins and auditors),
    /// read strictly.
    pub fn audit_head(&mut self) -> Result<SignedAuditHead, ClientError> {
        let bytes = self.get_bytes(routes::AUDIT_HEAD, MAX_AUDIT_HEAD)?;
        SignedAuditHead::parse(&bytes)
            .map_err(|e| self.protocol(format!("{}: {e}", routes::AUDIT_HEAD)))
    }

    /// The server's Ed25519 key that signs receipts and audit heads.
    pub fn receipt_key(&mut self) -> Result<ReceiptKey, ClientError> {
        self.get_public(routes::RECEIPTS_KEY)
    }

    /// A page of the public catalog.
    pub fn catalog(&mut self, query: &CatalogQuery) -> Result<CatalogPage, ClientError> {
        self.get_public(&routes::with_query(
            routes::CATALOG.to_string(),
            &query.to_query(),
        ))
    }
}
