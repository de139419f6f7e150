//! The machine registration statement: the text a machine signs (EIP-191,
//! with its secp256k1 key) to let an owner register it with a market, naming
//! the owner, the chain's Ed25519 public key and the X25519 keys its chunk
//! keys are wrapped for.
//!
//! ```text
//! sealstream machine registration v1
//! machine: did:peaq:0x<machine address, EIP-55>
//! owner: did:peaq:0x<owner address, EIP-55>
//! chain public key: <64 lowercase hex digits>
//! recipient: <type> <id> <64 lowercase hex digits>
//! recipient: …
//! ```
//!
//! Lines end with LF, with no final LF. Recipients appear in the order given;
//! a type is `owner`, `operator` or `machine` (as in the chunk envelope's
//! `keyRecipients`), an id is 1 to 128 visible ASCII characters without
//! spaces, unique within the statement. Anyone holding the fields rebuilds
//! the same text ([`MachineRegistration::statement`]); the server does so
//! with the signed-in caller as owner, so a signature made for one owner
//! cannot register the machine for another.
//!
//! The chain's Ed25519 key signs the same statement
//! ([`MachineRegistration::sign_chain_key`]): a registration proves
//! possession of both keys it names, so nobody can register a chain key they
//! only saw in a purchased chunk's envelope under a machine of their own.

use sealstream_core::chunk::recipient_type;
use sealstream_core::identity::{eip191_recover, eip191_sign, Did, Eip191Signature};
use sealstream_core::keys::{
    parse_hex_array, ChainPublicKey, ChainSigningKey, MachineSigningKey, RecipientPublicKey,
};
use sealstream_core::ValidationError;

use crate::machines::MachineRecipient;

/// The first line of the statement.
pub const HEADER: &str = "sealstream machine registration v1";
/// Longest recipient id.
pub const MAX_RECIPIENT_ID_LEN: usize = 128;
/// Most recipients a machine may name.
pub const MAX_RECIPIENTS: usize = 32;

/// One key a machine wraps its chunk keys for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationRecipient {
    /// The id written into envelopes (`owner-1`).
    pub recipient_id: String,
    /// `owner`, `operator` or `machine`.
    pub recipient_type: String,
    /// The X25519 public key.
    pub public_key: RecipientPublicKey,
}

/// What a machine's registration signature covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineRegistration {
    /// The machine.
    pub machine: Did,
    /// Its owner.
    pub owner: Did,
    /// The Ed25519 key its chunk envelopes are signed with.
    pub chain_public_key: ChainPublicKey,
    /// The keys its chunk keys are wrapped for.
    pub recipients: Vec<RegistrationRecipient>,
}

impl MachineRegistration {
    /// [`MachineRegistration::from_text`] of a machine registered under
    /// `owner_did` with the recipients as the API's requests carry them.
    pub fn from_request(
        owner_did: &str,
        machine_did: &str,
        chain_public_key_hex: &str,
        recipients: &[MachineRecipient],
    ) -> Result<MachineRegistration, ValidationError> {
        let recipients: Vec<(&str, &str, &str)> = recipients
            .iter()
            .map(|r| {
                (
                    r.recipient_id.as_str(),
                    r.recipient_type.as_str(),
                    r.public_key_hex.as_str(),
                )
            })
            .collect();
        Self::from_text(owner_did, machine_did, chain_public_key_hex, &recipients)
    }

    /// Reads and checks the fields as a client sends them (DIDs
    /// `did:peaq:0x…` in any case, keys as hex). Errors name the field as in
    /// the market API: `ownerDid`, `machineDid`, `chainPublicKey`,
    /// `recipients[i].recipientId|recipientType|publicKeyHex`.
    pub fn from_text(
        owner_did: &str,
        machine_did: &str,
        chain_public_key_hex: &str,
        recipients: &[(&str, &str, &str)],
    ) -> Result<MachineRegistration, ValidationError> {
        let owner = Did::parse(owner_did, "ownerDid")?;
        let machine = Did::parse(machine_did, "machineDid")?;
        let chain_public_key = ChainPublicKey::from_hex(chain_public_key_hex, "chainPublicKey")?;
        let recipients = recipients
            .iter()
            .enumerate()
            .map(|(i, (id, kind, hex))| {
                let field = format!("recipients[{i}].publicKeyHex");
                Ok(RegistrationRecipient {
                    recipient_id: (*id).to_string(),
                    recipient_type: (*kind).to_string(),
                    public_key: RecipientPublicKey::from_hex(hex, &field)?,
                })
            })
            .collect::<Result<Vec<_>, ValidationError>>()?;
        let registration = MachineRegistration {
            machine,
            owner,
            chain_public_key,
            recipients,
        };
        registration.validate()?;
        Ok(registration)
    }

