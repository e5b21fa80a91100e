//! One hermetic run of a playbook for a test: a fresh temporary working
//! directory holding the test's files, the test's environment and secrets
//! only, stubs for every primitive that reaches outside, and the run's
//! result as a map the test asserts on.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rhai::{Array, Dynamic, EvalAltResult, FnPtr, Map, Position, Scope};

use super::proxy::{self, Proxy};
use super::record::{call_text, Replay};
use crate::context::{error, Ctx, RhaiResult, Settings};
use crate::logging::LogFormat;
use crate::pipeline::Prepared;
use crate::primitives::effects;

/// Primitives the test itself answers: the environment and secrets come
/// from `t.env`/`t.secret`, sleeps take no time, logs are kept for `r.logs`;
/// a target lock is always free (token 1) and the ledger empty, unless a
/// stub says otherwise (`t.stub("ledger_history", [...])`).
pub const ANSWERED: &[&str] = &[
    "env",
    "secret",
    "sleep",
    "log_info",
    "log_warn",
    "log_event",
    "lock",
    "unlock",
    "ledger_note",
    "ledger_history",
];

/// Whether a call of `name` needs a stub (or a replayed answer).
pub fn needs_stub(name: &str) -> bool {
    !effects::runs_in_tests(name) && !ANSWERED.contains(&name)
}

/// How a stub answers.
#[derive(Clone)]
pub enum Stub {
    /// Every call returns this (a closure is called with the arguments).
    Value(Dynamic),
    /// Call k returns element k; the last one repeats.
    Seq(Array),
}

/// Calls a test file's closure (it lives in the test's engine).
pub type Caller = dyn Fn(&FnPtr, Vec<Dynamic>) -> RhaiResult<Dynamic> + Send + Sync;

/// What a test set up with `playbook(...)` and `t.…`.
#[derive(Clone)]
pub struct Spec {
    /// The playbook file.
    pub path: PathBuf,
    /// Parameters, as `playbook(path, #{…})` gave them.
    pub params: Map,
    /// Stubs by primitive name.
    pub stubs: HashMap<String, Stub>,
    /// `t.env`.
    pub env: BTreeMap<String, String>,
    /// `t.secret`.
    pub secrets: BTreeMap<String, String>,
    /// `t.file`: relative path and content (text, or a value written as JSON).
    pub files: Vec<(String, Dynamic)>,
    /// `t.dry_run`.
    pub dry_run: bool,
    /// `t.replay`.
    pub replay: Option<PathBuf>,
}

impl Spec {
    /// A spec for `path` with `params`.
    pub fn new(path: PathBuf, params: Map) -> Spec {
        Spec {
            path,
            params,
            stubs: HashMap::new(),
            env: BTreeMap::new(),
            secrets: BTreeMap::new(),
            files: Vec::new(),
            dry_run: false,
            replay: None,
        }
    }
}

/// A path a test may name inside the run's folder.
pub fn inside(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty()
        && !path.is_absolute()
        && !path.components().any(|c| matches!(c, Component::ParentDir))
}

/// The parameters map as command-line arguments, so they are validated
/// exactly as `runbook PLAYBOOK --name value` would be.
pub fn params_as_args(params: &Map) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in params {
        if v.is_unit() {
            continue;
        }
        out.push(format!("--{}={}", k.replace('_', "-"), v));
    }
    out
}

fn write_files(dir: &Path, files: &[(String, Dynamic)]) -> Result<(), String> {
    for (rel, content) in files {
        let full = dir.join(rel);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("t.file {rel}: {e}"))?;
        }
        let text = if content.is_string() {
            content.to_string()
        } else {
            let v = crate::value::to_json(content).map_err(|e| format!("t.file {rel}: {e}"))?;
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        };
        std::fs::write(&full, text).map_err(|e| format!("t.file {rel}: {e}"))?;
    }
    Ok(())
}

