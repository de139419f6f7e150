//! The HTTP server (axum): state, routes, layers, and start-up.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sealstream_core::json::{Map, Value};
use tower_http::limit::RequestBodyLimitLayer;

use crate::audit;
use crate::connections::{ConnectionEvents, ConnectionLimits, Listener};
use crate::error::ApiError;
use crate::lease::Job;
use crate::limits::LogThrottle;
use crate::objects::{Objects, ObjectsError};
use crate::store::{Store, StoreError};
use crate::throttle::WriteLimits;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./sealstream-market-data";
/// Default limit on a request body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;
/// Default limit on a chunk upload: 256 MiB.
pub const DEFAULT_CHUNK_LIMIT: usize = 256 << 20;
/// The receipt key's file name under the data directory.
pub const RECEIPT_KEY_FILE: &str = "receipt-key";
/// Default limit on a grant upload: 64 MiB (about 150,000 chunks).
pub const DEFAULT_GRANT_LIMIT: usize = 64 << 20;
/// Default confirmations a payment needs on a chain that is not a dev
/// chain.
pub const DEFAULT_CONFIRMATIONS: u64 = 3;
/// Default confirmations a payment needs on a dev chain
/// ([`DEV_CHAIN_IDS`]): its node mines only when asked, so deeper blocks
/// may never come.
pub const DEV_CHAIN_CONFIRMATIONS: u64 = 1;
/// Chain ids of local development nodes: anvil and hardhat (31337),
/// ganache and geth `--dev` (1337).
pub const DEV_CHAIN_IDS: [u64; 2] = [31337, 1337];
/// Default interval between signatures of the audit head.
pub const DEFAULT_AUDIT_SIGN_INTERVAL: Duration = Duration::from_secs(1);
/// Default interval between sweeps of subscriptions' time-driven states.
pub const DEFAULT_SUBSCRIPTION_SWEEP: Duration = Duration::from_secs(10);
/// Default interval between checks of claimed payments.
pub const DEFAULT_PAYMENT_POLL: Duration = Duration::from_secs(5);
/// Default skew allowed between the chain's clock and the server's: a
/// payment may be mined in a block stamped up to this long before the
/// order was made.
pub const DEFAULT_PAYMENT_SKEW: Duration = Duration::from_secs(5 * 60);
/// Default bound on an order's open claims of transactions the node does
/// not know.
pub const DEFAULT_MAX_CLAIMS_PER_ORDER: usize = 5;
/// Default time a claimed transaction may stay unknown to the node before
/// the claim is dropped as expired.
pub const DEFAULT_UNKNOWN_CLAIM_TTL: Duration = Duration::from_secs(15 * 60);
/// Default number of claims the payment watcher checks per sweep.
pub const DEFAULT_CLAIMS_PER_SWEEP: usize = 100;
/// Default rate of payment proofs per client address: 30 at once, then
/// one every 2 s.
pub const DEFAULT_PROOF_RATE_PER_CLIENT: crate::limits::Rate =
    crate::limits::Rate::new(30, Duration::from_secs(2));
/// Default rate of payment proofs per order that do not show a valid
/// payment: 10 at once, then one every 30 s.
pub const DEFAULT_PROOF_RATE_PER_ORDER: crate::limits::Rate =
    crate::limits::Rate::new(10, Duration::from_secs(30));
