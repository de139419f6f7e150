//! Plain blocking HTTP for tests, on the workspace's one HTTP stack
//! (reqwest): a request sent and its answer read whole, whatever the status
//! ([`send`], [`Answer`]); a request with an optional bearer token and body
//! answered with (status, text) or (status, JSON) ([`call`], [`json`]); and
//! the percent-encoding of path segments and query values.
//!
//! A status of 400 or more is an answer like any other: a test that needs
//! success says so ([`Answer::ok`]). Only a request that got no answer
//! (connection refused, timeout) panics, or is an `Err` from [`try_send`].

use std::sync::OnceLock;
use std::time::Duration;

pub use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use reqwest::Method;

/// How long a test waits for a connection to a server under test.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a test waits for a whole answer (a server that hangs fails the
/// test instead of stalling the suite).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// The one client every harness sends with. It keeps no idle connection:
/// each request opens its own, as a fresh client would, so a server
/// restarted on the same port, or one that counts connections, sees what
/// a test means it to see.
pub fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .pool_max_idle_per_host(0)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(ANSWER_TIMEOUT)
            .build()
            .expect("an HTTP client")
    })
}

/// A client like [`client`] that does not follow redirects (to read a
/// `303` and its `Location`, `Set-Cookie` as a browser would get them).
pub fn client_without_redirects() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .pool_max_idle_per_host(0)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(ANSWER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client")
    })
}

/// A request builder for `method` (`"GET"`, `"POST"`, …) on `url`.
pub fn request(method: &str, url: &str) -> RequestBuilder {
    let method = Method::from_bytes(method.as_bytes())
        .unwrap_or_else(|e| panic!("HTTP method {method:?}: {e}"));
    client().request(method, url)
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// `METHOD url` of the request, for messages.
    pub request: String,
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The value of header `name` (any case), if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type of `Content-Type`, without its parameters
    /// (`application/json` of `application/json; charset=utf-8`);
    /// `text/plain` when there is none.
    pub fn content_type(&self) -> &str {
        self.header("content-type")
            .map(|v| v.split(';').next().unwrap_or(v).trim())
            .unwrap_or("text/plain")
    }

    /// The body as UTF-8 text (panics when it is not).
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone())
            .unwrap_or_else(|e| panic!("{}: the body is not UTF-8: {e}", self.request))
    }

    /// The body as JSON, or the text as a JSON string when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        let text = String::from_utf8_lossy(&self.body).into_owned();
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    }

    /// Whether the status is below 400 (redirects are followed).
    pub fn is_ok(&self) -> bool {
        self.status < 400
    }

    /// The answer, when its status is below 400; panics with the status
    /// and the body otherwise.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(
            self.is_ok(),
            "{}: status {}: {}",
            self.request,
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

/// Sends `request` and reads its answer whole, whatever the status; `Err`
/// when no answer came (connection refused or reset, timeout) or the body
/// could not be read.
pub fn try_send(request: RequestBuilder) -> Result<Answer, reqwest::Error> {
    let (client, request) = request.build_split();
    let request = request?;
    let what = format!("{} {}", request.method(), request.url());
    let response = client.execute(request)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes()?.to_vec();
    Ok(Answer {
        request: what,
        status,
        headers,
        body,
    })
}

/// Sends `request` and reads its answer whole, whatever the status. Panics
/// only when no answer came.
#[track_caller]
pub fn send(request: RequestBuilder) -> Answer {
    try_send(request).unwrap_or_else(|e| panic!("no answer: {e}"))
}

/// `text` percent-encoded as one path segment or query value: every byte
/// but RFC 3986's unreserved characters as `%XX` (the API's
/// [`sealstream_api::routes::encode_segment`]).
pub fn path_segment(text: &str) -> String {
    sealstream_api::routes::encode_segment(text)
}

/// `method base+path` with the bearer `token` if given and `body` (its
/// content type and bytes) if given: (status, response text). Panics only
/// when no answer came (connection refused, timeout).
pub fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> (u16, String) {
    let mut request = request(method, &format!("{base}{path}"));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some((content_type, bytes)) = body {
        request = request
            .header("Content-Type", content_type)
            .body(bytes.to_vec());
    }
    let answer = send(request);
    (answer.status, answer.text())
}

/// `method base+path` with a JSON body and the bearer `token` if given:
/// (status, the answer as JSON, or the text as a JSON string when it is
/// not JSON).
pub fn json(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let (status, text) = call(
        base,
        method,
        path,
        token,
        Some(("application/json", body.to_string().as_bytes())),
    );
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, value)
}
