//! `runbook test [PATH…]`: find `*.test.rhai` files, run every `test_*`
//! function in each in a fresh engine, print one line per test and the
//! closing `N passed, N failed` line (or a JUnit XML report).
//!
//! A test drives a playbook through `playbook(path, params)` (see
//! [`harness`]); the playbook runs hermetically on stand-ins for its
//! primitives (see [`sandbox`] and [`proxy`]).

pub mod harness;
pub mod junit;
pub mod proxy;
pub mod record;
pub mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rhai::{EvalAltResult, Position, Scope};

use crate::error::Error;

/// What `runbook test` was asked.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Files or folders (default: the current folder).
    pub paths: Vec<PathBuf>,
    /// Only tests whose `file::name` contains this.
    pub filter: Option<String>,
    /// A JUnit XML report on stdout instead of lines.
    pub junit: bool,
    /// Rewrite snapshots instead of comparing.
    pub update_snapshots: bool,
}

/// One test's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The test file.
    pub file: PathBuf,
    /// The function's name.
    pub name: String,
    /// How long it took.
    pub elapsed: Duration,
    /// The failure, with location and caret.
    pub failure: Option<String>,
}

/// `*.test.rhai` files below `paths`, sorted.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
        } else if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                let rd = std::fs::read_dir(&d)
                    .map_err(|e| format!("cannot read {}: {e}", d.display()))?;
                for e in rd.flatten() {
                    let q = e.path();
                    let name = e.file_name().to_string_lossy().to_string();
                    if q.is_dir() {
                        // Build output and VCS data hold no tests.
                        if !matches!(name.as_str(), "target" | ".git" | "node_modules") {
                            stack.push(q);
                        }
                    } else if name.ends_with(".test.rhai") {
                        out.push(q);
                    }
                }
            }
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The innermost position of an error and the message at that level.
fn innermost(err: &EvalAltResult) -> (Position, String) {
    let mut cur = err;
    let mut pos = err.position();
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, p) = cur {
        if !p.is_none() {
            pos = *p;
        }
        cur = inner;
    }
    if !cur.position().is_none() {
        pos = cur.position();
    }
    // Test functions see no variable from outside them, as any function.
    (pos, crate::report::message_of(cur, true))
}

/// A failure as text: message, `--> file:line:col` and the line with a caret.
pub fn failure_text(err: &EvalAltResult, file: &Path, source: &str) -> String {
    let (pos, msg) = innermost(err);
    let mut s = format!("{msg}\n");
    if let Some(line) = pos.line() {
        let col = pos.position().unwrap_or(1);
        s.push_str(&format!("  --> {}:{line}:{col}\n", file.display()));
        s.push_str(&crate::report::caret(source, pos));
    }
    s
}

