//! `runbook`: run ops playbooks written in Rhai on safe, tested primitives.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use runbook::error::Error;
use runbook::run::{self, RunOptions};

/// Run ops playbooks written in Rhai.
///
/// `runbook PLAYBOOK [--param value]… [--dry-run] [--log-format F] [--timeout SECS]`
/// runs a playbook; `runbook PLAYBOOK --help` lists its parameters.
#[derive(Parser)]
#[command(
    name = "runbook",
    version,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true,
    after_help = "Exit codes: 0 finished, 1 failed, 2 usage or compile error, 75 lock busy, 124 --timeout passed, 130/143 SIGINT/SIGTERM."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The playbook to run, then its parameters and the runner's options
    /// (--dry-run, --log-format pretty|json|github, --timeout SECS, --allow PROGRAM).
    #[arg(
        value_name = "PLAYBOOK [ARGS]",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    run: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Compile and lint playbooks without running anything.
    Check {
        /// Playbook files or folders (searched for *.rhai).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// The reference of every primitive, from the engine itself.
    Doc {
        /// Only this primitive.
        name: Option<String>,
        /// Markdown (for the README's reference).
        #[arg(long)]
        markdown: bool,
        /// Write `.d.rhai` definition files for editors into DIR.
        #[arg(long, value_name = "DIR")]
        definitions: Option<PathBuf>,
    },
    /// The target lock: who holds it, or break it.
    Lock {
        #[command(subcommand)]
        action: runbook::lock::cli::LockCmd,
    },
    /// Print the Kubernetes Job that runs PLAYBOOK on a cluster (parameters
    /// validated first): runbook job PLAYBOOK [--param value]… [--image REF] [--namespace NS].
    Job {
        /// The playbook, then its parameters, --image and --namespace.
        #[arg(
            value_name = "PLAYBOOK [ARGS]",
            trailing_var_arg = true,
            allow_hyphen_values = true,
            required = true
        )]
        args: Vec<String>,
    },
    /// The deployment ledger of a target, newest first.
    History(runbook::lock::cli::HistoryArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Check { paths }) => run::check(&paths),
        Some(Command::Doc {
            name,
            markdown,
            definitions,
        }) => run::doc(name.as_deref(), markdown, definitions.as_deref()),
        Some(Command::Lock { action }) => runbook::lock::cli::lock(action),
        Some(Command::History(a)) => runbook::lock::cli::history(a),
        Some(Command::Job { args }) => runbook::lock::job::job(&args),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "runbook",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        None => match RunOptions::parse(&cli.run) {
            Ok(Some(opts)) => run::run(opts),
            Ok(None) => {
                let _ = Cli::command().print_help();
                Err(Error::Usage(
                    "no playbook given: runbook PLAYBOOK [--param value]…".into(),
                ))
            }
            Err(e) => {
                // Logging is not set up yet: print plainly.
                Err(e)
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let text = runbook::redact::redact(&e.to_string()).into_owned();
            let text = if text.starts_with("error") {
                text
            } else {
                format!("error: {text}")
            };
            eprintln!("{}", text.trim_end());
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
