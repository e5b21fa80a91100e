//! The sandboxed Rhai engine, built in one place: limits, no `eval`,
//! imports resolved from the playbook's folder, then the project's
//! `stdlib/`, then the stdlib embedded in the binary; and the bounded
//! reading of a playbook or module. The primitives, a layer above, are
//! put on it by `primitives::engine`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

use crate::context::Ctx;

/// The stdlib modules embedded in the binary, so an installed `runbook`
/// works anywhere.
pub const EMBEDDED_STDLIB: &[(&str, &str)] = &[
    ("endpoints", include_str!("../stdlib/endpoints.rhai")),
    ("images", include_str!("../stdlib/images.rhai")),
    (
        "minikube_profile",
        include_str!("../stdlib/minikube_profile.rhai"),
    ),
    ("versions", include_str!("../stdlib/versions.rhai")),
];

/// Engine limits. `RUNBOOK_MAX_OPERATIONS` raises or lowers the operation
/// budget (an endless loop ends with a clear error, not a hung job);
/// `RUNBOOK_MAX_CPU_SECONDS` bounds the CPU time the script itself may use
/// (time spent waiting in primitives does not count). The second bound
/// catches what counts few operations but costs much: each `a = [a]`
/// deep-copies an ever deeper value for one operation.
pub struct Limits {
    /// Operations a run may perform.
    pub max_operations: u64,
    /// CPU time the script thread may use.
    pub max_cpu: std::time::Duration,
}

impl Limits {
    /// The limits for this process.
    pub fn from_env() -> Limits {
        Limits {
            max_operations: std::env::var("RUNBOOK_MAX_OPERATIONS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(50_000_000),
            max_cpu: std::env::var("RUNBOOK_MAX_CPU_SECONDS")
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
                .filter(|d| !d.is_zero())
                .unwrap_or(std::time::Duration::from_secs(60)),
        }
    }
}

/// CPU time used by the calling thread.
fn thread_cpu() -> std::time::Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(std::time::Duration::from)
        .unwrap_or_default()
}

/// What `on_progress` returns when the script used up its CPU budget.
pub const CPU_BUDGET_MARK: &str = "runbook: cpu budget";

/// The project root of a playbook: the working directory when the
/// playbook lies inside it, else the playbook's own folder. Fixed, never
/// searched for: a `stdlib/` planted in a shared parent folder (a temp
/// folder, a home directory) must not override the embedded modules.
pub fn project_root(playbook: &Path) -> PathBuf {
    let folder = playbook
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let folder = std::fs::canonicalize(&folder).unwrap_or(folder);
    match std::env::current_dir().and_then(std::fs::canonicalize) {
        Ok(cwd) if folder.starts_with(&cwd) => cwd,
        _ => folder,
    }
}

/// Where imports are looked up, in order: the playbook's folder, then the
/// project root's `stdlib/` (see [`project_root`]).
pub fn import_dirs(playbook: &Path) -> Vec<PathBuf> {
    let folder = playbook
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut dirs = vec![folder];
    let stdlib = project_root(playbook).join("stdlib");
    if stdlib.is_dir() {
        dirs.push(stdlib);
    }
    dirs
}

// Playbooks and modules are read by the one bounded reader, with every
// other file (a FIFO or /dev/zero is refused before a byte is read).
pub use crate::fsread::{read_script, MAX_SCRIPT_BYTES, MAX_SCRIPT_LINES};

/// Resolves `import "name"`: files first, then the embedded stdlib.
pub struct Resolver {
    dirs: Vec<PathBuf>,
}

impl Resolver {
    /// A resolver for a playbook.
    pub fn new(playbook: &Path) -> Resolver {
        Resolver {
            dirs: import_dirs(playbook),
        }
    }

