//! A destination's identity: the name its delivery progress is recorded
//! under in `<spool>/delivery.json`, and the name logs and `agent status`
//! give it. It is the destination's canonical target, so that the same
//! destination keeps its progress however its path or URL is spelled (a
//! relative or absolute path to the Data Event Map, `out` or `./out/`):
//!
//! | destination | identity |
//! |---|---|
//! | `directory` | `directory <path>`: absolute, symbolic links resolved, no `.` or `..` (the part that does not exist yet is appended as written) |
//! | `object-store` | `object store s3://<bucket>[/<prefix>]` (no empty prefix segments), or `object store file://<path>` with the path as for a directory |
//! | `market` | `market <scheme>://<host>[:<port>][<path>]`: scheme and host in lower case, no default port (80 for http, 443 for https), no trailing `/` |
//!
//! Earlier versions recorded progress under the destination as described
//! in logs (`directory ./out`, the path as resolved from the map's path as
//! given). [`legacy_identities`] says which canonical identities such a name
//! may stand for, so that [`crate::forward::migrate_delivery`] can carry the
//! progress over.

use std::path::{Component, Path, PathBuf};

use crate::config::{Destination, ObjectStoreLocation};

/// The identity of `destination` (see the module docs).
pub fn identity(destination: &Destination) -> String {
    match destination {
        Destination::Directory { path } => directory(path),
        Destination::ObjectStore { location, .. } => match location {
            ObjectStoreLocation::S3 { bucket, prefix } => s3(bucket, prefix),
            ObjectStoreLocation::File { path } => {
                format!("object store file://{}", canonical_path(path).display())
            }
        },
        Destination::Market { url } => format!("market {}", normalized_http_url(url)),
        Destination::P2p(p) => format!("p2p {}", canonical_path(&p.path).display()),
    }
}

/// The canonical identities a name recorded by an earlier version may stand
/// for. A relative directory path was relative to that run's working
/// directory, unknown now: it is tried against each of `bases` (the working
/// directory and the map's directory, say). Empty for names of no known form.
pub fn legacy_identities(name: &str, bases: &[&Path]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(path) = name.strip_prefix("directory ") {
        let path = Path::new(path);
        if path.is_absolute() {
            out.push(directory(path));
        } else {
            out.extend(bases.iter().map(|base| directory(&base.join(path))));
        }
    } else if let Some(url) = name.strip_prefix("object store ") {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            out.push(s3(bucket, prefix));
        } else if let Some(path) = url.strip_prefix("file://") {
            out.push(format!(
                "object store file://{}",
                canonical_path(Path::new(path)).display()
            ));
        }
    } else if let Some(url) = name.strip_prefix("market ") {
        out.push(format!("market {}", normalized_http_url(url)));
    }
    out.dedup();
    out
}

fn directory(path: &Path) -> String {
    format!("directory {}", canonical_path(path).display())
}

fn s3(bucket: &str, prefix: &str) -> String {
    let prefix: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    if prefix.is_empty() {
        format!("object store s3://{bucket}")
    } else {
        format!("object store s3://{bucket}/{}", prefix.join("/"))
    }
}

/// `path` made absolute (against the working directory), its existing part
/// canonicalized (symbolic links resolved), the rest appended without `.`
/// and with `..` applied.
pub fn canonical_path(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    let mut existing = true;
    for component in absolute.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => out.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                out.push(name);
                if existing {
                    match out.canonicalize() {
                        Ok(c) => out = c,
                        Err(_) => existing = false,
                    }
                }
            }
        }
    }
    out
}

/// `scheme://authority/path` with scheme and host in lower case, without
/// the scheme's default port and without trailing slashes. Anything not of
/// that shape is returned as it is.
pub fn normalized_http_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    if let Some(port) = default_port {
        if let Some(host) = authority.strip_suffix(port) {
            authority = host.to_string();
        }
    }
    format!("{scheme}://{authority}{}", path.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_by_their_canonical_path() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a/out")).unwrap();
        let want = format!("directory {}", root.join("a/out").display());
        for spelling in ["a/out", "a/out/", "a/./out", "a/b/../out", "./a/../a/out"] {
            let d = Destination::Directory {
                path: root.join(spelling),
            };
            assert_eq!(identity(&d), want, "{spelling}");
        }
        // Through a symbolic link, and not yet existing.
        std::os::unix::fs::symlink(root.join("a"), root.join("link")).unwrap();
        let d = Destination::Directory {
            path: root.join("link/out"),
        };
        assert_eq!(identity(&d), want);
        let d = Destination::Directory {
            path: root.join("link/new/./x/../y/"),
        };
        assert_eq!(
            identity(&d),
            format!("directory {}", root.join("a/new/y").display())
        );
    }

    #[test]
    fn urls_normalized() {
        let market = |url: &str| {
            identity(&Destination::Market {
                url: url.to_string(),
            })
        };
        assert_eq!(
            market("HTTP://Market.Example:80/"),
            "market http://market.example"
        );
        assert_eq!(
            market("https://m.example:443/api//"),
            "market https://m.example/api"
        );
        assert_eq!(
            market("http://m.example:8080"),
            "market http://m.example:8080"
        );
        let s3 = |prefix: &str| {
            identity(&Destination::ObjectStore {
                url: String::new(),
                location: ObjectStoreLocation::S3 {
                    bucket: "b".into(),
                    prefix: prefix.into(),
                },
            })
        };
        assert_eq!(s3(""), "object store s3://b");
        assert_eq!(s3("fleet//robot-7"), "object store s3://b/fleet/robot-7");
    }

    #[test]
    fn names_of_earlier_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("out")).unwrap();
        let want = format!("directory {}", root.join("out").display());
        assert_eq!(
            legacy_identities(&format!("directory {}/./out/", root.display()), &[]),
            std::slice::from_ref(&want)
        );
        let other = root.join("elsewhere");
        assert_eq!(
            legacy_identities("directory ./out", &[&other, &root]),
            [format!("directory {}", other.join("out").display()), want]
        );
        assert_eq!(
            legacy_identities("object store s3://b/p/", &[]),
            ["object store s3://b/p"]
        );
        assert_eq!(
            legacy_identities("market http://M:80/", &[]),
            ["market http://m"]
        );
        assert!(legacy_identities("recording", &[&root]).is_empty());
    }
}
