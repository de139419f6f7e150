//! Entitlements of live feeds as a sealstream market states them: each
//! subscription read with `GET /v1/subscriptions/{id}` by the seller (the
//! owner's `p2p serve`) or by the machine whose topic it covers (the
//! agent's `p2p` destination); each dataset order (`ord_…`, the seller
//! only) with `GET /v1/orders/{id}` and its dataset. And [`mirror`]: a
//! feed's directory kept filled from the chain the market holds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use sealstream_api::datasets::DatasetView;
use sealstream_api::ingest::ChunkPage;
use sealstream_api::listings::HistoryPolicy;
use sealstream_api::orders::{OrderState, OrderView};
use sealstream_api::subscriptions::{SubscriptionState, SubscriptionView};
use sealstream_client::market::{ClientError, MarketClient};
use sealstream_core::chunk::{sha256_hex, ChunkEnvelope};
use sealstream_core::utc;
use sealstream_files::layout;

use super::entitlement::{DatasetRange, Denied, Entitlement, Entitlements, History};

/// The market's subscriptions as a feed server's entitlements. Checks run
/// on up to [`MAX_CLIENTS`] signed-in clients at once.
pub struct MarketEntitlements {
    /// Idle clients, and how many exist.
    clients: Mutex<(Vec<MarketClient>, usize)>,
    idle: std::sync::Condvar,
    make: Box<dyn Fn() -> MarketClient + Send + Sync>,
    machine: String,
}

/// The most market clients (and checks at once) of one feed server.
pub const MAX_CLIENTS: usize = 8;

impl std::fmt::Debug for MarketEntitlements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketEntitlements")
            .field("machine", &self.machine)
            .finish_non_exhaustive()
    }
}

impl MarketEntitlements {
    /// Subscriptions read through clients `make` gives (signed in as the
    /// seller or as the machine); only those to topics of `machine_did`
    /// count.
    pub fn new(
        make: impl Fn() -> MarketClient + Send + Sync + 'static,
        machine_did: &str,
    ) -> MarketEntitlements {
        MarketEntitlements {
            clients: Mutex::new((Vec::new(), 0)),
            idle: std::sync::Condvar::new(),
            make: Box::new(make),
            machine: machine_did.to_string(),
        }
    }

    /// Run `f` with a client of the pool (made if none is idle and fewer
    /// than [`MAX_CLIENTS`] exist; else waited for).
    fn with_client<T>(&self, f: impl FnOnce(&mut MarketClient) -> T) -> T {
        let mut client = {
            let mut pool = self.clients.lock().expect("clients lock");
            loop {
                if let Some(c) = pool.0.pop() {
                    break c;
                }
                if pool.1 < MAX_CLIENTS {
                    pool.1 += 1;
                    drop(pool);
                    break (self.make)();
                }
                pool = self.idle.wait(pool).expect("clients lock");
            }
        };
        let out = f(&mut client);
        self.clients.lock().expect("clients lock").0.push(client);
        self.idle.notify_one();
        out
    }
}

fn unix(text: &Option<String>) -> Option<i64> {
    text.as_deref().and_then(utc::parse_rfc3339)
}

