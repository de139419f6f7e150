//! `sealstream market serve`: the server's flags into its configuration,
//! then the server until SIGTERM or SIGINT. Built with the `market` feature
//! only (an edge build has no server).

use std::path::Path;

use sealstream_market::server::{self, Config};

use crate::cli::{LogFormat, MarketServeArgs};
use crate::error::{CliError, CliResult};
use crate::ui::Ui;

/// `market serve`.
/// `--price-ladder` as hundredths: each mantissa at least 1 and below 10,
/// at most two decimals, ascending, the first 1.
fn ladder(values: &[String]) -> CliResult<Vec<u32>> {
    let mut out: Vec<u32> = Vec::with_capacity(values.len());
    for v in values {
        let hundredths = sealstream_api::payments::parse_units(v, 2)
            .and_then(|u| u.parse::<u32>().ok())
            .filter(|h| (100..1000).contains(h))
            .ok_or_else(|| {
                CliError::input(format!(
                    "--price-ladder: {v:?} is not a mantissa from 1 to below 10 with at most two decimals"
                ))
            })?;
        if out.last().is_some_and(|last| *last >= hundredths) {
            return Err(CliError::input("--price-ladder: the mantissas must ascend"));
        }
        out.push(hundredths);
    }
    if out.first().is_some_and(|first| *first != 100) {
        return Err(CliError::input(
            "--price-ladder: the first mantissa must be 1",
        ));
    }
    Ok(out)
}

pub fn run(args: MarketServeArgs, ui: Ui) -> CliResult {
    let MarketServeArgs {
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
        escrow,
        escrow_arbiter_key_file,
        escrow_sweep,
        invoice_dispute_window,
        invoice_arbitration_period,
        confirmations,
        payment_poll,
        subscription_sweep,
        min_subscription_period,
        receipt_log_epoch,
        public_stats_delay,
        public_stats_interval,
        price_ladder,
        grant_batch_window,
        payment_skew,
        max_claims_per_order,
        unknown_claim_ttl,
        claims_per_sweep,
        receipt_key_file,
        operator_kek_file,
        nonce_key_file,
        replica_id,
        log_format,
        limits,
    } = args;
    let replica = sealstream_market::lease::replica_id_of(replica_id)
        .map_err(|e| CliError::input(format!("--replica-id: {e}")))?;
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
        subscription_sweep: seconds(subscription_sweep),
        min_subscription_period: seconds(min_subscription_period),
        receipt_log_epoch: seconds(receipt_log_epoch),
        public_stats_delay: seconds(public_stats_delay),
        public_stats_interval: seconds(public_stats_interval),
        price_ladder: ladder(&price_ladder)?,
        grant_batch_window: seconds(grant_batch_window),
        payment_skew: std::time::Duration::from_secs(payment_skew),
        max_claims_per_order: usize::try_from(max_claims_per_order).unwrap_or(usize::MAX),
        unknown_claim_ttl: std::time::Duration::from_secs(unknown_claim_ttl),
        claims_per_sweep: usize::try_from(claims_per_sweep).unwrap_or(usize::MAX),
        receipt_key_file,
        grant_limit: max_grant_bytes,
        operator_kek_file,
        nonce_key_file,
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
        proof_rate_per_client: sealstream_market::limits::Rate::per_second(
            limits.payment_proof_rate,
            limits.payment_proof_burst,
        ),
        max_feeds_per_principal: usize::try_from(limits.max_feeds_per_principal)
            .unwrap_or(usize::MAX),
        feed_keep_alive: seconds(limits.feed_keep_alive),
        escrow_contracts: escrow.into_iter().collect(),
        escrow_arbiter_key_file,
        escrow_sweep: seconds(escrow_sweep),
        invoice_dispute_window: seconds(invoice_dispute_window),
        invoice_arbitration_period: seconds(invoice_arbitration_period),
        replica_id: Some(replica.clone()),
        ..Config::default()
    };
    serve(config, replica.into(), log_format, ui)
}

pub(super) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::input(format!("cannot start the async runtime: {e}")))
}

fn serve(config: Config, replica: std::sync::Arc<str>, log_format: LogFormat, ui: Ui) -> CliResult {
    // Everything the server creates is its own: the database and its WAL,
    // ciphertext objects, keys, temporary files (issue 14, item 14).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    init_log(log_format, ui, replica)?;
    runtime()?.block_on(async move {
        server::serve(config, shutdown_signal())
            .await
            .map_err(|e| CliError::input(e.to_string()))
    })
}

/// The log on stderr, in `format`, at the level RUST_LOG names or else at
/// info (warn with -q), every line passed through
/// [`sealstream_market::logs::Redacting`] and named with the replica's id
/// ([`sealstream_market::logs::Labelled`]).
fn init_log(format: LogFormat, ui: Ui, replica: std::sync::Arc<str>) -> CliResult {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    let level = if ui.quiet {
        LevelFilter::WARN
    } else {
        LevelFilter::INFO
    };
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env()
        .map_err(|e| CliError::input(format!("RUST_LOG: {e}")))?;
    let json = matches!(format, LogFormat::Json);
    let writer = move || sealstream_market::logs::Labelled {
        replica: replica.clone(),
        json,
        inner: sealstream_market::logs::Redacting(std::io::stderr()),
    };
    // Colours only for a person at a terminal: log files and collectors get
    // plain text (NO_COLOR honoured).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_env_filter(filter);
    // Ignore a second initialisation (only possible in tests).
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    Ok(())
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
