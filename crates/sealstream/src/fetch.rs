//! HTTP input for `publish --input URL` and release packages for
//! `consume --download-url URL`, as the reference accepts them: `URL/manifest.json`
//! with a `files` list of flat `*.json`/`*.bin` names fetched from `URL/<name>`,
//! or else `URL` itself as a ZIP of those files. Downloads stream to disk under
//! size limits; names are checked so nothing lands outside the work directory.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sealstream_core::json;

use crate::error::{at, CliError, CliResult};

const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_MANIFEST_BYTES: u64 = 8 << 20;
const MAX_FILE_BYTES: u64 = 4 << 30;
const MAX_TOTAL_BYTES: u64 = 256 << 30;
const MAX_FILES: usize = 1_000_000;

/// The URL with its query (which may carry credentials) replaced.
pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?<redacted>"),
        None => url.to_string(),
    }
}

/// `base` with `segment` appended to its path; query and fragment kept.
fn join_url(base: &str, segment: &str) -> String {
    let (rest, fragment) = base
        .split_once('#')
        .map_or((base, None), |(a, b)| (a, Some(b)));
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(a, b)| (a, Some(b)));
    let mut out = format!("{}/{segment}", path.trim_end_matches('/'));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// The HTTP client of every download: the market client's stack (reqwest,
/// rustls on aws-lc-rs), TCP_NODELAY on, 60 s to connect, 60 s for a
/// request to be answered and for each read of its answer.
fn http() -> CliResult<&'static reqwest::blocking::Client> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::blocking::Client, String>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::blocking::Client::builder()
                .tcp_nodelay(true)
                .connect_timeout(TIMEOUT)
                .timeout(TIMEOUT)
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| CliError::integrity(format!("cannot start the HTTP client: {e}")))
}

enum Fetched {
    Ok(reqwest::blocking::Response),
    Status(u16),
}

/// What kind of transport failure `e` is, for a person to read.
fn failure_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_builder() {
        "bad URL"
    } else {
        "transport error"
    }
}

fn get(url: &str) -> CliResult<Fetched> {
    match http()?.get(url).send() {
        Ok(resp) if resp.status().is_client_error() || resp.status().is_server_error() => {
            Ok(Fetched::Status(resp.status().as_u16()))
        }
        Ok(resp) => Ok(Fetched::Ok(resp)),
        Err(e) => Err(CliError::integrity(format!(
            "download failed: {} ({})",
            redact_url(url),
            failure_kind(&e)
        ))),
    }
}

/// Open `url` for streaming; the length if the server gives one.
pub fn open_stream(url: &str) -> CliResult<(Box<dyn Read>, Option<u64>)> {
    match get(url)? {
        Fetched::Ok(resp) => {
            let len = resp.content_length();
            Ok((Box::new(resp), len))
        }
        Fetched::Status(code) => Err(CliError::integrity(format!(
            "download failed: HTTP {code} from {}",
            redact_url(url)
        ))),
    }
}

/// Stream `reader` into `dest`, refusing more than `max` bytes.
fn copy_limited(mut reader: impl Read, dest: &Path, max: u64, what: &str) -> CliResult<u64> {
    let mut out = fs::File::create(dest)
        .map_err(|e| CliError::input(at(dest, format!("cannot write ({e})"))))?;
    let mut limited = (&mut reader).take(max + 1);
    let n = io::copy(&mut limited, &mut out)
        .map_err(|e| CliError::integrity(format!("download of {what} failed: {e}")))?;
    if n > max {
        let _ = fs::remove_file(dest);
        return Err(CliError::integrity(format!(
            "{what} exceeds the {max}-byte size limit"
        )));
    }
    out.flush().map_err(|e| CliError::input(at(dest, e)))?;
    Ok(n)
}

/// A flat package file name: `[A-Za-z0-9._-]+\.(json|bin)`, not hidden.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && (name.ends_with(".json") || name.ends_with(".bin"))
}

