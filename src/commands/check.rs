//! `runbook check PATH…`: compile and lint playbooks without running
//! anything, printing each finding with its file, line and column. The
//! lints themselves are `crate::check`'s, the ones a run makes too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::check::{Finding, Lint};
use crate::context::{Ctx, Settings};
use crate::engine::Resolver;
use crate::error::Error;

/// `runbook check PATH…`: exit 2 when anything was found.
pub fn check(paths: &[PathBuf]) -> Result<(), Error> {
    let rt = super::runtime(0)?;
    let n = run(paths, rt.handle()).map_err(Error::Usage)?;
    if n > 0 {
        return Err(Error::Usage(format!("{n} problem(s) found")));
    }
    Ok(())
}

/// Every `.rhai` file under the given paths (folders are searched recursively).
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(dir) = stack.pop() {
                let rd = std::fs::read_dir(&dir)
                    .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
                for e in rd.flatten() {
                    let path = e.path();
                    // No symlinked folders: a link loop would never end,
                    // and a link out of the tree is not the project's.
                    let Ok(kind) = e.file_type() else { continue };
                    if kind.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|x| x == "rhai") && path.is_file() {
                        files.push(path);
                    }
                }
            }
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    files.sort();
    Ok(files)
}

/// What `check` found in one file.
#[derive(Debug, Default)]
pub struct Checked {
    /// A library module (see [`crate::check::is_module`]) rather than a playbook: said
    /// so in the listing, since running it would do nothing.
    pub module: bool,
    /// The problems, each with its file and place.
    pub findings: Vec<Finding>,
    /// What works but will bite later (a parameter `runbook job` cannot
    /// pass): printed, not counted.
    pub warnings: Vec<Finding>,
}

/// Lint one playbook (or module) file.
pub fn check_file(path: &Path, rt: &tokio::runtime::Handle) -> Checked {
    let findings = |found: Vec<Finding>| Checked {
        findings: found,
        ..Checked::default()
    };
    let finding = |pos: Option<(usize, usize)>, lint: Lint| Finding {
        path: path.to_path_buf(),
        pos,
        lint,
    };
    let source = match crate::engine::read_script(path) {
        Ok(s) => s,
        Err(e) => return findings(vec![finding(None, Lint::Unreadable(e.to_string()))]),
    };
    let mut settings = Settings::new(path, crate::logging::LogFormat::Pretty);
    settings.dry_run = true;
    let ctx = Ctx::new(settings, rt.clone());
    // A test file runs on the test engine (playbook(), assert_eq, …).
    let is_test = path.to_string_lossy().ends_with(".test.rhai");
    let engine = if is_test {
        let env = crate::testing::harness::FileEnv {
            file: path.to_path_buf(),
            update_snapshots: false,
            rt: rt.clone(),
            primitives: Vec::new(),
            print_to_stderr: false,
        };
        crate::testing::harness::engine(Arc::new(env), Arc::default())
    } else {
        crate::primitives::engine(&ctx)
    };
    let ast = match engine.compile(&source) {
        Ok(a) => a,
        Err(e) => {
            let r = crate::report::parse_error(&e, path, &source);
            return findings(vec![finding(r.position, Lint::DoesNotCompile(r.message))]);
        }
    };
    let mut out = Vec::new();
    let module = !is_test && crate::check::is_module(&ast);
    // A module's shared parameter specs are checked where they are written.
    if module {
        for e in crate::params::fragment_errors(&ast) {
            out.push(finding(None, Lint::Params(e)));
        }
    }
    // Every PARAMS mistake at once; the parameters stay declared.
    let (decl, errors) = crate::params::declaration_all(&ast, &source, &Resolver::new(path));
    for e in errors {
        out.push(finding(None, Lint::Params(e)));
    }
    let warnings = decl
        .params
        .iter()
        .filter_map(|p| super::job::reserved_param(&p.name))
        .map(|w| finding(None, Lint::JobReserved(w)))
        .collect();
    for (pos, lint) in crate::check::lints(&engine, &ctx, &ast, &decl, &source) {
        out.push(finding(pos, lint));
    }
    Checked {
        module,
        findings: out,
        warnings,
    }
}

/// `runbook check`: lint every playbook under `paths`, print findings.
/// Returns the number of findings.
pub fn run(paths: &[PathBuf], rt: &tokio::runtime::Handle) -> Result<usize, String> {
    let files = collect(paths)?;
    if files.is_empty() {
        return Err("no .rhai files found".into());
    }
    let mut count = 0;
    for f in &files {
        let checked = check_file(f, rt);
        if checked.findings.is_empty() {
            let kind = if checked.module { " (module)" } else { "" };
            crate::out::println(&format!("ok    {}{kind}", f.display()));
        }
        for w in &checked.warnings {
            crate::out::println(&format!("warning {w}"));
        }
        for finding in &checked.findings {
            crate::out::println(&format!("error {finding}"));
        }
        count += checked.findings.len();
    }
    Ok(count)
}
