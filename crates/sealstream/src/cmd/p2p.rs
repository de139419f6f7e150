//! `sealstream p2p …`: the reference's peer-to-peer delivery (`serve
//! --chunk-dir`, `fetch`) and sealstream's live feeds (`serve --feed`,
//! `subscribe`, `relay`, `bootstrap`, `status`), on sealstream-p2p.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealstream_api::subscriptions::{FeedState, FeedStatus, SubscriptionState};
use sealstream_client::follow_state::FollowFormat;
use sealstream_client::live::Position as FollowPosition;
use sealstream_core::chunk::{ChunkSink, SealedChunk};
use sealstream_core::json::{Map, Value};
use sealstream_core::utc;
use sealstream_files::layout::{write_atomic, DirectorySink};
use sealstream_p2p::live::buyer::{self, Event, Position, SubscribeConfig};
use sealstream_p2p::live::market::MarketEntitlements;
use sealstream_p2p::live::relay::{Relay, RelayConfig};
use sealstream_p2p::live::seller::{FeedServer, FeedServerConfig, ServerEvent};
use sealstream_p2p::node::{self, FetchConfig, Identity, NodeError, ServeConfig, Server};

use super::follow::{state_line, Output};
use crate::cli::{
    FollowFormatArg, MarketSession, P2pBootstrapArgs, P2pCommand, P2pFetchArgs, P2pRelayArgs,
    P2pServeArgs, P2pStatusArgs, P2pSubscribeArgs,
};
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

