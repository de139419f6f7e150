//! What the owner's and buyer's market commands share: a signed-in client
//! from `--server` and `--key-file`, JSON output, and how the
//! client's failures become exit codes (a refusal 2, an unreachable
//! server 1).

use sealstream_client::market::{ClientError, MarketClient};
use sealstream_client::seller::SellerError;

use crate::cli::{MarketServer, MarketSession};
use crate::error::{CliError, CliResult};
use crate::ui::Ui;

/// A client of `--server` signing in with `--key-file` (nothing is sent
/// yet); `role` words the EIP-4361 statement ("an owner", "a buyer").
pub fn client(session: &MarketSession, role: &str) -> CliResult<MarketClient> {
    let server = checked_url(&session.server)?;
    let key = crate::keyfile::secp256k1_secret(&session.key_file, "sign-in key")?;
    Ok(MarketClient::new(server, key)
        .with_statement(&format!("Sign in to the sealstream market as {role}.")))
}

/// A client of `--server` that never signs in (the catalog, published
/// listings and their samples, the receipt key).
pub fn anonymous(server: &MarketServer) -> CliResult<MarketClient> {
    Ok(MarketClient::anonymous(checked_url(&server.server)?))
}

/// `--server`, if it is an http(s) URL.
fn checked_url(server: &str) -> CliResult<&str> {
    if server.starts_with("http://") || server.starts_with("https://") {
        Ok(server)
    } else {
        Err(CliError::input(format!(
            "--server: expected an http:// or https:// URL, got {server:?}"
        )))
    }
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

/// Prints an answer (or any body of the API) as JSON on stdout, its keys in
/// the order the server writes them.
pub fn json_answer<T: serde::Serialize>(ui: &Ui, body: &T) -> CliResult {
    let value = sealstream_api::document::core_value_of(body)
        .map_err(|e| CliError::integrity(format!("answer: {e}")))?;
    ui.json_out(&value);
    Ok(())
}
