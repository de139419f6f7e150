//! The server's files: its data directory is private (0700) and every file
//! it writes there is 0600, so that other users of the machine read neither
//! the database, the ciphertext objects nor the keys. Writes that replace a
//! file go through a temporary file and a rename.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the server's directories.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the server's files.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700; an existing `dir`
/// that group or others may enter is narrowed to 0700, with a warning.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    narrow(dir, DIR_MODE)
}

/// Narrows `path` to `mode` if group or others have any access to it,
/// logging what was changed. Missing files are left alone.
pub fn narrow(path: &Path, mode: u32) -> io::Result<()> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let current = meta.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "was mode {current:o}, readable by other users: now {mode:o}"
        );
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Creates `path` empty with mode 0600 unless it exists (then narrows it):
/// SQLite gives its `-wal` and `-shm` files the mode of the database file,
/// so creating it 0600 first keeps all three private.
pub fn private_file(path: &Path) -> io::Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => narrow(path, FILE_MODE),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` through a temporary 0600 file in the same
/// directory, synced, then renamed into place.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, name) = sealstream_files::layout::dir_and_name(path)?;
    // Unique per call, so writers of the same file in one process do not
    // share a temporary file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes what a killed server leaves behind, before this one writes
/// anything: temporary files of [`write_private`] in `data_dir` (named
/// `.<file>.tmp-<pid>-<n>`) whose process is gone or is this one (a
/// container restarts with the same pid), and the staging files of
/// uploads to the local object store in `objects_dir` (`<key>#<n>`; object
/// keys never hold a `#`). Returns how many files were removed.
pub fn remove_debris(data_dir: &Path, objects_dir: Option<&Path>) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(data_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = temp_owner(&name.to_string_lossy()) else {
            continue;
        };
        let alive = pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists();
        if !alive && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    let mut dirs: Vec<std::path::PathBuf> =
        objects_dir.map(Path::to_path_buf).into_iter().collect();
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() && entry.file_name().to_string_lossy().contains('#') {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed the temporary files of an earlier run");
    }
    Ok(removed)
}

/// The pid in a [`write_private`] temporary file's name.
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp-")?;
    let (pid, n) = tail.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_and_files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700, "an existing open directory is narrowed");

        let db = dir.join("market.db");
        private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        fs::write(&db, b"kept").unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(
            fs::read(&db).unwrap(),
            b"kept",
            "an existing file keeps its bytes"
        );

        let head = dir.join("head.json");
        write_private(&head, b"{}").unwrap();
        assert_eq!(mode(&head), 0o600);
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            2,
            "no temporary file left"
        );
    }

    #[test]
    fn debris_of_a_killed_run_is_removed_at_start() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        let objects = data.join("objects/ab");
        fs::create_dir_all(&objects).unwrap();
        // A dead process's temporary file (pid beyond pid_max), this
        // process's, and files that only look alike.
        let dead = data.join(".audit-head.json.tmp-4194305-0");
        let own = data.join(format!(".audit-head.json.tmp-{}-7", std::process::id()));
        let kept = [
            data.join("audit-head.json"),
            data.join(".audit-head.json.tmp-x-1"),
            data.join("market.db"),
            objects.join("chunk.bin"),
        ];
        for f in [&dead, &own, &objects.join("chunk.bin#3")]
            .into_iter()
            .chain(kept.iter())
        {
            fs::write(f, b"x").unwrap();
        }
        assert_eq!(remove_debris(data, Some(&data.join("objects"))).unwrap(), 3);
        assert!(!dead.exists() && !own.exists());
        assert!(!objects.join("chunk.bin#3").exists());
        for f in &kept {
            assert!(f.exists(), "{} kept", f.display());
        }
        assert_eq!(remove_debris(data, None).unwrap(), 0);
    }
}
