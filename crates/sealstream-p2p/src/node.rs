//! The libp2p peer that carries the reference's chunk stream
//! ([`crate::reference`]): TCP, Noise (XX, Ed25519 peer ids), Yamux,
//! identify (protocol version [`IDENTIFY_PROTOCOL`]) and one raw stream
//! protocol, [`reference::PROTOCOL`]. Nothing else: no mDNS, QUIC, TLS or
//! WebSocket.
//!
//! The facade is blocking (the CLI is): a [`Server`] or [`fetch`] owns a
//! tokio runtime whose one worker drives the swarm, and the frames are read
//! with [`FrameReader`] through a blocking adapter with a timeout on every
//! read and write.
//!
//! - [`Server::bind`] listens, checks the chain directory (indexes `0..n`,
//!   every chunk's frame at most [`MAX_FRAME_BYTES`]) and gives the
//!   `peaqos-p2p://` URL; [`Server::deliver`] waits for the buyer's stream,
//!   checks its handshake against the purchase, session and buyer expected
//!   (refusing any other with `session_mismatch`), sends every chunk in
//!   index order and `complete`. A session is delivered once: later
//!   handshakes for it are refused as consumed.
//! - [`fetch`] dials the URL's address (the peer id in it is checked by
//!   Noise), sends the handshake and checks each chunk as the reference's
//!   receiver does (frame and envelope agree, indexes `0..` in order, the
//!   ciphertext hashes to `encryptedDataHash`, the Ed25519 signature, the
//!   `previousChunkId` link, the recomputed `chunkId`), plus one signer for
//!   the whole chain, and `complete.totalChunks` equal to what arrived. The
//!   chain directory is staged and moved into place only when it is
//!   complete.

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::kad::{self, store::MemoryStore};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    connection_limits, identify, identity, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol,
};
use rand_core::{OsRng, RngCore};
use sealstream_core::chunk::{ChainVerifier, ChunkSink, SealedChunk};
use sealstream_files::layout::{self, DirectorySink};
use sealstream_files::staging::Staging;
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use crate::reference::{
    self, ConnectUrl, ErrorCode, Frame, FrameReader, ReadError, MAX_FRAME_BYTES,
};

/// The protocol version the node announces with identify.
pub const IDENTIFY_PROTOCOL: &str = "/sealstream/1";
/// The listen address when none is given: loopback, a free port.
pub const DEFAULT_LISTEN: &str = "/ip4/127.0.0.1/tcp/0";
/// How long a buyer has to send its handshake once its stream is open.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait for one read or write on a stream (the reference's 60 s).
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// After its last frame, a peer keeps the connection open this long (or
/// until the other side closes), so the frame is not lost with it.
pub const LINGER: Duration = Duration::from_secs(2);
/// The most connections being set up from others at once.
pub const MAX_PENDING_INCOMING: u32 = 64;
/// The most connections from others at once.
pub const MAX_INCOMING: u32 = 256;
/// The most connections with one peer at once.
pub const MAX_PER_PEER: u32 = 4;
/// The most chunks [`fetch`] accepts unless told otherwise.
pub const DEFAULT_MAX_CHUNKS: u64 = 4096;

const STREAM_PROTOCOL: StreamProtocol = StreamProtocol::new(reference::PROTOCOL);

