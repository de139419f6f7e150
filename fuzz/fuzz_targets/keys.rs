//! Hex and key parsers: `parse_hex_array`, `parse_hex_bytes`, every key type's
//! `from_hex`, addresses, DIDs and signatures.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_core::identity::{Did, Eip191Signature, EvmAddress};
use sealstream_core::keys::{
    parse_hex_array, parse_hex_bytes, ChainPublicKey, ChainSigningKey, FieldKey, MachineSigningKey,
    RecipientPublicKey, RecipientSecretKey,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_hex_array::<24>(text, "f");
    let _ = parse_hex_array::<32>(text, "f");
    let _ = parse_hex_array::<65>(text, "f");
    let _ = parse_hex_bytes(text, "f");
    let _ = FieldKey::from_hex(text, "f");
    let _ = RecipientSecretKey::from_hex(text, "f").map(|k| k.public_key());
    let _ = RecipientPublicKey::from_hex(text, "f");
    let _ = ChainSigningKey::from_hex(text, "f").map(|k| k.public_key());
    let _ = ChainPublicKey::from_hex(text, "f");
    let _ = MachineSigningKey::from_hex(text, "f").map(|k| k.address());
    let _ = EvmAddress::parse(text, "f");
    let _ = Did::parse(text, "f");
    let _ = Eip191Signature::from_hex(text, "f");
});
