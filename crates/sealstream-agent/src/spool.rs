//! The spool's files on disk: what a start finds after a crash, what counts
//! against the cap, and making renames durable.
//!
//! A process killed at any moment can leave, besides its committed state:
//! - temporary files of interrupted writes (`.<name>.tmp-<pid>`, see
//!   [`sealstream_files::layout::write_replace`]) in the spool and in
//!   directory destinations;
//! - chunk files at or beyond the committed head (a chunk written, or half
//!   written, whose commit never happened; it is sealed again);
//! - one file of a delivered chunk whose other file the forwarder had
//!   already removed (the forwarder removes the `.bin` first, so this is an
//!   envelope; earlier versions removed the envelope first and left a `.bin`).
//!
//! [`recover`] removes all of these when the agent starts, before anything
//! else touches the spool (the sinks of directory destinations remove their
//! temporary files too, [`crate::sink::Sink::remove_stale`]), and the
//! spool's size ([`live_chunk_bytes`]) counts only the chunks that are
//! committed and not yet everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::path::Path;

use sealstream_files::layout::{ciphertext_name, envelope_name, FileError};

/// Create `dir` (and its missing parents) readable by the owner only
/// (mode 0700), so that what the spool holds (journals of live sources keep
/// messages as received, before field rules) is not open to other users
/// whatever the files' own modes. An existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Make the entries of `dir` durable (fsync the directory): a file renamed
/// into it survives a power loss once this returns.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether `name` is a temporary file of an interrupted write: ours
/// (`.<name>.tmp-<pid>`) or the `object_store` crate's local staging file
/// (`<name>#<n>`), for one of the file names `ours` accepts.
pub fn is_temp_name(name: &str, ours: impl Fn(&str) -> bool) -> bool {
    if let Some((base, n)) = name.rsplit_once('#') {
        return !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && ours(base);
    }
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    match rest.rsplit_once(".tmp-") {
        Some((base, pid)) => {
            !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && ours(base)
        }
        None => false,
    }
}

/// Whether `name` is a chunk or dataset manifest file name
/// (`chunk-N.bin`, `chunk-N.json`, `dataset-A-B.json`).
pub fn is_chain_file(name: &str) -> bool {
    chunk_index(name).is_some() || dataset_range(name).is_some()
}

/// Whether `name` is one of the spool's own state files.
pub fn is_state_file(name: &str) -> bool {
    matches!(name, "state.json" | "delivery.json" | "status.json")
}

/// The index of `chunk-N.bin` or `chunk-N.json`.
pub fn chunk_index(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("chunk-")?;
    let digits = rest
        .strip_suffix(".bin")
        .or_else(|| rest.strip_suffix(".json"))?;
    digits.parse().ok()
}

