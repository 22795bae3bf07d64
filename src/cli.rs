//! The command line: one binary, three roles, so one container image serves every role.
//! With no subcommand the binary serves, which keeps `cargo run` and the image's default simple.

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, MigrateArgs, ServeArgs};

#[derive(Parser, Debug)]
#[command(
    name = "doorbuster",
    version,
    about = "A Black Friday storefront and load target",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Settings for serving when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Log format. Verbosity comes from `RUST_LOG` (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once at start; boxing buys nothing"
)]
pub enum Command {
    /// Serve the shop: pages, JSON API and probes (the default).
    Serve(ServeArgs),
    /// Apply database migrations and seed the catalog, then exit.
    Migrate(MigrateArgs),
}

impl Cli {
    /// The command to run, with "no subcommand" meaning `serve`.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve() {
        let cli = Cli::try_parse_from(["doorbuster", "--port", "9000"]).unwrap();
        match cli.into_command() {
            Command::Serve(args) => assert_eq!(args.port, 9000),
            other => panic!("expected serve, got {other:?}"),
        }
        let cli = Cli::try_parse_from(["doorbuster", "migrate", "--restock"]).unwrap();
        assert!(matches!(cli.into_command(), Command::Migrate(args) if args.restock));
    }
}
