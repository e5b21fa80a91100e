//! Helm without Rhai: the client version and its flags ([`version`]),
//! releases as `helm status` / `helm history` tell them ([`status`]), the
//! command lines ([`argv`]), an install with its secrets file and its
//! rollback ([`install`]), the diagnosis of a failed one ([`failure`]),
//! and the chart as `helm template` renders it ([`template`]).
//!
//! Helm runs through a [`Runner`] the caller supplies: the binding's goes
//! through `exec` (allow-list, process groups killed on cancel, one log
//! line per child), tests' answer from memory.

#![warn(missing_docs)]

pub mod argv;
pub mod failure;
pub mod install;
pub mod status;
pub mod template;
pub mod version;

use std::future::Future;
use std::time::Duration;

use crate::error::{fmt_secs, PrimError};

/// What a program printed, and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

impl Output {
    /// The last lines of stderr (or stdout when stderr is empty), for errors.
    pub fn tail(&self) -> String {
        crate::process::exec::tail_of(&self.stdout, &self.stderr)
    }
}

/// Runs `helm` and `kubectl` for the library. Dropping the future must
/// stop the program (the bounds below rely on it).
pub trait Runner {
    /// Run `argv` (program first) and capture its output; `Err` when it
    /// could not be started at all.
    fn run(&self, argv: &[String]) -> impl Future<Output = Result<Output, String>>;
}

/// Run `argv` through `runner`, stopped after `bound`.
pub async fn run_bounded<R: Runner>(
    runner: &R,
    argv: &[String],
    bound: Duration,
) -> Result<Output, String> {
    match tokio::time::timeout(bound, runner.run(argv)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "`{}` did not finish within {} and was stopped",
            argv.join(" "),
            fmt_secs(bound)
        )),
    }
}

/// Refuse a release or namespace name Helm would refuse (or that would
/// mean something else on its command line): lowercase letters, digits
/// and '-', at most `max` characters.
pub fn check_name(what: &str, s: &str, max: usize) -> Result<(), PrimError> {
    if crate::kube::dns_name(s, max, false) {
        return Ok(());
    }
    Err(PrimError::usage(format!(
        "{what} '{s}' is not valid: lowercase letters, digits and '-', starting and ending with a letter or digit, at most {max} characters"
    )))
}

#[cfg(test)]
pub(crate) mod testing {
    //! A [`Runner`] that answers from a script, for the library's tests.

    use parking_lot::Mutex;

    use super::{Output, Runner};

    /// Answers by the first matching argv prefix; records every call.
    #[derive(Default)]
    pub struct Script {
        /// (argv prefix joined by spaces, exit code, stdout, stderr)
        pub answers: Vec<(String, i32, String, String)>,
        /// Every argv run, joined by spaces.
        pub calls: Mutex<Vec<String>>,
    }

    impl Script {
        /// Answer `prefix` with `code`, `stdout`, `stderr`.
        pub fn on(mut self, prefix: &str, code: i32, stdout: &str, stderr: &str) -> Self {
            self.answers
                .push((prefix.into(), code, stdout.into(), stderr.into()));
            self
        }

        /// The calls made, in order.
        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().clone()
        }
    }

    impl Runner for Script {
        fn run(
            &self,
            argv: &[String],
        ) -> impl std::future::Future<Output = Result<Output, String>> {
            let line = argv.join(" ");
            self.calls.lock().push(line.clone());
            let found = self
                .answers
                .iter()
                .find(|(p, ..)| line.starts_with(p.as_str()))
                .map(|(_, code, out, err)| Output {
                    code: *code,
                    stdout: out.clone(),
                    stderr: err.clone(),
                })
                .ok_or_else(|| format!("no scripted answer for `{line}`"));
            async move { found }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn names_helm_accepts() {
        assert!(check_name("release name", "habit-tracker", 53).is_ok());
        assert_eq!(
            check_name("release name", "Habit", 53).unwrap_err().kind,
            Kind::Usage
        );
        assert!(check_name("namespace", &"a".repeat(64), 63).is_err());
    }

    #[test]
    fn tails_prefer_stderr() {
        let o = Output {
            code: 1,
            stdout: "out".into(),
            stderr: "err\n".into(),
        };
        assert_eq!(o.tail(), "err");
        let o = Output {
            stderr: " ".into(),
            ..o
        };
        assert_eq!(o.tail(), "out");
    }

    #[tokio::test]
    async fn a_hung_program_is_stopped_at_its_bound() {
        struct Hang;
        impl Runner for Hang {
            async fn run(&self, _: &[String]) -> Result<Output, String> {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Output::default())
            }
        }
        let argv = vec!["helm".to_string(), "version".to_string()];
        let e = run_bounded(&Hang, &argv, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert_eq!(e, "`helm version` did not finish within 0s and was stopped");
    }
}
