//! `sealstream agent run|check|status`.

use std::sync::Arc;

use sealstream_agent::config::{ConfigError, DataEventMap, Destination, Source};
use sealstream_agent::pipeline::{Agent, RunOptions};
use sealstream_core::json::{Map, Value};

use crate::cli::AgentCommand;
use crate::error::{CliError, CliResult};
use crate::ui::Ui;

/// A status value as text: `-` for none, a string as it is, anything else
/// as compact JSON.
fn status_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => sealstream_core::json::write::to_python_compact(other),
    }
}

/// The values at `keys` of `o`, each as [`status_text`].
fn texts<const N: usize>(o: &Map, keys: [&str; N]) -> [String; N] {
    keys.map(|k| status_text(o.get(k)))
}

/// The objects of the array at `key` of `o` (none when it is not an array).
fn objects<'a>(o: &'a Map, key: &str) -> impl Iterator<Item = &'a Map> {
    o.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

fn load(config: &std::path::Path) -> CliResult<DataEventMap> {
    match DataEventMap::load(config) {
        Ok(m) => Ok(m),
        Err(ConfigError::Invalid { problems }) => {
            // One line per problem, each naming the file, line and field.
            for p in &problems {
                eprintln!("{}: {p}", config.display());
            }
            let n = problems.len();
            Err(CliError::input(format!(
                "{}: {n} problem{} in the Data Event Map",
                config.display(),
                if n == 1 { "" } else { "s" }
            )))
        }
        Err(e) => Err(CliError::input(e.to_string())),
    }
}

