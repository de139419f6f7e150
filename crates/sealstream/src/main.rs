//! `sealstream`: a thin front end over sealstream-core. Argument parsing,
//! progress and output formatting live here; everything else is in the library.
#![forbid(unsafe_code)]
// The doc comments of `cli` are the `--help` text clap prints as written
// (`HOST[:PORT]`, URLs in examples), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]

mod cli;
mod cmd;
mod error;
mod fetch;
mod keyfile;
mod ui;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::ui::Ui;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    let ui = Ui {
        quiet: cli.quiet,
        json: cli.json,
    };
    let result = match cli.command {
        Command::Publish(args) => cmd::publish::run(args, ui),
        Command::Grant(args) => cmd::grant::run(args, ui),
        Command::Consume(args) => cmd::consume::run(args, ui),
        Command::Verify(args) => cmd::verify::run(args, ui),
        Command::Keys(c) => cmd::keys::run(c, ui),
        Command::Package(c) => cmd::package::run(c, ui),
        Command::Dataset(c) => cmd::dataset::run(c, ui),
        #[cfg(feature = "agent")]
        Command::Agent(c) => cmd::agent::run(c, ui),
        #[cfg(feature = "agent")]
        Command::Market(c) => cmd::market::run(c, ui),
        #[cfg(feature = "agent")]
        Command::Follow(args) => cmd::follow::run(args, ui),
        Command::Receipt(c) => cmd::receipt::run(c, ui),
        Command::Dispute(c) => cmd::dispute::run(c, ui),
        #[cfg(feature = "p2p")]
        Command::P2p(c) => cmd::p2p::run(c, ui),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit as u8)
        }
    }
}

/// `--help` and `--version` print and succeed; any other parse failure is
/// a usage error, with its own exit code ([`error::Exit::Usage`]).
fn usage(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
        _ => ExitCode::from(error::Exit::Usage as u8),
    }
}
