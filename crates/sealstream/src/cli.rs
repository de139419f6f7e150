//! Command-line definitions. Flags of `publish`, `grant` and `consume` are
//! those of `peaqos stream publish|grant|consume`, so scripts switch by
//! changing the program name only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The exit code of invalid command-line usage, the same for every command
/// (`Exit::Usage`). Written once here, shown in every command's exit codes.
macro_rules! usage_exit_line {
    () => {
        "\n  64 invalid command-line usage: an unknown flag or command, a missing or malformed value"
    };
}

const EXIT_CODES: &str = concat!(
    "\
Exit codes:
  0  success (verify: the chain is intact; package verify: every package is valid)
  1  bad input: flags, missing or unreadable files, keys of the wrong length or kind,
     malformed documents; verify: the chain is not intact; package verify: a package is invalid
  2  integrity or network: a chain that does not verify or decrypt, a source hash
     mismatch, a failed download",
    usage_exit_line!(),
    "

Human-readable output goes to stderr; --json output goes to stdout."
);

#[derive(Debug, Parser)]
#[command(name = "sealstream", version, about = "Sell machine data without handing over plaintext: chunk, encrypt, sign, grant, consume and verify peaq.stream v1 chains.", after_help = EXIT_CODES)]
pub struct Cli {
    /// Suppress progress and summaries on stderr (errors are still printed).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Print the command's result as JSON on stdout, in place of the human-readable
    /// summary on stderr (errors and warnings are still printed there). Accepted by
    /// every command; those with a result print it.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Chunk, encrypt and sign data into a chain directory (like `peaqos stream publish`).
    #[command(after_help = EXIT_CODES)]
    Publish(PublishArgs),
    /// Re-wrap every chunk key of a chain for a buyer (like `peaqos stream grant`).
    #[command(after_help = EXIT_CODES)]
    Grant(GrantArgs),
    /// Verify, decrypt and reassemble a purchased chain (like `peaqos stream consume`).
    #[command(after_help = EXIT_CODES)]
    Consume(ConsumeArgs),
    /// Verify a chain without keys: exit 0 when intact, 1 when not.
    #[command(after_help = EXIT_CODES)]
    Verify(VerifyArgs),
    /// Generate and inspect key files.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Sign and verify data packages (EIP-191, did:peaq).
    #[command(subcommand)]
    Package(PackageCommand),
    /// The edge agent, configured by a Data Event Map (docs/data-event-map.md).
    #[command(subcommand, after_help = EXIT_CODES)]
    #[cfg(feature = "agent")]
    Agent(AgentCommand),
    /// Signed dataset manifests (Merkle root over the chain), inclusion and consistency proofs.
    #[command(subcommand, after_help = EXIT_CODES)]
    Dataset(DatasetCommand),
    /// The market server (docs/market-design.md) and its audit log.
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    #[cfg(feature = "agent")]
    Market(MarketCommand),
    /// License receipts signed by a market, checked offline.
    #[command(subcommand, after_help = RECEIPT_EXIT_CODES)]
    Receipt(ReceiptCommand),
    /// Dispute evidence of escrowed orders (sealstream.dispute-evidence.v1), checked offline.
    #[command(subcommand, after_help = DISPUTE_EXIT_CODES)]
    Dispute(DisputeCommand),
    /// As the buyer: follow a live subscription (docs/subscriptions.md). Reads its feed
    /// (GET /v1/subscriptions/{id}/feed) and, for every chunk granted to it, checks the
    /// envelope (chunk id, signature, the same machine, the link to the chunk before it,
    /// read from the server when it is not the last one written), fetches the
    /// ciphertext and checks its hash, opens the wrapped key with
    /// --buyer-private-key-file and checks it against the key commitment, decrypts and
    /// checks the plaintext hash, then appends the plaintext to --output (synced) and
    /// records the chunk in OUTPUT.follow-state: a restart resumes after it, each chunk
    /// written exactly once. The subscription's state is printed on stderr when the feed
    /// opens and on every change (valid: paid-through time, grace end, time left;
    /// invalid: the reason and what to do). Reconnects with backoff when the connection
    /// drops. Each signed dataset window of the topic (the machine's manifests, GET
    /// /v1/subscriptions/{id}/datasets) is checked once all its chunks are written: both
    /// signatures, the Merkle root over the chunk ids written, sourceHash when the output
    /// is the plaintext ("window N..M verified (root …)" on stderr). Exits 0 when the
    /// subscription is over (lapsed, cancelled, revoked) and every chunk it was entitled
    /// to is written, or on SIGINT/SIGTERM; 2 when a chunk, a package or a window does
    /// not check out or the server refuses.
    #[command(after_help = MARKET_EXIT_CODES)]
    #[cfg(feature = "agent")]
    Follow(FollowArgs),
    /// Peer-to-peer delivery over libp2p (docs/p2p.md): live feeds Dazaar-style
    /// (/sealstream/feed/1: serve --feed, subscribe, relay, bootstrap, status), and the
    /// reference's protocol (/peaqos/stream/chunk/1.0.0: serve --chunk-dir, fetch).
    #[command(subcommand, after_help = P2P_EXIT_CODES)]
    #[cfg(feature = "p2p")]
    P2p(P2pCommand),
}

#[cfg(feature = "p2p")]
const P2P_EXIT_CODES: &str = concat!(
    "\
Exit codes:
  0  serve: the chain was delivered (or, serving feeds, stopped by a signal); fetch: the
     chain was received, verified and written; subscribe: the seller ended the feed (the
     subscription is over) or a signal stopped it
  1  bad input: flags, an unreadable chunk directory or identity file, a chunk too large
     for the protocol (a frame over 1 MiB), a malformed URL or listen address
  2  network or integrity: no buyer in time, the seller refused (its code is printed,
     such as session_mismatch), the connection failed (or the seller stayed unreachable
     for --reconnect-for), or a chunk or head that does not verify",
    usage_exit_line!(),
    "

Human-readable output goes to stderr; the URL (serve) and --json output go to stdout."
);

/// `sealstream p2p`.
#[derive(Debug, Subcommand)]
#[cfg(feature = "p2p")]
pub enum P2pCommand {
    /// As the seller. With --feed: serve live feeds (growing chain directories, such as
    /// an agent's `directory` destination) Dazaar-style on /sealstream/feed/1: announce
    /// each on the DHT, check every buyer's signed hello and subscription against the
    /// market (--server, signing in as the seller with --key-file), wrap each chunk's key
    /// to the buyer's key, sign per-buyer heads, check again every --revalidate seconds
    /// and cut a buyer off (`invalid` with the reason) when the subscription ends. Runs
    /// until SIGTERM or SIGINT; prints its address on stdout. With --chunk-dir: the
    /// reference's protocol (/peaqos/stream/chunk/1.0.0): print the peaqos-p2p:// URL,
    /// wait for the buyer's stream, check its handshake (purchase, session and buyer ids
    /// must be those given; any other is refused with session_mismatch and the wait goes
    /// on), send every chunk in index order and `complete`, and exit 0 once it is sent.
    /// Every chunk's frame must fit the reference's 1 MiB. The reference's buyer is
    /// known only by the three ids: anyone who has them and reaches the address gets the
    /// ciphertext, which only the buyer's access files open.
    #[command(after_help = P2P_EXIT_CODES)]
    Serve(P2pServeArgs),
    /// As the buyer: dial the seller's peaqos-p2p:// URL (its peer id is checked by the
    /// Noise handshake), send the handshake, and check every chunk as it arrives as the
    /// reference's receiver does (frame and envelope agree, indexes 0.. in order with no
    /// duplicates, the ciphertext hashes to encryptedDataHash, the Ed25519 signature, the
    /// previousChunkId link, the chunk id recomputes) and one signing key for the whole
    /// chain; `complete` must count what arrived. Writes chunk-N.json and chunk-N.bin into
    /// --output-dir, moved into place only once everything checked out; decrypt them with
    /// `sealstream consume`.
    #[command(after_help = P2P_EXIT_CODES)]
    Fetch(P2pFetchArgs),
    /// Run a DHT node that the peers of a private network join through (there is no
    /// public bootstrap list and no multicast discovery). Prints its address (with
    /// /p2p/PEER_ID) on stdout; runs until SIGTERM or SIGINT.
    #[command(after_help = P2P_EXIT_CODES)]
    Bootstrap(P2pBootstrapArgs),
    /// As the buyer: follow a seller's live feed. Finds the seller through the DHT (or
    /// dials --seller-addr), authenticates it by its peer id, sends a hello signed by this
    /// node's identity with the buyer key and the subscription, and checks every chunk
    /// (the chunk id the seller named, the chain link, the signature, the ciphertext's
    /// hash, the per-buyer signed heads) before opening it. With --relays, chunk data
    /// comes from the feed's other providers (a block that fails its checks is reported
    /// and fetched from the next peer), keys from the seller. Output and state file as for
    /// `sealstream follow`; reconnects and resumes after the last chunk written; ends when
    /// the seller says the subscription is over (exit 0) or on SIGTERM/SIGINT.
    #[command(after_help = P2P_EXIT_CODES)]
    Subscribe(P2pSubscribeArgs),
    /// Serve the ciphertext of a seller's feed that this peer holds (a chain directory,
    /// such as a subscriber's --keep-chunks) to anyone, on /sealstream/blocks/1, and
    /// announce it on the DHT. Carries no keys; buyers check every block against what
    /// the seller named. Prints its address on stdout; runs until SIGTERM or SIGINT.
    #[command(after_help = P2P_EXIT_CODES)]
    Relay(P2pRelayArgs),
    /// Show what a running `p2p serve --feed` is doing, from its --status-file: feeds
    /// and their lengths, sessions (buyer peer, subscription, state, next index, keys
    /// sent), peers connected.
    #[command(after_help = P2P_EXIT_CODES)]
    Status(P2pStatusArgs),
}

/// `sealstream p2p serve`.
#[derive(Debug, Args)]
#[cfg(feature = "p2p")]
pub struct P2pServeArgs {
    /// A live feed to serve: NAME=DIR, the feed's name (the topic, as subscriptions name
    /// it) and the chain directory it grows in. Repeatable.
    #[arg(long, value_name = "NAME=DIR", conflicts_with_all = ["chunk_dir", "purchase_id", "session_id", "buyer_id"])]
    pub feed: Vec<String>,
    /// Feeds: the machine whose topics the feeds are (subscriptions must be to it).
    #[arg(long, value_name = "DID", requires = "feed")]
    pub machine_did: Option<String>,
    /// Feeds: keep each feed's DIR filled from the chain the market holds (what the
    /// machine uploaded), each chunk stamped with the time the market accepted it.
    #[arg(long, requires = "feed")]
    pub mirror: bool,
    /// Feeds: file holding the owner's X25519 recipient secret key (hex): it opens the
    /// chunk keys.
    #[arg(
        long = "owner-private-key-file",
        value_name = "FILE",
        requires = "feed"
    )]
    pub owner_key_file: Option<PathBuf>,
    /// Feeds: the market server the subscriptions are checked with.
    #[arg(long, value_name = "URL", env = SERVER_ENV, default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Feeds: file holding the seller's secp256k1 key (hex): it signs in to the market.
    #[arg(long, value_name = "FILE", requires = "feed")]
    pub key_file: Option<PathBuf>,
    /// Feeds: a DHT bootstrap peer (/ip4/…/tcp/…/p2p/PEER_ID). Repeatable. Without one
    /// the DHT is not joined (unless --dht) and buyers dial this node's address.
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
    /// Feeds: join the DHT as its first node, without bootstrap peers.
    #[arg(long)]
    pub dht: bool,
    /// Feeds: check each buyer's subscription again this often, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub revalidate: u64,
    /// Feeds: the most buyer sessions at once.
    #[arg(long, value_name = "N", default_value_t = sealstream_p2p::live::seller::DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,
    /// Feeds: write the server's status here (atomically, every second) for `p2p status`.
    #[arg(long, value_name = "FILE")]
    pub status_file: Option<PathBuf>,
    /// Reference protocol: the chain directory to deliver (chunk-N.json and chunk-N.bin,
    /// indexes 0..n).
    #[arg(long, value_name = "DIR", required_unless_present = "feed")]
    pub chunk_dir: Option<PathBuf>,
    /// Reference protocol: the purchase (order) id the buyer's handshake must carry;
    /// also the URL's session.
    #[arg(long, value_name = "ID", required_unless_present = "feed")]
    pub purchase_id: Option<String>,
    /// Reference protocol: the delivery session id the buyer's handshake must carry.
    #[arg(long, value_name = "ID", required_unless_present = "feed")]
    pub session_id: Option<String>,
    /// Reference protocol: the buyer id the buyer's handshake must carry.
    #[arg(long, value_name = "ID", required_unless_present = "feed")]
    pub buyer_id: Option<String>,
    /// The multiaddr to listen on; buyers dial it, so give one they can reach (not
    /// 0.0.0.0).
    #[arg(long, value_name = "MULTIADDR", default_value = sealstream_p2p::node::DEFAULT_LISTEN)]
    pub listen: String,
    /// Reference protocol: also write the URL to FILE (atomically) once listening. Feeds:
    /// write the address (with /p2p/PEER_ID) there. With --json the URL is not printed
    /// at once (it is in the JSON printed once delivered): read it here.
    #[arg(long, alias = "addr-file", value_name = "FILE")]
    pub url_file: Option<PathBuf>,
    /// The node's Ed25519 identity (its peer id): a file of 64 hex digits (a 32-byte seed),
    /// created with mode 0600 if missing (`keys generate --role p2p` writes one). Without
    /// it, a random identity for this run.
    #[arg(long, value_name = "FILE")]
    pub identity_file: Option<PathBuf>,
    /// Reference protocol: how long to wait for the buyer, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
}

