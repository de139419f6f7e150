//! Connection limits (issue 14, items 5 and 21): TCP_NODELAY on every
//! accepted socket; a cap on connections per client and in all; stalled
//! request heads, idle kept-alive connections and stalled bodies closed by
//! their timeouts; whole requests cut by their route class's timeout; and a
//! graceful shutdown that still finishes the request in flight.
//!
//! Clients here are raw sockets (a stalled connection is one that sends part
//! of a request and then nothing). "Another client" connects from
//! 127.0.0.2, which Linux routes to the loopback like 127.0.0.1. Every
//! assertion is on an outcome (an answer, a refusal, a closed connection);
//! the reads that wait for one have generous timeouts that only bound how
//! long a failing test hangs.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{block_on, Db, TestServer};
use sealstream_market::connections::Listener;
use sealstream_testkit::on_both_databases;
use serde_json::Value;

/// How long a read waits for an outcome before the test gives up.
const OUTCOME: Duration = Duration::from_secs(30);

fn addr(server: &TestServer) -> SocketAddr {
    server.base.trim_start_matches("http://").parse().unwrap()
}

/// A connection to `to` from the local address `from` (127.0.0.x).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        socket.connect(to).await.unwrap()
    });
    let stream = socket.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(OUTCOME)).unwrap();
    stream
}

/// A connection that sent part of a request head and stalls.
fn stalled(from: &str, to: SocketAddr) -> TcpStream {
    let mut s = connect_from(from, to);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: market\r\nX-Slow: ")
        .unwrap();
    s
}

/// How a connection ended, as its client saw it.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// An HTTP answer (status, JSON body or text), then the close.
    Answered(u16, Value),
    /// Closed (or reset) with no answer.
    Closed,
}

/// Reads until the server closes the connection. Panics if nothing happens
/// within [`OUTCOME`]: the server held the connection.
fn outcome(stream: &mut TcpStream) -> Outcome {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "the server held the connection for {OUTCOME:?} with no answer and no close \
                     (read so far: {:?})",
                    String::from_utf8_lossy(&raw)
                )
            }
            Err(_) => break, // reset
        }
    }
    if raw.is_empty() {
        return Outcome::Closed;
    }
    let (status, body) = parse_answer(&raw);
    Outcome::Answered(status, body)
}

fn parse_answer(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.into())),
    )
}

/// Sends a whole `GET path` on `stream` (kept alive) and reads one answer.
fn get_on(stream: &mut TcpStream, path: &str) -> (u16, Value) {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: market\r\n\r\n").unwrap();
    read_one_answer(stream)
}

/// Reads one answer with a Content-Length body, leaving the connection open.
fn read_one_answer(stream: &mut TcpStream) -> (u16, Value) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).expect("an answer");
        assert!(n > 0, "closed before the answer");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("a content-length");
            if body.len() >= length {
                return parse_answer(&raw);
            }
        }
    }
}

/// Item 21: the sockets the server accepts have TCP_NODELAY set.
#[test]
fn accepted_sockets_have_nodelay() {
    block_on(async {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let to = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(to).await.unwrap();
        let (accepted, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY on the accepted socket"
        );
    });
}

/// Item 5: more stalled connections than one client may open. Those over
/// the per-client cap are answered 503 (naming the limit) and closed at
/// once; the server answers another client meanwhile; a further connection
/// from the first client is refused too; and the stalled connections held
/// are closed when the header timeout passes.
fn stalled_connections_are_capped_per_client_and_timed_out(db: Db) {
    let server = TestServer::start_single_with(db, |c| {
        c.max_connections_per_client = 4;
        c.header_timeout = Duration::from_secs(3);
    });
    let to = addr(&server);
    let mut held: Vec<TcpStream> = (0..12).map(|_| stalled("127.0.0.1", to)).collect();
    // Another client is served while they stall.
    let mut other = connect_from("127.0.0.2", to);
    let (status, body) = get_on(&mut other, "/healthz");
    assert_eq!((status, &body["status"]), (200, &Value::from("ok")));
    let outcomes: Vec<Outcome> = held.iter_mut().map(outcome).collect();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Answered(503, b) if b["error"]["field"] == "max-connections-per-client"))
        .count();
    let timed_out = outcomes.iter().filter(|o| **o == Outcome::Closed).count();
    assert_eq!(
        (refused, timed_out),
        (8, 4),
        "8 over the cap refused, the 4 held closed by the header timeout: {outcomes:?}"
    );
    if let Some(Outcome::Answered(_, body)) =
        outcomes.iter().find(|o| matches!(o, Outcome::Answered(..)))
    {
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("limit is 4"), "{message}");
    }
    // The slots are given back: the client can connect again.
    let mut again = connect_from("127.0.0.1", to);
    assert_eq!(get_on(&mut again, "/healthz").0, 200);
}

