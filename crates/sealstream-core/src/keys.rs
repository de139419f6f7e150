//! Key types, one per kind, so an X25519 key cannot be passed where an
//! Ed25519 or secp256k1 key is wanted.
//!
//! Secret keys zeroize on drop, print as `Kind(..)` in `Debug` and have no
//! `Display`. Parsing accepts hex with or without `0x` (surrounding whitespace
//! is ignored, as in key files); a wrong length or an invalid key is a
//! [`ValidationError`] naming the field and never quoting the value.

use std::fmt;

use rand_core::{OsRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::error::ValidationError;
use crate::identity::EvmAddress;

/// `prefix` followed by `bytes` as lowercase hex, in one allocation (the
/// `hex` crate's `encode` goes character by character, which showed in
/// profiles of signing).
pub fn hex_with_prefix(prefix: &str, bytes: &[u8]) -> String {
    let mut out = vec![0u8; prefix.len() + 2 * bytes.len()];
    out[..prefix.len()].copy_from_slice(prefix.as_bytes());
    hex::encode_to_slice(bytes, &mut out[prefix.len()..])
        .expect("the buffer holds two digits per byte");
    String::from_utf8(out).expect("a prefix and hex digits are UTF-8")
}

/// Decode `N` bytes of hex (optional `0x`/`0X`, surrounding whitespace ignored).
pub fn parse_hex_array<const N: usize>(
    text: &str,
    field: &str,
) -> Result<[u8; N], ValidationError> {
    let trimmed = text.trim();
    let body = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let constraint = || {
        format!(
            "expected {N} bytes as hex ({} hex digits, optional 0x)",
            N * 2
        )
    };
    if body.len() != N * 2 {
        return Err(ValidationError::new(
            field,
            format!("{}, got {} hex digits", constraint(), body.len()),
        ));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(body, &mut out).map_err(|_| ValidationError::new(field, constraint()))?;
    Ok(out)
}

/// Decode hex of any even length (optional lowercase `0x`, no whitespace),
/// exactly as the reference's `parse_hex_bytes` does; empty input is refused.
/// Use it for values read from envelopes, where a lenient parse would accept
/// documents the reference rejects.
pub fn parse_hex_bytes(text: &str, field: &str) -> Result<Vec<u8>, ValidationError> {
    let body = text.strip_prefix("0x").unwrap_or(text);
    if body.is_empty() || !body.len().is_multiple_of(2) {
        return Err(ValidationError::new(
            field,
            "even-length hexadecimal string",
        ));
    }
    hex::decode(body).map_err(|_| ValidationError::new(field, "even-length hexadecimal string"))
}

/// [`parse_hex_bytes`] that also requires exactly `N` bytes.
pub fn parse_hex_exact<const N: usize>(
    text: &str,
    field: &str,
) -> Result<[u8; N], ValidationError> {
    parse_hex_bytes(text, field)?
        .try_into()
        .map_err(|_| ValidationError::new(field, format!("expected {N} bytes of hex")))
}

/// Whether `s` is empty or only whitespace as Python's `str.strip()` sees it
/// (Unicode whitespace plus the separators U+001C–U+001F).
pub fn is_blank(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

macro_rules! redacted_debug {
    ($ty:ident) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($ty), "(..)"))
            }
        }
    };
}

// ---------------------------------------------------------------- secp256k1

/// The machine's secp256k1 signing key (EIP-191 package signatures, DID).
pub struct MachineSigningKey(secp256k1::SecretKey);
redacted_debug!(MachineSigningKey);

impl Drop for MachineSigningKey {
    fn drop(&mut self) {
        self.0.non_secure_erase();
    }
}

impl MachineSigningKey {
    /// Parse 32 bytes of hex; `field` names the input in errors.
    pub fn from_hex(text: &str, field: &str) -> Result<Self, ValidationError> {
        let bytes = Zeroizing::new(parse_hex_array::<32>(text, field)?);
        Self::from_bytes(&bytes, field)
    }

