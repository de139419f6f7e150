//! Accepting and serving connections under limits (docs/market-design.md,
//! "Limits"): our own accept loop over hyper's HTTP/1 connection, because
//! `axum::serve` has no knob for any of them.
//!
//! - Every accepted socket gets `TCP_NODELAY` ([`Listener::accept`]): a
//!   response written in more than one piece (a streamed ciphertext) must not
//!   wait for the client's delayed ACK.
//! - At most [`ConnectionLimits::max_connections`] connections are open: at
//!   the cap the loop stops accepting (new connections wait in the kernel's
//!   backlog until one closes). At most
//!   [`ConnectionLimits::max_connections_per_client`] come from one client,
//!   the socket's peer address (an IPv6 address by its /64; never a header):
//!   one more is answered 503 in the API's error form and closed.
//! - A request's head must arrive within [`ConnectionLimits::header_timeout`]
//!   of the server starting to wait for it: from the accept, and on a
//!   kept-alive connection from the end of the previous response, so an
//!   idle kept-alive connection is closed after it too (hyper's
//!   `header_read_timeout`).
//! - A connection on which a read or a write waits with no byte moving for
//!   [`ConnectionLimits::idle_timeout`] is closed ([`IdleTimeout`]): a body
//!   that stalls, a client that stops reading its answer.
//! - Shutdown stops accepting, lets the requests in flight finish and
//!   closes idle connections (hyper-util's `GracefulShutdown`).
//!
//! Request timeouts (whole requests, by route class) are layers of the
//! router, in [`crate::server`].

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::Layer;

use crate::limits::LogThrottle;

/// Default cap on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default cap on open connections from one client address.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 64;
/// Default time a request's head may take.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a connection may wait with no byte moving.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Descriptors the server needs besides its connections: the listener, the
/// database pool (8), object files being written, logs, key files.
pub const FILE_DESCRIPTOR_RESERVE: u64 = 64;

/// The limits on connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_connections_per_client: usize,
    /// The longest a request's head may take (and a kept-alive connection
    /// may wait for its next request).
    pub header_timeout: Duration,
    /// The longest a read or a write may wait with no byte moving.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The client a connection is counted against: its IPv4 address, or the
/// /64 of its IPv6 address (one host usually has a whole /64). An
/// IPv4-mapped IPv6 address counts as the IPv4 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The listening socket. Every socket it accepts has `TCP_NODELAY` set.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
}