/// Default time a request may take on every route but the uploads.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time an upload (a chunk, a grant) may take: 30 minutes, enough
/// for a 256 MiB chunk at about 150 kB/s.
pub const DEFAULT_UPLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How to run the server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the SQLite database (and later the object store).
    pub data_dir: PathBuf,
    /// Database URL; `None` for `sqlite://<data_dir>/market.db`.
    pub database_url: Option<String>,
    /// Object store URL (`s3://bucket/prefix`, `file:///path`); `None` for
    /// `<data_dir>/objects`.
    pub object_store: Option<String>,
    /// Largest request body accepted, in bytes, on every route but chunk
    /// upload.
    pub body_limit: usize,
    /// Largest chunk upload (envelope and ciphertext), in bytes.
    pub chunk_limit: usize,
    /// DIDs given the admin role at start.
    pub admins: Vec<String>,
    /// The server's public base URL (`https://market.example`): the domain
    /// and URI sign-in messages must name and the base of the URLs in orders
    /// and links. `None` for `http://<listen address>`, allowed only on a
    /// loopback address ([`crate::public_url`]). Request headers never
    /// change it.
    pub public_url: Option<String>,
    /// The EIP-155 chain ids a sign-in message may name (`Chain ID`).
    pub sign_in_chain_ids: Vec<u64>,
    /// JSON-RPC endpoints of the EVM chains whose payments this server
    /// verifies, by EIP-155 chain id.
    pub evm_rpc: BTreeMap<u64, String>,
    /// Confirmations a payment needs (1 = mined) on every chain; `None`:
    /// each chain's default ([`Config::confirmations_for`]).
    pub confirmations: Option<u64>,
    /// How often claimed payments waiting for confirmations are checked
    /// again.
    pub payment_poll: Duration,
    /// How long before an order's creation its payment's block may be
    /// stamped (the chain's clock against the server's).
    pub payment_skew: Duration,
    /// Most open claims of transactions the node does not know, per order.
    pub max_claims_per_order: usize,
    /// How long a claimed transaction may stay unknown to the node (and
    /// checked at least 3 times) before its claim expires.
    pub unknown_claim_ttl: Duration,
    /// Most claims the payment watcher checks per sweep.
    pub claims_per_sweep: usize,
    /// Payment proofs per client address (the socket's peer address).
    pub proof_rate_per_client: crate::limits::Rate,
    /// Payment proofs per order that do not show a valid payment of it.
    pub proof_rate_per_order: crate::limits::Rate,
    /// The Ed25519 key file receipts are signed with; `None` for
    /// `<data_dir>/receipt-key` (created if missing).
    pub receipt_key_file: Option<PathBuf>,
    /// Largest grant upload (access files), in bytes.
    pub grant_limit: usize,
    /// The file holding the key operator keys are sealed under; `None` for
    /// `<data_dir>/operator-kek` (created if missing).
    pub operator_kek_file: Option<PathBuf>,
    /// The file holding the sign-in nonce key; `None` for
    /// `<data_dir>/nonce-key` (created if missing). Servers behind one
    /// address share it.
    pub nonce_key_file: Option<PathBuf>,
    /// Largest access file the server writes when it grants with an
    /// operator key, in bytes (the reference's default).
    pub access_file_size: usize,
    /// How often the audit log's head is signed while events are appended
    /// ([`crate::audit::signed`]).
    pub audit_sign_interval: Duration,
    /// How often subscriptions' grace and lapse are swept
    /// ([`crate::subscriptions::sweep`]).
    pub subscription_sweep: Duration,
    /// How often the operator-key granter looks for work it was not woken
    /// for ([`crate::operator_key::SWEEP_EVERY`] by default).
    pub grant_sweep: Duration,
    /// This server's name among the replicas of one marketplace, in its
    /// logs, its metrics and the job leases ([`crate::lease`]); `None`: a
    /// generated `r-xxxxxxxx`.
    pub replica_id: Option<String>,
    /// How long after its payment a sale counts in the public numbers (a
    /// listing's sales bucket): [`DEFAULT_PUBLIC_STATS_DELAY`].
    pub public_stats_delay: Duration,
    /// How often the public numbers are refreshed:
    /// [`DEFAULT_PUBLIC_STATS_INTERVAL`].
    pub public_stats_interval: Duration,
    /// The price ladder listing prices snap to, as mantissas in hundredths
    /// (`[100, 200, 500]` for 1, 2, 5 × a power of ten); empty: prices are
    /// kept as given ([`crate::listings::model::snap_price`]).
    pub price_ladder: Vec<u32>,
    /// Orders are granted with operator keys only at multiples of this
    /// window (Unix time), in batches, so a grant's time does not point at
    /// its payment; zero grants at once. Live subscriptions are not delayed.
    pub grant_batch_window: Duration,
    /// Seconds per epoch of a new receipt log (periods whose totals are
    /// proven fall on epoch boundaries; a log keeps the length it was made
    /// with): [`DEFAULT_RECEIPT_LOG_EPOCH`] by default.
    pub receipt_log_epoch: Duration,
    /// The shortest subscription period a listing may have (the operator's
    /// policy; [`sealstream_api::listings::MIN_PERIOD_SECONDS`] by default,
    /// at least 1 s): a listing with a shorter one is a 400 naming
    /// `subscription.periodSeconds`.
    pub min_subscription_period: Duration,
    /// A second address serving only `GET /metrics`, without a session
    /// (for a Prometheus scraper on a private network). On the main address
    /// `/metrics` needs an admin or auditor session.
    pub metrics_listen: Option<SocketAddr>,
    /// Connections open at once, in all; at the cap the server stops
    /// accepting until one closes.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 address
    /// by its /64); one more is answered 503 and closed.
    pub max_connections_per_client: usize,
    /// The longest a request's head may take to arrive, counted from the
    /// accept or, on a kept-alive connection, from the end of the previous
    /// response (so also the longest a kept-alive connection stays idle).
    pub header_timeout: Duration,
    /// The longest a read or a write on a connection may wait with no byte
    /// moving (a stalled body, a client that stops reading).
    pub idle_timeout: Duration,
    /// The longest a request may take, body and answer, on every route but
    /// the uploads (408 naming `request-timeout`).
    pub request_timeout: Duration,
    /// The longest a chunk or grant upload may take (408 naming
    /// `upload-timeout`).
    pub upload_timeout: Duration,
    /// Ciphertext bytes an owner's machines may hold, in all.
    pub owner_quota_bytes: u64,
    /// Chunks an owner's machines may hold, in all.
    pub owner_quota_chunks: u64,
    /// Uploads are refused while a local disk the server writes to has less
    /// free space than this, in bytes (0: no floor).
    pub min_free_disk: u64,
    /// Writes (requests other than GET, HEAD, OPTIONS) per second per
    /// principal (0: no limit).
    pub write_rate: f64,
    /// Writes a principal may make at once before the rate applies.
    pub write_burst: u32,
    /// Writes per second per client address without a session (0: no
    /// limit).
    pub anonymous_write_rate: f64,
    /// Writes a client address without a session may make at once.
    pub anonymous_write_burst: u32,
    /// Subscription feeds one principal may hold open at once (one more is
    /// a 429).
    pub max_feeds_per_principal: usize,
    /// The interval of a feed's keep-alive comments (below `idle_timeout`,
    /// so an idle feed is not cut).
    pub feed_keep_alive: Duration,
    /// The escrow contract (`contracts/SealstreamEscrow.sol`) the market
    /// uses on each chain, by chain id (`--escrow CHAIN_ID=ADDRESS`): a
    /// listing on that chain may ask for escrow.
    pub escrow_contracts: BTreeMap<u64, String>,
    /// The secp256k1 key that is the escrow contracts' arbiter and pays
    /// the gas of the market's release and resolve calls (0600; never
    /// logged). Required with `escrow_contracts`.
    pub escrow_arbiter_key_file: Option<PathBuf>,
    /// How often the escrow job runs ([`crate::escrow::sweep_once`]).
    pub escrow_sweep: Duration,
    /// How long an escrowed invoice order's payment is held after the
    /// seller marks it paid (the buyer may dispute meanwhile).
    pub invoice_dispute_window: Duration,
    /// How long an arbiter has to decide a disputed invoice order before
    /// the dispute lapses to the seller.
    pub invoice_arbitration_period: Duration,
}