/// `sealstream p2p bootstrap`.
#[derive(Debug, Args)]
#[cfg(feature = "p2p")]
pub struct P2pBootstrapArgs {
    /// The multiaddr to listen on (a fixed port, so that others can be configured with it).
    #[arg(long, value_name = "MULTIADDR", default_value = sealstream_p2p::node::DEFAULT_LISTEN)]
    pub listen: String,
    /// Other bootstrap nodes to join (/ip4/…/tcp/…/p2p/PEER_ID). Repeatable.
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
    /// The node's identity, as for `p2p serve` (a stable peer id keeps the address valid).
    #[arg(long, value_name = "FILE")]
    pub identity_file: Option<PathBuf>,
    /// Also write the address to FILE (atomically).
    #[arg(long, value_name = "FILE")]
    pub addr_file: Option<PathBuf>,
}

/// `sealstream p2p subscribe`.
#[derive(Debug, Args)]
#[cfg(feature = "p2p")]
pub struct P2pSubscribeArgs {
    /// The seller's peer id (12D3KooW…): the feed's DHT key derives from it, and only
    /// this peer is trusted for the feed.
    #[arg(long, value_name = "PEER_ID")]
    pub seller: String,
    /// The feed's name (the topic, as the listing names it).
    #[arg(long, value_name = "NAME")]
    pub feed: String,
    /// The subscription (sub_…) that entitles this buyer.
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "order",
        conflicts_with = "order"
    )]
    pub subscription: Option<String>,
    /// Or a paid dataset order (ord_…): the dataset's chunks, then the feed ends.
    #[arg(long, value_name = "ID")]
    pub order: Option<String>,
    /// File holding the buyer's X25519 secret key (hex). Give it once per key after
    /// renewals with a new key; the last one is presented to the seller.
    #[arg(long = "buyer-private-key-file", value_name = "FILE", required = true)]
    pub buyer_key_file: Vec<PathBuf>,
    /// A DHT bootstrap peer (/ip4/…/tcp/…/p2p/PEER_ID). Repeatable.
    #[arg(
        long,
        value_name = "MULTIADDR",
        required_unless_present = "seller_addr"
    )]
    pub bootstrap: Vec<String>,
    /// The seller's address (ending in its /p2p/PEER_ID), to dial without the DHT.
    #[arg(long, value_name = "MULTIADDR")]
    pub seller_addr: Option<String>,
    /// Take chunk data from the feed's other providers (relays), keys from the seller.
    #[arg(long)]
    pub relays: bool,
    /// Where the plaintext goes: a file (appended, with FILE.follow-state beside it), or
    /// - for stdout (no resumption).
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// What is written, as for `follow --format`.
    #[arg(long, value_enum, default_value_t = FollowFormatArg::Raw)]
    pub format: FollowFormatArg,
    /// Also keep each chunk checked (chunk-N.json, chunk-N.bin) in DIR, for `p2p relay`.
    #[arg(long, value_name = "DIR")]
    pub keep_chunks: Option<PathBuf>,
    /// The node's identity, as for `p2p serve`: it signs the hello.
    #[arg(long, value_name = "FILE")]
    pub identity_file: Option<PathBuf>,
    /// Give up when the seller stays unreachable this long, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub reconnect_for: u64,
}

/// `sealstream p2p relay`.
#[derive(Debug, Args)]
#[cfg(feature = "p2p")]
pub struct P2pRelayArgs {
    /// The seller's peer id.
    #[arg(long, value_name = "PEER_ID")]
    pub seller: String,
    /// The feed's name.
    #[arg(long, value_name = "NAME")]
    pub feed: String,
    /// The chain directory holding the feed's chunks.
    #[arg(long, value_name = "DIR")]
    pub chunk_dir: PathBuf,
    /// A DHT bootstrap peer. Repeatable; at least one.
    #[arg(long, value_name = "MULTIADDR", required = true)]
    pub bootstrap: Vec<String>,
    /// The multiaddr to listen on.
    #[arg(long, value_name = "MULTIADDR", default_value = sealstream_p2p::node::DEFAULT_LISTEN)]
    pub listen: String,
    /// The node's identity, as for `p2p serve`.
    #[arg(long, value_name = "FILE")]
    pub identity_file: Option<PathBuf>,
    /// Also write the address to FILE (atomically).
    #[arg(long, value_name = "FILE")]
    pub addr_file: Option<PathBuf>,
}

/// `sealstream p2p status`.
#[derive(Debug, Args)]
#[cfg(feature = "p2p")]
pub struct P2pStatusArgs {
    /// The --status-file of the running `p2p serve`.
    #[arg(long, value_name = "FILE")]
    pub status_file: PathBuf,
}

/// `sealstream p2p fetch`.
#[derive(Debug, Args)]
#[cfg(feature = "p2p")]
pub struct P2pFetchArgs {
    /// The seller's URL (peaqos-p2p://…?addr=…&session=…).
    pub url: String,
    /// The delivery session id (from the market's delivery).
    #[arg(long, value_name = "ID")]
    pub session_id: String,
    /// The buyer id.
    #[arg(long, value_name = "ID")]
    pub buyer_id: String,
    /// The purchase id for the handshake (default: the URL's session parameter).
    #[arg(long, value_name = "ID")]
    pub purchase_id: Option<String>,
    /// The chain directory to write: created if missing, refused if it holds chunk files.
    #[arg(long, value_name = "DIR")]
    pub output_dir: PathBuf,
    /// The most chunks to accept: the transfer is bounded by this many 1 MiB frames.
    #[arg(long, value_name = "N", default_value_t = sealstream_p2p::node::DEFAULT_MAX_CHUNKS)]
    pub max_chunks: u64,
    /// The node's Ed25519 identity, as for `p2p serve`.
    #[arg(long, value_name = "FILE")]
    pub identity_file: Option<PathBuf>,
    /// How long to wait for the connection to the seller, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
}

/// `sealstream follow`.
#[derive(Debug, Args)]
#[cfg(feature = "agent")]
pub struct FollowArgs {
    #[command(flatten)]
    pub session: MarketSession,
    /// The subscription id (sub_…).
    #[arg(long, value_name = "ID")]
    pub subscription: String,
    /// File holding the buyer's X25519 secret key (hex): it opens the chunk keys. Give it
    /// once per key after renewals with a new key (--rotate-key): each chunk is opened
    /// with the key it is wrapped to.
    #[arg(
        long = "buyer-private-key-file",
        alias = "buyer-key-file",
        value_name = "FILE",
        required = true
    )]
    pub buyer_key_file: Vec<PathBuf>,
    /// Where the plaintext goes: a file (appended, with FILE.follow-state beside it), or
    /// - for stdout (no resumption).
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// What is written: raw = the chunks' plaintext bytes; jsonl = the data packages the
    /// plaintext holds (JSON lines), each package's signature verified, one compact JSON
    /// object a line.
    #[arg(long, value_enum, default_value_t = FollowFormatArg::Raw)]
    pub format: FollowFormatArg,
}

/// `follow --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[cfg(feature = "agent")]
pub enum FollowFormatArg {
    /// The plaintext bytes.
    Raw,
    /// One verified data package a line.
    Jsonl,
}

const DISPUTE_EXIT_CODES: &str = concat!(
    "\
Exit codes:
  0  the evidence proves a fault of the seller's signed data (kind, chunk and what was found
     are printed)
  1  bad input: a file that cannot be read, or not evidence (malformed JSON, a missing or
     malformed field, named)
  2  the evidence is well formed but proves no fault (the reason is printed)",
    usage_exit_line!(),
);

/// `sealstream dispute`.
#[derive(Debug, Subcommand)]
pub enum DisputeCommand {
    /// Check dispute evidence (sealstream.dispute-evidence.v1, docs/formats.md) without the
    /// market: the dataset manifest's signatures, the chunk envelope's signature by the
    /// dataset's machine chain key, the chunk's index in the dataset's range, then the kind's
    /// fault: ciphertext-hash (the ciphertext's SHA-256 is not the signed encryptedDataHash),
    /// decrypt-failure (the access entry, opened with the order's X25519 secret the evidence
    /// carries, does not decrypt the signed ciphertext) or not-in-root (a valid inclusion
    /// proof of the chunk's index against the signed Merkle root names another chunk). The
    /// market runs the same check on a dispute, and also checks that the ciphertext and the
    /// access entry are what it served for the order.
    #[command(after_help = DISPUTE_EXIT_CODES)]
    Verify {
        /// The evidence file (JSON).
        file: PathBuf,
    },
}

const RECEIPT_EXIT_CODES: &str = concat!(
    "\
Exit codes:
  0  the receipt is valid: well formed, and its signature verifies (by --server-key when given)
  1  bad input: a file that cannot be read, a malformed receipt (the file and the field are
     named), a malformed --server-key, a PDF without a receipt.json attachment
  2  integrity: the signature does not verify (the receipt was changed after signing), or
     the receipt is signed by another key than --server-key; a receipt PDF with two
     receipt.json attachments, or whose attachment is not an associated file (/AF) or
     cannot be decoded",
    usage_exit_line!(),
    "

The summary goes to stderr; --json output goes to stdout."
);

