//! libsodium-compatible sealed boxes (`crypto_box_seal` / `crypto_box_seal_open`):
//! `ephemeral_pk ‖ box`, where the box is XSalsa20-Poly1305 (tag first, as
//! NaCl writes it) under HSalsa20(X25519(esk, rpk)) with the nonce
//! BLAKE2b-192(ephemeral_pk ‖ recipient_pk).
//!
//! X25519 runs on aws-lc (s2n-bignum): about three times faster than the
//! portable Montgomery ladder on this hardware, which decides how many
//! chunk keys per second can be wrapped and re-wrapped for buyers.

use aws_lc_rs::agreement::{agree, PrivateKey, UnparsedPublicKey, X25519};
use blake2::digest::consts::{U10, U24};
use blake2::{Blake2b, Digest};
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use zeroize::Zeroizing;

use crate::keys::RecipientSecretKey;

/// Bytes a sealed box adds to its plaintext: ephemeral key and tag.
pub const SEAL_OVERHEAD: usize = 32 + 16;

fn seal_nonce(ephemeral_pk: &[u8], recipient_pk: &[u8; 32]) -> Nonce {
    let mut h = Blake2b::<U24>::new();
    h.update(ephemeral_pk);
    h.update(recipient_pk);
    h.finalize()
}

/// The XSalsa20-Poly1305 key of `crypto_box_beforenm`: HSalsa20 of the X25519 output.
fn box_key(private: &PrivateKey, peer: &[u8; 32]) -> Option<Zeroizing<[u8; 32]>> {
    agree(
        private,
        UnparsedPublicKey::new(&X25519, peer),
        (),
        |shared| {
            let shared: &[u8; 32] = shared.try_into().map_err(|_| ())?;
            let key = salsa20::hsalsa::<U10>(shared.into(), &Default::default());
            Ok(Zeroizing::new(key.into()))
        },
    )
    .ok()
}

/// Seal `plaintext` to `recipient` with a fresh ephemeral key.
pub fn seal(plaintext: &[u8], recipient: &[u8; 32]) -> Vec<u8> {
    // The ephemeral scalar from the kernel's generator (getrandom), not aws-lc's own:
    // aws-lc seeds its generator per thread from CPU jitter, several milliseconds that
    // every short-lived worker thread of a grant or publish would pay on its first key.
    let mut scalar = Zeroizing::new([0u8; 32]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, scalar.as_mut());
    let ephemeral =
        PrivateKey::from_private_key(&X25519, scalar.as_ref()).expect("a 32-byte X25519 scalar");
    let ephemeral_pk = ephemeral.compute_public_key().expect("X25519 public key");
    let ephemeral_pk = ephemeral_pk.as_ref();
    let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
    out.extend_from_slice(ephemeral_pk);
    // A recipient key of small order gives an all-zero secret, which aws-lc
    // refuses (as libsodium does). Callers refuse such keys up front
    // (`RecipientPublicKey::check_usable`); should one get here anyway, seal
    // under a random key: the box is well-formed and nobody can open it.
    let key = box_key(&ephemeral, recipient).unwrap_or_else(|| {
        let mut k = Zeroizing::new([0u8; 32]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, k.as_mut());
        k
    });
    let cipher = XSalsa20Poly1305::new((&*key).into());
    let boxed = cipher
        .encrypt(&seal_nonce(ephemeral_pk, recipient), plaintext)
        .expect("XSalsa20-Poly1305 of an in-memory buffer");
    out.extend_from_slice(&boxed);
    out
}

/// Open a sealed box with the recipient's secret key; `None` if it does not open.
pub fn open(sealed: &[u8], secret: &RecipientSecretKey) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    let (ephemeral_pk, boxed) = sealed.split_at(32);
    let ephemeral_pk: &[u8; 32] = ephemeral_pk.try_into().ok()?;
    let key = box_key(secret.private(), ephemeral_pk)?;
    let cipher = XSalsa20Poly1305::new((&*key).into());
    cipher
        .decrypt(
            &seal_nonce(ephemeral_pk, secret.public_key().as_bytes()),
            boxed,
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interoperates_with_crypto_box() {
        let ours = RecipientSecretKey::generate();
        let theirs = crypto_box::SecretKey::from_bytes(*Zeroizing::new(
            crate::keys::parse_hex_array::<32>(&ours.to_hex_secret(), "k").unwrap(),
        ));
        assert_eq!(theirs.public_key().as_bytes(), ours.public_key().as_bytes());
        // Ours → crypto_box.
        let sealed = seal(
            b"chunk key material, 32 bytes...",
            ours.public_key().as_bytes(),
        );
        assert_eq!(
            theirs.unseal(&sealed).unwrap(),
            b"chunk key material, 32 bytes..."
        );
        // crypto_box → ours.
        let sealed = theirs
            .public_key()
            .seal(&mut rand_core::OsRng, b"the other way")
            .unwrap();
        assert_eq!(open(&sealed, &ours).unwrap().as_slice(), b"the other way");
        // Wrong key, truncated, flipped.
        assert!(open(&sealed, &RecipientSecretKey::generate()).is_none());
        assert!(open(&sealed[..40], &ours).is_none());
        let mut bad = sealed.clone();
        bad[40] ^= 1;
        assert!(open(&bad, &ours).is_none());
    }

    #[test]
    fn small_order_recipient_gets_an_unopenable_box() {
        let sealed = seal(b"x", &[0u8; 32]);
        assert_eq!(sealed.len(), SEAL_OVERHEAD + 1);
    }

    /// Whether X25519 with this public key yields a usable secret.
    #[test]
    fn usable_check() {
        use crate::keys::RecipientPublicKey;
        assert!(RecipientPublicKey::from_bytes([0u8; 32])
            .check_usable("k")
            .is_err());
        assert!(RecipientSecretKey::generate()
            .public_key()
            .check_usable("k")
            .is_ok());
    }
}
