//! `sealstream`: a thin front end over sealstream-core. Argument parsing,
//! progress and output formatting live here; everything else is in the library.
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod error;
mod fetch;
mod keyfile;
mod ui;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::ui::Ui;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = |json: bool| Ui {
        quiet: cli.quiet,
        json,
    };
    let result = match cli.command {
        Command::Publish(args) => {
            let u = ui(args.json);
            cmd::publish::run(args, u)
        }
        Command::Grant(args) => {
            let u = ui(args.json);
            cmd::grant::run(args, u)
        }
        Command::Consume(args) => {
            let u = ui(args.json);
            cmd::consume::run(args, u)
        }
        Command::Verify(args) => {
            let u = ui(args.json);
            cmd::verify::run(args, u)
        }
        Command::Keys(c) => cmd::keys::run(c, ui(false)),
        Command::Package(c) => cmd::package::run(c, ui(false)),
        Command::Dataset(c) => cmd::dataset::run(c, ui(false)),
        #[cfg(feature = "agent")]
        Command::Agent(c) => cmd::agent::run(c, ui(false)),
        #[cfg(feature = "agent")]
        Command::Market(c) => cmd::market::run(c, ui(false)),
        Command::Receipt(c) => cmd::receipt::run(c, ui(false)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit as u8)
        }
    }
}