/// Where a release package is downloaded.
pub enum Destination<'a> {
    /// A temporary directory, removed with the package.
    Temporary,
    /// A package directory made in this work directory (`--work-dir`); the
    /// work directory is removed with it when the download created it.
    WorkDir(&'a Path),
    /// This directory itself, kept (`--keep-download`): it must be empty or
    /// not exist.
    Keep(&'a Path),
}

/// The machine registration sealstream's release packages name
/// (`sealstreamRegistration`), kept beside the sorted directories.
const REGISTRATION_FILE: &str = "registration.json";

/// A downloaded release package, sorted into chunk, data and access directories.
/// Removed when dropped unless kept.
pub struct ReleasePackage {
    root: PathBuf,
    pkg: PathBuf,
    remove_root: bool,
    keep: bool,
}

impl ReleasePackage {
    pub fn download(url: &str, destination: Destination<'_>) -> CliResult<Self> {
        let mut me = Self::place(destination)?;
        let files = me.pkg.join("files");
        fs::create_dir(&files).map_err(|e| CliError::input(at(&files, e)))?;
        me.fetch_into(url, &files)?;
        me.sort(&files)?;
        Ok(me)
    }

    /// The empty package directory of `destination`, made.
    fn place(destination: Destination<'_>) -> CliResult<Self> {
        let (root, remove_root) = match destination {
            Destination::Keep(dir) => {
                if fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
                    return Err(CliError::input(at(
                        dir,
                        "--keep-download: the directory is not empty",
                    )));
                }
                fs::create_dir_all(dir).map_err(|e| {
                    CliError::input(at(dir, format!("--keep-download: cannot create ({e})")))
                })?;
                return Ok(ReleasePackage {
                    root: dir.to_path_buf(),
                    pkg: dir.to_path_buf(),
                    remove_root: false,
                    keep: true,
                });
            }
            Destination::WorkDir(dir) => {
                let existed = dir.exists();
                fs::create_dir_all(dir).map_err(|e| {
                    CliError::input(at(dir, format!("--work-dir: cannot create ({e})")))
                })?;
                (dir.to_path_buf(), !existed)
            }
            Destination::Temporary => {
                let dir = tempfile::Builder::new()
                    .prefix("sealstream-download-")
                    .tempdir()
                    .map_err(|e| {
                        CliError::input(format!("cannot create a temporary directory: {e}"))
                    })?;
                (dir.keep(), true)
            }
        };
        let pkg = tempfile::Builder::new()
            .prefix("sealstream-package-")
            .tempdir_in(&root)
            .map_err(|e| {
                CliError::input(at(
                    &root,
                    format!("cannot create a package directory ({e})"),
                ))
            })?
            .keep();
        Ok(ReleasePackage {
            root,
            pkg,
            remove_root,
            keep: false,
        })
    }

    fn fetch_into(&mut self, url: &str, files: &Path) -> CliResult {
        let manifest_url = join_url(url, "manifest.json");
        let manifest = match get(&manifest_url)? {
            Fetched::Ok(resp) => {
                let mut raw = Vec::new();
                resp.take(MAX_MANIFEST_BYTES + 1)
                    .read_to_end(&mut raw)
                    .map_err(|e| {
                        CliError::integrity(format!("download of manifest.json failed: {e}"))
                    })?;
                if raw.len() as u64 > MAX_MANIFEST_BYTES {
                    return Err(CliError::integrity("manifest.json exceeds the size limit"));
                }
                let value = json::parse(&raw).map_err(|e| {
                    CliError::integrity(format!("manifest.json is not valid JSON: {e}"))
                })?;
                Some((value, raw))
            }
            Fetched::Status(404 | 403) => None,
            Fetched::Status(code) => {
                return Err(CliError::integrity(format!(
                    "download failed: HTTP {code} fetching manifest.json"
                )))
            }
        };
        let listed = manifest
            .as_ref()
            .and_then(|(v, raw)| v.as_object().and_then(|m| m.get("files")).map(|f| (f, raw)));
        match listed {
            Some((files_value, raw)) => {
                let names = files_value
                    .as_array()
                    .ok_or_else(|| CliError::integrity("manifest.json 'files' is not a list"))?;
                if names.len() > MAX_FILES {
                    return Err(CliError::integrity("manifest.json lists too many files"));
                }
                fs::write(files.join("manifest.json"), raw)
                    .map_err(|e| CliError::input(at(files, e)))?;
                let mut budget = MAX_TOTAL_BYTES;
                for name in names {
                    let name = name.as_str().ok_or_else(|| {
                        CliError::integrity("manifest.json 'files' entries must be strings")
                    })?;
                    if !safe_name(name) {
                        return Err(CliError::integrity(format!(
                            "manifest.json lists an unsafe file name: {name:?}"
                        )));
                    }
                    let file_url = join_url(url, name);
                    let (reader, _) = open_stream(&file_url)?;
                    let n =
                        copy_limited(reader, &files.join(name), MAX_FILE_BYTES.min(budget), name)?;
                    budget -= n;
                }
                // sealstream's release packages name the signed dataset
                // manifest apart from `files` (the reference would take it
                // for an access file); consume verifies the chain against it.
                let dataset = manifest
                    .as_ref()
                    .and_then(|(v, _)| v.as_object())
                    .and_then(|m| m.get("sealstreamDataset"))
                    .and_then(json::Value::as_str);
                if let Some(name) = dataset {
                    if name != "dataset.json" {
                        return Err(CliError::integrity(format!(
                            "manifest.json: sealstreamDataset must be \"dataset.json\", got {name:?}"
                        )));
                    }
                    let (reader, _) = open_stream(&join_url(url, name))?;
                    copy_limited(reader, &self.pkg.join(name), MAX_MANIFEST_BYTES, name)?;
                }
                // And the machine's signed registration, which names the
                // owner the buyer may accept as the dataset's signer.
                let registration = manifest
                    .as_ref()
                    .and_then(|(v, _)| v.as_object())
                    .and_then(|m| m.get("sealstreamRegistration"))
                    .and_then(json::Value::as_str);
                if let Some(name) = registration {
                    if name != REGISTRATION_FILE {
                        return Err(CliError::integrity(format!(
                            "manifest.json: sealstreamRegistration must be \"{REGISTRATION_FILE}\", got {name:?}"
                        )));
                    }
                    let (reader, _) = open_stream(&join_url(url, name))?;
                    copy_limited(reader, &self.pkg.join(name), MAX_MANIFEST_BYTES, name)?;
                }
                Ok(())
            }
            None => self.fetch_zip(url, files),
        }
    }

    fn fetch_zip(&mut self, url: &str, files: &Path) -> CliResult {
        let (reader, _) = open_stream(url.trim_end_matches('/'))?;
        let zip_path = self.pkg.join("package.zip");
        copy_limited(reader, &zip_path, MAX_TOTAL_BYTES, "the release package")?;
        let file = fs::File::open(&zip_path).map_err(|e| CliError::input(at(&zip_path, e)))?;
        let mut archive = zip::ZipArchive::new(file)
            .map_err(|e| CliError::integrity(format!("the release package is not a ZIP: {e}")))?;
        if archive.len() > MAX_FILES {
            return Err(CliError::integrity(
                "the release package has too many entries",
            ));
        }
        let mut budget = MAX_TOTAL_BYTES;
        for i in 0..archive.len() {
            let mut member = archive
                .by_index(i)
                .map_err(|e| CliError::integrity(format!("the release package is damaged: {e}")))?;
            if member.is_dir() {
                continue;
            }
            // Flatten: only the file name counts, as the reference sorts by name.
            let name = member
                .name()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            if !safe_name(&name) {
                continue;
            }
            let n = copy_limited(
                &mut member,
                &files.join(&name),
                MAX_FILE_BYTES.min(budget),
                &name,
            )?;
            budget -= n;
        }
        let _ = fs::remove_file(&zip_path);
        Ok(())
    }

    /// Sort like the reference: envelopes and manifest → chunks/, `*.bin` → data/, other `*.json` → access/.
    fn sort(&self, files: &Path) -> CliResult {
        for dir in [self.chunk_dir(), self.data_dir(), self.access_dir()] {
            fs::create_dir_all(&dir).map_err(|e| CliError::input(at(&dir, e)))?;
        }
        for entry in fs::read_dir(files).map_err(|e| CliError::input(at(files, e)))? {
            let entry = entry.map_err(|e| CliError::input(at(files, e)))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_envelope = name.starts_with("chunk-") && name.ends_with(".json");
            let dest = if name == "manifest.json" || is_envelope {
                self.chunk_dir()
            } else if name.ends_with(".bin") {
                self.data_dir()
            } else {
                self.access_dir()
            };
            fs::rename(entry.path(), dest.join(&name))
                .map_err(|e| CliError::input(at(&dest, e)))?;
        }
        let _ = fs::remove_dir(files);
        let dataset = self.pkg.join("dataset.json");
        if dataset.is_file() {
            let dest = self.chunk_dir().join("dataset.json");
            fs::rename(&dataset, &dest).map_err(|e| CliError::input(at(&dest, e)))?;
        }
        Ok(())
    }

    pub fn chunk_dir(&self) -> PathBuf {
        self.pkg.join("chunks")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.pkg.join("data")
    }

    pub fn access_dir(&self) -> PathBuf {
        self.pkg.join("access")
    }

    /// The machine's signed registration, when the package named one.
    pub fn registration(&self) -> Option<PathBuf> {
        Some(self.pkg.join(REGISTRATION_FILE)).filter(|p| p.is_file())
    }

    /// Whether the files stay when the package is dropped.
    pub fn is_kept(&self) -> bool {
        self.keep
    }

    /// Where the package is.
    pub fn path(&self) -> &Path {
        &self.pkg
    }

    /// Keep the files when dropped.
    pub fn retain(&mut self) {
        self.keep = true;
    }
}

impl Drop for ReleasePackage {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let _ = fs::remove_dir_all(&self.pkg);
        if self.remove_root {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            join_url("http://h/a/", "manifest.json"),
            "http://h/a/manifest.json"
        );
        assert_eq!(join_url("http://h/a?t=1", "x.bin"), "http://h/a/x.bin?t=1");
        assert_eq!(
            redact_url("http://h/a?X-Amz-Signature=s"),
            "http://h/a?<redacted>"
        );
        assert!(safe_name("chunk-1.json"));
        assert!(!safe_name("../x.json"));
        assert!(!safe_name(".hidden.json"));
        assert!(!safe_name("a.txt"));
    }
}