/// Default delay before a sale counts in public numbers: a day.
pub const DEFAULT_PUBLIC_STATS_DELAY: Duration = Duration::from_secs(86_400);
/// Default refresh of the public numbers: ten minutes.
pub const DEFAULT_PUBLIC_STATS_INTERVAL: Duration = Duration::from_secs(600);

/// Default epoch of receipt logs: an hour.
pub const DEFAULT_RECEIPT_LOG_EPOCH: Duration = Duration::from_secs(3600);

impl Config {
    /// Confirmations a payment on `chain_id` needs: `confirmations` when
    /// set, else [`DEV_CHAIN_CONFIRMATIONS`] on a dev chain
    /// ([`DEV_CHAIN_IDS`]) and [`DEFAULT_CONFIRMATIONS`] elsewhere; at
    /// least 1.
    pub fn confirmations_for(&self, chain_id: u64) -> u64 {
        self.confirmations
            .unwrap_or(if DEV_CHAIN_IDS.contains(&chain_id) {
                DEV_CHAIN_CONFIRMATIONS
            } else {
                DEFAULT_CONFIRMATIONS
            })
            .max(1)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("a valid address"),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            database_url: None,
            object_store: None,
            body_limit: DEFAULT_BODY_LIMIT,
            chunk_limit: DEFAULT_CHUNK_LIMIT,
            admins: Vec::new(),
            public_url: None,
            sign_in_chain_ids: vec![sealstream_api::siwe::PEAQ_CHAIN_ID],
            evm_rpc: BTreeMap::new(),
            confirmations: None,
            payment_poll: DEFAULT_PAYMENT_POLL,
            payment_skew: DEFAULT_PAYMENT_SKEW,
            max_claims_per_order: DEFAULT_MAX_CLAIMS_PER_ORDER,
            unknown_claim_ttl: DEFAULT_UNKNOWN_CLAIM_TTL,
            claims_per_sweep: DEFAULT_CLAIMS_PER_SWEEP,
            proof_rate_per_client: DEFAULT_PROOF_RATE_PER_CLIENT,
            proof_rate_per_order: DEFAULT_PROOF_RATE_PER_ORDER,
            receipt_key_file: None,
            receipt_log_epoch: DEFAULT_RECEIPT_LOG_EPOCH,
            public_stats_delay: DEFAULT_PUBLIC_STATS_DELAY,
            public_stats_interval: DEFAULT_PUBLIC_STATS_INTERVAL,
            price_ladder: Vec::new(),
            grant_batch_window: Duration::ZERO,
            grant_limit: DEFAULT_GRANT_LIMIT,
            operator_kek_file: None,
            nonce_key_file: None,
            access_file_size: sealstream_core::access::DEFAULT_MAX_ACCESS_FILE_SIZE,
            audit_sign_interval: DEFAULT_AUDIT_SIGN_INTERVAL,
            subscription_sweep: DEFAULT_SUBSCRIPTION_SWEEP,
            grant_sweep: crate::operator_key::SWEEP_EVERY,
            replica_id: None,
            min_subscription_period: Duration::from_secs(
                sealstream_api::listings::MIN_PERIOD_SECONDS,
            ),
            metrics_listen: None,
            max_connections: crate::connections::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: crate::connections::DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            header_timeout: crate::connections::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: crate::connections::DEFAULT_IDLE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            upload_timeout: DEFAULT_UPLOAD_TIMEOUT,
            owner_quota_bytes: crate::quota::DEFAULT_OWNER_QUOTA_BYTES,
            owner_quota_chunks: crate::quota::DEFAULT_OWNER_QUOTA_CHUNKS,
            min_free_disk: crate::quota::DEFAULT_MIN_FREE_DISK,
            write_rate: crate::throttle::DEFAULT_WRITE_RATE,
            write_burst: crate::throttle::DEFAULT_WRITE_BURST,
            anonymous_write_rate: crate::throttle::DEFAULT_ANONYMOUS_WRITE_RATE,
            anonymous_write_burst: crate::throttle::DEFAULT_ANONYMOUS_WRITE_BURST,
            max_feeds_per_principal: crate::subscriptions::feed::DEFAULT_MAX_FEEDS_PER_PRINCIPAL,
            feed_keep_alive: crate::subscriptions::feed::DEFAULT_KEEP_ALIVE,
            escrow_contracts: BTreeMap::new(),
            escrow_arbiter_key_file: None,
            escrow_sweep: crate::escrow::DEFAULT_ESCROW_SWEEP,
            invoice_dispute_window: crate::escrow::DEFAULT_INVOICE_WINDOW,
            invoice_arbitration_period: crate::escrow::DEFAULT_INVOICE_WINDOW,
        }
    }
}

impl Config {
    /// The database URL in force.
    pub fn database_url(&self) -> String {
        database_url(&self.data_dir, self.database_url.as_deref())
    }

    /// The limits on connections.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
        }
    }
}

