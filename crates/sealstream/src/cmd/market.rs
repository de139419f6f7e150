//! `sealstream market serve|audit verify`: flags in, sealstream-market out.

use std::path::Path;

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
        MarketCommand::Audit(MarketAuditCommand::Verify { db, json }) => {
            verify(db, Ui { json, ..ui })
        }
    }
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

fn verify(db: MarketDbArgs, ui: Ui) -> CliResult {
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
        let result = audit::verify(&store).await;
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
        Err(e @ AuditError::Broken { .. }) => {
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
