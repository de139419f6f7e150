//! Sign-in with Ethereum (EIP-4361) and roles: `POST /v1/auth/nonce`,
//! `POST /v1/auth/verify`, `POST /v1/auth/logout`, `GET /v1/me`, and the
//! admin's `PUT|DELETE /v1/admin/principals/{did}/roles/{role}`, which
//! answer with the principal's roles ([`MeResponse`]). The message itself
//! is [`crate::siwe`].

use serde::{Deserialize, Serialize};

wire_enum! {
    /// What a principal may do.
    pub enum Role refuse "one of machine, owner, buyer, auditor, compliance, admin" {
        /// Uploads its own chunks (a DID registered in `machines`).
        Machine = "machine",
        /// Registers machines and sells their data: datasets, listings.
        Owner = "owner",
        /// Browses and buys.
        Buyer = "buyer",
        /// Reads the audit log; files disclosure requests.
        Auditor = "auditor",
        /// Approves (or rejects) auditors' disclosure requests: two distinct
        /// approvers, neither the requester, make one take effect.
        Compliance = "compliance",
        /// Grants roles; reads everything.
        Admin = "admin",
    }
}

/// What the client puts in its sign-in message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NonceResponse {
    /// The `Nonce` (32 hex digits).
    pub nonce: String,
    /// The domain the message must name: the host of the server's
    /// configured public URL.
    pub domain: String,
    /// A URI for the message's `URI` line (its host must be the domain).
    pub uri: String,
    /// The `Chain ID` to name (the server accepts only its configured ones).
    pub chain_id: u64,
    /// A suggested `Issued At`: the server's time now.
    pub issued_at: String,
    /// When the nonce can no longer be used.
    pub expires_at: String,
}

/// A signed sign-in message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifyRequest {
    /// The EIP-4361 message, exactly as signed.
    pub message: String,
    /// The EIP-191 signature of `message` by its address: 65 bytes as hex.
    pub signature: String,
}

/// A new session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    /// Send as `Authorization: Bearer <token>`. Shown once.
    pub token: String,
    /// The signed-in DID.
    pub did: String,
    /// Its roles.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub roles: Vec<Role>,
    /// When the session ends: the message's `Expiration Time` or 12 hours,
    /// whichever is sooner.
    pub expires_at: String,
}

impl std::fmt::Debug for SessionResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionResponse")
            .field("did", &self.did)
            .field("roles", &self.roles)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Who the caller is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    /// The caller's DID.
    pub did: String,
    /// Its roles.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub roles: Vec<Role>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_travel_as_their_names() {
        let me = MeResponse {
            did: "did:peaq:0x1".into(),
            roles: vec![Role::Owner, Role::Buyer],
        };
        let text = serde_json::to_string(&me).unwrap();
        assert_eq!(text, r#"{"did":"did:peaq:0x1","roles":["owner","buyer"]}"#);
        assert_eq!(serde_json::from_str::<MeResponse>(&text).unwrap(), me);
        assert_eq!(Role::parse("auditor"), Some(Role::Auditor));
        assert!(Role::Machine < Role::Admin);
    }
}

/// `POST /v1/auth/web-link`: a link that signs the caller in to the web
/// pages once, for a person whose keys are files (`sealstream market login
/// --web`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebLinkResponse {
    /// Open in a browser: `<server>/signin/link?token=…`. Works once, until
    /// `expiresAt`.
    pub url: String,
    /// When the link stops working (UTC).
    pub expires_at: String,
}

impl std::fmt::Debug for WebLinkResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebLinkResponse")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