#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Verify a license receipt (sealstream.receipt.v1 or v2, docs/formats.md) or a
    /// subscription's cut-off notice (sealstream.subscription-cutoff.v1,
    /// docs/subscriptions.md) without the market: read it strictly, check the Ed25519
    /// signature over it and, with --server-key, that the market's key made it. For a
    /// receipt prints the order, listing, dataset and its root, buyer, amount, payment,
    /// times and signing key; for a notice the subscription, its buyer and seller, why it
    /// ended, when access ended and the highest chunk index it is entitled to. A v2
    /// receipt or a disclosure made from one (`receipt disclose`) is checked field by
    /// field against the signed commitments, and the fields it shows are printed
    /// (`verify-disclosure` is the same command). A PDF receipt (a file starting with
    /// %PDF-) is read as a viewer reads it, and the one receipt.json attached to it and
    /// listed as the document's associated file is checked as above; the page itself is
    /// a rendering and is not signed.
    #[command(after_help = RECEIPT_EXIT_CODES, alias = "verify-disclosure")]
    Verify {
        /// The receipt or cut-off notice file (JSON), or a receipt PDF (`market order
        /// receipt --pdf`), whose attached receipt.json is checked.
        file: PathBuf,
        /// The market's receipt public key (64 hex digits, optional 0x): the receipt must be
        /// signed by it. Without it any signer is accepted, which only shows that the receipt
        /// is unchanged since someone signed it.
        #[arg(long, value_name = "HEX")]
        server_key: Option<String>,
    },
    /// Make a disclosure of some fields of a v2 receipt (sealstream.receipt.v2): the
    /// market's signature and commitments with only the chosen fields' values and salts,
    /// so whoever checks it (`receipt verify-disclosure`) learns those fields, that the
    /// market signed them, and nothing of the others. The receipt is verified first.
    /// Written to --output (created 0600), or stdout.
    #[command(after_help = RECEIPT_EXIT_CODES)]
    Disclose {
        /// The v2 receipt file (JSON), or a disclosure with more fields, or a receipt PDF
        /// with a v2 receipt attached (`market order receipt --pdf --v2`).
        file: PathBuf,
        /// The fields to show, separated by commas (e.g. datasetRoot,license,paidAt).
        #[arg(long, value_name = "NAMES", value_delimiter = ',', required = true)]
        fields: Vec<String>,
        /// Where to write the disclosure (default: stdout).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

const MARKET_EXIT_CODES: &str = concat!(
    "\
Exit codes:
  0  success (audit verify: the audit log is intact)
  1  bad input or an unusable database: flags, a database that cannot be opened,
     an address that cannot be bound, an unreadable key file; upload and
     grant-daemon: files that cannot be read, a server that stays unreachable
  2  integrity: the audit log does not verify (the first bad event is named);
     upload: the server refused a chunk or the dataset (its reason is printed);
     grant-daemon --once: an order could not be granted (each one is named), or
     the server refused the owner; machine, dataset, listing, order: the server
     refused (its status, the field and its reason are printed), or a chunk it
     served does not decrypt or does not match the root it computed; login, search,
     topics, receipt, link, operator-key, admin: the server refused; sample get: the
     server refused, or the sample does not verify (--verify: its inclusion proof or
     the dataset's signature) or decrypt (--decrypt)",
    usage_exit_line!(),
    "

--server defaults to $SEALSTREAM_SERVER, else http://127.0.0.1:8080."
);

/// The market a client command talks to when `--server` is not given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// The environment variable that gives `--server` when it is not on the
/// command line.
pub const SERVER_ENV: &str = "SEALSTREAM_SERVER";

#[derive(Debug, Subcommand)]
pub enum MarketCommand {
    /// Run the market server until SIGTERM or SIGINT (then finish requests in flight and
    /// exit 0). Opens or creates the database and the object store, brings the schema up
    /// to date, records a `server.start` event in the audit log and serves the JSON API
    /// described at GET /openapi.json (sign-in, machines and operator keys, verified chunk
    /// ingest, datasets and proofs, listings, catalog, orders, payment proofs checked on
    /// the --evm-rpc chains, grants, release packages and links, signed receipts),
    /// GET /healthz, GET /metrics (Prometheus text) and GET /v1/audit/head. Paid orders
    /// of machines with an operator key are granted by the server itself. Logs go to
    /// stderr.
    #[command(after_help = MARKET_EXIT_CODES)]
    #[cfg(feature = "market")]
    Serve(Box<MarketServeArgs>),
    /// Grant paid orders on the owner's side: sign in as the owner, list the paid orders
    /// of the owner's listings that are not granted yet, re-wrap every chunk key of each
    /// order's dataset from the owner's X25519 key to the buyer's key (checking each
    /// key against its commitment), and upload the buyer access files. Repeats every
    /// --interval seconds until SIGTERM or SIGINT (or once, with --once). Keeps no state:
    /// a restart picks up whatever is still paid and not granted, and the server stores
    /// one grant per order, so nothing is granted twice or skipped. The owner's keys
    /// never leave this process. (Orders of machines whose operator key the owner
    /// registered with the server, PUT /v1/machines/{did}/operator-key, are granted by
    /// the server itself.) With --follow it also grants live subscriptions: for the topic
    /// of each of the owner's subscription listings, the chunks each subscription is
    /// entitled to and holds no key of (GET .../subscription-grants), each chunk key
    /// opened with the owner key, checked against its commitment, sealed to the
    /// subscriber's key in force and stored (PUT /v1/subscriptions/{id}/grants); the
    /// server refuses pairs not entitled and counts duplicates, so a restart is safe.
    #[command(after_help = MARKET_EXIT_CODES)]
    GrantDaemon {
        /// The server (http(s)://HOST:PORT).
        #[arg(long, value_name = "URL", env = SERVER_ENV, default_value = DEFAULT_SERVER)]
        server: String,
        /// File holding the owner's secp256k1 key (hex): it signs in.
        #[arg(long)]
        key_file: PathBuf,
        /// File holding the owner's X25519 recipient secret key (hex): it opens the chunk
        /// keys.
        #[arg(long = "owner-private-key-file", alias = "owner-key-file")]
        owner_key_file: PathBuf,
        /// One pass, then exit (0 when every pending order was granted, 2 otherwise).
        #[arg(long)]
        once: bool,
        /// Also grant the chunks of live subscriptions of the owner's listings.
        #[arg(long)]
        follow: bool,
        /// Seconds between passes.
        #[arg(long, default_value_t = 5, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
        /// Largest buyer access file, in bytes (as the reference measures them).
        #[arg(long, default_value_t = 512_000)]
        max_file_size: usize,
    },
    /// The hash-linked audit log.
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    #[cfg(feature = "market")]
    Audit(MarketAuditCommand),
    /// Upload a published chain (chunk-N.json, chunk-N.bin, and dataset.json if present)
    /// to a market server as a machine: sign in with the machine's key, skip the chunks
    /// the server already holds, upload the rest in order (retrying network errors and
    /// 5xx), then the dataset manifest. The machine must be registered by its owner.
    #[command(after_help = MARKET_EXIT_CODES)]
    Upload {
        /// The server (http(s)://HOST:PORT).
        #[arg(long, value_name = "URL", env = SERVER_ENV, default_value = DEFAULT_SERVER)]
        server: String,
        /// Directory of the chain (as written by `publish` or an agent destination).
        #[arg(long)]
        chunk_dir: PathBuf,
        /// The topic the chain carries (e.g. /sensor/gps).
        #[arg(long)]
        topic: String,
        /// File holding the machine's secp256k1 key (hex): it signs in.
        #[arg(long)]
        key_file: PathBuf,
        /// Attempts per request before giving up on transient failures.
        #[arg(long, default_value_t = 8)]
        attempts: u32,
    },
    /// Machines: the registration a machine signs for its owner, the owner's registration
    /// of it, and the owner's machines.
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    Machine(MarketMachineCommand),
    /// The owner's datasets: made from a range of a chain the server holds and signed on
    /// the owner's side.
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    Dataset(MarketDatasetCommand),
    /// Listings: anyone's published listing (show); the owner's own (list, create with
    /// sample keys disclosed, edit, publish, withdraw).
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    Listing(MarketListingCommand),
    /// Orders: a buyer orders a published listing; buyer and seller follow it; the seller
    /// marks invoice orders paid; the buyer makes release links and fetches receipts.
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    Order(MarketOrderCommand),
    /// As the buyer: subscribe to a published subscription listing for an X25519 key
    /// (docs/subscriptions.md). The first period is an order of its own, paid like any
    /// order (`market order pay`, or the seller's `market order mark-paid`); the
    /// subscription is active from its confirmation. Prints how to pay on stderr and the
    /// subscription id on stdout (`SUB=$(…)`; --json prints the whole answer).
    #[command(after_help = MARKET_EXIT_CODES)]
    Subscribe(Purchase),
    /// Subscriptions: the buyer's and the seller's view, history, cancellation (buyer),
    /// revocation (seller) and renewal (buyer, optionally with a new key).
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    Subscription(MarketSubscriptionCommand),
    /// Disclosure requests under dual approval: an auditor asks for a period's proven
    /// totals or for a case (an order, a listing or a party) with a legal basis; two
    /// distinct approvers with the compliance or admin role, never the requester,
    /// make it take effect for a set time; the requester then fetches exactly what
    /// was approved; the parties concerned see notices unless both approvers sealed
    /// the case. Every step is in the audit log.
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    Disclosure(MarketDisclosureCommand),
    // Browsing (anonymous), the session, and the owner's and admin's settings (issue 16).
    /// Sign in and print the session's bearer token on stdout, for scripts
    /// (`Authorization: Bearer TOKEN`); who signed in, with which roles and until when, on
    /// stderr. The token acts as the key's DID until it expires: keep it secret.
    /// With --web, print instead a link that signs a browser in to the market's web
    /// pages (the portal) as the key's DID: it works once, within 5 minutes.
    #[command(after_help = MARKET_EXIT_CODES)]
    Login {
        #[command(flatten)]
        session: MarketSession,
        /// Print a single-use link for a browser instead of a bearer token.
        #[arg(long)]
        web: bool,
    },
    /// Search the public catalog (no sign-in): published listings whose title,
    /// description, tags or schema hint hold every word of TEXT, filtered; newest first
    /// without TEXT, by relevance with it. A table on stdout (id, price, rail, chunks,
    /// title); --json prints the catalog page.
    #[command(after_help = MARKET_EXIT_CODES)]
    Search(MarketSearchArgs),
    /// The chains the server holds of a machine (as its owner, the machine or an admin):
    /// per topic the chunks held, their bytes, when the last one arrived and the head
    /// chunk. `market dataset create` without a range takes a whole chain.
    #[command(after_help = MARKET_EXIT_CODES)]
    Topics {
        #[command(flatten)]
        session: MarketSession,
        /// The machine (did:peaq:0x…).
        #[arg(long = "machine-did", alias = "machine", value_name = "DID")]
        machine: String,
    },
    /// Free sample chunks of published listings, checked and decrypted before buying.
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    Sample(MarketSampleCommand),
    /// The market's receipt signing key.
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    Receipt(MarketReceiptCommand),
    /// An order's bearer links (made with `market order link`).
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    Link(MarketLinkCommand),
    /// As the owner: let the server grant the paid orders of a machine itself, with the
    /// secret of the machine's operator recipient (opt-in), or stop it.
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    OperatorKey(MarketOperatorKeyCommand),
    /// As an admin: principals' roles.
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    Admin(MarketAdminCommand),
}

/// Where an anonymous request goes (no key, no sign-in).
#[derive(Debug, Args)]
pub struct MarketServer {
    /// The server (http(s)://HOST:PORT).
    #[arg(long, value_name = "URL", env = SERVER_ENV, default_value = DEFAULT_SERVER)]
    pub server: String,
}

/// The flags of `market search`.
#[derive(Debug, Args)]
pub struct MarketSearchArgs {
    #[command(flatten)]
    pub server: MarketServer,
    /// Words to find (every one must match) in titles, descriptions, tags and schema
    /// hints; without it, every published listing.
    #[arg(value_name = "TEXT")]
    pub text: Option<String>,
    /// Only listings of this domain (mobility, energy, …).
    #[arg(long)]
    pub domain: Option<String>,
    /// Only listings carrying this tag (repeatable: every one; case does not matter).
    /// The server filters by the first; the others are checked here on its results,
    /// asking for further pages as needed.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// What the listing sells: dataset (a signed range of a chain) or subscription (a
    /// machine's topic as it is recorded, paid per period).
    #[arg(long, value_enum, value_name = "KIND")]
    pub kind: Option<CatalogKind>,
    /// Only listings paid on this rail.
    #[arg(long, value_enum, value_name = "RAIL")]
    pub rail: Option<CatalogRail>,
    /// Only datasets of this machine (did:peaq:0x…).
    #[arg(long = "machine-did", value_name = "DID")]
    pub machine: Option<String>,
    /// Only datasets of this topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Lowest price, in the rail's base units (wei, cents).
    #[arg(long, value_name = "BASE_UNITS")]
    pub min_price: Option<String>,
    /// Highest price, in the rail's base units.
    #[arg(long, value_name = "BASE_UNITS")]
    pub max_price: Option<String>,
    /// Listings shown at most.
    #[arg(long, default_value_t = 20, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
}

/// What a catalog item sells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CatalogKind {
    /// A signed dataset: a range of one machine's chain.
    Dataset,
    /// A subscription: a machine's topic as it is recorded, paid per period.
    Subscription,
}

/// A payment rail, as `market search --rail` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CatalogRail {
    /// On an EVM chain (its native coin or an ERC-20 token).
    Evm,
    /// Against the seller's invoice, off chain.
    Invoice,
}

