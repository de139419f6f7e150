//! `sealstream market upload|grant-daemon` and the dispatch of every
//! `market` command: flags in, sealstream-client out. The server's commands
//! (`serve`, `audit`) are in `market_serve` and `market_audit`. The owner's and buyer's
//! requests (`machine`, `dataset`, `listing`, `order`) are in
//! `market_seller` and `market_orders`; browsing (`search`, `topics`,
//! `listing show`, `receipt key`) in `market_browse`, samples in
//! `market_sample`, the session and settings (`login`, `link`,
//! `operator-key`, `admin`) in `market_account`.

use std::path::Path;

use sealstream_client::market::{ClientError, MarketClient};
use sealstream_client::upload::{upload_chain_dir, ChainUpload, UploadError};
use sealstream_core::json::{Map, Number, Value};
#[cfg(feature = "market")]
use sealstream_market::audit;

#[cfg(feature = "market")]
use crate::cli::MarketAuditCommand;
use crate::cli::{MarketCommand, MarketReceiptCommand, MarketSampleCommand};
use crate::error::{CliError, CliResult};
use crate::ui::Ui;

pub fn run(command: MarketCommand, ui: Ui) -> CliResult {
    match command {
        #[cfg(feature = "market")]
        MarketCommand::Serve(args) => super::market_serve::run(*args, ui),
        #[cfg(feature = "market")]
        MarketCommand::Audit(MarketAuditCommand::Verify {
            log,
            anchor,
            head,
            events,
        }) => {
            let published = match (head, events) {
                (Some(head), Some(events)) => Some(audit::AuditReport { events, head }),
                _ => None,
            };
            super::market_audit::verify(log, anchor, published, ui)
        }
        #[cfg(feature = "market")]
        MarketCommand::Audit(MarketAuditCommand::Export(args)) => {
            super::market_audit::export(args, ui)
        }
        #[cfg(feature = "market")]
        MarketCommand::Audit(MarketAuditCommand::Anchor(args)) => {
            super::market_audit::anchor(args, ui)
        }
        #[cfg(feature = "market")]
        MarketCommand::Audit(MarketAuditCommand::ProveTotal {
            session,
            log,
            from,
            to,
            server_key,
            out,
        }) => super::market_receipt_log::prove_total(
            &session,
            sealstream_api::receipts::log::TotalQuery {
                log: Some(log),
                from,
                to,
            },
            server_key.as_deref(),
            out.as_deref(),
            ui,
        ),
        #[cfg(feature = "market")]
        MarketCommand::Audit(MarketAuditCommand::VerifyTotal {
            file,
            server_key,
            expect,
        }) => super::market_receipt_log::verify_total(&file, server_key.as_deref(), &expect, ui),
        #[cfg(feature = "market")]
        MarketCommand::Audit(MarketAuditCommand::LogHead { session, log, out }) => {
            super::market_receipt_log::log_head(&session, &log, out.as_deref(), ui)
        }
        #[cfg(feature = "market")]
        MarketCommand::Audit(MarketAuditCommand::LogConsistency { session, old, out }) => {
            super::market_receipt_log::log_consistency(&session, &old, out.as_deref(), ui)
        }
        MarketCommand::Upload {
            server,
            chunk_dir,
            topic,
            key_file,
            attempts,
        } => {
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
            follow,
            interval,
            max_file_size,
        } => grant_daemon(
            &server,
            &key_file,
            &owner_key_file,
            GrantPasses {
                once,
                follow,
                interval: std::time::Duration::from_secs(interval),
            },
            max_file_size,
            ui,
        ),
        MarketCommand::Machine(c) => super::market_seller::machine(c, ui),
        MarketCommand::Dataset(c) => super::market_seller::dataset(c, ui),
        MarketCommand::Listing(c) => super::market_seller::listing(c, ui),
        MarketCommand::Order(c) => super::market_orders::run(c, ui),
        MarketCommand::Subscribe(purchase) => super::market_subscriptions::subscribe(purchase, ui),
        MarketCommand::Subscription(c) => super::market_subscriptions::run(c, ui),
        MarketCommand::Disclosure(c) => super::market_disclosures::run(c, ui),
        MarketCommand::Login { session, web } => {
            if web {
                super::market_account::login_web(&session, ui)
            } else {
                super::market_account::login(&session, ui)
            }
        }
        MarketCommand::Search(args) => super::market_browse::search(args, ui),
        MarketCommand::Topics { session, machine } => {
            super::market_browse::topics(&session, &machine, ui)
        }
        MarketCommand::Sample(MarketSampleCommand::Get {
            server,
            listing,
            index,
            verify,
            decrypt,
            output_dir,
        }) => super::market_sample::get(
            &server,
            super::market_sample::SampleRequest {
                listing,
                index,
                verify,
                decrypt,
                output_dir,
            },
            ui,
        ),
        MarketCommand::Receipt(MarketReceiptCommand::Key { server }) => {
            super::market_browse::receipt_key(&server, ui)
        }
        MarketCommand::Link(c) => super::market_account::link(c, ui),
        MarketCommand::OperatorKey(c) => super::market_account::operator_key(c, ui),
        MarketCommand::Admin(c) => super::market_account::admin(c, ui),
    }
}

