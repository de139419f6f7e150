//! EVM addresses and `did:peaq:0x…` identities, and EIP-191 signatures.

use std::fmt;
use std::str::FromStr;

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, SECP256K1};
use sha3::{Digest, Keccak256};

use crate::error::ValidationError;
use crate::keys::MachineSigningKey;

/// The DID method prefix of peaq identities.
pub const PEAQ_DID_PREFIX: &str = "did:peaq:";

/// A 20-byte EVM address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EvmAddress(pub [u8; 20]);

impl EvmAddress {
    /// The address of a secp256k1 public key: the last 20 bytes of
    /// Keccak-256 over the uncompressed point without its `04` prefix.
    pub fn from_public_key(public: &secp256k1::PublicKey) -> Self {
        let uncompressed = public.serialize_uncompressed();
        let digest = Keccak256::digest(&uncompressed[1..]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest[12..]);
        EvmAddress(out)
    }

    /// Parse `0x` + 40 hex digits (any case; the checksum is not enforced,
    /// as the reference compares addresses case-insensitively).
    pub fn parse(text: &str, field: &str) -> Result<Self, ValidationError> {
        let body = text
            .strip_prefix("0x")
            .ok_or_else(|| ValidationError::new(field, "expected 0x followed by 40 hex digits"))?;
        if body.len() != 40 {
            return Err(ValidationError::new(
                field,
                "expected 0x followed by 40 hex digits",
            ));
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(body, &mut out)
            .map_err(|_| ValidationError::new(field, "expected 0x followed by 40 hex digits"))?;
        Ok(EvmAddress(out))
    }

    /// EIP-55 mixed-case checksum form, `0x…`.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = Keccak256::digest(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, ch) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0xf;
            if ch.is_ascii_alphabetic() && nibble >= 8 {
                out.push(ch.to_ascii_uppercase());
            } else {
                out.push(ch);
            }
        }
        out
    }
}

impl fmt::Display for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EvmAddress({})", self.to_checksum())
    }
}

/// A `did:peaq:0x<address>` identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Did(EvmAddress);

impl Did {
    /// The DID of an address.
    pub fn from_address(address: EvmAddress) -> Self {
        Did(address)
    }

    /// The DID of a machine signing key.
    pub fn of_key(key: &MachineSigningKey) -> Self {
        Did(key.address())
    }

    /// Parse `did:peaq:0x` + 40 hex digits (address compared case-insensitively).
    pub fn parse(text: &str, field: &str) -> Result<Self, ValidationError> {
        let rest = text.strip_prefix(PEAQ_DID_PREFIX).ok_or_else(|| {
            ValidationError::new(field, "expected did:peaq:0x followed by 40 hex digits")
        })?;
        EvmAddress::parse(rest, field).map(Did).map_err(|_| {
            ValidationError::new(field, "expected did:peaq:0x followed by 40 hex digits")
        })
    }

    /// The address.
    pub fn address(&self) -> EvmAddress {
        self.0
    }

    /// The default key id of this DID, `did:peaq:0x…#keys-1`.
    pub fn default_key_id(&self) -> String {
        format!("{self}#keys-1")
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PEAQ_DID_PREFIX}{}", self.0.to_checksum())
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({self})")
    }
}

impl FromStr for Did {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Did::parse(s, "did")
    }
}

/// Keccak-256 of the EIP-191 personal message `"\x19Ethereum Signed Message:\n" + len + message`.
pub fn eip191_hash(message: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(b"\x19Ethereum Signed Message:\n");
    hasher.update(message.len().to_string().as_bytes());
    hasher.update(message);
    hasher.finalize().into()
}

/// A 65-byte `r ‖ s ‖ v` signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Eip191Signature(pub [u8; 65]);

impl Eip191Signature {
    /// `0x` + 130 lowercase hex digits, v = 27/28, as `eth_account` writes it.
    pub fn to_hex(&self) -> String {
        crate::keys::hex_with_prefix("0x", &self.0)
    }