fn run_agent(config: &std::path::Path, no_wait: bool, ui: Ui) -> CliResult {
    let map = load(config)?;
    let mut agent = Agent::open(map).map_err(|e| CliError::input(e.to_string()))?;
    let stop = super::stop::on_signals()?;
    let quiet = ui.quiet;
    let log: sealstream_agent::pipeline::Log = Arc::new(move |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    });
    let options = RunOptions {
        stop,
        wait_for_delivery: !no_wait,
        ..RunOptions::default()
    };
    let reports = agent
        .run(&options, log)
        .map_err(|e| CliError::input(e.to_string()))?;
    // Destinations that refused for good were logged when they did; the
    // run then failed for them (exit 2), after serving the others.
    let stopped = agent.outbox().stopped();
    if ui.json {
        let topics = reports
            .iter()
            .map(|r| {
                let mut o = Map::new();
                o.insert("topic".into(), r.name.as_str().into());
                o.insert("packages".into(), Value::from(r.packages));
                o.insert("chunks".into(), Value::from(r.chunks));
                o.insert("skipped".into(), Value::from(r.skipped));
                o.insert("gaps".into(), Value::from(r.gaps));
                o.insert("missing".into(), Value::from(r.missing));
                // The topic's directory at every destination.
                o.insert(
                    "topicDir".into(),
                    sealstream_agent::pipeline::topic_dir_name(&r.name).into(),
                );
                Value::Object(o)
            })
            .collect();
        let mut m = Map::new();
        m.insert(
            "lastSequence".into(),
            reports
                .first()
                .and_then(|r| r.last_sequence)
                .map(Value::from)
                .into(),
        );
        m.insert("topics".into(), Value::Array(topics));
        ui.json_out(&Value::Object(m));
    } else {
        for r in &reports {
            ui.say(format!(
                "{}: {} packages in {} chunks, {} skipped{}",
                r.name,
                r.packages,
                r.chunks,
                r.skipped,
                gaps_text(r.gaps, r.missing)
            ));
        }
    }
    match stopped.as_slice() {
        [] => Ok(()),
        [(destination, why)] => Err(CliError::integrity(format!(
            "destination {destination} refused for good: {why}; what it lacks stays in the spool for the next run"
        ))),
        many => Err(CliError::integrity(format!(
            "{} destinations refused for good: {}; what they lack stays in the spool for the next run",
            many.len(),
            many.iter()
                .map(|(d, why)| format!("{d} ({why})"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub fn run(cmd: AgentCommand, ui: Ui) -> CliResult {
    match cmd {
        AgentCommand::Run { config, no_wait } => run_agent(&config, no_wait, ui),
        AgentCommand::Status { config } => status(&config, ui),
        AgentCommand::Init(args) => super::agent_init::run(args, ui),
        AgentCommand::Check { config } => {
            let map = load(&config)?;
            let mut topics = Vec::new();
            for t in &map.topics {
                let mut o = Map::new();
                o.insert("name".into(), t.name.as_str().into());
                o.insert("source".into(), t.source.as_str().into());
                o.insert("rules".into(), Value::from(t.rules.rules.len() as u64));
                topics.push(Value::Object(o));
            }
            if ui.json {
                let mut m = Map::new();
                m.insert("valid".into(), true.into());
                m.insert("machineDid".into(), map.machine.did.to_string().into());
                m.insert("sources".into(), Value::from(map.sources.len() as u64));
                m.insert("topics".into(), Value::Array(topics));
                m.insert(
                    "destinations".into(),
                    Value::from(map.destinations.len() as u64),
                );
                ui.json_out(&Value::Object(m));
            } else {
                ui.say(format!("{}: valid", config.display()));
                ui.say(format!("  Machine:      {}", map.machine.did));
                for (name, source) in &map.sources {
                    let detail = match source {
                        Source::Ros2(r) => format!(
                            ", zenoh, domain {}, node {}, connect {}, listen {}, {} message types",
                            r.domain_id,
                            r.node,
                            list_or_dash(&r.connect),
                            list_or_dash(&r.listen),
                            r.library.types().count()
                        ),
                        _ => String::new(),
                    };
                    ui.say(format!(
                        "  Source:       {name} ({}{detail})",
                        source.kind()
                    ));
                }
                for t in &map.topics {
                    let ros_type = t
                        .ros2
                        .as_ref()
                        .map(|r| format!(", type {}", r.ros_type.as_deref().unwrap_or("any")))
                        .unwrap_or_default();
                    ui.say(format!(
                        "  Topic:        {} from {} ({} rules{ros_type})",
                        t.name,
                        t.source,
                        t.rules.rules.len()
                    ));
                }
                ui.say(format!(
                    "  Chunking:     {} bytes, {} messages, {:?}",
                    map.chunking.max_bytes, map.chunking.max_messages, map.chunking.max_age
                ));
                ui.say(format!(
                    "  Spool:        {} (cap {} bytes)",
                    map.spool.dir.display(),
                    map.spool.max_bytes
                ));
                for d in &map.destinations {
                    let text = match d {
                        Destination::Directory { path, .. } => {
                            format!("directory {}", path.display())
                        }
                        Destination::ObjectStore { url, .. } => format!("object store {url}"),
                        Destination::Market { url, .. } => format!("market {url}"),
                        Destination::P2p(p) => {
                            format!("p2p feeds from {} (market {})", p.path.display(), p.market)
                        }
                    };
                    ui.say(format!("  Destination:  {text}"));
                }
            }
            Ok(())
        }
    }
}

fn status(config: &std::path::Path, ui: Ui) -> CliResult {
    let map = load(config)?;
    let v = sealstream_agent::status::collect(&map).map_err(CliError::input)?;
    if ui.json {
        ui.json_out(&v);
        return Ok(());
    }
    let o = v.as_object().expect("status is an object");
    ui.say(format!(
        "Agent:          {} ({})",
        map.machine.did,
        if o.get("running") == Some(&Value::Bool(true)) {
            "running"
        } else {
            "not running"
        }
    ));
    let [sequence] = texts(o, ["lastSequence"]);
    ui.say(format!("Last sequence:  {sequence}"));
    if let Some(sp) = o.get("spool").and_then(Value::as_object) {
        let [bytes, max, when_full, journal, dir] =
            texts(sp, ["bytes", "maxBytes", "whenFull", "journalBytes", "dir"]);
        ui.say(format!(
            "Spool:          {bytes} bytes of {max} ({when_full}), journal {journal} bytes, in {dir}"
        ));
    }
    if let Some(live) = o.get("liveThisRun").and_then(Value::as_object) {
        let [received, dropped] = texts(live, ["received", "droppedAtQueue"]);
        ui.say(format!(
            "Live ROS 2:     {received} messages received, {dropped} dropped at the queue (this run; drops are sealed as gaps)"
        ));
    }
    for t in objects(o, "topics") {
        let [topic, packages, chunks, skipped] =
            texts(t, ["topic", "packages", "chunks", "skipped"]);
        let count = |k: &str| t.get(k).and_then(Value::as_number).and_then(|n| n.as_u64());
        let gaps = gaps_text(count("gaps").unwrap_or(0), count("missing").unwrap_or(0));
        let delivered: Vec<String> = t
            .get("deliveredChunks")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(d, n)| format!("{} to {d}", status_text(Some(n))))
            .collect();
        let delivered = if delivered.is_empty() {
            "-".to_string()
        } else {
            delivered.join(", ")
        };
        ui.say(format!(
            "Topic {topic}: {packages} packages in {chunks} chunks, {skipped} skipped{gaps}; delivered {delivered}"
        ));
    }
    for d in objects(o, "destinations") {
        let [name, last, failures, error] = texts(
            d,
            ["destination", "lastDeliveredAt", "failures", "lastError"],
        );
        let health = match d.get("ok") {
            _ if d.get("stopped") == Some(&Value::Bool(true)) => {
                format!("stopped, refused for good: {error}")
            }
            Some(Value::Bool(true)) => "ok".to_string(),
            Some(Value::Bool(false)) => format!("failing ({failures} attempts): {error}"),
            _ => "not tried yet".to_string(),
        };
        ui.say(format!(
            "Destination {name}: {health}; last delivery {last}"
        ));
    }
    Ok(())
}

/// `, N gaps (M messages missing)`, or nothing without gaps.
fn gaps_text(gaps: u64, missing: u64) -> String {
    match gaps {
        0 => String::new(),
        1 => format!(", 1 gap ({missing} messages missing)"),
        n => format!(", {n} gaps ({missing} messages missing)"),
    }
}

/// `a, b` or `-` for none.
fn list_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}