    /// From raw bytes; fails for zero or a value not below the curve order.
    pub fn from_bytes(bytes: &[u8; 32], field: &str) -> Result<Self, ValidationError> {
        secp256k1::SecretKey::from_byte_array(*bytes)
            .map(MachineSigningKey)
            .map_err(|_| ValidationError::new(field, "not a valid secp256k1 private key"))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        // 32 random bytes are a valid key but for about 2^-128 of draws
        // (zero, or not below the curve order); those draw again.
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(bytes.as_mut());
            if let Ok(key) = secp256k1::SecretKey::from_byte_array(*bytes) {
                return MachineSigningKey(key);
            }
        }
    }

    /// The EVM address of this key.
    pub fn address(&self) -> EvmAddress {
        let public = secp256k1::PublicKey::from_secret_key_global(&self.0);
        EvmAddress::from_public_key(&public)
    }

    /// `0x` + 64 hex digits: the key file form. Handle with care.
    pub fn to_hex_secret(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("0x{}", hex::encode(self.0.secret_bytes())))
    }

    pub(crate) fn inner(&self) -> &secp256k1::SecretKey {
        &self.0
    }
}

// ---------------------------------------------------------------- ed25519

/// The methods every Ed25519 signing key type has: parsing a 32-byte seed,
/// a fresh key, its public half (of type `$public`), the seed as hex and a
/// signature. Each kind is a type of its own so one cannot stand for another.
macro_rules! ed25519_signing_key {
    ($ty:ident, $public:ident) => {
        redacted_debug!($ty);

        impl $ty {
            /// Parse a 32-byte seed as hex (optional `0x`, surrounding whitespace ignored).
            pub fn from_hex(text: &str, field: &str) -> Result<Self, ValidationError> {
                let bytes = Zeroizing::new(parse_hex_array::<32>(text, field)?);
                Ok(Self::from_bytes(&bytes))
            }

            /// From a 32-byte seed.
            pub fn from_bytes(bytes: &[u8; 32]) -> Self {
                $ty(ed25519_dalek::SigningKey::from_bytes(bytes))
            }

            /// A fresh random key.
            pub fn generate() -> Self {
                $ty(ed25519_dalek::SigningKey::generate(&mut OsRng))
            }

            /// The public key.
            pub fn public_key(&self) -> $public {
                $public(self.0.verifying_key())
            }

            /// Seed as lowercase hex (the key file form). Handle with care.
            pub fn to_hex_secret(&self) -> Zeroizing<String> {
                Zeroizing::new(hex::encode(self.0.to_bytes()))
            }

            /// The Ed25519 signature of `message`.
            pub fn sign(&self, message: &[u8]) -> [u8; 64] {
                use ed25519_dalek::Signer;
                self.0.sign(message).to_bytes()
            }
        }
    };
}

/// The methods every Ed25519 public key type has: parsing (which fails for
/// bytes that are not a curve point), hex and bytes, and a `Debug` that
/// shows the key. How a type verifies is its own.
macro_rules! ed25519_public_key {
    ($ty:ident) => {
        impl $ty {
            /// Parse 32 bytes of hex (optional `0x`); fails if they are not a curve point.
            pub fn from_hex(text: &str, field: &str) -> Result<Self, ValidationError> {
                let bytes = parse_hex_array::<32>(text, field)?;
                Self::from_bytes(&bytes, field)
            }

            /// From 32 bytes; fails if they are not a curve point.
            pub fn from_bytes(bytes: &[u8; 32], field: &str) -> Result<Self, ValidationError> {
                ed25519_dalek::VerifyingKey::from_bytes(bytes)
                    .map($ty)
                    .map_err(|_| ValidationError::new(field, "not a valid Ed25519 public key"))
            }

            /// Lowercase hex, no prefix.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0.as_bytes())
            }

            /// Raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                self.0.as_bytes()
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({})"), self.to_hex())
            }
        }
    };
}

/// The chain signing key (Ed25519 signatures over `encryptedDataHash`); its
/// hex form is the reference's key file form.
pub struct ChainSigningKey(ed25519_dalek::SigningKey);
ed25519_signing_key!(ChainSigningKey, ChainPublicKey);

