//! The `doorbuster` binary: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use doorbuster::cli::{Cli, Command};
use doorbuster::{loadgen, server, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.into_command() {
            Command::Serve(args) => exit(server::run(args).await),
            Command::Migrate(args) => exit(server::migrate(args).await),
            Command::Loadgen(args) => {
                let result = loadgen::run(args).await;
                if let Err(error) = &result {
                    eprintln!("error: {error}");
                }
                loadgen::exit_code(&result)
            }
        }
    })
}

fn exit(result: Result<(), server::BoxError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
