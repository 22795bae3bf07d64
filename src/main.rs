//! The `doorbuster` binary: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use doorbuster::cli::{Cli, Command};
use doorbuster::{loadgen, rehearsal, server, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format;
    let command = cli.into_command();
    // The rehearsal is plain computation and child processes: no runtime, no logging.
    if let Command::Rehearse(args) = &command {
        return rehearsal::run(args);
    }
    // `serve` installs logging together with its exporters (inside the runtime, which the
    // exporters run on); the other roles only log.
    if !matches!(command, Command::Serve(_)) {
        telemetry::init_logging(log_format);
    }
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
        match command {
            Command::Serve(args) => exit(server::run(args, log_format).await),
            Command::Migrate(args) => exit(server::migrate(args).await),
            Command::Loadgen(args) => {
                let result = loadgen::run(args).await;
                if let Err(error) = &result {
                    eprintln!("error: {error}");
                }
                loadgen::exit_code(&result)
            }
            Command::Rehearse(_) => unreachable!("handled before the runtime starts"),
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
