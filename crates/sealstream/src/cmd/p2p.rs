//! `sealstream p2p serve` and `sealstream p2p fetch`: the reference's
//! peer-to-peer delivery (sealstream-p2p's node).

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use sealstream_core::json::{Map, Value};
use sealstream_files::layout::write_atomic;
use sealstream_p2p::node::{self, FetchConfig, Identity, NodeError, ServeConfig, Server};

use crate::cli::{P2pCommand, P2pFetchArgs, P2pServeArgs};
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

pub fn run(command: P2pCommand, ui: Ui) -> CliResult {
    match command {
        P2pCommand::Serve(args) => serve(args, ui),
        P2pCommand::Fetch(args) => fetch(args, ui),
    }
}

/// Bad settings and files are input (1); the peer, the network and
/// chunks that do not verify are integrity (2).
fn node_error(e: NodeError) -> CliError {
    match e {
        NodeError::Config {
            field: "url",
            problem,
        } => CliError::input(format!("URL: {problem}")),
        NodeError::Config { field, problem } => {
            CliError::input(format!("--{}: {problem}", flag(field)))
        }
        e @ (NodeError::Identity { .. } | NodeError::Chain(_) | NodeError::Output(_)) => {
            CliError::input(e.to_string())
        }
        e => CliError::integrity(e.to_string()),
    }
}

/// The flag of a setting the node names.
fn flag(field: &str) -> String {
    field.replace(' ', "-")
}

fn identity(file: Option<&Path>) -> CliResult<Identity> {
    match file {
        Some(path) => Identity::load_or_create(path).map_err(node_error),
        None => Ok(Identity::generate()),
    }
}

fn serve(args: P2pServeArgs, ui: Ui) -> CliResult {
    if !args.chunk_dir.is_dir() {
        return Err(CliError::input(at(
            &args.chunk_dir,
            "--chunk-dir: no such directory",
        )));
    }
    let identity = identity(args.identity_file.as_deref())?;
    let server = Server::bind(
        ServeConfig {
            chunk_dir: args.chunk_dir.clone(),
            purchase_id: args.purchase_id.clone(),
            session_id: args.session_id,
            buyer_id: args.buyer_id,
            listen: args.listen,
        },
        &identity,
    )
    .map_err(node_error)?;
    let url = server.url().to_string();
    if let Some(file) = &args.url_file {
        write_atomic(file, format!("{url}\n").as_bytes())
            .map_err(|e| CliError::input(at(file, format!("--url-file: {e}"))))?;
    }
    if !ui.json {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{url}").and_then(|()| out.flush());
    }
    ui.say(format!(
        "serving {} as peer {} (purchase {}); waiting up to {} s for the buyer",
        args.chunk_dir.display(),
        server.peer_id(),
        args.purchase_id,
        args.timeout
    ));
    let delivered = server
        .deliver(Duration::from_secs(args.timeout), &mut |r| {
            // Refusals are worth seeing even with -q.
            eprintln!("refused peer {}: {} ({})", r.peer, r.code, r.reason)
        })
        .map_err(node_error)?;
    if ui.json {
        let mut o = Map::new();
        o.insert("url".into(), Value::from(url.as_str()));
        o.insert("peer".into(), Value::from(delivered.peer.as_str()));
        o.insert("chunks".into(), Value::from(delivered.chunks));
        o.insert("bytes".into(), Value::from(delivered.bytes));
        ui.json_out(&Value::Object(o));
    }
    ui.say(format!(
        "delivered {} chunks ({} bytes of frames) to peer {}",
        delivered.chunks, delivered.bytes, delivered.peer
    ));
    Ok(())
}

fn fetch(args: P2pFetchArgs, ui: Ui) -> CliResult {
    let identity = identity(args.identity_file.as_deref())?;
    let fetched = node::fetch(
        &FetchConfig {
            url: args.url,
            purchase_id: args.purchase_id,
            session_id: args.session_id,
            buyer_id: args.buyer_id,
            output_dir: args.output_dir.clone(),
            max_chunks: args.max_chunks,
            connect_timeout: Duration::from_secs(args.timeout),
        },
        &identity,
    )
    .map_err(node_error)?;
    if ui.json {
        let mut o = Map::new();
        o.insert("peer".into(), Value::from(fetched.peer.as_str()));
        o.insert("chunks".into(), Value::from(fetched.chunks));
        o.insert(
            "ciphertextBytes".into(),
            Value::from(fetched.ciphertext_bytes),
        );
        o.insert(
            "outputDir".into(),
            Value::from(args.output_dir.display().to_string().as_str()),
        );
        ui.json_out(&Value::Object(o));
    }
    ui.say(format!(
        "fetched {} chunks ({} bytes of ciphertext) from peer {} into {}",
        fetched.chunks,
        fetched.ciphertext_bytes,
        fetched.peer,
        args.output_dir.display()
    ));
    Ok(())
}
