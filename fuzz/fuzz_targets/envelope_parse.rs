//! `ChunkEnvelope::parse`, then the keyless and keyed checks of one chunk
//! (the input itself doubles as its ciphertext).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_core::chunk::{decrypt_chunk, ChainVerifier, ChunkEnvelope};
use sealstream_core::keys::RecipientSecretKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = ChunkEnvelope::parse(data) {
        let back = ChunkEnvelope::parse(env.to_pretty_json().as_bytes()).expect("reparses");
        assert_eq!(back, env);
        let _ = ChainVerifier::new().push(&env, Some(data));
        let key = RecipientSecretKey::from_bytes([7; 32]);
        for entry in &env.encryption.key_recipients {
            let _ = decrypt_chunk(&env, entry, &key, data.to_vec());
        }
    }
});
