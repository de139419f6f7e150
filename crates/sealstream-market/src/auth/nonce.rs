//! Stateless sign-in nonces.
//!
//! `POST /v1/auth/nonce` is anonymous, so it must not store anything: a
//! client asking a thousand times a second would otherwise fill the
//! database. A nonce is instead self-authenticating:
//!
//! ```text
//! nonce = hex( expires (8 bytes, big-endian unix seconds)
//!            ‖ random (8 bytes)
//!            ‖ HMAC-SHA-256(nonce key, "sealstream.siwe-nonce.v1\0" ‖ domain ‖ "\0" ‖ expires ‖ random)[..16] )
//! ```
//!
//! 64 hex digits (EIP-4361 asks for at least 8 alphanumerics). The server
//! checks the tag and the expiry with its key ([`NonceKey`], a file in the
//! data directory, so nonces survive restarts) and records a nonce only when
//! a correctly signed message uses it, which is what makes it single use.
//! Used nonces are kept until they expire, then deleted.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sealstream_core::ValidationError;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The nonce key's file name under the data directory.
pub const KEY_FILE: &str = "nonce-key";
/// Domain separation of the tag.
const TAG_PREFIX: &[u8] = b"sealstream.siwe-nonce.v1\0";
/// Bytes of the tag kept.
const TAG_LEN: usize = 16;
/// Length of a nonce in hex digits.
pub const NONCE_HEX_LEN: usize = 2 * (8 + 8 + TAG_LEN);

/// The server's key for sign-in nonces (32 bytes). Wiped on drop; `Debug`
/// shows no key material.
pub struct NonceKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(<redacted>)")
    }
}

/// Why a nonce cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceError {
    /// Not a nonce this server issued for this domain.
    #[error("unknown nonce: get one from POST /v1/auth/nonce")]
    Unknown,
    /// Issued here, but past its expiry.
    #[error("nonce expired: get a new one")]
    Expired,
}

impl NonceKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        NonceKey(bytes)
    }

    /// 32 bytes as hex (optional `0x`).
    pub fn from_hex(text: &str, field: &str) -> Result<Self, ValidationError> {
        let text = text.trim();
        let text = text.strip_prefix("0x").unwrap_or(text);
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, bytes.as_mut())
            .map_err(|_| ValidationError::new(field, "32 bytes as hex"))?;
        Ok(NonceKey(bytes))
    }

    /// The key as lowercase hex (the key file form).
    pub fn to_hex_secret(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }

    fn mac(&self, domain: &str, expires: &[u8; 8], random: &[u8; 8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref()).expect("HMAC takes any key");
        mac.update(TAG_PREFIX);
        mac.update(domain.to_ascii_lowercase().as_bytes());
        mac.update(b"\0");
        mac.update(expires);
        mac.update(random);
        mac
    }

    /// A new nonce for `domain`, usable until `expires_unix`.
    pub fn issue(&self, domain: &str, expires_unix: i64) -> String {
        let expires = u64::try_from(expires_unix).unwrap_or(0).to_be_bytes();
        let mut random = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let tag = self.mac(domain, &expires, &random).finalize().into_bytes();
        let mut out = Vec::with_capacity(NONCE_HEX_LEN / 2);
        out.extend_from_slice(&expires);
        out.extend_from_slice(&random);
        out.extend_from_slice(&tag[..TAG_LEN]);
        hex::encode(out)
    }

    /// Checks that `nonce` was issued by this key for `domain` and has not
    /// expired at `now`; returns its expiry (unix seconds).
    pub fn check(&self, nonce: &str, domain: &str, now: i64) -> Result<i64, NonceError> {
        if nonce.len() != NONCE_HEX_LEN {
            return Err(NonceError::Unknown);
        }
        let mut bytes = [0u8; NONCE_HEX_LEN / 2];
        hex::decode_to_slice(nonce, &mut bytes).map_err(|_| NonceError::Unknown)?;
        let expires: [u8; 8] = bytes[..8].try_into().expect("8 bytes");
        let random: [u8; 8] = bytes[8..16].try_into().expect("8 bytes");
        // Constant-time comparison of the truncated tag.
        self.mac(domain, &expires, &random)
            .verify_truncated_left(&bytes[16..])
            .map_err(|_| NonceError::Unknown)?;
        let expires =
            i64::try_from(u64::from_be_bytes(expires)).map_err(|_| NonceError::Unknown)?;
        if expires <= now {
            return Err(NonceError::Expired);
        }
        Ok(expires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_checks_for_its_domain_until_it_expires() {
        let key = NonceKey::generate();
        let nonce = key.issue("market.example", 1_000);
        assert_eq!(nonce.len(), NONCE_HEX_LEN);
        assert!(nonce.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(key.check(&nonce, "Market.Example", 999), Ok(1_000));
        assert_eq!(
            key.check(&nonce, "market.example", 1_000),
            Err(NonceError::Expired)
        );
        assert_eq!(
            key.check(&nonce, "evil.example", 999),
            Err(NonceError::Unknown)
        );
        assert_eq!(
            NonceKey::generate().check(&nonce, "market.example", 999),
            Err(NonceError::Unknown)
        );
    }

    #[test]
    fn a_forged_nonce_does_not_check() {
        let key = NonceKey::generate();
        let nonce = key.issue("m", 1_000);
        // A later expiry under the same tag.
        let mut later = nonce.clone();
        later.replace_range(0..16, &format!("{:016x}", 5_000u64));
        assert_eq!(key.check(&later, "m", 999), Err(NonceError::Unknown));
        for bad in ["", "abc", &nonce[..60], &format!("{}zz", &nonce[..62])] {
            assert_eq!(key.check(bad, "m", 999), Err(NonceError::Unknown), "{bad}");
        }
    }

    #[test]
    fn debug_shows_no_key() {
        let key = NonceKey::from_hex(&"ab".repeat(32), "k").unwrap();
        assert_eq!(format!("{key:?}"), "NonceKey(<redacted>)");
    }
}
