//! The input of `package verify`, read as a stream: JSON lines, one JSON
//! document, or a JSON array, one package at a time, so memory stays
//! bounded by the largest package whatever the input's size.
//!
//! The shape is told from the start: a `[` opens an array, whose elements
//! are cut out one by one; otherwise, a first line that is JSON on its own
//! followed by nothing but whitespace is one document, and followed by more
//! lines, JSON lines. A first line that is not JSON on its own may begin a
//! document spread over several lines: it is read whole (up to
//! [`DOCUMENT_LIMIT`]) and, if nothing follows it, is the one document;
//! otherwise the lines are JSON lines, each reported on its own.

use std::collections::VecDeque;
use std::io::BufRead;

/// Largest document spread over several lines that is read as one.
pub const DOCUMENT_LIMIT: usize = 16 << 20;

/// Where a package was in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// The whole input (one document).
    Whole,
    /// A line of JSON lines (1-based).
    Line(u64),
    /// An element of an array (0-based).
    Index(u64),
}

impl Position {
    /// `LABEL`, `LABEL line N` or `LABEL[i]`.
    pub fn label(self, input: &str) -> String {
        match self {
            Position::Whole => input.to_string(),
            Position::Line(n) => format!("{input} line {n}"),
            Position::Index(i) => format!("{input}[{i}]"),
        }
    }
}

/// One package's bytes (a JSON value), or why there is none where one was
/// expected (the array is malformed there).
#[derive(Debug)]
pub struct Item {
    /// Where it was.
    pub at: Position,
    /// Its JSON text, or what is wrong with the input there.
    pub bytes: Result<Vec<u8>, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Start,
    Lines,
    Array,
    Done,
}

/// Packages of a JSON lines, document or array input.
pub struct PackageInput<R> {
    reader: R,
    mode: Mode,
    line_no: u64,
    pending: VecDeque<Item>,
    array: ArrayScanner,
    consumed: u64,
    line: Vec<u8>,
}

fn blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

fn trim_line_end(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    bytes
}

impl<R: BufRead> PackageInput<R> {
    /// Read packages from `reader`.
    pub fn new(reader: R) -> Self {
        PackageInput {
            reader,
            mode: Mode::Start,
            line_no: 0,
            pending: VecDeque::new(),
            array: ArrayScanner::default(),
            consumed: 0,
            line: Vec::new(),
        }
    }

    /// Bytes read so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next line into `self.line` (with its end); `false` at the end.
    fn read_line(&mut self) -> std::io::Result<bool> {
        self.line.clear();
        let n = self.reader.read_until(b'\n', &mut self.line)?;
        self.consumed += n as u64;
        if n > 0 {
            self.line_no += 1;
        }
        Ok(n > 0)
    }

    /// The next non-blank line and its number; `None` at the end.
    fn next_nonblank(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        while self.read_line()? {
            if !blank(&self.line) {
                return Ok(Some((self.line_no, std::mem::take(&mut self.line))));
            }
        }
        Ok(None)
    }