/// An Ed25519 chain public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ChainPublicKey(ed25519_dalek::VerifyingKey);
ed25519_public_key!(ChainPublicKey);

impl ChainPublicKey {
    /// Verify an Ed25519 signature (RFC 8032, as `cryptography` does it).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        use ed25519_dalek::Verifier;
        // Cofactorless RFC 8032 verification with canonical `s`, as OpenSSL
        // (behind the reference's `cryptography`) does it.
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify(message, &sig).is_ok()
    }
}

// ---------------------------------------------------------------- receipts

/// The market's Ed25519 key that signs license receipts
/// (`sealstream_api::receipts`). A type of its own, so a chain key cannot sign a
/// receipt by mistake (nor the other way round).
pub struct ReceiptSigningKey(ed25519_dalek::SigningKey);
ed25519_signing_key!(ReceiptSigningKey, ReceiptPublicKey);

/// The public half of a [`ReceiptSigningKey`]: what a buyer pins to check
/// receipts offline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReceiptPublicKey(ed25519_dalek::VerifyingKey);
ed25519_public_key!(ReceiptPublicKey);

impl ReceiptPublicKey {
    /// Verify an Ed25519 signature strictly (RFC 8032 with canonical `s`,
    /// refusing small-order keys and points): receipts are only ever made by
    /// [`ReceiptSigningKey`], so nothing lenient needs to pass.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &sig).is_ok()
    }
}

// ---------------------------------------------------------------- x25519

/// An X25519 recipient secret key (owner, operator, machine, buyer).
pub struct RecipientSecretKey {
    bytes: Zeroizing<[u8; 32]>,
    private: aws_lc_rs::agreement::PrivateKey,
    public: RecipientPublicKey,
}
redacted_debug!(RecipientSecretKey);

impl RecipientSecretKey {
    /// Parse 32 bytes of hex.
    pub fn from_hex(text: &str, field: &str) -> Result<Self, ValidationError> {
        let bytes = Zeroizing::new(parse_hex_array::<32>(text, field)?);
        Ok(Self::from_bytes(*bytes))
    }

    /// From 32 raw bytes (clamped when used, as libsodium does).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let private = aws_lc_rs::agreement::PrivateKey::from_private_key(
            &aws_lc_rs::agreement::X25519,
            bytes.as_ref(),
        )
        .expect("any 32 bytes are an X25519 private key");
        let public = private.compute_public_key().expect("X25519 public key");
        let mut pk = [0u8; 32];
        pk.copy_from_slice(public.as_ref());
        RecipientSecretKey {
            bytes,
            private,
            public: RecipientPublicKey(pk),
        }
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut());
        Self::from_bytes(*bytes)
    }

    /// The public key.
    pub fn public_key(&self) -> RecipientPublicKey {
        self.public
    }

    /// Lowercase hex (the reference's key file form). Handle with care.
    pub fn to_hex_secret(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.bytes))
    }

    pub(crate) fn private(&self) -> &aws_lc_rs::agreement::PrivateKey {
        &self.private
    }
}

/// An X25519 recipient public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecipientPublicKey(pub(crate) [u8; 32]);

impl RecipientPublicKey {
    /// Parse 32 bytes of hex.
    pub fn from_hex(text: &str, field: &str) -> Result<Self, ValidationError> {
        Ok(RecipientPublicKey(parse_hex_array::<32>(text, field)?))
    }

    /// From raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        RecipientPublicKey(bytes)
    }

    /// Raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, no prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Refuse keys of small order: X25519 with them gives an all-zero secret,
    /// so nothing sealed to them could ever be opened (libsodium refuses them too).
    /// A comparison with the seven such encodings ([`SMALL_ORDER_X25519`]),
    /// as libsodium's `has_small_order` does: no curve operation, so a
    /// granter may check a thousand buyers' keys per chunk.
    pub fn check_usable(&self, field: &str) -> Result<(), ValidationError> {
        if has_small_order(&self.0) {
            return Err(ValidationError::new(
                field,
                "not a usable X25519 public key (small order)",
            ));
        }
        Ok(())
    }
}

