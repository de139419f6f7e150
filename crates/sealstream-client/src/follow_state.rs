//! The state file of `sealstream follow` (`OUTPUT.follow-state`,
//! docs/subscriptions.md, "Following"): where the output stands, so that a
//! restart writes every chunk exactly once, and what the follower knows of
//! the topic's signed windows. One item a line:
//!
//! ```text
//! sealstream-follow v1
//! subscription sub_…
//! index N                     the last chunk written
//! chunk 0x…                   its id
//! length L                    the output's length after it
//! format raw|jsonl            (optional; raw when absent)
//! tail HEX                    (jsonl: the bytes of a package line not ended yet)
//! first N                     (the first chunk followed)
//! machine DID CHAIN_KEY_HEX   (of the chunks followed)
//! cursor N                    (the last index of the windows handled)
//! window FIRST LAST ROOT      (each window checked, in order)
//! pending INDEX ID START END  (a chunk past the cursor; `-` for no span)
//! ```
//!
//! [`FollowState::parse`] takes any text (the file is read back after
//! crashes and may be anything): it refuses what it does not understand,
//! with the line, and never panics (`fuzz/follow_state`). The file
//! depends on nothing of the crate (the fuzz target includes it alone).

use std::collections::BTreeMap;

/// The first line of a state file.
pub const STATE_MAGIC: &str = "sealstream-follow v1";
/// Longest incomplete package line carried over (bytes).
pub const MAX_TAIL: usize = 1 << 20;
/// Largest state file read (bytes).
pub const MAX_STATE: u64 = 64 << 20;

/// What the output holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FollowFormat {
    /// The chunks' plaintext bytes, as recorded.
    #[default]
    Raw,
    /// The data packages of the plaintext, each verified, one compact JSON
    /// object a line.
    Jsonl,
}

impl FollowFormat {
    /// Its name (`raw`, `jsonl`).
    pub fn as_str(self) -> &'static str {
        match self {
            FollowFormat::Raw => "raw",
            FollowFormat::Jsonl => "jsonl",
        }
    }
}

/// A follower's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowState {
    /// The subscription.
    pub subscription: String,
    /// The index of the last chunk written.
    pub last_index: u64,
    /// Its id.
    pub last_chunk_id: String,
    /// The output's length after it.
    pub length: u64,
    /// What the output holds.
    pub format: FollowFormat,
    /// `jsonl`: the bytes of a package line the chunks so far did not end.
    pub tail: Vec<u8>,
    /// The windows.
    pub windows: WindowState,
}

/// Why a state file was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct StateParseError {
    /// 1-based.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A token: not empty, printable ASCII without spaces.
fn token(t: &str) -> bool {
    !t.is_empty() && t.len() <= 200 && t.bytes().all(|b| b.is_ascii_graphic())
}

