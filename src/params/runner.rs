//! The runner's own options, declared once in [`OPTIONS`]: parsing
//! ([`RunOptions::parse`]), the names a playbook cannot declare
//! ([`is_reserved`]), the did-you-mean list ([`flags`]), `--help`
//! ([`help`]) and the shell completions all read that one table, so an
//! option cannot be parsed and left out of the others.

use std::path::PathBuf;
use std::time::Duration;

use crate::logging::LogFormat;

/// What the command line asked of a run.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// The playbook file.
    pub playbook: PathBuf,
    /// `--name value` pairs for the playbook.
    pub params: Vec<String>,
    /// Read for real, change nothing (`--dry-run`).
    pub dry_run: bool,
    /// `--log-format`; detected when not given.
    pub format: Option<LogFormat>,
    /// The whole run's deadline (`--timeout`).
    pub timeout: Option<Duration>,
    /// `--help` after the playbook: its parameters.
    pub help: bool,
    /// Programs `exec` may run besides the allow-list (`--allow`).
    pub allow: Vec<String>,
    /// `exec`'s `cwd` may leave the working directory (`--allow-cwd-outside`).
    pub allow_cwd_outside: bool,
    /// Where to write every primitive call and its result (`--record`).
    pub record: Option<PathBuf>,
}

/// What an option takes, and what it does to the [`RunOptions`].
pub enum Takes {
    /// A switch: `--x` alone is true, `--x=false` (or `--x false`) false;
    /// the values are those of a bool parameter ([`super::parse_bool`]).
    Switch(fn(&mut RunOptions, bool)),
    /// A value, `--x V` or `--x=V`, named `metavar` in the help.
    Value(
        &'static str,
        fn(&mut RunOptions, String) -> Result<(), String>,
    ),
}

/// One of the runner's own options.
pub struct RunnerOption {
    /// The long name, without `--`.
    pub name: &'static str,
    /// A one-letter form, if any.
    pub short: Option<char>,
    /// A switch or a value.
    pub takes: Takes,
    /// One line for `--help` and the completions.
    pub help: &'static str,
}

impl RunnerOption {
    /// `--name` as typed.
    pub fn flag(&self) -> String {
        format!("--{}", self.name)
    }

    /// Whether it is a switch (no value).
    pub fn is_switch(&self) -> bool {
        matches!(self.takes, Takes::Switch(_))
    }

    /// The value's name in the help (`SECS`), empty for a switch.
    pub fn metavar(&self) -> &'static str {
        match self.takes {
            Takes::Switch(_) => "",
            Takes::Value(m, _) => m,
        }
    }
}

fn log_format(o: &mut RunOptions, v: String) -> Result<(), String> {
    o.format = Some(match v.as_str() {
        "pretty" => LogFormat::Pretty,
        "json" => LogFormat::Json,
        "github" => LogFormat::Github,
        _ => {
            return Err(format!(
                "--log-format '{v}' is not one of pretty, json, github"
            ))
        }
    });
    Ok(())
}

fn timeout(o: &mut RunOptions, v: String) -> Result<(), String> {
    let d = crate::opts::parse_duration(&v)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!("--timeout '{v}' is not a positive number of seconds (or \"90s\", \"5m\")")
        })?;
    o.timeout = Some(d);
    Ok(())
}

/// The runner's options, in the order `--help` lists them.
pub const OPTIONS: &[RunnerOption] = &[
    RunnerOption {
        name: "help",
        short: Some('h'),
        takes: Takes::Switch(|o, v| o.help = v),
        help: "the playbook's parameters and these options",
    },
    RunnerOption {
        name: "dry-run",
        short: None,
        takes: Takes::Switch(|o, v| o.dry_run = v),
        help: "read for real, change nothing, print the plan",
    },
    RunnerOption {
        name: "log-format",
        short: None,
        takes: Takes::Value("FORMAT", log_format),
        help: "pretty (terminal), json, github (default under GitHub Actions)",
    },
    RunnerOption {
        name: "timeout",
        short: None,
        takes: Takes::Value("SECS", timeout),
        help: "deadline for the whole run (exit 124)",
    },
    RunnerOption {
        name: "allow",
        short: None,
        takes: Takes::Value("PROGRAM", |o, v| {
            o.allow.push(v);
            Ok(())
        }),
        help: "let exec() run PROGRAM too (repeatable)",
    },
    RunnerOption {
        name: "allow-cwd-outside",
        short: None,
        takes: Takes::Switch(|o, v| o.allow_cwd_outside = v),
        help: "let exec()'s cwd leave the working directory",
    },
    RunnerOption {
        name: "record",
        short: None,
        takes: Takes::Value("FILE.json", |o, v| {
            o.record = Some(PathBuf::from(v));
            Ok(())
        }),
        help: "write every primitive call and its result (for t.replay)",
    },
];

/// Names a playbook cannot declare: every runner option (`dry_run` for
/// `--dry-run`), and `version`.
pub fn is_reserved(name: &str) -> bool {
    name == "version" || OPTIONS.iter().any(|o| o.name.replace('-', "_") == name)
}

/// The runner's options as typed, for did-you-mean on a misspelt one
/// (`--dry-rn`, `--dryrun`).
pub fn flags() -> Vec<String> {
    OPTIONS.iter().map(RunnerOption::flag).collect()
}

/// The "Runner options:" block of `--help`.
pub fn help() -> String {
    let head = |o: &RunnerOption| match o.metavar() {
        "" => o.flag(),
        m => format!("{} {m}", o.flag()),
    };
    let width = OPTIONS.iter().map(|o| head(o).len()).max().unwrap_or(0);
    let mut s = String::from("Runner options (anywhere on the line):\n");
    for o in OPTIONS {
        s.push_str(&format!("  {:width$}  {}\n", head(o), o.help));
    }
    s
}

