//! AES-256-GCM field encryption:
//! `{"__encrypted": true, "ciphertext": base64(iv12 ‖ ct ‖ tag16), "algorithm": "AES-256-GCM"}`
//! over the canonical JSON of the value.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::json::{self, canonical, Map, Value};
use crate::keys::FieldKey;

/// The algorithm name written into encrypted fields.
pub const FIELD_ALGORITHM: &str = "AES-256-GCM";

/// Encrypt a field value for the holders of `key`, with a fresh random IV.
pub fn encrypt_field(value: &Value, key: &FieldKey) -> Value {
    let cipher = Aes256Gcm::new(key.bytes().into());
    let mut iv = [0u8; 12];
    OsRng.fill_bytes(&mut iv);
    let plaintext = Zeroizing::new(canonical::python(value));
    let sealed = cipher
        .encrypt(Nonce::from_slice(&iv), plaintext.as_bytes())
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut packed = Vec::with_capacity(12 + sealed.len());
    packed.extend_from_slice(&iv);
    packed.extend_from_slice(&sealed);
    let mut wrapper = Map::with_capacity(3);
    wrapper.insert("__encrypted".into(), Value::Bool(true));
    wrapper.insert("ciphertext".into(), Value::String(B64.encode(&packed)));
    wrapper.insert("algorithm".into(), Value::String(FIELD_ALGORITHM.into()));
    Value::Object(wrapper)
}

/// Why an encrypted field could not be decrypted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FieldDecryptError {
    /// Not an `{"__encrypted": true, …}` wrapper of a known algorithm.
    #[error("not an encrypted field ({0})")]
    NotEncrypted(&'static str),
    /// Wrong key or altered ciphertext (deliberately not more specific).
    #[error("field decryption failed")]
    Decrypt,
}

/// Decrypt an encrypted field wrapper back to its value.
pub fn decrypt_field(wrapper: &Value, key: &FieldKey) -> Result<Value, FieldDecryptError> {
    let obj = wrapper
        .as_object()
        .ok_or(FieldDecryptError::NotEncrypted("expected an object"))?;
    if obj.get("__encrypted") != Some(&Value::Bool(true)) {
        return Err(FieldDecryptError::NotEncrypted("missing __encrypted: true"));
    }
    if obj.get("algorithm").and_then(Value::as_str) != Some(FIELD_ALGORITHM) {
        return Err(FieldDecryptError::NotEncrypted(
            "algorithm is not AES-256-GCM",
        ));
    }
    let text = obj
        .get("ciphertext")
        .and_then(Value::as_str)
        .ok_or(FieldDecryptError::NotEncrypted("missing ciphertext"))?;
    let packed = B64
        .decode(text)
        .map_err(|_| FieldDecryptError::NotEncrypted("ciphertext is not base64"))?;
    if packed.len() < 12 + 16 {
        return Err(FieldDecryptError::Decrypt);
    }
    let cipher = Aes256Gcm::new(key.bytes().into());
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(Nonce::from_slice(&packed[..12]), &packed[12..])
            .map_err(|_| FieldDecryptError::Decrypt)?,
    );
    json::parse(&plaintext).map_err(|_| FieldDecryptError::Decrypt)
}
