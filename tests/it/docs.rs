//! The README stays true: its configuration table lists every variable the binary reads.

use clap::CommandFactory;
use doorbuster::cli::Cli;

/// Every environment variable of every subcommand appears in the README's configuration table.
#[test]
fn readme_documents_every_environment_variable() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut command = Cli::command();
    command.build();
    let mut commands = vec![command.clone()];
    commands.extend(command.get_subcommands().cloned());
    let mut seen = 0;
    for command in &commands {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(
                    readme.contains(&format!("| `{env}` |")),
                    "README's configuration table lacks `{env}`"
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 8, "found only {seen} variables");
}
