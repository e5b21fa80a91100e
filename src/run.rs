//! `runbook PLAYBOOK …`: a run as a pipeline of named steps,
//!
//! ```text
//! Prepared::load -> lint -> bind -> execute -> settle -> finish
//! ```
//!
//! the first three shared with `runbook test` and `runbook job`
//! ([`crate::pipeline`]); `execute` runs the script on its own thread
//! while the main thread watches signals and the deadline, `settle`
//! decides the outcome (outputs or artifacts taken back), `finish`
//! records and releases.

use std::path::Path;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, EvalAltResult, Map, Scope};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::commands::runtime;
use crate::context::{CancelReason, Ctx, Settings};
use crate::error::Error;
use crate::logging::{LogFormat, Sink};
use crate::pipeline::{discard_artifacts, LoadError, Prepared};
use crate::testing::proxy::{self, Proxy};

pub use crate::params::RunOptions;

/// What the script thread hands back.
type Outcome = Option<Result<(), Box<EvalAltResult>>>;

/// Run a playbook. The error carries its exit code.
pub fn run(opts: RunOptions) -> Result<(), Error> {
    crate::engine::prewarm();
    let format = opts.format.unwrap_or_else(LogFormat::detect);
    let sink = crate::logging::init(format);
    let rt = runtime(2)?;
    let ctx = Ctx::new(settings(&opts, format), rt.handle().clone());
    // --record: the same primitives behind stand-ins that keep each call.
    let recorder = opts
        .record
        .as_ref()
        .map(|_| Proxy::new(&ctx, Box::new(|_, _| None)));
    crate::declare::skip_docs();
    let engine = match &recorder {
        Some(p) => proxy::engine(&ctx, p),
        None => crate::primitives::engine(&ctx),
    };
    let prepared = Prepared::load(&engine, &opts.playbook)
        .map_err(|e| annotate(&sink, format, &opts.playbook, e))?;
    if opts.help {
        let help = crate::params::render_help(&prepared.decl, &opts.playbook.display().to_string());
        crate::out::text(crate::out::Stream::Stdout, &help);
        return Ok(());
    }
    prepared.lint(&engine, &ctx)?;
    let args = prepared.bind(&opts.params, &crate::pipeline::process_env)?;
    let started = (Instant::now(), std::time::SystemTime::now());
    let outcome = execute(&ctx, &rt, engine, &prepared, args.clone(), opts.timeout)?;
    let result = settle(&ctx, outcome, &prepared, started.0);
    finish(
        &ctx,
        rt,
        &opts,
        recorder.as_deref(),
        &args,
        started.1,
        &result,
    );
    result
}

/// The context's settings from the command line.
fn settings(opts: &RunOptions, format: LogFormat) -> Settings {
    let mut settings = Settings::new(&opts.playbook, format);
    settings.dry_run = opts.dry_run;
    settings.allow.extend(opts.allow.iter().cloned());
    settings.allow_cwd_outside = opts.allow_cwd_outside;
    settings
}

/// A load error, annotated for GitHub when it has a place in the file.
fn annotate(sink: &Sink, format: LogFormat, path: &Path, e: LoadError) -> LoadError {
    if let (Some(r), LogFormat::Github) = (e.report(), format) {
        sink.write_str(&r.github_line(path));
    }
    e
}

/// Run the script on its own thread (a deep stack; detached, so a script
/// that ignores cancellation ends with the process) and wait for it
/// under signals and the deadline.
fn execute(
    ctx: &Arc<Ctx>,
    rt: &tokio::runtime::Runtime,
    engine: Engine,
    prepared: &Prepared,
    args: Map,
    timeout: Option<Duration>,
) -> Result<Outcome, Error> {
    let path = &prepared.path;
    tracing::info!(
        playbook = %path.display(), dry_run = ctx.dry_run(),
        "running {}{}", path.display(), if ctx.dry_run() { " (dry run: nothing will be changed)" } else { "" }
    );
    if let Some(t) = timeout {
        ctx.set_deadline(Instant::now() + t);
    }
    let ast = prepared.ast.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _script = std::thread::Builder::new()
        .name("playbook".into())
        .stack_size(32 * 1024 * 1024)
        .spawn(move || {
            let mut scope = Scope::new();
            scope.push_constant("args", Dynamic::from(args));
            let _ = tx.send(engine.run_ast_with_scope(&mut scope, &ast));
        })
        .map_err(|e| Error::Failed(format!("cannot start the playbook thread: {e}")))?;
    Ok(rt.block_on(watch(ctx.clone(), rx, timeout)))
}