impl Listener {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> io::Result<Listener> {
        Ok(Listener {
            inner: TcpListener::bind(addr).await?,
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The next connection, with `TCP_NODELAY` set: small writes go out at
    /// once instead of waiting for the ACK of the previous one (Nagle),
    /// which the client may delay by 40 ms or more.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, peer))
    }
}

/// Counts open connections per client, refusing one over the cap.
#[derive(Debug)]
struct PerClient {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted for its client; uncounted on drop.
#[derive(Debug)]
struct ClientSlot {
    table: Arc<PerClient>,
    key: IpAddr,
}

impl PerClient {
    fn enter(table: &Arc<PerClient>, ip: IpAddr) -> Option<ClientSlot> {
        let key = client_key(ip);
        let mut open = table.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= table.cap {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: table.clone(),
            key,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// An I/O stream whose reads and writes fail with `TimedOut` once one of
/// them has waited `timeout` since a byte last moved either way.
#[derive(Debug)]
pub struct IdleTimeout<T> {
    inner: T,
    timeout: Duration,
    last_progress: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    /// `inner` with an idle timeout of `timeout`.
    pub fn new(inner: T, timeout: Duration) -> Self {
        let now = Instant::now();
        IdleTimeout {
            inner,
            timeout,
            last_progress: now,
            sleep: Box::pin(tokio::time::sleep_until((now + timeout).into())),
        }
    }

    fn progress(&mut self) {
        self.last_progress = Instant::now();
    }

    /// Called when an operation is pending: an error once the deadline has
    /// passed, else pending with the timer armed. The timer is not moved on
    /// each byte (that would cost a timer update per read and write): it
    /// stays at a deadline no later than the real one, and when it fires
    /// early it is set again to the real one.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = self.last_progress + self.timeout;
            if Instant::now() >= deadline {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "idle timeout: no byte moved",
                )));
            }
            self.sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.progress();
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.progress();
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.progress();
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => this.pending(cx),
        }
    }
}

/// What the accept loop reports to the metrics.
pub trait ConnectionEvents: Send + Sync + 'static {
    /// A connection was accepted and is being served.
    fn opened(&self);
    /// A served connection closed.
    fn closed(&self);
    /// A connection was refused: `limit` names the cap.
    fn refused(&self, limit: &'static str);
}

/// The answer to a connection over the per-client cap, written before the
/// socket is closed (best effort: a client that does not read it just sees
/// the connection close).
fn per_client_refusal(cap: usize) -> Vec<u8> {
    let body = serde_json::to_string(&sealstream_api::ErrorBody::new(
        Some("max-connections-per-client"),
        format!("too many open connections from your address (the limit is {cap})"),
    ))
    .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `router` on `listener` under `limits` until `shutdown`
/// completes; then stops accepting and waits for the connections to finish
/// the requests in flight.
pub async fn serve(
    listener: Listener,
    router: Router,
    limits: ConnectionLimits,
    events: Arc<dyn ConnectionEvents>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_client = Arc::new(PerClient {
        cap: limits.max_connections_per_client.max(1),
        open: Mutex::new(HashMap::new()),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let refusal = per_client_refusal(per_client.cap);
    let log = LogThrottle::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let Some(client) = PerClient::enter(&per_client, peer.ip()) else {
            events.refused("max-connections-per-client");
            if let Some(held_back) = log.allow() {
                tracing::warn!(
                    client = %client_key(peer.ip()),
                    limit = "max-connections-per-client",
                    cap = per_client.cap,
                    held_back,
                    "connection refused: too many open connections from this client"
                );
            }
            let _ = stream.try_write(&refusal);
            drop(stream);
            continue;
        };
        let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
        let service = TowerToHyperService::new(Extension(ConnectInfo(peer)).layer(router.clone()));
        let connection = graceful.watch(http.serve_connection(io, service));
        let events = events.clone();
        events.opened();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "connection closed: {e}");
            }
            events.closed();
            drop(client);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Connection-level accept errors (the peer gave up) are skipped; others
/// (out of file descriptors) are logged and the loop pauses, giving
/// connections time to close.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept failed: {e}; pausing accepts for 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The open-file limit (soft, hard), where the platform has one.
pub fn open_file_limit() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{getrlimit, Resource};
        // `rlim_t` is not u64 on every Unix.
        #[allow(clippy::unnecessary_cast)]
        getrlimit(Resource::RLIMIT_NOFILE)
            .ok()
            .map(|(soft, hard)| (soft as u64, hard as u64))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Descriptors the server needs for `max_connections`.
pub fn file_descriptors_needed(max_connections: usize) -> u64 {
    max_connections as u64 + FILE_DESCRIPTOR_RESERVE
}

/// Warns when the process's open-file limit is below what the connection
/// cap needs: past it, accepts fail (and the database and the object store
/// cannot open files) before the cap is reached.
pub fn warn_if_open_files_short(max_connections: usize) {
    let needed = file_descriptors_needed(max_connections);
    if let Some((soft, hard)) = open_file_limit() {
        if soft < needed {
            tracing::warn!(
                open_file_limit = soft,
                hard_limit = hard,
                needed,
                max_connections,
                "the open-file limit (RLIMIT_NOFILE) is below what --max-connections needs \
                 ({max_connections} connections + {FILE_DESCRIPTOR_RESERVE} for the database, \
                 objects and logs): raise it (ulimit -n {needed}, systemd LimitNOFILE={needed}) \
                 or lower --max-connections"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_addresses_and_ipv6_slash_64s() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        assert_eq!(client_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn per_client_slots_are_counted_and_given_back() {
        let table = Arc::new(PerClient {
            cap: 2,
            open: Mutex::new(HashMap::new()),
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let a = PerClient::enter(&table, ip).unwrap();
        let b = PerClient::enter(&table, ip).unwrap();
        assert!(PerClient::enter(&table, ip).is_none());
        assert!(PerClient::enter(&table, other).is_some());
        drop(a);
        let c = PerClient::enter(&table, ip).unwrap();
        assert!(PerClient::enter(&table, ip).is_none());
        drop((b, c));
        assert!(
            table.open.lock().unwrap().is_empty(),
            "slots all given back"
        );
    }

    #[test]
    fn file_descriptors_needed_adds_the_reserve() {
        assert_eq!(file_descriptors_needed(512), 576);
    }
}
