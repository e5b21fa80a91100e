//! `runbook PLAYBOOK …`: a run as a pipeline of named steps,
//!
//! ```text
//! Prepared::load -> lint -> bind -> execute -> settle -> finish
//! ```
//!
//! the first three shared with `runbook test` and `runbook job`
//! ([`crate::pipeline`]); `execute` hands the script to the playbook's
//! thread, which then settles (outputs, or artifacts taken back) and
//! finishes (records, releases), while the main thread drives the async
//! runtime and watches signals and the deadline.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// What the script thread hands back: `None` when it ended without a
/// result (it panicked, or it did not stop within its grace).
type Outcome = Option<Result<(), Box<EvalAltResult>>>;

/// Run a playbook. The error carries its exit code.
pub fn run(opts: RunOptions) -> Result<(), Error> {
    // First, so that it builds the standard package meanwhile.
    let playbook = PlaybookThread::spawn()?;
    let format = opts.format.unwrap_or_else(LogFormat::detect);
    let sink = crate::logging::init(format);
    // A current-thread runtime: this thread drives it while the playbook's
    // thread blocks on it (see `execute`). Worker threads would cost every
    // run their start-up, a third of a trivial run's (bench/RESULTS.md).
    let rt = runtime(0)?;
    let ctx = Ctx::new(settings(&opts, format), rt.handle().clone());
    // --record: the same primitives behind stand-ins that keep each call.
    let recorder = opts
        .record
        .as_ref()
        .map(|_| Proxy::new(&ctx, Box::new(|_, _| None)));
    crate::declare::skip_docs();
    // The playbook's thread adds the standard package to a run's own
    // engine; `--record`'s has it (below its stand-ins, where it must be).
    let engine = match &recorder {
        Some(p) => Unfinished::Complete(proxy::engine(&ctx, p)),
        None => Unfinished::NoStandardPackage(crate::primitives::bindings(&ctx)),
    };
    let e = engine.get();
    let prepared = Prepared::load(e, &opts.playbook)
        .map_err(|e| annotate(&sink, format, &opts.playbook, e))?;
    if opts.help {
        let help = crate::params::render_help(&prepared.decl, &opts.playbook.display().to_string());
        crate::out::text(crate::out::Stream::Stdout, &help);
        return Ok(());
    }
    prepared.lint(e, &ctx)?;
    let args = prepared.bind(&opts.params, &crate::pipeline::process_env)?;
    let job = Arc::new(Job {
        ctx,
        prepared,
        opts,
        recorder,
        args,
        started: (Instant::now(), std::time::SystemTime::now()),
        grace: GRACE,
        claimed: AtomicBool::new(false),
    });
    let result = execute(&rt, playbook, engine, &job);
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}

/// How long a cancelled script gets to stop before the run is concluded
/// without it.
const GRACE: Duration = Duration::from_secs(5);

/// A prepared run: what the playbook's thread runs, and what whichever
/// thread concludes the run reads.
struct Job {
    ctx: Arc<Ctx>,
    prepared: Prepared,
    opts: RunOptions,
    recorder: Option<Arc<Proxy>>,
    args: Map,
    started: (Instant, std::time::SystemTime),
    /// How long a cancelled script gets to stop at its next operation.
    grace: Duration,
    /// Set by the thread that concludes the run: the playbook's when its
    /// script ends, another when the script does not stop in time.
    claimed: AtomicBool,
}

impl Job {
    /// Whether the caller is the one to conclude the run (true once).
    fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::SeqCst)
    }

    /// Settle the outcome, then finish: recording, children, ledger, locks.
    fn conclude(&self, outcome: Outcome) -> Result<(), Error> {
        let result = settle(&self.ctx, outcome, &self.prepared, self.started.0);
        finish(self, &result);
        result
    }
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

/// The engine a run hands its playbook thread.
enum Unfinished {
    /// Still to get the standard package, which that thread builds.
    NoStandardPackage(Engine),
    /// Ready to run.
    Complete(Engine),
}

impl Unfinished {
    /// The engine as it is: enough to compile and lint a playbook
    /// (`engine::tests::compiling_without_the_standard_package_is_the_same`).
    fn get(&self) -> &Engine {
        match self {
            Unfinished::NoStandardPackage(e) | Unfinished::Complete(e) => e,
        }
    }

    fn finish(self) -> Engine {
        match self {
            Unfinished::NoStandardPackage(e) => crate::engine::with_standard_package(e),
            Unfinished::Complete(e) => e,
        }
    }
}

/// The playbook's thread (a deep stack), started before anything else: it
/// builds the language's standard package, a third of a trivial run's
/// start-up, while the main thread reads, compiles and checks the
/// playbook, then waits for the run. A run that ends before (a usage or
/// lint error) drops it unused.
struct PlaybookThread {
    start: std::sync::mpsc::SyncSender<Start>,
}

