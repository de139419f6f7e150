//! The edge build (`--no-default-features --features agent`: the agent and
//! the market's client commands) carries no server: neither axum, sqlx, a
//! PostgreSQL driver nor the market crate are among its dependencies, while
//! the default build has them (so the check below can fail). Both builds
//! have one TLS and cryptographic provider, aws-lc-rs: *ring* is in
//! neither (docs/architecture.md, "One HTTP and TLS stack").

use std::process::Command;

/// The names of the normal dependencies of `sealstream` built with `features`.
fn dependencies(features: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "-p",
            "sealstream",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--locked",
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
    let edge = dependencies(&["--no-default-features", "--features", "agent"]);
    assert!(edge.iter().any(|n| n == "sealstream-agent"), "{edge:?}");
    for name in SERVER_ONLY {
        assert!(!edge.iter().any(|n| n == name), "{name} in the edge build");
    }
    let full = dependencies(&[]);
    for name in SERVER_ONLY {
        assert!(
            full.iter().any(|n| n == name),
            "{name} not in the full build"
        );
    }
    assert!(edge.len() < full.len());
}

#[test]
fn one_tls_provider_in_every_build() {
    let builds: [&[&str]; 3] = [
        &[],
        &["--no-default-features", "--features", "agent"],
        &["--no-default-features"],
    ];
    for features in builds {
        let deps = dependencies(features);
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
