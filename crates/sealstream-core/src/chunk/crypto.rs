//! Per-chunk cryptography: keys, XChaCha20-Poly1305, sealed-box key wrapping,
//! key commitments, hashes and chunk ids.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::keys::{RecipientPublicKey, RecipientSecretKey};

/// Poly1305 tag length appended to every ciphertext.
pub const TAG_LEN: usize = 16;
/// XChaCha20 nonce length.
pub const NONCE_LEN: usize = 24;

/// A per-chunk symmetric key. Zeroized on drop, never printed.
pub struct ChunkKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ChunkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkKey(..)")
    }
}

impl ChunkKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(k.as_mut());
        ChunkKey(k)
    }

    fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(ChunkKey(Zeroizing::new(arr)))
    }

    /// The key as hex, for disclosing it on purpose (a listing's sample
    /// chunks); wiped when dropped.
    pub fn to_hex_secret(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }

    /// `sha256:` + hex(SHA-256(key)).
    pub fn commitment(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(self.0.as_ref())))
    }

    /// Seal this key to `recipient` (libsodium `crypto_box_seal`), hex.
    pub fn wrap(&self, recipient: &RecipientPublicKey) -> String {
        hex::encode(crate::sealed_box::seal(
            self.0.as_ref(),
            recipient.as_bytes(),
        ))
    }

    /// Open a wrapped key with the recipient's secret key. `None` if the box
    /// does not open or does not hold 32 bytes (deliberately not more specific).
    pub fn unwrap(wrapped_hex: &str, secret: &RecipientSecretKey) -> Option<Self> {
        let sealed = crate::keys::parse_hex_bytes(wrapped_hex, "wrappedKeyHex").ok()?;
        let opened = crate::sealed_box::open(&sealed, secret)?;
        Self::from_slice(&opened)
    }

    /// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha): HChaCha20 derives a
    /// subkey from the key and the first 16 nonce bytes; ChaCha20-Poly1305
    /// (aws-lc, vectorised) runs under it with nonce `0⁴ ‖ nonce[16..24]`.
    fn subkey(&self, nonce: &[u8; NONCE_LEN]) -> (LessSafeKey, Nonce) {
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&nonce[..16]);
        let sub = Zeroizing::new(chacha20::hchacha::<chacha20::cipher::consts::U10>(
            self.0.as_ref().into(),
            &prefix.into(),
        ));
        let key = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, sub.as_slice()).expect("32-byte key"),
        );
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&nonce[16..]);
        (key, Nonce::assume_unique_for_key(n))
    }

    /// Encrypt `buf` in place and append the tag.
    pub fn encrypt_in_place(&self, nonce: &[u8; NONCE_LEN], buf: &mut Vec<u8>) {
        let (key, n) = self.subkey(nonce);
        key.seal_in_place_append_tag(n, Aad::empty(), buf)
            .expect("ChaCha20-Poly1305 accepts any in-memory length");
    }

    /// Decrypt `ciphertext` (ciphertext ‖ tag) into `out`, which must be
    /// `TAG_LEN` bytes shorter; `false` if the tag is wrong or the lengths do
    /// not fit (then `out` holds no plaintext). Saves the copy and the
    /// allocation of [`ChunkKey::decrypt_in_place`] when the plaintext has a
    /// home already.
    #[must_use]
    pub fn decrypt_into(&self, nonce: &[u8; NONCE_LEN], ciphertext: &[u8], out: &mut [u8]) -> bool {
        if ciphertext.len() < TAG_LEN || out.len() != ciphertext.len() - TAG_LEN {
            return false;
        }
        let (body, tag) = ciphertext.split_at(out.len());
        out.copy_from_slice(body);
        let (key, n) = self.subkey(nonce);
        let ok = key
            .open_in_place_separate_tag(n, Aad::empty(), tag, out)
            .is_ok();
        if !ok {
            out.fill(0);
        }
        ok
    }

    /// Decrypt `buf` (ciphertext ‖ tag) in place; `false` if the tag is wrong.
    #[must_use]
    pub fn decrypt_in_place(&self, nonce: &[u8; NONCE_LEN], buf: &mut Vec<u8>) -> bool {
        if buf.len() < TAG_LEN {
            buf.clear();
            return false;
        }
        let (key, n) = self.subkey(nonce);
        let ok = key
            .open_in_place(n, Aad::empty(), buf.as_mut_slice())
            .is_ok();
        if ok {
            buf.truncate(buf.len() - TAG_LEN);
        } else {
            buf.clear();
        }
        ok
    }
}