/// What the playbook's thread needs to run the script and conclude.
struct Start {
    engine: Unfinished,
    job: Arc<Job>,
    /// Told when the script ends, whatever happens next.
    ended: tokio::sync::oneshot::Sender<()>,
    /// The run's result, when this thread concluded it.
    done: tokio::sync::oneshot::Sender<Result<(), Error>>,
}

impl PlaybookThread {
    fn spawn() -> Result<PlaybookThread, Error> {
        let (start, rx) = std::sync::mpsc::sync_channel::<Start>(1);
        std::thread::Builder::new()
            .name("playbook".into())
            .stack_size(32 * 1024 * 1024)
            .spawn(move || {
                pregrow_arena();
                crate::engine::build_standard_package();
                if let Ok(s) = rx.recv() {
                    s.run();
                }
            })
            .map_err(|e| Error::Failed(format!("cannot start the playbook thread: {e}")))?;
        Ok(PlaybookThread { start })
    }
}

/// glibc gives the playbook's thread a malloc arena of its own, which
/// grows by one `mprotect` call per allocation past its end: building the
/// standard package made about fifty of them. A few large blocks
/// (under the 128 KiB past which glibc maps blocks on their own) grow it
/// in a few steps; freed, their memory goes back with one `madvise`, but
/// the arena stays writable that far, so the package grows into it without
/// a call each. Elsewhere it is six allocations freed at once.
fn pregrow_arena() {
    let blocks: Vec<Vec<u8>> = (0..6).map(|_| Vec::with_capacity(120 * 1024)).collect();
    drop(std::hint::black_box(blocks));
}

impl Start {
    /// Run the script, then (unless the main thread gave up on it and
    /// concluded the run) settle and finish.
    fn run(self) {
        let engine = self.engine.finish();
        let job = self.job;
        let mut scope = Scope::new();
        scope.push_constant("args", Dynamic::from(job.args.clone()));
        // A panic is a run without a result, concluded like any other.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.run_ast_with_scope(&mut scope, &job.prepared.ast)
        }))
        .ok();
        let _ = self.ended.send(());
        if job.claim() {
            let _ = self.done.send(job.conclude(outcome));
        }
    }
}

/// Hand the run to its playbook thread (detached, so a script that
/// ignores cancellation ends with the process), which runs the script,
/// then settles and finishes the run, while this thread drives the
/// runtime and watches signals and the deadline. A script that does not
/// stop in time is left behind: the run is concluded on a thread of its
/// own.
fn execute(
    rt: &tokio::runtime::Runtime,
    thread: PlaybookThread,
    engine: Unfinished,
    job: &Arc<Job>,
) -> Result<(), Error> {
    let (ctx, path) = (&job.ctx, &job.prepared.path);
    tracing::info!(
        playbook = %path.display(), dry_run = ctx.dry_run(),
        "running {}{}", path.display(), if ctx.dry_run() { " (dry run: nothing will be changed)" } else { "" }
    );
    let timeout = job.opts.timeout;
    if let Some(t) = timeout {
        ctx.set_deadline(Instant::now() + t);
    }
    let (ended, ended_rx) = tokio::sync::oneshot::channel();
    let (done, done_rx) = tokio::sync::oneshot::channel();
    let start = Start {
        engine,
        job: job.clone(),
        ended,
        done,
    };
    thread.start.send(start).map_err(|_| {
        Error::Failed("the playbook thread ended before the run (an internal error)".into())
    })?;
    let ended = rt.block_on(watch(ctx.clone(), ended_rx, timeout, job.grace));
    let done = if !ended && job.claim() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let j = job.clone();
        std::thread::Builder::new()
            .name("conclude".into())
            .spawn(move || {
                let _ = tx.send(j.conclude(None));
            })
            .map_err(|e| Error::Failed(format!("cannot start a thread to end the run: {e}")))?;
        rx
    } else {
        done_rx
    };
    rt.block_on(done).unwrap_or_else(|_| {
        Err(Error::Failed(
            "the run ended without a result (an internal error)".into(),
        ))
    })
}