/// The range of `dataset-A-B.json`.
pub fn dataset_range(name: &str) -> Option<(u64, u64)> {
    let (a, b) = name
        .strip_prefix("dataset-")?
        .strip_suffix(".json")?
        .split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Remove the temporary files in `dir` (not below it) whose final name
/// `ours` accepts. Returns how many; a missing directory has none.
pub fn remove_temp_files(dir: &Path, ours: impl Fn(&str) -> bool) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if is_temp_name(&name.to_string_lossy(), &ours) && entry.file_type()?.is_file() {
            remove(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// What [`recover_chain`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The lowest chunk index still in the spool (the head if none).
    pub pruned: u64,
    /// Files removed: temporary files, uncommitted chunks, halves of pruned ones.
    pub removed: usize,
}

/// Bring a topic's chain directory in the spool back to what the committed
/// head says: remove temporary files, chunk files at or beyond `head`, and
/// the remaining file of any chunk below `head` that lacks its other file.
/// What is left is the chunks `pruned..head`, each whole.
pub fn recover_chain(dir: &Path, head: u64) -> io::Result<Recovered> {
    let mut out = Recovered {
        pruned: head,
        removed: remove_temp_files(dir, is_chain_file)?,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    let mut bins = BTreeSet::new();
    let mut envelopes = BTreeSet::new();
    for entry in entries {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        match chunk_index(&name) {
            Some(i) if name.ends_with(".bin") => bins.insert(i),
            Some(i) => envelopes.insert(i),
            None => false,
        };
    }
    for &i in bins.union(&envelopes) {
        if i < head && bins.contains(&i) && envelopes.contains(&i) {
            out.pruned = out.pruned.min(i);
            continue;
        }
        // The ciphertext first, as the forwarder prunes.
        for name in [ciphertext_name(i), envelope_name(i)] {
            let path = dir.join(name);
            if path.exists() {
                remove(&path)?;
                out.removed += 1;
            }
        }
    }
    Ok(out)
}

/// Bring the spool at `spool` back to its committed state after whatever
/// ended the last run (see the module docs). `topics` are the topics'
/// directory names with their committed chain heads. Returns, per directory
/// name, the lowest chunk index left in the spool, and one log line per
/// directory where something was removed.
pub fn recover(
    spool: &Path,
    topics: &[(String, u64)],
) -> Result<(BTreeMap<String, u64>, Vec<String>), FileError> {
    let mut pruned = BTreeMap::new();
    let mut notes = Vec::new();
    let mut note = |dir: &Path, removed: usize| {
        if removed > 0 {
            notes.push(format!(
                "spool: removed {removed} file{} an interrupted run left in {} (temporary files, uncommitted or half-pruned chunks)",
                if removed == 1 { "" } else { "s" },
                dir.display()
            ));
        }
    };
    let removed = remove_temp_files(spool, is_state_file).map_err(|e| FileError::new(spool, e))?;
    note(spool, removed);
    for (dir_name, head) in topics {
        let chains = spool.join("chains").join(dir_name);
        let r = recover_chain(&chains, *head).map_err(|e| FileError::new(&chains, e))?;
        note(&chains, r.removed);
        pruned.insert(dir_name.clone(), r.pruned);
        let datasets = spool.join("datasets").join(dir_name);
        let removed = remove_temp_files(&datasets, is_chain_file)
            .map_err(|e| FileError::new(&datasets, e))?;
        note(&datasets, removed);
    }
    Ok((pruned, notes))
}

/// Bytes of the chunks `from..head` of a chain directory (both files of each).
pub fn live_chunk_bytes(dir: &Path, from: u64, head: u64) -> u64 {
    (from..head)
        .flat_map(|i| [ciphertext_name(i), envelope_name(i)])
        .map(|name| file_len(&dir.join(name)))
        .sum()
}

/// The lowest index of a whole chunk (both files) below `head` in a chain
/// directory; `head` if there is none.
pub fn lowest_chunk(dir: &Path, head: u64) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return head;
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            let i = chunk_index(name).filter(|_| name.ends_with(".json"))?;
            (i < head && dir.join(ciphertext_name(i)).exists()).then_some(i)
        })
        .min()
        .unwrap_or(head)
}

/// The bytes of a file (0 if it is missing).
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_spool_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/spool");
        create_private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        create_private_dir(&dir).unwrap();
    }

    #[test]
    fn temp_names() {
        for name in [
            ".chunk-3.bin.tmp-4242",
            ".chunk-3.json.tmp-1",
            ".dataset-0-9.json.tmp-77",
            "chunk-3.bin#1",
            "dataset-0-9.json#12",
        ] {
            assert!(is_temp_name(name, is_chain_file), "{name}");
        }
        for name in [
            "chunk-3.bin",
            ".chunk-3.bin.tmp-",
            ".chunk-3.bin.tmp-x1",
            ".notes.txt.tmp-1",
            "chunk-3.bin#",
            "notes#1",
            ".state.json.tmp-5",
        ] {
            assert!(!is_temp_name(name, is_chain_file), "{name}");
        }
        assert!(is_temp_name(".state.json.tmp-5", is_state_file));
    }

    #[test]
    fn recovery_keeps_whole_committed_chunks_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let write =
            |name: &str, len: usize| std::fs::write(dir.join(name), vec![1u8; len]).unwrap();
        // 0: the .bin an older prune left; 1: the .json a prune left;
        // 2 and 3: whole, committed; 4: written, not committed; 5: half written.
        write("chunk-0.bin", 10);
        write("chunk-1.json", 10);
        for i in [2, 3, 4] {
            write(&format!("chunk-{i}.bin"), 100);
            write(&format!("chunk-{i}.json"), 20);
        }
        write("chunk-5.bin", 100);
        write(".chunk-5.json.tmp-99", 5);
        write(".chunk-6.bin.tmp-99", 5);
        write("notes.txt", 1);
        assert_eq!(lowest_chunk(dir, 4), 2);
        let r = recover_chain(dir, 4).unwrap();
        assert_eq!(
            r,
            Recovered {
                pruned: 2,
                removed: 7
            }
        );
        let mut left: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "chunk-2.bin",
                "chunk-2.json",
                "chunk-3.bin",
                "chunk-3.json",
                "notes.txt"
            ]
        );
        assert_eq!(live_chunk_bytes(dir, r.pruned, 4), 240);
        // Nothing to do the second time; a missing directory is empty.
        assert_eq!(recover_chain(dir, 4).unwrap().removed, 0);
        assert_eq!(
            recover_chain(&dir.join("missing"), 3).unwrap(),
            Recovered {
                pruned: 3,
                removed: 0
            }
        );
    }
}
