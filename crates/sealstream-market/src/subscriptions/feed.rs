//! The live feed of a subscription (`GET /v1/subscriptions/{id}/feed`,
//! server-sent events), for its buyer only: a `state` event when it opens
//! and on every change, a `chunk` event (SSE id: the index) for every chunk
//! granted to the subscription after `?after` or `Last-Event-ID`, first
//! those already granted and then each as its grant is stored, and
//! keep-alive comments in between.
//!
//! Chunk events go out in index order without a gap: a grant stored
//! before the grant of an entitled index below it (two granters at once)
//! waits until that one is stored.
//!
//! A feed reads the database only when woken: by [`Feeds::changed`] (sent
//! after the commit of a stored grant, a payment of one of its periods, a
//! cancellation, a revocation, a sweep), or at the next time-driven change
//! of its subscription (`T`, `T + G`). It ends once its subscription is
//! final and every chunk it is still entitled to has been sent.
//!
//! The buyer also reads, through the subscription, the ciphertext of the
//! chunks granted to it and the envelopes of the chain up to the last one
//! granted (to check the link of the first chunk it follows).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::watch;

pub use sealstream_api::subscriptions::{
    FeedChunk, FeedQuery, FeedState, FeedStatus, FEED_EVENT_CHUNK, FEED_EVENT_STATE,
};

use super::{db, not_found, settle, utc, Subscription, SubscriptionState};
use crate::auth::Principal;
use crate::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use crate::orders::OrderState;
use crate::server::AppState;
use sealstream_api::listings::WrappedKey;

/// Default number of feeds one principal may hold open at once.
pub const DEFAULT_MAX_FEEDS_PER_PRINCIPAL: usize = 8;
/// Default interval of keep-alive comments (below the connections' idle
/// timeout of 60 s).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Chunk events read from the database at a time.
const BATCH: i64 = 100;

/// What woke a subscription's feeds so far: how many changes of any kind,
/// and how many of them were grants stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct WakeCount {
    changes: u64,
    grants: u64,
}

/// The feeds' wake-ups and their count per principal.
///
/// Each subscription with a feed open has a wake-up channel of its own (a
/// `watch` of `WakeCount`): a change of one subscription wakes its feeds
/// only, so a pass that grants a chunk to a thousand subscriptions wakes
/// each of their feeds once, not every feed a thousand times. A wake-up
/// sent while a feed reads is not lost: the feed sees the count moved when
/// it next waits. Grants stored ([`Feeds::granted`]) are counted apart
/// from other changes ([`Feeds::changed`]): a feed woken by grants alone
/// reads the chunks granted, not the subscription.
#[derive(Debug)]
pub struct Feeds {
    wakes: Mutex<HashMap<String, watch::Sender<WakeCount>>>,
    /// Bumped when pairs may have become pending (a chunk ingested, a
    /// subscription changed): wakes the long polls of the pending list.
    pending: tokio::sync::watch::Sender<u64>,
    open: Mutex<HashMap<String, usize>>,
    /// The server is stopping: every feed ends.
    closing: AtomicBool,
    /// The quiet reads, gathered ([`super::feed_reads`]).
    reads: super::feed_reads::FeedReads,
}

impl Default for Feeds {
    fn default() -> Self {
        Feeds {
            wakes: Mutex::default(),
            pending: tokio::sync::watch::channel(0).0,
            open: Mutex::default(),
            closing: AtomicBool::new(false),
            reads: super::feed_reads::FeedReads::default(),
        }
    }
}