/// Why serving or fetching failed. Peer-supplied text is never part of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A setting is unusable (the field is named).
    #[error("{field}: {problem}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The identity file could not be read or written.
    #[error("identity file {}: {problem}", path.display())]
    Identity {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The chain directory to serve is unusable.
    #[error("chunk directory: {0}")]
    Chain(String),
    /// The libp2p transport failed (listen, dial, open a stream).
    #[error("p2p: {0}")]
    Transport(String),
    /// Nothing happened in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The peer broke the protocol or sent a chunk that does not verify.
    #[error("{code}: {problem}")]
    Protocol {
        /// The reference's code for it.
        code: ErrorCode,
        /// What is wrong.
        problem: String,
    },
    /// The seller refused, with this code (its free-text reason is not shown).
    #[error("the seller refused the transfer: {0}")]
    Refused(ErrorCode),
    /// Writing the output failed.
    #[error(transparent)]
    Output(#[from] sealstream_files::layout::FileError),
    /// The caller's handling of what arrived failed (its message).
    #[error("{0}")]
    Sink(String),
}

impl NodeError {
    fn protocol(code: ErrorCode, problem: impl Into<String>) -> NodeError {
        NodeError::Protocol {
            code,
            problem: problem.into(),
        }
    }
}

impl From<ReadError> for NodeError {
    fn from(e: ReadError) -> NodeError {
        match e {
            ReadError::Io(io) if io.kind() == io::ErrorKind::TimedOut => {
                NodeError::Timeout("no data from the peer")
            }
            ReadError::Io(io) => NodeError::Transport(format!("stream: {}", io.kind())),
            other => NodeError::protocol(other.code(), other.to_string()),
        }
    }
}

/// The node's Ed25519 identity: a 32-byte seed (its peer id follows).
pub struct Identity {
    seed: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.peer_id().to_string())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh random identity.
    pub fn generate() -> Identity {
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut seed[..]);
        Identity { seed }
    }

    /// The identity in `path` (64 hex digits, the seed; a trailing newline
    /// allowed), or a new one written there (mode 0600, never replacing a
    /// file) if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Identity, NodeError> {
        let fail = |problem: String| NodeError::Identity {
            path: path.to_path_buf(),
            problem,
        };
        match fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| fail("expected 64 hex digits".into()))?;
                let text = text.strip_suffix('\n').unwrap_or(text);
                let mut seed = Zeroizing::new([0u8; 32]);
                if text.len() != 64 || hex_decode(text, &mut seed[..]).is_none() {
                    return Err(fail(
                        "expected 64 hex digits (a 32-byte Ed25519 seed)".into(),
                    ));
                }
                Ok(Identity { seed })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let id = Identity::generate();
                let mut text = Zeroizing::new(String::with_capacity(65));
                for b in id.seed.iter() {
                    text.push_str(&format!("{b:02x}"));
                }
                text.push('\n');
                let mut options = fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                let mut f = options.open(path).map_err(|e| fail(e.kind().to_string()))?;
                f.write_all(text.as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| fail(e.kind().to_string()))?;
                Ok(id)
            }
            Err(e) => Err(fail(e.kind().to_string())),
        }
    }

    fn keypair(&self) -> identity::Keypair {
        let mut seed = self.seed.clone();
        identity::Keypair::ed25519_from_bytes(&mut seed[..])
            .expect("any 32 bytes are an Ed25519 secret key")
    }

    /// The 32-byte seed (for keys derived from the identity).
    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The peer id (`12D3KooW…`).
    pub fn peer_id(&self) -> PeerId {
        self.keypair().public().to_peer_id()
    }
}

fn hex_decode(text: &str, out: &mut [u8]) -> Option<()> {
    let bytes = text.as_bytes();
    for (i, o) in out.iter_mut().enumerate() {
        let pair = std::str::from_utf8(bytes.get(2 * i..2 * i + 2)?).ok()?;
        *o = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(())
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Behaviour {
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    kad: Toggle<kad::Behaviour<MemoryStore>>,
    stream: libp2p_stream::Behaviour,
}

/// Where a node listens, whom it dials, and whether it joins the DHT.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// Listen here.
    pub listen: Option<Multiaddr>,
    /// Dial this at once.
    pub dial: Option<Multiaddr>,
    /// Join the DHT through these peers (`Some(vec![])`: a DHT node that
    /// others bootstrap from).
    pub dht: Option<Vec<Multiaddr>>,
}

/// What a node's caller asks of the swarm.
pub(crate) enum Command {
    /// Announce a provider record (a feed) under this key, now and after
    /// every bootstrap; the answer says whether the first announcement
    /// reached a peer.
    Provide(kad::RecordKey, oneshot::Sender<bool>),
    /// The providers of a key.
    FindProviders(kad::RecordKey, oneshot::Sender<Vec<PeerId>>),
    /// Look a peer up in the DHT (its addresses go to the address book).
    FindPeer(PeerId, oneshot::Sender<bool>),
    /// The peers connected now and the DHT's routing table size.
    Peers(oneshot::Sender<(Vec<PeerId>, usize)>),
}

/// A runtime with one worker that drives the swarm; the caller's threads
/// block on it.
pub(crate) struct Node {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) control: libp2p_stream::Control,
    pub(crate) peer_id: PeerId,
    pub(crate) keypair: identity::Keypair,
    commands: mpsc::UnboundedSender<Command>,
    listen: Option<oneshot::Receiver<Result<Multiaddr, String>>>,
    dial: Option<oneshot::Receiver<String>>,
}

/// The private DHT's protocol: the node never joins the public IPFS DHT.
pub const KAD_PROTOCOL: &str = "/sealstream/kad/1.0.0";

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(p)) => Some(p),
        _ => None,
    }
}

