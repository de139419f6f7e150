//! `sealstream keys generate|show`.

use std::io::Write;
use std::path::Path;

use sealstream_core::identity::Did;
use sealstream_core::json::{Map, Value};
use sealstream_core::keys::{ChainSigningKey, FieldKey, MachineSigningKey, RecipientSecretKey};

use crate::cli::{KeyKind, KeyRole, KeysCommand};
use crate::error::{at, CliError, CliResult};
use crate::keyfile;
use crate::ui::Ui;

/// Write a secret key file with mode 0600, never replacing an existing file.
fn write_secret(path: &Path, text: &str) -> CliResult {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            CliError::input(at(path, "already exists; key files are never overwritten"))
        }
        _ => CliError::input(at(path, format!("cannot create ({e})"))),
    })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| CliError::input(at(path, e)))
}

fn write_public(path: &Path, text: &str) -> CliResult {
    sealstream_files::layout::write_atomic(path, text.as_bytes())
        .map_err(|e| CliError::input(at(path, e)))
}

pub fn run(cmd: KeysCommand, ui: Ui) -> CliResult {
    match cmd {
        KeysCommand::Generate { out_dir, role } => generate(&out_dir, role, ui),
        KeysCommand::Show { file, kind } => show(&file, kind, ui),
    }
}

/// The secret key files of a machine's set.
const MACHINE_FILES: [&str; 6] = [
    "machine.secp256k1.sk",
    "chain.ed25519.sk",
    "owner.x25519.sk",
    "operator.x25519.sk",
    "machine.x25519.sk",
    "field.aes256.key",
];

/// The role's name as in file names and keys.json (`machine`, `owner`, `buyer`).
fn role_name(role: KeyRole) -> &'static str {
    match role {
        KeyRole::Machine => "machine",
        KeyRole::Owner => "owner",
        KeyRole::Buyer => "buyer",
        #[cfg(feature = "p2p")]
        KeyRole::P2p => "p2p",
    }
}

/// The secret key files `keys generate --role ROLE` writes.
fn secret_files(role: KeyRole) -> Vec<String> {
    match role {
        KeyRole::Machine => MACHINE_FILES.iter().map(|f| f.to_string()).collect(),
        KeyRole::Owner | KeyRole::Buyer => {
            let who = role_name(role);
            vec![format!("{who}.secp256k1.sk"), format!("{who}.x25519.sk")]
        }
        #[cfg(feature = "p2p")]
        KeyRole::P2p => vec![P2P_FILE.to_string()],
    }
}

/// The P2P identity's file (a 32-byte Ed25519 seed, hex), as `--identity-file` reads it.
#[cfg(feature = "p2p")]
const P2P_FILE: &str = "p2p.ed25519.sk";

/// Create `dir` (and missing parents) readable by its user only; an existing
/// directory is left as it is.
fn create_key_dir(dir: &Path) -> CliResult {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| CliError::input(at(dir, format!("cannot create ({e})"))))
}

fn generate(dir: &Path, role: KeyRole, ui: Ui) -> CliResult {
    create_key_dir(dir)?;
    for name in secret_files(role) {
        if dir.join(&name).exists() {
            return Err(CliError::input(at(
                &dir.join(name),
                "already exists; key files are never overwritten",
            )));
        }
    }
    match role {
        KeyRole::Machine => generate_machine(dir, ui),
        KeyRole::Owner | KeyRole::Buyer => generate_person(dir, role, ui),
        #[cfg(feature = "p2p")]
        KeyRole::P2p => generate_p2p(dir, ui),
    }
}