impl Feeds {
    /// Ends every feed (the server is stopping: a graceful shutdown waits
    /// for the responses in flight, and a feed would never finish). Its
    /// followers reconnect after the last chunk they got.
    pub fn close_all(&self) {
        self.closing.store(true, Ordering::SeqCst);
        for wake in self.lock_wakes().values() {
            wake.send_modify(|n| n.changes = n.changes.wrapping_add(1));
        }
        self.pending.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes every feed and the pending lists' long polls (wake-ups from
    /// other replicas may have been missed: [`crate::wake`]).
    pub fn wake_all(&self) {
        for wake in self.lock_wakes().values() {
            wake.send_modify(|n| {
                n.changes = n.changes.wrapping_add(1);
                n.grants = n.grants.wrapping_add(1);
            });
        }
        self.pending.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The feeds' reader of their granted chunks ([`super::feed_reads`]).
    pub fn reads(&self) -> &super::feed_reads::FeedReads {
        &self.reads
    }

    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Wakes the feeds of subscription `id` (call after the commit of its
    /// change).
    pub fn changed(&self, id: &str) {
        if let Some(wake) = self.lock_wakes().get(id) {
            wake.send_modify(|n| n.changes = n.changes.wrapping_add(1));
        }
        self.pending.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes the feeds of subscription `id` after the commit of grants
    /// stored for it, and of nothing else (they read the new chunks
    /// without the subscription; a grant makes no pair pending, so the
    /// pending lists are not woken).
    pub fn granted(&self, id: &str) {
        if let Some(wake) = self.lock_wakes().get(id) {
            wake.send_modify(|n| n.grants = n.grants.wrapping_add(1));
        }
    }

    fn lock_wakes(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<WakeCount>>> {
        self.wakes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The wake-ups of subscription `id`, for one feed (its channel is
    /// made by the first feed of the subscription and dropped with the
    /// last).
    fn wake_of(self: &Arc<Self>, id: &str) -> Wake {
        let receiver = self
            .lock_wakes()
            .entry(id.to_string())
            .or_insert_with(|| watch::channel(WakeCount::default()).0)
            .subscribe();
        Wake {
            feeds: self.clone(),
            id: id.to_string(),
            receiver,
        }
    }

    /// Wakes the long polls of the pending lists (call after the commit of
    /// a chunk).
    pub fn ingested(&self) {
        self.pending.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver of the pending lists' wake-ups.
    pub fn pending_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.pending.subscribe()
    }

    /// Counts one more feed of `did`, unless it holds `max` already.
    fn open(self: &Arc<Self>, did: &str, max: usize) -> Option<FeedSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(did.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(FeedSlot {
            feeds: self.clone(),
            did: did.to_string(),
        })
    }

    /// Feeds `did` holds open.
    pub fn open_count(&self, did: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(did).copied().unwrap_or(0)
    }
}

/// One feed's wake-ups; the subscription's channel goes with the last.
#[derive(Debug)]
struct Wake {
    feeds: Arc<Feeds>,
    id: String,
    receiver: watch::Receiver<WakeCount>,
}

impl Drop for Wake {
    fn drop(&mut self) {
        let mut wakes = self.feeds.lock_wakes();
        // Receivers are made under this lock: none can appear meanwhile.
        // This one still counts.
        if wakes.get(&self.id).is_some_and(|w| w.receiver_count() <= 1) {
            wakes.remove(&self.id);
        }
    }
}

/// One open feed, counted until dropped.
#[derive(Debug)]
struct FeedSlot {
    feeds: Arc<Feeds>,
    did: String,
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        let mut open = self.feeds.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.did) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.did);
            }
        }
    }
}

/// The subscription if `caller` is its buyer: 404 to strangers, 403 to
/// its seller.
pub(crate) async fn buyers(
    state: &AppState,
    id: &str,
    caller: &Principal,
) -> ApiResult<Subscription> {
    let mut tx = state.store.begin_read().await?;
    let s = db::subscription(&mut tx, id).await?;
    tx.commit().await?;
    match s {
        Some(s) if s.buyer_did == caller.did => Ok(s),
        Some(s) if s.is_party(caller)? => Err(ApiError::forbidden(format!(
            "subscription {id} is followed by its buyer only"
        ))),
        _ => Err(not_found(id)),
    }
}

/// The `state` event of `s` at `now`; `unpaid` is the order of the period
/// awaiting payment, if one does.
pub fn feed_state(s: &Subscription, now: i64, unpaid: Option<&str>) -> FeedState {
    let valid = matches!(
        s.state,
        SubscriptionState::Active | SubscriptionState::Grace
    );
    let grace_end = s.paid_through.map(|t| t.saturating_add(s.grace_seconds));
    let renew = format!(
        "renew: sealstream market subscription renew {}, then pay its order",
        s.id
    );
    let pay = |order: &str| format!("pay order {order}: sealstream market order pay {order}");
    let (reason, remedy) = match s.state {
        SubscriptionState::Active => (None, None),
        SubscriptionState::Grace => (
            Some("the paid period is over; chunks are granted until the grace ends".to_string()),
            Some(unpaid.map_or(renew, pay)),
        ),
        SubscriptionState::AwaitingPayment => (
            Some("the first period is not paid yet".to_string()),
            unpaid.map(pay),
        ),
        SubscriptionState::Lapsed | SubscriptionState::Cancelled | SubscriptionState::Revoked => (
            Some(format!(
                "{}: {}",
                s.state,
                s.end_reason.as_deref().unwrap_or("ended")
            )),
            Some(format!(
                "subscribe again: sealstream market subscribe --listing {}",
                s.listing_id
            )),
        ),
    };
    FeedState {
        status: if valid {
            FeedStatus::Valid
        } else {
            FeedStatus::Invalid
        },
        state: s.state,
        paid_through: s.paid_through.map(utc),
        grace_until: grace_end.filter(|_| valid).map(utc),
        seconds_left: grace_end
            .filter(|_| valid)
            .map(|e| e.saturating_sub(now).max(0) as u64),
        access_ends: s.access_end.map(utc),
        reason,
        remedy,
        is_final: s.state.is_final(),
        cutoff: None,
    }
}

/// The next time `s` changes by itself (`T` while active, `T + G` in
/// grace, the access end of a final one without its cut-off notice yet),
/// Unix seconds.
fn next_change(s: &Subscription, has_cutoff: bool) -> Option<i64> {
    match (s.state, s.paid_through) {
        (SubscriptionState::Active, Some(t)) => Some(t),
        (SubscriptionState::Grace, Some(t)) => Some(t.saturating_add(s.grace_seconds)),
        _ if s.state.is_final() && !has_cutoff => s.access_end,
        _ => None,
    }
}

/// Where the feed of one subscription stands.
struct Follow {
    state: AppState,
    id: String,
    /// The last chunk index sent (-1: none).
    after: i64,
    /// The last state sent, without its `secondsLeft`.
    last_state: Option<FeedState>,
    queue: VecDeque<Event>,
    wake: Wake,
    /// Read the database now rather than wait.
    read_now: bool,
    /// Nothing more will come: end once the queue is sent.
    done: bool,
    /// The last read found the cut-off notice.
    had_cutoff: bool,
    /// A chunk was sent on this connection: the next index is the one
    /// after it (the window's lowest index lies below).
    sent_any: bool,
    /// The subscription's machine and topic, once read.
    chain: Option<(String, String)>,
    /// The count of changes other than grants at the last full read.
    seen_changes: u64,
    /// The subscription was final at the last full read.
    was_final: bool,
    next_change: Option<i64>,
    /// The next read is a full one whatever the wake-ups say (the
    /// backstop of [`crate::wake::FEED_RECHECK`] came).
    recheck: bool,
    _slot: FeedSlot,
}

impl Follow {
    /// Waits for a wake-up of this subscription or its next time-driven
    /// change; with replicas on PostgreSQL, at most
    /// [`crate::wake::FEED_RECHECK`], after which the next read is a full
    /// one (a wake-up from another replica may have been lost).
    async fn wait(&mut self) {
        let mut sleep = match self.next_change {
            Some(at) => {
                let now = sealstream_core::utc::now_unix();
                Duration::from_secs(at.saturating_sub(now).max(1) as u64)
            }
            None => Duration::from_secs(u32::MAX as u64),
        };
        let shared = self.state.store.engine() == crate::store::Engine::Postgres;
        if shared && sleep > crate::wake::FEED_RECHECK {
            sleep = crate::wake::FEED_RECHECK;
            self.recheck = true;
        }
        let woken = {
            let wake = async {
                if self.wake.receiver.changed().await.is_err() {
                    // The channel went with the server: wait for the timer.
                    std::future::pending::<()>().await
                }
            };
            tokio::select! {
                () = wake => true,
                () = tokio::time::sleep(sleep) => false,
            }
        };
        if woken {
            self.recheck = false;
        }
    }

    /// Reads what changed: the state (queued if it differs from the last
    /// sent) and the next chunks granted. Woken by grants alone (nothing
    /// else changed, no time-driven change due, the subscription not
    /// final, a chunk sent already), it reads the chunks only, gathered
    /// with other feeds' reads on PostgreSQL ([`super::feed_reads`]).
    ///
    /// Most reads write nothing: they run in a read-only snapshot, beside
    /// the other feeds and the granter. A read that finds a state change
    /// or a cut-off notice due reads again in a writing transaction and
    /// records it ([`super::writes_due`]).
    async fn read(&mut self) -> ApiResult<()> {
        let now = sealstream_core::utc::now_unix();
        let wake = *self.wake.receiver.borrow_and_update();
        let quiet = wake.changes == self.seen_changes
            && !std::mem::take(&mut self.recheck)
            && self.last_state.is_some()
            && self.sent_any
            && !self.was_final
            && self.next_change.is_none_or(|at| now < at);
        if let (true, Some(chain)) = (quiet, self.chain.clone()) {
            let (machine_did, topic) = chain;
            let read = db::GrantedRead {
                id: self.id.clone(),
                machine_did,
                topic,
                after: self.after,
            };
            let rows = (self.state.feeds.reads)
                .granted_chunks(&self.state.store, read, BATCH + 1)
                .await?;
            let (chunks, more, _) = self.sendable(rows, self.after.saturating_add(1));
            self.queue_chunks(chunks)?;
            self.read_now = more;
            return Ok(());
        }
        self.seen_changes = wake.changes;
        let store = &self.state.store;
        let mut tx = store.begin_read().await?;
        let mut found = db::subscription(&mut tx, &self.id).await?;
        if let Some(s) = &found {
            if super::writes_due(&mut tx, s, now).await? {
                tx.rollback().await?;
                tx = store.begin().await?;
                found = db::subscription(&mut tx, &self.id).await?;
            }
        }
        let Some(mut s) = found else {
            self.done = true;
            return Ok(());
        };
        let was = s.state;
        settle(&mut tx, &mut s, now).await?;
        // The order awaiting payment, which the state names while one is
        // due (read only then).
        let unpaid = if matches!(
            s.state,
            SubscriptionState::Grace | SubscriptionState::AwaitingPayment
        ) {
            db::periods(&mut tx, &s.id)
                .await?
                .into_iter()
                .rev()
                .find(|p| p.order_state == OrderState::AwaitingPayment)
                .map(|p| p.order_id)
        } else {
            None
        };
        let mut state = feed_state(&s, now, unpaid.as_deref());
        let notice = super::issue_cutoff(&self.state, &mut tx, &s, now).await?;
        state.cutoff = match &notice {
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| ApiError::internal("stored cut-off notice", e.to_string()))?,
            ),
            None => None,
        };
        // The entitled indexes form one range from the window's lowest
        // (history, then the live chunks; chunks are accepted in chain
        // order), so the next chunk to send is the one after the last sent,
        // or that lowest index.
        let mut expected = self.after.saturating_add(1);
        if !self.sent_any {
            let (window, _) = super::window_of(&mut tx, &s).await?;
            let lowest = super::entitlement::lowest_index(&window);
            expected = expected.max(lowest.min(i64::MAX as u64) as i64);
        }
        let rows = db::granted_chunks(
            &mut *tx,
            &s.id,
            (&s.machine_did, &s.topic),
            self.after,
            BATCH + 1,
        )
        .await?;
        let (chunks, more, gap) = self.sendable(rows, expected);
        // A final subscription's feed ends once its access has ended (its
        // notice is issued: a cancellation runs to T) and every chunk it is
        // entitled to is sent.
        let drained = s.state.is_final()
            && notice.is_some()
            && !more
            && !gap
            && super::pending_of(
                &mut tx,
                &self.state.grant_marks,
                std::slice::from_ref(&s),
                1,
            )
            .await?
            .0
            .is_empty();
        tx.commit().await?;
        if s.state != was || (notice.is_some() && !self.had_cutoff) {
            crate::wake::send(&self.state, crate::wake::Signal::Changed(s.id.clone()));
        }
        self.had_cutoff = notice.is_some();
        let mut key = state.clone();
        key.seconds_left = None;
        if self.last_state.as_ref() != Some(&key) {
            self.queue.push_back(event(FEED_EVENT_STATE, None, &state)?);
            self.last_state = Some(key);
        }
        self.queue_chunks(chunks)?;
        self.read_now = more;
        self.done = drained;
        self.was_final = s.state.is_final();
        self.next_change = next_change(&s, notice.is_some());
        self.chain = Some((s.machine_did, s.topic));
        Ok(())
    }