/// `url` if given, else `sqlite://<data_dir>/market.db`.
pub fn database_url(data_dir: &std::path::Path, url: Option<&str>) -> String {
    match url {
        Some(u) => u.to_string(),
        None => format!("sqlite://{}", data_dir.join("market.db").display()),
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The object store could not be opened.
    #[error(transparent)]
    Objects(#[from] ObjectsError),
    /// The start event could not be recorded.
    #[error("audit log: {0}")]
    Audit(#[from] audit::AppendError),
    /// The configuration is unusable (an EVM endpoint on another chain,
    /// an unreadable receipt key).
    #[error("{0}")]
    Config(String),
    /// Binding or serving failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
}

/// Hand-written Prometheus counters.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<MetricsInner>,
}

#[derive(Debug, Default)]
struct MetricsInner {
    /// (route, status) → requests.
    requests: BTreeMap<(String, u16), u64>,
    /// route → (seconds, count).
    durations: BTreeMap<String, (f64, u64)>,
    /// Connections open.
    connections: u64,
    /// limit → refusals.
    refusals: BTreeMap<&'static str, u64>,
}

impl Metrics {
    fn record(&self, route: &str, status: u16, seconds: f64) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.requests.entry((route.to_string(), status)).or_default() += 1;
        let d = m.durations.entry(route.to_string()).or_default();
        d.0 += seconds;
        d.1 += 1;
    }

    /// Counts a refusal by `limit` (its flag name).
    pub fn refused(&self, limit: &'static str) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.refusals.entry(limit).or_default() += 1;
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP sealstream_market_http_requests_total HTTP requests by route and status.\n",
        );
        out.push_str("# TYPE sealstream_market_http_requests_total counter\n");
        for ((route, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "sealstream_market_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape_label(route)
            );
        }
        out.push_str("# HELP sealstream_market_http_request_duration_seconds Time to answer HTTP requests, by route.\n");
        out.push_str("# TYPE sealstream_market_http_request_duration_seconds summary\n");
        for (route, (sum, count)) in &m.durations {
            let route = escape_label(route);
            let _ = writeln!(
                out,
                "sealstream_market_http_request_duration_seconds_sum{{route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "sealstream_market_http_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
        out.push_str("# HELP sealstream_market_connections Connections open.\n");
        out.push_str("# TYPE sealstream_market_connections gauge\n");
        let _ = writeln!(out, "sealstream_market_connections {}", m.connections);
        out.push_str(
            "# HELP sealstream_market_limit_refusals_total Requests and connections refused by a limit.\n",
        );
        out.push_str("# TYPE sealstream_market_limit_refusals_total counter\n");
        for (limit, n) in &m.refusals {
            let _ = writeln!(
                out,
                "sealstream_market_limit_refusals_total{{limit=\"{limit}\"}} {n}"
            );
        }
        out
    }
}

impl ConnectionEvents for Metrics {
    fn opened(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .connections += 1;
    }

    fn closed(&self) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.connections = m.connections.saturating_sub(1);
    }

    fn refused(&self, limit: &'static str) {
        Metrics::refused(self, limit);
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Where ciphertext objects live.
    pub objects: Objects,
    /// The counters behind `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The configuration the server runs with.
    pub config: Arc<Config>,
    /// The EVM chains payments are verified on, by chain id.
    pub evm: Arc<BTreeMap<u64, crate::evm::EvmRpc>>,
    /// The key receipts are signed with.
    pub receipt_key: Arc<sealstream_core::keys::ReceiptSigningKey>,
    /// The key operator keys are sealed under in the store.
    pub operator_kek: Arc<crate::operator_key::KeyEncryptionKey>,
    /// Wakes the operator granter (an order was paid, a key registered).
    pub grant_wake: Arc<tokio::sync::Notify>,
    /// The server's public address, from configuration only.
    pub public_url: Arc<crate::public_url::PublicUrl>,
    /// The key sign-in nonces are authenticated with.
    pub nonce_key: Arc<crate::auth::nonce::NonceKey>,
    /// The rate limits of payment proofs.
    pub proof_limits: Arc<crate::limits::ProofLimits>,
    /// The write rate limits' buckets.
    pub writes: Arc<WriteLimits>,
    /// Keeps the warnings about refusals to one line a second.
    pub refusal_log: Arc<LogThrottle>,
    /// Wakes the subscription feeds (a grant stored, a state changed) and
    /// counts the open ones per principal.
    pub feeds: Arc<crate::subscriptions::feed::Feeds>,
    /// Where each subscription's search for pending pairs starts.
    pub grant_marks: Arc<crate::subscriptions::GrantMarks>,
    /// The escrow contracts and the arbiter key.
    pub escrow: Arc<crate::escrow::Escrows>,
    /// Wakes the escrow job (a dispute was posted).
    pub escrow_wake: Arc<tokio::sync::Notify>,
    /// Answers of catalog searches while the catalog is unchanged.
    pub catalog_cache: Arc<crate::catalog::cache::CatalogCache>,
    /// Chunk keys the operator granter opened, for the next order of the
    /// same dataset.
    pub opened_keys: Arc<crate::operator_key::opened::OpenedKeys>,
    /// This server's replica id (`config.replica_id`, or generated).
    pub replica: Arc<str>,
    /// Which background jobs this process runs ([`crate::lease`]).
    pub leases: Arc<crate::lease::Leases>,
    /// Wake-ups for the other replicas ([`crate::wake`]).
    pub outbox: Arc<crate::wake::Outbox>,
}

/// The server's own secrets, loaded or created at start.
pub struct ServerKeys {
    /// The key receipts (and audit heads) are signed with.
    pub receipt_key: sealstream_core::keys::ReceiptSigningKey,
    /// The key operator keys are sealed under in the store.
    pub operator_kek: crate::operator_key::KeyEncryptionKey,
    /// The key sign-in nonces are authenticated with.
    pub nonce_key: crate::auth::nonce::NonceKey,
    /// The escrow contracts and the arbiter key ([`crate::escrow::Escrows::load`]).
    pub escrow: crate::escrow::Escrows,
}

impl AppState {
    /// The state of a server on `store` and `objects` with `config` and
    /// the given keys (what [`Server::bind`] builds; tools and tests).
    pub fn new(
        store: Store,
        objects: Objects,
        config: Config,
        evm: BTreeMap<u64, crate::evm::EvmRpc>,
        keys: ServerKeys,
        public_url: crate::public_url::PublicUrl,
    ) -> AppState {
        let ServerKeys {
            receipt_key,
            operator_kek,
            nonce_key,
            escrow,
        } = keys;
        let writes = Arc::new(WriteLimits::new(&config));
        let proof_limits = Arc::new(crate::limits::ProofLimits::new(&config));
        let replica: Arc<str> = config
            .replica_id
            .clone()
            .unwrap_or_else(crate::lease::generated_replica_id)
            .into();
        let leases = Arc::new(crate::lease::Leases::new(&replica));
        AppState {
            store,
            objects,
            metrics: Arc::default(),
            config: Arc::new(config),
            evm: Arc::new(evm),
            receipt_key: Arc::new(receipt_key),
            operator_kek: Arc::new(operator_kek),
            grant_wake: Arc::default(),
            public_url: Arc::new(public_url),
            nonce_key: Arc::new(nonce_key),
            proof_limits,
            writes,
            refusal_log: Arc::default(),
            feeds: Arc::default(),
            grant_marks: Arc::default(),
            escrow: Arc::new(escrow),
            escrow_wake: Arc::default(),
            catalog_cache: Arc::default(),
            opened_keys: Arc::default(),
            replica,
            leases,
            outbox: Arc::default(),
        }
    }
}

/// The API's routes and layers. Every route has a body limit and a
/// timeout (`limited`): `config.body_limit` and `config.request_timeout`
/// for all but the uploads; `config.chunk_limit` (chunk upload) or
/// `config.grant_limit` (grant upload) and `config.upload_timeout` there.
/// Writes are rate-limited per principal ([`crate::throttle`]). Every
/// request is logged once answered (`crate::logs::log_request`).
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let small = Router::new()
        .route(sealstream_api::routes::HEALTHZ, get(healthz))
        .route(sealstream_api::routes::METRICS, get(metrics))
        .route(sealstream_api::routes::AUDIT_HEAD, get(audit_head))
        .route(sealstream_api::routes::OPENAPI, get(openapi_json))
        .route(
            sealstream_api::routes::CATALOG,
            get(crate::catalog::catalog),
        )
        .route(
            sealstream_api::routes::LISTINGS,
            get(crate::listings::list_mine).post(crate::listings::create),
        )
        .route(
            sealstream_api::routes::LISTING,
            get(crate::listings::get).patch(crate::listings::patch),
        )
        .route(
            sealstream_api::routes::LISTING_PUBLISH,
            post(crate::listings::publish),
        )
        .route(
            sealstream_api::routes::LISTING_WITHDRAW,
            post(crate::listings::withdraw),
        )
        .route(
            sealstream_api::routes::LISTING_CARD,
            get(crate::listings::card::card),
        )
        .route(
            sealstream_api::routes::LISTING_SAMPLES,
            post(crate::listings::samples::disclose),
        )
        .route(
            sealstream_api::routes::LISTING_SAMPLE,
            get(crate::listings::samples::get),
        )
        .route(
            sealstream_api::routes::LISTING_SAMPLE_CIPHERTEXT,
            get(crate::listings::samples::ciphertext),
        )
        .merge(crate::auth::routes())
        .merge(crate::machines::routes())
        .merge(crate::operator_key::routes())
        .merge(crate::ingest::read_routes())
        .merge(crate::datasets::routes())
        .merge(crate::orders::routes())
        .merge(crate::receipt_log::routes())
        .merge(crate::disclosures::routes())
        .merge(crate::subscriptions::routes())
        .merge(crate::web::routes());
    let small = limited(
        read_whole(small),
        config.body_limit,
        config.request_timeout,
        "request-timeout",
    );
    let long_polls = limited(
        read_whole(crate::subscriptions::long_poll_routes()),
        config.body_limit,
        config
            .request_timeout
            .max(crate::subscriptions::long_poll::TIMEOUT),
        "request-timeout",
    );
    let uploads = limited(
        crate::ingest::upload_routes(),
        config.chunk_limit,
        config.upload_timeout,
        "upload-timeout",
    )
    .merge(limited(
        crate::orders::grant_routes(),
        config.grant_limit,
        config.upload_timeout,
        "upload-timeout",
    ));
    Router::new()
        .merge(small)
        .merge(long_polls)
        .merge(uploads)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::throttle::limit_writes,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), count))
        .fallback(not_found)
        .layer(middleware::from_fn(api_answers))
        .layer(middleware::from_fn(crate::logs::log_request))
        .with_state(state)
}