#[derive(Debug, Subcommand)]
pub enum MarketSampleCommand {
    /// Fetch a sample chunk of a published listing with no sign-in: the listing, its
    /// dataset's signed manifest, the chunk's envelope and ciphertext and its inclusion
    /// proof. --verify checks the proof against the manifest's Merkle root and the
    /// manifest's signature (by the machine, or by the listing's provider: the owner who
    /// signed it); --decrypt opens the chunk with its disclosed sample key (sealed to a
    /// throwaway key made here), checking the key's commitment and the plaintext's hash.
    /// With --output-dir the files are written there (dataset.json, chunk-N.json,
    /// chunk-N.bin, proof-N.json, and chunk-N.plaintext with --decrypt); without it the
    /// plaintext goes to stdout. Exit 2 when the proof, a signature or the decryption
    /// fails.
    #[command(after_help = MARKET_EXIT_CODES)]
    Get {
        #[command(flatten)]
        server: MarketServer,
        /// The listing id (ls_…).
        #[arg(value_name = "LISTING_ID")]
        listing: String,
        /// The sample's chain index [default: the listing's first sample].
        #[arg(long, value_name = "N")]
        index: Option<u64>,
        /// Check the chunk's inclusion proof against the dataset's signed root.
        #[arg(long)]
        verify: bool,
        /// Decrypt the chunk with its disclosed key.
        #[arg(long)]
        decrypt: bool,
        /// Write the files here (created if missing; each written atomically).
        #[arg(long = "output-dir", alias = "out-dir", value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MarketReceiptCommand {
    /// Print the market's Ed25519 receipt key (hex) on stdout, no sign-in: what
    /// `sealstream receipt verify --server-key` pins. Fetch it once and keep it; --json
    /// prints the server's answer.
    #[command(after_help = MARKET_EXIT_CODES)]
    Key {
        #[command(flatten)]
        server: MarketServer,
    },
}

#[derive(Debug, Subcommand)]
pub enum MarketLinkCommand {
    /// Revoke a bearer link of an order (as the one who made it): its URL stops working
    /// at once.
    #[command(after_help = MARKET_EXIT_CODES)]
    Revoke {
        #[command(flatten)]
        session: MarketSession,
        /// The order id (ord_…).
        #[arg(value_name = "ORDER_ID")]
        order: String,
        /// The link id, as `market order link` printed it.
        #[arg(value_name = "LINK_ID")]
        link: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MarketOperatorKeyCommand {
    /// Give the server the secret X25519 key of the machine's operator recipient
    /// (operator.x25519.sk of `keys generate`): it keeps it sealed under its own key and
    /// grants every paid order of the machine's datasets itself, with no grant daemon.
    /// The server checks that it is the key registered with the machine. Replaces an
    /// earlier one.
    #[command(after_help = MARKET_EXIT_CODES)]
    Set {
        #[command(flatten)]
        session: MarketSession,
        /// The machine (did:peaq:0x…).
        #[arg(long = "machine-did", alias = "machine", value_name = "DID")]
        machine: String,
        /// File holding the operator recipient's X25519 secret key (hex).
        #[arg(long = "operator-private-key-file", value_name = "FILE")]
        operator_key_file: PathBuf,
    },
    /// Remove the machine's operator key from the server: paid orders wait for the
    /// owner's grant daemon again.
    #[command(after_help = MARKET_EXIT_CODES)]
    Remove {
        #[command(flatten)]
        session: MarketSession,
        /// The machine (did:peaq:0x…).
        #[arg(long = "machine-did", alias = "machine", value_name = "DID")]
        machine: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MarketAdminCommand {
    /// Grant or revoke a principal's role.
    #[command(subcommand, after_help = MARKET_EXIT_CODES)]
    Role(MarketRoleCommand),
}

#[derive(Debug, Subcommand)]
pub enum MarketRoleCommand {
    /// Grant ROLE to DID; prints its roles now.
    #[command(after_help = MARKET_EXIT_CODES)]
    Grant {
        #[command(flatten)]
        session: MarketSession,
        /// The principal (did:peaq:0x…).
        did: String,
        /// machine, owner, buyer, auditor, compliance, arbiter or admin.
        #[arg(value_parser = roles())]
        role: String,
    },
    /// Revoke ROLE from DID; prints its roles now.
    #[command(after_help = MARKET_EXIT_CODES)]
    Revoke {
        #[command(flatten)]
        session: MarketSession,
        /// The principal (did:peaq:0x…).
        did: String,
        /// machine, owner, buyer, auditor, compliance, arbiter or admin.
        #[arg(value_parser = roles())]
        role: String,
    },
}

/// The roles of the market's principals (`sealstream_api::auth::Role`).
fn roles() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        sealstream_api::auth::Role::ALL
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>(),
    )
}

/// Who signs in (Sign-In with Ethereum) where.
#[derive(Debug, Args)]
pub struct MarketSession {
    /// The server (http(s)://HOST:PORT).
    #[arg(long, value_name = "URL", env = SERVER_ENV, default_value = DEFAULT_SERVER)]
    pub server: String,
    /// File holding the secp256k1 key (hex) that signs in: the owner's for machines,
    /// datasets and listings; the buyer's or the seller's for orders.
    #[arg(long, value_name = "FILE")]
    pub key_file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum MarketMachineCommand {
    /// On the machine: sign the registration statement naming --owner, the chain key and
    /// the recipient keys of keys.json (as `keys generate` writes it; recipient ids
    /// owner-1, operator-1, machine-1) with the machine's key and with the chain key
    /// (proof that the machine holds it). Writes the registration document the owner
    /// sends with `market machine register --registration` (to --output, or stdout). Needs
    /// no server.
    Sign {
        /// File holding the machine's secp256k1 key (hex).
        #[arg(long, value_name = "FILE")]
        machine_key_file: PathBuf,
        /// The public parts: keys.json of `sealstream keys generate`.
        #[arg(long, value_name = "FILE")]
        keys: PathBuf,
        /// File holding the chain's Ed25519 key (hex) [default: chain.ed25519.sk beside
        /// --keys].
        #[arg(long, value_name = "FILE")]
        chain_key_file: Option<PathBuf>,
        /// The owner the machine is registered to (did:peaq:0x…).
        #[arg(long, value_name = "DID")]
        owner: String,
        /// Write the registration here (atomically) instead of stdout.
        #[arg(long = "output", alias = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// As the owner: register a machine with its signed registration (checked here
    /// first: it must name the key signing in as owner). Either --registration, or the
    /// machine's key and keys.json to sign it on the spot.
    Register {
        #[command(flatten)]
        session: MarketSession,
        /// The registration `market machine sign` wrote.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["machine_key_file", "keys"])]
        registration: Option<PathBuf>,
        /// Sign here instead: the machine's secp256k1 key (with --keys).
        #[arg(long, value_name = "FILE", requires = "keys")]
        machine_key_file: Option<PathBuf>,
        /// Sign here instead: keys.json (with --machine-key-file).
        #[arg(long, value_name = "FILE", requires = "machine_key_file")]
        keys: Option<PathBuf>,
        /// Sign here instead: the chain's Ed25519 key [default: chain.ed25519.sk beside
        /// --keys].
        #[arg(long, value_name = "FILE", requires = "keys")]
        chain_key_file: Option<PathBuf>,
    },
    /// As the owner: the machines registered to the key signing in.
    List {
        #[command(flatten)]
        session: MarketSession,
    },
}

#[derive(Debug, Subcommand)]
pub enum MarketDatasetCommand {
    /// Make a dataset of chunks --from-index..=--to-index (or received --from-time..--to-time;
    /// without a range, the whole chain: every chunk of the topic the server holds, as
    /// `market topics` counts them) of a machine's topic and sign it as the owner: the
    /// server computes the Merkle root;
    /// this reads every chunk back, decrypts it with --owner-private-key-file for the sourceHash
    /// (the plaintext never leaves this process), checks the server's root against the
    /// envelopes, signs the manifest (EIP-191, the --key-file) and completes the dataset.
    /// For an index range, a dataset of it the owner already signed is reported as it is,
    /// and a draft of it (a run that stopped) is completed rather than made again.
    /// Prints the dataset id on stdout (`DATASET=$(…)`; --json prints the whole answer).
    Create {
        #[command(flatten)]
        session: MarketSession,
        /// File holding the owner's X25519 recipient secret key (hex).
        #[arg(
            long = "owner-private-key-file",
            alias = "owner-key-file",
            value_name = "FILE"
        )]
        owner_key_file: PathBuf,
        /// The machine (did:peaq:0x…).
        #[arg(long = "machine-did", alias = "machine", value_name = "DID")]
        machine: String,
        /// The chain's topic (e.g. /sensor/gps).
        #[arg(long)]
        topic: String,
        /// First chain index (inclusive).
        #[arg(long, value_name = "N", requires = "to_index", conflicts_with_all = ["from_time", "to_time"])]
        from_index: Option<u64>,
        /// Last chain index (inclusive).
        #[arg(long, value_name = "N", requires = "from_index")]
        to_index: Option<u64>,
        /// First chunk received at or after this time (YYYY-MM-DDTHH:MM:SSZ).
        #[arg(long, value_name = "TIME", requires = "to_time")]
        from_time: Option<String>,
        /// Up to the last chunk received before this time (YYYY-MM-DDTHH:MM:SSZ).
        #[arg(long, value_name = "TIME", requires = "from_time")]
        to_time: Option<String>,
        /// Decryption threads [default: the number of cores].
        #[arg(long = "parallelism", alias = "threads", value_name = "N")]
        threads: Option<usize>,
    },
    /// The datasets of the owner signing in, every page.
    List {
        #[command(flatten)]
        session: MarketSession,
    },
}

#[derive(Debug, Subcommand)]
pub enum MarketListingCommand {
    /// Create a listing from a JSON file (the body of POST /v1/listings: datasetId, title,
    /// description, tags, domain, schemaHint, license, price, rail, delivery,
    /// sampleChunkIndexes). Complete examples: docs/examples/listing.json (invoice rail)
    /// and docs/examples/listing-evm.json (EVM rail); the fields and the rail format are in
    /// docs/market-design.md, "Listing documents"; --dataset-id names the dataset on sale.
    /// A subscription listing (`"kind": "subscription"`, docs/subscriptions.md) sells a
    /// machine's topic as it is recorded, per period, instead of a dataset: complete
    /// example docs/examples/listing-subscription.json; --machine-did names the machine.
    /// An EVM rail must name a chain the server
    /// verifies payments on (its --evm-rpc). The sample chunks' keys are opened with
    /// --owner-private-key-file, checked against their commitments and disclosed, so
    /// anyone may preview them. --publish publishes it (it enters the catalog).
    /// Prints the listing id on stdout (`LISTING=$(…)`; --json prints the whole answer).
    Create {
        #[command(flatten)]
        session: MarketSession,
        /// The listing (JSON).
        #[arg(long, value_name = "FILE")]
        listing: PathBuf,
        /// The dataset on sale (ds_…, as `market dataset create` prints it): replaces the
        /// file's datasetId, which may then be left out (the examples leave it out).
        #[arg(long, value_name = "ID")]
        dataset_id: Option<String>,
        /// The machine of a subscription listing (did:peaq:0x…): replaces the file's
        /// subscription.machineDid, which may then be left out (the example leaves it out).
        #[arg(
            long = "machine-did",
            value_name = "DID",
            conflicts_with = "dataset_id"
        )]
        machine_did: Option<String>,
        /// File holding the owner's X25519 recipient secret key (hex); needed when the
        /// listing names sample chunks.
        #[arg(
            long = "owner-private-key-file",
            alias = "owner-key-file",
            value_name = "FILE"
        )]
        owner_key_file: Option<PathBuf>,
        /// Publish it once created.
        #[arg(long)]
        publish: bool,
    },
    /// Publish a draft listing: it enters the catalog. Its dataset must be signed and the
    /// keys of its sample chunks disclosed. A withdrawn listing stays withdrawn (the
    /// server answers 409): create a new listing of the same dataset instead.
    Publish {
        #[command(flatten)]
        session: MarketSession,
        /// The listing id (ls_…).
        id: String,
    },
    /// Withdraw a draft or published listing for good: it leaves the catalog and cannot be
    /// published again (orders already placed stand).
    Withdraw {
        #[command(flatten)]
        session: MarketSession,
        /// The listing id (ls_…).
        id: String,
    },
    /// Show a listing with no sign-in (published listings only): title, provider, price
    /// and rail, dataset and its root, samples, license. --json prints the server's answer.
    Show {
        #[command(flatten)]
        server: MarketServer,
        /// The listing id (ls_…).
        id: String,
    },
    /// The listings of the owner signing in, in every state, every page: one line each
    /// (id, state, price, dataset, title) on stdout; --json prints them all.
    List {
        #[command(flatten)]
        session: MarketSession,
    },
    /// Change fields of a draft or published listing: --listing is a JSON file with only
    /// the fields to change (the body of PATCH /v1/listings/{id}; null clears domain,
    /// schemaHint or license), e.g. {"price": "900", "tags": ["robotics"]}. New sample
    /// chunks have their keys disclosed with --owner-private-key-file.
    Edit {
        #[command(flatten)]
        session: MarketSession,
        /// The listing id (ls_…).
        id: String,
        /// The fields to change (JSON).
        #[arg(long, value_name = "FILE")]
        listing: PathBuf,
        /// File holding the owner's X25519 recipient secret key (hex); needed when the
        /// patch adds sample chunks.
        #[arg(long = "owner-private-key-file", value_name = "FILE")]
        owner_key_file: Option<PathBuf>,
    },
}

const ORDER_PAY_EXIT_CODES: &str = concat!(
    "\
Exit codes:
  0  the payment is confirmed, or (without --wait) sent and pending: what the
     server still waits for is printed
  1  bad input: flags, the key file, an order that cannot be paid this way
     (invoice rail, not awaiting payment, a payment already pending), a node
     on another chain, a server or node that cannot be reached
  2  refused: the node refused the transaction, it reverted or was not mined
     in time, or the server refused the payment (its reason is printed)",
    usage_exit_line!()
);

const ORDER_DISPUTE_EXIT_CODES: &str = concat!(
    "\
Exit codes:
  0  the dispute is recorded by the market and mined on chain (the market's verdict on
     the evidence is printed)
  1  bad input: flags, the key file, the evidence file, an order not in escrow, a node
     on another chain, a server or node that cannot be reached
  2  refused: the market refused the dispute (the window has passed, the order is not
     held), or the dispute transaction was refused, reverted or not mined in time",
    usage_exit_line!()
);

/// A list of the signing-in key's orders or subscriptions, on one side, every page.
#[derive(Debug, Args)]
pub struct PartyList {
    #[command(flatten)]
    pub session: MarketSession,
    /// buyer (its own) or seller (those of its listings).
    #[arg(long = "as", value_name = "SIDE", default_value = "buyer", value_parser = ["buyer", "seller"])]
    pub side: String,
    /// Only those in this state (orders: awaiting-payment, paid, granted, cancelled;
    /// subscriptions: awaiting-payment, active, grace, lapsed, cancelled, revoked).
    #[arg(long)]
    pub state: Option<String>,
}

/// What a buyer gives to order a dataset listing or subscribe to a subscription
/// listing: the session, the listing, the X25519 key and the recipient id.
#[derive(Debug, Args)]
pub struct Purchase {
    #[command(flatten)]
    pub session: MarketSession,
    /// The listing id (ls_…).
    #[arg(long, value_name = "ID")]
    pub listing: String,
    #[command(flatten)]
    pub key: BuyerKey,
    /// The recipient id of the access entries [default: the buyer's DID].
    #[arg(long, value_name = "ID")]
    pub buyer_id: Option<String>,
}

/// `market order create`: a purchase, and what a listing with a compliance preset
/// asks of its buyer.
#[derive(Debug, Args)]
pub struct OrderPurchase {
    #[command(flatten)]
    pub purchase: Purchase,
    /// Where you are (ISO 3166-1 alpha-2, e.g. DE): required by a listing with a
    /// compliance preset, which must allow it (the refusal names the jurisdictions it
    /// sells to).
    #[arg(long, value_name = "CODE")]
    pub jurisdiction: Option<String>,
    /// What the data is for (recorded in the order and its receipt): required by a
    /// listing with a compliance preset.
    #[arg(long, value_name = "TEXT")]
    pub purpose: Option<String>,
    /// Accept the listing's attestation (`market listing show` prints it): required
    /// when its preset has one.
    #[arg(long)]
    pub accept_attestation: bool,
}

