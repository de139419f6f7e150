//! Messages from an MCAP file or a rosbag2 directory, decoded into JSON fields.
//!
//! [`McapSource::open`] takes either one `.mcap` file or a rosbag2 directory
//! (with `metadata.yaml`; its `relative_file_paths` name the `.mcap` files,
//! otherwise every `*.mcap` in the directory is read, in name order). Messages
//! come out in log-time order — across all files of a directory too — as
//! [`Message`]s. Channels with message encoding `cdr` and schema encoding
//! `ros2msg` are decoded with [`crate::ros2`]; channels with message encoding
//! `json` carry one JSON object per message. A message that cannot be decoded
//! is still yielded, with `fields` an `Err` naming its topic and index, and
//! iteration goes on. A problem with the file itself (unreadable, corrupt
//! chunk) ends that file with an `Err` item; other files continue.
//!
//! Memory: a file with a summary section and chunk indexes (what rosbag2,
//! `rosbags` and `mcap-ros2-support` write) is streamed chunk by chunk from
//! disk through the MCAP index, so memory is bounded by the chunks that
//! overlap in time. A file without a summary (for example a recording that was
//! cut off) is read into memory whole, its messages sorted by log time, and
//! then decoded one at a time.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcap::sans_io::indexed_reader::{IndexedReadEvent, IndexedReader, IndexedReaderOptions};
use mcap::sans_io::summary_reader::{SummaryReadEvent, SummaryReader};
use sealstream_core::json::{Map, Value};

use crate::ros2::{cdr, CdrError, MsgDefError, Registry};

/// Chunks (compressed or decompressed) larger than this are rejected, so a
/// corrupt index cannot make the reader allocate without limit.
const CHUNK_LIMIT: usize = 1 << 30;

/// One message, decoded or not.
#[derive(Debug)]
pub struct Message {
    /// The channel's topic.
    pub topic: String,
    /// MCAP log time, nanoseconds since the Unix epoch.
    pub log_time_ns: u64,
    /// The message's 0-based position within its file, in log-time order.
    pub sequence: u64,
    /// The decoded fields, or why they could not be decoded.
    pub fields: Result<Map, DecodeError>,
}

/// Why one message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("topic {topic}, message {sequence}: {kind}")]
pub struct DecodeError {
    /// The message's topic.
    pub topic: String,
    /// The message's index within its file (see [`Message::sequence`]).
    pub sequence: u64,
    /// What went wrong.
    pub kind: DecodeErrorKind,
}

/// What went wrong decoding one message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The CDR payload is malformed (the error names field path and byte offset).
    #[error(transparent)]
    Cdr(#[from] CdrError),
    /// The channel's `ros2msg` schema could not be parsed.
    #[error("schema {schema}: {source}")]
    Schema {
        /// The schema name.
        schema: String,
        /// The parse error.
        source: MsgDefError,
    },
    /// A `json` message is not a JSON object.
    #[error("JSON payload: {0}")]
    Json(String),
    /// The channel's encodings are not supported.
    #[error("unsupported message encoding {message_encoding:?} with schema encoding {schema_encoding:?}")]
    Unsupported {
        /// The channel's message encoding.
        message_encoding: String,
        /// The schema encoding (empty without a schema).
        schema_encoding: String,
    },
    /// The message refers to a channel the file does not define.
    #[error("unknown channel id {0}")]
    UnknownChannel(u16),
}

/// Why a file or directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The MCAP data is malformed.
    #[error("{path}: MCAP: {source}")]
    Mcap {
        /// The file.
        path: PathBuf,
        /// The error.
        source: mcap::McapError,
    },
    /// A rosbag2 directory's `metadata.yaml` is unusable.
    #[error("{path}: {message}")]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A directory without any `.mcap` file.
    #[error("{0}: no .mcap files found")]
    NoMcapFiles(PathBuf),
}

/// What the decoder needs to know about a channel.
#[derive(Debug)]
struct ChannelInfo {
    topic: String,
    message_encoding: String,
    schema: Option<SchemaInfo>,
}

#[derive(Debug)]
struct SchemaInfo {
    id: u16,
    name: String,
    encoding: String,
    data: Vec<u8>,
}

