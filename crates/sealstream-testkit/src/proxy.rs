//! A round-robin HTTP proxy in front of several market replicas (issue
//! 24): each request, not each connection, goes to the next replica, so a
//! client that keeps its connection open still spreads its requests over
//! all of them. Bodies stream through both ways (uploads, downloads, live
//! feeds); hop-by-hop headers are dropped as a proxy must.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::{header, HeaderName, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The headers of one hop only (RFC 9110, 7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// A running proxy; stops with the runtime it was started on.
#[derive(Debug)]
pub struct RoundRobin {
    addr: SocketAddr,
    backends: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RoundRobin {
    /// Starts a proxy on a free loopback port, on `runtime`, sending
    /// requests in turn to `backends` (`host:port` each).
    pub fn start(runtime: &tokio::runtime::Handle, backends: Vec<String>) -> RoundRobin {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let backends = Arc::new(Mutex::new(backends));
        let next = Arc::new(AtomicUsize::new(0));
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build_http();
        let shared = backends.clone();
        let task = runtime.spawn(async move {
            // The connections end with the proxy (this task's abort drops
            // the set, which aborts them).
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                while connections.try_join_next().is_some() {}
                let (client, backends, next) = (client.clone(), shared.clone(), next.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let backend = {
                            let list = backends.lock().unwrap_or_else(|e| e.into_inner());
                            list[next.fetch_add(1, Ordering::Relaxed) % list.len()].clone()
                        };
                        forward(client.clone(), backend, request)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RoundRobin {
            addr,
            backends,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces backend `i` (a replica restarted on another port).
    pub fn set_backend(&self, i: usize, backend: String) {
        self.backends.lock().unwrap_or_else(|e| e.into_inner())[i] = backend;
    }
}

/// Sends `request` to `backend` and its answer back; a replica that does
/// not answer is a 502.
async fn forward(
    client: Client<HttpConnector, Incoming>,
    backend: String,
    mut request: Request<Incoming>,
) -> Result<Response<http_body_util::Either<Incoming, String>>, std::convert::Infallible> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = match format!("http://{backend}{path}").parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return Ok(bad_gateway("bad path".into())),
    };
    for h in &HOP_BY_HOP {
        request.headers_mut().remove(h);
    }
    match client.request(request).await {
        Ok(mut answer) => {
            for h in &HOP_BY_HOP {
                answer.headers_mut().remove(h);
            }
            Ok(answer.map(http_body_util::Either::Left))
        }
        Err(e) => Ok(bad_gateway(format!("replica {backend}: {e}"))),
    }
}

fn bad_gateway(message: String) -> Response<http_body_util::Either<Incoming, String>> {
    let mut answer = Response::new(http_body_util::Either::Right(message));
    *answer.status_mut() = StatusCode::BAD_GATEWAY;
    answer
}
