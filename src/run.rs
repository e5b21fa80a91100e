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
    /// `--allow-cwd-outside`: `exec`'s `cwd` may leave the working directory.
    pub allow_cwd_outside: bool,
    /// `--record FILE.json`: every primitive call and its result.
    pub record: Option<PathBuf>,
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
                "--dry-run" => {
                    o.dry_run = match inline {
                        None | Some("true") => true,
                        Some("false") => false,
                        Some(v) => {
                            return Err(Error::Usage(format!(
                                "--dry-run={v}: give --dry-run alone, or --dry-run=true / --dry-run=false"
                            )))
                        }
                    }
                }
                "--allow-cwd-outside" => o.allow_cwd_outside = true,
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
                    let d = crate::opts::parse_duration(&v)
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| Error::Usage(format!("--timeout '{v}' is not a positive number of seconds (or \"90s\", \"5m\")")))?;
                    o.timeout = Some(d);
                }
                "--allow" => {
                    let v = value(&mut i, flag, inline)?;
                    o.allow.push(v);
                }
                "--record" => {
                    let v = value(&mut i, flag, inline)?;
                    o.record = Some(PathBuf::from(v));
                }
                _ if playbook.is_none() && !a.starts_with('-') => playbook = Some(PathBuf::from(a)),
                _ if playbook.is_none() => {
                    return Err(Error::Usage(format!(
                        "unknown option '{a}' before the playbook{}; usage: runbook PLAYBOOK [--param value]… (runbook --help)",
                        crate::suggest::hint(flag, crate::params::RUNNER_FLAGS.iter().copied())
                    )))
                }
                _ => o.params.push(args[i].clone()),
            }
            i += 1;
        }
        Ok(playbook.map(|p| RunOptions { playbook: p, ..o }))
    }
}

/// The async runtime with `workers` threads, or a current-thread one for
/// 0. Multi-thread where `Handle::block_on` must drive I/O and timers
/// from the script thread.
pub fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, Error> {
    let mut b = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    b.enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))
}

/// The largest playbook or module runbook reads.
pub const MAX_SCRIPT_BYTES: u64 = 4 * 1024 * 1024;

/// The last line an error position can name (Rhai counts lines in 16 bits).
pub const MAX_SCRIPT_LINES: usize = 65_535;