/// Most a plain-text refusal body is read to be re-worded as JSON.
const PLAIN_REFUSAL_LIMIT: usize = 4096;

/// Every answer: `Cache-Control: no-store` unless the handler chose (tokens,
/// keys, wrapped keys and private data must never sit in a cache), and
/// every refusal in the JSON error shape `{"error": {"field", "message"}}`,
/// also those the framework writes as text (a body over its limit, a
/// malformed query string, a wrong method).
async fn api_answers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(header::HeaderValue::from_static("no-store"));
    let status = response.status();
    // A page's refusal is a page (text/html), the API's JSON.
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, PLAIN_REFUSAL_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = match (status, text.is_empty()) {
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            "the request body is larger than this route accepts".to_string()
        }
        (_, true) => status
            .canonical_reason()
            .unwrap_or("refused")
            .to_ascii_lowercase(),
        (_, false) => text,
    };
    let mut json = ApiError::new(status, None, &message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}

/// `routes` with a body limit of `body_limit` bytes and a timeout of
/// `timeout` for whole requests. A body over the limit is a 413 and a
/// request cut by the timeout a 408 naming `timeout_name`, both in the
/// API's error form. The limit is the one in force: axum's own default body
/// limit (2 MiB, which silently capped JSON bodies) is lifted.
pub(crate) fn limited(
    routes: Router<AppState>,
    body_limit: usize,
    timeout: Duration,
    timeout_name: &'static str,
) -> Router<AppState> {
    routes
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            timed(request, next, timeout, timeout_name, body_limit)
        }))
}

/// `routes` with each request's body read whole (it is within the route
/// group's limit) before the handler runs. A handler that answers without
/// reading the body (a refusal, a route that takes none) would otherwise
/// leave it unread, and hyper then closes the kept-alive connection when
/// the body had not arrived yet: the client's next request on that
/// connection, already sent, meets a closed socket.
fn read_whole(routes: Router<AppState>) -> Router<AppState> {
    routes.layer(middleware::from_fn(
        |request: Request, next: Next| async move {
            let (parts, body) = request.into_parts();
            match axum::body::to_bytes(body, usize::MAX).await {
                Ok(bytes) => {
                    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                        .await
                }
                Err(e) if e.to_string().contains("length limit exceeded") => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Some("body"),
                    "the request body is larger than this route accepts",
                )
                .into_response(),
                Err(_) => {
                    ApiError::bad_request("body", "could not be read to its end").into_response()
                }
            }
        },
    ))
}

