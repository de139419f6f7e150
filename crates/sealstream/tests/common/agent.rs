//! Helpers for the agent tests: decrypting a delivered topic chain, and
//! checking its dataset manifests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sealstream_core::chunk::decrypt_chain;
use sealstream_core::dataset::{DatasetManifest, DatasetVerifier};
use sealstream_core::json;
use sealstream_core::keys::RecipientSecretKey;
use sealstream_core::layout::{list_chain, read_ciphertext, read_envelope};
use sealstream_core::package::DataPackage;

use super::{keyfile, DID, MACHINE_PK, OPERATOR_PK, OWNER_PK};

/// Decrypt a topic's chain with the owner key and return its packages.
pub fn packages(chain: &Path) -> Vec<DataPackage> {
    let owner = Arc::new(
        RecipientSecretKey::from_hex(
            &std::fs::read_to_string(keyfile("owner.x25519.sk")).unwrap(),
            "o",
        )
        .unwrap(),
    );
    let list = list_chain(chain).unwrap();
    let items = list.iter().map(|(i, p)| {
        let env = read_envelope(p).unwrap();
        let entry = env.recipient_of_type("owner").unwrap().clone();
        Ok::<_, ()>((env, entry, read_ciphertext(chain, *i).unwrap().unwrap()))
    });
    let mut out = Vec::new();
    decrypt_chain(items, owner, 2, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| DataPackage::from_json(&json::parse(l.as_bytes()).unwrap()).unwrap())
        .collect()
}

/// The sub-directories of `root` by name (one per topic at a destination).
pub fn chain_dirs(root: &Path) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), e.path())
        })
        .collect()
}

/// Check the dataset manifests delivered with a topic's chain: signed, each
/// over the next range of chunks, each matching the chunks' ids (Merkle
/// root). Returns how many chunks they cover, from 0.
pub fn check_datasets(chain: &Path) -> u64 {
    let mut manifests: Vec<(u64, u64, PathBuf)> = std::fs::read_dir(chain)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let (a, b) = name
                .strip_prefix("dataset-")?
                .strip_suffix(".json")?
                .split_once('-')?;
            Some((a.parse().unwrap(), b.parse().unwrap(), e.path()))
        })
        .collect();
    manifests.sort();
    let envelopes: BTreeMap<u64, _> = list_chain(chain)
        .unwrap()
        .into_iter()
        .map(|(i, p)| (i, read_envelope(&p).unwrap()))
        .collect();
    let mut next = 0;
    for (first, last, path) in manifests {
        assert_eq!(first, next, "{}: datasets are contiguous", path.display());
        let m = DatasetManifest::parse(&std::fs::read(&path).unwrap()).unwrap();
        m.verify_signatures().unwrap();
        assert_eq!((m.first_index, m.chunk_count), (first, last - first + 1));
        let mut v = DatasetVerifier::new(&m).unwrap();
        for i in first..=last {
            v.push(&envelopes[&i]).unwrap();
        }
        v.finish().unwrap();
        next = last + 1;
    }
    next
}

/// The test machine's secp256k1 key (its address is [`DID`]).
pub const MACHINE_SK: &str = "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761";

/// Write the test machine's key files to `<dir>/keys/` and return the Data
/// Event Map's `machine` and `recipients` sections that use them.
pub fn machine_sections(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("keys/machine.secp256k1.sk"), MACHINE_SK).unwrap();
    std::fs::copy(
        keyfile("chain.ed25519.sk"),
        dir.join("keys/chain.ed25519.sk"),
    )
    .unwrap();
    format!(
        "machine:\n  did: {DID}\n  signingKeyFile: keys/machine.secp256k1.sk\n  chainKeyFile: keys/chain.ed25519.sk\n\
         recipients:\n  owner: {OWNER_PK}\n  operator: {OPERATOR_PK}\n  machine: {MACHINE_PK}\n"
    )
}