/// Files below `dir` as relative path → content (JSON parsed when it
/// parses, else text).
fn read_files(dir: &Path) -> Map {
    let mut out = Map::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let (Ok(rel), Ok(text)) = (p.strip_prefix(dir), read_data(&p)) {
                out.insert(rel.display().to_string().into(), content_value(&text));
            }
        }
    }
    out
}

/// A file the run left, read like any data file: a FIFO the run made
/// cannot hang the test, nor a huge one fill memory.
fn read_data(p: &Path) -> Result<String, crate::fsread::ReadError> {
    crate::fsread::read_text(p, crate::fsread::FILE_CAP)
}

fn content_value(text: &str) -> Dynamic {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => crate::value::to_dynamic(&v),
        Err(_) => Dynamic::from(text.to_string()),
    }
}

/// What a test's run collects besides its outcome, for `r.logs`,
/// `r.events` and the hermetic check.
#[derive(Default)]
struct Collected {
    logs: Mutex<Vec<String>>,
    events: Mutex<Array>,
    /// The first call no stub answered (the run fails even when the
    /// playbook caught its error).
    unstubbed: Mutex<Option<String>>,
}

/// How a test's run answers a primitive call: its stub, a stand-in, a
/// replayed answer, or (for what runs in tests) the real primitive.
struct Answers {
    spec: Spec,
    replay: Option<Arc<Replay>>,
    caller: Arc<Caller>,
    /// Where each `Stub::Seq` is.
    seq_pos: Mutex<HashMap<String, usize>>,
    collected: Arc<Collected>,
}

impl Answers {
    /// `None`: the real primitive answers.
    fn answer(&self, name: &str, args: &[Dynamic]) -> Option<RhaiResult<Dynamic>> {
        if let Some(stub) = self.spec.stubs.get(name) {
            let v = self.stub_value(name, stub);
            return Some(answer_stub(name, v, args, &self.caller));
        }
        if let Some(r) = stand_in(name, args, &self.spec, &self.collected) {
            return Some(r);
        }
        if let Some(r) = self.replay.as_ref().filter(|_| needs_stub(name)) {
            return Some(r.answer(name, args));
        }
        let arg0 = args.first().map(|a| a.to_string()).unwrap_or_default();
        if effects::WORKDIR_FILES.contains(&name) && !inside(&arg0) {
            return Some(Err(error(format!(
                "{name}: '{arg0}' is outside the run's folder; in a test, give a relative path and create it with t.file, or stub {name}"
            ))));
        }
        // In a dry run, exec without read_only only plans (runs nothing):
        // the real primitive answers, allow-list included.
        if self.spec.dry_run && name == "exec" && effects::is_mutation(name, args) {
            return None;
        }
        if needs_stub(name) {
            let msg = format!(
                "unstubbed primitive `{}`: stub it with t.stub(\"{name}\", value) or t.stub(\"{name}\", |…| …)",
                call_text(name, args)
            );
            let mut first = self.collected.unstubbed.lock();
            first.get_or_insert_with(|| msg.clone());
            return Some(Err(error(msg)));
        }
        None
    }

    /// The stub's value for this call (a sequence moves on).
    fn stub_value(&self, name: &str, stub: &Stub) -> Dynamic {
        match stub {
            Stub::Value(v) => v.clone(),
            Stub::Seq(vs) => {
                let mut pos = self.seq_pos.lock();
                let k = pos.entry(name.to_string()).or_insert(0);
                let v = vs.get(*k).or(vs.last()).cloned().unwrap_or(Dynamic::UNIT);
                *k += 1;
                v
            }
        }
    }
}