impl ChannelInfo {
    fn from_mcap(channel: &mcap::Channel<'_>) -> ChannelInfo {
        ChannelInfo {
            topic: channel.topic.clone(),
            message_encoding: channel.message_encoding.clone(),
            schema: channel.schema.as_ref().map(|s| SchemaInfo {
                id: s.id,
                name: s.name.clone(),
                encoding: s.encoding.clone(),
                data: s.data.to_vec(),
            }),
        }
    }
}

/// Decodes payloads, caching one parsed registry per schema id.
#[derive(Default)]
struct PayloadDecoder {
    registries: HashMap<u16, Result<Arc<Registry>, MsgDefError>>,
}

impl PayloadDecoder {
    fn decode(&mut self, channel: &ChannelInfo, data: &[u8]) -> Result<Map, DecodeErrorKind> {
        let schema_encoding = channel.schema.as_ref().map_or("", |s| s.encoding.as_str());
        match (channel.message_encoding.as_str(), schema_encoding) {
            ("cdr", "ros2msg") => {
                let schema = channel.schema.as_ref().expect("schema encoding present");
                let registry = self
                    .registries
                    .entry(schema.id)
                    .or_insert_with(|| {
                        let text = String::from_utf8_lossy(&schema.data);
                        Registry::parse(&schema.name, &text).map(Arc::new)
                    })
                    .clone()
                    .map_err(|source| DecodeErrorKind::Schema {
                        schema: schema.name.clone(),
                        source,
                    })?;
                Ok(cdr::decode(&registry, data)?)
            }
            ("json", _) => match sealstream_core::json::parse(data) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(other) => Err(DecodeErrorKind::Json(format!(
                    "expected an object, found {}",
                    other.type_name()
                ))),
                Err(e) => Err(DecodeErrorKind::Json(e.to_string())),
            },
            (message_encoding, schema_encoding) => Err(DecodeErrorKind::Unsupported {
                message_encoding: message_encoding.to_string(),
                schema_encoding: schema_encoding.to_string(),
            }),
        }
    }

    fn message(
        &mut self,
        channels: &HashMap<u16, ChannelInfo>,
        channel_id: u16,
        log_time_ns: u64,
        sequence: u64,
        data: &[u8],
    ) -> Message {
        let (topic, fields) = match channels.get(&channel_id) {
            Some(channel) => (channel.topic.clone(), self.decode(channel, data)),
            None => (
                String::new(),
                Err(DecodeErrorKind::UnknownChannel(channel_id)),
            ),
        };
        Message {
            fields: fields.map_err(|kind| DecodeError {
                topic: topic.clone(),
                sequence,
                kind,
            }),
            topic,
            log_time_ns,
            sequence,
        }
    }
}

/// Messages of one file in log-time order.
enum FileMessages {
    /// Streamed through the summary's chunk index.
    Indexed {
        path: PathBuf,
        file: File,
        reader: Box<IndexedReader>,
        channels: HashMap<u16, ChannelInfo>,
        buf: Vec<u8>,
        decoder: PayloadDecoder,
        next_sequence: u64,
        done: bool,
    },
    /// Read whole and sorted.
    Buffered {
        channels: HashMap<u16, ChannelInfo>,
        /// (log time, channel id, payload), sorted by log time.
        messages: std::vec::IntoIter<(u64, u16, Vec<u8>)>,
        /// An error met while reading, reported after the messages.
        error: Option<SourceError>,
        decoder: PayloadDecoder,
        next_sequence: u64,
    },
}

