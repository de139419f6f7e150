//! `sealstream agent init`: a Data Event Map from a machine's keys, its
//! sources and destinations (see `sealstream_agent::config::init`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sealstream_agent::config::init::{
    absolute, check_rules_topics, jsonl_topics, plan_sources, relative, DestinationPlan,
    MachineKeys, MapPlan, SourceKind, SourceSpec,
};
use sealstream_agent::config::{ConfigError, DataEventMap};
use sealstream_agent::mcap_source::McapSource;
use sealstream_core::json::{self, Map, Value};

use crate::cli::AgentInitArgs;
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

/// Most topics taken from one JSON lines file without naming them.
const MAX_FOUND_TOPICS: usize = 100;

/// The topics of a file or bag `spec` names none of.
fn topics_of(spec: &SourceSpec) -> Result<Vec<String>, String> {
    let (path, found) = match spec {
        SourceSpec::Jsonl { path, .. } if path == "-" => {
            return Err(
                "--source jsonl:-: standard input cannot be read ahead; name its topics: jsonl:-@TOPIC[,TOPIC…]"
                    .into(),
            )
        }
        SourceSpec::Jsonl { path, .. } => {
            let file = std::fs::File::open(path).map_err(|e| {
                format!("--source jsonl:{path}: cannot read ({e}); to name the topics instead: jsonl:{path}@TOPIC[,TOPIC…]")
            })?;
            let found = jsonl_topics(std::io::BufReader::new(file), MAX_FOUND_TOPICS)
                .map_err(|e| format!("--source jsonl:{path}: {e}"))?;
            (format!("jsonl:{path}"), found)
        }
        SourceSpec::Mcap { path, .. } => {
            let bag = McapSource::open(path).map_err(|e| {
                format!("--source mcap:{path}: {e}; to name the topics instead: mcap:{path}@TOPIC[,TOPIC…]")
            })?;
            (format!("mcap:{path}"), bag.topics())
        }
        SourceSpec::Mqtt { filter, .. } => return Ok(vec![filter.clone()]),
        SourceSpec::Ros2 { topic, .. } => return Ok(vec![topic.clone()]),
    };
    if found.is_empty() {
        return Err(format!(
            "--source {path}: no topics found; name them: {path}@TOPIC[,TOPIC…]"
        ));
    }
    Ok(found)
}

/// Write `bytes` to `path` atomically, readable by its user only (0600);
/// an existing file is replaced only when `replace`.
fn write_private(path: &Path, bytes: &[u8], replace: bool) -> CliResult {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".data-event-map.")
        .tempfile_in(dir)
        .map_err(|e| CliError::input(at(dir, format!("cannot write ({e})"))))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| CliError::input(at(path, e)))?;
    let persisted = if replace {
        tmp.persist(path).map(drop)
    } else {
        tmp.persist_noclobber(path).map(drop)
    };
    persisted.map_err(|e| match e.error.kind() {
        std::io::ErrorKind::AlreadyExists => {
            CliError::input(at(path, "already exists; pass --force to replace it"))
        }
        _ => CliError::input(at(path, format!("cannot write ({})", e.error))),
    })
}

