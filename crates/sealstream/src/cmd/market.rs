//! `sealstream market serve|audit verify`: flags in, sealstream-market out.

use std::path::Path;

use sealstream_agent::market::{
    upload_chain_dir, ChainUpload, ClientError, MarketClient, UploadError,
};
use sealstream_core::json::{Map, Number, Value};
use sealstream_market::audit::{self, AuditError};
use sealstream_market::server::{self, Config};
use sealstream_market::store::Store;

use crate::cli::{MarketAuditCommand, MarketCommand, MarketDbArgs};
use crate::error::{CliError, CliResult};
use crate::ui::Ui;

pub fn run(command: MarketCommand, ui: Ui) -> CliResult {
    match command {
        MarketCommand::Serve {
            listen,
            db,
            object_store,
            admins,
            public_domain,
            max_body_bytes,
            max_chunk_bytes,
        } => {
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
                public_domain,
            };
            serve(config, ui)
        }
        MarketCommand::Audit(MarketAuditCommand::Verify {
            db,
            json,
            head,
            events,
        }) => {
            let published = match (head, events) {
                (Some(head), Some(events)) => Some(audit::AuditReport { events, head }),
                _ => None,
            };
            verify(db, published, Ui { json, ..ui })
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

fn runtime() -> CliResult<tokio::runtime::Runtime> {
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
fn sqlite_file(url: &str) -> Option<&Path> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| Path::new(path))
}

fn verify(db: MarketDbArgs, published: Option<audit::AuditReport>, ui: Ui) -> CliResult {
    let url = server::database_url(&db.data_dir, db.database_url.as_deref());
    if let Some(file) = sqlite_file(&url) {
        if !file.is_file() {
            return Err(CliError::input(format!(
                "{}: no market database here",
                file.display()
            )));
        }
    }
    let result = runtime()?.block_on(async {
        let store = Store::open(&url)
            .await
            .map_err(|e| CliError::input(e.to_string()))?;
        let result = audit::verify_against(&store, published.as_ref()).await;
        store.close().await;
        Ok::<_, CliError>(result)
    })?;
    match result {
        Ok(report) => {
            if ui.json {
                let mut m = Map::new();
                m.insert("intact".into(), Value::Bool(true));
                m.insert(
                    "events".into(),
                    Value::Number(
                        Number::from_int_text(&report.events.to_string())
                            .expect("a u64 is an integer"),
                    ),
                );
                m.insert("head".into(), Value::String(report.head.clone()));
                ui.json_out(&Value::Object(m));
            }
            ui.say(format!(
                "audit log intact: {} event{}, head {}",
                report.events,
                if report.events == 1 { "" } else { "s" },
                report.head
            ));
            Ok(())
        }
        Err(AuditError::Store(e)) => Err(CliError::input(e.to_string())),
        Err(e @ (AuditError::Broken { .. } | AuditError::Truncated { .. })) => {
            let message = format!("audit log not intact: {e}");
            if ui.json {
                let mut m = Map::new();
                m.insert("intact".into(), Value::Bool(false));
                m.insert("error".into(), Value::String(e.to_string()));
                ui.json_out(&Value::Object(m));
            }
            Err(CliError::integrity(message))
        }
    }
}