impl FollowState {
    /// Reads a state file's text.
    pub fn parse(text: &str) -> Result<FollowState, StateParseError> {
        let eof = text.split('\n').count();
        let mut lines = text.split('\n').enumerate();
        let err = |line: usize, message: &str| StateParseError {
            line: line + 1,
            message: message.to_string(),
        };
        let mut next = |name: &str| -> Result<(usize, String), StateParseError> {
            let (n, l) = lines
                .next()
                .ok_or_else(|| err(eof, &format!("{name} missing")))?;
            if name.is_empty() {
                return Ok((n, l.to_string()));
            }
            let value = l
                .strip_prefix(name)
                .and_then(|l| l.strip_prefix(' '))
                .filter(|v| token(v))
                .ok_or_else(|| err(n, &format!("expected `{name} VALUE`")))?;
            Ok((n, value.to_string()))
        };
        let (n, magic) = next("")?;
        if magic != STATE_MAGIC {
            return Err(err(n, "not a follow state file"));
        }
        let (_, subscription) = next("subscription")?;
        let (n, index) = next("index")?;
        let index: u64 = index.parse().map_err(|_| err(n, "index: not a number"))?;
        let (_, chunk_id) = next("chunk")?;
        let (n, length) = next("length")?;
        let length: u64 = length.parse().map_err(|_| err(n, "length: not a number"))?;
        let mut state = FollowState {
            subscription,
            last_index: index,
            last_chunk_id: chunk_id,
            length,
            format: FollowFormat::Raw,
            tail: Vec::new(),
            windows: WindowState::default(),
        };
        let mut seen: Vec<&str> = Vec::new();
        for (n, line) in lines {
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split(' ').collect();
            if !words.iter().all(|w| token(w)) {
                return Err(err(n, "malformed line"));
            }
            let number = |w: &str| -> Result<u64, StateParseError> {
                w.parse()
                    .map_err(|_| err(n, &format!("{}: not a number", words[0])))
            };
            let key = words[0];
            if matches!(key, "format" | "tail" | "first" | "machine" | "cursor") {
                if seen.contains(&key) {
                    return Err(err(n, &format!("{key} twice")));
                }
                seen.push(key);
            }
            let w = &state.windows;
            match (key, words.len()) {
                ("format", 2) => {
                    state.format = match words[1] {
                        "raw" => FollowFormat::Raw,
                        "jsonl" => FollowFormat::Jsonl,
                        _ => return Err(err(n, "format: raw or jsonl")),
                    }
                }
                ("tail", 2) => {
                    let bytes = hex::decode(words[1]).map_err(|_| err(n, "tail: not hex"))?;
                    if bytes.len() > MAX_TAIL || bytes.contains(&b'\n') {
                        return Err(err(n, "tail: not an unfinished line"));
                    }
                    state.tail = bytes;
                }
                ("first", 2) => state.windows.first_followed = Some(number(words[1])?),
                ("machine", 3) => {
                    state.windows.chain = Some((words[1].to_string(), words[2].to_string()))
                }
                ("cursor", 2) => state.windows.cursor = Some(number(words[1])?),
                ("window", 4) => {
                    let (first, last) = (number(words[1])?, number(words[2])?);
                    if first > last || w.checked.last().is_some_and(|p| p.last >= first) {
                        return Err(err(n, "window: out of order"));
                    }
                    state.windows.checked.push(CheckedWindow {
                        first,
                        last,
                        root: words[3].to_string(),
                    });
                }
                ("pending", 4 | 5) => {
                    let i = number(words[1])?;
                    if i > index || w.pending.keys().next_back().is_some_and(|&p| p >= i) {
                        return Err(err(n, "pending: out of order"));
                    }
                    let span = match &words[3..] {
                        ["-"] => None,
                        [s, e] => {
                            let (s, e) = (number(s)?, number(e)?);
                            if s > e || e > length {
                                return Err(err(n, "pending: a span outside the output"));
                            }
                            Some((s, e))
                        }
                        _ => return Err(err(n, "pending: INDEX ID START END or INDEX ID -")),
                    };
                    state.windows.pending.insert(
                        i,
                        Followed {
                            chunk_id: words[2].to_string(),
                            span,
                        },
                    );
                }
                _ => return Err(err(n, &format!("unknown or malformed `{key}` line"))),
            }
        }
        let w = &state.windows;
        if w.cursor
            .zip(w.pending.keys().next().copied())
            .is_some_and(|(c, p)| p <= c)
        {
            return Err(err(eof, "a pending chunk at or before the cursor"));
        }
        Ok(state)
    }