/// The buyer's X25519 key: a secret key file (only its public part is sent) or the
/// public key.
#[derive(Debug, Args)]
pub struct BuyerKey {
    /// File holding the buyer's X25519 secret key (hex): only its public part is sent.
    #[arg(
        long = "buyer-private-key-file",
        alias = "buyer-key-file",
        value_name = "FILE",
        required_unless_present = "buyer_public_key",
        conflicts_with = "buyer_public_key"
    )]
    pub buyer_key_file: Option<PathBuf>,
    /// The buyer's X25519 public key (hex), instead of --buyer-private-key-file.
    #[arg(long, value_name = "HEX")]
    pub buyer_public_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MarketSubscriptionCommand {
    /// One subscription, as its buyer or seller sees it: state, paid-through time, grace
    /// end, access end, keys, periods, and how to pay a period awaiting payment.
    Show {
        #[command(flatten)]
        session: MarketSession,
        /// The subscription id (sub_…).
        id: String,
    },
    /// The subscriptions of the key signing in: its own (--as buyer) or those of its
    /// listings (--as seller), every page: one line each on stdout.
    List(PartyList),
    /// As the buyer: cancel a subscription. Access runs to the end of the paid time,
    /// without grace; an unpaid period is cancelled (a payment already sent is not
    /// refunded).
    Cancel {
        #[command(flatten)]
        session: MarketSession,
        /// The subscription id (sub_…).
        id: String,
    },
    /// As the seller: revoke a subscription, with a reason the buyer sees. Access ends
    /// now: no chunk accepted from now on is granted to it.
    Revoke {
        #[command(flatten)]
        session: MarketSession,
        /// The subscription id (sub_…).
        id: String,
        /// Why (1 to 500 characters).
        #[arg(long)]
        reason: String,
    },
    /// As the buyer: ask for one more period (while active or in grace). The period is
    /// an order of its own: pay it like any order; the paid time grows by one period
    /// when it is confirmed (without a gap when paid in grace). With --rotate-key (or
    /// --new-buyer-public-key), chunks accepted from the renewal's confirmation on are
    /// wrapped to the new key only. Prints the new period's order id on stdout.
    Renew {
        #[command(flatten)]
        session: MarketSession,
        /// The subscription id (sub_…).
        id: String,
        /// File holding the new X25519 secret key (hex): only its public part is sent.
        #[arg(long, value_name = "FILE", conflicts_with = "new_buyer_public_key")]
        rotate_key: Option<PathBuf>,
        /// The new X25519 public key (hex), instead of --rotate-key.
        #[arg(long, value_name = "HEX")]
        new_buyer_public_key: Option<String>,
        /// Keep the subscription paid (EVM rail): a loop that pays the period awaiting
        /// payment from the signing-in key (as `market order pay`), asks for the next
        /// renewal when less than --before seconds are paid or in grace, and exits 0 once
        /// the subscription is cancelled, revoked or lapsed (or on SIGINT/SIGTERM). A
        /// restart pays a renewal left awaiting payment rather than asking for another.
        #[arg(
            long,
            requires = "rpc",
            conflicts_with_all = ["rotate_key", "new_buyer_public_key"]
        )]
        auto: bool,
        /// With --auto: the chain's JSON-RPC endpoint (http:// or https://).
        #[arg(long, value_name = "URL", requires = "auto")]
        rpc: Option<String>,
        /// With --auto: renew when less than this many seconds are paid (default: a tenth
        /// of the period, at least 30).
        #[arg(long, value_name = "SECONDS", requires = "auto")]
        before: Option<u64>,
        /// With --auto: the longest sleep between two looks at the subscription.
        #[arg(long, value_name = "SECONDS", default_value_t = 60, requires = "auto",
              value_parser = clap::value_parser!(u64).range(1..))]
        poll: u64,
        /// With --auto: EIP-155 legacy transactions even on a chain with EIP-1559 fees.
        #[arg(long, requires = "auto")]
        legacy: bool,
        /// With --auto: how long to wait for a payment to be mined and confirmed.
        #[arg(long, default_value_t = 300, value_name = "SECONDS", requires = "auto",
              value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
    },
    /// A subscription's history (its buyer or seller): every state change with the time
    /// it took effect, who made it and what it carried.
    History {
        #[command(flatten)]
        session: MarketSession,
        /// The subscription id (sub_…).
        id: String,
    },
    /// Fetch the signed cut-off notice of a subscription that ended (its buyer or seller;
    /// sealstream.subscription-cutoff.v1): why it ended, when access ended and the highest
    /// chunk index it is entitled to, signed with the market's receipt key. Issued once the
    /// subscription is lapsed, cancelled or revoked and its access end has passed (a
    /// cancellation runs to the end of the paid period). To --output (atomically) or
    /// stdout; check it offline with `sealstream receipt verify`.
    Cutoff {
        #[command(flatten)]
        session: MarketSession,
        /// The subscription id (sub_…).
        id: String,
        /// Write the notice here instead of stdout.
        #[arg(long = "output", alias = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MarketDisclosureCommand {
    /// File a request (auditors): --log/--from/--to for a period's totals, or one of
    /// --order, --listing, --party for a case (with --fields, the receipt fields to
    /// disclose of each of its paid orders; without, who took part only). Prints its id.
    Request {
        #[command(flatten)]
        session: MarketSession,
        /// Why the disclosure is lawful.
        #[arg(long, value_name = "TEXT")]
        legal_basis: String,
        /// Period: the receipt log (market or `seller:<did>`).
        #[arg(long, value_name = "LOG", requires_all = ["from", "to"], conflicts_with_all = ["order", "listing", "party"])]
        log: Option<String>,
        /// Period start (YYYY-MM-DDTHH:MM:SSZ, on the log's epoch).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Period end, excluded.
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Case: one order.
        #[arg(long, value_name = "ID", conflicts_with_all = ["listing", "party"])]
        order: Option<String>,
        /// Case: the paid orders of one listing.
        #[arg(long, value_name = "ID", conflicts_with = "party")]
        listing: Option<String>,
        /// Case: the paid orders one party bought or sold.
        #[arg(long, value_name = "DID")]
        party: Option<String>,
        /// Case: receipt fields to disclose (e.g. datasetRoot,amount).
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        fields: Vec<String>,
        /// How long the access lasts once approved, in seconds (at most 30 days).
        #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
        access_seconds: u64,
    },
    /// List requests: an auditor's own; all for compliance and admins.
    List {
        #[command(flatten)]
        session: MarketSession,
    },
    /// Show one request with its approvals.
    Show {
        #[command(flatten)]
        session: MarketSession,
        /// The request id (dr_…).
        id: String,
    },
    /// Approve a request (compliance, admins; never its requester). The second
    /// distinct approval puts it in effect.
    Approve {
        #[command(flatten)]
        session: MarketSession,
        /// The request id.
        id: String,
        /// Seal the case: the parties are not told (only when both approvers seal).
        #[arg(long)]
        seal: bool,
    },
    /// Reject a request.
    Reject {
        #[command(flatten)]
        session: MarketSession,
        /// The request id.
        id: String,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Fetch what an approved request discloses (its requester, while the access
    /// lasts) and verify it: a total proof against the market's signed head, each
    /// receipt disclosure against the market's signature (with --server-key, that key).
    /// Written to --output (0600) or stdout.
    Fetch {
        #[command(flatten)]
        session: MarketSession,
        /// The request id.
        id: String,
        /// The market's receipt public key (hex).
        #[arg(long, value_name = "HEX")]
        server_key: Option<String>,
        /// Where to write the disclosure (JSON).
        #[arg(long = "output", alias = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The disclosures that concern you (a party to a disclosed order, or the seller of a
    /// disclosed log), unless sealed.
    Notices {
        #[command(flatten)]
        session: MarketSession,
    },
}

#[derive(Debug, Subcommand)]
pub enum MarketOrderCommand {
    /// As the buyer: order a published listing for an X25519 key. Prints how to pay: on an
    /// EVM rail the chain, pay-to, amount, token, the one address the server accepts the
    /// payment from (the signing-in key's), the `market order pay` command to run and the
    /// payment proof URL for `peaqos stream pay --confirmation-url`; on the invoice rail
    /// the `market order mark-paid` command the seller runs. Prints the order id on
    /// stdout (`ORDER=$(…)`; --json prints the whole answer); the rest goes to stderr.
    Create(OrderPurchase),
    /// One order, as its buyer or seller sees it: its payment, claims, and what to run
    /// next (pay, mark paid, or make the release link for `consume --download-url`).
    Show {
        #[command(flatten)]
        session: MarketSession,
        /// The order id (ord_…).
        id: String,
    },
    /// The orders of the key signing in: its purchases (--as buyer) or the orders of its
    /// listings (--as seller), by id, every page. One line each: id, state, listing, the
    /// other party, created, and for the order paying a period of a live subscription
    /// `subscription sub_…` (--json: `subscriptionId`).
    List {
        #[command(flatten)]
        list: PartyList,
        /// Which orders: `order` (of datasets), `period` (paying a subscription's period),
        /// or `all`.
        #[arg(long, value_name = "KIND", default_value = "all", value_parser = ["order", "period", "all"])]
        kind: String,
    },
    /// As the seller: mark an invoice order paid, with the invoice or bank reference.
    MarkPaid {
        #[command(flatten)]
        session: MarketSession,
        /// The order id (ord_…).
        id: String,
        /// The invoice or bank reference.
        #[arg(long)]
        reference: String,
    },
    /// Make a bearer link (revocable with `market link revoke`): as the
    /// buyer, to the release package (for `consume --download-url`); as the seller, to the
    /// confirmation (for `peaqos stream distribute --confirmation-url`). Prints the URL on
    /// stdout.
    Link {
        #[command(flatten)]
        session: MarketSession,
        /// The order id (ord_…).
        id: String,
        /// release (the buyer) or confirmation (the seller).
        #[arg(long, default_value = "release", value_parser = ["release", "confirmation"])]
        purpose: String,
    },
    /// As the buyer: cancel an order that is not paid yet (a payment already sent is not
    /// refunded: cancel only what you will not pay).
    Cancel {
        #[command(flatten)]
        session: MarketSession,
        /// The order id (ord_…).
        id: String,
    },
    /// As the buyer: pay an order on its EVM chain with the key that signs in (the only
    /// payer the server accepts). Reads the order's payment instructions (chain id, pay-to,
    /// amount, native coin or ERC-20 token), checks that --rpc serves that chain, builds
    /// the transaction (nonce, fees and gas limit from the node; EIP-1559 where the chain
    /// has a base fee, else EIP-155 legacy), signs and sends it, waits until it is mined,
    /// posts its payment proof to the order and prints the server's answer: confirmed,
    /// pending (what it still waits for: confirmations, the transaction) or refused with
    /// the server's reason (exit 2). With --wait, then polls the order until it is paid
    /// or the claim is refused. Refuses to pay an order that already has a pending
    /// payment of the buyer's; --tx-hash posts the proof of a payment already sent.
    #[command(after_help = ORDER_PAY_EXIT_CODES)]
    Pay {
        #[command(flatten)]
        session: MarketSession,
        /// The order id (ord_…).
        id: String,
        /// A JSON-RPC endpoint of the order's chain (http(s)://…).
        #[arg(long, value_name = "URL")]
        rpc: String,
        /// After the proof, poll the order until it is paid (exit 0) or the server refuses
        /// the payment (exit 2).
        #[arg(long)]
        wait: bool,
        /// Send an EIP-155 legacy transaction even on a chain with EIP-1559 fees.
        #[arg(long)]
        legacy: bool,
        /// Send nothing: post the proof of this transaction (0x…), already sent to pay
        /// the order (after a proof that did not reach the server, or to wait again).
        #[arg(long, value_name = "HASH")]
        tx_hash: Option<String>,
        /// Seconds to wait for the transaction to be mined, and with --wait for the order
        /// to be paid.
        #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
    },
    /// As the buyer: dispute an order paid into escrow, within its dispute window, with
    /// evidence (sealstream.dispute-evidence.v1; check it first with `sealstream dispute
    /// verify`). Posts the evidence to the market (which checks it at once, against what
    /// it served for the order, and prints its verdict), then sends `dispute(orderKey,
    /// evidenceHash)` to the escrow contract from the key that signs in (the buyer's, the
    /// only one the contract accepts) and waits until it is mined. Valid evidence of a
    /// fault is refunded in full by the market's escrow job; other disputes wait for an
    /// arbiter's split, or lapse to the seller at the arbitration deadline.
    #[command(after_help = ORDER_DISPUTE_EXIT_CODES)]
    Dispute {
        #[command(flatten)]
        session: MarketSession,
        /// The order id (ord_…).
        id: String,
        /// The evidence file (JSON).
        #[arg(long, value_name = "FILE")]
        evidence: PathBuf,
        /// A JSON-RPC endpoint of the order's chain (http(s)://…).
        #[arg(long, value_name = "URL")]
        rpc: String,
        /// Seconds to wait for the dispute transaction to be mined.
        #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
    },
    /// Show an escrowed order's escrow (its buyer, seller, an arbiter): state, the end of
    /// the dispute window (or the arbitration deadline), the evidence's verdict, the split.
    Escrow {
        #[command(flatten)]
        session: MarketSession,
        /// The order id (ord_…).
        id: String,
    },
    /// As an arbiter (role `arbiter`): decide a disputed escrowed order. --to-buyer base
    /// units go back to the buyer, the rest to the seller; the market sends the escrow's
    /// `resolve` with its arbiter key.
    Resolve {
        #[command(flatten)]
        session: MarketSession,
        /// The order id (ord_…).
        id: String,
        /// What goes back to the buyer, in the rail's base units (at most the amount held).
        #[arg(long, value_name = "BASE_UNITS")]
        to_buyer: String,
    },
    /// Fetch the order's signed license receipt (its buyer or seller), to --output
    /// (atomically) or stdout; check it with `sealstream receipt verify`. With --pdf, the
    /// receipt as a PDF/A-3 document for people: a page showing it, the signed receipt
    /// attached as receipt.json (`sealstream receipt verify FILE.pdf` checks the
    /// attachment; the page itself is not signed).
    Receipt {
        #[command(flatten)]
        session: MarketSession,
        /// The order id (ord_…).
        id: String,
        /// Write the receipt here instead of stdout.
        #[arg(long = "output", alias = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        /// Fetch the receipt with selective disclosure (sealstream.receipt.v2) instead:
        /// show some of its fields with `sealstream receipt disclose`. With --pdf, the
        /// v2 receipt is the one attached.
        #[arg(long)]
        v2: bool,
        /// Fetch the receipt as a PDF/A-3 document (docs/formats.md, "Receipt PDFs")
        /// with the signed receipt attached, instead of the JSON.
        #[arg(long)]
        pdf: bool,
    },
    #[cfg(feature = "market")]
    /// Check that the market logged the order's receipt honestly: fetch the receipt and
    /// its place in the market's receipt log (and, for the seller, in the seller's log)
    /// with the leaf's opening, and verify that the leaf is the receipt's, commits to
    /// the receipt's own amount and currency, and leads to the signed head. Exit 2 when
    /// not.
    ReceiptLog {
        #[command(flatten)]
        session: MarketSession,
        /// The order id (ord_…).
        id: String,
    },
}

/// The flags of `market serve`.
#[cfg(feature = "market")]
#[derive(Debug, Args)]
pub struct MarketServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    #[command(flatten)]
    pub db: MarketDbArgs,
    /// Where chunk ciphertexts are stored: s3://BUCKET/PREFIX (endpoint, region and
    /// credentials from the AWS_* environment variables) or file:///PATH [default:
    /// DATA_DIR/objects].
    #[arg(long, value_name = "URL")]
    pub object_store: Option<String>,
    /// Give this DID (did:peaq:0x…) the admin role; repeatable.
    #[arg(long = "admin", value_name = "DID")]
    pub admins: Vec<String>,
    /// Largest request body on every route but chunk upload, in bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Largest chunk upload (envelope and ciphertext), in bytes.
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    pub max_chunk_bytes: usize,
    /// Largest grant upload (a paid order's access files), in bytes.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub max_grant_bytes: usize,
    /// The server's public base URL (https://market.example.org), as clients reach
    /// it: sign-in messages must name its host, and the URLs in orders and links
    /// start with it. Required unless --listen is a loopback address (then
    /// http://LISTEN). Request headers (Host, X-Forwarded-*) never change it.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Also serve GET /metrics (Prometheus text) without a session on this address, for
    /// a scraper on a private network; on --listen, /metrics needs an admin or auditor
    /// session.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Seconds between signatures of the audit log's head while events are appended
    /// (it is also signed at start, at shutdown and on GET /v1/audit/head).
    #[arg(long, default_value_t = 1, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub audit_sign_interval: u64,
    /// The EIP-155 chain id sign-in messages may name (`Chain ID`); repeatable
    /// [default: 3338, peaq]. The first is the one POST /v1/auth/nonce suggests.
    #[arg(long = "sign-in-chain-id", value_name = "CHAIN_ID")]
    pub sign_in_chain_ids: Vec<u64>,
    /// Verify payments on EVM chain CHAIN_ID through this JSON-RPC endpoint;
    /// repeatable, e.g. --evm-rpc 8453=https://mainnet.base.org. The server checks
    /// at start that the endpoint serves that chain. A listing on a chain without an
    /// endpoint is refused (created, changed or published) and cannot be ordered.
    #[arg(long = "evm-rpc", value_name = "CHAIN_ID=URL", value_parser = parse_evm_rpc)]
    pub evm_rpc: Vec<(u64, String)>,
    /// The escrow contract (contracts/SealstreamEscrow.sol, deployed with the
    /// --escrow-arbiter-key-file key's address as its arbiter) on chain CHAIN_ID;
    /// repeatable. A listing on that chain may then ask for escrow (rail "escrow": true):
    /// its buyers deposit into the contract, the market's escrow job releases each
    /// deposit to the seller once its dispute window has passed, and a buyer's dispute
    /// with valid evidence is refunded. The chain needs an --evm-rpc endpoint.
    #[arg(long = "escrow", value_name = "CHAIN_ID=ADDRESS", value_parser = parse_escrow)]
    pub escrow: Vec<(u64, String)>,
    /// The secp256k1 key file (hex) of the escrow contracts' arbiter: the market signs
    /// release and resolve calls with it and pays their gas from its address. Must not be
    /// readable by others (0600); never logged. Required with --escrow.
    #[arg(long, value_name = "FILE")]
    pub escrow_arbiter_key_file: Option<PathBuf>,
    /// Seconds between passes of the escrow job (releases after the window, refunds of
    /// valid disputes); a posted dispute also wakes it.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub escrow_sweep: u64,
    /// Seconds an escrowed invoice order (rail "escrow": true) is held after the seller
    /// marks it paid: the buyer may dispute meanwhile; then the market records it
    /// released. No chain: the states are the market's own.
    #[arg(long, default_value_t = 604_800, value_name = "SECONDS")]
    pub invoice_dispute_window: u64,
    /// Seconds an arbiter has to decide a disputed invoice order before the dispute lapses
    /// to the seller.
    #[arg(long, default_value_t = 604_800, value_name = "SECONDS")]
    pub invoice_arbitration_period: u64,
    /// Confirmations a payment needs before an order is paid (1 = mined), on every
    /// chain [default: per chain: 1 on a dev chain (chain id 31337, anvil and hardhat;
    /// 1337, ganache and geth --dev), whose node mines only when asked; 3 elsewhere].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub confirmations: Option<u64>,
    /// Seconds between checks of claimed payments still waiting for confirmations.
    #[arg(long, default_value_t = 5, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub payment_poll: u64,
    /// Seconds between sweeps of live subscriptions: grace at the end of the paid period,
    /// lapse at the end of the grace window, cut-off notices of subscriptions whose access
    /// ended (each is also settled whenever it is read or changed).
    #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub subscription_sweep: u64,
    /// The shortest period a subscription listing may have, in seconds (operator policy;
    /// at least 1): a listing with a shorter `subscription.periodSeconds` is refused (400).
    /// Short periods are for tests and demonstrations.
    #[arg(long, default_value_t = sealstream_api::listings::MIN_PERIOD_SECONDS, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=sealstream_api::listings::MAX_PERIOD_SECONDS))]
    pub min_subscription_period: u64,
    /// Seconds per epoch of a new receipt log (the market's, and each seller's when it
    /// gets its first receipt): proven totals cover periods on epoch boundaries, and a
    /// proof shows the epochs of the receipts at a period's edges. A log keeps the
    /// epoch it was made with. Short epochs are for tests and demonstrations.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=31_622_400))]
    pub receipt_log_epoch: u64,
    /// Seconds after its payment before a sale counts in the public numbers (a listing's
    /// sales bucket on its page, in the catalog and the API), so that watching a
    /// listing does not time a payment.
    #[arg(long, default_value_t = 86_400, value_name = "SECONDS")]
    pub public_stats_delay: u64,
    /// Seconds between refreshes of the public numbers.
    #[arg(long, default_value_t = 600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub public_stats_interval: u64,
    /// Snap listing prices to a ladder of tiers: mantissas separated by commas, the first
    /// 1, ascending, below 10, at most two decimals (1,2,5 makes 1234 cents 10.00 and 1800
    /// cents 20.00; a tie goes up). Off when not given.
    #[arg(long, value_name = "M,M,…", value_delimiter = ',')]
    pub price_ladder: Vec<String>,
    /// Grant paid orders with operator keys in batches at multiples of this many seconds
    /// (Unix time), so that a grant's time does not point at its payment; 0 grants at
    /// once. Live subscriptions' chunk keys are not held back.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub grant_batch_window: u64,
    /// Seconds a payment's block may be stamped before its order was made (the
    /// chain's clock against the server's); a transfer mined earlier does not pay
    /// the order.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub payment_skew: u64,
    /// Most open claims per order of transactions the chain's node does not know;
    /// past it a proof of another unknown transaction is refused (429). A proof of a
    /// transaction the node knows as the buyer's valid payment is not held by it.
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_claims_per_order: u64,
    /// Seconds a claimed transaction may stay unknown to the chain's node (and be
    /// checked at least 3 times) before its claim is dropped as expired.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub unknown_claim_ttl: u64,
    /// Most payment claims checked on chain per pass of the payment watcher
    /// (claims of known transactions first, each oldest-checked first).
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub claims_per_sweep: u64,
    /// File holding the Ed25519 key that signs license receipts (hex; created with
    /// mode 0600 if missing) [default: DATA_DIR/receipt-key].
    #[arg(long, value_name = "FILE")]
    pub receipt_key_file: Option<PathBuf>,
    /// File holding the key that seals operator keys owners register for automatic
    /// grants (hex; created with mode 0600 if missing). Keep it apart from database
    /// backups [default: DATA_DIR/operator-kek].
    #[arg(long, value_name = "FILE")]
    pub operator_kek_file: Option<PathBuf>,
    /// File holding the key sign-in nonces are made and checked with (hex; created
    /// with mode 0600 if missing). Servers that share one database and answer behind
    /// one address must share this file, so a nonce one issues another accepts
    /// [default: DATA_DIR/nonce-key].
    #[arg(long, value_name = "FILE")]
    pub nonce_key_file: Option<PathBuf>,
    /// This server's name among the replicas of one marketplace (1 to 64 letters,
    /// digits, '.', '_' or '-'): on every log line, in /metrics
    /// (sealstream_market_replica_info) and in the leases that let one replica at a
    /// time run each background job [default: r- and 8 random hex digits]
    #[arg(long, value_name = "ID")]
    pub replica_id: Option<String>,
    /// How the log on stderr is written: text, one line per event; or json, one JSON
    /// object per line (timestamp, level, target, message and the event's fields). It
    /// has a line per request (method, route, status, latency, principal by pseudonym)
    /// and one per change that matters (registrations, datasets, listings, orders,
    /// payments, grants, roles); DIDs appear only as pseudonyms, tokens and keys never.
    /// The level is info (warn with -q); RUST_LOG overrides it, per module if need be
    /// (RUST_LOG=debug; RUST_LOG=info,sealstream_market::request=warn leaves out the
    /// request lines).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub limits: MarketLimitArgs,
}

/// How `market serve` writes its log.
#[cfg(feature = "market")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per line.
    Json,
}

#[cfg(feature = "market")]
#[derive(Debug, Subcommand)]
pub enum MarketAuditCommand {
    /// Check every event of the audit log: numbering without gaps, each hash against its
    /// content, each link to the event before; and that the log still holds the newest head
    /// the server signed (kept in the database, in DATA_DIR/audit-head.json and, with
    /// --anchor, a copy kept elsewhere), so that a log cut short or rewritten with
    /// recomputed hashes is caught. Exit 0 and "audit log intact: N events, head 0x…"; exit
    /// 2 naming the first bad event.
    #[command(after_help = MARKET_EXIT_CODES)]
    Verify {
        #[command(flatten)]
        log: AuditLogArgs,
        /// A signed head exported earlier with `market audit anchor` (or saved from GET
        /// /v1/audit/head): the log must still hold it.
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
        /// A head published earlier (GET /v1/audit/head, or the server's start log line):
        /// the log must still hold it as event --events. Detects a log cut short or
        /// rewritten since, which the chain alone cannot show.
        #[arg(long, value_name = "HASH", requires = "events")]
        head: Option<String>,
        /// The event count the --head was published at.
        #[arg(long, value_name = "N", requires = "head")]
        events: Option<u64>,
    },
    /// Write the audit log as JSON lines (one event per line: seq, at, actor, action,
    /// subject, details, prev, hash), for auditors and for recomputing the market's
    /// decisions (who was granted which chunk, when a subscription ended). The log is
    /// verified first, as `audit verify` does; the export covers the events verified
    /// (events appended meanwhile are left for the next export). Readable while the server
    /// runs.
    #[command(after_help = MARKET_EXIT_CODES)]
    Export(AuditOutputArgs),
    /// Export the audit log's signed head for storage outside the market (another
    /// machine, a ticket, a transparency service): verifies the log as `audit verify` does,
    /// signs its current head with the server key when this process can read it (else
    /// takes the newest head the server signed) and writes the signed head
    /// (sealstream.audit-head.v1 JSON) to --output or stdout. `audit verify --anchor FILE`
    /// later proves the log still holds it.
    #[command(after_help = MARKET_EXIT_CODES)]
    Anchor(AuditOutputArgs),
    /// Ask the server for a proof of the totals per currency of the receipts appended to
    /// a receipt log in a period (docs/formats.md "Receipt log"): the log's tree head
    /// signed now, the leaves around the period's edges, every other part of the tree
    /// as hashes and Pedersen commitments, the totals and one summed blinding. No
    /// amount, buyer, seller or order is in it. The proof is verified before it is
    /// written (--output, created 0600, or stdout); `audit verify-total` checks it
    /// offline. The period must fall on the log's epoch boundaries (an hour by
    /// default) and be over.
    #[command(after_help = MARKET_EXIT_CODES)]
    ProveTotal {
        #[command(flatten)]
        session: MarketSession,
        /// The log: `seller` (your own sales), `market` (admins and auditors) or
        /// `seller:<did>` (that seller's, for admins and auditors).
        #[arg(long, default_value = "seller", value_name = "LOG")]
        log: String,
        /// The period's start (YYYY-MM-DDTHH:MM:SSZ, on an epoch boundary).
        #[arg(long, value_name = "TIME")]
        from: String,
        /// The period's end, excluded (YYYY-MM-DDTHH:MM:SSZ, on an epoch boundary).
        #[arg(long, value_name = "TIME")]
        to: String,
        /// The market's receipt public key (hex, as GET /v1/receipts/key gives it): the
        /// proof's head must be signed by it.
        #[arg(long, value_name = "HEX")]
        server_key: Option<String>,
        /// Where to write the proof (default: stdout).
        #[arg(long = "output", alias = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Verify a total proof (sealstream.receipt-log-total.v1) offline: the head's
    /// signature (by --server-key when given), that the proof rebuilds the signed tree,
    /// that its range is exactly the receipts appended in the period, and that the
    /// totals open the sum of their commitments. Prints the log, period, number of
    /// receipts and the totals; exit 2 when any check or --expect fails.
    #[command(after_help = MARKET_EXIT_CODES)]
    VerifyTotal {
        /// The proof file.
        file: PathBuf,
        /// The market's receipt public key (hex): the head must be signed by it.
        #[arg(long, value_name = "HEX")]
        server_key: Option<String>,
        /// A total the proof must show, as CURRENCY=AMOUNT with the amount as people
        /// write it (invoice:EUR:2=1234.50); repeat for several currencies. A currency
        /// not in the proof has total 0.
        #[arg(long, value_name = "CURRENCY=AMOUNT")]
        expect: Vec<String>,
    },
    /// Fetch a receipt log's tree head, signed now (sealstream.receipt-log-head.v1), to
    /// keep: `audit log-consistency --old FILE` later proves the log only grew since.
    #[command(after_help = MARKET_EXIT_CODES)]
    LogHead {
        #[command(flatten)]
        session: MarketSession,
        /// The log, as for `prove-total`.
        #[arg(long, default_value = "seller", value_name = "LOG")]
        log: String,
        /// Where to write the head (default: stdout).
        #[arg(long = "output", alias = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check that a receipt log only grew since a head kept earlier (`audit log-head`):
    /// fetch the current head and the RFC 9162 consistency path from the old head's
    /// size, and verify both signatures (same key) and the path. Exit 2 when the log was
    /// rewritten or cut. With --output, writes the proof (both heads and the path,
    /// sealstream.receipt-log-consistency.v1).
    #[command(after_help = MARKET_EXIT_CODES)]
    LogConsistency {
        #[command(flatten)]
        session: MarketSession,
        /// The head kept earlier.
        #[arg(long, value_name = "FILE")]
        old: PathBuf,
        /// Where to write the consistency proof.
        #[arg(long = "output", alias = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[cfg(feature = "market")]
/// The market's audit log: where its database is, and the market's key.
#[derive(Debug, Args)]
pub struct AuditLogArgs {
    #[command(flatten)]
    pub db: MarketDbArgs,
    #[command(flatten)]
    pub key: MarketServerKeyArgs,
}

#[cfg(feature = "market")]
/// The audit log read, and where what is read of it goes.
#[derive(Debug, Args)]
pub struct AuditOutputArgs {
    #[command(flatten)]
    pub log: AuditLogArgs,
    /// Write here (a temporary file renamed when complete) instead of stdout.
    #[arg(long = "output", alias = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[cfg(feature = "market")]
/// The market's key, which signs audit heads (and receipts).
#[derive(Debug, Args)]
pub struct MarketServerKeyArgs {
    /// The market's public key (hex, as GET /v1/receipts/key gives it) [default: the public
    /// half of --receipt-key-file].
    #[arg(long, value_name = "HEX")]
    pub server_key: Option<String>,
    /// The server's receipt key file [default: DATA_DIR/receipt-key].
    #[arg(long, value_name = "FILE")]
    pub receipt_key_file: Option<PathBuf>,
}

#[cfg(feature = "market")]
/// The market server's resource limits (docs/market-design.md, "Limits").
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits")]
pub struct MarketLimitArgs {
    /// Connections open at once, in all. At the cap the server stops accepting until one
    /// closes. The open-file limit (ulimit -n) must exceed it by 64; the server warns at
    /// start when it does not.
    #[arg(long, default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Connections open at once from one client address (the socket's peer; an IPv6
    /// address by its /64). One more is answered 503 and closed. Behind a reverse proxy
    /// every client has the proxy's address.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_client: u64,
    /// Seconds a request's head may take, from the accept or, on a kept-alive
    /// connection, from the end of the previous response (so also how long a kept-alive
    /// connection may stay idle). Then the connection is closed.
    #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Seconds a read or a write may wait with no byte moving (a stalled body, a client
    /// that stops reading the answer). Then the connection is closed.
    #[arg(long, default_value_t = 60, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Seconds a request may take, body and answer, on every route but chunk and grant
    /// uploads: then 408 naming request-timeout.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,
    /// Seconds a chunk or grant upload may take: then 408 naming upload-timeout.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_timeout: u64,
    /// Ciphertext bytes one owner's machines may hold, in all: then 507 naming
    /// owner-quota-bytes.
    #[arg(long, default_value_t = 16 << 30, value_name = "BYTES")]
    pub owner_quota_bytes: u64,
    /// Chunks one owner's machines may hold, in all: then 507 naming owner-quota-chunks.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub owner_quota_chunks: u64,
    /// Refuse uploads (507 naming min-free-disk) while the object directory, or the data
    /// directory holding a SQLite database, has less free space than this, in bytes
    /// (0: no floor). S3 and PostgreSQL are not measured.
    #[arg(long, default_value_t = 1 << 30, value_name = "BYTES")]
    pub min_free_disk: u64,
    /// Writes (requests other than GET, HEAD, OPTIONS) per second per signed-in principal
    /// (its DID, whatever its session): then 429 naming write-rate, with Retry-After (0: no
    /// limit).
    #[arg(long, default_value_t = 200.0, value_name = "PER_SECOND", value_parser = parse_rate)]
    pub write_rate: f64,
    /// Writes a principal may make at once before --write-rate applies.
    #[arg(long, default_value_t = 2000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub write_burst: u32,
    /// Writes per second per client address without a session (sign-in, payment proofs):
    /// then 429 naming anonymous-write-rate (0: no limit).
    #[arg(long, default_value_t = 20.0, value_name = "PER_SECOND", value_parser = parse_rate)]
    pub anonymous_write_rate: f64,
    /// Writes a client address without a session may make at once.
    #[arg(long, default_value_t = 200, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub anonymous_write_burst: u32,
    /// Payment proofs (POST /v1/orders/{id}/payment-proof) per second per client address:
    /// then 429 (more than 0; behind a reverse proxy every client has the proxy's address,
    /// so raise it there and limit per client at the proxy).
    #[arg(long, default_value_t = 0.5, value_name = "PER_SECOND", value_parser = parse_positive_rate)]
    pub payment_proof_rate: f64,
    /// Payment proofs a client address may post at once.
    #[arg(long, default_value_t = 30, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub payment_proof_burst: u32,
    /// Subscription feeds (GET /v1/subscriptions/{id}/feed) one principal may hold open
    /// at once: one more is answered 429 naming feeds.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_feeds_per_principal: u64,
    /// Seconds between the keep-alive comments of an idle feed (keep it below
    /// --idle-timeout, or idle feeds are cut).
    #[arg(long, default_value_t = 15, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub feed_keep_alive: u64,
}

/// The slowest rate a limit takes: one a day (slower ones would be periods
/// longer than a time can hold).
#[cfg(feature = "market")]
const SLOWEST_RATE: f64 = 1.0 / 86_400.0;

#[cfg(feature = "market")]
fn parse_positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= SLOWEST_RATE => Ok(r),
        _ => Err("expected a number per second, at least 1/86400 (one a day)".into()),
    }
}

#[cfg(feature = "market")]
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && (r == 0.0 || r >= SLOWEST_RATE) => Ok(r),
        _ => {
            Err("expected a number of writes per second: 0 (no limit), or at least 1/86400".into())
        }
    }
}

#[cfg(feature = "market")]
/// Where the market's data lives.
#[derive(Debug, Args)]
pub struct MarketDbArgs {
    /// Data directory (created if missing by `serve`); holds market.db unless
    /// --database-url says otherwise.
    #[arg(long, default_value = "./sealstream-market-data")]
    pub data_dir: PathBuf,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default:
    /// sqlite://DATA_DIR/market.db].
    #[arg(long)]
    pub database_url: Option<String>,
}

#[cfg(feature = "agent")]
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Run the agent: read its sources (JSON lines, MCAP bags, MQTT), sign packages, append
    /// one continuous chain per topic in the spool and forward the chunks to the destinations
    /// (`directory`, `object-store`: s3:// or file://, `market`: a market server, signed in as
    /// the machine). Runs until every file, bag and standard input is read and delivered; with
    /// an MQTT source, until SIGTERM or SIGINT. Either signal seals the open chunks first.
    /// Crash-safe: a rerun continues exactly where the last commit left off.
    ///
    /// An unreachable destination (network errors, HTTP 5xx, 408, 429) is retried with
    /// backoff while the others go on. A market that refuses for good (HTTP 4xx other than
    /// 408 and 429: the machine is not registered, its key is refused) is stopped at once
    /// with one error line and shown as stopped by `agent status`; the agent goes on serving
    /// the other destinations and then exits 2. What the stopped destination lacks stays in
    /// the spool and is delivered by the next run, once the cause is fixed.
    Run {
        /// The Data Event Map.
        #[arg(long)]
        config: PathBuf,
        /// Return once the sources are read, without waiting for unreachable destinations
        /// (the spool keeps what they lack for the next run).
        #[arg(long)]
        no_wait: bool,
    },
    /// Show the agent's state from its spool: per topic the packages, chunks, skipped
    /// messages and chunks delivered per destination; the last sequence number; the spool's
    /// size and cap; each destination's health (while the agent runs).
    Status {
        /// The Data Event Map.
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a Data Event Map (YAML) and its key files without running: every
    /// problem is reported with its line and field; exit 1 if there is any.
    Check {
        /// The Data Event Map.
        #[arg(long)]
        config: PathBuf,
    },
    /// Write a Data Event Map from a machine's keys, its sources and destinations.
    #[command(long_about = AGENT_INIT_ABOUT)]
    Init(AgentInitArgs),
}

#[cfg(feature = "agent")]
const AGENT_INIT_ABOUT: &str = "\
Write a Data Event Map (docs/data-event-map.md) from a machine's keys directory (as `keys \
generate` writes it: keys.json, machine.secp256k1.sk, chain.ed25519.sk and, when present, \
field.aes256.key), one or more sources and at least one destination. One topic per topic \
found in each file or bag (or named with @TOPIC), no field rules (every field included; \
the file's comments show where rules go), the default chunking, a spool beside the map. \
The map is validated before it is written (atomically, mode 0600); an existing file is \
replaced only with --force. Paths in it are written relative to the map's directory.";

#[cfg(feature = "agent")]
#[derive(Debug, Args)]
pub struct AgentInitArgs {
    /// The machine's keys directory (`keys generate --output-dir DIR`).
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// A source (repeatable): jsonl:PATH (a file of JSON lines; - for standard input),
    /// mcap:PATH (a ROS 2 bag: an .mcap file or a rosbag2 directory), or
    /// mqtt://HOST[:PORT]/FILTER or mqtts://HOST[:PORT]/FILTER (a broker and a topic
    /// filter, wildcards allowed; mqtt://h//a/b is the topic /a/b), or ros2://HOST:PORT/TOPIC
    /// (a live ROS 2 graph through the Zenoh endpoint tcp/HOST:PORT, e.g. the robot's
    /// rmw_zenohd router at localhost:7447, and one ROS topic, any type). A file or bag
    /// feeds a topic per topic it holds, or the ones named by a trailing @TOPIC[,TOPIC…]
    /// (needed for standard input); @NAME after a filter or ROS topic names its topic
    /// (default: the filter or ROS topic).
    #[arg(long = "source", value_name = "SPEC", required = true, value_parser = parse_source_spec)]
    pub sources: Vec<sealstream_agent::config::init::SourceSpec>,
    /// Deliver to this market server (http(s)://HOST:PORT), signed in as the machine
    /// (repeatable). The machine must be registered there by its owner.
    #[arg(long, value_name = "URL")]
    pub market: Vec<String>,
    /// Deliver to this local directory (repeatable).
    #[arg(long, value_name = "DIR")]
    pub directory: Vec<PathBuf>,
    /// Deliver to this object store: s3://BUCKET/PREFIX or file:///PATH (repeatable).
    #[arg(long, value_name = "URL")]
    pub object_store: Vec<String>,
    /// Field rules for one topic (repeatable): a rules file as `package sign --rules`
    /// reads it, `{"topic", "defaultAction"?, "rules": [{"fieldPath", "action",
    /// "anonymizeStrategy"?}]}` (docs/examples/gps.rules.json); its topic must be one the
    /// sources feed. Topics without a file keep every field.
    #[arg(long = "rules", value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// The spool directory [default: spool, beside the map].
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Where to write the Data Event Map.
    #[arg(long = "output", alias = "out", value_name = "FILE")]
    pub output: PathBuf,
    /// Replace an existing file at --output.
    #[arg(long)]
    pub force: bool,
}

#[cfg(feature = "agent")]
fn parse_source_spec(text: &str) -> Result<sealstream_agent::config::init::SourceSpec, String> {
    text.parse()
        .map_err(|e: sealstream_agent::config::init::SpecError| e.message)
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Build and sign dataset.json for an existing chain (the chain is verified first).
    ///
    /// The gap records in the chunks (dataset.json `gaps`) are found only in their
    /// plaintext: pass --recipient-private-key-file to decrypt it. Without it the dataset
    /// states no gaps, and a verifying consume refuses it if the chunks hold any.
    Sign {
        /// Directory of the chain (chunk-*.json, chunk-*.bin, manifest.json).
        #[arg(long)]
        chunk_dir: PathBuf,
        /// The machine's secp256k1 key file (EIP-191 signature, verifiable from the DID).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The chain's Ed25519 key file (adds an Ed25519 signature).
        #[arg(long)]
        chain_key_file: Option<PathBuf>,
        /// The X25519 private key file of one of the chain's recipients (owner, operator or
        /// machine): every chunk is decrypted to find its gap records.
        #[arg(long)]
        recipient_private_key_file: Option<PathBuf>,
        #[command(flatten)]
        info: DatasetInfoArgs,
    },
    /// Write the inclusion proof of one chunk.
    Prove {
        /// Directory of the chain.
        #[arg(long)]
        chunk_dir: PathBuf,
        /// The chunk index.
        #[arg(long)]
        index: u64,
        /// Where to write the proof (default: stdout).
        #[arg(long = "output", alias = "out")]
        out: Option<PathBuf>,
    },
    /// Write the consistency proof from an older dataset.json to the chain as it is now.
    ProveExtension {
        /// Directory of the (grown) chain.
        #[arg(long)]
        chunk_dir: PathBuf,
        /// The older dataset.json.
        #[arg(long)]
        old: PathBuf,
        /// Where to write the proof (default: stdout).
        #[arg(long = "output", alias = "out")]
        out: Option<PathBuf>,
    },
    /// Check one chunk against a signed dataset with its inclusion proof, without any other chunk.
    VerifyChunk {
        /// The dataset.json.
        #[arg(long)]
        dataset: PathBuf,
        /// The inclusion proof.
        #[arg(long)]
        proof: PathBuf,
        /// The chunk's envelope (chunk-N.json).
        #[arg(long)]
        envelope: PathBuf,
        /// The chunk's ciphertext (chunk-N.bin).
        #[arg(long)]
        data: PathBuf,
        /// Also accept EIP-191 dataset signatures by this DID (repeatable), e.g. the
        /// owner a market names as the dataset's provider; by default only the machine's.
        #[arg(long = "dataset-signer", alias = "signer", value_name = "DID")]
        signers: Vec<String>,
    },
    /// Check that a newer dataset.json extends an older one (exit 0) or not (exit 1).
    VerifyExtension {
        /// The older dataset.json.
        old: PathBuf,
        /// The newer dataset.json.
        new: PathBuf,
        /// The consistency proof.
        #[arg(long)]
        proof: PathBuf,
    },
}

/// What a chain alone does not say about its data.
#[derive(Debug, Args, Default)]
pub struct DatasetInfoArgs {
    /// Topic of the data.
    #[arg(long)]
    pub topic: Option<String>,
    /// Schema version of the data packages.
    #[arg(long)]
    pub data_schema_version: Option<String>,
    /// Capture time of the first package (ISO 8601).
    #[arg(long)]
    pub first_captured_at: Option<String>,
    /// Capture time of the last package (ISO 8601).
    #[arg(long)]
    pub last_captured_at: Option<String>,
    /// Chunk indexes offered for preview before purchase (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub sample_chunks: Vec<u64>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Input: a file path, `-` for stdin, or an http(s) URL (streamed, never held in memory).
    #[arg(long = "input")]
    pub input: String,
    /// Directory for chunk-N.json, chunk-N.bin and manifest.json (created if missing).
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Owner's X25519 public key (hex, optional 0x).
    #[arg(long)]
    pub owner_public_key: String,
    /// Operator's X25519 public key (hex, optional 0x).
    #[arg(long)]
    pub operator_public_key: String,
    /// Machine's X25519 public key (hex, optional 0x).
    #[arg(long)]
    pub machine_public_key: String,
    /// File holding the Ed25519 chain signing key (32 bytes of hex).
    #[arg(long, alias = "chain-key-file")]
    pub signing_key_file: PathBuf,
    /// Machine DID (did:peaq:0x…).
    #[arg(long)]
    pub machine_did: String,
    /// Key id written into every chunk signature (did:peaq:0x…#keys-1).
    #[arg(long)]
    pub machine_key_id: String,
    /// Bytes per chunk.
    #[arg(long, default_value_t = 262_144)]
    pub chunk_size: i64,
    /// An extra recipient of every chunk key, as ID:TYPE:HEX (repeatable).
    #[arg(long = "recipient", value_name = "ID:TYPE:HEX")]
    pub recipients: Vec<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Also write a signed dataset.json: the machine's secp256k1 key file (EIP-191;
    /// the chain key adds an Ed25519 signature).
    #[arg(long)]
    pub dataset_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub dataset: DatasetInfoArgs,
    /// Then upload the chain (and dataset.json) to this market server
    /// (http(s)://HOST:PORT), signed in with --dataset-key-file (the machine's key), as
    /// --topic; each request is retried on network errors and 5xx. The machine must be
    /// registered on the server by its owner.
    #[arg(long = "server", alias = "to", value_name = "URL", requires_all = ["dataset_key_file", "topic"])]
    #[cfg(feature = "agent")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// Directory of the published chain (chunk-*.json).
    #[arg(long)]
    pub chunk_dir: PathBuf,
    /// Buyer's X25519 public key (hex, optional 0x).
    #[arg(long)]
    pub buyer_public_key: String,
    /// Buyer recipient id (usually the buyer's DID).
    #[arg(long)]
    pub buyer_id: String,
    /// File holding the owner's X25519 private key (hex).
    #[arg(long)]
    pub owner_private_key_file: PathBuf,
    /// Directory for the buyer access files (created if missing).
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Maximum access file size in bytes (measured as the reference measures it).
    #[arg(long, default_value_t = 512_000)]
    pub max_file_size: i64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Directory of chunk envelopes (chunk-*.json, manifest.json). Required unless --download-url.
    #[arg(long)]
    pub chunk_dir: Option<PathBuf>,
    /// Directory of buyer access files (*.json). Required unless --download-url.
    #[arg(long)]
    pub access_dir: Option<PathBuf>,
    /// Directory of ciphertexts (chunk-*.bin). Required unless --download-url.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// File holding the buyer's X25519 private key (hex).
    #[arg(long)]
    pub buyer_private_key_file: PathBuf,
    /// Buyer recipient id the access files were made for.
    #[arg(long)]
    pub buyer_id: String,
    /// Where to write the reassembled data (written atomically).
    #[arg(long)]
    pub output: PathBuf,
    /// Skip chain verification (not recommended).
    #[arg(long)]
    pub skip_verify: bool,
    /// Also accept an EIP-191 signature of dataset.json by this DID (did:peaq:0x…),
    /// besides the machine's: the owner who signed a dataset of its machine, as the
    /// market's listing card names it (provider) and `market order show` (seller);
    /// repeatable. Without it a dataset signed by anyone but the machine is refused,
    /// unless a market's release package (--download-url) carries the machine's signed
    /// registration: then the owner it names is accepted once the machine's and the chain
    /// key's signatures over it check out (docs/security.md).
    #[arg(long = "dataset-signer", value_name = "DID")]
    pub dataset_signers: Vec<String>,
    /// Fetch a release package first: a URL whose manifest.json lists files, or a ZIP of them.
    #[arg(long, conflicts_with_all = ["chunk_dir", "access_dir", "data_dir"])]
    pub download_url: Option<String>,
    /// Working directory for downloaded files (default: a temporary directory); the
    /// download is removed from it after consume, successful or not, unless --keep-files.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the downloaded files after consume, successful or not (in a package directory
    /// under --work-dir or the temporary directory, named on stderr).
    #[arg(long)]
    pub keep_files: bool,
    /// Download the release package into DIR (empty or new: chunks/, data/, access/ and
    /// the package's registration.json) and keep it there, whatever the outcome. Without
    /// it, or --keep-files, the download is removed after consume.
    #[arg(
        long,
        value_name = "DIR",
        requires = "download_url",
        conflicts_with = "work_dir"
    )]
    pub keep_download: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Directory of chunk envelopes (chunk-*.json).
    #[arg(long)]
    pub chunk_dir: PathBuf,
    /// Directory of ciphertexts (chunk-*.bin); default: the chunk directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Fail when there is no dataset.json (it is checked whenever it is present).
    #[arg(long)]
    pub require_dataset: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate the key set of a role and its keys.json (the public parts, with "role").
    ///
    /// machine (default): machine.secp256k1.sk (signs packages and datasets, signs in as
    /// the machine), machine.did, chain.ed25519.sk (signs chunks), field.aes256.key (for
    /// `encrypt` field rules), owner.x25519.sk, operator.x25519.sk and machine.x25519.sk
    /// (the recipients every chunk key is wrapped for; give owner.x25519.sk to the owner). owner: owner.secp256k1.sk (signs in as the
    /// owner, signs datasets), owner.did, owner.x25519.sk. buyer: buyer.secp256k1.sk (signs
    /// in as the buyer, pays), buyer.did, buyer.x25519.sk (what the buyer is granted is
    /// wrapped for it). p2p: p2p.ed25519.sk (the node identity of `sealstream p2p`) and
    /// p2p.peer-id; no keys.json, so it can sit beside an owner's or a buyer's keys.
    #[command(verbatim_doc_comment)]
    Generate {
        /// Directory for the key files (created 0700 if missing; secret files mode 0600);
        /// existing key files are never overwritten.
        #[arg(long = "output-dir", alias = "out-dir")]
        out_dir: PathBuf,
        /// Whose keys: a machine's, an owner's (seller), a buyer's, or a P2P identity.
        #[arg(long, value_enum, default_value_t = KeyRole::Machine)]
        role: KeyRole,
    },
    /// Print the public part of a key file (and its role, when the file name tells it:
    /// machine.*, owner.*, buyer.*, operator.*, chain.*).
    Show {
        /// The key file.
        file: PathBuf,
        /// The key's kind; default: from the file name (*.secp256k1.sk, *.ed25519.sk, *.x25519.sk).
        #[arg(long, value_enum)]
        kind: Option<KeyKind>,
    },
}