/// Run the playbook of `spec` and return `#{ code, error, report, outputs,
/// summary, artifacts, files, calls, mutations, logs, events }`.
pub fn run(spec: &Spec, caller: Arc<Caller>, rt: &tokio::runtime::Handle) -> RhaiResult<Map> {
    let dir = tempfile::Builder::new()
        .prefix("runbook-test-")
        .tempdir()
        .map_err(|e| error(format!("cannot make the run's temporary folder: {e}")))?;
    write_files(dir.path(), &spec.files).map_err(error)?;
    let replay = match &spec.replay {
        Some(p) => Some(Arc::new(Replay::load(p, &needs_stub).map_err(error)?)),
        None => None,
    };
    for v in spec.secrets.values() {
        crate::redact::register(v);
    }

    let mut settings = Settings::new(&spec.path, LogFormat::Json);
    settings.workdir = dir.path().to_path_buf();
    settings.dry_run = spec.dry_run;
    // exec is stubbed; the allow-list still applies to what a stub is asked.
    let ctx = Ctx::new(settings, rt.clone());

    let collected = Arc::new(Collected::default());
    let answers = Answers {
        spec: spec.clone(),
        replay: replay.clone(),
        caller,
        seq_pos: Mutex::default(),
        collected: collected.clone(),
    };
    let proxy = Proxy::new(&ctx, Box::new(move |name, args| answers.answer(name, args)));
    let mut engine = proxy::engine(&ctx, &proxy);
    {
        let collected = collected.clone();
        engine.on_print(move |s| {
            collected
                .logs
                .lock()
                .push(format!("print: {}", crate::redact::redact(s)));
        });
    }

    let (code, report) = execute(spec, &engine, &ctx, replay.as_deref(), &collected);
    if code != 0 {
        crate::pipeline::discard_artifacts(&ctx);
    }
    let finished = Finished {
        ctx: &ctx,
        dir: dir.path(),
        proxy: &proxy,
        spec,
        collected: &collected,
    };
    Ok(finished.report_map(code, report))
}

/// The primitives a test answers itself unless stubbed: settings and
/// secrets from the test's own maps, locks and the ledger as no-ops, logs
/// and events kept for assertions.
fn stand_in(
    name: &str,
    args: &[Dynamic],
    spec: &Spec,
    collected: &Collected,
) -> Option<RhaiResult<Dynamic>> {
    let (logs, events) = (&collected.logs, &collected.events);
    let arg = |i: usize| args.get(i).map(|a| a.to_string()).unwrap_or_default();
    match name {
        "env" => Some(match (spec.env.get(&arg(0)), args.len()) {
            (Some(v), _) if !v.is_empty() => Ok(Dynamic::from(v.clone())),
            (_, 2) => Ok(Dynamic::from(arg(1))),
            _ => Err(error(format!(
                "env: {} is not set; set it with t.env(\"{}\", value)",
                arg(0),
                arg(0)
            ))),
        }),
        "secret" => Some(match spec.secrets.get(&arg(0)) {
            Some(v) if !v.is_empty() => Ok(Dynamic::from(v.clone())),
            _ => Err(error(format!(
                "secret: {} is not set; set it with t.secret(\"{}\", value)",
                arg(0),
                arg(0)
            ))),
        }),
        "sleep" | "unlock" | "ledger_note" => Some(Ok(Dynamic::UNIT)),
        "ledger_history" => Some(Ok(Dynamic::from(Array::new()))),
        "lock" => {
            let mut m = Map::new();
            m.insert("name".into(), Dynamic::from(arg(0)));
            m.insert("backend".into(), Dynamic::from("test"));
            m.insert("holder".into(), Dynamic::from("runbook test"));
            m.insert("token".into(), Dynamic::from(1_i64));
            // The shape of a dry-run lock: `expires` is a string, empty.
            m.insert("expires".into(), Dynamic::from(""));
            Some(Ok(Dynamic::from(m)))
        }
        "log_info" | "log_warn" => {
            let level = if name == "log_info" { "info" } else { "warn" };
            let line = crate::redact::redact(&format!("{level}: {}", arg(0))).into_owned();
            logs.lock().push(line);
            Some(Ok(Dynamic::UNIT))
        }
        "log_event" => {
            let fields = args.get(1).cloned().unwrap_or(Dynamic::UNIT);
            let line = format!("event {}: {}", arg(0), super::record::value_json(&fields));
            logs.lock().push(crate::redact::redact(&line).into_owned());
            let mut ev = Map::new();
            ev.insert("name".into(), Dynamic::from(arg(0)));
            ev.insert("fields".into(), fields);
            events.lock().push(Dynamic::from(ev));
            Some(Ok(Dynamic::UNIT))
        }
        _ => None,
    }
}