impl Node {
    pub(crate) fn start(identity: &Identity, options: Options) -> Result<Node, NodeError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sealstream-p2p")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| NodeError::Transport(format!("runtime: {e}")))?;
        let key = identity.keypair();
        let keypair = key.clone();
        let peer_id = key.public().to_peer_id();
        let _guard = rt.enter();
        let dht = options.dht.is_some();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| NodeError::Transport(format!("transport: {e}")))?
            .with_behaviour(|key| {
                let id = key.public().to_peer_id();
                let kad = dht.then(|| {
                    let mut cfg = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
                    cfg.set_query_timeout(Duration::from_secs(10));
                    cfg.set_periodic_bootstrap_interval(Some(Duration::from_secs(60)));
                    let mut k = kad::Behaviour::with_config(id, MemoryStore::new(id), cfg);
                    // Loopback and private networks never confirm an
                    // external address, and a node in client mode neither
                    // answers queries nor enters routing tables.
                    k.set_mode(Some(kad::Mode::Server));
                    k
                });
                Behaviour {
                    limits: connection_limits::Behaviour::new(
                        connection_limits::ConnectionLimits::default()
                            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
                            .with_max_established_incoming(Some(MAX_INCOMING))
                            .with_max_established_per_peer(Some(MAX_PER_PEER)),
                    ),
                    identify: identify::Behaviour::new(
                        identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                            .with_agent_version(format!(
                                "sealstream/{}",
                                env!("CARGO_PKG_VERSION")
                            )),
                    ),
                    kad: Toggle::from(kad),
                    stream: libp2p_stream::Behaviour::new(),
                }
            })
            .map_err(|e| NodeError::Transport(format!("behaviour: {e}")))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IO_TIMEOUT))
            .build();
        let control = swarm.behaviour().stream.new_control();
        let (listen_tx, listen_rx) = oneshot::channel();
        let mut listen_tx = match options.listen {
            Some(addr) => {
                swarm
                    .listen_on(addr)
                    .map_err(|e| NodeError::Transport(format!("listen: {e}")))?;
                Some(listen_tx)
            }
            None => None,
        };
        let (dial_tx, dial_rx) = oneshot::channel();
        let mut dial_tx = match options.dial {
            Some(addr) => {
                swarm
                    .dial(addr)
                    .map_err(|e| NodeError::Transport(format!("dial: {e}")))?;
                Some(dial_tx)
            }
            None => None,
        };
        for addr in options.dht.iter().flatten() {
            let peer = peer_of(addr).ok_or_else(|| NodeError::Config {
                field: "bootstrap",
                problem: "a bootstrap address must end in /p2p/<peer id>".into(),
            })?;
            if let Some(k) = swarm.behaviour_mut().kad.as_mut() {
                k.add_address(&peer, addr.clone());
            }
        }
        if options.dht.as_ref().is_some_and(|b| !b.is_empty()) {
            if let Some(k) = swarm.behaviour_mut().kad.as_mut() {
                let _ = k.bootstrap();
            }
        }
        let (commands, mut command_rx) = mpsc::unbounded_channel::<Command>();
        rt.spawn(async move {
            let mut provided: Vec<kad::RecordKey> = Vec::new();
            let mut finding: HashMap<kad::QueryId, (Vec<PeerId>, oneshot::Sender<Vec<PeerId>>)> =
                HashMap::new();
            let mut looking: HashMap<kad::QueryId, (PeerId, oneshot::Sender<bool>)> =
                HashMap::new();
            let mut providing: HashMap<kad::QueryId, oneshot::Sender<bool>> = HashMap::new();
            loop {
                let event = tokio::select! {
                    command = command_rx.recv() => {
                        let Some(command) = command else { break };
                        let kad = swarm.behaviour_mut().kad.as_mut();
                        match (command, kad) {
                            (Command::Provide(key, tx), Some(k)) => {
                                match k.start_providing(key.clone()) {
                                    Ok(id) => {
                                        providing.insert(id, tx);
                                    }
                                    Err(_) => {
                                        let _ = tx.send(false);
                                    }
                                }
                                provided.push(key);
                            }
                            (Command::FindProviders(key, tx), Some(k)) => {
                                let id = k.get_providers(key);
                                finding.insert(id, (Vec::new(), tx));
                            }
                            (Command::FindPeer(peer, tx), Some(k)) => {
                                let id = k.get_closest_peers(peer);
                                looking.insert(id, (peer, tx));
                            }
                            (Command::FindProviders(_, tx), None) => {
                                let _ = tx.send(Vec::new());
                            }
                            (Command::FindPeer(_, tx), None) => {
                                let _ = tx.send(false);
                            }
                            (Command::Provide(_, tx), None) => {
                                let _ = tx.send(false);
                            }
                            (Command::Peers(tx), kad) => {
                                let table = kad
                                    .map(|k| k.kbuckets().map(|b| b.num_entries()).sum())
                                    .unwrap_or(0);
                                let _ = tx.send((swarm.connected_peers().copied().collect(), table));
                            }
                        }
                        continue;
                    }
                    event = swarm.select_next_some() => event,
                };
                match event {
                    SwarmEvent::NewListenAddr { address, .. } => {
                        if let Some(tx) = listen_tx.take() {
                            let _ = tx.send(Ok(address));
                        }
                    }
                    SwarmEvent::ListenerError { error, .. } => {
                        if let Some(tx) = listen_tx.take() {
                            let _ = tx.send(Err(error.to_string()));
                        }
                    }
                    SwarmEvent::ListenerClosed { reason, .. } => {
                        if let Some(tx) = listen_tx.take() {
                            let _ = tx.send(Err(match reason {
                                Ok(()) => "listener closed".into(),
                                Err(e) => e.to_string(),
                            }));
                        }
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        if let Some(tx) = dial_tx.take() {
                            let _ = tx.send(error.to_string());
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                        peer_id,
                        info,
                        ..
                    })) => {
                        // Peers of the private DHT enter the routing table
                        // with the addresses they listen on.
                        let kad_protocol = StreamProtocol::new(KAD_PROTOCOL);
                        if info.protocols.contains(&kad_protocol) {
                            if let Some(k) = swarm.behaviour_mut().kad.as_mut() {
                                for a in info.listen_addrs {
                                    k.add_address(&peer_id, a);
                                }
                            }
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Kad(
                        kad::Event::OutboundQueryProgressed {
                            id, result, step, ..
                        },
                    )) => match result {
                        kad::QueryResult::Bootstrap(_) if step.last => {
                            // Announce again now that the table is filled.
                            if let Some(k) = swarm.behaviour_mut().kad.as_mut() {
                                for key in &provided {
                                    let _ = k.start_providing(key.clone());
                                }
                            }
                        }
                        kad::QueryResult::GetProviders(r) => {
                            if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = r {
                                if let Some((found, _)) = finding.get_mut(&id) {
                                    found.extend(providers);
                                }
                            }
                            if step.last {
                                if let Some((found, tx)) = finding.remove(&id) {
                                    let _ = tx.send(found);
                                }
                            }
                        }
                        kad::QueryResult::StartProviding(r) if step.last => {
                            if let Some(tx) = providing.remove(&id) {
                                let _ = tx.send(r.is_ok());
                            }
                        }
                        kad::QueryResult::GetClosestPeers(r) => {
                            if let Some((peer, tx)) = looking.remove(&id) {
                                let found = matches!(&r, Ok(ok) if ok.peers.iter().any(|p| p.peer_id == peer));
                                let _ = tx.send(found);
                            }
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
        });
        drop(_guard);
        Ok(Node {
            rt,
            control,
            peer_id,
            keypair,
            commands,
            listen: Some(listen_rx),
            dial: Some(dial_rx),
        })
    }

    /// The first address the node listens on, once it does.
    pub(crate) fn listen_addr(&mut self) -> Result<Multiaddr, NodeError> {
        let rx = self.listen.take().expect("a listener was asked for once");
        self.rt
            .block_on(async { tokio::time::timeout(IO_TIMEOUT, rx).await })
            .map_err(|_| NodeError::Timeout("no listen address"))?
            .map_err(|_| NodeError::Transport("the swarm stopped".into()))?
            .map_err(|e| NodeError::Transport(format!("listen: {e}")))
    }

    pub(crate) fn command(&self, c: Command) {
        let _ = self.commands.send(c);
    }

    /// Send the swarm the command `make` builds around a reply channel,
    /// and wait up to `wait` for the reply (the default if none comes).
    fn ask<T: Default>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
        wait: Duration,
    ) -> T {
        let (tx, rx) = oneshot::channel();
        self.command(make(tx));
        self.rt
            .block_on(async { tokio::time::timeout(wait, rx).await })
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }

    /// Announce `key` in the DHT (again after every bootstrap); whether
    /// the first announcement reached a peer within 15 s.
    pub(crate) fn provide(&self, key: kad::RecordKey) -> bool {
        self.ask(|tx| Command::Provide(key, tx), Duration::from_secs(15))
    }

    /// The providers of `key` in the DHT (empty after the query's timeout).
    pub(crate) fn find_providers(&self, key: kad::RecordKey) -> Vec<PeerId> {
        self.ask(
            |tx| Command::FindProviders(key, tx),
            Duration::from_secs(15),
        )
    }

    /// Look `peer` up in the DHT (so that a dial by peer id finds it).
    pub(crate) fn find_peer(&self, peer: PeerId) -> bool {
        self.ask(|tx| Command::FindPeer(peer, tx), Duration::from_secs(15))
    }

    /// The peers connected now, and the DHT's routing table size.
    pub(crate) fn peers(&self) -> (Vec<PeerId>, usize) {
        self.ask(Command::Peers, Duration::from_secs(5))
    }

    /// Open a stream of `protocol` to `peer` (dialing it if needed), within `wait`.
    pub(crate) fn open(
        &self,
        peer: PeerId,
        protocol: StreamProtocol,
        wait: Duration,
    ) -> Result<libp2p::Stream, NodeError> {
        let mut control = self.control.clone();
        self.rt.block_on(async {
            match tokio::time::timeout(wait, control.open_stream(peer, protocol)).await {
                Ok(Ok(stream)) => Ok(stream),
                Ok(Err(e)) => Err(NodeError::Transport(format!("open stream: {e}"))),
                Err(_) => Err(NodeError::Timeout("connecting to the peer")),
            }
        })
    }
}

/// A libp2p stream read and written by a blocking thread, each call
/// bounded by a timeout.
pub(crate) struct BlockingStream {
    rt: tokio::runtime::Handle,
    stream: libp2p::Stream,
    pub(crate) timeout: Duration,
    /// Reads and writes fail once this passes, whatever `timeout` allows.
    pub(crate) deadline: Option<Instant>,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "stream timed out")
}