/// The option `arg` names (`--x`, `--x=…` or `-h`), and its inline value.
fn lookup(arg: &str) -> Option<(&'static RunnerOption, Option<&str>)> {
    if let Some(body) = arg.strip_prefix("--") {
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        return OPTIONS.iter().find(|o| o.name == name).map(|o| (o, inline));
    }
    let c = arg.strip_prefix('-')?;
    OPTIONS
        .iter()
        .find(|o| o.short.is_some_and(|s| c.len() == 1 && c.starts_with(s)))
        .map(|o| (o, None))
}

impl RunOptions {
    /// Split the runner's own options (anywhere on the line) from the
    /// playbook and its parameters. `Ok(None)` when there is no playbook
    /// at all; `Err` is a usage error's message.
    pub fn parse(args: &[String]) -> Result<Option<RunOptions>, String> {
        let mut o = RunOptions::default();
        let mut playbook = None;
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            match lookup(a) {
                Some((opt, inline)) => {
                    let next = args.get(i + 1).map(String::as_str);
                    i += apply(&mut o, opt, inline, next)?;
                }
                None if playbook.is_none() && !a.starts_with('-') => {
                    playbook = Some(PathBuf::from(a))
                }
                None if playbook.is_none() => {
                    let flag = a.split_once('=').map_or(a, |(f, _)| f);
                    return Err(format!(
                        "unknown option '{a}' before the playbook{}; usage: runbook PLAYBOOK [--param value]… (runbook --help)",
                        crate::suggest::hint(flag, flags().iter().map(String::as_str))
                    ));
                }
                None => o.params.push(a.to_string()),
            }
            i += 1;
        }
        Ok(playbook.map(|p| RunOptions { playbook: p, ..o }))
    }
}

/// Apply one option; returns how many following arguments it took (0 or 1).
fn apply(
    o: &mut RunOptions,
    opt: &RunnerOption,
    inline: Option<&str>,
    next: Option<&str>,
) -> Result<usize, String> {
    let f = opt.flag();
    match &opt.takes {
        Takes::Switch(set) => {
            // `--x true|false` reads as a bool parameter's does.
            let (raw, took) = match (inline, next) {
                (Some(v), _) => (v, 0),
                (None, Some(v @ ("true" | "false"))) => (v, 1),
                (None, _) => ("true", 0),
            };
            let v = super::parse_bool(raw)
                .ok_or_else(|| format!("{f}={raw}: give {f} alone, or {f}=true / {f}=false"))?;
            set(o, v);
            Ok(took)
        }
        Takes::Value(_, set) => match (inline, next) {
            (Some(v), _) => set(o, v.to_string()).map(|()| 0),
            (None, Some(v)) => set(o, v.to_string()).map(|()| 1),
            (None, None) => Err(format!("{f} needs a value")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::opts::strings as s;

    #[test]
    fn runner_options_anywhere() {
        let o = RunOptions::parse(&s(&[
            "--dry-run",
            "pb.rhai",
            "--sha",
            "x",
            "--timeout=5",
            "--log-format",
            "json",
            "--record=rec.json",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(o.playbook, PathBuf::from("pb.rhai"));
        assert_eq!(o.params, s(&["--sha", "x"]));
        assert!(o.dry_run);
        assert_eq!(o.timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.format, Some(LogFormat::Json));
        assert_eq!(o.record, Some(PathBuf::from("rec.json")));
    }

    #[test]
    fn bad_runner_options() {
        for (a, want) in [
            (&["pb.rhai", "--timeout", "soon"][..], "--timeout 'soon'"),
            (&["pb.rhai", "--timeout", "0"][..], "positive"),
            (&["pb.rhai", "--log-format", "xml"][..], "not one of"),
            (
                &["--frobnicate", "pb.rhai"][..],
                "unknown option '--frobnicate'",
            ),
            (&["pb.rhai", "--timeout"][..], "needs a value"),
            (&["pb.rhai", "--dry-run=maybe"][..], "--dry-run=true"),
        ] {
            let e = RunOptions::parse(&s(a)).unwrap_err();
            assert!(e.contains(want), "{a:?}: {e}");
        }
        assert!(RunOptions::parse(&[]).unwrap().is_none());
    }

    #[test]
    fn every_switch_reads_its_value_the_same_way() {
        for o in OPTIONS.iter().filter(|o| o.is_switch()) {
            let f = o.flag();
            for (args, want) in [
                (vec![f.clone()], true),
                (vec![format!("{f}=true")], true),
                (vec![format!("{f}=false")], false),
                (vec![format!("{f}=no")], false),
                (vec![f.clone(), "false".into()], false),
            ] {
                let mut all = s(&["pb.rhai"]);
                all.extend(args.clone());
                let got = RunOptions::parse(&all).unwrap().unwrap();
                let v = match o.name {
                    "help" => got.help,
                    "dry-run" => got.dry_run,
                    "allow-cwd-outside" => got.allow_cwd_outside,
                    other => panic!("a switch this test does not know: {other}"),
                };
                assert_eq!(v, want, "{args:?}");
                assert!(got.params.is_empty(), "{args:?}");
            }
        }
    }

    #[test]
    fn every_option_is_reserved_and_in_the_help() {
        let help = help();
        for o in OPTIONS {
            assert!(is_reserved(&o.name.replace('-', "_")), "{}", o.name);
            assert!(help.contains(&o.flag()), "{}", o.name);
        }
        assert!(is_reserved("version"));
        assert!(!is_reserved("sha"));
    }
}
