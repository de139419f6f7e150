//! The HTTP server (axum): state, routes, layers, and start-up.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sealstream_core::json::{Map, Value};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::audit;
use crate::error::ApiError;
use crate::objects::{Objects, ObjectsError};
use crate::store::{Store, StoreError};

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
/// Default confirmations a payment needs.
pub const DEFAULT_CONFIRMATIONS: u64 = 3;
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
    /// The domain (`host[:port]`) sign-in messages must name; `None` for
    /// the `Host` header of each request.
    pub public_domain: Option<String>,
    /// The server's public base URL (`https://market.example`) for the URLs
    /// in orders and links; `None` for `http://<Host header>`.
    pub public_url: Option<String>,
    /// JSON-RPC endpoints of the EVM chains whose payments this server
    /// verifies, by EIP-155 chain id.
    pub evm_rpc: BTreeMap<u64, String>,
    /// Confirmations a payment needs (1 = mined).
    pub confirmations: u64,
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
    /// Largest access file the server writes when it grants with an
    /// operator key, in bytes (the reference's default).
    pub access_file_size: usize,
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
            public_domain: None,
            public_url: None,
            evm_rpc: BTreeMap::new(),
            confirmations: DEFAULT_CONFIRMATIONS,
            payment_poll: DEFAULT_PAYMENT_POLL,
            payment_skew: DEFAULT_PAYMENT_SKEW,
            max_claims_per_order: DEFAULT_MAX_CLAIMS_PER_ORDER,
            unknown_claim_ttl: DEFAULT_UNKNOWN_CLAIM_TTL,
            claims_per_sweep: DEFAULT_CLAIMS_PER_SWEEP,
            proof_rate_per_client: DEFAULT_PROOF_RATE_PER_CLIENT,
            proof_rate_per_order: DEFAULT_PROOF_RATE_PER_ORDER,
            receipt_key_file: None,
            grant_limit: DEFAULT_GRANT_LIMIT,
            operator_kek_file: None,
            access_file_size: sealstream_core::access::DEFAULT_MAX_ACCESS_FILE_SIZE,
        }
    }
}

impl Config {
    /// The database URL in force.
    pub fn database_url(&self) -> String {
        database_url(&self.data_dir, self.database_url.as_deref())
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
}

impl Metrics {
    fn record(&self, route: &str, status: u16, seconds: f64) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.requests.entry((route.to_string(), status)).or_default() += 1;
        let d = m.durations.entry(route.to_string()).or_default();
        d.0 += seconds;
        d.1 += 1;
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
        out
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
    /// Rate limits of anonymous requests (payment proofs).
    pub limits: Arc<crate::limits::RateLimiter>,
}

/// The API's routes and layers. Every route has a body limit:
/// `config.body_limit` for all but chunk upload, `config.chunk_limit` there.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let small = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/audit/head", get(audit_head))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/catalog", get(crate::catalog::catalog))
        .route(
            "/v1/listings",
            get(crate::listings::list_mine).post(crate::listings::create),
        )
        .route(
            "/v1/listings/{id}",
            get(crate::listings::get).patch(crate::listings::patch),
        )
        .route("/v1/listings/{id}/publish", post(crate::listings::publish))
        .route(
            "/v1/listings/{id}/withdraw",
            post(crate::listings::withdraw),
        )
        .route("/v1/listings/{id}/card", get(crate::listings::card::card))
        .route(
            "/v1/listings/{id}/samples",
            post(crate::listings::samples::disclose),
        )
        .route(
            "/v1/listings/{id}/samples/{index}",
            get(crate::listings::samples::get),
        )
        .route(
            "/v1/listings/{id}/samples/{index}/ciphertext",
            get(crate::listings::samples::ciphertext),
        )
        .merge(crate::auth::routes())
        .merge(crate::machines::routes())
        .merge(crate::operator_key::routes())
        .merge(crate::ingest::read_routes())
        .merge(crate::datasets::routes())
        .merge(crate::orders::routes())
        .layer(RequestBodyLimitLayer::new(body_limit));
    Router::new()
        .merge(small)
        .merge(crate::ingest::upload_routes(state.config.chunk_limit))
        .merge(crate::orders::grant_routes(state.config.grant_limit))
        .route_layer(middleware::from_fn_with_state(state.clone(), count))
        .fallback(not_found)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "`{\"status\": \"ok\"}`"),
               (status = 503, description = "The database does not answer", body = crate::openapi::ErrorBody)))]
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => json_response(
            StatusCode::OK,
            object(&[("status", Value::String("ok".into()))]),
        ),
        Err(e) => {
            tracing::warn!("health check: {e}");
            error_response(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// Prometheus counters (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Request counts and durations by route", content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The number of audit events and the hash of the last one. Publishing the
/// head lets anyone detect a truncated log later.
#[utoipa::path(get, path = "/v1/audit/head", tag = "audit",
    responses((status = 200, description = "`{\"events\": N, \"head\": \"0x…\"}`")))]