impl Read for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = self.bounded()?;
        let stream = &mut self.stream;
        self.rt
            .block_on(async { tokio::time::timeout(timeout, stream.read(buf)).await })
            .map_err(|_| timed_out())?
    }
}

impl Write for BlockingStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let timeout = self.bounded()?;
        let stream = &mut self.stream;
        self.rt
            .block_on(async { tokio::time::timeout(timeout, stream.write(buf)).await })
            .map_err(|_| timed_out())?
    }

    fn flush(&mut self) -> io::Result<()> {
        let timeout = self.bounded()?;
        let stream = &mut self.stream;
        self.rt
            .block_on(async { tokio::time::timeout(timeout, stream.flush()).await })
            .map_err(|_| timed_out())?
    }
}

impl BlockingStream {
    /// `stream`, driven by the runtime `rt`, each call bounded by [`IO_TIMEOUT`].
    pub(crate) fn new(rt: tokio::runtime::Handle, stream: libp2p::Stream) -> BlockingStream {
        BlockingStream {
            rt,
            stream,
            timeout: IO_TIMEOUT,
            deadline: None,
        }
    }

    /// The time the next call may take: `timeout`, cut at the deadline.
    fn bounded(&self) -> io::Result<Duration> {
        match self.deadline {
            None => Ok(self.timeout),
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(left.min(self.timeout)),
                _ => Err(timed_out()),
            },
        }
    }

    /// Close the write half, then wait for the peer to close its own (or
    /// [`LINGER`]), so the last frame is not lost with the connection.
    pub(crate) fn finish(&mut self) {
        let stream = &mut self.stream;
        self.rt.block_on(async {
            let _ = tokio::time::timeout(LINGER, stream.close()).await;
            let deadline = tokio::time::Instant::now() + LINGER;
            let mut sink = [0u8; 4096];
            while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
                if n == 0 {
                    break;
                }
            }
        });
    }
}

