//! One module per command.

#[cfg(feature = "agent")]
pub mod agent;
#[cfg(feature = "agent")]
pub mod agent_init;
pub mod consume;
pub mod dataset;
#[cfg(feature = "agent")]
pub mod follow;
pub mod grant;
pub mod keys;
#[cfg(feature = "agent")]
pub mod market;
#[cfg(feature = "agent")]
pub mod market_account;
#[cfg(feature = "market")]
pub mod market_audit;
#[cfg(feature = "agent")]
pub mod market_browse;
#[cfg(feature = "agent")]
pub mod market_disclosures;
#[cfg(feature = "agent")]
pub mod market_orders;
#[cfg(feature = "agent")]
pub mod market_pay;
#[cfg(feature = "market")]
pub mod market_receipt_log;
#[cfg(feature = "agent")]
pub mod market_renew_auto;
#[cfg(feature = "agent")]
pub mod market_sample;
#[cfg(feature = "agent")]
pub mod market_seller;
#[cfg(feature = "market")]
pub mod market_serve;
#[cfg(feature = "agent")]
pub mod market_session;
#[cfg(feature = "agent")]
pub mod market_subscriptions;
#[cfg(feature = "p2p")]
pub mod p2p;
pub mod package;
mod package_input;
pub mod publish;
pub mod receipt;
#[cfg(feature = "agent")]
pub mod stop;
pub mod verify;

use sealstream_files::layout::ReadChainError;

use crate::error::CliError;

/// A chunk directory that cannot be read is bad input (exit 1), as in the reference.
pub fn chain_error(e: ReadChainError) -> CliError {
    CliError::input(e.to_string())
}

/// "DIR/chunk-N.bin: chain verification failed at chunk N: reason", naming
/// the ciphertext for ciphertext problems and the envelope otherwise.
pub fn verify_message(
    e: &sealstream_core::chunk::VerifyError,
    chunk_dir: &std::path::Path,
    data_dir: &std::path::Path,
) -> String {
    use sealstream_core::chunk::VerifyReason;
    use sealstream_files::layout::{ciphertext_name, envelope_name};
    let file = match e.reason {
        VerifyReason::HashMismatch | VerifyReason::MissingCiphertext => {
            data_dir.join(ciphertext_name(e.index))
        }
        VerifyReason::Empty => chunk_dir.to_path_buf(),
        _ => chunk_dir.join(envelope_name(e.index)),
    };
    format!(
        "{}: chain verification failed at chunk {}: {}",
        file.display(),
        e.index,
        e.reason
    )
}
