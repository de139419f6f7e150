//! `sealstream market serve|audit verify|upload|grant-daemon`: flags in,
//! sealstream-market and sealstream-client out. The owner's and buyer's
//! requests (`machine`, `dataset`, `listing`, `order`) are in
//! `market_seller` and `market_orders`.

use std::path::Path;

use sealstream_client::market::{ClientError, MarketClient};
use sealstream_client::upload::{upload_chain_dir, ChainUpload, UploadError};
use sealstream_core::json::{Map, Number, Value};
use sealstream_market::audit;
use sealstream_market::server::{self, Config};

use crate::cli::{MarketAuditCommand, MarketCommand};
use crate::error::{CliError, CliResult};
use crate::ui::Ui;

pub fn run(command: MarketCommand, ui: Ui) -> CliResult {
    match command {
        MarketCommand::Serve {
            listen,
            db,
            object_store,
            admins,
            max_body_bytes,
            max_chunk_bytes,
            max_grant_bytes,
            public_url,
            sign_in_chain_ids,
            metrics_listen,
            audit_sign_interval,
            evm_rpc,
            confirmations,
            payment_poll,
            payment_skew,
            max_claims_per_order,
            unknown_claim_ttl,
            claims_per_sweep,
            receipt_key_file,
            operator_kek_file,
            limits,
        } => {
            let seconds = std::time::Duration::from_secs;
            let config = Config {
                listen,
                data_dir: db.data_dir,
                database_url: db.database_url,
                object_store,
                body_limit: max_body_bytes,
                chunk_limit: max_chunk_bytes,
                admins: admins
                    .iter()
                    .map(|d| {
                        sealstream_core::identity::Did::parse(d, "--admin")
                            .map(|did| did.to_string())
                            .map_err(|e| CliError::input(e.to_string()))
                    })
                    .collect::<CliResult<_>>()?,
                public_url,
                sign_in_chain_ids: if sign_in_chain_ids.is_empty() {
                    Config::default().sign_in_chain_ids
                } else {
                    sign_in_chain_ids
                },
                evm_rpc: evm_rpc.into_iter().collect(),
                confirmations,
                payment_poll: std::time::Duration::from_secs(payment_poll),
                payment_skew: std::time::Duration::from_secs(payment_skew),
                max_claims_per_order: usize::try_from(max_claims_per_order).unwrap_or(usize::MAX),
                unknown_claim_ttl: std::time::Duration::from_secs(unknown_claim_ttl),
                claims_per_sweep: usize::try_from(claims_per_sweep).unwrap_or(usize::MAX),
                receipt_key_file,
                grant_limit: max_grant_bytes,
                operator_kek_file,
                metrics_listen,
                audit_sign_interval: std::time::Duration::from_secs(audit_sign_interval),
                max_connections: usize::try_from(limits.max_connections).unwrap_or(usize::MAX),
                max_connections_per_client: usize::try_from(limits.max_connections_per_client)
                    .unwrap_or(usize::MAX),
                header_timeout: seconds(limits.header_timeout),
                idle_timeout: seconds(limits.idle_timeout),
                request_timeout: seconds(limits.request_timeout),
                upload_timeout: seconds(limits.upload_timeout),
                owner_quota_bytes: limits.owner_quota_bytes,
                owner_quota_chunks: limits.owner_quota_chunks,
                min_free_disk: limits.min_free_disk,
                write_rate: limits.write_rate,
                write_burst: limits.write_burst,
                anonymous_write_rate: limits.anonymous_write_rate,
                anonymous_write_burst: limits.anonymous_write_burst,
                ..Config::default()
            };
            serve(config, ui)
        }
        MarketCommand::Audit(MarketAuditCommand::Verify {
            db,
            key,
            anchor,
            json,
            head,
            events,
        }) => {
            let published = match (head, events) {
                (Some(head), Some(events)) => Some(audit::AuditReport { events, head }),
                _ => None,
            };
            super::market_audit::verify(db, key, anchor, published, Ui { json, ..ui })
        }
        MarketCommand::Audit(MarketAuditCommand::Anchor { db, key, out }) => {
            super::market_audit::anchor(db, key, out, ui)
        }
        MarketCommand::Upload {
            server,
            chunk_dir,
            topic,
            key_file,
            attempts,
            json,
        } => {
            let ui = Ui { json, ..ui };
            let key = crate::keyfile::secp256k1_secret(&key_file, "machine key")?;
            let summary = upload_dir(&server, &chunk_dir, &topic, key, attempts, &ui)?;
            if ui.json {
                ui.json_out(&upload_json(&summary));
            }
            Ok(())
        }
        MarketCommand::GrantDaemon {
            server,
            key_file,
            owner_key_file,
            once,
            interval,
            max_file_size,
            json,
        } => grant_daemon(
            &server,
            &key_file,
            &owner_key_file,
            once,
            std::time::Duration::from_secs(interval),
            max_file_size,
            Ui { json, ..ui },
        ),
        MarketCommand::Machine(c) => super::market_seller::machine(c, ui),
        MarketCommand::Dataset(c) => super::market_seller::dataset(c, ui),
        MarketCommand::Listing(c) => super::market_seller::listing(c, ui),
        MarketCommand::Order(c) => super::market_orders::run(c, ui),
    }
}