/// A P2P identity: `p2p.ed25519.sk` (mode 0600) and its peer id in
/// `p2p.peer-id`; no keys.json, so that it can sit beside a seller's or a
/// buyer's keys.
#[cfg(feature = "p2p")]
fn generate_p2p(dir: &Path, ui: Ui) -> CliResult {
    let file = dir.join(P2P_FILE);
    let identity = sealstream_p2p::node::Identity::load_or_create(&file)
        .map_err(|e| CliError::input(e.to_string()))?;
    let peer = identity.peer_id().to_string();
    write_public(&dir.join("p2p.peer-id"), &peer)?;
    if ui.json {
        let mut m = Map::new();
        m.insert("role".into(), "p2p".into());
        m.insert("peerId".into(), peer.as_str().into());
        ui.json_out(&Value::Object(m));
    } else {
        ui.say(format!("Generated a P2P identity in {}", dir.display()));
        ui.say(format!("  Peer id:       {peer}"));
        ui.say(format!(
            "  Give {P2P_FILE} as --identity-file to `p2p serve|subscribe|relay|bootstrap`; it is mode 0600."
        ));
    }
    Ok(())
}

fn write_keys_json(dir: &Path, public: &Value) -> CliResult {
    write_public(
        &dir.join("keys.json"),
        &sealstream_core::json::write::to_python_pretty(public),
    )
}

fn generate_machine(dir: &Path, ui: Ui) -> CliResult {
    let machine = MachineSigningKey::generate();
    let did = Did::of_key(&machine);
    let chain = ChainSigningKey::generate();
    let field = FieldKey::generate();
    let recipients: Vec<(&str, RecipientSecretKey)> = ["owner", "operator", "machine"]
        .into_iter()
        .map(|who| (who, RecipientSecretKey::generate()))
        .collect();

    write_secret(&dir.join("machine.secp256k1.sk"), &machine.to_hex_secret())?;
    write_secret(&dir.join("chain.ed25519.sk"), &chain.to_hex_secret())?;
    write_secret(&dir.join("field.aes256.key"), &field.to_hex_secret())?;
    for (who, key) in &recipients {
        write_secret(&dir.join(format!("{who}.x25519.sk")), &key.to_hex_secret())?;
    }

    let mut m = Map::new();
    m.insert("role".into(), "machine".into());
    m.insert("machineDid".into(), did.to_string().into());
    m.insert("machineAddress".into(), did.address().to_checksum().into());
    m.insert("machineKeyId".into(), did.default_key_id().into());
    m.insert(
        "chainPublicKeyHex".into(),
        chain.public_key().to_hex().into(),
    );
    for (who, key) in &recipients {
        m.insert(
            format!("{who}PublicKeyHex"),
            key.public_key().to_hex().into(),
        );
    }
    let public = Value::Object(m);
    write_public(&dir.join("machine.did"), &did.to_string())?;
    write_keys_json(dir, &public)?;

    if ui.json {
        ui.json_out(&public);
    } else {
        ui.say(format!("Generated machine keys in {}", dir.display()));
        ui.say(format!("  Machine DID:   {did}"));
        ui.say(format!("  Chain key:     {}", chain.public_key().to_hex()));
        for (who, key) in &recipients {
            ui.say(format!(
                "  {:<14} {}",
                format!("{who} X25519:"),
                key.public_key().to_hex()
            ));
        }
        ui.say("  Field key:     field.aes256.key (for `encrypt` field rules)");
        ui.say("  Secret key files are mode 0600; public parts are in keys.json.");
    }
    Ok(())
}

/// An owner's or a buyer's keys: the secp256k1 key that signs in (and, for a
/// buyer, pays), its DID, and an X25519 recipient key.
fn generate_person(dir: &Path, role: KeyRole, ui: Ui) -> CliResult {
    let who = role_name(role);
    let key = MachineSigningKey::generate();
    let did = Did::of_key(&key);
    let recipient = RecipientSecretKey::generate();
    write_secret(
        &dir.join(format!("{who}.secp256k1.sk")),
        &key.to_hex_secret(),
    )?;
    write_secret(
        &dir.join(format!("{who}.x25519.sk")),
        &recipient.to_hex_secret(),
    )?;

    let mut m = Map::new();
    m.insert("role".into(), who.into());
    m.insert(format!("{who}Did"), did.to_string().into());
    m.insert(format!("{who}Address"), did.address().to_checksum().into());
    m.insert(
        format!("{who}PublicKeyHex"),
        recipient.public_key().to_hex().into(),
    );
    let public = Value::Object(m);
    write_public(&dir.join(format!("{who}.did")), &did.to_string())?;
    write_keys_json(dir, &public)?;

    if ui.json {
        ui.json_out(&public);
    } else {
        let label = role_label(role);
        ui.say(format!("Generated {who} keys in {}", dir.display()));
        ui.say(format!("  {:<15}{did}", format!("{label} DID:")));
        ui.say(format!(
            "  {:<15}{}",
            format!("{label} address:"),
            did.address().to_checksum()
        ));
        ui.say(format!(
            "  {:<15}{}",
            format!("{label} X25519:"),
            recipient.public_key().to_hex()
        ));
        ui.say(format!(
            "  {who}.secp256k1.sk signs in{}; {who}.x25519.sk opens what is granted to {}.",
            if role == KeyRole::Buyer {
                " and pays"
            } else {
                ""
            },
            if role == KeyRole::Buyer {
                "the buyer"
            } else {
                "the owner"
            }
        ));
        ui.say("  Secret key files are mode 0600; public parts are in keys.json.");
    }
    Ok(())
}

