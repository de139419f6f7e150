//! What the owner's and buyer's market commands share: a signed-in client
//! from `--server` and `--key-file`, list output, and how the
//! client's failures become exit codes (a refusal 2, an unreachable
//! server 1).

use sealstream_client::market::{ClientError, MarketClient};
use sealstream_client::seller::SellerError;
use sealstream_core::json::{Map, Value};

use crate::cli::MarketSession;
use crate::error::{CliError, CliResult};

/// A client of `--server` signing in with `--key-file` (nothing is sent
/// yet); `role` words the EIP-4361 statement ("an owner", "a buyer").
pub fn client(session: &MarketSession, role: &str) -> CliResult<MarketClient> {
    let server = &session.server;
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(CliError::input(format!(
            "--server: expected an http:// or https:// URL, got {server:?}"
        )));
    }
    let key = crate::keyfile::secp256k1_secret(&session.key_file, "sign-in key")?;
    Ok(MarketClient::new(server, key)
        .with_statement(&format!("Sign in to the sealstream market as {role}.")))
}

/// A failed request: refused or not understood, exit 2; the server not
/// reached, exit 1.
pub fn client_error(what: &str, e: ClientError) -> CliError {
    let message = format!("{what}: {e}");
    match e {
        ClientError::Network { .. } => CliError::input(message),
        ClientError::Refused { .. } | ClientError::Protocol { .. } => CliError::integrity(message),
    }
}

/// A seller's failure: bad local input exit 1, the rest as
/// [`client_error`] (chunks that do not decrypt or match, exit 2).
pub fn seller_error(what: &str, e: SellerError) -> CliError {
    match e {
        SellerError::Client(e) => client_error(what, e),
        SellerError::Invalid { .. } => CliError::input(format!("{what}: {e}")),
        SellerError::Chunk { .. } | SellerError::Mismatch { .. } => {
            CliError::integrity(format!("{what}: {e}"))
        }
    }
}

/// `{field: items}`.
pub fn wrap(field: &str, items: Vec<Value>) -> Value {
    let mut m = Map::new();
    m.insert(field.into(), Value::Array(items));
    Value::Object(m)
}

/// A text field of an answer, or "-".
pub fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or("-")
}