/// The limit layer answers 413 in plain text; the API answers JSON.
fn json_too_large(response: Response, limit: usize) -> Response {
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v != HeaderValue::from_static("application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && plain {
        ApiError::too_large(limit).into_response()
    } else {
        response
    }
}

/// Runs the request, or answers 408 once `limit` has passed; a plain 413
/// of the body limit layer is answered in the API's form.
async fn timed(
    request: Request,
    next: Next,
    limit: Duration,
    name: &'static str,
    body_limit: usize,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => json_too_large(response, body_limit),
        Err(_) => {
            tracing::warn!(
                limit = name,
                route = route.as_ref().map_or("unmatched", MatchedPath::as_str),
                "request cut: not answered within {} s",
                limit.as_secs_f64()
            );
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                Some(name),
                format!(
                    "the request was not answered within {} s ({name})",
                    limit.as_secs_f64()
                ),
            )
            .into_response()
        }
    }
}

async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let response = next.run(request).await;
    state.metrics.record(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

fn json_response(status: StatusCode, value: Value) -> Response {
    let body = sealstream_core::json::canonical::rfc8785(&value)
        .unwrap_or_else(|_| "{\"error\":\"unrepresentable\"}".into());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn object(pairs: &[(&str, Value)]) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert((*k).to_string(), v.clone());
    }
    Value::Object(m)
}

fn error_response(status: StatusCode, message: &str) -> Response {
    ApiError::new(status, None, message).into_response()
}

/// Whether the server and its database answer.
#[utoipa::path(get, path = sealstream_api::routes::HEALTHZ, tag = "operations",
    responses((status = 200, description = "`{\"status\": \"ok\"}`"),
               (status = 503, description = "The database does not answer", body = crate::openapi::ErrorBody)))]
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => axum::Json(sealstream_api::operations::Health {
            status: sealstream_api::operations::HealthStatus::Ok,
        })
        .into_response(),
        Err(e) => {
            tracing::warn!("health check: {e}");
            error_response(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// Prometheus counters (text exposition format 0.0.4), for admins and
/// auditors: they show market-wide activity. A scraper without a session
/// uses the separate `--metrics-listen` address instead.
#[utoipa::path(get, path = sealstream_api::routes::METRICS, tag = "operations",
    security(("session" = [])),
    responses((status = 200, description = "Request counts and durations by route", content_type = "text/plain"),
              (status = 403, description = "Neither admin nor auditor", body = crate::openapi::ErrorBody)))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    principal: crate::auth::Principal,
) -> Response {
    if let Err(e) = principal.require_any(&[crate::auth::Role::Admin, crate::auth::Role::Auditor]) {
        return e.into_response();
    }
    metrics_text(&state)
}

/// The exposition, as the metrics listener serves it.
pub(crate) fn metrics_text(state: &AppState) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        {
            use std::fmt::Write;
            let mut text = state.metrics.render();
            let (hits, misses) = state.catalog_cache.counts();
            text.push_str("# HELP sealstream_market_catalog_searches_total Catalog searches, by whether the catalog cache answered.\n");
            text.push_str("# TYPE sealstream_market_catalog_searches_total counter\n");
            let _ = writeln!(
                text,
                "sealstream_market_catalog_searches_total{{cache=\"hit\"}} {hits}"
            );
            let _ = writeln!(
                text,
                "sealstream_market_catalog_searches_total{{cache=\"miss\"}} {misses}"
            );
            let reads = state.feeds.reads().counts();
            text.push_str("# HELP sealstream_market_feed_reads_total Live feeds' reads of the chunks granted to them, by whether they were gathered into one statement with other feeds' reads (PostgreSQL) or read alone.\n");
            text.push_str("# TYPE sealstream_market_feed_reads_total counter\n");
            let _ = writeln!(
                text,
                "sealstream_market_feed_reads_total{{path=\"gathered\"}} {}",
                reads.gathered
            );
            let _ = writeln!(
                text,
                "sealstream_market_feed_reads_total{{path=\"alone\"}} {}",
                reads.alone
            );
            text.push_str("# HELP sealstream_market_feed_read_statements_total Statements that answered gathered feed reads.\n");
            text.push_str("# TYPE sealstream_market_feed_read_statements_total counter\n");
            let _ = writeln!(
                text,
                "sealstream_market_feed_read_statements_total {}",
                reads.statements
            );
            text.push_str("# HELP sealstream_market_replica_info This server's replica id (--replica-id).\n");
            text.push_str("# TYPE sealstream_market_replica_info gauge\n");
            let _ = writeln!(
                text,
                "sealstream_market_replica_info{{replica=\"{}\"}} 1",
                state.replica
            );
            text.push_str("# HELP sealstream_market_job_lease Whether this replica held the background job's lease at its last pass.\n");
            text.push_str("# TYPE sealstream_market_job_lease gauge\n");
            for (job, held) in state.leases.held() {
                let _ = writeln!(
                    text,
                    "sealstream_market_job_lease{{job=\"{}\"}} {}",
                    job.name(),
                    u8::from(held)
                );
            }
            text
        },
    )
        .into_response()
}

/// The audit log's head, signed by the server's key
/// (`sealstream.audit-head.v1`: the number of events, the hash of the last
/// one), for admins and auditors. Keeping a copy elsewhere lets anyone with
/// the server's public key detect a log cut short or rewritten later
/// (`market audit verify --anchor`).
#[utoipa::path(get, path = sealstream_api::routes::AUDIT_HEAD, tag = "audit",
    security(("session" = [])),
    responses((status = 200, description = "The signed head: `{schemaVersion, events, head, signedAt, serverPublicKeyHex, signature}`"),
              (status = 403, description = "Neither admin nor auditor", body = crate::openapi::ErrorBody),
              (status = 503, description = "The database does not answer", body = crate::openapi::ErrorBody)))]
