//! A run's front half, written once for `runbook PLAYBOOK`, `--dry-run`,
//! `runbook test` and `runbook job`:
//!
//! ```text
//! Prepared::load  read (bounded), compile, imports, module or playbook, PARAMS
//!   .lint         check's lints, the imported modules' too
//!   .bind         the command line (or a test's map) against PARAMS
//! ```
//!
//! then each command executes its own way (a script thread under signals,
//! a sandbox, nothing at all for a Job) and [`discard_artifacts`] settles a
//! failure. Each step has its own error type; each joins
//! [`crate::error::Error`] through `From`, always a usage error (exit 2):
//! nothing has run yet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rhai::{Engine, EvalAltResult, Map, AST};

use crate::check::Finding;
use crate::context::Ctx;
use crate::engine::Resolver;
use crate::error::Error;
use crate::params::Declaration;
use crate::report::Report;

/// A playbook read, compiled and declared: ready to lint, bind and run.
pub struct Prepared {
    /// The playbook file.
    pub path: PathBuf,
    /// Its text.
    pub source: String,
    /// Compiled on the engine that will run it.
    pub ast: AST,
    /// What its `PARAMS` declares.
    pub decl: Declaration,
}

/// Why a playbook could not be loaded.
pub enum LoadError {
    /// Not a readable, bounded, UTF-8 regular file.
    Read(String),
    /// It does not compile.
    Compile(Report),
    /// An `import` that will not resolve.
    Import(Report),
    /// A module or a test file, not a playbook.
    Module(String),
    /// A mistake in `PARAMS`.
    Declaration(String),
}

impl LoadError {
    /// The position-carrying report, for a GitHub annotation.
    pub fn report(&self) -> Option<&Report> {
        match self {
            LoadError::Compile(r) | LoadError::Import(r) => Some(r),
            _ => None,
        }
    }

    /// The one-line message and the full text (the same when there is no
    /// location to show).
    pub fn message_and_text(&self) -> (String, String) {
        match self {
            LoadError::Compile(r) | LoadError::Import(r) => (r.message.clone(), r.text.clone()),
            LoadError::Read(m) | LoadError::Module(m) | LoadError::Declaration(m) => {
                (m.clone(), m.clone())
            }
        }
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Error {
        match e {
            LoadError::Compile(r) | LoadError::Import(r) => Error::Usage(r.text).reported(),
            LoadError::Read(m) | LoadError::Module(m) | LoadError::Declaration(m) => {
                Error::Usage(m)
            }
        }
    }
}

/// check's findings that would fail the run.
#[derive(Debug)]
pub struct LintError {
    /// The playbook.
    pub path: PathBuf,
    /// Every finding, the imported modules' included.
    pub findings: Vec<Finding>,
}

impl std::fmt::Display for LintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::check::lint_report(&self.path, &self.findings))
    }
}

impl From<LintError> for Error {
    fn from(e: LintError) -> Error {
        Error::Usage(e.to_string())
    }
}

/// A parameter the command line (or the test's map) got wrong.
#[derive(Debug)]
pub struct BindError {
    /// The playbook.
    pub path: PathBuf,
    /// What is wrong with which parameter.
    pub message: String,
}

impl From<BindError> for Error {
    fn from(e: BindError) -> Error {
        Error::Usage(format!(
            "{}\n(run `runbook {} --help` for its parameters)",
            e.message,
            e.path.display()
        ))
    }
}