type Frames = FrameReader<BufReader<BlockingStream>>;

fn frames(rt: &tokio::runtime::Runtime, stream: libp2p::Stream, limit: Option<u64>) -> Frames {
    FrameReader::new(
        BufReader::with_capacity(64 * 1024, BlockingStream::new(rt.handle().clone(), stream)),
        limit,
    )
}

fn send(frames: &mut Frames, frame: &Frame) -> Result<(), NodeError> {
    let io = frames.get_mut().get_mut();
    io.write_all(&frame.encode())
        .and_then(|()| io.flush())
        .map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut => NodeError::Timeout("the peer does not read"),
            kind => NodeError::Transport(format!("stream: {kind}")),
        })
}

fn refuse(frames: &mut Frames, code: ErrorCode, reason: &str) {
    let _ = send(
        frames,
        &Frame::Error {
            code,
            reason: reason.into(),
        },
    );
    frames.get_mut().get_mut().finish();
}

/// What a seller delivers: one purchase to one buyer.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The chain directory (`chunk-N.json` + `chunk-N.bin`, indexes `0..n`).
    pub chunk_dir: PathBuf,
    /// The purchase id the buyer's handshake must carry (and the URL's `session`).
    pub purchase_id: String,
    /// The delivery session id the buyer's handshake must carry.
    pub session_id: String,
    /// The buyer id the handshake must carry.
    pub buyer_id: String,
    /// Where to listen ([`DEFAULT_LISTEN`] by default): a dialable address,
    /// since the URL carries it.
    pub listen: String,
}