/// `0x` + hex(SHA-256(data)).
pub fn sha256_hex(data: &[u8]) -> String {
    crate::keys::hex_with_prefix("0x", &Sha256::digest(data))
}

/// The chunk id: `0x` + SHA-256 of the UTF-8 text
/// `"{previous_chunk_id or ''}|{encrypted_data_hash}|{index}"`.
pub fn compute_chunk_id(
    previous_chunk_id: Option<&str>,
    encrypted_data_hash: &str,
    index: u64,
) -> String {
    let mut h = Sha256::new();
    h.update(previous_chunk_id.unwrap_or("").as_bytes());
    h.update(b"|");
    h.update(encrypted_data_hash.as_bytes());
    h.update(b"|");
    h.update(index.to_string().as_bytes());
    crate::keys::hex_with_prefix("0x", &h.finalize())
}

/// A fresh random nonce and its hex form.
pub(crate) fn random_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_round_trip() {
        let sk = RecipientSecretKey::generate();
        let key = ChunkKey::generate();
        let wrapped = key.wrap(&sk.public_key());
        assert_eq!(wrapped.len(), (32 + 16 + 32) * 2);
        let back = ChunkKey::unwrap(&wrapped, &sk).unwrap();
        assert_eq!(back.commitment(), key.commitment());
        assert!(ChunkKey::unwrap(&wrapped, &RecipientSecretKey::generate()).is_none());
    }

    #[test]
    fn encrypt_decrypt_round_trip_and_tamper() {
        let key = ChunkKey::generate();
        let nonce = random_nonce();
        let mut buf = b"hello chunk".to_vec();
        key.encrypt_in_place(&nonce, &mut buf);
        assert_eq!(buf.len(), 11 + TAG_LEN);
        let mut ok = buf.clone();
        assert!(key.decrypt_in_place(&nonce, &mut ok));
        assert_eq!(ok, b"hello chunk");
        let mut bad = buf.clone();
        bad[0] ^= 1;
        assert!(!key.decrypt_in_place(&nonce, &mut bad));
    }

    #[test]
    fn xchacha_matches_rustcrypto() {
        use chacha20poly1305::aead::{Aead, KeyInit};
        let key = ChunkKey::generate();
        let nonce = random_nonce();
        let reference = chacha20poly1305::XChaCha20Poly1305::new(key.0.as_ref().into());
        for len in [0usize, 1, 63, 64, 65, 1000, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut ours = data.clone();
            key.encrypt_in_place(&nonce, &mut ours);
            assert_eq!(
                ours,
                reference.encrypt((&nonce).into(), data.as_slice()).unwrap(),
                "len {len}"
            );
            assert!(key.decrypt_in_place(&nonce, &mut ours));
            assert_eq!(ours, data);
        }
    }

    #[test]
    fn chunk_id_matches_reference_fixture() {
        // chains/odd chunk-1 of the reference fixtures.
        assert_eq!(
            compute_chunk_id(
                Some("0xa6284741cd5fd07ceb8b69039bb93e836757a86978485b54cc8ca6ae535e4611"),
                "0xe790f8efa4d105a0980a960554e5f033b2712d644a4de755c28c403a941217d4",
                1
            ),
            "0xb3c0852befece43443689fe41d098650a655ea0eaf275cc157e1884661520ad0"
        );
    }
}