/// A finished test run: what `t.run()` reports on.
struct Finished<'a> {
    ctx: &'a Ctx,
    dir: &'a Path,
    proxy: &'a Proxy,
    spec: &'a Spec,
    collected: &'a Collected,
}

impl Finished<'_> {
    /// What `t.run()` returns: the exit code and report, outputs, summary,
    /// artifacts and files, the calls and mutations, logs and events.
    fn report_map(&self, code: i64, report: Option<(String, String)>) -> Map {
        let (ctx, dir) = (self.ctx, self.dir);
        let mut r = Map::new();
        r.insert("code".into(), Dynamic::from(code));
        let (error, text) = match report {
            Some((message, text)) => (Dynamic::from(message), Dynamic::from(text)),
            None => (Dynamic::UNIT, Dynamic::UNIT),
        };
        r.insert("error".into(), error);
        r.insert("report".into(), text);
        let mut outputs = Map::new();
        if code == 0 {
            for (k, v) in ctx.outputs.lock().iter() {
                outputs.insert(k.as_str().into(), Dynamic::from(v.clone()));
            }
        }
        r.insert("outputs".into(), Dynamic::from(outputs));
        let summary = ctx.summaries.lock().join("\n");
        r.insert("summary".into(), Dynamic::from(summary));
        // Every file the run wrote that is still there: a failed run took
        // back the others, `keep_on_failure` ones stay (and count).
        let mut artifacts = Map::new();
        for f in ctx.written.lock().iter() {
            if let (Ok(rel), Ok(text)) = (f.strip_prefix(dir), read_data(f)) {
                artifacts.insert(rel.display().to_string().into(), content_value(&text));
            }
        }
        r.insert("artifacts".into(), Dynamic::from(artifacts));
        r.insert("files".into(), Dynamic::from(read_files(dir)));
        let (calls, mutations) = self.calls();
        r.insert("calls".into(), Dynamic::from(calls));
        r.insert("mutations".into(), Dynamic::from(mutations));
        let logs = self.collected.logs.lock().clone();
        r.insert(
            "logs".into(),
            Dynamic::from(logs.into_iter().map(Dynamic::from).collect::<Array>()),
        );
        let events = self.collected.events.lock().clone();
        r.insert("events".into(), Dynamic::from(events));
        r
    }

    /// Every primitive call, and the mutations among them.
    fn calls(&self) -> (Array, Array) {
        let mut calls = Array::new();
        let mut mutations = Array::new();
        for c in self.proxy.calls() {
            let mut m = Map::new();
            m.insert("name".into(), Dynamic::from(c.name.clone()));
            m.insert("args".into(), Dynamic::from(c.args.clone()));
            m.insert(
                "planned".into(),
                Dynamic::from(c.mutation && self.spec.dry_run),
            );
            let m = Dynamic::from(m);
            if c.mutation {
                mutations.push(m.clone());
            }
            calls.push(m);
        }
        (calls, mutations)
    }
}

