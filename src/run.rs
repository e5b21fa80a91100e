//! Running a playbook: parse the command line, compile, validate
//! parameters before the first primitive, run the script on its own thread
//! while the main thread watches signals and the deadline, then settle
//! outputs and artifacts by the outcome.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Scope};

use crate::context::{CancelReason, Ctx, Settings};
use crate::error::Error;
use crate::logging::LogFormat;

/// What the command line asked of a run.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// The playbook file.
    pub playbook: PathBuf,
    /// `--name value` pairs for the playbook.
    pub params: Vec<String>,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--log-format`.
    pub format: Option<LogFormat>,
    /// `--timeout SECS`.
    pub timeout: Option<Duration>,
    /// `--help` after the playbook.
    pub help: bool,
    /// `--allow PROGRAM`.
    pub allow: Vec<String>,
}

impl RunOptions {
    /// Split the runner's own options from the playbook's parameters.
    /// `Ok(None)` when there is no playbook at all.
    pub fn parse(args: &[String]) -> Result<Option<RunOptions>, Error> {
        let mut o = RunOptions::default();
        let mut playbook = None;
        let mut i = 0;
        let value = |i: &mut usize, flag: &str, inline: Option<&str>| -> Result<String, Error> {
            if let Some(v) = inline {
                return Ok(v.to_string());
            }
            *i += 1;
            args.get(*i)
                .cloned()
                .ok_or_else(|| Error::Usage(format!("{flag} needs a value")))
        };
        while i < args.len() {
            let a = args[i].as_str();
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v)),
                _ => (a, None),
            };
            match flag {
                "--dry-run" => o.dry_run = true,
                "--help" | "-h" => o.help = true,
                "--log-format" => {
                    let v = value(&mut i, flag, inline)?;
                    o.format = Some(match v.as_str() {
                        "pretty" => LogFormat::Pretty,
                        "json" => LogFormat::Json,
                        "github" => LogFormat::Github,
                        _ => return Err(Error::Usage(format!("--log-format '{v}' is not one of pretty, json, github"))),
                    });
                }
                "--timeout" => {
                    let v = value(&mut i, flag, inline)?;
                    let d = crate::primitives::parse_duration(&v)
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| Error::Usage(format!("--timeout '{v}' is not a positive number of seconds (or \"90s\", \"5m\")")))?;
                    o.timeout = Some(d);
                }
                "--allow" => {
                    let v = value(&mut i, flag, inline)?;
                    o.allow.push(v);
                }
                _ if playbook.is_none() && !a.starts_with('-') => playbook = Some(PathBuf::from(a)),
                _ if playbook.is_none() => {
                    return Err(Error::Usage(format!(
                        "unknown option '{a}' before the playbook; usage: runbook PLAYBOOK [--param value]… (runbook --help)"
                    )))
                }
                _ => o.params.push(args[i].clone()),
            }
            i += 1;
        }
        Ok(playbook.map(|p| RunOptions { playbook: p, ..o }))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))
}

fn load(path: &Path) -> Result<String, Error> {
    if path.is_dir() {
        return Err(Error::Usage(format!(
            "{} is a folder; give a playbook file (*.rhai)",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Usage(format!(
            "playbook not found: {} (run from the project's folder, or give the path to the .rhai file)",
            path.display()
        )),
        _ => Error::Usage(format!("cannot read the playbook {}: {e}", path.display())),
    })
}

/// Run a playbook. The error carries the exit code.
pub fn run(opts: RunOptions) -> Result<(), Error> {
    let format = opts.format.unwrap_or_else(LogFormat::detect);
    let sink = crate::logging::init(format);
    let source = load(&opts.playbook)?;
    let rt = runtime()?;
    let mut settings = Settings::new(&opts.playbook, format);
    settings.dry_run = opts.dry_run;
    settings.allow.extend(opts.allow.iter().cloned());
    let ctx = Ctx::new(settings, rt.handle().clone());
    let engine = crate::engine::build(&ctx);
    let path = opts.playbook.clone();

    let ast = match engine.compile(&source) {
        Ok(a) => a,
        Err(e) => {
            let r = crate::report::parse_error(&e, &path, &source);
            if format == LogFormat::Github {
                sink.write_str(&r.github_line(&path));
            }
            return Err(Error::Usage(r.text));
        }
    };
    let resolver = crate::engine::Resolver::new(&path);
    if let Some((msg, pos)) = crate::engine::unresolved_imports(&ast, &resolver)
        .into_iter()
        .next()
    {
        let err = rhai::EvalAltResult::ErrorRuntime(msg.into(), pos);
        let r = crate::report::eval_error(&err, &path, &source);
        if format == LogFormat::Github {
            sink.write_str(&r.github_line(&path));
        }
        return Err(Error::Usage(r.text));
    }
    let decl = crate::params::declaration(&ast, &source)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    if opts.help {
        print!(
            "{}",
            crate::params::render_help(&decl, &path.display().to_string())
        );
        return Ok(());
    }
    let args = crate::params::parse_args(&decl, &opts.params).map_err(|e| {
        Error::Usage(format!(
            "{e}\n(run `runbook {} --help` for its parameters)",
            path.display()
        ))
    })?;

    let started = Instant::now();
    let started_wall = std::time::SystemTime::now();
    let ledger_args = args.clone();
    tracing::info!(
        playbook = %path.display(), dry_run = opts.dry_run,
        "running {}{}", path.display(), if opts.dry_run { " (dry run: nothing will be changed)" } else { "" }
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Detached: if the script ignores cancellation, exiting ends it.
    let _script = std::thread::Builder::new()
        .name("playbook".into())
        .stack_size(32 * 1024 * 1024)
        .spawn(move || {
            let mut scope = Scope::new();
            scope.push_constant("args", Dynamic::from(args));
            let r = engine.run_ast_with_scope(&mut scope, &ast);
            let _ = tx.send(r);
        })
        .map_err(|e| Error::Failed(format!("cannot start the playbook thread: {e}")))?;

    let watcher = ctx.clone();
    let timeout = opts.timeout;
    let outcome = rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt()).ok();
        let mut term = signal(SignalKind::terminate()).ok();
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let mut rx = rx;
        let reason = tokio::select! {
            r = &mut rx => return r.ok(),
            _ = async { match int.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => CancelReason::Signal("SIGINT"),
            _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => CancelReason::Signal("SIGTERM"),
            _ = deadline => CancelReason::Timeout(timeout.unwrap_or_default()),
        };
        watcher.cancel(reason);
        // The script stops at its next operation; don't wait forever for it.
        tokio::time::timeout(Duration::from_secs(5), rx).await.ok().and_then(Result::ok)
    });

    let result = settle(&ctx, outcome, &path, &source, started);
    ctx.kill_children();
    // The ledger record is appended while the locks are still held.
    crate::ledger::record_run(&ctx, &path, &ledger_args, started_wall, &result);
    ctx.locks.release_all(rt.handle());
    crate::primitives::github_io::flush_summaries(&ctx);
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}

/// Decide the run's outcome; on failure take back the artifacts it wrote.
fn settle(
    ctx: &Arc<Ctx>,
    outcome: Option<Result<(), Box<rhai::EvalAltResult>>>,
    path: &Path,
    source: &str,
    started: Instant,
) -> Result<(), Error> {
    let elapsed = crate::error::fmt_secs(started.elapsed());
    let failure = match (ctx.cancel_reason(), outcome) {
        (Some(CancelReason::Timeout(t)), _) => Error::Timeout(t),
        (Some(CancelReason::Signal(s)), _) => Error::Interrupted(s),
        (None, Some(Ok(()))) if ctx.locks.refused().is_some() => {
            Error::Failed(ctx.locks.refused().unwrap_or_default())
        }
        (None, Some(Ok(()))) => {
            crate::primitives::github_io::flush_outputs(ctx).map_err(Error::Failed)?;
            let outs = ctx
                .outputs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for (k, v) in &outs {
                println!("{k}={}", crate::redact::redact(v));
            }
            tracing::info!(
                outcome = "finished",
                elapsed_ms = started.elapsed().as_millis() as u64,
                "{} finished in {elapsed}{}",
                path.display(),
                if ctx.dry_run() {
                    " (dry run: nothing was changed)"
                } else {
                    ""
                }
            );
            return Ok(());
        }
        (None, Some(Err(e))) => {
            let r = crate::report::eval_error(&e, path, source);
            if ctx.settings.format == LogFormat::Github {
                ctx.sink.write_str(&r.github_line(path));
            }
            if crate::report::is_usage(&e) {
                Error::Usage(r.text)
            } else if crate::lock::is_busy(&e) {
                Error::Busy(r.text)
            } else {
                Error::Failed(r.text)
            }
        }
        (None, None) => {
            Error::Failed("the playbook thread ended without a result (an internal error)".into())
        }
    };
    discard_artifacts(ctx);
    tracing::error!(
        outcome = "failed",
        elapsed_ms = started.elapsed().as_millis() as u64,
        "{} failed after {elapsed}",
        path.display()
    );
    Err(failure)
}

/// A failed run leaves no artifact it promised.
fn discard_artifacts(ctx: &Ctx) {
    let files: Vec<PathBuf> = ctx
        .artifacts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .collect();
    for f in files {
        if std::fs::remove_file(&f).is_ok() {
            tracing::warn!(
                "removed {} (written by this run, which failed)",
                f.display()
            );
        }
    }
}

fn plain_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))
}

/// `runbook check PATH…`.
pub fn check(paths: &[PathBuf]) -> Result<(), Error> {
    let rt = plain_runtime()?;
    let n = crate::check::run(paths, rt.handle()).map_err(Error::Usage)?;
    if n > 0 {
        return Err(Error::Usage(format!("{n} problem(s) found")));
    }
    Ok(())
}

/// `runbook doc [NAME]`.
pub fn doc(name: Option<&str>, markdown: bool, definitions: Option<&Path>) -> Result<(), Error> {
    let rt = plain_runtime()?;
    let ctx = Ctx::new(
        Settings::new(Path::new("doc.rhai"), LogFormat::Pretty),
        rt.handle().clone(),
    );
    let engine = crate::engine::build(&ctx);
    if let Some(dir) = definitions {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Failed(format!("cannot create {}: {e}", dir.display())))?;
        engine
            .definitions()
            .include_standard_packages(false)
            .write_to_dir(dir)
            .map_err(|e| {
                Error::Failed(format!(
                    "cannot write definitions to {}: {e}",
                    dir.display()
                ))
            })?;
        println!("wrote definitions to {}", dir.display());
        return Ok(());
    }
    let entries = crate::doc::entries(&engine);
    let text = crate::doc::render(&entries, name, markdown).map_err(Error::Usage)?;
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

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
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(o.playbook, PathBuf::from("pb.rhai"));
        assert_eq!(o.params, s(&["--sha", "x"]));
        assert!(o.dry_run);
        assert_eq!(o.timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.format, Some(LogFormat::Json));
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
        ] {
            let e = RunOptions::parse(&s(a)).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{a:?}: {e}");
        }
        assert!(RunOptions::parse(&[]).unwrap().is_none());
    }
}