    /// Of `rows` (grants after the last chunk sent, by index, one more
    /// than a batch read), those to send now: from index `expected` on
    /// without a gap. Grants may be stored out of order (two granters at
    /// once): the run stops before the first index not granted yet, whose
    /// grant wakes the feed again. Also whether more are ready (the batch
    /// was full) and whether a gap stopped the run.
    fn sendable(
        &self,
        rows: Vec<(crate::ingest::db::ChunkRow, db::WrappedGrant)>,
        mut expected: i64,
    ) -> (
        Vec<(crate::ingest::db::ChunkRow, db::WrappedGrant)>,
        bool,
        bool,
    ) {
        let full = rows.len() as i64 > BATCH;
        let mut gap = false;
        let mut out = Vec::new();
        for (row, grant) in rows.into_iter().take(BATCH as usize) {
            let index = row.index.min(i64::MAX as u64) as i64;
            if index < expected {
                // Below the window (not entitled; never stored).
                continue;
            }
            if index > expected {
                gap = true;
                break;
            }
            expected += 1;
            out.push((row, grant));
        }
        (out, full && !gap, gap)
    }

    /// Queues a `chunk` event for each of `chunks`.
    fn queue_chunks(
        &mut self,
        chunks: Vec<(crate::ingest::db::ChunkRow, db::WrappedGrant)>,
    ) -> ApiResult<()> {
        for (row, grant) in chunks {
            let index = row.index;
            let chunk = FeedChunk {
                index,
                chunk_id: row.chunk_id,
                previous_chunk_id: row.previous_chunk_id,
                accepted_at: row.received_at,
                envelope: sealstream_api::JsonDocument(
                    serde_json::from_str(&row.envelope).map_err(|e| {
                        ApiError::internal("stored envelope", format!("chunk {index}: {e}"))
                    })?,
                ),
                buyer: WrappedKey {
                    recipient_id: grant.recipient_id,
                    recipient_type: sealstream_core::chunk::recipient_type::BUYER.to_string(),
                    algorithm: sealstream_core::chunk::WRAP_ALGORITHM.to_string(),
                    public_key_hex: grant.public_key_hex,
                    wrapped_key_hex: grant.wrapped_key_hex,
                },
                ciphertext_path: sealstream_api::routes::subscription_chunk_ciphertext(
                    &self.id, index,
                ),
                size: row.size,
            };
            self.queue
                .push_back(event(FEED_EVENT_CHUNK, Some(index), &chunk)?);
            self.after = index as i64;
            self.sent_any = true;
        }
        Ok(())
    }

