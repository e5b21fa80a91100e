//! Turning Rhai errors into messages a user can act on: the playbook's
//! file, line and column, the source line with a caret, and the chain of
//! calls that led there. Under GitHub Actions also `::error file=…::`.

use std::path::Path;

use rhai::{EvalAltResult, ParseError, Position};

use crate::github::{escape_data, escape_property};

/// A rendered error.
pub struct Report {
    /// The message, without location.
    pub message: String,
    /// Where in the playbook (line, column), if known.
    pub position: Option<(usize, usize)>,
    /// The multi-line text for a terminal.
    pub text: String,
}

/// The source line of `pos` with a caret under its column (empty when
/// the position names no line of `source`).
pub fn caret(source: &str, pos: Position) -> String {
    let (Some(line), col) = (pos.line(), pos.position().unwrap_or(1)) else {
        return String::new();
    };
    let Some(src_line) = source.lines().nth(line - 1) else {
        return String::new();
    };
    let num = line.to_string();
    let pad = " ".repeat(num.len());
    let indent: String = src_line
        .chars()
        .take(col.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("{pad} |\n{num} | {src_line}\n{pad} | {indent}^\n")
}

/// The innermost message of an error, without Rhai's position suffix.
fn leaf_message(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorRuntime(v, _) => match crate::error::usage_message(v) {
            Some(u) => u,
            None => match v.read_lock::<crate::error::BusyError>() {
                Some(b) => b.0.clone(),
                None => match v.read_lock::<crate::error::StubFailure>() {
                    Some(f) => f.to_string(),
                    None => v.to_string(),
                },
            },
        },
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "the playbook ran more than {} operations (an endless loop?); if it really needs more, raise RUNBOOK_MAX_OPERATIONS",
            crate::engine::Limits::from_env().max_operations
        ),
        EvalAltResult::ErrorStackOverflow(_) => "calls nest too deep (endless recursion?)".into(),
        EvalAltResult::ErrorTerminated(v, _) if v.to_string() == crate::engine::CPU_BUDGET_MARK => format!(
            "the playbook used more than {}s of CPU time itself (an ever-growing copy such as `a = [a]` in a loop, or an endless computation?); if it really needs more, raise RUNBOOK_MAX_CPU_SECONDS",
            crate::engine::Limits::from_env().max_cpu.as_secs_f64()
        ),
        EvalAltResult::ErrorTerminated(v, _) if v.to_string() == crate::memory::MEMORY_MARK => {
            crate::memory::message()
        }
        EvalAltResult::ErrorTerminated(..) => "stopped".into(),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => match crate::pitfalls::not_found_hint(sig) {
            Some(hint) => format!("there is no function {sig}: {hint}"),
            None => {
                let name = sig.split('(').next().unwrap_or(sig).trim();
                format!(
                    "there is no function {sig}; run `runbook doc` for the primitives, or `runbook doc {name}` for one"
                )
            }
        },
        EvalAltResult::ErrorModuleNotFound(m, _) => format!("cannot find the module {m}"),
        EvalAltResult::ErrorPropertyNotFound(p, _) => format!(
            "no property '{p}' here (for `args.{p}`: declare it in PARAMS; for a map: check with `\"{p}\" in map`)"
        ),
        other => {
            let s = other.to_string();
            match s.rfind(" (line ") {
                Some(i) if s.ends_with(')') => s[..i].to_string(),
                _ => s,
            }
        }
    }
}

/// Whether the innermost error is a `fail_usage` (exit 2).
pub fn is_usage(err: &EvalAltResult) -> bool {
    crate::error::thrown_value(err).is_some_and(|v| crate::error::usage_message(v).is_some())
}

/// The text of a module (or the playbook) by its source name, for carets.
fn source_of(src: &str, path: &Path, source: &str) -> Option<String> {
    if src.is_empty() || Path::new(src) == path {
        return Some(source.to_string());
    }
    if let Some(name) = src
        .strip_prefix("<embedded stdlib>/")
        .and_then(|n| n.strip_suffix(".rhai"))
    {
        return crate::engine::EMBEDDED_STDLIB
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.to_string());
    }
    crate::fsread::read_script(Path::new(src)).ok()
}

/// Where an error without a position most likely happened: the first call
/// of the function its message names (Rhai leaves some errors, such as a
/// data race, without a position).
fn locate_call(source: &str, err: &EvalAltResult) -> Position {
    let text = err.to_string();
    let name = match err {
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            sig.split(['(', ' ']).next().unwrap_or("").to_string()
        }
        _ => match text.split_once("function '") {
            Some((_, rest)) => rest.split('\'').next().unwrap_or("").to_string(),
            None => return Position::NONE,
        },
    };
    if name.is_empty() {
        return Position::NONE;
    }
    let mut engine = crate::engine::new_engine();
    engine.set_max_expr_depths(64, 64);
    let Ok(ast) = engine.compile(source) else {
        return Position::NONE;
    };
    let mut found = Position::NONE;
    ast.walk(&mut |nodes: &[rhai::ASTNode]| {
        if found.is_none() {
            match nodes.last() {
                Some(rhai::ASTNode::Expr(rhai::Expr::FnCall(f, pos)))
                | Some(rhai::ASTNode::Expr(rhai::Expr::MethodCall(f, pos)))
                | Some(rhai::ASTNode::Stmt(rhai::Stmt::FnCall(f, pos)))
                    if f.name.as_str() == name =>
                {
                    found = *pos;
                }
                _ => {}
            }
        }
        true
    });
    found
}