    /// The file or embedded source a module name resolves to. A module
    /// file must really lie inside its search folder: a symlink leading
    /// out of it is refused, as `..` is.
    pub fn lookup(&self, name: &str) -> Result<Option<(String, String)>, String> {
        for dir in &self.dirs {
            let p = dir.join(format!("{name}.rhai"));
            if !p.exists() {
                continue;
            }
            let real = std::fs::canonicalize(&p)
                .map_err(|e| format!("import \"{name}\": cannot resolve {}: {e}", p.display()))?;
            let root = std::fs::canonicalize(dir)
                .map_err(|e| format!("import \"{name}\": cannot resolve {}: {e}", dir.display()))?;
            if !real.starts_with(&root) {
                return Err(format!(
                    "import \"{name}\": {} is a symlink to {}, outside {}; modules must live inside the playbook's folder or the project's stdlib/",
                    p.display(),
                    real.display(),
                    dir.display()
                ));
            }
            let text = read_script(&p).map_err(|e| format!("import \"{name}\": {e}"))?;
            return Ok(Some((p.display().to_string(), text)));
        }
        Ok(EMBEDDED_STDLIB
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| (format!("<embedded stdlib>/{n}.rhai"), text.to_string())))
    }

    /// Like [`Resolver::lookup`], with a refused file counted as not found.
    pub fn find(&self, name: &str) -> Option<(String, String)> {
        self.lookup(name).ok().flatten()
    }

    /// Names that are available, for error hints.
    pub fn known(&self) -> Vec<String> {
        let mut names: Vec<String> = EMBEDDED_STDLIB.iter().map(|(n, _)| n.to_string()).collect();
        for dir in &self.dirs {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.extension().is_some_and(|x| x == "rhai") {
                        if let Some(s) = p.file_stem().and_then(|s| s.to_str()) {
                            names.push(s.to_string());
                        }
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

/// Refuse module names that could reach outside the search folders.
pub fn check_module_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('/')
        && !name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "import \"{name}\": a module is named by a plain relative name like \"akash\" or \"lib/util\" (no '..', no absolute path, no extension)"
        ))
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        check_module_name(path).map_err(|e| EvalAltResult::ErrorRuntime(e.into(), pos))?;
        let found = self
            .lookup(path)
            .map_err(|e| EvalAltResult::ErrorRuntime(e.into(), pos))?;
        let Some((origin, text)) = found else {
            return Err(EvalAltResult::ErrorModuleNotFound(
                format!(
                    "{path} (looked in {} and the embedded stdlib{})",
                    self.dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    crate::suggest::hint(path, self.known().iter().map(String::as_str))
                ),
                pos,
            )
            .into());
        };
        let ast = compile_module(engine, &origin, &text)
            .map_err(|e| EvalAltResult::ErrorInModule(origin.clone(), e.into(), pos))?;
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| EvalAltResult::ErrorInModule(origin, e, pos))?;
        Ok(module.into())
    }
}

/// A module's compiled AST, kept per process by source and text: a test
/// run imports the same modules run after run.
pub fn compile_module(
    engine: &Engine,
    origin: &str,
    text: &str,
) -> Result<rhai::AST, rhai::ParseError> {
    type Cache = parking_lot::Mutex<std::collections::HashMap<(String, String), rhai::AST>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (origin.to_string(), text.to_string());
    if let Some(ast) = cache.lock().get(&key) {
        return Ok(ast.clone());
    }
    let mut ast = engine.compile(text)?;
    ast.set_source(origin);
    cache.lock().insert(key, ast.clone());
    Ok(ast)
}

/// The constant `import "…"` paths of a script, with their positions.
pub fn imports(ast: &rhai::AST) -> Vec<(String, String, Position)> {
    let mut out = Vec::new();
    ast.walk(&mut |nodes: &[rhai::ASTNode]| {
        if let Some(rhai::ASTNode::Stmt(rhai::Stmt::Import(x, pos))) = nodes.last() {
            if let rhai::Expr::StringConstant(name, _) = &x.0 {
                out.push((name.to_string(), x.1.name.to_string(), *pos));
            }
        }
        true
    });
    out
}