    /// Checks the rules of the module documentation: the machine is not its
    /// owner, 1 to [`MAX_RECIPIENTS`] recipients with valid, unique ids,
    /// known types and usable X25519 keys.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.machine == self.owner {
            return Err(ValidationError::new(
                "machineDid",
                "a machine cannot be its own owner",
            ));
        }
        if self.recipients.is_empty() || self.recipients.len() > MAX_RECIPIENTS {
            return Err(ValidationError::new(
                "recipients",
                format!("1 to {MAX_RECIPIENTS} recipients"),
            ));
        }
        for (i, r) in self.recipients.iter().enumerate() {
            let id_ok = !r.recipient_id.is_empty()
                && r.recipient_id.len() <= MAX_RECIPIENT_ID_LEN
                && r.recipient_id.bytes().all(|b| b.is_ascii_graphic());
            if !id_ok {
                return Err(ValidationError::new(
                    format!("recipients[{i}].recipientId"),
                    format!("1 to {MAX_RECIPIENT_ID_LEN} visible ASCII characters, no spaces"),
                ));
            }
            if self.recipients[..i]
                .iter()
                .any(|other| other.recipient_id == r.recipient_id)
            {
                return Err(ValidationError::new(
                    format!("recipients[{i}].recipientId"),
                    "each recipient id once",
                ));
            }
            let known = [
                recipient_type::OWNER,
                recipient_type::OPERATOR,
                recipient_type::MACHINE,
            ];
            if !known.contains(&r.recipient_type.as_str()) {
                return Err(ValidationError::new(
                    format!("recipients[{i}].recipientType"),
                    "owner, operator or machine",
                ));
            }
            r.public_key
                .check_usable(&format!("recipients[{i}].publicKeyHex"))?;
        }
        Ok(())
    }

    /// The exact text the machine signs.
    pub fn statement(&self) -> String {
        let mut lines = vec![
            HEADER.to_string(),
            format!("machine: {}", self.machine),
            format!("owner: {}", self.owner),
            format!("chain public key: {}", self.chain_public_key.to_hex()),
        ];
        for r in &self.recipients {
            lines.push(format!(
                "recipient: {} {} {}",
                r.recipient_type,
                r.recipient_id,
                r.public_key.to_hex()
            ));
        }
        lines.join("\n")
    }

    /// The machine's EIP-191 signature over [`statement`](Self::statement)
    /// (`key` must be the machine's key for [`verify`](Self::verify) to
    /// pass).
    pub fn sign(&self, key: &MachineSigningKey) -> Eip191Signature {
        eip191_sign(key, self.statement().as_bytes())
    }

    /// The chain key's Ed25519 signature over [`statement`](Self::statement),
    /// 64 bytes as lowercase hex: proof of possession of the chain key. The
    /// error names `chainKey` when `key` is not the chain key named.
    pub fn sign_chain_key(&self, key: &ChainSigningKey) -> Result<String, ValidationError> {
        if key.public_key() != self.chain_public_key {
            return Err(ValidationError::new(
                "chainKey",
                "is not the chain key the registration names",
            ));
        }
        Ok(hex::encode(key.sign(self.statement().as_bytes())))
    }

    /// Checks that `signature_hex` is the chain key's Ed25519 signature over
    /// the statement. The error names `chainKeySignature`.
    pub fn verify_chain_key(&self, signature_hex: &str) -> Result<(), ValidationError> {
        const FIELD: &str = "chainKeySignature";
        let signature = parse_hex_array::<64>(signature_hex, FIELD)?;
        if !self
            .chain_public_key
            .verify(self.statement().as_bytes(), &signature)
        {
            return Err(ValidationError::new(
                FIELD,
                "not the chain key's signature over the registration statement",
            ));
        }
        Ok(())
    }

    /// Checks that `signature` is the machine's over the statement: the
    /// signer recovered from it is the machine DID's address. The error
    /// names `signature`.
    pub fn verify(&self, signature: &Eip191Signature) -> Result<(), ValidationError> {
        let signer = eip191_recover(self.statement().as_bytes(), signature)
            .map_err(|e| ValidationError::new("signature", e.to_string()))?;
        if signer != self.machine.address() {
            return Err(ValidationError::new(
                "signature",
                "not the machine's signature over the registration statement naming this owner, chain key and recipients",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealstream_core::keys::{ChainSigningKey, RecipientSecretKey};

    fn example() -> (MachineSigningKey, MachineRegistration) {
        let machine = MachineSigningKey::from_hex(
            "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
            "k",
        )
        .unwrap();
        let owner = Did::parse("did:peaq:0x3d9141c95c9384e002528cf6aee3b33a4c816de1", "o").unwrap();
        let chain = ChainSigningKey::from_bytes(&[7; 32]).public_key();
        let recipient = RecipientSecretKey::from_bytes([9; 32]).public_key();
        let registration = MachineRegistration {
            machine: Did::of_key(&machine),
            owner,
            chain_public_key: chain,
            recipients: vec![RegistrationRecipient {
                recipient_id: "owner-1".into(),
                recipient_type: "owner".into(),
                public_key: recipient,
            }],
        };
        (machine, registration)
    }

    #[test]
    fn the_chain_key_proves_possession() {
        let (_, mut r) = example();
        let chain = ChainSigningKey::from_bytes(&[7; 32]);
        let proof = r.sign_chain_key(&chain).unwrap();
        assert_eq!(proof.len(), 128);
        r.verify_chain_key(&proof).unwrap();
        assert_eq!(
            r.sign_chain_key(&ChainSigningKey::from_bytes(&[8; 32]))
                .unwrap_err()
                .field,
            "chainKey"
        );
        // The proof covers the whole statement: another owner breaks it.
        r.owner = Did::parse("did:peaq:0x0000000000000000000000000000000000000001", "o").unwrap();
        assert_eq!(
            r.verify_chain_key(&proof).unwrap_err().field,
            "chainKeySignature"
        );
        assert_eq!(
            r.verify_chain_key("zz").unwrap_err().field,
            "chainKeySignature"
        );
    }

    #[test]
    fn statement_text_is_exact() {
        let (machine, r) = example();
        let text = r.statement();
        let expected = format!(
            "sealstream machine registration v1\nmachine: {}\nowner: did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1\nchain public key: {}\nrecipient: owner owner-1 {}",
            Did::of_key(&machine),
            r.chain_public_key.to_hex(),
            r.recipients[0].public_key.to_hex()
        );
        assert_eq!(text, expected);
        assert!(!text.ends_with('\n'));
    }

    #[test]
    fn signed_by_the_machine_verifies_and_nothing_else_does() {
        let (machine, r) = example();
        let sig = r.sign(&machine);
        r.verify(&sig).unwrap();
        let other = MachineSigningKey::generate();
        assert_eq!(r.verify(&r.sign(&other)).unwrap_err().field, "signature");
        let mut for_other_owner = r.clone();
        for_other_owner.owner = Did::of_key(&other);
        assert_eq!(for_other_owner.verify(&sig).unwrap_err().field, "signature");
        let mut bad_v = sig;
        bad_v.0[64] = 5;
        assert_eq!(r.verify(&bad_v).unwrap_err().field, "signature");
    }

    #[test]
    fn a_request_reads_as_its_registration() {
        let (machine, r) = example();
        let request = crate::machines::RegisterMachine {
            machine_did: Did::of_key(&machine).to_string(),
            chain_public_key: r.chain_public_key.to_hex(),
            recipients: vec![crate::machines::MachineRecipient {
                recipient_id: "owner-1".into(),
                recipient_type: "owner".into(),
                public_key_hex: r.recipients[0].public_key.to_hex(),
            }],
            signature: String::new(),
            chain_key_signature: String::new(),
        };
        assert_eq!(request.registration(&r.owner.to_string()).unwrap(), r);
        let mut bad = request;
        bad.recipients[0].public_key_hex = "zz".into();
        assert_eq!(
            bad.registration(&r.owner.to_string()).unwrap_err().field,
            "recipients[0].publicKeyHex"
        );
    }

    #[test]
    fn from_text_names_the_field() {
        let (machine, r) = example();
        let machine_did = Did::of_key(&machine).to_string();
        let owner = r.owner.to_string();
        let chain = r.chain_public_key.to_hex();
        let key = r.recipients[0].public_key.to_hex();
        let ok = MachineRegistration::from_text(
            &owner.to_lowercase(),
            &machine_did,
            &format!("0x{}", chain.to_uppercase()),
            &[("owner-1", "owner", &key)],
        )
        .unwrap();
        assert_eq!(ok, r, "DIDs and hex are normalised");
        let field = |owner: &str, m: &str, c: &str, rs: &[(&str, &str, &str)]| {
            MachineRegistration::from_text(owner, m, c, rs)
                .unwrap_err()
                .field
        };
        assert_eq!(field(&owner, "did:x", &chain, &[]), "machineDid");
        assert_eq!(
            field(&owner, &owner, &chain, &[("a", "owner", &key)]),
            "machineDid"
        );
        assert_eq!(field(&owner, &machine_did, "00", &[]), "chainPublicKey");
        assert_eq!(field(&owner, &machine_did, &chain, &[]), "recipients");
        assert_eq!(
            field(&owner, &machine_did, &chain, &[("a b", "owner", &key)]),
            "recipients[0].recipientId"
        );
        assert_eq!(
            field(
                &owner,
                &machine_did,
                &chain,
                &[("a", "owner", &key), ("a", "machine", &key)]
            ),
            "recipients[1].recipientId"
        );
        assert_eq!(
            field(&owner, &machine_did, &chain, &[("a", "buyer", &key)]),
            "recipients[0].recipientType"
        );
        assert_eq!(
            field(&owner, &machine_did, &chain, &[("a", "owner", "zz")]),
            "recipients[0].publicKeyHex"
        );
        let small_order = "00".repeat(32);
        assert_eq!(
            field(
                &owner,
                &machine_did,
                &chain,
                &[("a", "owner", &small_order)]
            ),
            "recipients[0].publicKeyHex"
        );
    }
}
