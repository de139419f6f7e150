//! `sealstream agent check`.

use sealstream_agent::config::{ConfigError, DataEventMap, Destination, Source};
use sealstream_agent::pipeline::Agent;
use sealstream_core::json::{Map, Value};

use crate::cli::AgentCommand;
use crate::error::{CliError, CliResult};
use crate::ui::Ui;

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

fn run_agent(config: &std::path::Path, ui: Ui) -> CliResult {
    let map = load(config)?;
    let mut agent = Agent::open(map).map_err(|e| CliError::input(e.to_string()))?;
    let quiet = ui.quiet;
    let mut log = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let reports = agent
        .run_to_end(&mut log)
        .map_err(|e| CliError::input(e.to_string()))?;
    if ui.json {
        let topics = reports
            .iter()
            .map(|r| {
                let mut o = Map::new();
                o.insert("topic".into(), r.name.as_str().into());
                o.insert("packages".into(), Value::from(r.packages));
                o.insert("chunks".into(), Value::from(r.chunks));
                o.insert("skipped".into(), Value::from(r.skipped));
                o.insert(
                    "chainDir".into(),
                    agent
                        .chain_dir(&r.name)
                        .map(|p| p.display().to_string())
                        .into(),
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
                "{}: {} packages in {} chunks, {} skipped",
                r.name, r.packages, r.chunks, r.skipped
            ));
        }
    }
    Ok(())
}

pub fn run(cmd: AgentCommand, ui: Ui) -> CliResult {
    match cmd {
        AgentCommand::Run { config, json } => run_agent(&config, Ui { json, ..ui }),
        AgentCommand::Check { config, json } => {
            let ui = Ui { json, ..ui };
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
                    let kind = match source {
                        Source::Mcap { .. } => "mcap",
                        Source::Mqtt { .. } => "mqtt",
                        Source::Jsonl { .. } => "jsonl",
                    };
                    ui.say(format!("  Source:       {name} ({kind})"));
                }
                for t in &map.topics {
                    ui.say(format!(
                        "  Topic:        {} from {} ({} rules)",
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
                    };
                    ui.say(format!("  Destination:  {text}"));
                }
            }
            Ok(())
        }
    }
}
