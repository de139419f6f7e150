//! Reading a marked YAML tree while collecting every problem with its line
//! and field path.

use std::time::Duration;

use super::yaml::{Kind, Node};
use super::Problem;

/// Collects problems while the document is read.
#[derive(Default)]
pub(crate) struct Checker {
    pub problems: Vec<Problem>,
}

impl Checker {
    /// Record a problem.
    pub fn report(&mut self, line: usize, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Read `node` as a mapping whose keys must be among `known`.
    /// `line` is where "required" problems of missing keys point.
    pub fn map<'a>(
        &mut self,
        node: &'a Node,
        path: &str,
        line: usize,
        known: &[&str],
    ) -> Option<MapReader<'a>> {
        let Kind::Map(entries) = &node.kind else {
            self.report(
                node.line,
                path,
                format!("expected a mapping, got {}", node.describe()),
            );
            return None;
        };
        let mut kept: Vec<(&'a str, &'a Node, &'a Node)> = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let name = match &key.kind {
                Kind::Scalar { text, .. } => text.as_str(),
                _ => {
                    self.report(
                        key.line,
                        path,
                        format!("expected a field name, got {}", key.describe()),
                    );
                    continue;
                }
            };
            let at = join(path, name);
            if let Some((_, first, _)) = kept.iter().find(|(k, _, _)| *k == name) {
                self.report(
                    key.line,
                    &at,
                    format!("duplicate field (first at line {})", first.line),
                );
                continue;
            }
            if !known.is_empty() && !known.contains(&name) {
                let message = match suggest(name, known) {
                    Some(s) => format!("unknown field (did you mean {s}?)"),
                    None => format!("unknown field (expected one of: {})", known.join(", ")),
                };
                self.report(key.line, &at, message);
                continue;
            }
            kept.push((name, key, value));
        }
        Some(MapReader {
            path: path.to_string(),
            line,
            entries: kept,
        })
    }

    /// Read `node` as a list.
    pub fn list<'a>(&mut self, node: &'a Node, path: &str) -> Option<&'a [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            _ => {
                self.report(
                    node.line,
                    path,
                    format!("expected a list, got {}", node.describe()),
                );
                None
            }
        }
    }

    /// Read a non-empty string without control characters.
    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.kind {
            Kind::Scalar { text, .. } => {
                if text.trim().is_empty() {
                    self.report(node.line, path, "must not be empty");
                    None
                } else if text.chars().any(char::is_control) {
                    self.report(node.line, path, "must not contain control characters");
                    None
                } else {
                    Some(text.clone())
                }
            }
            _ => {
                self.report(
                    node.line,
                    path,
                    format!("expected a string, got {}", node.describe()),
                );
                None
            }
        }
    }

    /// Read one of the `choices`, suggesting the nearest on a typo.
    pub fn choice<'c>(&mut self, node: &Node, path: &str, choices: &[&'c str]) -> Option<&'c str> {
        let text = self.string(node, path)?;
        if let Some(found) = choices.iter().find(|c| **c == text) {
            return Some(found);
        }
        let message = match suggest(&text, choices) {
            Some(s) => format!("expected one of {} (did you mean {s}?)", choices.join(", ")),
            None => format!("expected one of {}", choices.join(", ")),
        };
        self.report(node.line, path, message);
        None
    }

    /// Read an integer greater than zero.
    pub fn positive_integer(&mut self, node: &Node, path: &str) -> Option<u64> {
        let value = match &node.kind {
            Kind::Scalar { text, plain: true } => parse_digits(text),
            _ => None,
        };
        self.greater_than_zero(
            node,
            path,
            value,
            |v| *v == 0,
            || format!("expected a positive integer, got {}", node.describe()),
        )
    }

    /// Read a size: integer bytes, or a number with a unit (`256KiB`).
    pub fn size(&mut self, node: &Node, path: &str) -> Option<u64> {
        let parsed = match &node.kind {
            Kind::Scalar { text, .. } => parse_size(text),
            _ => None,
        };
        self.greater_than_zero(
            node,
            path,
            parsed,
            |v| *v == 0,
            || {
                "expected a size: bytes as an integer, or an integer with a unit \
             B, KiB, MiB, GiB, KB, MB, GB (e.g. 256KiB)"
                    .into()
            },
        )
    }

    /// Read a duration: an integer with a unit `ms`, `s`, `m` or `h`.
    pub fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let parsed = match &node.kind {
            Kind::Scalar { text, .. } => parse_duration(text),
            _ => None,
        };
        self.greater_than_zero(node, path, parsed, Duration::is_zero, || {
            "expected a duration: an integer with a unit ms, s, m or h (e.g. 500ms, 5s, 2m)".into()
        })
    }

    /// `parsed` when it is there and not zero; else reported at `node`:
    /// "must be greater than 0", or `expected()` when nothing parsed.
    fn greater_than_zero<T>(
        &mut self,
        node: &Node,
        path: &str,
        parsed: Option<T>,
        is_zero: impl Fn(&T) -> bool,
        expected: impl FnOnce() -> String,
    ) -> Option<T> {
        match parsed {
            Some(v) if is_zero(&v) => {
                self.report(node.line, path, "must be greater than 0");
                None
            }
            Some(v) => Some(v),
            None => {
                self.report(node.line, path, expected());
                None
            }
        }
    }
}