/// A listening seller (see the module documentation).
pub struct Server {
    node: Node,
    incoming: libp2p_stream::IncomingStreams,
    url: String,
    chunks: Vec<(u64, PathBuf)>,
    config: ServeConfig,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A buyer's stream refused by [`Server::deliver`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The peer id of whoever opened it.
    pub peer: String,
    /// The code of the error frame sent.
    pub code: ErrorCode,
    /// Its reason (the reference's texts).
    pub reason: &'static str,
}

/// What a delivery sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The buyer's peer id.
    pub peer: String,
    /// Chunk frames sent.
    pub chunks: u64,
    /// Bytes of frames sent, newlines included.
    pub bytes: u64,
}

fn chunk_frame(dir: &Path, index: u64, path: &Path) -> Result<Vec<u8>, NodeError> {
    let envelope = layout::read_envelope(path).map_err(|e| NodeError::Chain(e.to_string()))?;
    let ciphertext = layout::read_ciphertext(dir, index)
        .map_err(|e| NodeError::Chain(e.to_string()))?
        .ok_or_else(|| {
            NodeError::Chain(format!("{} is missing", layout::ciphertext_name(index)))
        })?;
    let line = Frame::Chunk {
        envelope: Box::new(envelope),
        ciphertext,
    }
    .encode();
    if line.len() - 1 > MAX_FRAME_BYTES {
        return Err(NodeError::Chain(format!(
            "chunk {index}: its frame would be {} bytes, over the reference's limit of {MAX_FRAME_BYTES} (publish with smaller chunks)",
            line.len() - 1
        )));
    }
    Ok(line)
}

impl Server {
    /// Check the chain directory, start the node and listen.
    pub fn bind(config: ServeConfig, identity: &Identity) -> Result<Server, NodeError> {
        for (field, value) in [
            ("purchase id", &config.purchase_id),
            ("session id", &config.session_id),
            ("buyer id", &config.buyer_id),
        ] {
            if value.trim().is_empty() {
                return Err(NodeError::Config {
                    field,
                    problem: "required".into(),
                });
            }
        }
        let listen: Multiaddr = config.listen.parse().map_err(|_| NodeError::Config {
            field: "listen",
            problem: "not a multiaddr (such as /ip4/127.0.0.1/tcp/0)".into(),
        })?;
        let chunks =
            layout::list_chain(&config.chunk_dir).map_err(|e| NodeError::Chain(e.to_string()))?;
        // Refuse up front any chunk the reference could not receive.
        for (index, path) in &chunks {
            chunk_frame(&config.chunk_dir, *index, path)?;
        }
        let mut node = Node::start(
            identity,
            Options {
                listen: Some(listen),
                ..Options::default()
            },
        )?;
        let incoming = node
            .control
            .accept(STREAM_PROTOCOL)
            .map_err(|e| NodeError::Transport(e.to_string()))?;
        let addr = node.listen_addr()?;
        let addr = addr.with(Protocol::P2p(node.peer_id));
        let url = ConnectUrl {
            addr: addr.to_string(),
            session: config.purchase_id.clone(),
        }
        .to_url("sealstream");
        Ok(Server {
            node,
            incoming,
            url,
            chunks,
            config,
        })
    }

    /// The `peaqos-p2p://` URL the buyer dials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The seller's peer id.
    pub fn peer_id(&self) -> String {
        self.node.peer_id.to_string()
    }

    fn next_stream(&mut self, deadline: Instant) -> Option<(PeerId, libp2p::Stream)> {
        let left = deadline.saturating_duration_since(Instant::now());
        let incoming = &mut self.incoming;
        self.node
            .rt
            .block_on(async { tokio::time::timeout(left, incoming.next()).await })
            .ok()
            .flatten()
    }