/// Where the parameters' `env` fallbacks are read from.
pub type EnvReader<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Prepared {
    /// Read `path` (bounded, see [`crate::engine::read_script`]), compile it
    /// on `engine`, check its imports resolve, refuse a module, read its
    /// declaration.
    pub fn load(engine: &Engine, path: &Path) -> Result<Prepared, LoadError> {
        let source = crate::engine::read_script(path).map_err(LoadError::Read)?;
        let ast = compile_cached(engine, path, &source)
            .map_err(|e| LoadError::Compile(crate::report::parse_error(&e, path, &source)))?;
        let resolver = Resolver::new(path);
        if let Some((msg, pos)) = crate::engine::unresolved_imports(&ast, &resolver)
            .into_iter()
            .next()
        {
            let err = EvalAltResult::ErrorRuntime(msg.into(), pos);
            return Err(LoadError::Import(crate::report::eval_error(
                &err, path, &source,
            )));
        }
        if crate::check::is_module(&ast) {
            return Err(LoadError::Module(crate::check::module_message(path)));
        }
        let decl = crate::params::declaration(&ast, &source, &resolver)
            .map_err(|e| LoadError::Declaration(format!("{}: {e}", path.display())))?;
        Ok(Prepared {
            path: path.to_path_buf(),
            source,
            ast,
            decl,
        })
    }

    /// check's lints before the first primitive, imported modules' too: a
    /// typo on line 40 must not fire after 39 lines of side effects.
    /// Kept per process by path and text (tests run a playbook many times).
    pub fn lint(&self, engine: &Engine, ctx: &Arc<Ctx>) -> Result<(), LintError> {
        type Cache = Mutex<HashMap<(PathBuf, String), Vec<Finding>>>;
        static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let key = (self.path.clone(), self.source.clone());
        let cached = cache.lock().get(&key).cloned();
        let findings = match cached {
            Some(f) => f,
            None => {
                let f = crate::check::run_lints(
                    engine,
                    ctx,
                    &self.ast,
                    &self.decl,
                    &self.path,
                    &self.source,
                );
                cache.lock().insert(key, f.clone());
                f
            }
        };
        if findings.is_empty() {
            return Ok(());
        }
        Err(LintError {
            path: self.path.clone(),
            findings,
        })
    }

    /// The parameters (`--name value`…) against the declaration, `env`
    /// fallbacks read through `env`: the map the script sees as `args`.
    pub fn bind(&self, params: &[String], env: EnvReader) -> Result<Map, BindError> {
        crate::params::parse_args_with_env(&self.decl, params, env).map_err(|message| BindError {
            path: self.path.clone(),
            message,
        })
    }
}

/// The playbook's AST, compiled once per process (tests run it many times).
fn compile_cached(engine: &Engine, path: &Path, source: &str) -> Result<AST, rhai::ParseError> {
    type Cache = Mutex<HashMap<(PathBuf, String), AST>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (path.to_path_buf(), source.to_string());
    if let Some(a) = cache.lock().get(&key) {
        return Ok(a.clone());
    }
    let ast = engine.compile(source)?;
    cache.lock().insert(key, ast.clone());
    Ok(ast)
}

/// The process environment, for a real run's `env` fallbacks.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// What a script's result means for the run, decided the same way for a
/// run and for `runbook test`: a guarded deploy's outcome (exit 3, 4 or
/// 5), a lock lost before a change or busy (75, even when the script
/// caught the refusal), a usage error (2), any other error (1). `None`:
/// the script succeeded. Errors carry their full report.
pub fn failure(
    ctx: &Ctx,
    result: &Result<(), Box<EvalAltResult>>,
    path: &Path,
    source: &str,
) -> Option<Error> {
    use crate::gates::Outcome as Shield;
    let text = |fallback: &str| match result {
        Err(e) => crate::report::eval_error(e, path, source).text,
        Ok(()) => format!("error: {fallback}"),
    };
    let guarded = match ctx.shield.outcome() {
        Some(Shield::RolledBack(m)) => Some(Error::RolledBack(text(&m))),
        Some(Shield::RollbackFailed(m)) => Some(Error::RollbackFailed(text(&m))),
        Some(Shield::Unverified(m)) => Some(Error::Unverified(text(&m))),
        Some(Shield::Ok) | None => None,
    };
    if let Some(g) = guarded {
        return Some(g.reported());
    }
    let refused = ctx.locks.refused();
    match result {
        Ok(()) => refused.map(|l| Error::Busy(l.to_string())),
        Err(e) => {
            let text = crate::report::eval_error(e, path, source).text;
            let kind = if crate::report::is_usage(e) {
                Error::Usage(text)
            } else if crate::error::is_busy(e) || refused.is_some() {
                Error::Busy(text)
            } else {
                Error::Failed(text)
            };
            Some(kind.reported())
        }
    }
}