/// The fields of one mapping, unknown and duplicate keys already reported.
pub(crate) struct MapReader<'a> {
    pub path: String,
    pub line: usize,
    entries: Vec<(&'a str, &'a Node, &'a Node)>,
}

impl<'a> MapReader<'a> {
    /// The path of field `name`.
    pub fn at(&self, name: &str) -> String {
        join(&self.path, name)
    }

    /// An optional field; a null value counts as absent.
    pub fn get(&self, name: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == name)
            .map(|(_, _, v)| *v)
            .filter(|v| !v.is_null())
    }

    /// A required field; reports when it is missing or empty.
    pub fn required(&self, checker: &mut Checker, name: &str) -> Option<&'a Node> {
        match self.entries.iter().find(|(k, _, _)| *k == name) {
            None => {
                checker.report(self.line, &self.at(name), "required");
                None
            }
            Some((_, key, value)) if value.is_null() => {
                checker.report(key.line, &self.at(name), "required, got nothing");
                None
            }
            Some((_, _, value)) => Some(value),
        }
    }

    /// The line of the key `name`, or of the mapping if it is absent.
    pub fn key_line(&self, name: &str) -> usize {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == name)
            .map_or(self.line, |(_, key, _)| key.line)
    }

    /// Every field, in document order.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, &'a Node, &'a Node)> + '_ {
        self.entries.iter().copied()
    }
}

/// `path.name`, or `path["name"]` when `name` is not a plain identifier.
pub(crate) fn join(path: &str, name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => name.to_string(),
        (_, false) => format!("{path}[{name:?}]"),
        (false, true) => format!("{path}.{name}"),
    }
}

/// `path[index]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `1024`, `256KiB`, `1 MiB`, `10MB`; `None` if malformed or too large.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number = parse_digits(&text[..split])?;
    let factor: u64 = match text[split..].trim_start() {
        "" | "B" => 1,
        "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// `500ms`, `5s`, `2m`, `1h`; `None` if malformed or too large.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let number = parse_digits(&text[..split])?;
    let millis: u64 = match text[split..].trim_start() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60 * 1000,
        "h" => 60 * 60 * 1000,
        _ => return None,
    };
    number.checked_mul(millis).map(Duration::from_millis)
}

/// The closest of `candidates` to a misspelt `name`, if one is close enough.
pub(crate) fn suggest<'c>(name: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let fold = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let folded = fold(name);
    if let Some(same) = candidates.iter().find(|c| fold(c) == folded) {
        return Some(same);
    }
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .filter(|(d, c)| *d <= 2 && *d * 3 <= c.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("256KiB"), Some(262_144));
        assert_eq!(parse_size("1 GiB"), Some(1 << 30));
        assert_eq!(parse_size("10MB"), Some(10_000_000));
        assert_eq!(parse_size("10mb"), None);
        assert_eq!(parse_size("1.5MiB"), None);
        assert_eq!(parse_size("99999999999999999999GiB"), None);
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5d"), None);
    }

    #[test]
    fn suggestions() {
        let known = ["maxBytes", "maxMessages", "maxAge"];
        assert_eq!(suggest("maxByte", &known), Some("maxBytes"));
        assert_eq!(suggest("max_bytes", &known), Some("maxBytes"));
        assert_eq!(suggest("MaxAge", &known), Some("maxAge"));
        assert_eq!(suggest("window", &known), None);
        assert_eq!(join("sources", "bag"), "sources.bag");
        assert_eq!(join("sources", "my bag"), "sources[\"my bag\"]");
    }
}