/// The X25519 u-coordinates of small order, little-endian, as libsodium
/// lists them: 0 (order 4), 1 (order 1), the two points of order 8,
/// p − 1 (order 2), and the non-canonical p (= 0) and p + 1 (= 1), with
/// p = 2²⁵⁵ − 19. Compared with the top bit masked, which X25519 ignores.
/// Any scalar multiplied with one of them gives the all-zero secret.
pub const SMALL_ORDER_X25519: [[u8; 32]; 7] = {
    const fn high(low: u8) -> [u8; 32] {
        let mut u = [0xff; 32];
        u[0] = low;
        u[31] = 0x7f;
        u
    }
    const fn small(low: u8) -> [u8; 32] {
        let mut u = [0; 32];
        u[0] = low;
        u
    }
    [
        small(0),
        small(1),
        [
            0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
            0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
            0x5f, 0x49, 0xb8, 0x00,
        ],
        [
            0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83,
            0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd,
            0xd0, 0x9f, 0x11, 0x57,
        ],
        high(0xec),
        high(0xed),
        high(0xee),
    ]
};

/// Whether `u` encodes a point of small order ([`SMALL_ORDER_X25519`]),
/// the top bit ignored. Every entry is compared in full.
fn has_small_order(u: &[u8; 32]) -> bool {
    let mut masked = *u;
    masked[31] &= 0x7f;
    SMALL_ORDER_X25519
        .iter()
        .fold(false, |hit, bad| hit | (*bad == masked))
}

impl fmt::Debug for RecipientPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientPublicKey({})", self.to_hex())
    }
}

// ---------------------------------------------------------------- AES-256

/// The 32-byte AES-256-GCM key of field-level encryption.
#[derive(Clone)]
pub struct FieldKey(Zeroizing<[u8; 32]>);
redacted_debug!(FieldKey);

impl FieldKey {
    /// Parse 32 bytes of hex.
    pub fn from_hex(text: &str, field: &str) -> Result<Self, ValidationError> {
        Ok(FieldKey(Zeroizing::new(parse_hex_array::<32>(
            text, field,
        )?)))
    }