    /// Parse 65 bytes of hex (optional `0x`).
    pub fn from_hex(text: &str, field: &str) -> Result<Self, ValidationError> {
        crate::keys::parse_hex_array::<65>(text, field).map(Eip191Signature)
    }
}

impl fmt::Debug for Eip191Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Eip191Signature({})", self.to_hex())
    }
}

/// Sign `message` as an EIP-191 personal message (RFC 6979 deterministic,
/// low-s, v = 27/28 — byte-identical to `eth_account.Account.sign_message`).
pub fn eip191_sign(key: &MachineSigningKey, message: &[u8]) -> Eip191Signature {
    let (compact, recid) = sign_digest(key, eip191_hash(message));
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&compact);
    out[64] = 27 + recid;
    Eip191Signature(out)
}

/// Sign a 32-byte digest (a Keccak-256 hash the caller made, such as an
/// EVM transaction's signing hash): `r ‖ s` (RFC 6979 deterministic,
/// low-s) and the recovery id, 0 or 1.
pub fn sign_digest(key: &MachineSigningKey, digest: [u8; 32]) -> ([u8; 64], u8) {
    let sig = crate::ecdsa_sign::sign_recoverable(key.inner(), digest);
    let (recid, compact) = sig.serialize_compact();
    (compact, i32::from(recid) as u8)
}

/// Why an EIP-191 signature did not recover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoverError {
    /// `v` is not 0, 1, 27 or 28.
    #[error("signature recovery byte is not 0, 1, 27 or 28")]
    BadRecoveryByte,
    /// `r`/`s` are out of range or no key recovers.
    #[error("signature does not recover a public key")]
    Unrecoverable,
}

/// Recover the signer's address of an EIP-191 personal message.
/// Accepts v = 0/1 and 27/28.
pub fn eip191_recover(
    message: &[u8],
    signature: &Eip191Signature,
) -> Result<EvmAddress, RecoverError> {
    let v = signature.0[64];
    let recid = match v {
        0 | 1 => i32::from(v),
        27 | 28 => i32::from(v - 27),
        _ => return Err(RecoverError::BadRecoveryByte),
    };
    let recid = RecoveryId::try_from(recid).map_err(|_| RecoverError::BadRecoveryByte)?;
    let sig = RecoverableSignature::from_compact(&signature.0[..64], recid)
        .map_err(|_| RecoverError::Unrecoverable)?;
    let digest = eip191_hash(message);
    let public = SECP256K1
        .recover_ecdsa(Message::from_digest(digest), &sig)
        .map_err(|_| RecoverError::Unrecoverable)?;
    Ok(EvmAddress::from_public_key(&public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_round_trip_and_case() {
        let did = Did::parse("did:peaq:0x3d9141c95c9384e002528cf6aee3b33a4c816de1", "did").unwrap();
        assert_eq!(
            did.to_string(),
            "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1"
        );
        assert!(Did::parse("did:peaq:3d9141c95c9384e002528cf6aee3b33a4c816de1", "did").is_err());
        assert!(Did::parse("did:key:0x3d9141c95c9384e002528cf6aee3b33a4c816de1", "did").is_err());
    }

    #[test]
    fn sign_then_recover_accepts_all_v_forms() {
        let key = MachineSigningKey::generate();
        let sig = eip191_sign(&key, b"hello");
        assert!(sig.0[64] == 27 || sig.0[64] == 28);
        assert_eq!(eip191_recover(b"hello", &sig).unwrap(), key.address());
        let mut low = sig;
        low.0[64] -= 27;
        assert_eq!(eip191_recover(b"hello", &low).unwrap(), key.address());
        let mut bad = sig;
        bad.0[64] = 29;
        assert_eq!(
            eip191_recover(b"hello", &bad),
            Err(RecoverError::BadRecoveryByte)
        );
        assert_ne!(eip191_recover(b"hellO", &sig).ok(), Some(key.address()));
    }
}