/// How the grant daemon runs its passes.
struct GrantPasses {
    /// One pass, then exit.
    once: bool,
    /// Also grant live subscriptions.
    follow: bool,
    /// Between passes.
    interval: std::time::Duration,
}

fn grant_daemon(
    server: &str,
    key_file: &Path,
    owner_key_file: &Path,
    passes: GrantPasses,
    max_file_size: usize,
    ui: Ui,
) -> CliResult {
    let GrantPasses {
        once,
        follow,
        interval,
    } = passes;
    use sealstream_client::grants::GrantDaemon;
    use std::sync::atomic::Ordering;

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
    let granter = match follow {
        true => Some(sealstream_client::live::SubscriptionGranter::new(
            crate::keyfile::x25519_secret(owner_key_file, "owner recipient key")?,
        )),
        false => None,
    };
    let mut daemon = GrantDaemon::new(client, owner_key, max_file_size);
    let stop = super::stop::on_signals()?;
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
        let pass = pass.and_then(|_| match &granter {
            Some(g) => g.run_once(daemon.client_mut(), |sub, result| match result {
                Ok(g) => {
                    ui.say(format!(
                        "{sub}: chunks {} granted ({} new, {} already held)",
                        index_ranges(&g.indexes),
                        g.stored,
                        g.already
                    ));
                    if ui.json {
                        let mut m = Map::new();
                        m.insert("subscriptionId".into(), Value::String(sub.to_string()));
                        m.insert(
                            "stored".into(),
                            Value::Number(
                                Number::from_int_text(&g.stored.to_string()).expect("an integer"),
                            ),
                        );
                        ui.json_out(&Value::Object(m));
                    }
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("{sub}: not granted: {e}");
                }
            }),
            None => Ok(0),
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
        let mut until = std::time::Instant::now() + interval;
        // After a pass with failures, the pairs that failed are still
        // pending: the interval then, not a long poll that would answer at
        // once.
        if let Some(g) = granter.as_ref().filter(|_| failed == 0) {
            // Long polls (a few seconds each, to heed a signal) until a pair
            // is pending (the next pass at once) or the interval ends.
            while !stop.load(Ordering::Relaxed) {
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left < std::time::Duration::from_secs(1) {
                    break;
                }
                match g.wait_for_pending(daemon.client_mut(), left.min(LONG_POLL)) {
                    Ok(true) => {
                        until = std::time::Instant::now();
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        eprintln!("grant daemon: waiting for chunks: {e}");
                        break;
                    }
                }
            }
        }
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

/// Longest long poll of the pending lists by `grant-daemon --follow`
/// between two looks at the stop flag.
const LONG_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// `0-3, 5, 7-9`: indexes in order, runs joined.
fn index_ranges(indexes: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indexes.len() {
        let start = indexes[i];
        let mut end = start;
        while i + 1 < indexes.len() && indexes[i + 1] == end + 1 {
            i += 1;
            end += 1;
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(", ")
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