/// Run the tests of one file. `Err` is a compile error (exit 2).
fn run_file(
    file: &Path,
    opts: &Options,
    rt: &tokio::runtime::Handle,
    primitives: &[String],
    report: &mut dyn FnMut(&Outcome),
) -> Result<Vec<Outcome>, String> {
    // A FIFO or a symlink to /dev/zero named `*.test.rhai` must neither
    // hang nor fill memory: a regular file, capped like a data file.
    let source = crate::fsread::read_text(file, crate::fsread::FILE_CAP)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let env = Arc::new(harness::FileEnv {
        file: file.to_path_buf(),
        update_snapshots: opts.update_snapshots,
        rt: rt.clone(),
        primitives: primitives.to_vec(),
        print_to_stderr: opts.junit,
    });
    let probe = harness::engine(env.clone(), Arc::new(OnceLock::new()));
    let ast = Arc::new(probe.compile(&source).map_err(|e| {
        crate::report::parse_error(&e, file, &source).text.replace(
            "the playbook does not compile",
            "the test file does not compile",
        )
    })?);
    let mut names: Vec<String> = ast
        .iter_functions()
        .filter(|f| f.name.starts_with("test_") && f.params.is_empty())
        .map(|f| f.name.to_string())
        .collect();
    names.sort();
    if names.is_empty() {
        // Otherwise a file written in another framework's style (`test("x",
        // || …)`, `fn test_x(t)`) passes silently: "0 passed, 0 failed".
        crate::out::eprintln(&format!(
            "warning: {} has no test: a test is a top-level `fn test_…()` with no parameters (README: Testing a playbook); nothing in it was run",
            file.display()
        ));
    }
    let mut out = Vec::new();
    for name in names {
        let id = format!("{}::{name}", file.display());
        if opts
            .filter
            .as_ref()
            .is_some_and(|f| !id.contains(f.as_str()))
        {
            continue;
        }
        let me = Arc::new(OnceLock::new());
        let engine = Arc::new(harness::engine(env.clone(), me.clone()));
        let _ = me.set((Arc::downgrade(&engine), ast.clone()));
        let started = Instant::now();
        let mut scope = Scope::new();
        let r = engine.call_fn_with_options::<rhai::Dynamic>(
            rhai::CallFnOptions::new().eval_ast(true),
            &mut scope,
            &ast,
            &name,
            (),
        );
        let outcome = Outcome {
            file: file.to_path_buf(),
            name,
            elapsed: started.elapsed(),
            failure: r.err().map(|e| failure_text(&e, file, &source)),
        };
        report(&outcome);
        out.push(outcome);
    }
    Ok(out)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// One test's line (and its failure, indented) in the text format.
fn print_line(o: &Outcome) {
    let head = |status: &str| {
        format!(
            "{status} {}::{} ({})",
            o.file.display(),
            o.name,
            ms(o.elapsed)
        )
    };
    match &o.failure {
        None => crate::out::println(&head("ok  ")),
        Some(f) => {
            crate::out::println(&head("FAIL"));
            for l in f.lines() {
                crate::out::println(&format!("     {l}"));
            }
        }
    }
}

/// The primitives' names, for did-you-mean on `t.stub("nmae", …)`.
fn primitive_names(rt: &tokio::runtime::Handle) -> Vec<String> {
    let ctx = crate::context::Ctx::new(
        crate::context::Settings::new(Path::new("test.rhai"), crate::logging::LogFormat::Json),
        rt.clone(),
    );
    let mut names: Vec<String> = proxy::signatures(&ctx)
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    names.dedup();
    names
}

/// `runbook test`: exit 0 when every test passed, 1 when any failed, 2 on
/// usage and compile errors.
pub fn main(opts: Options) -> Result<(), Error> {
    let paths = if opts.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        opts.paths.clone()
    };
    let files = discover(&paths).map_err(Error::Usage)?;
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "no *.test.rhai file in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // Built here, not through commands::runtime: commands imports testing.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?;
    let primitives = primitive_names(rt.handle());
    let handle = rt.handle().clone();
    let junit = opts.junit;
    let filtered = opts.filter.is_some();
    // Deep scripts need a deeper stack than the main thread's.
    let worker = std::thread::Builder::new()
        .name("tests".into())
        .stack_size(64 * 1024 * 1024)
        .spawn(move || {
            let started = Instant::now();
            let mut all = Vec::new();
            let mut compile_errors = Vec::new();
            let mut print = |o: &Outcome| {
                if !junit {
                    print_line(o)
                }
            };
            for f in &files {
                match run_file(f, &opts, &handle, &primitives, &mut print) {
                    Ok(o) => all.extend(o),
                    Err(e) => compile_errors.push(e),
                }
            }
            (all, compile_errors, started.elapsed())
        })
        .map_err(|e| Error::Failed(format!("cannot start the test thread: {e}")))?;
    let (all, compile_errors, elapsed) = worker
        .join()
        .map_err(|_| Error::Failed("the test thread panicked (an internal error)".into()))?;
    let failed = all.iter().filter(|o| o.failure.is_some()).count();
    let passed = all.len() - failed;
    if junit {
        crate::out::document(crate::out::Stream::Stdout, &junit::render(&all, elapsed));
    }
    for e in &compile_errors {
        crate::out::eprintln(e.trim_end());
    }
    let line = format!("{passed} passed, {failed} failed");
    if junit {
        crate::out::eprintln(&format!("{line} ({})", ms(elapsed)));
    } else {
        crate::out::println(&line);
    }
    if !compile_errors.is_empty() {
        return Err(Error::Usage(format!(
            "{} test file(s) do not compile",
            compile_errors.len()
        )));
    }
    if all.is_empty() && filtered {
        return Err(Error::Usage("no test matches --filter".into()));
    }
    if failed > 0 {
        // Each failure and the count are on the screen already.
        return Err(Error::Failed(format!("{failed} test(s) failed")).shown());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_finds_test_files_only_and_skips_build_output() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "a.test.rhai",
            "sub/b.test.rhai",
            "pb.rhai",
            "target/c.test.rhai",
            ".git/d.test.rhai",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let found = discover(&[root.to_path_buf()]).unwrap();
        let rel: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(rel, ["a.test.rhai", "sub/b.test.rhai"]);
        assert!(discover(&[root.join("nope")])
            .unwrap_err()
            .contains("no such file"));
    }

    #[test]
    fn failures_point_at_the_innermost_line() {
        let src = "fn helper() {\n    throw \"boom\";\n}\nfn test_x() {\n    helper();\n}\n";
        let engine = crate::engine::new_engine();
        let ast = engine.compile(src).unwrap();
        let err = engine
            .call_fn::<rhai::Dynamic>(&mut Scope::new(), &ast, "test_x", ())
            .unwrap_err();
        let text = failure_text(&err, Path::new("t.test.rhai"), src);
        assert!(text.starts_with("boom\n  --> t.test.rhai:2:5\n"), "{text}");
        assert!(
            text.contains("2 |     throw \"boom\";\n  |     ^"),
            "{text}"
        );
    }
}