/// Imports that will not resolve, as messages with positions: checked
/// before a run starts, so a missing module is a usage error (exit 2), not
/// a failure halfway through the playbook.
pub fn unresolved_imports(ast: &rhai::AST, resolver: &Resolver) -> Vec<(String, Position)> {
    imports(ast)
        .into_iter()
        .filter_map(|(name, _, pos)| {
            if let Err(e) = check_module_name(&name) {
                return Some((e, pos));
            }
            let found = match resolver.lookup(&name) {
                Ok(f) => f,
                Err(e) => return Some((e, pos)),
            };
            found.is_none().then(|| {
                (
                    format!(
                        "import \"{name}\": no such module in the playbook's folder, the project's stdlib/ or the embedded stdlib{}",
                        crate::suggest::hint(&name, resolver.known().iter().map(String::as_str))
                    ),
                    pos,
                )
            })
        })
        .collect()
}

/// The language's standard package, built once per process and shared:
/// `runbook test` builds several engines per test.
///
/// Built whole, every function registered up front. Rhai's lazy package
/// (`StandardPackage::new_lazy`) would save a run ~1.7 M instructions of
/// start-up, but it finds a function by scanning its manifests, and a
/// native function that calls back into the engine (`arr.contains(x)`
/// comparing each element, `${arr}` formatting each one) resolves with
/// empty caches every time: interpolating a 100-element array and map
/// went from 7.6 M to 48 M instructions, and `runbook test playbooks`
/// took 2.9x as long.
fn standard_package() -> &'static rhai::Shared<Module> {
    static STD: std::sync::OnceLock<rhai::Shared<Module>> = std::sync::OnceLock::new();
    STD.get_or_init(|| {
        use rhai::packages::{Package, StandardPackage};
        StandardPackage::new().as_shared_module()
    })
}

/// Build the standard package now rather than on first use: a run does
/// it on its playbook thread while the main thread reads, compiles and
/// checks the playbook, none of which needs it (`crate::run`).
pub fn build_standard_package() {
    standard_package();
}

/// `Engine::new()` with the language's standard package (see
/// `standard_package`).
pub fn new_engine() -> Engine {
    let mut engine = raw_engine();
    engine.register_global_module(standard_package().clone());
    engine
}

/// An engine without packages.
fn raw_engine() -> Engine {
    let mut engine = Engine::new_raw();
    engine.set_max_strings_interned(1024);
    engine
}

/// The sandboxed engine without primitives: limits, hooks and imports.
/// The layer above adds the bindings (`primitives::engine`); `runbook
/// test` and `--record` put their own stand-ins for the primitives on it.
pub fn base(ctx: &Arc<Ctx>) -> Engine {
    with_standard_package(bare(ctx))
}

/// [`base`] before the standard package: the layer above registers the
/// primitives first, then calls [`with_standard_package`].
pub fn bare(ctx: &Arc<Ctx>) -> Engine {
    sandbox(raw_engine(), ctx)
}

/// Add the language's standard package (built on first use).
pub fn with_standard_package(mut engine: Engine) -> Engine {
    engine.register_global_module(standard_package().clone());
    engine
}