impl FileMessages {
    fn open(path: &Path) -> Result<FileMessages, SourceError> {
        let io_err = |source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let summary = match read_summary(&mut file) {
            Ok(summary) => summary,
            Err(SummaryFailure::Io(e)) => return Err(io_err(e)),
            Err(SummaryFailure::Mcap(_)) => None,
        };
        if let Some(summary) = summary {
            let indexed = !summary.chunk_indexes.is_empty()
                || summary.stats.as_ref().is_some_and(|s| s.message_count == 0);
            if indexed {
                let options = IndexedReaderOptions::new().with_record_length_limit(CHUNK_LIMIT);
                let reader =
                    IndexedReader::new_with_options(&summary, options).map_err(|source| {
                        SourceError::Mcap {
                            path: path.to_path_buf(),
                            source,
                        }
                    })?;
                let channels = summary
                    .channels
                    .iter()
                    .map(|(id, c)| (*id, ChannelInfo::from_mcap(c)))
                    .collect();
                return Ok(FileMessages::Indexed {
                    path: path.to_path_buf(),
                    file,
                    reader: Box::new(reader),
                    channels,
                    buf: Vec::new(),
                    decoder: PayloadDecoder::default(),
                    next_sequence: 0,
                    done: false,
                });
            }
        }
        // No usable index: read the file whole.
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io_err)?;
        let mut channels = HashMap::new();
        let mut messages = Vec::new();
        let mut error = None;
        let stream = mcap::MessageStream::new_with_options(
            &data,
            mcap::read::Options::IgnoreEndMagic.into(),
        )
        .map_err(|source| SourceError::Mcap {
            path: path.to_path_buf(),
            source,
        })?;
        for item in stream {
            match item {
                Ok(message) => {
                    channels
                        .entry(message.channel.id)
                        .or_insert_with(|| ChannelInfo::from_mcap(&message.channel));
                    messages.push((
                        message.log_time,
                        message.channel.id,
                        message.data.into_owned(),
                    ));
                }
                Err(source) => {
                    error = Some(SourceError::Mcap {
                        path: path.to_path_buf(),
                        source,
                    });
                    break;
                }
            }
        }
        messages.sort_by_key(|(log_time, _, _)| *log_time);
        Ok(FileMessages::Buffered {
            channels,
            messages: messages.into_iter(),
            error,
            decoder: PayloadDecoder::default(),
            next_sequence: 0,
        })
    }

    fn next_message(&mut self) -> Option<Result<Message, SourceError>> {
        match self {
            FileMessages::Buffered {
                channels,
                messages,
                error,
                decoder,
                next_sequence,
            } => match messages.next() {
                Some((log_time, channel_id, data)) => {
                    let sequence = *next_sequence;
                    *next_sequence += 1;
                    Some(Ok(
                        decoder.message(channels, channel_id, log_time, sequence, &data)
                    ))
                }
                None => error.take().map(Err),
            },
            FileMessages::Indexed {
                path,
                file,
                reader,
                channels,
                buf,
                decoder,
                next_sequence,
                done,
            } => {
                if *done {
                    return None;
                }
                let fail = |done: &mut bool, error: SourceError| {
                    *done = true;
                    Some(Err(error))
                };
                loop {
                    let event = match reader.next_event() {
                        None => {
                            *done = true;
                            return None;
                        }
                        Some(Err(source)) => {
                            let path = path.clone();
                            return fail(done, SourceError::Mcap { path, source });
                        }
                        Some(Ok(event)) => event,
                    };
                    match event {
                        IndexedReadEvent::ReadChunkRequest { offset, length } => {
                            buf.resize(length, 0);
                            let read = file
                                .seek(SeekFrom::Start(offset))
                                .and_then(|_| file.read_exact(buf));
                            if let Err(source) = read {
                                let path = path.clone();
                                return fail(done, SourceError::Io { path, source });
                            }
                            if let Err(source) = reader.insert_chunk_record_data(offset, buf) {
                                let path = path.clone();
                                return fail(done, SourceError::Mcap { path, source });
                            }
                        }
                        IndexedReadEvent::Message { header, data } => {
                            let sequence = *next_sequence;
                            *next_sequence += 1;
                            return Some(Ok(decoder.message(
                                channels,
                                header.channel_id,
                                header.log_time,
                                sequence,
                                data,
                            )));
                        }
                    }
                }
            }
        }
    }
}