/// A subscription of the market as the feed server's entitlement to `feed`
/// (the topic) of `machine`.
pub fn entitlement(
    v: &SubscriptionView,
    feed: &str,
    machine: &str,
    as_of: i64,
) -> Result<Entitlement, Denied> {
    if !v.machine_did.eq_ignore_ascii_case(machine) || v.topic != feed {
        return Err(Denied::Refused(
            "the subscription is not to this feed".into(),
        ));
    }
    let grace_until = unix(&v.grace_until);
    let ends = unix(&v.access_ends).or(grace_until);
    let now = utc::now_unix();
    let keys = v
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            // The first key applies from the start.
            let from = if i == 0 {
                i64::MIN
            } else {
                utc::parse_rfc3339(&k.applies_from).unwrap_or(i64::MAX)
            };
            (from, k.public_key_hex.to_ascii_lowercase())
        })
        .collect();
    let reason = match v.state {
        SubscriptionState::AwaitingPayment => Some("its first period is not paid yet".to_string()),
        _ => v.end_reason.clone(),
    };
    Ok(Entitlement {
        as_of,
        state: v.state.as_str().to_string(),
        is_final: v.state.is_final(),
        reason,
        active_from: unix(&v.active_from),
        ends,
        paid_through: v.paid_through.clone(),
        grace_until: v.grace_until.clone(),
        access_ends: v.access_ends.clone(),
        seconds_left: grace_until.map(|g| (g - now).max(0) as u64),
        history: match v.history {
            HistoryPolicy::None => History::None,
            HistoryPolicy::All => History::All,
            HistoryPolicy::LastChunks(n) => History::Last(n),
        },
        keys,
        recipient_id: v.buyer_id.clone(),
        dataset: None,
    })
}

/// A paid dataset order of the market as an entitlement to the dataset's
/// chunks of `feed` (the topic) of `machine`.
pub fn order_entitlement(
    order: &OrderView,
    dataset: &DatasetView,
    feed: &str,
    machine: &str,
    as_of: i64,
) -> Result<Entitlement, Denied> {
    if order.subscription_id.is_some() {
        return Err(Denied::Refused(
            "the order pays a subscription's period: give the subscription".into(),
        ));
    }
    if !dataset.machine_did.eq_ignore_ascii_case(machine) || dataset.topic != feed {
        return Err(Denied::Refused("the order is not of this feed".into()));
    }
    let paid = matches!(order.state, OrderState::Paid | OrderState::Granted);
    Ok(Entitlement {
        as_of,
        state: order.state.as_str().to_string(),
        is_final: true,
        reason: (!paid).then(|| format!("the order is {}", order.state.as_str())),
        // Paid: in force (its chunks are fixed, whatever their times).
        active_from: paid.then_some(i64::MIN),
        ends: None,
        paid_through: None,
        grace_until: None,
        access_ends: None,
        seconds_left: None,
        history: History::None,
        keys: vec![(i64::MIN, order.buyer_public_key_hex.to_ascii_lowercase())],
        recipient_id: order.buyer_id.clone(),
        dataset: Some(DatasetRange {
            first: dataset.first_index,
            last: dataset.last_index,
            first_chunk_id: dataset.first_chunk_id.clone(),
            head_chunk_id: dataset.head_chunk_id.clone(),
        }),
    })
}

fn denied(e: ClientError, what: &str) -> Denied {
    match e {
        e if e.is_transient() => Denied::Unavailable("the market is unreachable".into()),
        ClientError::Refused { status: 404, .. } => {
            Denied::Refused(format!("no such {what} of this seller's"))
        }
        ClientError::Refused { status, .. } => {
            Denied::Unavailable(format!("the market answered {status}"))
        }
        _ => Denied::Unavailable("the market's answer was unusable".into()),
    }
}

impl Entitlements for MarketEntitlements {
    fn check(&self, feed: &str, id: &str) -> Result<Entitlement, Denied> {
        // Only ids of the market's shape reach it (the hello's id is a peer's).
        let shape = |prefix: &str| {
            id.strip_prefix(prefix)
                .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
        };
        if !shape("sub_") && !shape("ord_") {
            return Err(Denied::Refused(
                "not a subscription (sub_…) or order (ord_…) id".into(),
            ));
        }
        self.with_client(|client| {
            let as_of = utc::now_unix();
            if id.starts_with("ord_") {
                let order = client.order(id).map_err(|e| denied(e, "order"))?;
                let dataset = client
                    .dataset(&order.dataset_id)
                    .map_err(|e| denied(e, "dataset"))?;
                return order_entitlement(&order, &dataset, feed, &self.machine, as_of);
            }
            let view = client
                .subscription(id)
                .map_err(|e| denied(e, "subscription"))?;
            entitlement(&view, feed, &self.machine, as_of)
        })
    }
}