/// Whose keys `keys generate` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyRole {
    /// A machine: signing, chain and recipient keys.
    Machine,
    /// A data owner (seller).
    Owner,
    /// A buyer.
    Buyer,
    /// A peer-to-peer identity (p2p.ed25519.sk, its peer id in p2p.peer-id).
    #[cfg(feature = "p2p")]
    P2p,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyKind {
    /// Machine signing key (EIP-191, DID).
    Secp256k1,
    /// Chain signing key.
    Ed25519,
    /// Recipient key (owner, operator, machine, buyer).
    X25519,
}

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Sign JSON lines {topic, capturedAt, fields, sequenceNumber?} from stdin, one package per line on stdout.
    ///
    /// Streams: memory stays bounded whatever the input's size; lines are signed in batches
    /// on every core and written in input order. A progress bar on a terminal, a summary at the end; the first bad line stops
    /// it (exit 1, naming the line), after the packages of the lines before it.
    Sign {
        /// Field rules of the topic: {topic, defaultAction?, rules:[{fieldPath, action, anonymizeStrategy?}]}.
        #[arg(long)]
        rules: PathBuf,
        /// File holding the machine's secp256k1 key (hex, optional 0x).
        #[arg(long)]
        key_file: PathBuf,
        /// The machine's DID (must be the key's).
        #[arg(long = "machine-did", alias = "did")]
        did: String,
        /// Signing key id (default: DID#keys-1).
        #[arg(long = "machine-key-id", alias = "key-id")]
        key_id: Option<String>,
        /// Schema version written into every package.
        #[arg(long, default_value = "1.0.0")]
        schema_version: String,
        /// File holding the 32-byte AES-256-GCM field key (needed by encrypt rules).
        #[arg(long)]
        field_key_file: Option<PathBuf>,
        /// Sequence number of the first line without one (later lines count up).
        #[arg(long, default_value_t = 0)]
        start_sequence: u64,
    },
    /// Verify packages (JSON lines, one document, or an array) and report each; exit 1 if any is invalid.
    ///
    /// Streams: memory stays bounded whatever the input's size (an array is read element by
    /// element); packages are verified in batches on every core and reported in input
    /// order, each by its line (JSON lines), index (array) or the input's name (one
    /// document). Invalid packages are always listed; valid ones too, except on a terminal,
    /// where a progress bar counts them. A summary at the end; --json prints one result
    /// line per package.
    Verify {
        /// File to read, or `-` for stdin.
        #[arg(default_value = "-")]
        input: String,
    },
}

#[cfg(feature = "market")]
/// `CHAIN_ID=ADDRESS` of `--escrow`.
fn parse_escrow(text: &str) -> Result<(u64, String), String> {
    let (id, address) = text
        .split_once('=')
        .ok_or_else(|| "expected CHAIN_ID=ADDRESS".to_string())?;
    let id: u64 = id
        .trim()
        .parse()
        .map_err(|_| format!("chain id {id:?} is not a number"))?;
    let address = sealstream_core::identity::EvmAddress::parse(address.trim(), "--escrow")
        .map_err(|_| "the contract must be 0x followed by 40 hex digits".to_string())?;
    Ok((id, address.to_checksum()))
}

#[cfg(feature = "market")]
/// `CHAIN_ID=URL` of `--evm-rpc`.
fn parse_evm_rpc(text: &str) -> Result<(u64, String), String> {
    let (id, url) = text
        .split_once('=')
        .ok_or_else(|| "expected CHAIN_ID=URL".to_string())?;
    let id: u64 = id
        .trim()
        .parse()
        .map_err(|_| format!("chain id {id:?} is not a number"))?;
    let url = url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("the endpoint must be an http:// or https:// URL".into());
    }
    Ok((id, url.to_string()))
}
