//! The command line: one binary, three roles, so one container image serves every role (and a
//! fourth command, `rehearse`, for whoever presents the AKS demo).
//! With no subcommand the binary serves, which keeps `cargo run` and the image's default simple.

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, MigrateArgs, ServeArgs};
use crate::loadgen::LoadgenArgs;
use crate::rehearsal::RehearseArgs;

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
    /// Send shoppers (or one request on repeat) to a Doorbuster and report how it held up.
    Loadgen(LoadgenArgs),
    /// Predict the AKS demo's surge from a rendered overlay: the replica curve, pods on VM nodes
    /// and on the virtual node, minute by minute; fails when the demo would not burst.
    Rehearse(RehearseArgs),
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
        let cli = Cli::try_parse_from(["doorbuster", "migrate", "--restock-to", "5000"]).unwrap();
        assert!(
            matches!(cli.into_command(), Command::Migrate(args) if args.restock_to == Some(5000))
        );
        assert!(
            Cli::try_parse_from(["doorbuster", "migrate", "--restock", "--restock-to", "1"])
                .is_err()
        );
    }

    /// `migrate --help` points only at commands that exist: a bare word in backquotes there is
    /// read as a command to run (it once named an `audit` there is no command for). The values
    /// it quotes that are no commands are listed here.
    #[test]
    fn migrate_help_names_only_real_commands() {
        const VALUES: &[&str] = &["info"]; // RUST_LOG's default level
        let mut command = Cli::command();
        command.build();
        let migrate = command.find_subcommand_mut("migrate").unwrap();
        let help = migrate.render_long_help().to_string();
        let subcommands: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        for quoted in help.split('`').skip(1).step_by(2) {
            if quoted.chars().all(|c| c.is_ascii_lowercase()) && !VALUES.contains(&quoted) {
                assert!(
                    subcommands.iter().any(|name| name == quoted),
                    "`{quoted}` in migrate's help is no command of doorbuster:\n{help}"
                );
            }
        }
    }

    #[test]
    fn loadgen_flags_parse_and_conflict() {
        let cli = Cli::try_parse_from([
            "doorbuster",
            "loadgen",
            "--target",
            "http://127.0.0.1:8080",
            "--stages",
            "30s:50,2m:500,1m:500,30s:0",
            "--mix",
            "browse=70,cart=20,checkout=10",
            "--max-error-rate",
            "2%",
        ])
        .unwrap();
        let Command::Loadgen(args) = cli.into_command() else {
            panic!("expected loadgen");
        };
        assert_eq!(args.run_time(), Some(std::time::Duration::from_secs(240)));
        assert_eq!(args.max_error_rate, 2.0);
        assert_eq!(args.mix.to_string(), "browse=70,cart=20,checkout=10");

        for conflicting in [
            &["--rps", "100", "--stages", "1m:10"][..],
            &["--open"],
            &["--spawn-rate", "5", "--rps", "10"],
            &["--duration", "1m", "--stages", "1m:10"],
            &["--scenario", "everything"],
            &["--users", "0"],
        ] {
            let mut argv = vec!["doorbuster", "loadgen", "--target", "http://127.0.0.1:8080"];
            argv.extend_from_slice(conflicting);
            let error = Cli::try_parse_from(&argv).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{argv:?}");
        }
        let error =
            Cli::try_parse_from(["doorbuster", "loadgen", "--target", "https://shop"]).unwrap_err();
        assert!(error.to_string().contains("https"), "{error}");
    }
}
