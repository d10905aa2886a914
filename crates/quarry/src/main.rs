//! The `quarry` binary: parses arguments and wires the crates into services. No logic of its own
//! lives here beyond that wiring.

mod cli;
mod gitserver;
mod logging;
mod search;
mod serve;
mod shutdown;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Serve(args) => serve::run(args).await.map(|()| ExitCode::SUCCESS),
            cli::Command::Gitserver(args) => gitserver::run(args).await.map(|()| ExitCode::SUCCESS),
            cli::Command::Search(args) => Ok(search::run(args).await),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
