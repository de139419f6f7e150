//! The journal of a live source (MQTT): received messages, made durable
//! before the broker is acknowledged, so that a source that cannot be replayed
//! can be replayed from the spool.
//!
//! Layout: `<spool>/journal/<source-dir>/<first-position>.jsonl`, segments of
//! JSON lines, one per message, each with its position (numbered from 0 for
//! the source, never reused). The last segment is the one written; a new one
//! starts after [`SEGMENT_BYTES`]. The pipeline deletes a segment once every
//! topic of the source has committed past its last position
//! ([`prune`]).
//!
//! A crash can tear the last line; [`Journal::open`] cuts the segment back to
//! its last whole line. Such a message was never acknowledged, so the broker
//! delivers it again.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use sealstream_core::json::{self, Map, Number, Value};

/// A segment is closed after this many bytes.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// How many recent messages are remembered to recognise redeliveries.
const RECENT: usize = 4096;

/// One journaled message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position in the source, from 0.
    pub position: u64,
    /// The topic it arrived on.
    pub topic: String,
    /// Receipt time, ISO 8601 UTC with milliseconds.
    pub received_at: String,
    /// The payload as text, or why it is not text.
    pub payload: Result<String, String>,
    /// The MQTT packet id (0 for QoS 0).
    pub packet_id: u16,
    /// `0x` + the first 8 bytes of SHA-256 over topic, a NUL and the payload.
    pub digest: String,
}

impl Record {
    /// The record as one journal line: compact JSON
    /// (`{"p":…,"t":…,"at":…,"m":…|"bad":…,"k":…,"d":…}`) ending in `\n`.
    /// [`Record::parse_line`] reads it back to an equal record.
    pub fn to_line(&self) -> String {
        let mut o = Map::new();
        o.insert("p".into(), Value::from(self.position));
        o.insert("t".into(), self.topic.as_str().into());
        o.insert("at".into(), self.received_at.as_str().into());
        match &self.payload {
            Ok(text) => o.insert("m".into(), text.as_str().into()),
            Err(why) => o.insert("bad".into(), why.as_str().into()),
        };
        o.insert("k".into(), Value::from(u64::from(self.packet_id)));
        o.insert("d".into(), self.digest.as_str().into());
        let mut line = json::write::to_python_compact(&Value::Object(o));
        line.push('\n');
        line
    }

    /// Parse one journal line (as written by [`Record::to_line`], with or
    /// without its `\n`). `None` if it is not a whole, valid record: not
    /// JSON, or a field missing or of the wrong type (unknown fields are
    /// ignored). Never panics, whatever `line` holds.
    pub fn parse_line(line: &str) -> Option<Record> {
        let v = json::parse(line.as_bytes()).ok()?;
        let o = v.as_object()?;
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| o.get(k).and_then(Value::as_number).and_then(Number::as_u64);
        let payload = match (s("m"), s("bad")) {
            (Some(m), _) => Ok(m),
            (None, Some(bad)) => Err(bad),
            (None, None) => return None,
        };
        Some(Record {
            position: n("p")?,
            topic: s("t")?,
            received_at: s("at")?,
            payload,
            packet_id: u16::try_from(n("k")?).ok()?,
            digest: s("d")?,
        })
    }
}

/// The digest a redelivery is recognised by.
pub fn digest(topic: &str, payload: &[u8]) -> String {
    let mut data = Vec::with_capacity(topic.len() + 1 + payload.len());
    data.extend_from_slice(topic.as_bytes());
    data.push(0);
    data.extend_from_slice(payload);
    sealstream_core::chunk::sha256_hex(&data)[..18].to_string()
}

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct JournalError {
    /// The file or directory.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError {
        path: path.to_path_buf(),
        source,
    }
}

/// The segments of a journal directory, oldest first: (first position, path).
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(err(dir))?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((first, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Read every record of the journal in `dir` with a position after `after`
/// (all when `None`), oldest first.
pub fn read_after(dir: &Path, after: Option<u64>) -> Result<Vec<Record>, JournalError> {
    let segs = segments(dir)?;
    let mut out = Vec::new();
    for (i, (_, path)) in segs.iter().enumerate() {
        // Skip segments that end before `after`.
        if let (Some(a), Some((next_first, _))) = (after, segs.get(i + 1)) {
            if *next_first <= a + 1 {
                continue;
            }
        }
        let file = File::open(path).map_err(err(path))?;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(err(path))?;
            if let Some(r) = Record::parse_line(&line) {
                if after.is_none_or(|a| r.position > a) {
                    out.push(r);
                }
            }
        }
    }
    Ok(out)
}

/// Delete the segments whose every record is at or before `through`, but
/// never the last one (it is the one being written). Returns the bytes freed.
pub fn prune(dir: &Path, through: u64) -> Result<u64, JournalError> {
    let segs = segments(dir)?;
    let mut freed = 0;
    for pair in segs.windows(2) {
        let (_, path) = &pair[0];
        let (next_first, _) = pair[1];
        if next_first == 0 || next_first - 1 > through {
            break;
        }
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        std::fs::remove_file(path).map_err(err(path))?;
        freed += len;
    }
    Ok(freed)
}

/// The writing end of a journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: File,
    file_path: PathBuf,
    file_len: u64,
    next_position: u64,
    recent: VecDeque<(u16, String)>,
    unsynced: bool,
}