/// Read a playbook or module: a regular file, at most
/// [`MAX_SCRIPT_BYTES`] and [`MAX_SCRIPT_LINES`] lines, UTF-8.
pub fn read_script(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "playbook not found: {} (run from the project's folder, or give the path to the .rhai file)",
            path.display()
        ),
        _ => format!("cannot read {}: {e}", path.display()),
    })?;
    if meta.is_dir() {
        return Err(format!(
            "{} is a folder; give a playbook file (*.rhai)",
            path.display()
        ));
    }
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file (a device, FIFO or socket); give a playbook file (*.rhai)",
            path.display()
        ));
    }
    if meta.len() > MAX_SCRIPT_BYTES {
        return Err(format!(
            "{} is {} bytes; a playbook may have at most {MAX_SCRIPT_BYTES} (split it into modules)",
            path.display(),
            meta.len()
        ));
    }
    let f =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    // take(): a file that grows after the size check cannot get past it.
    f.take(MAX_SCRIPT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_SCRIPT_BYTES {
        return Err(format!(
            "{} grew past {MAX_SCRIPT_BYTES} bytes while being read",
            path.display()
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| format!("{} is not UTF-8 text ({e})", path.display()))?;
    let lines = text.lines().count();
    if lines > MAX_SCRIPT_LINES {
        return Err(format!(
            "{} has {lines} lines; error positions can name only the first {MAX_SCRIPT_LINES}: split it into modules",
            path.display()
        ));
    }
    Ok(text)
}

fn load(path: &Path) -> Result<String, Error> {
    read_script(path).map_err(Error::Usage)
}

/// Run a playbook. The error carries the exit code.
pub fn run(opts: RunOptions) -> Result<(), Error> {
    crate::engine::prewarm();
    let format = opts.format.unwrap_or_else(LogFormat::detect);
    let sink = crate::logging::init(format);
    let source = load(&opts.playbook)?;
    let rt = runtime(2)?;
    let mut settings = Settings::new(&opts.playbook, format);
    settings.dry_run = opts.dry_run;
    settings.allow.extend(opts.allow.iter().cloned());
    settings.allow_cwd_outside = opts.allow_cwd_outside;
    let ctx = Ctx::new(settings, rt.handle().clone());
    // --record: the same primitives behind stand-ins that keep each call.
    let recorder = opts
        .record
        .as_ref()
        .map(|_| crate::testing::proxy::Proxy::new(&ctx, Box::new(|_, _| None)));
    crate::declare::skip_docs();
    let engine = match &recorder {
        Some(p) => crate::testing::proxy::engine(&ctx, p),
        None => crate::engine::build(&ctx),
    };
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
    if crate::check::is_module(&ast) {
        return Err(Error::Usage(crate::check::module_message(&path)));
    }
    let decl = crate::params::declaration(&ast, &source, &resolver)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    if opts.help {
        crate::out::text(
            crate::out::Stream::Stdout,
            &crate::params::render_help(&decl, &path.display().to_string()),
        );
        return Ok(());
    }
    // check's lints before the first primitive, imported modules' too: a
    // typo on line 40 must not fire after 39 lines of side effects.
    let findings = crate::check::run_lints(&engine, &ctx, &ast, &decl, &path, &source);
    if !findings.is_empty() {
        return Err(Error::Usage(crate::check::lint_report(&path, &findings)));
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
    if let Some(t) = opts.timeout {
        ctx.set_deadline(started + t);
    }
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

    let outcome = rt.block_on(watch(ctx.clone(), rx, opts.timeout));
    let result = settle(&ctx, outcome, &path, &source, started);
    if let (Some(file), Some(p)) = (&opts.record, &recorder) {
        // Written whatever the outcome: a failed run is worth replaying too.
        let text = crate::testing::record::render(&path, opts.dry_run, &p.calls());
        match crate::fsread::write_atomic(file, &text) {
            Ok(()) => tracing::info!(
                "recorded {} primitive call(s) to {}",
                p.calls().len(),
                file.display()
            ),
            Err(e) => tracing::error!("cannot write the recording {}: {e}", file.display()),
        }
    }
    ctx.kill_children();
    // The ledger record is appended while the locks are still held.
    crate::ledger::record_run(&ctx, &path, &ledger_args, started_wall, &result);
    ctx.locks.release_all(rt.handle());
    crate::github::flush_summaries(&ctx);
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}

/// Wait for the playbook thread's result; on a signal (SIGINT, SIGTERM,
/// SIGHUP, SIGQUIT) or the deadline, cancel the run and give the script
/// five seconds to stop at its next operation.
async fn watch(
    watcher: Arc<Ctx>,
    rx: tokio::sync::oneshot::Receiver<Result<(), Box<rhai::EvalAltResult>>>,
    timeout: Option<Duration>,
) -> Option<Result<(), Box<rhai::EvalAltResult>>> {
    use tokio::signal::unix::{signal, SignalKind};
    // SIGHUP (terminal closed, runner cancelling) and SIGQUIT end a run
    // like SIGTERM: cancel, kill the children, take artifacts back.
    let mut int = signal(SignalKind::interrupt()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    let mut quit = signal(SignalKind::quit()).ok();
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
        _ = async { match hup.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => CancelReason::Signal("SIGHUP"),
        _ = async { match quit.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => CancelReason::Signal("SIGQUIT"),
        _ = deadline => CancelReason::Timeout(timeout.unwrap_or_default()),
    };
    watcher.cancel(reason);
    // The script stops at its next operation; don't wait forever for it.
    // A guarded deploy in progress gets its rollback reserve first; a
    // second signal stops the rollback too.
    let grace = Duration::from_secs(5);
    if let Some(reserve) = watcher.shield.reserve() {
        tracing::warn!(
            "{}: stopping the deploy; the rollback runs within its reserve of {} (a second signal stops it)",
            match reason {
                CancelReason::Signal(s) => s.to_string(),
                CancelReason::Timeout(_) => "the run's deadline".to_string(),
            },
            crate::error::fmt_secs(reserve)
        );
        let second = async {
            tokio::select! {
                _ = async { match int.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {},
                _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {},
                _ = async { match hup.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {},
                _ = async { match quit.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {},
            }
        };
        tokio::select! {
            r = &mut rx => return r.ok(),
            _ = second => {
                tracing::warn!("a second signal: stopping the rollback");
                watcher.cancel_hard();
            }
            _ = tokio::time::sleep(reserve + grace) => watcher.cancel_hard(),
        }
    }
    tokio::time::timeout(grace, rx)
        .await
        .ok()
        .and_then(Result::ok)
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
    let guarded = guarded_failure(ctx, &outcome, path, source);
    let failure = match (ctx.cancel_reason(), outcome, guarded) {
        (Some(CancelReason::Timeout(t)), _, _) => Error::Timeout(t),
        (Some(CancelReason::Signal(s)), _, _) => Error::Interrupted(s),
        (None, _, Some(g)) => g,
        (None, Some(Ok(())), None) if ctx.locks.refused().is_some() => {
            Error::Failed(ctx.locks.refused().unwrap_or_default())
        }
        (None, Some(Ok(())), None) => {
            crate::github::flush_outputs(ctx).map_err(Error::Failed)?;
            let outs = ctx.outputs.lock().clone();
            for (k, v) in &outs {
                crate::out::println(&format!("{k}={v}"));
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
        (None, Some(Err(e)), None) => {
            let r = crate::report::eval_error(&e, path, source);
            if ctx.settings.format == LogFormat::Github {
                ctx.sink.write_str(&r.github_line(path));
            }
            if crate::report::is_usage(&e) {
                Error::Usage(r.text)
            } else if crate::error::is_busy(&e) {
                Error::Busy(r.text)
            } else {
                Error::Failed(r.text)
            }
        }
        (None, None, None) => {
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

/// The exit a guarded deploy's outcome asks for (3, 4 or 5), with the
/// script's error rendered when it threw one (it usually did: `guarded`
/// throws), else the outcome's own message (the script caught it).
fn guarded_failure(
    ctx: &Ctx,
    outcome: &Option<Result<(), Box<rhai::EvalAltResult>>>,
    path: &Path,
    source: &str,
) -> Option<Error> {
    use crate::gates::Outcome;
    let o = ctx.shield.outcome()?;
    let text = |fallback: &str| match outcome {
        Some(Err(e)) => crate::report::eval_error(e, path, source).text,
        _ => format!("error: {fallback}"),
    };
    Some(match &o {
        Outcome::Ok => return None,
        Outcome::RolledBack(m) => Error::RolledBack(text(m)),
        Outcome::RollbackFailed(m) => Error::RollbackFailed(text(m)),
        Outcome::Unverified(m) => Error::Unverified(text(m)),
    })
}

/// A failed run leaves no artifact it promised.
pub(crate) fn discard_artifacts(ctx: &Ctx) {
    let files: Vec<PathBuf> = ctx.artifacts.lock().drain(..).collect();
    for f in files {
        if std::fs::remove_file(&f).is_ok() {
            tracing::warn!(
                "removed {} (written by this run, which failed)",
                f.display()
            );
        }
    }
}

/// `runbook check PATH…`.
pub fn check(paths: &[PathBuf]) -> Result<(), Error> {
    let rt = runtime(0)?;
    let n = crate::check::run(paths, rt.handle()).map_err(Error::Usage)?;
    if n > 0 {
        return Err(Error::Usage(format!("{n} problem(s) found")));
    }
    Ok(())
}

/// `runbook doc [NAME]`.
pub fn doc(name: Option<&str>, markdown: bool, definitions: Option<&Path>) -> Result<(), Error> {
    let rt = runtime(0)?;
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
        crate::out::println(&format!("wrote definitions to {}", dir.display()));
        return Ok(());
    }
    let entries = crate::doc::entries(&engine);
    let builtins = crate::doc::builtins(&engine);
    let text =
        crate::doc::render_with(&entries, &builtins, name, markdown).map_err(Error::Usage)?;
    crate::out::text(crate::out::Stream::Stdout, &text);
    Ok(())
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
        ] {
            let e = RunOptions::parse(&s(a)).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{a:?}: {e}");
        }
        assert!(RunOptions::parse(&[]).unwrap().is_none());
    }
}
