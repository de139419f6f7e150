//! One module per command.

pub mod consume;
pub mod grant;
pub mod keys;
pub mod package;
pub mod publish;
pub mod verify;

use sealstream_core::layout::ReadChainError;

use crate::error::CliError;

/// A chunk directory that cannot be read is bad input (exit 1), as in the reference.
pub fn chain_error(e: ReadChainError) -> CliError {
    CliError::input(e.to_string())
}