    /// From raw bytes.
    pub fn from_bytes(mut bytes: [u8; 32]) -> Self {
        let key = FieldKey(Zeroizing::new(bytes));
        bytes.zeroize();
        key
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut());
        FieldKey(bytes)
    }

    /// Lowercase hex. Handle with care.
    pub fn to_hex_secret(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.0))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oracle for [`has_small_order`]: X25519 in aws-lc with a fresh
    /// secret refuses an all-zero result.
    fn agreement_fails(u: &[u8; 32]) -> bool {
        use aws_lc_rs::agreement::{agree, PrivateKey, UnparsedPublicKey, X25519};
        let probe = PrivateKey::generate(&X25519).unwrap();
        agree(&probe, UnparsedPublicKey::new(&X25519, u), (), |_| Ok(())).is_err()
    }

    #[test]
    fn every_small_order_encoding_is_one_x25519_refuses() {
        for u in SMALL_ORDER_X25519 {
            let mut high = u;
            high[31] |= 0x80;
            for u in [u, high] {
                assert!(agreement_fails(&u), "{}", hex::encode(u));
                let key = RecipientPublicKey::from_bytes(u);
                let e = key.check_usable("k").unwrap_err();
                assert_eq!(e.field, "k");
            }
        }
        assert!(RecipientPublicKey::from_hex(OWNER_PK, "k")
            .unwrap()
            .check_usable("k")
            .is_ok());
    }

    proptest::proptest! {
        #[test]
        fn small_order_check_agrees_with_x25519(u in proptest::array::uniform32(proptest::num::u8::ANY)) {
            proptest::prop_assert_eq!(has_small_order(&u), agreement_fails(&u));
        }
    }

    const OWNER_SK: &str = "51b48b68b1a9f4a820f7fb161053d09345b11e4eef1b81b2847556789e0db8e3";
    const OWNER_PK: &str = "aaa52adfb12f7a161e2d502386cd3cb2eff0dbe38e90c70085a0872229a3b946";

    #[test]
    fn x25519_public_key_matches_reference() {
        let sk = RecipientSecretKey::from_hex(OWNER_SK, "owner").unwrap();
        assert_eq!(sk.public_key().to_hex(), OWNER_PK);
        let with_prefix =
            RecipientSecretKey::from_hex(&format!(" 0x{OWNER_SK}\n"), "owner").unwrap();
        assert_eq!(with_prefix.public_key().to_hex(), OWNER_PK);
    }

    #[test]
    fn machine_key_gives_reference_address() {
        let sk = MachineSigningKey::from_hex(
            "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761",
            "machine",
        )
        .unwrap();
        assert_eq!(
            sk.address().to_checksum(),
            "0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1"
        );
    }

    #[test]
    fn ed25519_public_key_matches_reference() {
        let sk = ChainSigningKey::from_hex(
            "1f6350a24055b23b7abc6aaaa4466007a95bf4807826b6810a79dfe06af8f45f",
            "chain",
        )
        .unwrap();
        assert_eq!(
            sk.public_key().to_hex(),
            "0c15b8ab0e85fd29f44ae2a505c039faea332c326ac39bb5506b4f6851d05ab7"
        );
    }

    #[test]
    fn wrong_lengths_name_the_field_and_hide_the_value() {
        let short = &OWNER_SK[..62];
        let err = RecipientSecretKey::from_hex(short, "owner_private_key").unwrap_err();
        assert_eq!(err.field, "owner_private_key");
        assert!(err.constraint.contains("got 62 hex digits"), "{err}");
        assert!(!err.to_string().contains(short));
        let err = MachineSigningKey::from_hex(&"0".repeat(64), "signing_key").unwrap_err();
        assert!(err.to_string().contains("secp256k1"));
        assert!(FieldKey::from_hex("zz", "field_key").is_err());
    }

    #[test]
    fn secrets_print_redacted() {
        let sk = RecipientSecretKey::from_hex(OWNER_SK, "owner").unwrap();
        assert_eq!(format!("{sk:?}"), "RecipientSecretKey(..)");
        assert_eq!(
            format!("{:?}", MachineSigningKey::generate()),
            "MachineSigningKey(..)"
        );
        assert_eq!(
            format!("{:?}", ChainSigningKey::generate()),
            "ChainSigningKey(..)"
        );
        assert_eq!(format!("{:?}", FieldKey::generate()), "FieldKey(..)");
        assert_eq!(
            format!("{:?}", ReceiptSigningKey::generate()),
            "ReceiptSigningKey(..)"
        );
    }

    #[test]
    fn receipt_keys_sign_and_verify_strictly() {
        let seed = "1f6350a24055b23b7abc6aaaa4466007a95bf4807826b6810a79dfe06af8f45f";
        let sk = ReceiptSigningKey::from_hex(seed, "receipt key").unwrap();
        // The same Ed25519 derivation as the chain key.
        assert_eq!(
            sk.public_key().to_hex(),
            "0c15b8ab0e85fd29f44ae2a505c039faea332c326ac39bb5506b4f6851d05ab7"
        );
        assert_eq!(sk.to_hex_secret().as_str(), seed);
        let pk =
            ReceiptPublicKey::from_hex(&format!("0x{}", sk.public_key().to_hex()), "k").unwrap();
        assert_eq!(pk, sk.public_key());
        let sig = sk.sign(b"message");
        assert!(pk.verify(b"message", &sig));
        assert!(!pk.verify(b"messagE", &sig));
        let mut bad = sig;
        bad[63] ^= 0x10;
        assert!(!pk.verify(b"message", &bad));
        // The identity point is a curve point but a small-order key: refused when verifying.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = ReceiptPublicKey::from_bytes(&identity, "k").unwrap();
        assert!(!weak.verify(b"message", &[0u8; 64]));
    }
}
