//! The README's commands, exercised: the "first hour" section runs as written,
//! top to bottom, and every other `sealstream …` command the README shows
//! names a real subcommand and real flags.
//!
//! - The `sh` blocks of the section "The first hour" are joined into one bash
//!   script (`set -euo pipefail`) and run in an empty directory in which
//!   `demo/` and `docs/` of the repository are linked, with the `sealstream`
//!   Cargo built for these tests first on `PATH`. A line starting with `cargo `
//!   (building and installing the binary) is the one thing not run: the test
//!   provides the binary. The market's port, 8080 in the text, becomes a free
//!   port, and background jobs (the server) are killed when the script ends.
//! - Every other fenced block is a synopsis (placeholders such as `URL`, `HEX`
//!   stand for values): each command in it is checked against
//!   `sealstream <subcommand> --help` — the subcommand path exists and every
//!   `--flag` shown is one of its flags. Lines naming `scripts/…` must name an
//!   executable script of the repository (`scripts/demo` is run by
//!   `tests/demo.rs`, `scripts/test` is what CI runs).

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::*;
use sealstream_testkit::binary::sealstream_binary;

/// A fenced block of the README.
#[derive(Debug)]
struct Block {
    /// The info string (`sh`, `text`, …).
    lang: String,
    /// The `## ` section it is in.
    section: String,
    /// Line number (1-based) of its first line.
    line: usize,
    /// Its lines.
    lines: Vec<String>,
}

fn readme_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut section = String::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(block) = open.as_mut() {
            if line.trim_start().starts_with("```") {
                blocks.push(open.take().unwrap());
            } else {
                block.lines.push(line.to_string());
            }
            continue;
        }
        if let Some(rest) = line.trim_start().strip_prefix("```") {
            open = Some(Block {
                lang: rest.trim().to_string(),
                section: section.clone(),
                line: i + 2,
                lines: Vec::new(),
            });
        } else if let Some(title) = line.strip_prefix("## ") {
            section = title.trim().to_string();
        }
    }
    assert!(open.is_none(), "README.md: a fenced block is not closed");
    blocks
}

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).unwrap()
}

/// Logical lines: comments removed, `\` continuations joined, with the line
/// number each starts at.
fn logical_lines(block: &Block) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = block.line;
    for (k, raw) in block.lines.iter().enumerate() {
        let line = strip_comment(raw);
        if current.is_empty() {
            start = block.line + k;
        }
        let trimmed = line.trim_end();
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            if !current.trim().is_empty() {
                out.push((start, current.trim().to_string()));
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push((start, current.trim().to_string()));
    }
    out
}

/// The line without a shell comment (a `#` at the start or after a space,
/// outside quotes).
fn strip_comment(line: &str) -> String {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev.is_whitespace() => return line[..i].to_string(),
            None => {}
        }
        prev = c;
    }
    line.to_string()
}

/// One `sealstream …` command of a synopsis: its subcommand words and flags.
#[derive(Debug, Default)]
struct Shown {
    words: Vec<String>,
    flags: Vec<String>,
    in_words: bool,
}

/// The `sealstream` commands of a logical line (a `$(sealstream …)` inside
/// another is a command of its own).
fn commands_of(line: &str) -> Vec<Shown> {
    let mut done = Vec::new();
    let mut stack: Vec<Shown> = Vec::new();
    let mut previous = "";
    for token in line.split_whitespace() {
        // `cargo build -p sealstream …` names the package, not the command.
        if token == "sealstream" && matches!(previous, "-p" | "--package") {
            previous = token;
            continue;
        }
        previous = token;
        let opens = token.contains("$(");
        let mut t = token
            .trim_start_matches('"')
            .trim_start_matches("$(")
            .trim_start_matches('[');
        let closes = t.matches(')').count();
        t = t.trim_end_matches(['"', ')', ']', ';', '…']);
        if t == "sealstream" {
            stack.push(Shown {
                in_words: true,
                ..Shown::default()
            });
        } else if let Some(cmd) = stack.last_mut() {
            if t.starts_with("--") {
                cmd.in_words = false;
                let flag = t.split(['=', '|', '[']).next().unwrap().to_string();
                cmd.flags.push(flag);
            } else if cmd.in_words
                && !opens
                && t.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && t.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '|')
            {
                cmd.words.push(t.to_string());
            } else {
                cmd.in_words = false;
            }
        }
        for _ in 0..closes {
            if stack.len() > 1 {
                done.push(stack.pop().unwrap());
            }
        }
    }
    done.extend(stack);
    done
}