    /// Wait up to `wait` for the buyer and deliver the chain once. Streams
    /// whose handshake does not match are refused (`session_mismatch`) and
    /// the wait goes on; once delivered, the session is consumed and any
    /// further handshake in the next [`LINGER`] is refused as such.
    /// `on_refusal` hears of every stream refused.
    pub fn deliver(
        mut self,
        wait: Duration,
        on_refusal: &mut dyn FnMut(&Refusal),
    ) -> Result<Delivered, NodeError> {
        let deadline = Instant::now() + wait;
        let delivered = loop {
            let Some((peer, stream)) = self.next_stream(deadline) else {
                return Err(NodeError::Timeout("no buyer delivered to"));
            };
            let mut frames = frames(&self.node.rt, stream, Some(MAX_FRAME_BYTES as u64 + 1));
            frames.get_mut().get_mut().timeout = HANDSHAKE_TIMEOUT;
            let hello = frames.next_frame();
            frames.get_mut().get_mut().timeout = IO_TIMEOUT;
            let mut refuse = |frames: &mut Frames, code: ErrorCode, reason: &'static str| {
                refuse(frames, code, reason);
                on_refusal(&Refusal {
                    peer: peer.to_string(),
                    code,
                    reason,
                });
            };
            match hello {
                Ok(Some(Frame::Handshake {
                    purchase_id,
                    session_id,
                    buyer_id,
                })) => {
                    if purchase_id != self.config.purchase_id {
                        refuse(&mut frames, ErrorCode::SessionMismatch, "unknown session");
                        continue;
                    }
                    if session_id != self.config.session_id || buyer_id != self.config.buyer_id {
                        refuse(
                            &mut frames,
                            ErrorCode::SessionMismatch,
                            "session or buyer mismatch",
                        );
                        continue;
                    }
                }
                Ok(Some(_)) => {
                    refuse(&mut frames, ErrorCode::MalformedFrame, "expected handshake");
                    continue;
                }
                Ok(None) | Err(_) => {
                    refuse(
                        &mut frames,
                        ErrorCode::MalformedFrame,
                        "malformed handshake",
                    );
                    continue;
                }
            }
            let mut bytes = 0u64;
            for (index, path) in &self.chunks {
                let line = match chunk_frame(&self.config.chunk_dir, *index, path) {
                    Ok(line) => line,
                    Err(e) => {
                        refuse(&mut frames, ErrorCode::InternalError, "chunk unavailable");
                        return Err(e);
                    }
                };
                bytes += line.len() as u64;
                let io = frames.get_mut().get_mut();
                io.write_all(&line).map_err(|e| match e.kind() {
                    io::ErrorKind::TimedOut => NodeError::Timeout("the buyer does not read"),
                    kind => NodeError::Transport(format!("stream: {kind}")),
                })?;
            }
            let total = self.chunks.len() as u64;
            let complete = Frame::Complete {
                total_chunks: total,
            };
            bytes += complete.encode().len() as u64;
            send(&mut frames, &complete)?;
            frames.get_mut().get_mut().finish();
            break Delivered {
                peer: peer.to_string(),
                chunks: total,
                bytes,
            };
        };
        // The session is consumed: a replayed handshake is refused.
        let tombstone = Instant::now() + LINGER;
        while let Some((peer, stream)) = self.next_stream(tombstone) {
            let mut frames = frames(&self.node.rt, stream, Some(MAX_FRAME_BYTES as u64 + 1));
            frames.get_mut().get_mut().timeout = LINGER;
            let _ = frames.next_frame();
            let reason = "session already consumed";
            refuse(&mut frames, ErrorCode::SessionMismatch, reason);
            on_refusal(&Refusal {
                peer: peer.to_string(),
                code: ErrorCode::SessionMismatch,
                reason,
            });
        }
        Ok(delivered)
    }
}

/// What a buyer fetches.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// The seller's `peaqos-p2p://` URL.
    pub url: String,
    /// The purchase id for the handshake (default: the URL's `session`).
    pub purchase_id: Option<String>,
    /// The delivery session id.
    pub session_id: String,
    /// The buyer id.
    pub buyer_id: String,
    /// The chain directory to write: created if missing, refused if it holds
    /// chunk files already.
    pub output_dir: PathBuf,
    /// The most chunks to accept (the transfer is bounded by this many
    /// 1 MiB frames); [`DEFAULT_MAX_CHUNKS`] by default.
    pub max_chunks: u64,
    /// How long to wait for the connection and the stream.
    pub connect_timeout: Duration,
}

/// What a fetch received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The seller's peer id.
    pub peer: String,
    /// Chunks received and written.
    pub chunks: u64,
    /// Bytes of ciphertext.
    pub ciphertext_bytes: u64,
}