/// Whether a guarded deploy decided the run's outcome (see [`failure`]).
pub fn is_guarded(ctx: &Ctx) -> bool {
    !matches!(ctx.shield.outcome(), None | Some(crate::gates::Outcome::Ok))
}

/// A failed run leaves no artifact it promised. Each is removed beneath
/// the working directory, as it was written: a folder swapped for a
/// symlink since cannot point the removal outside.
pub fn discard_artifacts(ctx: &Ctx) {
    let files: Vec<PathBuf> = ctx.artifacts.lock().drain(..).collect();
    let root = &ctx.settings.workdir;
    for rel in files {
        let shown = root.join(&rel);
        match crate::fsread::remove_beneath(root, &rel) {
            Ok(true) => tracing::warn!(
                "removed {} (written by this run, which failed)",
                shown.display()
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                "did not remove {} (written by this run, which failed): {e}",
                shown.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dir: &Path, name: &str, text: &str) -> Result<Prepared, LoadError> {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Prepared::load(&crate::engine::new_engine(), &path)
    }

    /// A run and `runbook test` read a script's result through this one
    /// function: a caught guarded failure still exits 3/4/5, a thrown
    /// error 1, success nothing.
    #[test]
    fn a_result_means_the_same_exit_for_a_run_and_a_test() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ctx = Ctx::new(
            crate::context::Settings::new(Path::new("t.rhai"), crate::logging::LogFormat::Json),
            rt.handle().clone(),
        );
        let (path, source) = (Path::new("t.rhai"), "fail(\"x\");");
        let engine = crate::primitives::engine(&ctx);
        let thrown = engine.run(source);
        assert!(failure(&ctx, &Ok(()), path, source).is_none());
        assert_eq!(
            failure(&ctx, &thrown, path, source).map(|e| e.exit_code()),
            Some(1)
        );
        // The script caught the guarded deploy's error: the outcome decides.
        ctx.shield
            .settle(crate::gates::Outcome::RolledBack("gate failed".into()));
        let e = failure(&ctx, &Ok(()), path, source).expect("a rolled-back deploy fails the run");
        assert_eq!(e.exit_code(), 3);
        assert!(e.render().unwrap_or_default().contains("gate failed"));
        assert!(is_guarded(&ctx));
    }

    #[test]
    fn each_step_fails_with_its_own_error_and_exit_2() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        type Case = (&'static str, &'static str, fn(&LoadError) -> bool);
        let cases: [Case; 4] = [
            ("bad.rhai", "let = 1;", |e| {
                matches!(e, LoadError::Compile(_))
            }),
            ("imp.rhai", "import \"nowhere\" as n;\nprint(1);", |e| {
                matches!(e, LoadError::Import(_))
            }),
            ("lib.rhai", "fn helper() { 1 }", |e| {
                matches!(e, LoadError::Module(_))
            }),
            (
                "decl.rhai",
                "const PARAMS = #{ dry_run: #{} };\nprint(1);",
                |e| matches!(e, LoadError::Declaration(_)),
            ),
        ];
        for (name, text, want) in cases {
            let Err(e) = load(d, name, text) else {
                panic!("{name} loaded")
            };
            assert!(want(&e), "{name}");
            let err: Error = e.into();
            assert_eq!(err.exit_code(), 2, "{name}");
            let shown = err.render().unwrap_or_default();
            // A report keeps its own `error:` line; a message gets one.
            assert!(shown.starts_with("error: ") && !shown.starts_with("error: error"));
        }
        assert!(matches!(
            Prepared::load(&crate::engine::new_engine(), &d.join("none.rhai")),
            Err(LoadError::Read(_))
        ));

        let p = load(
            d,
            "pb.rhai",
            "const PARAMS = #{ sha: #{ required: true } };\nprint(args.sha);",
        )
        .ok()
        .unwrap();
        let env = |_: &str| None;
        assert_eq!(
            p.bind(&["--sha=x".into()], &env).unwrap()["sha"].to_string(),
            "x"
        );
        let err: Error = p.bind(&[], &env).unwrap_err().into();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("runbook"), "{err}");
    }
}