/// After the outcome, whatever it is: the recording, the children, the
/// ledger (while the locks are still held), the locks, the summaries.
fn finish(
    ctx: &Arc<Ctx>,
    rt: tokio::runtime::Runtime,
    opts: &RunOptions,
    recorder: Option<&Proxy>,
    args: &Map,
    started: std::time::SystemTime,
    result: &Result<(), Error>,
) {
    if let (Some(file), Some(p)) = (&opts.record, recorder) {
        write_recording(file, &opts.playbook, opts.dry_run, p);
    }
    ctx.kill_children();
    // The ledger takes the arguments as JSON (it holds no Rhai); the
    // record is appended while the locks are still held.
    let ledger_args = crate::value::to_json(&rhai::Dynamic::from(args.clone()))
        .unwrap_or(serde_json::Value::Null);
    crate::ledger::record_run(
        &ctx.ledger_facts(),
        &opts.playbook,
        &ledger_args,
        started,
        result,
    );
    ctx.locks.release_all(rt.handle());
    crate::github::flush_summaries(&ctx.summaries.lock());
    rt.shutdown_timeout(Duration::from_millis(200));
}

/// `--record FILE.json`, written whatever the outcome: a failed run is
/// worth replaying too.
fn write_recording(file: &Path, playbook: &Path, dry_run: bool, p: &Proxy) {
    let calls = p.calls();
    let text = crate::testing::record::render(playbook, dry_run, &calls);
    match crate::fsread::write_atomic(file, &text) {
        Ok(()) => tracing::info!(
            "recorded {} primitive call(s) to {}",
            calls.len(),
            file.display()
        ),
        Err(e) => tracing::error!("cannot write the recording {}: {e}", file.display()),
    }
}

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT, each ending a run the same way:
/// SIGHUP (terminal closed, runner cancelling) and SIGQUIT like SIGTERM.
struct Signals(Vec<(&'static str, Option<Signal>)>);

impl Signals {
    fn install() -> Signals {
        let kinds = [
            ("SIGINT", SignalKind::interrupt()),
            ("SIGTERM", SignalKind::terminate()),
            ("SIGHUP", SignalKind::hangup()),
            ("SIGQUIT", SignalKind::quit()),
        ];
        Signals(
            kinds
                .into_iter()
                .map(|(n, k)| (n, signal(k).ok()))
                .collect(),
        )
    }

    /// The name of the next signal to arrive (pending forever when none
    /// could be installed).
    async fn next(&mut self) -> &'static str {
        std::future::poll_fn(|cx| {
            for (name, s) in self.0.iter_mut() {
                if let Some(s) = s {
                    if s.poll_recv(cx).is_ready() {
                        return Poll::Ready(*name);
                    }
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Wait for the playbook thread's result; on a signal (SIGINT, SIGTERM,
/// SIGHUP, SIGQUIT) or the deadline, cancel the run and give the script
/// five seconds to stop at its next operation.
async fn watch(
    watcher: Arc<Ctx>,
    rx: tokio::sync::oneshot::Receiver<Result<(), Box<EvalAltResult>>>,
    timeout: Option<Duration>,
) -> Outcome {
    let mut signals = Signals::install();
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let mut rx = rx;
    let reason = tokio::select! {
        r = &mut rx => return r.ok(),
        s = signals.next() => CancelReason::Signal(s),
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
        tokio::select! {
            r = &mut rx => return r.ok(),
            _ = signals.next() => {
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
    outcome: Outcome,
    prepared: &Prepared,
    started: Instant,
) -> Result<(), Error> {
    let (path, source) = (prepared.path.as_path(), prepared.source.as_str());
    let elapsed = crate::error::fmt_secs(started.elapsed());
    let failure = match (ctx.cancel_reason(), outcome) {
        (Some(CancelReason::Timeout(t)), _) => Error::Timeout(t),
        (Some(CancelReason::Signal(s)), _) => Error::Interrupted(s),
        (None, None) => {
            Error::Failed("the playbook thread ended without a result (an internal error)".into())
        }
        (None, Some(result)) => match crate::pipeline::failure(ctx, &result, path, source) {
            Some(e) => {
                if let (Err(thrown), LogFormat::Github) = (&result, ctx.settings.format) {
                    if !crate::pipeline::is_guarded(ctx) {
                        let r = crate::report::eval_error(thrown, path, source);
                        ctx.sink.write_str(&r.github_line(path));
                    }
                }
                e
            }
            None => {
                let outs = ctx.outputs.lock().clone();
                match crate::github::flush_outputs(&outs, ctx.dry_run()) {
                    // Outputs that cannot be written fail the run like any
                    // error: its artifacts are taken back below.
                    Err(m) => Error::Failed(m),
                    Ok(()) => {
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
                }
            }
        },
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
