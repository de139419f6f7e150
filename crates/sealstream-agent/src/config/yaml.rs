//! A YAML tree that remembers the line of every node, built from
//! yaml-rust2's marked events, so that every problem can name its line.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A node of the document and the line (1-based) where it starts.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub line: usize,
    pub kind: Kind,
}

/// What a node is.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// A scalar as written; `plain` is false for quoted and block scalars.
    Scalar { text: String, plain: bool },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, entries in document order (duplicates kept).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// Whether this is a YAML null (`~`, `null`, or nothing at all).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short description of what the node is, for "expected X, got Y".
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Scalar { .. } if self.is_null() => "nothing",
            Kind::Scalar { plain: false, .. } => "a string",
            Kind::Scalar { text, .. } => {
                if matches!(
                    text.as_str(),
                    "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
                ) {
                    "a boolean"
                } else if text.parse::<i64>().is_ok() {
                    "an integer"
                } else if text.parse::<f64>().is_ok() {
                    "a number"
                } else {
                    "a string"
                }
            }
        }
    }
}

/// A YAML syntax error: line (1-based), column (1-based) and what is wrong.
pub(crate) struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parse one YAML document; `Ok(None)` for an empty document.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let syntax = |e: yaml_rust2::ScanError| SyntaxError {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_string(),
    };
    parser.load(&mut builder, false).map_err(syntax)?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    let (event, mark) = parser.peek().map_err(syntax)?;
    if *event != Event::StreamEnd {
        return Err(SyntaxError {
            line: mark.line(),
            column: mark.col() + 1,
            message: "only one YAML document is allowed".into(),
        });
    }
    Ok(builder.root)
}

enum Frame {
    Seq {
        line: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

/// Nodes a document may expand to, aliases included: far more than any Data
/// Event Map needs, far less than an alias bomb (each alias copies its node).
const MAX_NODES: usize = 100_000;

fn node_count(node: &Node) -> usize {
    match &node.kind {
        Kind::Scalar { .. } => 1,
        Kind::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        Kind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| node_count(k) + node_count(v))
                .sum::<usize>()
        }
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, Node>,
    error: Option<SyntaxError>,
    nodes: usize,
}

impl Builder {
    fn push(&mut self, node: Node, anchor: usize) {
        self.nodes += 1;
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                self.push(
                    Node {
                        line,
                        kind: Kind::Scalar { text, plain },
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                line,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                line,
                anchor,
                entries: Vec::new(),
                key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        line,
                        anchor,
                        items,
                    }) => (
                        Node {
                            line,
                            kind: Kind::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        line,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            line,
                            kind: Kind::Map(entries),
                        },
                        anchor,
                    ),
                    None => return,
                };
                self.push(node, anchor);
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(_) if self.error.is_some() => {}
                Some(node) => {
                    let size = node_count(node);
                    if self.nodes + size > MAX_NODES {
                        self.error = Some(SyntaxError {
                            line,
                            column: mark.col() + 1,
                            message: format!(
                                "the document expands to more than {MAX_NODES} nodes through aliases"
                            ),
                        });
                        return;
                    }
                    let mut node = node.clone();
                    node.line = line;
                    self.nodes += size - 1;
                    self.push(node, 0);
                }
                None => {
                    if self.error.is_none() {
                        self.error = Some(SyntaxError {
                            line,
                            column: mark.col() + 1,
                            message: "alias of an unknown or unfinished anchor".into(),
                        });
                    }
                }
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_and_point_at_nodes() {
        let root = parse("a: 1\nb:\n  c: x\n  d: [1, 2]\ne: {f: g}\n")
            .ok()
            .flatten()
            .unwrap();
        let Kind::Map(entries) = &root.kind else {
            panic!()
        };
        let lines: Vec<(usize, usize)> = entries.iter().map(|(k, v)| (k.line, v.line)).collect();
        assert_eq!(lines, vec![(1, 1), (2, 3), (5, 5)]);
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let Err(e) = parse(&text) else {
            panic!("refused")
        };
        assert!(
            e.message.contains("more than 100000 nodes"),
            "{}",
            e.message
        );
    }
}
