//! Plain blocking HTTP to a market under test: a request with an optional
//! bearer token and body, answered with the status and the text, whatever
//! the status; and the percent-encoding of path segments and query values.

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
    let mut request = ureq::request(method, &format!("{base}{path}"));
    if let Some(t) = token {
        request = request.set("Authorization", &format!("Bearer {t}"));
    }
    let result = match body {
        Some((content_type, bytes)) => request.set("Content-Type", content_type).send_bytes(bytes),
        None => request.call(),
    };
    let response = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = response.status();
    let text = response
        .into_string()
        .unwrap_or_else(|e| panic!("{method} {path}: the body: {e}"));
    (status, text)
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