/// Limits, hooks and imports on `engine`.
fn sandbox(mut engine: Engine, ctx: &Arc<Ctx>) -> Engine {
    let limits = Limits::from_env();
    crate::memory::limit(&mut engine);
    engine
        .set_max_operations(limits.max_operations)
        .set_fail_on_invalid_map_property(true);
    // No eval: a playbook's code is what `check` sees.
    engine.disable_symbol("eval");
    let c = ctx.clone();
    let max_cpu = limits.max_cpu;
    // The script thread's CPU time when it first ran (a test runner may
    // run several engines on one thread).
    let cpu_base = std::sync::atomic::AtomicU64::new(u64::MAX);
    engine.on_progress(move |ops| {
        if let Some(over) = crate::memory::check() {
            return Some(over);
        }
        if ops % 256 == 0 {
            let now = thread_cpu().as_nanos() as u64;
            let _ = cpu_base.compare_exchange(
                u64::MAX,
                now,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            );
            let used = now.saturating_sub(cpu_base.load(std::sync::atomic::Ordering::Relaxed));
            if used > max_cpu.as_nanos() as u64 {
                return Some(CPU_BUDGET_MARK.into());
            }
        }
        if crate::out::pipe_closed() {
            // Nobody reads stdout any more: stop as SIGPIPE would.
            c.cancel(crate::context::CancelReason::Signal("SIGPIPE"));
        }
        if c.is_cancelled() {
            Some("cancelled".into())
        } else {
            None
        }
    });
    // print() is the playbook's own output: stdout, through the one writer.
    engine.on_print(crate::out::println);
    engine.on_debug(|s, src, pos| {
        tracing::debug!(
            "{}{}: {s}",
            src.unwrap_or(""),
            if pos.is_none() {
                String::new()
            } else {
                format!(":{pos}")
            }
        );
    });
    engine.set_module_resolver(Resolver::new(&ctx.settings.playbook));
    engine
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run compiles and lints its playbook before the standard package
    /// joins the engine (`crate::run`): that is only the same when the
    /// package adds no constant the optimizer could fold in, and is marked
    /// standard (the optimizer never asks it whether it overrides a
    /// built-in operator).
    #[test]
    fn compiling_without_the_standard_package_is_the_same() {
        let std = standard_package();
        assert!(std.is_standard_lib());
        assert_eq!(std.iter_var().count(), 0);
        let source = "let a = 1 + 2; let b = \"x\" + 1; let c = [1] + [2]; let d = 2.0 * 3;\n\
                      const E = 7; let f = E * 2 + a; let g = `${a}` == \"3\"; a.to_string()";
        let with = new_engine().compile(source).unwrap();
        let without = raw_engine().compile(source).unwrap();
        assert_eq!(
            format!("{:?}", with.statements()),
            format!("{:?}", without.statements())
        );
    }

    #[test]
    fn a_caught_usage_error_reads_as_its_message() {
        let mut engine = new_engine();
        engine.register_fn("bad", || -> Result<(), Box<rhai::EvalAltResult>> {
            Err(crate::error::PrimError::usage("bad: option 'x' is unknown").into())
        });
        let got: String = engine
            .eval(r#"let r = ""; try { bad(); } catch (e) { r = `${e}|${e.contains("unknown")}`; } r"#)
            .unwrap();
        assert_eq!(got, "bad: option 'x' is unknown|true");
    }

    /// The standard package is registered whole: a lazy one makes every
    /// native callback (`arr.contains`, formatting an array) scan it.
    #[test]
    fn the_standard_package_is_not_lazy() {
        let engine = new_engine();
        assert!(!standard_package().has_lazy_functions());
        let n: i64 = engine
            .eval("let a = []; for i in 0..50 { a.push(`${i}`); } let n = 0; for i in 0..50 { if a.contains(`${i}`) { n += 1; } } n")
            .unwrap();
        assert_eq!(n, 50);
    }

    #[test]
    fn module_names_stay_inside() {
        assert!(check_module_name("akash").is_ok());
        assert!(check_module_name("lib/util").is_ok());
        for bad in ["../x", "/etc/passwd", "a/../b", "", "x.rhai", "a//b"] {
            assert!(check_module_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn embedded_stdlib_compiles() {
        let mut engine = Engine::new();
        engine.set_max_expr_depths(64, 64);
        for (name, text) in EMBEDDED_STDLIB {
            if let Err(e) = engine.compile(text) {
                panic!("stdlib {name} does not compile: {e}");
            }
        }
    }
}