/// A running [`mirror`]: stops when dropped.
pub struct Mirror {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror").finish_non_exhaustive()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The largest ciphertext a mirror fetches.
const MAX_MIRRORED: u64 = 64 << 20;

/// Write `bytes` to `dir/name` through a temporary file (removed by the
/// next mirror if left), stamped `time` (when the market accepted the
/// chunk: the feed's clock for entitlements) before it is renamed.
fn put(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    time: Option<std::time::SystemTime>,
) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!(".{name}.mirror-tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    if let Some(t) = time {
        f.set_modified(t)?;
    }
    drop(f);
    std::fs::rename(&tmp, dir.join(name))
}

/// One pass: the chunks the market holds from `next` on, written to `dir`
/// in index order, each checked (its ciphertext's hash, its envelope's
/// index and id); returns the next index to fetch.
fn mirror_pass(
    client: &mut MarketClient,
    machine: &str,
    topic: &str,
    dir: &Path,
    mut next: u64,
) -> Result<u64, String> {
    let page = client
        .chunks(
            machine,
            topic,
            &ChunkPage {
                from: Some(next.to_string()),
                limit: Some("100".into()),
            },
        )
        .map_err(|e| e.to_string())?;
    for c in page.chunks {
        if c.index != next {
            break;
        }
        let bad = |m: &str| format!("chunk {next} from the market: {m}");
        let envelope = c
            .envelope
            .to_core()
            .ok()
            .and_then(|v| ChunkEnvelope::from_json(&v).ok())
            .ok_or_else(|| bad("its envelope does not parse"))?;
        if envelope.index != next || envelope.chunk_id != c.chunk_id {
            return Err(bad("its envelope is of another chunk"));
        }
        let ciphertext = client
            .chunk_ciphertext(machine, topic, next, c.size.min(MAX_MIRRORED))
            .map_err(|e| e.to_string())?;
        if sha256_hex(&ciphertext) != envelope.encrypted_data_hash {
            return Err(bad("its ciphertext does not hash to encryptedDataHash"));
        }
        let time = utc::parse_rfc3339(&c.received_at)
            .and_then(|s| u64::try_from(s).ok())
            .map(|s| UNIX_EPOCH + Duration::from_secs(s));
        put(dir, &layout::ciphertext_name(next), &ciphertext, None)
            .and_then(|()| {
                put(
                    dir,
                    &layout::envelope_name(next),
                    envelope.to_pretty_json().as_bytes(),
                    time,
                )
            })
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        next += 1;
    }
    Ok(next)
}

/// Keep `dir` filled with the chain of `topic` of `machine` as the market
/// holds it (`client` signed in as the machine's owner): the chunks after
/// those already there, every second, each stamped with the time the
/// market accepted it. `report` hears of failures (retried).
pub fn mirror(
    mut client: MarketClient,
    machine: &str,
    topic: &str,
    dir: &Path,
    report: Arc<dyn Fn(String) + Send + Sync>,
) -> std::io::Result<Mirror> {
    std::fs::create_dir_all(dir)?;
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.file_name().to_string_lossy().ends_with(".mirror-tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let dir: PathBuf = dir.to_path_buf();
    let mut next = (0..)
        .find(|i| !dir.join(layout::envelope_name(*i)).exists())
        .unwrap_or(0);
    let (machine, topic) = (machine.to_string(), topic.to_string());
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("sealstream-feed-mirror".into())
        .spawn(move || {
            let mut failing = false;
            while !stopping.load(Ordering::SeqCst) {
                match mirror_pass(&mut client, &machine, &topic, &dir, next) {
                    Ok(n) => {
                        failing = false;
                        if n > next {
                            next = n;
                            continue;
                        }
                    }
                    Err(e) => {
                        if !failing {
                            report(format!("mirror of {topic}: {e}; trying again"));
                        }
                        failing = true;
                    }
                }
                for _ in 0..10 {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })?;
    Ok(Mirror {
        stop,
        thread: Some(thread),
    })
}