pub(crate) async fn audit_head(State(state): State<AppState>) -> Response {
    match audit::head(&state.store).await {
        Ok(report) => json_response(
            StatusCode::OK,
            object(&[
                (
                    "events",
                    Value::Number(
                        sealstream_core::json::Number::from_int_text(&report.events.to_string())
                            .expect("a u64 is an integer"),
                    ),
                ),
                ("head", Value::String(report.head)),
            ]),
        ),
        Err(e) => {
            tracing::warn!("audit head: {e}");
            error_response(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
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
    listener: tokio::net::TcpListener,
    state: AppState,
}

impl Server {
    /// Opens the store (creating the data directory) and the object store,
    /// seeds the admins, binds the listen address and records `server.start`
    /// in the audit log.
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::Io {
            context: format!("{}", config.data_dir.display()),
            source,
        })?;
        let url = config.database_url();
        let store = Store::open(&url).await?;
        let objects = Objects::open(&config.data_dir, config.object_store.as_deref())?;
        for did in &config.admins {
            crate::auth::grant_role(&store, did, crate::auth::Role::Admin, "server").await?;
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Io {
                context: format!("listen on {}", config.listen),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| ServeError::Io {
            context: "listen address".into(),
            source,
        })?;
        let details = object(&[
            ("listen", Value::String(local.to_string())),
            ("version", Value::String(env!("CARGO_PKG_VERSION").into())),
        ]);
        let event = audit::append_now(&store, "server", "server.start", "market", &details).await?;
        tracing::info!(
            listen = %local,
            engine = ?store.engine(),
            objects = %objects,
            audit_events = event.seq,
            audit_head = %event.hash,
            "market server started"
        );
        let receipt_key_file = config
            .receipt_key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join(RECEIPT_KEY_FILE));
        let receipt_key = crate::server_key::load_or_create_receipt_key(&receipt_key_file)
            .map_err(|e| ServeError::Config(e.to_string()))?;
        let kek_file = config
            .operator_kek_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join(crate::operator_key::KEK_FILE));
        let operator_kek = crate::server_key::load_or_create(&kek_file)
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
        let state = AppState {
            store,
            objects,
            metrics: Arc::default(),
            config: Arc::new(config),
            evm: Arc::new(evm),
            receipt_key: Arc::new(receipt_key),
            operator_kek: Arc::new(operator_kek),
            grant_wake: Arc::default(),
            limits: Arc::default(),
        };
        Ok(Server { listener, state })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
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
        let granter = crate::operator_key::spawn_granter(self.state.clone());
        // The peer address of each connection, for per-client limits.
        let app = router(self.state).into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        granter.abort();
        if let Some(w) = watcher {
            w.abort();
        }
        served.map_err(|source| ServeError::Io {
            context: "serve".into(),
            source,
        })?;
        store.close().await;
        tracing::info!("market server stopped");
        Ok(())
    }
}

/// [`Server::bind`], then [`Server::run`].
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind(config).await?.run(shutdown).await
}