    /// The next event, or `None` once the feed ends.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Follow)> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some((Ok(e), self));
            }
            if self.done || self.state.feeds.closing() {
                return None;
            }
            if !self.read_now {
                self.wait().await;
                if self.state.feeds.closing() {
                    return None;
                }
            }
            if let Err(e) = self.read().await {
                tracing::error!(subscription = %self.id, "feed stopped: {}", e.message);
                return None;
            }
        }
    }
}

/// An SSE event `name` carrying `data` as JSON, with `id` if given.
fn event<T: serde::Serialize>(name: &str, id: Option<u64>, data: &T) -> ApiResult<Event> {
    let json =
        serde_json::to_string(data).map_err(|e| ApiError::internal("feed event", e.to_string()))?;
    let e = Event::default().event(name).data(json);
    Ok(match id {
        Some(id) => e.id(id.to_string()),
        None => e,
    })
}

/// Where a feed starts: `?after`, else `Last-Event-ID`, else the start.
fn start_after(q: &FeedQuery, headers: &HeaderMap) -> ApiResult<i64> {
    let (text, field) = match &q.after {
        Some(text) => (Some(text.clone()), "after"),
        None => (
            match headers.get("last-event-id") {
                Some(v) => Some(
                    v.to_str()
                        .map_err(|_| ApiError::bad_request("Last-Event-ID", "not text"))?
                        .trim()
                        .to_string(),
                ),
                None => None,
            },
            "Last-Event-ID",
        ),
    };
    match text {
        Some(t) if !t.is_empty() => Ok(crate::ingest::parse_index(&t, field)? as i64),
        _ => Ok(-1),
    }
}