/// `Machine`, `Owner`, `Buyer`: how output names a role.
fn role_label(role: KeyRole) -> &'static str {
    match role {
        KeyRole::Machine => "Machine",
        KeyRole::Owner => "Owner",
        KeyRole::Buyer => "Buyer",
        #[cfg(feature = "p2p")]
        KeyRole::P2p => "P2P",
    }
}

/// The role a key file belongs to, from its name as `keys generate` writes
/// it (`owner.secp256k1.sk`, `buyer.x25519.sk`, `chain.ed25519.sk` …).
fn role_from_name(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    let (prefix, _) = name.split_once('.')?;
    ["machine", "owner", "buyer", "operator", "chain", "p2p"]
        .into_iter()
        .find(|r| *r == prefix)
        .map(|r| if r == "chain" { "machine" } else { r })
}

fn kind_from_name(path: &Path) -> Option<KeyKind> {
    let name = path.file_name()?.to_string_lossy().to_lowercase();
    if name.contains("secp256k1") {
        Some(KeyKind::Secp256k1)
    } else if name.contains("ed25519") {
        Some(KeyKind::Ed25519)
    } else if name.contains("x25519") {
        Some(KeyKind::X25519)
    } else {
        None
    }
}

fn show(path: &Path, kind: Option<KeyKind>, ui: Ui) -> CliResult {
    let kind = kind.or_else(|| kind_from_name(path)).ok_or_else(|| {
        CliError::input(at(
            path,
            "cannot tell the key kind from the file name; pass --kind secp256k1|ed25519|x25519",
        ))
    })?;
    let mut m = Map::new();
    if let Some(role) = role_from_name(path) {
        m.insert("role".into(), role.into());
    }
    match kind {
        KeyKind::Secp256k1 => {
            let key = keyfile::secp256k1_secret(path, "secp256k1 key")?;
            let did = Did::of_key(&key);
            m.insert("kind".into(), "secp256k1".into());
            m.insert("address".into(), did.address().to_checksum().into());
            m.insert("did".into(), did.to_string().into());
        }
        KeyKind::Ed25519 => {
            let key = keyfile::ed25519_secret(path, "ed25519 key")?;
            m.insert("kind".into(), "ed25519".into());
            m.insert("publicKeyHex".into(), key.public_key().to_hex().into());
            #[cfg(feature = "p2p")]
            if role_from_name(path) == Some("p2p") {
                let identity = sealstream_p2p::node::Identity::load_or_create(path)
                    .map_err(|e| CliError::input(e.to_string()))?;
                m.insert("peerId".into(), identity.peer_id().to_string().into());
            }
        }
        KeyKind::X25519 => {
            let key = keyfile::x25519_secret(path, "x25519 key")?;
            m.insert("kind".into(), "x25519".into());
            m.insert("publicKeyHex".into(), key.public_key().to_hex().into());
        }
    }
    if ui.json {
        ui.json_out(&Value::Object(m));
    } else {
        // The public part is the command's result: it goes to stdout.
        for (k, v) in &m {
            println!("{k}: {}", v.as_str().unwrap_or_default());
        }
    }
    Ok(())
}