pub fn run(args: AgentInitArgs, ui: Ui) -> CliResult {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::input(format!("the working directory: {e}")))?;
    let output = absolute(&args.output, &cwd);
    let base = output
        .parent()
        .map_or_else(|| cwd.clone(), Path::to_path_buf);
    if output.exists() && !args.force {
        return Err(CliError::input(at(
            &args.output,
            "already exists; pass --force to replace it",
        )));
    }
    // Paths as the map writes them: relative to its directory.
    let written = |p: &Path| -> String {
        relative(&absolute(p, &cwd), &base)
            .to_string_lossy()
            .into_owned()
    };

    let keys_json = args.keys.join("keys.json");
    let bytes = std::fs::read(&keys_json).map_err(|e| {
        CliError::input(at(
            &keys_json,
            format!("cannot read ({e}); make a machine's keys with `sealstream keys generate --output-dir DIR`"),
        ))
    })?;
    let value = json::parse(&bytes).map_err(|e| CliError::input(at(&keys_json, e)))?;
    let keys =
        MachineKeys::from_keys_json(&value).map_err(|e| CliError::input(at(&keys_json, e)))?;
    let field_key = args.keys.join("field.aes256.key");

    let sources = plan_sources(&args.sources, topics_of, |p| written(Path::new(p)))
        .map_err(CliError::input)?;
    let rules = args
        .rules
        .iter()
        .map(|p| super::package::read_rules(p))
        .collect::<CliResult<Vec<_>>>()?;
    check_rules_topics(&rules, &sources).map_err(CliError::input)?;
    let mut destinations: Vec<DestinationPlan> = Vec::new();
    destinations.extend(args.market.iter().cloned().map(DestinationPlan::Market));
    destinations.extend(
        args.directory
            .iter()
            .map(|d| DestinationPlan::Directory(written(d))),
    );
    destinations.extend(
        args.object_store
            .iter()
            .cloned()
            .map(DestinationPlan::ObjectStore),
    );
    if destinations.is_empty() {
        return Err(CliError::input(
            "name at least one destination: --market URL, --directory DIR or --object-store URL",
        ));
    }
    let plan = MapPlan {
        keys,
        keys_json: written(&keys_json),
        signing_key_file: written(&args.keys.join("machine.secp256k1.sk")),
        chain_key_file: written(&args.keys.join("chain.ed25519.sk")),
        field_key_file: field_key.is_file().then(|| written(&field_key)),
        spool_dir: args
            .spool
            .as_deref()
            .map_or_else(|| "spool".to_string(), written),
        sources,
        destinations,
        rules,
    };
    let text = plan.render();
    // What is written must pass `agent check`: the same validation, key
    // files included, from the map's directory (made first, so that paths
    // through `..` resolve).
    std::fs::create_dir_all(&base)
        .map_err(|e| CliError::input(at(&base, format!("cannot create ({e})"))))?;
    let map = match DataEventMap::parse(&text, &base) {
        Ok(map) => map,
        Err(ConfigError::Invalid { problems }) => {
            for p in &problems {
                eprintln!("{}: {p}", args.output.display());
            }
            return Err(CliError::input(format!(
                "{}: the Data Event Map made from {} does not validate ({} problem{}); nothing was written",
                args.output.display(),
                args.keys.display(),
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            )));
        }
        Err(e) => return Err(CliError::input(e.to_string())),
    };
    write_private(&args.output, text.as_bytes(), args.force)?;
    report(&args.output, &plan, &map, ui);
    Ok(())
}

fn report(output: &Path, plan: &MapPlan, map: &DataEventMap, ui: Ui) {
    let kind = |k: &SourceKind| match k {
        SourceKind::Jsonl(p) => ("jsonl", p.clone()),
        SourceKind::Mcap(p) => ("mcap", p.clone()),
        SourceKind::Mqtt(u) => ("mqtt", u.clone()),
        SourceKind::Ros2(endpoint) => ("ros2", endpoint.clone()),
    };
    let destination = |d: &DestinationPlan| match d {
        DestinationPlan::Directory(p) => ("directory", p.clone()),
        DestinationPlan::ObjectStore(u) => ("object-store", u.clone()),
        DestinationPlan::Market(u) => ("market", u.clone()),
    };
    if ui.json {
        let mut m = Map::new();
        m.insert("output".into(), output.display().to_string().into());
        m.insert("machineDid".into(), map.machine.did.to_string().into());
        let sources = plan
            .sources
            .iter()
            .map(|s| {
                let (k, location) = kind(&s.kind);
                let mut o = Map::new();
                o.insert("name".into(), s.name.as_str().into());
                o.insert("type".into(), k.into());
                o.insert("location".into(), location.into());
                o.insert(
                    "topics".into(),
                    Value::Array(s.topics.iter().map(|t| t.name.as_str().into()).collect()),
                );
                Value::Object(o)
            })
            .collect();
        m.insert("sources".into(), Value::Array(sources));
        let destinations = plan
            .destinations
            .iter()
            .map(|d| {
                let (k, location) = destination(d);
                let mut o = Map::new();
                o.insert("type".into(), k.into());
                o.insert("location".into(), location.into());
                Value::Object(o)
            })
            .collect();
        m.insert("destinations".into(), Value::Array(destinations));
        ui.json_out(&Value::Object(m));
        return;
    }
    ui.say(format!("Wrote {} (valid)", output.display()));
    ui.say(format!("  Machine:      {}", map.machine.did));
    for s in &plan.sources {
        let (k, location) = kind(&s.kind);
        let topics: Vec<&str> = s.topics.iter().map(|t| t.name.as_str()).collect();
        ui.say(format!(
            "  Source:       {} ({k} {location}): {}",
            s.name,
            topics.join(", ")
        ));
    }
    for d in &plan.destinations {
        let (k, location) = destination(d);
        ui.say(format!("  Destination:  {k} {location}"));
    }
    ui.say(format!(
        "Next: sealstream agent run --config {}",
        PathBuf::from(output).display()
    ));
}