/// After the outcome, whatever it is: the recording, the children, the
/// ledger (while the locks are still held), the locks, the summaries.
/// Runs off the runtime's thread, which drives the I/O it waits for.
fn finish(job: &Job, result: &Result<(), Error>) {
    let (ctx, opts) = (&job.ctx, &job.opts);
    if let (Some(file), Some(p)) = (&opts.record, &job.recorder) {
        write_recording(file, &opts.playbook, opts.dry_run, p);
    }
    ctx.kill_children();
    // The ledger takes the arguments as JSON (it holds no Rhai); the
    // record is appended while the locks are still held.
    let ledger_args = crate::value::to_json(&rhai::Dynamic::from(job.args.clone()))
        .unwrap_or(serde_json::Value::Null);
    crate::ledger::record_run(
        &ctx.ledger_facts(),
        &opts.playbook,
        &ledger_args,
        job.started.1,
        result,
    );
    ctx.locks.release_all(&ctx.rt);
    crate::github::flush_summaries(&ctx.summaries.lock());
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

/// Wait for the playbook thread's script to end; on a signal (SIGINT,
/// SIGTERM, SIGHUP, SIGQUIT) or the deadline, cancel the run and give the
/// script `grace` to stop at its next operation. Whether it ended.
async fn watch(
    watcher: Arc<Ctx>,
    rx: tokio::sync::oneshot::Receiver<()>,
    timeout: Option<Duration>,
    grace: Duration,
) -> bool {
    let mut signals = Signals::install();
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let mut rx = rx;
    let reason = tokio::select! {
        _ = &mut rx => return true,
        s = signals.next() => CancelReason::Signal(s),
        _ = deadline => CancelReason::Timeout(timeout.unwrap_or_default()),
    };
    watcher.cancel(reason);
    // The script stops at its next operation; don't wait forever for it.
    // A guarded deploy in progress gets its rollback reserve first; a
    // second signal stops the rollback too.
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
            _ = &mut rx => return true,
            _ = signals.next() => {
                tracing::warn!("a second signal: stopping the rollback");
                watcher.cancel_hard();
            }
            _ = tokio::time::sleep(reserve + grace) => watcher.cancel_hard(),
        }
    }
    tokio::time::timeout(grace, rx).await.is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Set when `hang()` is reached.
    static HUNG: AtomicBool = AtomicBool::new(false);

    /// A run of `source` with `hang()` (a native call that ignores
    /// cancellation for 30 s) and `boom()` (a panic), a `timeout` and a
    /// 300 ms grace, concluded by `execute` as `runbook` would.
    fn run_with(source: &str, timeout: Duration) -> (Result<(), Error>, Arc<Job>, Duration) {
        let dir = tempfile::tempdir().unwrap();
        let playbook = dir.path().join("stuck.rhai");
        std::fs::write(&playbook, source).unwrap();
        let rt = runtime(0).unwrap();
        let mut settings = Settings::new(&playbook, LogFormat::Json);
        settings.workdir = dir.path().to_path_buf();
        let ctx = Ctx::new(settings, rt.handle().clone());
        let mut engine = crate::primitives::bindings(&ctx);
        engine.register_fn("hang", || {
            HUNG.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(30))
        });
        engine.register_fn("boom", || -> () { panic!("boom") });
        let Ok(prepared) = Prepared::load(&engine, &playbook) else {
            panic!("the test playbook does not load")
        };
        let job = Arc::new(Job {
            ctx,
            prepared,
            opts: RunOptions {
                playbook,
                timeout: Some(timeout),
                ..RunOptions::default()
            },
            recorder: None,
            args: Map::new(),
            started: (Instant::now(), std::time::SystemTime::now()),
            grace: Duration::from_millis(300),
            claimed: AtomicBool::new(false),
        });
        let Ok(thread) = PlaybookThread::spawn() else {
            panic!("no playbook thread")
        };
        let t = Instant::now();
        let result = execute(&rt, thread, Unfinished::NoStandardPackage(engine), &job);
        let took = t.elapsed();
        // The state folder goes with `dir`; the stuck thread outlives both.
        drop(dir);
        (result, job, took)
    }

    /// A script stuck where cancellation cannot reach: the run is concluded
    /// without it, within its deadline and grace, and its lock released.
    #[test]
    fn a_script_that_does_not_stop_is_concluded_without_it() {
        let (result, job, took) = run_with("lock(\"stuck\");\nhang();\n", Duration::from_secs(1));
        assert!(
            HUNG.load(Ordering::SeqCst),
            "the script never reached hang()"
        );
        assert!(matches!(result, Err(Error::Timeout(_))), "{result:?}");
        assert!(took < Duration::from_secs(10), "took {took:?}");
        assert_eq!(job.ctx.locks.token_of("stuck"), None);
        assert!(job.claimed.load(Ordering::SeqCst));
    }

    /// A script whose thread panics: a run without a result, its lock
    /// released all the same.
    #[test]
    fn a_panicking_script_is_a_run_without_a_result() {
        let (result, job, _) = run_with("lock(\"boom\");\nboom();\n", Duration::from_secs(60));
        let Err(Error::Failed(m)) = &result else {
            panic!("{result:?}")
        };
        assert!(m.contains("ended without a result"), "{m}");
        assert_eq!(job.ctx.locks.token_of("boom"), None);
    }
}