enum SummaryFailure {
    Io(std::io::Error),
    Mcap(#[allow(dead_code)] mcap::McapError),
}

fn read_summary(file: &mut File) -> Result<Option<mcap::Summary>, SummaryFailure> {
    let mut reader = SummaryReader::new();
    while let Some(event) = reader.next_event() {
        match event.map_err(SummaryFailure::Mcap)? {
            SummaryReadEvent::ReadRequest(need) => {
                let read = file.read(reader.insert(need)).map_err(SummaryFailure::Io)?;
                reader.notify_read(read);
            }
            SummaryReadEvent::SeekRequest(to) => {
                let pos = file.seek(to).map_err(SummaryFailure::Io)?;
                reader.notify_seeked(pos);
            }
        }
    }
    Ok(reader.finish())
}

/// Messages of an MCAP file or a rosbag2 directory in log-time order.
pub struct McapSource {
    paths: Vec<PathBuf>,
    files: Vec<FileMessages>,
    /// The next message of each file, if already read.
    heads: Vec<Option<Message>>,
    /// Files that have no more messages.
    finished: Vec<bool>,
    /// Errors from opening files, reported first.
    pending: VecDeque<SourceError>,
}

impl std::fmt::Debug for McapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McapSource")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl McapSource {
    /// Open an `.mcap` file or a rosbag2 directory.
    ///
    /// A file that cannot be opened at all is an error here; for a directory,
    /// a file that fails to open is reported as the first item of the
    /// iteration and the other files are still read.
    pub fn open(path: impl AsRef<Path>) -> Result<McapSource, SourceError> {
        let path = path.as_ref();
        let paths = if path.is_dir() {
            bag_files(path)?
        } else {
            vec![path.to_path_buf()]
        };
        let mut files = Vec::new();
        let mut pending = VecDeque::new();
        let single = paths.len() == 1;
        for p in &paths {
            match FileMessages::open(p) {
                Ok(f) => files.push(f),
                Err(e) if single => return Err(e),
                Err(e) => pending.push_back(e),
            }
        }
        let n = files.len();
        Ok(McapSource {
            paths,
            files,
            heads: (0..n).map(|_| None).collect(),
            finished: vec![false; n],
            pending,
        })
    }

    /// The `.mcap` files being read.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The topics of the bag's channels, sorted, each once (from the files'
    /// summaries, or from their messages where there is no index).
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .files
            .iter()
            .flat_map(|f| match f {
                FileMessages::Indexed { channels, .. }
                | FileMessages::Buffered { channels, .. } => {
                    channels.values().map(|c| c.topic.clone())
                }
            })
            .collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }
}

impl Iterator for McapSource {
    type Item = Result<Message, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.pop_front() {
            return Some(Err(e));
        }
        for i in 0..self.files.len() {
            if self.heads[i].is_none() && !self.finished[i] {
                match self.files[i].next_message() {
                    Some(Ok(m)) => self.heads[i] = Some(m),
                    Some(Err(e)) => return Some(Err(e)),
                    None => self.finished[i] = true,
                }
            }
        }
        let best = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|m| (m.log_time_ns, i)))
            .min()?;
        self.heads[best.1].take().map(Ok)
    }
}

/// The `.mcap` files of a rosbag2 directory.
fn bag_files(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let metadata_path = dir.join("metadata.yaml");
    let mut listed = Vec::new();
    if metadata_path.is_file() {
        let text = std::fs::read_to_string(&metadata_path).map_err(|source| SourceError::Io {
            path: metadata_path.clone(),
            source,
        })?;
        let meta_err = |message: String| SourceError::Metadata {
            path: metadata_path.clone(),
            message,
        };
        let docs = yaml_rust2::YamlLoader::load_from_str(&text)
            .map_err(|e| meta_err(format!("invalid YAML: {e}")))?;
        let info = docs
            .first()
            .map(|d| &d["rosbag2_bagfile_information"])
            .filter(|i| !i.is_badvalue())
            .ok_or_else(|| meta_err("no rosbag2_bagfile_information".into()))?;
        if let Some(storage) = info["storage_identifier"].as_str() {
            if storage != "mcap" {
                return Err(meta_err(format!(
                    "storage {storage:?} is not supported (only mcap)"
                )));
            }
        }
        if let Some(paths) = info["relative_file_paths"].as_vec() {
            for p in paths {
                let name = p
                    .as_str()
                    .ok_or_else(|| meta_err("relative_file_paths holds a non-string".into()))?;
                // rosbag2 has written both bare names and paths with the bag directory.
                let mut candidate = dir.join(name);
                if !candidate.is_file() {
                    if let Some(file_name) = Path::new(name).file_name() {
                        candidate = dir.join(file_name);
                    }
                }
                if !candidate.is_file() {
                    return Err(meta_err(format!("listed file {name:?} does not exist")));
                }
                listed.push(candidate);
            }
        }
    }
    if listed.is_empty() {
        let entries = std::fs::read_dir(dir).map_err(|source| SourceError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| SourceError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "mcap") && p.is_file() {
                listed.push(p);
            }
        }
        listed.sort();
    }
    if listed.is_empty() {
        return Err(SourceError::NoMcapFiles(dir.to_path_buf()));
    }
    Ok(listed)
}
