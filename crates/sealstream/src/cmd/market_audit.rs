//! `sealstream market audit verify|anchor|export`: the audit log checked as a
//! chain and against the newest signed head (database, head file, anchor),
//! and written out as JSON lines.

use std::path::{Path, PathBuf};

use sealstream_api::audit::SignedAuditHead;
use sealstream_core::json::{Map, Number, Value};
use sealstream_core::keys::{ReceiptPublicKey, ReceiptSigningKey};
use sealstream_market::audit::{self, signed, AuditError, AuditReport};
use sealstream_market::server;
use sealstream_market::store::Store;

use super::market_serve::{runtime, sqlite_file};
use crate::cli::{AuditLogArgs, AuditOutputArgs, MarketDbArgs, MarketServerKeyArgs};
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

/// The market key: `--server-key`, else the receipt key file's public half
/// (with the secret, when readable, for signing).
struct Key {
    public: ReceiptPublicKey,
    secret: Option<ReceiptSigningKey>,
}

fn key(db: &MarketDbArgs, args: &MarketServerKeyArgs) -> CliResult<Option<Key>> {
    let file = args
        .receipt_key_file
        .clone()
        .unwrap_or_else(|| db.data_dir.join(server::RECEIPT_KEY_FILE));
    let secret = if file.is_file() {
        Some(
            sealstream_files::keyfile::read_key_file(&file, |text| {
                ReceiptSigningKey::from_hex(text, "receipt key")
            })
            .map_err(|e| CliError::input(at(&file, format!("receipt key: {e}"))))?,
        )
    } else if args.receipt_key_file.is_some() {
        return Err(CliError::input(at(&file, "no such file")));
    } else {
        None
    };
    let public = match &args.server_key {
        Some(hex) => {
            let given = ReceiptPublicKey::from_hex(hex, "--server-key")
                .map_err(|e| CliError::input(e.to_string()))?;
            if let Some(s) = &secret {
                if s.public_key() != given {
                    return Err(CliError::input(format!(
                        "--server-key is not the key of {}",
                        file.display()
                    )));
                }
            }
            given
        }
        None => match &secret {
            Some(s) => s.public_key(),
            None => return Ok(None),
        },
    };
    Ok(Some(Key { public, secret }))
}

/// The audit log of a command: its database (checked to exist), the
/// market's key when given or readable, and the signed head file.
struct AuditLog {
    url: String,
    key: Option<Key>,
    head_file: PathBuf,
}

impl AuditLog {
    fn open(args: &AuditLogArgs) -> CliResult<AuditLog> {
        Ok(AuditLog {
            url: open(&args.db)?,
            key: key(&args.db, &args.key)?,
            head_file: args.db.data_dir.join(signed::HEAD_FILE),
        })
    }

    /// Its store, opened (the caller closes it).
    async fn store(&self) -> CliResult<Store> {
        Store::open(&self.url)
            .await
            .map_err(|e| CliError::input(e.to_string()))
    }
}

/// A log that did not check: a store that cannot be read is bad input
/// (exit 1), a log not intact an integrity failure (exit 2).
fn not_intact(e: AuditError) -> CliError {
    match e {
        AuditError::Store(e) => CliError::input(e.to_string()),
        e => CliError::integrity(format!("audit log not intact: {e}")),
    }
}

fn open(db: &MarketDbArgs) -> CliResult<String> {
    let url = server::database_url(&db.data_dir, db.database_url.as_deref());
    if let Some(file) = sqlite_file(&url) {
        if !file.is_file() {
            return Err(CliError::input(format!(
                "{}: no market database here",
                file.display()
            )));
        }
    }
    Ok(url)
}

fn read_anchor(path: &Path) -> CliResult<SignedAuditHead> {
    let bytes = std::fs::read(path).map_err(|e| CliError::input(at(path, e)))?;
    SignedAuditHead::parse(&bytes).map_err(|e| CliError::input(at(path, e)))
}

/// The log checked as a chain, against the newest signed head with `key`
/// (or, without a key, the chain alone when nothing is signed), and
/// against `published` when given.
async fn check(
    store: &Store,
    head_file: &Path,
    key: Option<&Key>,
    anchor: Option<&SignedAuditHead>,
    published: Option<&AuditReport>,
) -> CliResult<Result<(AuditReport, Option<SignedAuditHead>), AuditError>> {
    let result = match key {
        Some(k) => signed::verify_signed(store, &k.public, Some(head_file), anchor).await,
        None => {
            let stored = signed::latest(store)
                .await
                .map_err(|e| CliError::input(e.to_string()))?;
            if stored.is_some() || anchor.is_some() || head_file.is_file() {
                return Err(CliError::input(
                    "the log has signed heads: give the market's key with --server-key HEX \
                     (GET /v1/receipts/key) or --receipt-key-file FILE to check them",
                ));
            }
            audit::verify(store).await.map(|r| (r, None))
        }
    };
    Ok(match (result, published) {
        (Ok(found), Some(p)) => audit::verify_against(store, Some(p)).await.map(|_| found),
        (other, _) => other,
    })
}

fn number(n: u64) -> Value {
    Value::Number(Number::from_int_text(&n.to_string()).expect("a u64 is an integer"))
}