impl Journal {
    /// Open (or create) the journal in `dir`: cut a torn last line, find the
    /// next position, remember the most recent messages.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let segs = segments(dir)?;
        let mut recent = VecDeque::new();
        let mut next_position = 0;
        let (file_path, file_len) = match segs.last() {
            None => (dir.join(segment_name(0)), 0),
            Some((first, path)) => {
                let bytes = std::fs::read(path).map_err(err(path))?;
                let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                next_position = *first;
                for line in bytes[..whole].split(|&b| b == b'\n') {
                    if let Some(r) = std::str::from_utf8(line).ok().and_then(Record::parse_line) {
                        next_position = r.position + 1;
                        remember(&mut recent, r.packet_id, r.digest);
                    }
                }
                if whole < bytes.len() {
                    let f = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(err(path))?;
                    f.set_len(whole as u64).map_err(err(path))?;
                    f.sync_all().map_err(err(path))?;
                }
                (path.clone(), whole as u64)
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file_path)
            .map_err(err(&file_path))?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            file,
            file_path,
            file_len,
            next_position,
            recent,
            unsynced: false,
        })
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The position the next record gets.
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    /// Whether a redelivered message (MQTT `DUP` set) with this packet id and
    /// digest is already in the journal.
    pub fn seen(&self, packet_id: u16, digest: &str) -> bool {
        self.recent
            .iter()
            .any(|(k, d)| *k == packet_id && d == digest)
    }

    /// Append a message (not yet durable: see [`Journal::sync`]); returns its record.
    pub fn append(
        &mut self,
        topic: &str,
        received_at: String,
        payload: &[u8],
        packet_id: u16,
    ) -> Result<Record, JournalError> {
        if self.file_len >= SEGMENT_BYTES {
            self.sync()?;
            self.file_path = self.dir.join(segment_name(self.next_position));
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.file_path)
                .map_err(err(&self.file_path))?;
            self.file_len = 0;
            sync_dir(&self.dir)?;
        }
        let record = Record {
            position: self.next_position,
            topic: topic.to_string(),
            received_at,
            payload: String::from_utf8(payload.to_vec())
                .map_err(|_| "payload is not UTF-8 text".to_string()),
            packet_id,
            digest: digest(topic, payload),
        };
        let line = record.to_line();
        self.file
            .write_all(line.as_bytes())
            .map_err(err(&self.file_path))?;
        self.file_len += line.len() as u64;
        self.next_position += 1;
        self.unsynced = true;
        remember(&mut self.recent, packet_id, record.digest.clone());
        Ok(record)
    }

    /// Make everything appended durable.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if self.unsynced {
            self.file.sync_data().map_err(err(&self.file_path))?;
            self.unsynced = false;
        }
        Ok(())
    }
}

fn remember(recent: &mut VecDeque<(u16, String)>, packet_id: u16, digest: String) {
    if packet_id == 0 {
        return;
    }
    if recent.len() == RECENT {
        recent.pop_front();
    }
    recent.push_back((packet_id, digest));
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.jsonl")
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    crate::spool::sync_dir(dir).map_err(err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_reopen_cut_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("j");
        let mut j = Journal::open(&d).unwrap();
        for i in 0..5u16 {
            j.append(
                "a/b",
                "t".into(),
                format!("{{\"i\":{i}}}").as_bytes(),
                i + 1,
            )
            .unwrap();
        }
        j.append("a/b", "t".into(), &[0xff], 9).unwrap();
        j.sync().unwrap();
        drop(j);
        // A torn line at the end is cut away.
        let seg = segments(&d).unwrap()[0].1.clone();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"p\":6,\"t\":\"a").unwrap();
        drop(f);
        let mut j = Journal::open(&d).unwrap();
        assert_eq!(j.next_position(), 6);
        assert!(j.seen(3, &digest("a/b", b"{\"i\":2}")));
        assert!(!j.seen(3, &digest("a/b", b"{\"i\":3}")));
        let all = read_after(&d, None).unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all[5].payload, Err("payload is not UTF-8 text".into()));
        assert_eq!(read_after(&d, Some(3)).unwrap().len(), 2);
        // A new segment once the current one is full; pruning keeps the last.
        j.file_len = SEGMENT_BYTES;
        j.append("a/b", "t".into(), b"{}", 0).unwrap();
        j.sync().unwrap();
        assert_eq!(segments(&d).unwrap().len(), 2);
        assert_eq!(prune(&d, 4).unwrap(), 0);
        assert!(prune(&d, 5).unwrap() > 0);
        assert_eq!(segments(&d).unwrap().len(), 1);
        assert_eq!(read_after(&d, None).unwrap()[0].position, 6);
    }
}