/// What to write instead, for errors whose Rhai message does not say
/// (the pitfalls of `crate::pitfalls`). `in_function`: the error happened
/// inside a script function, which sees no variable from outside it.
fn explain(err: &EvalAltResult, in_function: bool) -> Option<String> {
    match err {
        EvalAltResult::ErrorDataRace(..) => Some(
            "a closure here captures a variable that the same call also uses (e.g. `m` in `m.keys().filter(|k| m[k])`); Rhai shares a captured variable and cannot lend it twice at once. Read it into its own variable first: `let keys = m.keys(); keys.filter(|k| m[k])`".into(),
        ),
        EvalAltResult::ErrorNonPureMethodCallOnConstant(name, _) => Some(format!(
            "`{name}` changes the value it is called on (and returns nothing), and `args` or a `const` cannot change: copy the value into a `let` first, then use the copy: `let t = args.image; t.{name}(…);`"
        )),
        EvalAltResult::ErrorVariableNotFound(name, _) if in_function => Some(format!(
            "a function sees only its own parameters and variables, not the playbook's: pass `{name}` as an argument; a top-level `const {name}` is readable as `global::{name}`"
        )),
        EvalAltResult::ErrorVariableNotFound(name, _)
            if matches!(name.as_str(), "None" | "undefined" | "NULL" | "Nil") =>
        {
            Some("Rhai's nothing is `()`: `let x = ();`, and `if x == () { … }` to test for it".into())
        }
        EvalAltResult::ErrorVariableNotFound(name, _) if matches!(name.as_str(), "True" | "False") => {
            Some(format!("Rhai writes `{}`", name.to_lowercase()))
        }
        EvalAltResult::ErrorDotExpr(msg, _) if msg.ends_with("for type '()'") => Some(
            "the value before the `.` is `()` (nothing): a map key that is not there (`\"key\" in m` checks, `m.keys()` lists them), a function without a result, or a method that works in place".into(),
        ),
        EvalAltResult::ErrorFor(..) => Some(
            "`for` walks arrays, strings and ranges (`0..n`); for a map: `for k in m.keys() { let v = m[k]; … }`".into(),
        ),
        _ => None,
    }
}

/// The message of an innermost error with its hint, if one applies.
/// `in_function`: it happened inside a script function.
pub fn message_of(err: &EvalAltResult, in_function: bool) -> String {
    let message = leaf_message(err);
    match explain(err, in_function) {
        Some(why) => format!("{message}: {why}"),
        None => message,
    }
}

/// A test's stub closure that failed other than by `throw`, located in the
/// test file (`file`, its text `source`) for [`eval_error`] to show.
pub fn stub_failure(err: &EvalAltResult, file: &Path, source: &str) -> crate::error::StubFailure {
    let r = eval_error(err, file, source);
    // The closure itself is an anonymous function: its frame says nothing.
    let head = format!("error: {}\n", r.message);
    let detail: String = r
        .text
        .strip_prefix(&head)
        .unwrap_or(&r.text)
        .lines()
        .filter(|l| !l.starts_with("  = in anon$"))
        .map(|l| format!("{l}\n"))
        .collect();
    let at = detail
        .lines()
        .find_map(|l| l.strip_prefix("  --> "))
        .unwrap_or_default()
        .to_string();
    crate::error::StubFailure {
        stub: String::new(),
        message: r.message,
        at,
        detail,
    }
}