/// Item 5: at the global cap the server stops accepting; a connection
/// waiting in the backlog is served as soon as a slot frees.
#[test]
fn at_the_global_cap_new_connections_wait_for_a_slot() {
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.max_connections = 3;
        c.header_timeout = Duration::from_secs(600);
    });
    let to = addr(&server);
    let mut held: Vec<TcpStream> = (0..3).map(|_| stalled("127.0.0.1", to)).collect();
    let mut waiting = connect_from("127.0.0.2", to);
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: market\r\n\r\n")
        .unwrap();
    // Not served while the 3 slots are held...
    waiting
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut byte = [0u8; 1];
    // A signal to the test process interrupts the read (EINTR, seen under
    // load): read again.
    let early = loop {
        match waiting.read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r,
        }
    };
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "answered over the cap: {early:?}"
    );
    // ...and served once one of them goes away.
    drop(held.pop());
    waiting.set_read_timeout(Some(OUTCOME)).unwrap();
    assert_eq!(read_one_answer(&mut waiting).0, 200);
}

/// Item 5: a kept-alive connection that sends no further request is closed
/// after the header timeout.
#[test]
fn idle_kept_alive_connections_are_closed() {
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.header_timeout = Duration::from_secs(1);
    });
    let mut stream = connect_from("127.0.0.1", addr(&server));
    assert_eq!(get_on(&mut stream, "/healthz").0, 200);
    assert_eq!(get_on(&mut stream, "/healthz").0, 200, "kept alive");
    assert_eq!(outcome(&mut stream), Outcome::Closed);
}

/// Item 5: a request whose body stops arriving is closed after the idle
/// timeout (no byte moved), even though its request timeout is long.
#[test]
fn stalled_bodies_are_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.idle_timeout = Duration::from_secs(1);
        c.request_timeout = Duration::from_secs(600);
    });
    let mut stream = connect_from("127.0.0.1", addr(&server));
    stream
        .write_all(
            b"POST /v1/auth/verify HTTP/1.1\r\nHost: market\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"message\":",
        )
        .unwrap();
    // Whatever the server answers, it must end the connection.
    let _ = outcome(&mut stream);
}

/// Sends `head` and then `body` one byte at a time, `pause` apart, and
/// returns the answer (the server may answer before the body is sent).
fn trickle(to: SocketAddr, head: &str, body: &[u8], pause: Duration) -> Outcome {
    let mut stream = connect_from("127.0.0.1", to);
    stream.write_all(head.as_bytes()).unwrap();
    for b in body {
        std::thread::sleep(pause);
        if stream.write_all(&[*b]).is_err() {
            break;
        }
    }
    outcome(&mut stream)
}

/// Item 5: a request on a small route that is not answered within the
/// request timeout is cut with 408 naming `request-timeout`; the upload
/// routes (chunks, grants) have the longer upload timeout instead.
fn requests_are_cut_by_their_route_class_timeout(db: Db) {
    let server = TestServer::start_single_with(db, |c| {
        c.request_timeout = Duration::from_secs(1);
        c.upload_timeout = Duration::from_secs(600);
    });
    let to = addr(&server);
    let body = br#"{"message":"x","signature":"0x00"}"#;
    let pause = Duration::from_millis(100);
    let head = format!(
        "POST /v1/auth/verify HTTP/1.1\r\nHost: market\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    match trickle(to, &head, body, pause) {
        Outcome::Answered(408, answer) => {
            assert_eq!(answer["error"]["field"], "request-timeout", "{answer}");
            assert!(
                answer["error"]["message"].as_str().unwrap().contains("1 s"),
                "{answer}"
            );
        }
        other => panic!("expected 408: {other:?}"),
    }
    // A grant upload as slow is not cut: it is read to the end and
    // answered (404: there is no such order).
    let token = server.session_for(
        &common::listings_fixtures::new_did(),
        &[sealstream_market::auth::Role::Owner],
    );
    let grant = br#"{"files":[]}"#;
    let head = format!(
        "PUT /v1/orders/ord_00000000000000000000000000000000/grant HTTP/1.1\r\nHost: market\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        grant.len()
    );
    match trickle(to, &head, grant, pause) {
        Outcome::Answered(404, _) => {}
        other => panic!("expected the grant route's own answer: {other:?}"),
    }
}

/// Shutdown waits for the request in flight: a request whose body is still
/// arriving when the server is told to stop is answered, then the server
/// stops and refuses new connections.
#[test]
fn shutdown_finishes_the_request_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let config = sealstream_market::server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    let server = block_on(sealstream_market::server::Server::bind(config)).unwrap();
    let to = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = std::thread::spawn(move || {
        block_on(server.run(async move {
            let _ = stopped.await;
        }))
    });
    let body = br#"{"message":"x","signature":"0x00"}"#;
    let mut stream = connect_from("127.0.0.1", to);
    // `Expect: 100-continue`: the server says "100 Continue" only once the
    // route reads the body, so the request is surely in flight when the
    // server is told to stop.
    write!(
        stream,
        "POST /v1/auth/verify HTTP/1.1\r\nHost: market\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed before 100");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream.write_all(&body[..5]).unwrap();
    stop.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body[5..]).unwrap();
    match outcome(&mut stream) {
        Outcome::Answered(status, answer) => {
            assert!((400..500).contains(&status), "{status} {answer}");
            assert!(answer["error"]["field"].is_string(), "{answer}");
        }
        Outcome::Closed => panic!("the request in flight was dropped"),
    }
    running.join().unwrap().expect("the server stops cleanly");
    assert!(
        TcpStream::connect(to).is_err(),
        "no longer accepting after shutdown"
    );
}

on_both_databases!(
    stalled_connections_are_capped_per_client_and_timed_out,
    requests_are_cut_by_their_route_class_timeout,
);
