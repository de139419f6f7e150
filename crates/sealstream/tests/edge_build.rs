//! The edge build (`--no-default-features --features agent`: the agent and
//! the market's client commands) carries no server: neither axum, sqlx, a
//! PostgreSQL driver nor the market crate are among its dependencies, while
//! the default build has them (so the check below can fail). And core is the
//! format alone: no crate of ours and no object store below it, which
//! `sealstream-files` brings only with its `object-store` feature. Every
//! build has one TLS and cryptographic provider, aws-lc-rs: *ring* is in
//! none (docs/architecture.md, "One HTTP and TLS stack"), libp2p's Noise
//! included (patches/libp2p-noise-0.47); libp2p itself is in the default
//! build and in no edge build.

use std::process::Command;

/// The names of the normal dependencies of `package` built with `features`.
fn dependencies(package: &str, features: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree", "-p", package, "-e", "normal", "--prefix", "none", "--locked",
        ])
        .args(features)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

const SERVER_ONLY: [&str; 4] = ["axum", "sqlx", "sqlx-postgres", "sealstream-market"];

#[test]
fn the_edge_build_has_no_server() {
    let edge = dependencies(
        "sealstream",
        &["--no-default-features", "--features", "agent"],
    );
    assert!(edge.iter().any(|n| n == "sealstream-agent"), "{edge:?}");
    for name in SERVER_ONLY {
        assert!(!edge.iter().any(|n| n == name), "{name} in the edge build");
    }
    let full = dependencies("sealstream", &[]);
    for name in SERVER_ONLY {
        assert!(
            full.iter().any(|n| n == name),
            "{name} not in the full build"
        );
    }
    assert!(edge.len() < full.len());
}

/// The crates of this workspace among `names`, other than `except`.
fn ours<'a>(names: &'a [String], except: &str) -> Vec<&'a str> {
    names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("sealstream") && *n != except)
        .collect()
}

#[test]
fn core_is_the_format_alone() {
    let core = dependencies("sealstream-core", &[]);
    assert!(core.iter().any(|n| n == "secp256k1"), "{core:?}");
    assert_eq!(ours(&core, "sealstream-core"), Vec::<&str>::new());
    assert!(
        !core.iter().any(|n| n == "object_store"),
        "object_store in core"
    );
    let files = dependencies("sealstream-files", &[]);
    assert_eq!(ours(&files, "sealstream-files"), ["sealstream-core"]);
    assert!(!files.iter().any(|n| n == "object_store"), "{files:?}");
    let with_store = dependencies("sealstream-files", &["--features", "object-store"]);
    assert!(
        with_store.iter().any(|n| n == "object_store"),
        "{with_store:?}"
    );
}

#[test]
fn one_tls_provider_in_every_build() {
    let builds: [&[&str]; 4] = [
        &[],
        &["--no-default-features", "--features", "agent"],
        &["--no-default-features", "--features", "p2p"],
        &["--no-default-features"],
    ];
    for features in builds {
        let deps = dependencies("sealstream", features);
        assert!(
            !deps.iter().any(|n| n == "ring"),
            "ring in the build with {features:?}"
        );
        for name in ["aws-lc-rs", "rustls"] {
            assert!(
                deps.iter().any(|n| n == name),
                "{name} not in the build with {features:?}"
            );
        }
    }
}

#[test]
fn libp2p_comes_with_the_p2p_feature_only() {
    let full = dependencies("sealstream", &[]);
    for name in ["libp2p", "libp2p-noise", "libp2p-stream", "snow"] {
        assert!(
            full.iter().any(|n| n == name),
            "{name} not in the full build"
        );
    }
    let edge = dependencies(
        "sealstream",
        &["--no-default-features", "--features", "agent"],
    );
    assert!(!edge.iter().any(|n| n.starts_with("libp2p")), "{edge:?}");
    // Not one TLS stack of libp2p's (tls, quic, websocket) either.
    for name in [
        "libp2p-tls",
        "libp2p-quic",
        "libp2p-websocket",
        "libp2p-mdns",
    ] {
        assert!(!full.iter().any(|n| n == name), "{name} in the build");
    }
    // The wire alone builds without libp2p (the fuzz targets use it so).
    let wire = dependencies("sealstream-p2p", &[]);
    assert!(!wire.iter().any(|n| n.starts_with("libp2p")), "{wire:?}");
}