/// Render a runtime error of the playbook at `path`: the innermost
/// location first (a module's file, line and caret), then the calls that
/// led there, innermost first.
pub fn eval_error(err: &EvalAltResult, path: &Path, source: &str) -> Report {
    // (what, the file it is in, the call's position in the caller's file)
    let mut frames: Vec<(String, String, Position)> = Vec::new();
    let mut cur = err;
    let top_pos = err.position();
    // The file the current level's positions are in.
    let mut file = String::new();
    loop {
        match cur {
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                frames.push((format!("{name}()"), file.clone(), *pos));
                file = src.clone();
                cur = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                frames.push((format!("module {name}"), file.clone(), *pos));
                file = name.clone();
                cur = inner;
            }
            _ => break,
        }
    }
    let in_function = frames.iter().any(|(what, ..)| what.ends_with("()"));
    let message = message_of(cur, in_function);
    let stub = match cur {
        EvalAltResult::ErrorRuntime(v, _) => v
            .read_lock::<crate::error::StubFailure>()
            .map(|f| f.clone()),
        _ => None,
    };
    let shown = |f: &str| {
        if f.is_empty() {
            path.display().to_string()
        } else {
            f.to_string()
        }
    };
    // The innermost position; without one, the innermost call site; at the
    // top level without any, the call the message names.
    let (mut at_file, mut at_pos) = (file.clone(), cur.position());
    if at_pos.is_none() {
        if let Some((_, f, p)) = frames.iter().rev().find(|(_, _, p)| !p.is_none()) {
            at_file = f.clone();
            at_pos = *p;
        }
    }
    if at_pos.is_none() && at_file.is_empty() {
        at_pos = locate_call(source, cur);
    }
    let position = if top_pos.is_none() {
        (at_file.is_empty())
            .then(|| at_pos.line().map(|l| (l, at_pos.position().unwrap_or(1))))
            .flatten()
    } else {
        top_pos.line().map(|l| (l, top_pos.position().unwrap_or(1)))
    };
    let mut text = format!("error: {message}\n");
    // A failed stub: the test file's line first, then the playbook's call.
    if let Some(f) = &stub {
        text.push_str(&f.detail);
    }
    if let Some(l) = at_pos.line() {
        let c = at_pos.position().unwrap_or(1);
        match &stub {
            Some(f) => text.push_str(&format!(
                "  = in the stub of {}, called from {}:{l}:{c}\n",
                f.stub,
                shown(&at_file)
            )),
            None => {
                text.push_str(&format!("  --> {}:{l}:{c}\n", shown(&at_file)));
                if let Some(src) = source_of(&at_file, path, source) {
                    text.push_str(&caret(&src, at_pos));
                }
            }
        }
    }
    for (what, f, pos) in frames.iter().rev() {
        text.push_str(&format!(
            "  = in {what}, called from {}:{}\n",
            shown(f),
            fmt_pos(*pos)
        ));
    }
    Report {
        message,
        position,
        text,
    }
}

fn fmt_pos(p: Position) -> String {
    match (p.line(), p.position()) {
        (Some(l), Some(c)) => format!("{l}:{c}"),
        (Some(l), None) => l.to_string(),
        _ => "?".into(),
    }
}

/// Render a compile error of the playbook at `path`.
pub fn parse_error(err: &ParseError, path: &Path, source: &str) -> Report {
    let pos = err.position();
    let mut message = err.err_type().to_string();
    if let Some(hint) = crate::pitfalls::parse_hint(&message) {
        message.push_str(&hint);
    }
    let position = pos.line().map(|l| (l, pos.position().unwrap_or(1)));
    let mut text = format!("error: the playbook does not compile: {message}\n");
    if let Some((l, c)) = position {
        text.push_str(&format!("  --> {}:{l}:{c}\n", path.display()));
        text.push_str(&caret(source, pos));
    }
    Report {
        message,
        position,
        text,
    }
}

impl Report {
    /// The `::error file=…,line=…,col=…::message` line for GitHub Actions.
    pub fn github_line(&self, path: &Path) -> String {
        let file = escape_property(&path.display().to_string());
        match self.position {
            Some((l, c)) => format!(
                "::error file={file},line={l},col={c}::{}\n",
                escape_data(&self.message)
            ),
            None => format!("::error file={file}::{}\n", escape_data(&self.message)),
        }
    }
}

/// The message of a primitive's error, without position.
pub fn error_text(e: &rhai::EvalAltResult) -> String {
    match e {
        rhai::EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        other => {
            let s = other.to_string();
            // Rhai appends " (line L, position P)"; the call site is elsewhere.
            match s.rfind(" (line ") {
                Some(i) if s.ends_with(')') => s[..i].to_string(),
                _ => s,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_the_line() {
        let src = "let a = 1;\nfail(\"boom: x\");\n";
        let engine = rhai::Engine::new();
        let mut engine = engine;
        engine.register_fn("fail", |m: &str| -> Result<(), Box<EvalAltResult>> {
            Err(m.into())
        });
        let err = engine.run(src).unwrap_err();
        let r = eval_error(&err, Path::new("pb.rhai"), src);
        assert_eq!(r.message, "boom: x");
        assert!(r.text.contains("--> pb.rhai:2:1"), "{}", r.text);
        assert!(
            r.text.contains("2 | fail(\"boom: x\");\n  | ^"),
            "{}",
            r.text
        );
        assert_eq!(
            r.github_line(Path::new("pb.rhai")),
            "::error file=pb.rhai,line=2,col=1::boom: x\n"
        );
    }

    #[test]
    fn compile_errors_show_the_source() {
        let src = "let a = ;\n";
        let err = rhai::Engine::new().compile(src).unwrap_err();
        let r = parse_error(&err, Path::new("pb.rhai"), src);
        assert!(r.text.contains("does not compile"), "{}", r.text);
        assert!(r.text.contains("1 | let a = ;"), "{}", r.text);
    }

    #[test]
    fn default_in_params_suggests_default_value() {
        let src = "const PARAMS = #{ tag: #{ default: \"x\" } };\n";
        let err = rhai::Engine::new().compile(src).unwrap_err();
        let r = parse_error(&err, Path::new("pb.rhai"), src);
        assert!(r.message.contains("write `default_value: …`"), "{}", r.text);
    }
}