/// Fetch a chain from a seller (see the module documentation).
pub fn fetch(config: &FetchConfig, identity: &Identity) -> Result<Fetched, NodeError> {
    let url = ConnectUrl::parse(&config.url).map_err(|e| NodeError::Config {
        field: "url",
        problem: e.to_string(),
    })?;
    let addr: Multiaddr = url.addr.parse().map_err(|_| NodeError::Config {
        field: "url",
        problem: "addr is not a multiaddr".into(),
    })?;
    let Some(Protocol::P2p(peer)) = addr.iter().last() else {
        return Err(NodeError::Config {
            field: "url",
            problem: "addr must end in /p2p/<peer id>".into(),
        });
    };
    let purchase_id = config.purchase_id.clone().unwrap_or(url.session);
    for (field, value) in [
        ("purchase id", &purchase_id),
        ("session id", &config.session_id),
        ("buyer id", &config.buyer_id),
    ] {
        if value.trim().is_empty() {
            return Err(NodeError::Config {
                field,
                problem: "required".into(),
            });
        }
    }
    if config.max_chunks == 0 {
        return Err(NodeError::Config {
            field: "max chunks",
            problem: "must be at least 1".into(),
        });
    }
    // Chunks of another chain left in the directory would mix with these.
    if let Ok(entries) = fs::read_dir(&config.output_dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("chunk-") {
                return Err(NodeError::Config {
                    field: "output dir",
                    problem: "already holds chunk files: give an empty or new directory".into(),
                });
            }
        }
    }
    let mut node = Node::start(
        identity,
        Options {
            dial: Some(addr),
            ..Options::default()
        },
    )?;
    let mut control = node.control.clone();
    let dial_failed = node.dial.take().expect("a dial was asked for");
    let stream = node.rt.block_on(async {
        let open = tokio::time::timeout(
            config.connect_timeout,
            control.open_stream(peer, STREAM_PROTOCOL),
        );
        tokio::select! {
            opened = open => match opened {
                Ok(Ok(stream)) => Ok(stream),
                Ok(Err(e)) => Err(NodeError::Transport(format!("open stream: {e}"))),
                Err(_) => Err(NodeError::Timeout("connecting to the seller")),
            },
            Ok(error) = dial_failed => Err(NodeError::Transport(format!("dial: {error}"))),
        }
    })?;
    // Every chunk frame and the complete frame, each at most 1 MiB + newline.
    let limit = (config.max_chunks + 1).saturating_mul(MAX_FRAME_BYTES as u64 + 1);
    let mut frames = frames(&node.rt, stream, Some(limit));
    send(
        &mut frames,
        &Frame::Handshake {
            purchase_id,
            session_id: config.session_id.clone(),
            buyer_id: config.buyer_id.clone(),
        },
    )?;
    let staging = Staging::new(&config.output_dir)?;
    let mut sink = DirectorySink::new(staging.path())?;
    let mut verifier = ChainVerifier::new();
    let mut signer: Option<String> = None;
    let mut received = 0u64;
    let mut ciphertext_bytes = 0u64;
    loop {
        match frames.next_frame()? {
            Some(Frame::Chunk {
                envelope,
                ciphertext,
            }) => {
                if received >= config.max_chunks {
                    return Err(NodeError::protocol(
                        ErrorCode::TransferTooLarge,
                        format!("more than {} chunks", config.max_chunks),
                    ));
                }
                if envelope.index < received {
                    return Err(NodeError::protocol(
                        ErrorCode::DuplicateChunk,
                        format!("chunk {} sent again", envelope.index),
                    ));
                }
                if envelope.index > received {
                    return Err(NodeError::protocol(
                        ErrorCode::MissingChunk,
                        format!("chunk {received} missing"),
                    ));
                }
                verifier.push(&envelope, Some(&ciphertext)).map_err(|e| {
                    NodeError::protocol(ErrorCode::UnauthorizedChunk, e.to_string())
                })?;
                match &signer {
                    None => signer = Some(envelope.signature.public_key_hex.clone()),
                    Some(key) if *key != envelope.signature.public_key_hex => {
                        return Err(NodeError::protocol(
                            ErrorCode::UnauthorizedChunk,
                            format!("chunk {received} is signed by another key than chunk 0"),
                        ));
                    }
                    Some(_) => {}
                }
                ciphertext_bytes += ciphertext.len() as u64;
                sink.put(SealedChunk {
                    envelope: *envelope,
                    ciphertext,
                })?;
                received += 1;
            }
            Some(Frame::Complete { total_chunks }) => {
                if total_chunks != received {
                    return Err(NodeError::protocol(
                        ErrorCode::CountMismatch,
                        format!("complete says {total_chunks} chunks, {received} arrived"),
                    ));
                }
                break;
            }
            Some(Frame::Error { code, .. }) => return Err(NodeError::Refused(code)),
            Some(Frame::Handshake { .. }) => {
                return Err(NodeError::protocol(
                    ErrorCode::MalformedFrame,
                    "a handshake from the seller",
                ))
            }
            None => {
                return Err(NodeError::protocol(
                    ErrorCode::MissingChunk,
                    "incomplete transfer: the stream ended before complete",
                ))
            }
        }
    }
    verifier
        .finish()
        .map_err(|e| NodeError::protocol(ErrorCode::MissingChunk, e.to_string()))?;
    sink.finish()?;
    drop(sink);
    staging.commit()?;
    frames.get_mut().get_mut().finish();
    Ok(Fetched {
        peer: peer.to_string(),
        chunks: received,
        ciphertext_bytes,
    })
}