/// `market audit verify`.
pub fn verify(
    args: AuditLogArgs,
    anchor: Option<PathBuf>,
    published: Option<AuditReport>,
    ui: Ui,
) -> CliResult {
    let log = AuditLog::open(&args)?;
    let anchor = anchor.as_deref().map(read_anchor).transpose()?;
    let result = runtime()?.block_on(async {
        let store = log.store().await?;
        let result = check(
            &store,
            &log.head_file,
            log.key.as_ref(),
            anchor.as_ref(),
            published.as_ref(),
        )
        .await;
        store.close().await;
        result
    })?;
    match result {
        Ok((report, signed)) => {
            if ui.json {
                let mut m = Map::new();
                m.insert("intact".into(), Value::Bool(true));
                m.insert("events".into(), number(report.events));
                m.insert("head".into(), Value::String(report.head.clone()));
                m.insert(
                    "signedEvents".into(),
                    signed.as_ref().map_or(Value::Null, |h| number(h.events)),
                );
                ui.json_out(&Value::Object(m));
            }
            let signed_note = match &signed {
                Some(h) => format!(" (signed head: {} events, {})", h.events, h.signed_at),
                None => " (no signed head)".to_string(),
            };
            ui.say(format!(
                "audit log intact: {} event{}, head {}{signed_note}",
                report.events,
                if report.events == 1 { "" } else { "s" },
                report.head
            ));
            Ok(())
        }
        Err(AuditError::Store(e)) => Err(CliError::input(e.to_string())),
        Err(e) => {
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

/// `market audit anchor`.
pub fn anchor(args: AuditOutputArgs, ui: Ui) -> CliResult {
    let log = AuditLog::open(&args.log)?;
    let key = log.key.as_ref().ok_or_else(|| {
        CliError::input(
            "give the market's key: --server-key HEX (GET /v1/receipts/key) or \
             --receipt-key-file FILE",
        )
    })?;
    let signed = runtime()?.block_on(async {
        let store = log.store().await?;
        let checked = match check(&store, &log.head_file, Some(key), None, None).await {
            Ok(checked) => checked,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        let result = match checked {
            Err(e) => Err(not_intact(e)),
            Ok((_, newest)) => match &key.secret {
                // Signed here: the anchor covers the log up to now. The head
                // file is the server's, left alone.
                Some(secret) => signed::sign_current(&store, secret, None)
                    .await
                    .map_err(|e| CliError::input(e.to_string())),
                None => newest.ok_or_else(|| {
                    CliError::input(
                        "the server has signed no head yet, and without its key file this \
                         command cannot sign one",
                    )
                }),
            },
        };
        store.close().await;
        result
    })?;
    let text = signed.to_pretty_json();
    match args.out {
        Some(path) => {
            sealstream_files::layout::write_atomic(&path, text.as_bytes())
                .map_err(|e| CliError::input(at(&path, e)))?;
            ui.say(format!(
                "signed audit head written to {}: {}",
                path.display(),
                signed.describe()
            ));
        }
        None => {
            print!("{text}");
            ui.say(format!("signed audit head: {}", signed.describe()));
        }
    }
    Ok(())
}

/// `market audit export`: the log verified as `verify` does, then its
/// events up to the verified head as JSON lines, streamed.
pub fn export(args: AuditOutputArgs, ui: Ui) -> CliResult {
    use std::io::Write;

    let log = AuditLog::open(&args.log)?;
    let out = args.out;
    let mut file = match &out {
        Some(path) => {
            let (dir, _) = sealstream_files::layout::dir_and_name(path)
                .map_err(|e| CliError::input(at(path, e)))?;
            Some(tempfile::NamedTempFile::new_in(dir).map_err(|e| CliError::input(at(path, e)))?)
        }
        None => None,
    };
    let report = runtime()?.block_on(async {
        let store = log.store().await?;
        let result = async {
            let report = check(&store, &log.head_file, log.key.as_ref(), None, None)
                .await?
                .map_err(not_intact)?
                .0;
            let stdout = std::io::stdout();
            let mut sink: Box<dyn Write> = match file.as_mut() {
                Some(f) => Box::new(std::io::BufWriter::new(f.as_file_mut())),
                None => Box::new(std::io::BufWriter::new(stdout.lock())),
            };
            let write_err = |e: std::io::Error| match &out {
                Some(path) => CliError::input(at(path, e)),
                None => CliError::input(format!("standard output: {e}")),
            };
            audit::for_each_upto(&store, report.events, |event| {
                let line = event.to_json().ok_or_else(|| {
                    CliError::integrity(format!(
                        "audit log not intact: event {}: details are not JSON",
                        event.seq
                    ))
                })?;
                let line = sealstream_core::json::canonical::rfc8785(&line).map_err(|e| {
                    CliError::integrity(format!("audit log not intact: event {}: {e}", event.seq))
                })?;
                sink.write_all(line.as_bytes())
                    .and_then(|()| sink.write_all(b"\n"))
                    .map_err(write_err)
            })
            .await
            .map_err(|e| CliError::input(e.to_string()))??;
            sink.flush().map_err(write_err)?;
            Ok(report)
        }
        .await;
        store.close().await;
        result
    })?;
    if let (Some(f), Some(path)) = (file, &out) {
        f.as_file()
            .sync_data()
            .map_err(|e| CliError::input(at(path, e)))?;
        f.persist(path)
            .map_err(|e| CliError::input(at(path, e.error)))?;
    }
    ui.say(format!(
        "audit log exported: {} event{}, head {}",
        report.events,
        if report.events == 1 { "" } else { "s" },
        report.head
    ));
    Ok(())
}
