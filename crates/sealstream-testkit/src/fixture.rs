//! The reference's fixtures (`<repo>/fixtures/peaq-stream-v1`) and the
//! test-only keys of its `keys.json`, as the tests use them.

use std::path::PathBuf;

use sealstream_core::keys::{ChainPublicKey, ChainSigningKey, MachineSigningKey};

/// The owner's X25519 public key (hex).
pub const OWNER_PK: &str = "aaa52adfb12f7a161e2d502386cd3cb2eff0dbe38e90c70085a0872229a3b946";
/// The operator's X25519 public key (hex).
pub const OPERATOR_PK: &str = "36691395f47b6c441acedea1e0bd38a58c7e8119fdc59b39f4c3687fb880106f";
/// The machine's X25519 public key (hex).
pub const MACHINE_PK: &str = "8c8bf93ac82af74d7526fd1473cc752f352fbb5f8e472bcba67ec7877e4c3f2b";
/// The buyer's X25519 public key (hex).
pub const BUYER_PK: &str = "ad047d9237812541968a9fbd5fc1621d4261352e99a27de75642a9a0bca3d101";
/// A stranger's X25519 public key (hex): granted nothing.
pub const STRANGER_PK: &str = "c4160af7babce0dd8b6562ca3c9594abb5920dda46a22e912a19de431ef0ab3c";
/// The machine's DID (the address of [`MACHINE_SK`]).
pub const DID: &str = "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1";
/// The machine's key id.
pub const KEY_ID: &str = "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1#keys-1";
/// The buyer id the fixtures' access files were granted to.
pub const BUYER_ID: &str = "did:peaq:0x000000000000000000000000000000000000b0b0";
/// The machine's secp256k1 secret key (its address is [`DID`]'s).
pub const MACHINE_SK: &str = "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761";

/// The fixtures directory: `$SEALSTREAM_FIXTURES`, else
/// `<repo>/fixtures/peaq-stream-v1`. Panics when it holds no `keys.json`.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("SEALSTREAM_FIXTURES").map_or_else(
        || crate::repo_root().join("fixtures/peaq-stream-v1"),
        PathBuf::from,
    );
    assert!(
        dir.join("keys.json").is_file(),
        "fixtures not found at {} (set SEALSTREAM_FIXTURES)",
        dir.display()
    );
    dir
}

/// `keyfiles/<name>` of the fixtures: the keys as the reference CLI reads
/// them (`owner.x25519.sk`, `chain.ed25519.sk`, …).
pub fn keyfile(name: &str) -> PathBuf {
    fixtures().join("keyfiles").join(name)
}

/// The machine's secp256k1 key ([`MACHINE_SK`]).
pub fn machine_signing_key() -> MachineSigningKey {
    MachineSigningKey::from_hex(MACHINE_SK, "fixture machine key").expect("the fixture machine key")
}

/// The chain's Ed25519 key (`keyfiles/chain.ed25519.sk`).
pub fn chain_signing_key() -> ChainSigningKey {
    let hex = std::fs::read_to_string(keyfile("chain.ed25519.sk")).expect("the fixture chain key");
    ChainSigningKey::from_hex(hex.trim(), "fixture chain key").expect("the fixture chain key")
}

/// The chain's Ed25519 public key.
pub fn chain_public_key() -> ChainPublicKey {
    chain_signing_key().public_key()
}