pub(crate) async fn audit_head(
    State(state): State<AppState>,
    principal: crate::auth::Principal,
) -> Response {
    if let Err(e) = principal.require_any(&[crate::auth::Role::Admin, crate::auth::Role::Auditor]) {
        return e.into_response();
    }
    match state.sign_audit_head().await {
        Ok(signed) => json_response(StatusCode::OK, signed.to_json()),
        Err(e) => {
            tracing::warn!("audit head: {e}");
            error_response(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// This document.
#[utoipa::path(get, path = sealstream_api::routes::OPENAPI, tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 description of the API", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> Response {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOC.get_or_init(crate::openapi::document).clone(),
    )
        .into_response()
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not found")
}

/// A server bound to its address, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: Listener,
    metrics_listener: Option<Listener>,
    state: AppState,
}

impl Server {
    /// Opens the store (creating the data directory) and the object store,
    /// seeds the admins, binds the listen address and records `server.start`
    /// in the audit log.
    pub async fn bind(mut config: Config) -> Result<Server, ServeError> {
        let io = |context: String| move |source| ServeError::Io { context, source };
        crate::public_url::PublicUrl::resolve(config.public_url.as_deref(), config.listen)
            .map_err(|e| ServeError::Config(e.to_string()))?;
        crate::files::private_dir(&config.data_dir)
            .map_err(io(format!("{}", config.data_dir.display())))?;
        let url = config.database_url();
        if let Some(db) = sqlite_file(&url) {
            // SQLite gives -wal and -shm the database file's mode.
            crate::files::private_file(&db).map_err(io(format!("{}", db.display())))?;
            for suffix in ["-wal", "-shm"] {
                let side = PathBuf::from(format!("{}{suffix}", db.display()));
                crate::files::narrow(&side, crate::files::FILE_MODE)
                    .map_err(io(format!("{}", side.display())))?;
            }
        }
        let store = Store::open(&url).await?;
        let objects = Objects::open(&config.data_dir, config.object_store.as_deref())?;
        crate::files::remove_debris(&config.data_dir, objects.local_dir())
            .map_err(io(format!("{}", config.data_dir.display())))?;
        let receipt_key_file = config
            .receipt_key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join(RECEIPT_KEY_FILE));
        let receipt_key = crate::server_key::load_or_create_receipt_key(&receipt_key_file)
            .map_err(|e| ServeError::Config(e.to_string()))?;
        let head_file = config.data_dir.join(audit::signed::HEAD_FILE);
        let (report, signed) =
            audit::signed::verify_signed(&store, &receipt_key.public_key(), Some(&head_file), None)
                .await
                .map_err(|e| {
                    ServeError::Config(format!(
                        "the audit log does not verify ({e}); the server does not start on a log \
                 that was cut short or rewritten: see `sealstream market audit verify`"
                    ))
                })?;
        for did in &config.admins {
            crate::auth::grant_role(&store, did, crate::auth::Role::Admin, "server").await?;
        }
        let replica = crate::lease::replica_id_of(config.replica_id.take())
            .map_err(|e| ServeError::Config(e.to_string()))?;
        config.replica_id = Some(replica.clone());
        let listener = Listener::bind(config.listen)
            .await
            .map_err(io(format!("listen on {}", config.listen)))?;
        let local = listener
            .local_addr()
            .map_err(io("listen address".to_string()))?;
        let public_url = crate::public_url::PublicUrl::resolve(config.public_url.as_deref(), local)
            .map_err(|e| ServeError::Config(e.to_string()))?;
        let details = object(&[
            ("listen", Value::String(local.to_string())),
            ("publicUrl", Value::String(public_url.base().to_string())),
            ("version", Value::String(env!("CARGO_PKG_VERSION").into())),
            ("replica", Value::String(replica.clone())),
        ]);
        let event = audit::append_now(&store, "server", "server.start", "market", &details).await?;
        let head = audit::signed::sign_current(&store, &receipt_key, Some(&head_file))
            .await
            .map_err(|e| ServeError::Config(format!("cannot sign the audit head: {e}")))?;
        tracing::info!(
            listen = %local,
            public_url = %public_url,
            engine = ?store.engine(),
            objects = %objects,
            audit_verified = report.events,
            audit_signed_before = signed.map_or(0, |h| h.events),
            audit_events = event.seq,
            audit_head = %head.head,
            "market server started"
        );
        let kek_file = config
            .operator_kek_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join(crate::operator_key::KEK_FILE));
        if same_dir(kek_file.parent(), Some(&config.data_dir)) {
            tracing::warn!(
                kek = %kek_file.display(),
                "the operator key-encryption key is stored beside the database: a copy of \
                 the data directory opens every operator key; keep it elsewhere with \
                 --operator-kek-file"
            );
        }
        let operator_kek = crate::server_key::load_or_create(&kek_file)
            .map_err(|e| ServeError::Config(e.to_string()))?;
        let nonce_key_file = config
            .nonce_key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join(crate::auth::nonce::KEY_FILE));
        let nonce_key = crate::server_key::load_or_create(&nonce_key_file)
            .map_err(|e| ServeError::Config(e.to_string()))?;
        let mut evm = BTreeMap::new();
        for (chain_id, url) in &config.evm_rpc {
            let rpc = crate::evm::EvmRpc::new(url).map_err(|e| {
                ServeError::Config(format!("EVM endpoint for chain {chain_id}: {e}"))
            })?;
            match rpc.chain_id().await {
                Ok(id) if id == *chain_id => {}
                Ok(id) => {
                    return Err(ServeError::Config(format!(
                        "the EVM endpoint given for chain {chain_id} ({rpc}) serves chain {id}"
                    )))
                }
                Err(e) => tracing::warn!(
                    chain_id,
                    "EVM endpoint {rpc} does not answer yet ({e}); payments on it wait"
                ),
            }
            evm.insert(*chain_id, rpc);
        }
        crate::connections::warn_if_open_files_short(config.max_connections);
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                Listener::bind(addr)
                    .await
                    .map_err(io(format!("metrics listener on {addr}")))?,
            ),
            None => None,
        };
        let escrow =
            crate::escrow::Escrows::load(&config).map_err(|e| ServeError::Config(e.to_string()))?;
        for chain_id in config.escrow_contracts.keys() {
            tracing::info!(chain_id, "escrow on chain: listings may ask for it");
        }
        let keys = ServerKeys {
            receipt_key,
            operator_kek,
            nonce_key,
            escrow,
        };
        // The periodic passes whose first run belongs to start-up run here,
        // before the first request: the public sales counts are brought up
        // to date and expired sessions purged, so what a (re)started server
        // shows never depends on when its tasks first get a turn.
        let now = sealstream_core::utc::now_unix();
        crate::listings::stats::publish(&store, now, config.public_stats_delay).await?;
        crate::auth::purge_expired_sessions(&store, now).await?;
        crate::limits::purge_shared(&store)
            .await
            .map_err(StoreError::from)?;
        let state = AppState::new(store, objects, config, evm, keys, public_url);
        Ok(Server {
            listener,
            metrics_listener,
            state,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address of the metrics listener, when one is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The state handlers share (the store, for tools and tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes; requests in flight are finished
    /// first, then the store is closed.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let store = self.state.store.clone();
        let watcher = (!self.state.evm.is_empty()).then(|| {
            crate::orders::watcher::spawn_claim_watcher(
                self.state.clone(),
                self.state.config.payment_poll,
            )
        });
        if let Err(e) = self
            .state
            .leases
            .clear_stale(&store, &self.state.replica)
            .await
        {
            tracing::warn!("cannot free the job leases of an earlier process: {e}");
        }
        let wakes = crate::wake::spawn(&self.state);
        let granter = crate::operator_key::spawn_granter(self.state.clone());
        let sweeper = crate::subscriptions::spawn_sweeper(
            self.state.clone(),
            self.state.config.subscription_sweep,
        );
        let head_signer = spawn_head_signer(self.state.clone());
        let stats = crate::listings::stats::spawn(self.state.clone());
        let purger = crate::auth::spawn_session_purger(self.state.clone());
        let escrow_job = Some(crate::escrow::spawn_escrow_job(
            self.state.clone(),
            self.state.config.escrow_sweep,
        ));
        let signer_state = self.state.clone();
        let limits = self.state.config.connection_limits();
        let events = self.state.metrics.clone();
        let metrics = self.metrics_listener.map(|listener| {
            let app = Router::new()
                .route(
                    sealstream_api::routes::METRICS,
                    get(|State(s): State<AppState>| async move { metrics_text(&s) }),
                )
                .fallback(not_found)
                .with_state(self.state.clone());
            let events = events.clone();
            tokio::spawn(crate::connections::serve(
                listener,
                app,
                limits,
                events,
                std::future::pending::<()>(),
            ))
        });
        // Feeds never finish by themselves: they end when the shutdown
        // comes, so the graceful stop does not wait for them.
        let feeds = self.state.feeds.clone();
        let shutdown = async move {
            shutdown.await;
            feeds.close_all();
        };
        crate::connections::serve(self.listener, router(self.state), limits, events, shutdown)
            .await;
        granter.abort();
        for task in wakes.into_iter().flatten() {
            task.abort();
        }
        sweeper.abort();
        head_signer.abort();
        stats.abort();
        purger.abort();
        if let Some(j) = escrow_job {
            j.abort();
        }
        if let Some(m) = metrics {
            m.abort();
        }
        if let Err(e) = signer_state.sign_audit_head().await {
            tracing::error!("cannot sign the audit head at shutdown: {e}");
        }
        if let Some(w) = watcher {
            w.abort();
        }
        if let Err(e) = signer_state.leases.release_all(&store).await {
            tracing::warn!("cannot release the job leases (they expire by themselves): {e}");
        }
        store.close().await;
        tracing::info!("market server stopped");
        Ok(())
    }
}

/// Signs the audit head every `config.audit_sign_interval` (when it moved).
fn spawn_head_signer(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.audit_sign_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = state.config.audit_sign_interval;
        loop {
            tick.tick().await;
            if !state
                .leases
                .leading(&state.store, Job::AuditHead, every)
                .await
            {
                continue;
            }
            if let Err(e) = state.sign_audit_head().await {
                tracing::error!("cannot sign the audit head: {e}");
            }
        }
    })
}

impl AppState {
    /// Signs the audit log's current head (unless already signed) and keeps
    /// it in the database and the head file; returns the newest signed head.
    pub async fn sign_audit_head(
        &self,
    ) -> Result<sealstream_api::audit::SignedAuditHead, audit::signed::SignedHeadError> {
        let file = self.config.data_dir.join(audit::signed::HEAD_FILE);
        audit::signed::sign_current(&self.store, &self.receipt_key, Some(&file)).await
    }
}

/// The database file of a `sqlite://` URL (not of an in-memory database).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(':')).then(|| PathBuf::from(path))
}

/// Whether two directories are the same (after resolving links).
fn same_dir(a: Option<&std::path::Path>, b: Option<&std::path::Path>) -> bool {
    let resolve = |p: Option<&std::path::Path>| {
        p.map(|p| {
            if p.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                p
            }
        })
        .and_then(|p| std::fs::canonicalize(p).ok())
    };
    matches!((resolve(a), resolve(b)), (Some(x), Some(y)) if x == y)
}

/// [`Server::bind`], then [`Server::run`].
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind(config).await?.run(shutdown).await
}