fn grant_daemon(
    server: &str,
    key_file: &Path,
    owner_key_file: &Path,
    once: bool,
    interval: std::time::Duration,
    max_file_size: usize,
    ui: Ui,
) -> CliResult {
    use sealstream_client::grants::GrantDaemon;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(CliError::input(format!(
            "--server: expected an http:// or https:// URL, got {server:?}"
        )));
    }
    if max_file_size == 0 {
        return Err(CliError::input("--max-file-size: must be greater than 0"));
    }
    let key = crate::keyfile::secp256k1_secret(key_file, "owner key")?;
    let owner_key = crate::keyfile::x25519_secret(owner_key_file, "owner recipient key")?;
    let client = MarketClient::new(server, key)
        .with_statement("Sign in to the sealstream market as an owner (grant daemon).");
    ui.say(format!("Grant daemon for {} on {server}", client.did()));
    let mut daemon = GrantDaemon::new(client, owner_key, max_file_size);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| CliError::input(format!("cannot handle signals: {e}")))?;
    }
    loop {
        let mut failed = 0u64;
        let pass = daemon.run_once(|order, result| match result {
            Ok(g) => {
                ui.say(format!(
                    "{}: {} ({} chunks, {} access file{})",
                    g.order_id,
                    if g.new { "granted" } else { "already granted" },
                    g.entries,
                    g.files,
                    if g.files == 1 { "" } else { "s" }
                ));
                if ui.json {
                    let mut m = Map::new();
                    m.insert("orderId".into(), Value::String(g.order_id.clone()));
                    m.insert("granted".into(), Value::Bool(g.new));
                    m.insert(
                        "entries".into(),
                        Value::Number(
                            Number::from_int_text(&g.entries.to_string()).expect("an integer"),
                        ),
                    );
                    ui.json_out(&Value::Object(m));
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: not granted: {e}", order.id);
                if ui.json {
                    let mut m = Map::new();
                    m.insert("orderId".into(), Value::String(order.id.clone()));
                    m.insert("error".into(), Value::String(e.to_string()));
                    ui.json_out(&Value::Object(m));
                }
            }
        });
        match pass {
            Ok(_) => {}
            Err(e) if once || !e.is_transient() => {
                let message = format!("grant daemon: {e}");
                return Err(match e {
                    ClientError::Refused { .. } => CliError::integrity(message),
                    _ => CliError::input(message),
                });
            }
            Err(e) => eprintln!("grant daemon: {e}; trying again"),
        }
        if once {
            return if failed == 0 {
                Ok(())
            } else {
                Err(CliError::integrity(format!(
                    "{failed} order{} not granted",
                    if failed == 1 { "" } else { "s" }
                )))
            };
        }
        let until = std::time::Instant::now() + interval;
        while std::time::Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                ui.say("Grant daemon stopped");
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if stop.load(Ordering::Relaxed) {
            ui.say("Grant daemon stopped");
            return Ok(());
        }
    }
}

/// Uploads the chain in `dir` to `server` as `topic`, signed in with `key`;
/// reports on the terminal. A refusal by the server exits 2, a server that
/// stays unreachable 1.
pub fn upload_dir(
    server: &str,
    dir: &Path,
    topic: &str,
    key: sealstream_core::keys::MachineSigningKey,
    attempts: u32,
    ui: &Ui,
) -> CliResult<ChainUpload> {
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(CliError::input(format!(
            "--server/--to: expected an http:// or https:// URL, got {server:?}"
        )));
    }
    let mut client = MarketClient::new(server, key);
    ui.say(format!(
        "Uploading {} to {} as {} ({})...",
        dir.display(),
        server,
        client.did(),
        topic
    ));
    let bar = ui.progress(None, true, "uploading");
    let mut progress = |n: u64| bar.inc(n);
    let mut log = |line: &str| bar.suspend(|| ui.say(line));
    let result = upload_chain_dir(
        &mut client,
        topic,
        dir,
        attempts.max(1),
        &mut progress,
        &mut log,
    );
    bar.finish_and_clear();
    let summary = result.map_err(|e| {
        let refused = match &e {
            UploadError::Chunk { source, .. } | UploadError::Dataset(source) => {
                matches!(source, ClientError::Refused { .. })
            }
            UploadError::Client(source) => matches!(source, ClientError::Refused { .. }),
            UploadError::Read(_) | UploadError::File { .. } => false,
        };
        let message = format!("upload to {server}: {e}");
        if refused {
            CliError::integrity(message)
        } else {
            CliError::input(message)
        }
    })?;
    ui.say(format!(
        "Uploaded {}: {} chunk{} stored, {} already held{}",
        topic,
        summary.stored,
        if summary.stored == 1 { "" } else { "s" },
        summary.already_held,
        summary
            .dataset_id
            .as_deref()
            .map(|id| format!(", dataset {id}"))
            .unwrap_or_default()
    ));
    Ok(summary)
}

fn upload_json(s: &ChainUpload) -> Value {
    let n = |v: u64| Value::Number(Number::from_int_text(&v.to_string()).expect("an integer"));
    let mut m = Map::new();
    m.insert("chunks".into(), n(s.chunks));
    m.insert("stored".into(), n(s.stored));
    m.insert("alreadyHeld".into(), n(s.already_held));
    m.insert(
        "datasetId".into(),
        s.dataset_id.clone().map_or(Value::Null, Value::String),
    );
    Value::Object(m)
}

pub(super) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::input(format!("cannot start the async runtime: {e}")))
}

fn serve(config: Config, ui: Ui) -> CliResult {
    let level = if ui.quiet {
        tracing_subscriber::filter::LevelFilter::WARN
    } else {
        tracing_subscriber::filter::LevelFilter::INFO
    };
    // Everything the server creates is its own: the database and its WAL,
    // ciphertext objects, keys, temporary files (issue 14, item 14).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // Ignore a second initialisation (only possible in tests).
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .try_init();
    runtime()?.block_on(async move {
        server::serve(config, shutdown_signal())
            .await
            .map_err(|e| CliError::input(e.to_string()))
    })
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The SQLite file a `sqlite://` URL names, if any (not `:memory:`).
pub(super) fn sqlite_file(url: &str) -> Option<&Path> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| Path::new(path))
}
