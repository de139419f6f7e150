//! Machines: `POST /v1/machines` (an owner registers a machine with the
//! machine's signature over the registration statement,
//! [`crate::registration`]), `GET /v1/machines`, `GET /v1/machines/{did}`,
//! and a machine's operator key (`PUT|GET|DELETE
//! /v1/machines/{did}/operator-key`).

use sealstream_core::ValidationError;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::registration::MachineRegistration;

/// One key a machine's chunk keys are wrapped for.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MachineRecipient {
    /// The id written into envelopes (`owner-1`).
    pub recipient_id: String,
    /// `owner`, `operator` or `machine`.
    pub recipient_type: String,
    /// The X25519 public key, 32 bytes as hex.
    pub public_key_hex: String,
}

/// A machine registration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterMachine {
    /// The machine, `did:peaq:0x…`.
    pub machine_did: String,
    /// The Ed25519 public key its chunk envelopes are signed with (hex).
    pub chain_public_key: String,
    /// The keys its chunk keys are wrapped for.
    pub recipients: Vec<MachineRecipient>,
    /// The machine's EIP-191 signature over the registration statement
    /// naming the caller as owner (docs/formats.md), 65 bytes as hex.
    pub signature: String,
    /// The chain key's Ed25519 signature over the same statement, 64 bytes
    /// as hex: proof of possession of the chain key.
    pub chain_key_signature: String,
}

impl RegisterMachine {
    /// The registration statement the request's signatures must be over,
    /// with `owner_did` (the caller) as owner, its fields checked
    /// ([`MachineRegistration::from_text`]: errors name the field).
    pub fn registration(&self, owner_did: &str) -> Result<MachineRegistration, ValidationError> {
        MachineRegistration::from_request(
            owner_did,
            &self.machine_did,
            &self.chain_public_key,
            &self.recipients,
        )
    }
}

/// The registration document a machine signs for its owner
/// (`sealstream market machine sign`), which the owner sends
/// (`market machine register --registration`): the request, with the owner
/// the statement names.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignedRegistration {
    /// The owner the statement names (the key signing in must be its).
    pub owner_did: String,
    /// The machine, `did:peaq:0x…`.
    pub machine_did: String,
    /// The chain's Ed25519 public key (lowercase hex).
    pub chain_public_key: String,
    /// The keys its chunk keys are wrapped for.
    pub recipients: Vec<MachineRecipient>,
    /// The machine's EIP-191 signature over the statement.
    pub signature: String,
    /// The chain key's Ed25519 signature over the statement.
    pub chain_key_signature: String,
}

impl SignedRegistration {
    /// Reads a registration document (JSON); the error names what is
    /// wrong.
    pub fn parse(bytes: &[u8]) -> Result<SignedRegistration, ValidationError> {
        serde_json::from_slice(bytes)
            .map_err(|e| ValidationError::new("registration", e.to_string()))
    }

    /// The statement it signs, once both signatures are checked: the
    /// machine's EIP-191 signature naming this owner, chain key and
    /// recipients, and the chain key's over the same statement. Errors
    /// name the field at fault.
    pub fn verified(&self) -> Result<MachineRegistration, ValidationError> {
        let registration = self.request().registration(&self.owner_did)?;
        let signature =
            sealstream_core::identity::Eip191Signature::from_hex(&self.signature, "signature")?;
        registration.verify(&signature)?;
        registration.verify_chain_key(&self.chain_key_signature)?;
        Ok(registration)
    }

    /// The request that registers the machine (the server names the owner:
    /// the caller).
    pub fn request(&self) -> RegisterMachine {
        RegisterMachine {
            machine_did: self.machine_did.clone(),
            chain_public_key: self.chain_public_key.clone(),
            recipients: self.recipients.clone(),
            signature: self.signature.clone(),
            chain_key_signature: self.chain_key_signature.clone(),
        }
    }
}

/// A registered machine.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MachineView {
    /// The machine's DID.
    pub did: String,
    /// The owner who registered it.
    pub owner_did: String,
    /// Its chain's Ed25519 public key (lowercase hex).
    pub chain_public_key: String,
    /// The keys its chunk keys are wrapped for (keys as lowercase hex).
    pub recipients: Vec<MachineRecipient>,
    /// The machine's signature over the registration statement.
    pub signature: String,
    /// When it was registered (UTC).
    pub registered_at: String,
}

/// Machines the caller may see.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineList {
    /// Oldest first.
    pub machines: Vec<MachineView>,
}

/// `PUT /v1/machines/{did}/operator-key`. The secret is wiped from memory
/// when the request is done and never appears in `Debug` output.
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterOperatorKey {
    /// The X25519 secret key of the machine's `operator` recipient, 32
    /// bytes as hex.
    pub secret_key_hex: String,
}

impl Drop for RegisterOperatorKey {
    fn drop(&mut self) {
        self.secret_key_hex.zeroize();
    }
}

impl std::fmt::Debug for RegisterOperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegisterOperatorKey { secret_key_hex: <redacted> }")
    }
}

/// An operator key held by the server (its public half only).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OperatorKeyView {
    /// The machine.
    pub machine_did: String,
    /// The operator recipient's id, as registered with the machine.
    pub recipient_id: String,
    /// The operator's X25519 public key (lowercase hex).
    pub public_key_hex: String,
    /// Since when the server grants with it (UTC).
    pub registered_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealstream_core::identity::Did;
    use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};

    fn signed(owner: &Did) -> SignedRegistration {
        let machine = MachineSigningKey::generate();
        let chain = ChainSigningKey::generate();
        let recipients = vec![MachineRecipient {
            recipient_id: "owner-1".into(),
            recipient_type: "owner".into(),
            public_key_hex: RecipientSecretKey::generate().public_key().to_hex(),
        }];
        let registration = MachineRegistration::from_request(
            &owner.to_string(),
            &Did::of_key(&machine).to_string(),
            &chain.public_key().to_hex(),
            &recipients,
        )
        .unwrap();
        SignedRegistration {
            owner_did: owner.to_string(),
            machine_did: registration.machine.to_string(),
            chain_public_key: chain.public_key().to_hex(),
            recipients,
            signature: registration.sign(&machine).to_hex(),
            chain_key_signature: registration.sign_chain_key(&chain).unwrap(),
        }
    }

    #[test]
    fn a_registration_names_its_owner_only_with_both_signatures() {
        let owner = Did::of_key(&MachineSigningKey::generate());
        let doc = signed(&owner);
        let text = serde_json::to_vec(&doc).unwrap();
        let read = SignedRegistration::parse(&text).unwrap();
        assert_eq!(read.verified().unwrap().owner, owner);
        // Another owner named: the machine's signature no longer covers it.
        let mut moved = read.clone();
        moved.owner_did = Did::of_key(&MachineSigningKey::generate()).to_string();
        assert_eq!(moved.verified().unwrap_err().field, "signature");
        // Another chain key's signature: refused too.
        let mut other = read.clone();
        other.chain_key_signature = signed(&owner).chain_key_signature;
        assert_eq!(other.verified().unwrap_err().field, "chainKeySignature");
        assert!(SignedRegistration::parse(b"{}").is_err());
    }
}