pub fn run(command: P2pCommand, ui: Ui) -> CliResult {
    match command {
        P2pCommand::Serve(args) if !args.feed.is_empty() => serve_feeds(args, ui),
        P2pCommand::Serve(args) => serve(args, ui),
        P2pCommand::Fetch(args) => fetch(args, ui),
        P2pCommand::Bootstrap(args) => bootstrap(args, ui),
        P2pCommand::Subscribe(args) => subscribe(args, ui),
        P2pCommand::Relay(args) => relay(args, ui),
        P2pCommand::Status(args) => status(args, ui),
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
    // clap requires these without --feed.
    let required = |v: Option<String>, flag: &str| {
        v.ok_or_else(|| CliError::input(format!("{flag} is required without --feed")))
    };
    let chunk_dir = args
        .chunk_dir
        .clone()
        .ok_or_else(|| CliError::input("--chunk-dir is required without --feed"))?;
    let purchase_id = required(args.purchase_id, "--purchase-id")?;
    if !chunk_dir.is_dir() {
        return Err(CliError::input(at(
            &chunk_dir,
            "--chunk-dir: no such directory",
        )));
    }
    let identity = identity(args.identity_file.as_deref())?;
    let server = Server::bind(
        ServeConfig {
            chunk_dir: chunk_dir.clone(),
            purchase_id: purchase_id.clone(),
            session_id: required(args.session_id, "--session-id")?,
            buyer_id: required(args.buyer_id, "--buyer-id")?,
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
        chunk_dir.display(),
        server.peer_id(),
        purchase_id,
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

/// A peer's text as it may be shown: control characters (a forged log
/// line, terminal escapes) replaced by `?`, at most 500 characters.
fn printable(text: &str) -> String {
    text.chars()
        .take(500)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Write `bytes` to `path` atomically, readable by its user only (it names
/// the subscriptions being served).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (dir, _) = sealstream_files::layout::dir_and_name(path)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".p2p-status.")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

/// Print `line` on stdout at once (an address or URL a script reads), and
/// write it to `file` if given.
fn announce(line: &str, file: Option<&Path>, flag: &str) -> CliResult {
    if let Some(file) = file {
        write_atomic(file, format!("{line}\n").as_bytes())
            .map_err(|e| CliError::input(at(file, format!("{flag}: {e}"))))?;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    Ok(())
}

/// Wait for SIGTERM or SIGINT, calling `tick` every second.
fn until_stopped(mut tick: impl FnMut()) -> CliResult {
    let stop = super::stop::on_signals()?;
    loop {
        tick();
        if super::stop::sleep_unless_stopped(Duration::from_secs(1), &stop) {
            return Ok(());
        }
    }
}

fn bootstrap(args: P2pBootstrapArgs, ui: Ui) -> CliResult {
    let identity = identity(args.identity_file.as_deref())?;
    let node = sealstream_p2p::live::bootstrap(&identity, &args.listen, &args.bootstrap)
        .map_err(node_error)?;
    announce(&node.addr(), args.addr_file.as_deref(), "--addr-file")?;
    ui.say(format!("DHT bootstrap node at {}", node.addr()));
    until_stopped(|| {})?;
    let (peers, table) = node.peers();
    ui.say(format!(
        "Stopped ({peers} peers connected, {table} in the routing table)"
    ));
    Ok(())
}

/// Split `NAME=DIR`.
fn feed_arg(text: &str) -> CliResult<(String, PathBuf)> {
    match text.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !dir.is_empty() => {
            Ok((name.to_string(), PathBuf::from(dir)))
        }
        _ => Err(CliError::input(format!(
            "--feed: expected NAME=DIR (such as /gps/fix=out/gps_fix), got {text:?}"
        ))),
    }
}

fn status_json(s: &sealstream_p2p::live::seller::Status) -> Value {
    let mut o = Map::new();
    o.insert("addr".into(), Value::from(s.addr.as_str()));
    o.insert("peers".into(), Value::from(s.peers as u64));
    o.insert("routingTable".into(), Value::from(s.routing_table as u64));
    o.insert(
        "feeds".into(),
        Value::Array(
            s.feeds
                .iter()
                .map(|(name, len)| {
                    let mut f = Map::new();
                    f.insert("name".into(), Value::from(name.as_str()));
                    f.insert("length".into(), Value::from(*len));
                    Value::Object(f)
                })
                .collect(),
        ),
    );
    o.insert(
        "sessions".into(),
        Value::Array(
            s.sessions
                .iter()
                .map(|x| {
                    let mut f = Map::new();
                    f.insert("peer".into(), Value::from(x.peer.as_str()));
                    f.insert("subscription".into(), Value::from(x.subscription.as_str()));
                    f.insert("feed".into(), Value::from(x.feed.as_str()));
                    f.insert("state".into(), Value::from(x.state.as_str()));
                    f.insert("next".into(), Value::from(x.next));
                    f.insert("keys".into(), Value::from(x.keys));
                    Value::Object(f)
                })
                .collect(),
        ),
    );
    o.insert("updatedAt".into(), Value::from(utc::now().as_str()));
    Value::Object(o)
}

fn serve_feeds(args: P2pServeArgs, ui: Ui) -> CliResult {
    let feeds = args
        .feed
        .iter()
        .map(|f| feed_arg(f))
        .collect::<CliResult<Vec<_>>>()?;
    let machine = args
        .machine_did
        .clone()
        .ok_or_else(|| CliError::input("--machine-did is required with --feed"))?;
    let owner_file = args
        .owner_key_file
        .as_deref()
        .ok_or_else(|| CliError::input("--owner-private-key-file is required with --feed"))?;
    let owner = crate::keyfile::x25519_secret(owner_file, "owner recipient key")?;
    let key_file = args.key_file.clone().ok_or_else(|| {
        CliError::input("--key-file is required with --feed (the seller signs in to the market)")
    })?;
    let session = MarketSession {
        server: args.server.clone(),
        key_file,
    };
    // Checked (and the key read) once; the entitlements' clients are made
    // from the same parts.
    super::market_session::client(&session, "a seller (p2p serve)")?;
    let seller_key =
        crate::keyfile::secp256k1_secret(&session.key_file, "sign-in key")?.to_hex_secret();
    let server_url = session.server.clone();
    let make_client = move || {
        sealstream_client::market::MarketClient::new(
            &server_url,
            sealstream_core::keys::MachineSigningKey::from_hex(&seller_key, "sign-in key")
                .expect("a valid key round-trips"),
        )
        .with_statement("Sign in to the sealstream market as a seller (p2p serve).")
    };
    // With --mirror, each feed's directory follows the market's chain.
    let mut mirrors = Vec::new();
    if args.mirror {
        for (name, dir) in &feeds {
            let report = Arc::new(|m: String| eprintln!("{m}"));
            mirrors.push(
                sealstream_p2p::live::market::mirror(
                    super::market_session::client(&session, "a seller (p2p serve --mirror)")?,
                    &machine,
                    name,
                    dir,
                    report,
                )
                .map_err(|e| CliError::input(at(dir, format!("--mirror: {e}"))))?,
            );
        }
    }
    let identity = identity(args.identity_file.as_deref())?;
    let quiet = ui.quiet;
    let server = FeedServer::start(
        FeedServerConfig {
            feeds,
            listen: args.listen.clone(),
            bootstrap: args.bootstrap.clone(),
            dht: args.dht,
            revalidate: Duration::from_secs(args.revalidate.max(1)),
            max_sessions: args.max_sessions,
            granting: sealstream_core::chunk::recipient_type::OWNER,
        },
        &identity,
        owner,
        Arc::new(MarketEntitlements::new(make_client, &machine)),
        Arc::new(move |e| {
            if quiet {
                return;
            }
            // Session events go to stderr as they happen.
            match e {
                ServerEvent::Accepted {
                    peer,
                    subscription,
                    feed,
                } => {
                    eprintln!("{subscription}: buyer {peer} follows {feed}")
                }
                ServerEvent::Invalid {
                    peer,
                    subscription,
                    reason,
                } => {
                    eprintln!("{subscription}: invalid for buyer {peer}: {reason}")
                }
                ServerEvent::Closed {
                    peer,
                    subscription,
                    keys,
                } => {
                    eprintln!("{subscription}: session of buyer {peer} closed after {keys} keys")
                }
            }
        }),
    )
    .map_err(node_error)?;
    announce(&server.addr(), args.url_file.as_deref(), "--addr-file")?;
    if !args.bootstrap.is_empty() && !server.announced() {
        eprintln!(
            "the feeds' DHT announcement reached no peer yet; it is repeated after every bootstrap"
        );
    }
    ui.say(format!(
        "serving {} feed(s) as peer {} at {}",
        args.feed.len(),
        server.peer_id(),
        server.addr()
    ));
    let status_file = args.status_file.clone();
    let mut failed = None;
    until_stopped(|| {
        if let Some(file) = &status_file {
            let text =
                sealstream_core::json::write::to_python_pretty(&status_json(&server.status()));
            if let Err(e) = write_private(file, text.as_bytes()) {
                failed.get_or_insert(e.to_string());
            }
        }
    })?;
    if let (Some(e), Some(file)) = (failed, &status_file) {
        eprintln!("{}: --status-file: {e}", file.display());
    }
    drop(mirrors);
    ui.say("Stopped");
    Ok(())
}

fn status(args: P2pStatusArgs, ui: Ui) -> CliResult {
    let bytes =
        std::fs::read(&args.status_file).map_err(|e| CliError::input(at(&args.status_file, e)))?;
    let v = sealstream_core::json::parse(&bytes)
        .map_err(|e| CliError::input(at(&args.status_file, format!("not a status file ({e})"))))?;
    if ui.json {
        ui.json_out(&v);
        return Ok(());
    }
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut out = format!(
        "{} (updated {}): {} peers connected, {} in the DHT routing table\n",
        text(&v, "addr"),
        text(&v, "updatedAt"),
        num(&v, "peers"),
        num(&v, "routingTable")
    );
    for f in v
        .get("feeds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "feed {}: {} chunks\n",
            text(f, "name"),
            num(f, "length")
        ));
    }
    let sessions = v
        .get("sessions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if sessions.is_empty() {
        out.push_str("no buyer sessions\n");
    }
    for s in &sessions {
        out.push_str(&format!(
            "{} on {}: buyer {} ({}), next chunk {}, {} keys sent\n",
            text(s, "subscription"),
            text(s, "feed"),
            text(s, "peer"),
            text(s, "state"),
            num(s, "next"),
            num(s, "keys")
        ));
    }
    print!("{out}");
    Ok(())
}

fn relay(args: P2pRelayArgs, ui: Ui) -> CliResult {
    if !args.chunk_dir.is_dir() {
        return Err(CliError::input(at(
            &args.chunk_dir,
            "--chunk-dir: no such directory",
        )));
    }
    let identity = identity(args.identity_file.as_deref())?;
    let relay = Relay::start(
        RelayConfig {
            seller: args.seller.clone(),
            feed: args.feed.clone(),
            chunk_dir: args.chunk_dir.clone(),
            listen: args.listen.clone(),
            bootstrap: args.bootstrap.clone(),
        },
        &identity,
    )
    .map_err(node_error)?;
    announce(&relay.addr(), args.addr_file.as_deref(), "--addr-file")?;
    if !relay.announced() {
        eprintln!(
            "the feed's DHT announcement reached no peer yet; it is repeated after every bootstrap"
        );
    }
    ui.say(format!(
        "relaying feed {} of {} from {} at {}",
        args.feed,
        args.seller,
        args.chunk_dir.display(),
        relay.addr()
    ));
    until_stopped(|| {})?;
    ui.say(format!("Stopped ({} blocks served)", relay.served()));
    Ok(())
}

/// The state line of a `valid` or an end, as `follow` prints it.
fn feed_state(
    v: Option<&sealstream_p2p::feed::Valid>,
    ended: Option<&buyer::Ended>,
) -> Option<FeedState> {
    let (status, state) = match (v, ended) {
        (Some(v), _) => (FeedStatus::Valid, v.state.as_str()),
        (None, Some(e)) => (FeedStatus::Invalid, e.state.as_deref().unwrap_or("")),
        (None, None) => return None,
    };
    let state = SubscriptionState::parse(state)?;
    Some(FeedState {
        status,
        state,
        paid_through: v.and_then(|v| v.paid_through.as_deref().map(printable)),
        grace_until: v.and_then(|v| v.grace_until.as_deref().map(printable)),
        seconds_left: v.and_then(|v| v.seconds_left),
        access_ends: v.and_then(|v| v.access_ends.as_deref().map(printable)),
        reason: ended.map(|e| printable(&e.reason)),
        remedy: None,
        is_final: state.is_final(),
        cutoff: None,
    })
}

fn subscribe(args: P2pSubscribeArgs, ui: Ui) -> CliResult {
    let format = match args.format {
        FollowFormatArg::Raw => FollowFormat::Raw,
        FollowFormatArg::Jsonl => FollowFormat::Jsonl,
    };
    let secrets = args
        .buyer_key_file
        .iter()
        .map(|f| crate::keyfile::x25519_secret(f, "buyer recipient key"))
        .collect::<CliResult<Vec<_>>>()?;
    let identity = identity(args.identity_file.as_deref())?;
    let entitlement = args
        .subscription
        .clone()
        .or_else(|| args.order.clone())
        .ok_or_else(|| CliError::input("give --subscription or --order"))?;
    let out = Output::open(&args.output, &entitlement, format)?;
    if let Some(p) = &out.last {
        ui.say(format!("Resuming after chunk {}", p.index));
    }
    let after = out.last.as_ref().map(|p| Position {
        index: p.index,
        chunk_id: p.chunk_id.clone(),
    });
    let mut keep = match &args.keep_chunks {
        Some(dir) => Some(DirectorySink::new(dir).map_err(|e| CliError::input(e.to_string()))?),
        None => None,
    };
    let config = SubscribeConfig {
        seller: args.seller.clone(),
        feed: args.feed.clone(),
        subscription: entitlement.clone(),
        buyer_keys: secrets,
        bootstrap: args.bootstrap.clone(),
        seller_addr: args.seller_addr.clone(),
        after,
        relays: args.relays,
        reconnect_for: Duration::from_secs(args.reconnect_for.max(1)),
    };
    let sub = entitlement;
    // The output is written under this lock: a signal waits for the chunk
    // being written, and no other starts after it.
    let out = Arc::new(Mutex::new(out));
    let stop = super::stop::on_signals()?;
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let (out, stop, sub) = (out.clone(), stop.clone(), sub.clone());
        std::thread::spawn(move || {
            let result = buyer::subscribe(&config, &identity, &mut |e| {
                match e {
                    Event::Providers { seller, others } => {
                        if !seller {
                            eprintln!(
                                "{sub}: the seller has not announced the feed; looking it up"
                            );
                        }
                        for p in others {
                            eprintln!(
                                "{sub}: provider {p} is not the seller: {}",
                                if config.relays {
                                    "used as a relay (its blocks are checked)"
                                } else {
                                    "ignored"
                                }
                            );
                        }
                    }
                    Event::Valid(v) => match feed_state(Some(v), None) {
                        Some(s) => eprintln!("{}", state_line(&sub, &s)),
                        None => eprintln!("{sub}: valid ({})", printable(&v.state)),
                    },
                    Event::Chunk {
                        envelope,
                        ciphertext,
                        plaintext,
                        from,
                    } => {
                        let mut out = out.lock().expect("output lock");
                        if stop.load(Ordering::Relaxed) {
                            return Err("stopped".into());
                        }
                        if let Some(sink) = &mut keep {
                            sink.put(SealedChunk {
                                envelope: envelope.clone(),
                                ciphertext: ciphertext.to_vec(),
                            })
                            .map_err(|e| format!("--keep-chunks: {e}"))?;
                        }
                        let last = FollowPosition {
                            index: envelope.index,
                            chunk_id: envelope.chunk_id.clone(),
                        };
                        out.append(&last, envelope, plaintext)
                            .map_err(|e| e.to_string())?;
                        if !quiet_of(&ui) {
                            eprintln!(
                                "chunk {}: {} bytes (from {from})",
                                envelope.index,
                                plaintext.len()
                            );
                        }
                    }
                    Event::RelayRejected {
                        peer,
                        index,
                        problem,
                    } => {
                        eprintln!("{sub}: relay {peer} rejected at chunk {index}: {problem}; fetching from another peer")
                    }
                    Event::Disconnected { problem } => {
                        eprintln!("{sub}: {}; reconnecting", printable(&problem))
                    }
                }
                Ok(())
            });
            let _ = tx.send(result);
        });
    }
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(ended)) => {
                match feed_state(None, Some(&ended)) {
                    Some(s) if !sub.starts_with("ord_") => eprintln!("{}", state_line(&sub, &s)),
                    _ => eprintln!("{sub}: {}", printable(&ended.reason)),
                }
                // Over (a final subscription, a delivered order) or refused.
                let over = match ended.state.as_deref() {
                    Some("paid" | "granted") => sub.starts_with("ord_"),
                    Some(state) => SubscriptionState::parse(state).is_some_and(|s| s.is_final()),
                    None => false,
                };
                if !over {
                    return Err(CliError::integrity(format!(
                        "{sub}: the seller refused: {}",
                        printable(&ended.reason)
                    )));
                }
                ui.say(format!(
                    "{sub}: the seller ended the feed; {} written",
                    match &ended.last {
                        Some(p) => format!("chunks up to {}", p.index),
                        None => "no chunk".into(),
                    }
                ));
                return Ok(());
            }
            Ok(Err(NodeError::Sink(m))) if m == "stopped" => break,
            Ok(Err(NodeError::Sink(m))) => return Err(CliError::integrity(format!("{sub}: {m}"))),
            Ok(Err(e)) => return Err(node_error(e)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(CliError::integrity(format!("{sub}: the follower stopped")))
            }
        }
    }
    // Wait for a chunk being written.
    drop(out.lock());
    ui.say("Stopped");
    Ok(())
}

fn quiet_of(ui: &Ui) -> bool {
    ui.quiet || ui.json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_text_is_shown_without_control_characters() {
        assert_eq!(printable("revoked\n\u{1b}[31mok"), "revoked??[31mok");
        assert_eq!(printable(&"x".repeat(900)).len(), 500);
        assert_eq!(printable("plain: café"), "plain: café");
    }
}
