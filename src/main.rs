//! `runbook`: run ops playbooks written in Rhai on safe, tested primitives.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use runbook::commands;
use runbook::error::Error;
use runbook::out::Stream;
use runbook::params::runner;
use runbook::run::{self, RunOptions};

/// Run ops playbooks written in Rhai.
///
/// `runbook PLAYBOOK [--param value]… [runner options]` runs a playbook;
/// `runbook PLAYBOOK --help` lists its parameters.
#[derive(Parser)]
#[command(
    name = "runbook",
    version,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true,
    after_help = "Exit codes: 0 finished, 1 failed, 2 usage or compile error, 75 lock busy or lost (fenced), 124 --timeout passed, 129/130/131/143 SIGHUP/SIGINT/SIGQUIT/SIGTERM, 141 stdout closed."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The playbook to run, then its parameters and the runner's options.
    #[arg(
        value_name = "PLAYBOOK [ARGS]",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        long_help = run_help()
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
    /// The reference of every primitive, from the engine itself
    /// (`runbook doc builtins`: the language's own functions).
    Doc {
        /// Only this primitive (or built-in); `builtins` lists the language's functions.
        name: Option<String>,
        /// Markdown (for the README's reference).
        #[arg(long)]
        markdown: bool,
        /// Write `.d.rhai` definition files for editors into DIR.
        #[arg(long, value_name = "DIR")]
        definitions: Option<PathBuf>,
    },
    /// Run playbook tests (*.test.rhai) with stubbed primitives, offline.
    Test {
        /// Test files or folders (default: the current folder, recursively).
        paths: Vec<PathBuf>,
        /// Only tests whose `file::name` contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// `text` (one line per test) or `junit` (JUnit XML on stdout).
        #[arg(long, default_value = "text", value_parser = ["text", "junit"])]
        format: String,
        /// Rewrite the snapshots of assert_snapshot instead of comparing.
        #[arg(long)]
        update_snapshots: bool,
    },
    /// The target lock: who holds it, or break it.
    Lock {
        #[command(subcommand)]
        action: commands::lock::LockCmd,
    },
    /// Print the Kubernetes Job that runs PLAYBOOK on a cluster (validated
    /// first, as a run validates it): runbook job PLAYBOOK [--param value]…
    /// [--job-image REF] [--job-namespace NS].
    Job {
        /// The playbook, its parameters and runner options (passed to the
        /// Job's run), and the job's own --job-image and --job-namespace.
        #[arg(
            value_name = "PLAYBOOK [ARGS]",
            trailing_var_arg = true,
            allow_hyphen_values = true,
            required = true
        )]
        args: Vec<String>,
    },
    /// The deployment ledger of a target, newest first.
    History(commands::lock::HistoryArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The long help of a run's arguments: the runner's options, from their
/// one table.
fn run_help() -> String {
    format!(
        "The playbook to run, then its parameters and the runner's options.\n\n{}",
        runner::help()
    )
}

/// The command for the completion scripts: the runner's options (taken
/// after the playbook, so not clap's) added from their table.
fn completion_command() -> clap::Command {
    let mut cmd = Cli::command();
    for o in runner::OPTIONS.iter().filter(|o| o.name != "help") {
        let mut arg = clap::Arg::new(o.name).long(o.name).help(o.help);
        arg = if o.is_switch() {
            arg.action(clap::ArgAction::SetTrue)
        } else {
            arg.value_name(o.metavar())
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    runbook::out::init();
    if runbook::out::under_github() {
        runbook::redact::set_github(true);
    }
    // Known secret variables are masked from the first byte on.
    runbook::redact::register_known_vars();
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let result = match run_args(&argv) {
        Some(args) => run_playbook(&args),
        None => match parse_cli() {
            Ok(cli) => dispatch(cli),
            Err(code) => return code,
        },
    };
    let result = match result {
        // Nothing read what we printed: end as `yes | head` does.
        Ok(()) if runbook::out::pipe_closed() => Err(Error::Interrupted("SIGPIPE")),
        r => r,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(text) = e.render() {
                runbook::out::eprintln(&text);
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// A run's arguments when the command line can only be a run: its first
/// argument is neither a subcommand (clap's derived `has_subcommand`, a
/// match on the names) nor an option, and clap reads such a line the same
/// (`the_fast_path_reads_runs_as_clap_does`). A run then skips building
/// clap's command, a tenth of a trivial run's start-up.
fn run_args(argv: &[OsString]) -> Option<Vec<String>> {
    let first = argv.first()?.to_str()?;
    if first.starts_with('-') || Command::has_subcommand(first) {
        return None;
    }
    argv.iter().map(|a| a.to_str().map(String::from)).collect()
}

/// `runbook PLAYBOOK [ARGS]…`.
fn run_playbook(args: &[String]) -> Result<(), Error> {
    match RunOptions::parse(args).map_err(Error::Usage) {
        Ok(Some(opts)) => run::run(opts),
        Ok(None) => {
            let help = Cli::command().render_help().to_string();
            runbook::out::text(Stream::Stdout, &help);
            Err(Error::Usage(
                "no playbook given: runbook PLAYBOOK [--param value]…".into(),
            ))
        }
        // Logging is not set up yet: printed plainly, by main.
        Err(e) => Err(e),
    }
}

/// The command line through clap, or the exit code of its help, version
/// or error, already printed.
fn parse_cli() -> Result<Cli, ExitCode> {
    match Cli::try_parse() {
        Ok(c) => Ok(c),
        Err(e) => {
            // clap's own help and errors, through the one writer.
            let stream = if e.use_stderr() {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            runbook::out::text(stream, &e.render().to_string());
            if runbook::out::pipe_closed() {
                return Err(ExitCode::from(141));
            }
            Err(ExitCode::from(if e.use_stderr() { 2 } else { 0 }))
        }
    }
}

/// Run what clap read.
fn dispatch(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Some(Command::Check { paths }) => commands::check::check(&paths),
        Some(Command::Doc {
            name,
            markdown,
            definitions,
        }) => commands::doc(name.as_deref(), markdown, definitions.as_deref()),
        Some(Command::Test {
            paths,
            filter,
            format,
            update_snapshots,
        }) => runbook::testing::main(runbook::testing::Options {
            paths,
            filter,
            junit: format == "junit",
            update_snapshots,
        }),
        Some(Command::Lock { action }) => commands::lock::lock(action),
        Some(Command::History(a)) => commands::lock::history(a),
        Some(Command::Job { args }) => commands::job::job(&args),
        Some(Command::Completions { shell }) => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut completion_command(), "runbook", &mut buf);
            runbook::out::text(Stream::Stdout, &String::from_utf8_lossy(&buf));
            Ok(())
        }
        None => run_playbook(&cli.run),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// The fast path takes a line as a run exactly when clap would, with
    /// the same arguments.
    #[test]
    fn the_fast_path_reads_runs_as_clap_does() {
        // Each line, and whether the fast path takes it (it leaves to
        // clap what starts with an option or a subcommand).
        let lines: &[(&[&str], bool)] = &[
            (&["pb.rhai"], true),
            (&["pb.rhai", "--sha", "previous", "--dry-run"], true),
            (&["pb.rhai", "--help"], true),
            (&["pb.rhai", "check"], true),
            (&["./check"], true),
            (&["check.rhai", "-x"], true),
            (&["pb.rhai", "--sha", "a\nb", "--", "x"], true),
            (&[""], true),
            (&["check", "pb.rhai"], false),
            (&["test"], false),
            (&["--help"], false),
            (&["-V"], false),
            (&["--version"], false),
            (&["--dry-run", "pb.rhai"], false),
            (&["completions", "bash"], false),
            (&["lock", "status", "x"], false),
            (&["history", "app"], false),
            (&["job", "pb.rhai"], false),
            (&["doc"], false),
        ];
        for (line, taken) in lines {
            let argv: Vec<OsString> = line.iter().map(OsString::from).collect();
            let fast = run_args(&argv);
            assert_eq!(fast.is_some(), *taken, "{line:?}");
            let clap = Cli::try_parse_from(std::iter::once("runbook").chain(line.iter().copied()))
                .ok()
                .filter(|c| c.command.is_none())
                .map(|c| c.run);
            if let Some(args) = fast {
                assert_eq!(Some(args), clap, "{line:?}: clap reads it otherwise");
            }
        }
        // Not UTF-8: left to clap, which names the argument.
        let bad = vec![OsString::from(std::ffi::OsStr::from_bytes(b"pb\xff.rhai"))];
        assert_eq!(run_args(&bad), None);
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
        completion_command().debug_assert();
    }
}