/// The long flags `--help` of this subcommand path lists (or why it failed).
fn help_flags(
    cache: &mut HashMap<Vec<String>, Result<Vec<String>, String>>,
    words: &[String],
) -> Result<Vec<String>, String> {
    cache
        .entry(words.to_vec())
        .or_insert_with(|| {
            let out = Command::new(sealstream_binary())
                .args(words)
                .arg("--help")
                .output()
                .unwrap();
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            let text = String::from_utf8_lossy(&out.stdout);
            Ok(text
                .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
                .filter(|w| w.starts_with("--"))
                .map(|w| w.split(['=', '<']).next().unwrap().to_string())
                .collect())
        })
        .clone()
}

#[test]
fn every_command_the_readme_shows_is_a_real_command_with_real_flags() {
    let text = readme();
    let mut cache = HashMap::new();
    let mut problems = Vec::new();
    let mut checked = 0;
    for block in readme_blocks(&text) {
        if block.section == FIRST_HOUR {
            continue;
        }
        for (line_no, line) in logical_lines(&block) {
            for script in line
                .split_whitespace()
                .filter(|t| t.starts_with("scripts/"))
            {
                let path = repo_root().join(script);
                let executable = std::fs::metadata(&path)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false);
                if !executable {
                    problems.push(format!(
                        "README.md:{line_no}: {script} is not an executable script"
                    ));
                }
                checked += 1;
            }
            for shown in commands_of(&line) {
                // `publish|withdraw` shows two subcommands at once.
                let mut paths: Vec<Vec<String>> = vec![Vec::new()];
                for word in &shown.words {
                    let alternatives: Vec<&str> = word.split('|').collect();
                    paths = paths
                        .iter()
                        .flat_map(|p| {
                            alternatives.iter().map(move |a| {
                                let mut p = p.clone();
                                p.push(a.to_string());
                                p
                            })
                        })
                        .collect();
                }
                for path in paths {
                    // Trailing words that are not subcommands are arguments
                    // (`keys show keys/…` has none; `DID ROLE` are upper case).
                    let mut words = path.clone();
                    let flags = loop {
                        match help_flags(&mut cache, &words) {
                            Ok(flags) => break Some(flags),
                            Err(_) if !words.is_empty() => {
                                words.pop();
                            }
                            Err(e) => {
                                problems.push(format!("README.md:{line_no}: {line}: {e}"));
                                break None;
                            }
                        }
                    };
                    let Some(flags) = flags else { continue };
                    if words.is_empty() && !path.is_empty() {
                        problems.push(format!(
                            "README.md:{line_no}: `sealstream {}` is not a command",
                            path.join(" ")
                        ));
                        continue;
                    }
                    for flag in &shown.flags {
                        if !flags.contains(flag) {
                            problems.push(format!(
                                "README.md:{line_no}: `sealstream {}` has no flag {flag}",
                                words.join(" ")
                            ));
                        }
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked > 40, "only {checked} commands found in README.md");
}

/// The README's tutorial section.
const FIRST_HOUR: &str = "The first hour";

#[test]
fn the_first_hour_runs_as_written() {
    let text = readme();
    let blocks: Vec<Block> = readme_blocks(&text)
        .into_iter()
        .filter(|b| b.section == FIRST_HOUR && b.lang == "sh")
        .collect();
    assert!(
        blocks.len() >= 5,
        "README.md has no section \"{FIRST_HOUR}\" with its sh blocks"
    );
    let port = sealstream_testkit::free_port().to_string();
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    for block in &blocks {
        script.push_str(&format!("# README.md:{}\n", block.line));
        for line in &block.lines {
            if line.trim_start().starts_with("cargo ") {
                continue;
            }
            script.push_str(&line.replace("8080", &port));
            script.push('\n');
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for linked in ["demo", "docs"] {
        std::os::unix::fs::symlink(repo_root().join(linked), dir.join(linked)).unwrap();
    }
    let bin = dir.join(".bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(sealstream_binary(), bin.join("sealstream")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::fs::write(dir.join("first-hour.sh"), &script).unwrap();
    let out = Command::new("bash")
        .arg("first-hour.sh")
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("SEALSTREAM_SERVER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the first hour failed ({}):\n--- stdout\n{}\n--- stderr\n{}\n--- script\n{script}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn commands_are_read_with_their_nested_commands_apart() {
    let shown = commands_of(
        "sealstream consume --download-url \"$(sealstream market order link --key-file b.sk ORD)\" --buyer-id X [--json]",
    );
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[0].words, ["market", "order", "link"]);
    assert_eq!(shown[0].flags, ["--key-file"]);
    assert_eq!(shown[1].words, ["consume"]);
    assert_eq!(shown[1].flags, ["--download-url", "--buyer-id", "--json"]);
    let shown = commands_of("sealstream market listing publish|withdraw --server URL LISTING_ID");
    assert_eq!(shown[0].words, ["market", "listing", "publish|withdraw"]);
    assert!(commands_of("cargo build --release -p sealstream --features agent").is_empty());
    assert_eq!(strip_comment("a b # c \"#d\""), "a b ");
    assert_eq!(strip_comment("a \"#d\" e"), "a \"#d\" e");
}
