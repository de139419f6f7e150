//! The reference's fixtures (`<repo>/fixtures/peaq-stream-v1`) and the
//! test-only keys of its `keys.json` ([`FixtureKeys`]), as the tests,
//! benchmarks and examples use them; the package fixtures' inputs
//! ([`PackageCase`]).

use std::path::{Path, PathBuf};

use sealstream_core::chunk::ChainConfig;
use sealstream_core::json::{self, Map, Value};
use sealstream_core::keys::{
    ChainPublicKey, ChainSigningKey, FieldKey, MachineSigningKey, RecipientPublicKey,
    RecipientSecretKey,
};
use sealstream_core::package::{DataPackage, PackageSigner, UnsignedPayload};
use sealstream_core::rules::TopicRules;

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

/// A JSON file of the fixtures (or any), read with sealstream's own parser;
/// panics naming the file when it cannot be read or parsed.
pub fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    json::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixtures' `keys.json`: every test key, by whose it is and which field.
pub struct FixtureKeys(Map);

impl FixtureKeys {
    /// Read `keys.json` of [`fixtures`].
    pub fn load() -> FixtureKeys {
        FixtureKeys(
            read_json(&fixtures().join("keys.json"))
                .as_object()
                .expect("keys.json is an object")
                .clone(),
        )
    }

    /// Field `field` of `who`'s entry (`owner`, `chainSigning`, …).
    pub fn text(&self, who: &str, field: &str) -> &str {
        self.0[who].as_object().expect(who)[field]
            .as_str()
            .expect(field)
    }

    /// The machine's DID.
    pub fn did(&self) -> &str {
        self.text("machineSigning", "did")
    }

    /// `who`'s X25519 public key.
    pub fn public(&self, who: &str) -> RecipientPublicKey {
        RecipientPublicKey::from_hex(self.text(who, "publicKeyHex"), who).unwrap()
    }

    /// `who`'s X25519 secret key.
    pub fn secret(&self, who: &str) -> RecipientSecretKey {
        RecipientSecretKey::from_hex(self.text(who, "privateKeyHex"), who).unwrap()
    }

    /// The chain's Ed25519 key.
    pub fn chain_key(&self) -> ChainSigningKey {
        ChainSigningKey::from_hex(self.text("chainSigning", "privateKeyHex"), "chain").unwrap()
    }

    /// The machine's secp256k1 key.
    pub fn machine_key(&self) -> MachineSigningKey {
        MachineSigningKey::from_hex(self.text("machineSigning", "privateKeyHex"), "machine")
            .unwrap()
    }

    /// The field encryption key.
    pub fn field_key(&self) -> FieldKey {
        FieldKey::from_hex(self.0["fieldEncryptionKeyHex"].as_str().unwrap(), "field").unwrap()
    }

    /// A chain configuration of the machine with the chain key, for the
    /// owner, operator and machine recipients, on `parallelism` workers.
    pub fn chain_config(&self, parallelism: usize) -> ChainConfig {
        let did = self.did();
        let mut config = ChainConfig::new(
            self.chain_key(),
            did,
            &format!("{did}#keys-1"),
            ChainConfig::default_recipients(
                self.public("owner"),
                self.public("operator"),
                self.public("machine"),
            ),
        );
        config.parallelism = parallelism;
        config
    }
}

/// The names of the package fixtures (`packages/<name>.package.json`), sorted.
pub fn package_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join("packages"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".package.json").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// One package fixture's input: the payload and rules the reference signed.
pub struct PackageCase {
    /// The fixture's name.
    pub name: String,
    /// The unsigned payload.
    pub payload: UnsignedPayload,
    /// The topic's field rules.
    pub rules: TopicRules,
    /// The package schema version.
    pub schema_version: String,
    /// The sequence number the reference signed with.
    pub sequence_number: u64,
}

impl PackageCase {
    /// Read `packages/<name>.input.json` and `<name>.rules.json`.
    pub fn load(name: &str) -> PackageCase {
        let dir = fixtures().join("packages");
        let input = read_json(&dir.join(format!("{name}.input.json")));
        let input = input.as_object().unwrap();
        PackageCase {
            name: name.to_string(),
            payload: UnsignedPayload {
                topic: input["topic"].as_str().unwrap().into(),
                fields: input["fields"].as_object().unwrap().clone(),
                captured_at: input["capturedAt"].as_str().unwrap().into(),
            },
            rules: TopicRules::from_json(&read_json(&dir.join(format!("{name}.rules.json"))))
                .unwrap(),
            schema_version: input["schemaVersion"].as_str().unwrap().into(),
            sequence_number: input["sequenceNumber"]
                .as_number()
                .and_then(json::Number::as_u64)
                .unwrap(),
        }
    }

    /// The package `signer` makes of this input with sequence number `seq`.
    pub fn sign(&self, signer: &PackageSigner, seq: u64) -> DataPackage {
        signer
            .build(&self.payload, &self.rules, &self.schema_version, seq)
            .unwrap()
    }
}