    /// The state file's text ([`FollowState::parse`] reads it back).
    pub fn render(&self) -> String {
        let mut out = format!(
            "{STATE_MAGIC}\nsubscription {}\nindex {}\nchunk {}\nlength {}\nformat {}\n",
            self.subscription,
            self.last_index,
            self.last_chunk_id,
            self.length,
            self.format.as_str()
        );
        if !self.tail.is_empty() {
            out += &format!("tail {}\n", hex::encode(&self.tail));
        }
        let w = &self.windows;
        if let Some(f) = w.first_followed {
            out += &format!("first {f}\n");
        }
        if let Some((m, k)) = &w.chain {
            out += &format!("machine {m} {k}\n");
        }
        if let Some(c) = w.cursor {
            out += &format!("cursor {c}\n");
        }
        for c in &w.checked {
            out += &format!("window {} {} {}\n", c.first, c.last, c.root);
        }
        for (i, p) in &w.pending {
            match p.span {
                Some((s, e)) => out += &format!("pending {i} {} {s} {e}\n", p.chunk_id),
                None => out += &format!("pending {i} {} -\n", p.chunk_id),
            }
        }
        out
    }
}

/// A chunk followed and not yet covered by a window handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Followed {
    /// Its id.
    pub chunk_id: String,
    /// Where its plaintext is in the output (start, end), when the output
    /// is the plaintext.
    pub span: Option<(u64, u64)>,
}

/// A window checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedWindow {
    /// Index of its first chunk.
    pub first: u64,
    /// Index of its last chunk.
    pub last: u64,
    /// Its Merkle root (`0x…`).
    pub root: String,
}

/// What a follower keeps of the windows between runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowState {
    /// The first chunk this follower followed.
    pub first_followed: Option<u64>,
    /// The machine DID and chain public key of the chunks followed.
    pub chain: Option<(String, String)>,
    /// The last index of the windows handled (checked or not checkable).
    pub cursor: Option<u64>,
    /// The windows checked, in order.
    pub checked: Vec<CheckedWindow>,
    /// The chunks followed past the cursor, by index.
    pub pending: BTreeMap<u64, Followed>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FollowState {
        let mut windows = WindowState {
            first_followed: Some(3),
            chain: Some(("did:peaq:0xab".into(), "cd".into())),
            cursor: Some(5),
            ..WindowState::default()
        };
        windows.checked.push(CheckedWindow {
            first: 3,
            last: 5,
            root: "0x11".into(),
        });
        windows.pending.insert(
            6,
            Followed {
                chunk_id: "0x66".into(),
                span: Some((10, 20)),
            },
        );
        windows.pending.insert(
            7,
            Followed {
                chunk_id: "0x77".into(),
                span: None,
            },
        );
        FollowState {
            subscription: "sub_1".into(),
            last_index: 7,
            last_chunk_id: "0x77".into(),
            length: 30,
            format: FollowFormat::Jsonl,
            tail: b"{\"did\":".to_vec(),
            windows,
        }
    }

    #[test]
    fn it_reads_back_what_it_writes() {
        let s = sample();
        assert_eq!(FollowState::parse(&s.render()).unwrap(), s);
    }

    #[test]
    fn a_first_version_file_reads_as_raw_without_windows() {
        let s = FollowState::parse(
            "sealstream-follow v1\nsubscription sub_1\nindex 2\nchunk 0x2\nlength 9\n",
        )
        .unwrap();
        assert_eq!(s.format, FollowFormat::Raw);
        assert_eq!(s.windows, WindowState::default());
    }

    #[test]
    fn what_does_not_hold_is_refused_with_its_line() {
        let good = sample().render();
        for (from, to, line) in [
            ("format jsonl", "format json", 6),
            ("pending 6 0x66 10 20", "pending 6 0x66 10 40", 12),
            ("pending 7 0x77 -", "pending 5 0x77 -", 13),
            ("window 3 5 0x11", "window 5 3 0x11", 11),
            ("cursor 5", "cursor 5\ncursor 6", 11),
            ("index 7", "index x", 3),
            ("subscription sub_1", "subscription sub 1", 2),
        ] {
            let text = good.replace(from, to);
            let e = FollowState::parse(&text).unwrap_err();
            assert_eq!(e.line, line, "{to}: {e}");
        }
        assert!(FollowState::parse("").is_err());
        assert!(FollowState::parse("sealstream-follow v1\n").is_err());
    }
}