    fn start(&mut self) -> std::io::Result<()> {
        let Some((first_no, first)) = self.next_nonblank()? else {
            self.mode = Mode::Done;
            return Ok(());
        };
        if first.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            self.mode = Mode::Array;
            self.feed_array(&first);
            return Ok(());
        }
        let first = trim_line_end(first);
        if sealstream_core::json::parse(&first).is_ok() {
            match self.next_nonblank()? {
                None => {
                    self.pending.push_back(Item {
                        at: Position::Whole,
                        bytes: Ok(first),
                    });
                    self.mode = Mode::Done;
                }
                Some((n, line)) => {
                    self.pending.push_back(Item {
                        at: Position::Line(first_no),
                        bytes: Ok(first),
                    });
                    self.pending.push_back(Item {
                        at: Position::Line(n),
                        bytes: Ok(trim_line_end(line)),
                    });
                    self.mode = Mode::Lines;
                }
            }
            return Ok(());
        }
        // Perhaps one document over several lines: read until its outermost
        // bracket closes.
        let mut lines = vec![(first_no, first)];
        let mut nesting = Nesting::default();
        let mut closed = lines[0].1.iter().any(|b| nesting.feed(*b));
        let mut size = lines[0].1.len();
        while !closed && size <= DOCUMENT_LIMIT && self.read_line()? {
            let line = std::mem::take(&mut self.line);
            closed = line.iter().any(|b| nesting.feed(*b));
            size += line.len();
            lines.push((self.line_no, trim_line_end(line)));
        }
        if closed {
            match self.next_nonblank()? {
                None => {
                    let whole = lines
                        .iter()
                        .map(|(_, l)| l.as_slice())
                        .collect::<Vec<_>>()
                        .join(&b'\n');
                    if sealstream_core::json::parse(&whole).is_ok() {
                        self.pending.push_back(Item {
                            at: Position::Whole,
                            bytes: Ok(whole),
                        });
                        self.mode = Mode::Done;
                        return Ok(());
                    }
                }
                Some((n, line)) => lines.push((n, trim_line_end(line))),
            }
        }
        // JSON lines after all: each line on its own.
        for (n, line) in lines {
            if !blank(&line) {
                self.pending.push_back(Item {
                    at: Position::Line(n),
                    bytes: Ok(line),
                });
            }
        }
        self.mode = Mode::Lines;
        Ok(())
    }

    fn feed_array(&mut self, bytes: &[u8]) {
        for b in bytes {
            if let Some(item) = self.array.feed(*b) {
                let stop = item.bytes.is_err();
                self.pending.push_back(item);
                if stop {
                    self.mode = Mode::Done;
                    return;
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for PackageInput<R> {
    type Item = std::io::Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            let step = match self.mode {
                Mode::Done => return None,
                Mode::Start => self.start(),
                Mode::Lines => self.next_nonblank().map(|line| match line {
                    Some((n, line)) => self.pending.push_back(Item {
                        at: Position::Line(n),
                        bytes: Ok(trim_line_end(line)),
                    }),
                    None => self.mode = Mode::Done,
                }),
                Mode::Array => {
                    let chunk = match self.reader.fill_buf() {
                        Ok(chunk) => chunk.to_vec(),
                        Err(e) => return Some(Err(e)),
                    };
                    self.reader.consume(chunk.len());
                    self.consumed += chunk.len() as u64;
                    if chunk.is_empty() {
                        if let Some(item) = self.array.finish() {
                            self.pending.push_back(item);
                        }
                        self.mode = Mode::Done;
                    } else {
                        self.feed_array(&chunk);
                    }
                    Ok(())
                }
            };
            if let Err(e) = step {
                return Some(Err(e));
            }
        }
    }
}

/// JSON nesting across bytes: strings (with escapes) and brackets.
#[derive(Clone, Copy, Debug, Default)]
struct Nesting {
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl Nesting {
    /// Take one byte; `true` when it closes the outermost bracket.
    fn feed(&mut self, b: u8) -> bool {
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return false;
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' if self.depth > 0 => {
                self.depth -= 1;
                return self.depth == 0;
            }
            _ => {}
        }
        false
    }

    fn at_top(&self) -> bool {
        self.depth == 0 && !self.in_string
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ArrayState {
    /// Before the `[`.
    #[default]
    Open,
    /// After the `[`: a value or `]`.
    First,
    /// After a `,`: a value.
    Value,
    /// Inside a value.
    InValue,
    /// After a value: `,` or `]`.
    After,
    /// After the `]`: only whitespace.
    Closed,
}

/// Cuts the elements out of a JSON array, byte by byte.
#[derive(Debug, Default)]
struct ArrayScanner {
    state: ArrayState,
    nesting: Nesting,
    current: Vec<u8>,
    index: u64,
}

impl ArrayScanner {
    fn element(&mut self) -> Item {
        let item = Item {
            at: Position::Index(self.index),
            bytes: Ok(std::mem::take(&mut self.current)),
        };
        self.index += 1;
        item
    }

    fn malformed(&mut self, message: String) -> Item {
        self.state = ArrayState::Closed;
        Item {
            at: Position::Index(self.index),
            bytes: Err(format!("not a JSON array: {message}")),
        }
    }

    fn begin(&mut self, b: u8) -> Option<Item> {
        self.state = ArrayState::InValue;
        self.nesting = Nesting::default();
        self.current.push(b);
        if self.nesting.feed(b) {
            self.state = ArrayState::After;
            return Some(self.element());
        }
        None
    }

    /// Take one byte; an element when it completes one, or an error item
    /// when the array is malformed there (nothing more is read then).
    fn feed(&mut self, b: u8) -> Option<Item> {
        let ws = b.is_ascii_whitespace();
        match self.state {
            ArrayState::Open if ws => None,
            ArrayState::Open if b == b'[' => {
                self.state = ArrayState::First;
                None
            }
            ArrayState::Open => Some(self.malformed("expected [".into())),
            ArrayState::First | ArrayState::Value if ws => None,
            ArrayState::First if b == b']' => {
                self.state = ArrayState::Closed;
                None
            }
            ArrayState::First | ArrayState::Value if b == b',' || b == b']' => {
                Some(self.malformed(format!("unexpected {:?} where a value belongs", b as char)))
            }
            ArrayState::First | ArrayState::Value => self.begin(b),
            ArrayState::InValue if self.nesting.at_top() && (ws || b == b',' || b == b']') => {
                self.state = match b {
                    b',' => ArrayState::Value,
                    b']' => ArrayState::Closed,
                    _ => ArrayState::After,
                };
                Some(self.element())
            }
            ArrayState::InValue => {
                self.current.push(b);
                if self.nesting.feed(b) {
                    self.state = ArrayState::After;
                    return Some(self.element());
                }
                None
            }
            ArrayState::After if ws => None,
            ArrayState::After if b == b',' => {
                self.state = ArrayState::Value;
                None
            }
            ArrayState::After if b == b']' => {
                self.state = ArrayState::Closed;
                None
            }
            ArrayState::After => Some(self.malformed(format!(
                "expected , or ] after element {}, found {:?}",
                self.index.saturating_sub(1),
                b as char
            ))),
            ArrayState::Closed if ws => None,
            ArrayState::Closed => Some(self.malformed("content after the closing ]".into())),
        }
    }

    /// The end of the input: an error item unless the array was closed.
    fn finish(&mut self) -> Option<Item> {
        (self.state != ArrayState::Closed)
            .then(|| self.malformed("unexpected end of input (no closing ])".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(input: &str) -> Vec<(String, Result<String, String>)> {
        PackageInput::new(input.as_bytes())
            .map(|i| {
                let i = i.unwrap();
                (
                    i.at.label("in"),
                    i.bytes.map(|b| String::from_utf8(b).unwrap()),
                )
            })
            .collect()
    }

    fn ok(at: &str, text: &str) -> (String, Result<String, String>) {
        (at.to_string(), Ok(text.to_string()))
    }

    #[test]
    fn json_lines_keep_their_line_numbers() {
        assert_eq!(
            items("\n{\"a\":1}\r\n\n{\"b\":2}\nnot json\n"),
            [
                ok("in line 2", "{\"a\":1}"),
                ok("in line 4", "{\"b\":2}"),
                ok("in line 5", "not json")
            ]
        );
    }

    #[test]
    fn one_document_on_one_or_more_lines() {
        assert_eq!(items("  {\"a\": 1}\n\n"), [ok("in", "  {\"a\": 1}")]);
        assert_eq!(
            items("{\n  \"a\": \"}\\\"\",\n  \"b\": [1]\n}\n"),
            [ok("in", "{\n  \"a\": \"}\\\"\",\n  \"b\": [1]\n}")]
        );
        // A broken document followed by more: each line on its own.
        assert_eq!(
            items("{\n\"a\": }\n{\"b\":2}\n"),
            [
                ok("in line 1", "{"),
                ok("in line 2", "\"a\": }"),
                ok("in line 3", "{\"b\":2}")
            ]
        );
        assert!(items(" \n\n").is_empty());
    }

    #[test]
    fn array_elements_one_by_one() {
        assert_eq!(
            items("[\n {\"a\": [1, {\"x\": \"],\"}]},\n 7 , \"s\",{}]  \n"),
            [
                ok("in[0]", "{\"a\": [1, {\"x\": \"],\"}]}"),
                ok("in[1]", "7"),
                ok("in[2]", "\"s\""),
                ok("in[3]", "{}")
            ]
        );
        assert!(items("[]").is_empty());
    }

    #[test]
    fn a_malformed_array_is_reported_where_it_breaks() {
        let got = items("[{\"a\":1},,{}]");
        assert_eq!(got[0], ok("in[0]", "{\"a\":1}"));
        assert_eq!(got.len(), 2);
        assert!(got[1]
            .1
            .as_ref()
            .unwrap_err()
            .contains("where a value belongs"));
        let got = items("[{\"a\":1}");
        assert!(got[1].1.as_ref().unwrap_err().contains("no closing ]"));
        let got = items("[1] x");
        assert!(got[1]
            .1
            .as_ref()
            .unwrap_err()
            .contains("after the closing ]"));
    }

    #[test]
    fn array_split_across_reads() {
        let text = "[{\"k\": \"v\"}, {\"k\": \"w\"}]";
        let reader = std::io::BufReader::with_capacity(3, text.as_bytes());
        let got: Vec<Item> = PackageInput::new(reader).map(Result::unwrap).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].bytes.as_deref().unwrap(), b"{\"k\": \"w\"}");
    }
}