/// Follows a subscription: server-sent events for its buyer.
#[utoipa::path(get, path = sealstream_api::routes::SUBSCRIPTION_FEED, tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id"), FeedQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The last chunk index held (when `after` is absent)")),
    security(("session" = [])),
    responses(
        (status = 200, description = "`text/event-stream`: `state` events (FeedState) and `chunk` events (FeedChunk, id = index)", content_type = "text/event-stream"),
        (status = 400, description = "Bad `after` or `Last-Event-ID`", body = crate::openapi::ErrorBody),
        (status = 403, description = "The seller: a feed is its buyer's", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription of the caller's", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many feeds open (`feeds`)", body = crate::openapi::ErrorBody)))]
pub async fn feed(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<FeedQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let after = start_after(&q, &headers)?;
    let s = buyers(&state, &id, &caller).await?;
    let max = state.config.max_feeds_per_principal;
    let Some(slot) = state.feeds.open(&caller.did, max) else {
        return Err(ApiError::too_many_requests(
            Some("feeds"),
            format!("{max} feeds are open already; close one first"),
        ));
    };
    let follow = Follow {
        wake: state.feeds.wake_of(&s.id),
        state: state.clone(),
        id: s.id,
        after,
        last_state: None,
        queue: VecDeque::new(),
        read_now: true,
        done: false,
        had_cutoff: false,
        sent_any: false,
        chain: None,
        seen_changes: 0,
        was_final: false,
        next_change: None,
        recheck: false,
        _slot: slot,
    };
    let events = stream::unfold(follow, Follow::next);
    let keep_alive = KeepAlive::new().interval(state.config.feed_keep_alive);
    let mut response = Sse::new(events).keep_alive(keep_alive).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// The index of a subscription chunk route.
fn chunk_index(path: Result<Path<(String, String)>, PathRejection>) -> ApiResult<(String, u64)> {
    let Path((id, index)) = path.map_err(crate::ingest::path_error)?;
    Ok((id, crate::ingest::parse_index(&index, "index")?))
}

/// The ciphertext of a chunk granted to the subscription, to its buyer.
#[utoipa::path(get, path = sealstream_api::routes::SUBSCRIPTION_CHUNK_CIPHERTEXT, tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id"),
        ("index" = u64, Path, description = "The chunk's index")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The encrypted bytes", content_type = "application/octet-stream"),
        (status = 403, description = "The seller", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription of the caller's, or the chunk is not granted to it", body = crate::openapi::ErrorBody)))]
pub async fn chunk_ciphertext(
    State(state): State<AppState>,
    caller: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let (id, index) = chunk_index(path)?;
    let s = buyers(&state, &id, &caller).await?;
    if !db::is_granted(&state.store, &s.id, index).await? {
        return Err(ApiError::not_found(format!(
            "chunk {index} is not granted to subscription {id}"
        )));
    }
    let row = crate::ingest::db::chunk(state.store.pool(), &s.machine_did, &s.topic, index)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("chunk {index} not found")))?;
    crate::ingest::read::ciphertext(&state.objects, &row.object_key).await
}

/// The envelope of a chunk of the subscription's topic, up to the last one
/// granted to it, to its buyer.
#[utoipa::path(get, path = sealstream_api::routes::SUBSCRIPTION_CHUNK_ENVELOPE, tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id"),
        ("index" = u64, Path, description = "The chunk's index")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The envelope JSON as uploaded", content_type = "application/json"),
        (status = 403, description = "The seller", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription of the caller's, or no chunk at or below the last one granted", body = crate::openapi::ErrorBody)))]
pub async fn chunk_envelope(
    State(state): State<AppState>,
    caller: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let (id, index) = chunk_index(path)?;
    let s = buyers(&state, &id, &caller).await?;
    let last = db::last_granted(state.store.pool(), &s.id).await?;
    if last.is_none_or(|last| (index as i64) > last) {
        return Err(ApiError::not_found(format!(
            "chunk {index} is past the last one granted to subscription {id}"
        )));
    }
    let row = crate::ingest::db::chunk(state.store.pool(), &s.machine_did, &s.topic, index)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("chunk {index} not found")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], row.envelope).into_response())
}
