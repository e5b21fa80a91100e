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

fn caret(source: &str, pos: Position) -> String {
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
        EvalAltResult::ErrorRuntime(v, _) => match v.read_lock::<crate::primitives::settings::UsageError>() {
            Some(u) => u.0.clone(),
            None => match v.read_lock::<crate::lock::BusyError>() {
                Some(b) => b.0.clone(),
                None => v.to_string(),
            },
        },
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "the playbook ran more than {} operations (an endless loop?); if it really needs more, raise RUNBOOK_MAX_OPERATIONS",
            crate::engine::Limits::from_env().max_operations
        ),
        EvalAltResult::ErrorStackOverflow(_) => "calls nest too deep (endless recursion?)".into(),
        EvalAltResult::ErrorTerminated(..) => "stopped".into(),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            let name = sig.split('(').next().unwrap_or(sig).trim();
            format!(
                "there is no function {sig}; run `runbook doc` for the primitives, or `runbook doc {name}` for one"
            )
        }
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
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => is_usage(inner),
        EvalAltResult::ErrorRuntime(v, _) => v.is::<crate::primitives::settings::UsageError>(),
        _ => false,
    }
}

/// Render a runtime error of the playbook at `path`.
pub fn eval_error(err: &EvalAltResult, path: &Path, source: &str) -> Report {
    let mut frames = Vec::new();
    let mut cur = err;
    let top_pos = err.position();
    loop {
        match cur {
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                frames.push(format!(
                    "in call to {name}(){}",
                    if src.is_empty() {
                        format!(" at {}", fmt_pos(*pos))
                    } else {
                        format!(" in {src} at {}", fmt_pos(*pos))
                    }
                ));
                cur = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                frames.push(format!("in module {name} (imported at {})", fmt_pos(*pos)));
                cur = inner;
            }
            _ => break,
        }
    }
    let message = leaf_message(cur);
    let position = top_pos.line().map(|l| (l, top_pos.position().unwrap_or(1)));
    let mut text = format!("error: {message}\n");
    if let Some((l, c)) = position {
        text.push_str(&format!("  --> {}:{l}:{c}\n", path.display()));
        text.push_str(&caret(source, top_pos));
    }
    for f in frames {
        text.push_str(&format!("  = {f}\n"));
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
    let message = err.err_type().to_string();
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
}