fn answer_stub(
    name: &str,
    v: Dynamic,
    args: &[Dynamic],
    caller: &Arc<Caller>,
) -> RhaiResult<Dynamic> {
    let Some(f) = v.clone().try_cast::<FnPtr>() else {
        return Ok(v);
    };
    // A closure may take fewer parameters than the call has arguments.
    let mut n = args.len();
    loop {
        match caller(&f, args[..n].to_vec()) {
            Err(e)
                if n > 0
                    && matches!(&*e, EvalAltResult::ErrorFunctionNotFound(sig, _) if sig.starts_with(f.fn_name())) =>
            {
                n -= 1
            }
            Ok(v) => return Ok(v),
            // `throw` in a stub is the primitive's error.
            Err(e) => {
                let mut cur = *e;
                while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = cur {
                    cur = *inner;
                }
                return Err(match cur {
                    // A failure located in the test file: name the stub.
                    EvalAltResult::ErrorRuntime(v, _) if v.is::<crate::error::StubFailure>() => {
                        let mut f = v.cast::<crate::error::StubFailure>();
                        f.stub = name.to_string();
                        EvalAltResult::ErrorRuntime(Dynamic::from(f), Position::NONE).into()
                    }
                    EvalAltResult::ErrorRuntime(v, _) => {
                        EvalAltResult::ErrorRuntime(v, Position::NONE).into()
                    }
                    other => error(format!("the stub of {name} failed: {other}")),
                });
            }
        }
    }
}

/// The run's pipeline, as `runbook PLAYBOOK` has it (load, lint, bind),
/// then the script on this thread. Returns the exit code and, on failure,
/// the message and the full report.
fn execute(
    spec: &Spec,
    engine: &rhai::Engine,
    ctx: &Arc<Ctx>,
    replay: Option<&Replay>,
    collected: &Collected,
) -> (i64, Option<(String, String)>) {
    let usage = |m: String| (2, Some((m.clone(), m)));
    let prepared = match Prepared::load(engine, &spec.path) {
        Ok(p) => p,
        Err(e) => return (2, Some(e.message_and_text())),
    };
    if let Err(e) = prepared.lint(engine, ctx) {
        return usage(e.to_string());
    }
    let env = |k: &str| spec.env.get(k).cloned();
    let args = match prepared.bind(&params_as_args(&spec.params), &env) {
        Ok(a) => a,
        Err(e) => return usage(e.message),
    };
    let mut scope = Scope::new();
    scope.push_constant("args", Dynamic::from(args));
    let outcome = engine.run_ast_with_scope(&mut scope, &prepared.ast);
    let first_unstubbed = collected.unstubbed.lock().clone();
    // Hermetic even when the playbook caught the error.
    if let (Ok(()), Some(m)) = (&outcome, first_unstubbed) {
        return (1, Some((m.clone(), m)));
    }
    // The exit a real run would give (a guarded deploy's 3/4/5, a lost
    // lock's 75, …), decided by the same function.
    let (path, source) = (prepared.path.as_path(), prepared.source.as_str());
    if let Some(err) = crate::pipeline::failure(ctx, &outcome, path, source) {
        let (message, text) = match &outcome {
            Err(e) => {
                let r = crate::report::eval_error(e, path, source);
                (r.message, r.text)
            }
            Ok(()) => {
                let t = err.render().unwrap_or_default();
                (t.clone(), t)
            }
        };
        return (i64::from(err.exit_code()), Some((message, text)));
    }
    match replay.and_then(Replay::leftover) {
        Some(m) => (1, Some((m.clone(), m))),
        None => (0, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_become_flags() {
        let mut m = Map::new();
        m.insert("banano_dseq".into(), Dynamic::from(7_i64));
        m.insert("dry".into(), Dynamic::from(false));
        m.insert("none".into(), Dynamic::UNIT);
        assert_eq!(params_as_args(&m), ["--banano-dseq=7", "--dry=false"]);
    }

    #[test]
    fn only_relative_paths_inside() {
        assert!(inside("endpoint.json"));
        assert!(inside("k8s/values.yaml"));
        for bad in ["", "/etc/passwd", "../x", "a/../../b"] {
            assert!(!inside(bad), "{bad}");
        }
    }
}
