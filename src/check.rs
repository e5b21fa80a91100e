//! The lints of `runbook check PATH…` (the command is
//! `commands::check`), which a run also makes before its first primitive:
//! unknown functions, undeclared parameters, missing imports and
//! malformed `PARAMS`, with the file, line and column of each finding.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{ASTNode, Engine, Expr, Position, Stmt, AST};

use crate::context::Ctx;
use crate::engine::Resolver;

/// One problem found in a playbook.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The file.
    pub path: PathBuf,
    /// Line and column, when known.
    pub pos: Option<(usize, usize)>,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pos {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Functions the language itself provides by keyword (`f.call(x)` is one
/// of them as a method).
pub const KEYWORD_FNS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_def_var",
    "is_def_fn",
    "is_shared",
];

fn pos_of(p: Position) -> Option<(usize, usize)> {
    p.line().map(|l| (l, p.position().unwrap_or(1)))
}

fn first_property(e: &Expr) -> Option<(String, Position)> {
    match e {
        Expr::Property(x, pos) => Some((x.2.to_string(), *pos)),
        Expr::Dot(b, ..) | Expr::Index(b, ..) => first_property(&b.lhs),
        _ => None,
    }
}

/// `\n`, `\t` and friends written inside backtick strings, which Rhai
/// keeps as a backslash and a letter: (line, column, the escape).
pub fn backtick_escapes(source: &str) -> Vec<(usize, usize, String)> {
    #[derive(PartialEq)]
    enum St {
        Code,
        Str,
        Back,
    }
    let mut out = Vec::new();
    // Each level: the state, and for code inside `${…}` its brace depth.
    let mut stack: Vec<(St, usize)> = vec![(St::Code, 0)];
    let chars: Vec<char> = source.chars().collect();
    let (mut line, mut col) = (1usize, 1usize);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let mut step = 1;
        let top = stack.last().map(|(s, _)| s);
        match top {
            Some(St::Code) | None => match (c, next) {
                ('/', Some('/')) => {
                    while i + step < chars.len() && chars[i + step] != '\n' {
                        step += 1;
                    }
                }
                ('/', Some('*')) => {
                    step = 2;
                    while i + step + 1 < chars.len()
                        && !(chars[i + step] == '*' && chars[i + step + 1] == '/')
                    {
                        // Lines are counted once, below, for every char stepped over.
                        step += 1;
                    }
                    step += 2;
                }
                ('"', _) => stack.push((St::Str, 0)),
                ('\'', _) => {
                    // A character literal: skip it whole.
                    step = if next == Some('\\') { 4 } else { 3 };
                }
                ('`', _) => stack.push((St::Back, 0)),
                ('{', _) => {
                    if let Some(l) = stack.last_mut() {
                        l.1 += 1;
                    }
                }
                ('}', _) => {
                    let depth = stack.last().map_or(0, |l| l.1);
                    if depth > 0 {
                        if let Some(l) = stack.last_mut() {
                            l.1 -= 1;
                        }
                    } else if stack.len() > 1 {
                        // The end of a `${…}`: back in the backtick string.
                        stack.pop();
                    }
                }
                _ => {}
            },
            Some(St::Str) => match c {
                '\\' => step = 2,
                '"' => {
                    stack.pop();
                }
                _ => {}
            },
            Some(St::Back) => match (c, next) {
                ('\\', Some(e @ ('n' | 't' | 'r' | '"' | '\\' | '0'))) => {
                    out.push((line, col, format!("\\{e}")));
                    step = 2;
                }
                ('`', _) => {
                    stack.pop();
                }
                ('$', Some('{')) => {
                    stack.push((St::Code, 0));
                    step = 2;
                }
                _ => {}
            },
        }
        for k in 0..step {
            match chars.get(i + k) {
                Some('\n') => {
                    line += 1;
                    col = 1;
                }
                Some(_) => col += 1,
                None => {}
            }
        }
        i += step;
    }
    out
}

/// A library module, not a playbook: no `PARAMS`, and a top level that only
/// imports, declares literal constants and defines functions, so running
/// it would do nothing. Playbooks import it (`import "lib/release" as
/// release;`); `check` lists it as a module, a run refuses it.
pub fn is_module(ast: &AST) -> bool {
    let mut defines = ast.iter_functions().next().is_some();
    let only_declarations = ast.statements().iter().all(|s| match s {
        Stmt::Import(..) | Stmt::Noop(..) => true,
        Stmt::Export(..) => {
            defines = true;
            true
        }
        Stmt::Var(x, ..) => {
            defines = true;
            x.0.name != "PARAMS" && x.1.get_literal_value(None).is_some()
        }
        _ => false,
    });
    defines && only_declarations
}

/// Why a module is not run: what it is, and how it is meant to be used.
pub fn module_message(path: &Path) -> String {
    if path.to_string_lossy().ends_with(".test.rhai") {
        return format!(
            "{} is a test file, not a playbook: run it with `runbook test {}`",
            path.display(),
            path.display()
        );
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("module");
    format!(
        "{} is a module, not a playbook: it only imports, declares constants and defines functions, so running it would do nothing. Import it from a playbook (`import \"{stem}\" as {stem};`, its path from the playbook's folder without .rhai, e.g. \"lib/{stem}\") and run that playbook",
        path.display()
    )
}

/// Every lint of a compiled playbook: what `runbook check` reports, and
/// what a run refuses to start with (before its first primitive).
pub fn lints(
    engine: &Engine,
    ctx: &Arc<Ctx>,
    ast: &AST,
    decl: &crate::params::Declaration,
    source: &str,
) -> Vec<(Option<(usize, usize)>, String)> {
    let mut out = Vec::new();
    let table = crate::signatures::Table::new(engine);
    lint_ast(&table, engine, ctx, ast, decl, &mut |pos, msg| {
        out.push((pos, msg))
    });
    // A call with the wrong arguments is shown with its line and a caret
    // under the call, as a compile error is: the column alone is easy to
    // misread on a line with several calls.
    for (pos, msg) in crate::signatures::check(&table, ast) {
        let at = crate::report::caret(source, pos);
        let msg = if at.is_empty() {
            msg
        } else {
            format!("{msg}\n{}", at.trim_end())
        };
        out.push((pos_of(pos), msg));
    }
    for (pos, msg) in lint_source(source) {
        out.push((Some(pos), msg));
    }
    out.sort_by_key(|(p, _)| *p);
    out
}

/// What a run refuses to start with: the playbook's lints, then those of
/// every module it imports from a file (directly or through another
/// module), each module once. Embedded stdlib modules are checked when
/// runbook is built. The same lints and did-you-mean as `runbook check`.
pub fn run_lints(
    engine: &Engine,
    ctx: &Arc<Ctx>,
    ast: &AST,
    decl: &crate::params::Declaration,
    path: &Path,
    source: &str,
) -> Vec<Finding> {
    let at = |file: &Path, found: Vec<(Option<(usize, usize)>, String)>| -> Vec<Finding> {
        found
            .into_iter()
            .map(|(pos, message)| Finding {
                path: file.to_path_buf(),
                pos,
                message,
            })
            .collect()
    };
    let mut out = at(path, lints(engine, ctx, ast, decl, source));
    let resolver = Resolver::new(path);
    let mut seen: HashSet<String> = HashSet::new();
    // Bounded: each module name is visited once.
    let mut todo: Vec<String> = crate::engine::imports(ast)
        .into_iter()
        .map(|(name, ..)| name)
        .collect();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some((origin, text)) = resolver.find(&name) else {
            continue; // reported as an unresolved import already
        };
        if origin.starts_with("<embedded") {
            continue;
        }
        let Ok(m) = crate::engine::compile_module(engine, &origin, &text) else {
            continue; // imported_modules reports it where it is imported
        };
        todo.extend(crate::engine::imports(&m).into_iter().map(|(n, ..)| n));
        let (mdecl, _) = crate::params::declaration_all(&m, &text, &resolver);
        out.extend(at(
            Path::new(&origin),
            lints(engine, ctx, &m, &mdecl, &text),
        ));
    }
    out
}

/// The lints as one usage error for a run: file:line:col: message, each.
pub fn lint_report(path: &Path, findings: &[Finding]) -> String {
    let mut s = format!(
        "{} has {} problem(s) that would fail the run; nothing was run (`runbook check {}` lists them too):\n",
        path.display(),
        findings.len(),
        path.display()
    );
    for f in findings {
        // Continuation lines (a caret) stay under their finding.
        s.push_str(&format!("  {}\n", f.to_string().replace('\n', "\n  ")));
    }
    s
}

/// Lints of the source text itself.
pub fn lint_source(source: &str) -> Vec<((usize, usize), String)> {
    backtick_escapes(source)
        .into_iter()
        .map(|(l, c, esc)| {
            ((l, c), format!(
                "`{esc}` inside a backtick string stays a backslash and a letter (Rhai does not process escapes there): break the line in the source instead, or use a \"…\" string"
            ))
        })
        .collect()
}

fn lint_ast(
    table: &crate::signatures::Table,
    engine: &Engine,
    ctx: &Arc<Ctx>,
    ast: &AST,
    decl: &crate::params::Declaration,
    report: &mut dyn FnMut(Option<(usize, usize)>, String),
) {
    let mut known: HashSet<&str> = table.names().collect();
    known.extend(KEYWORD_FNS.iter().copied());
    known.extend(ast.iter_functions().map(|f| f.name));
    let vars = variables(ast);
    let imports = crate::engine::imports(ast);
    let modules = imported_modules(engine, ctx, ast, &imports, report);
    let declared: Vec<&str> = decl.params.iter().map(|p| p.name.as_str()).collect();
    // In a module, `args` is only ever a function's own parameter or
    // variable: then `args.x` is that value's, not the playbook's.
    let module = is_module(ast);
    let own_args = module && vars.contains("args");
    ast.walk(&mut |nodes: &[ASTNode]| {
        let call = match nodes.last() {
            Some(ASTNode::Expr(Expr::FnCall(f, pos)))
            | Some(ASTNode::Stmt(Stmt::FnCall(f, pos))) => Some((f, pos)),
            _ => None,
        };
        match (call, nodes.last()) {
            (Some((f, pos)), _) if f.op_token.is_none() => {
                let name = f.name.as_str();
                let is_ident = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_');
                if f.namespace.is_empty() {
                    if is_ident && !known.contains(name) && !vars.contains(name) {
                        report(
                            pos_of(*pos),
                            match crate::pitfalls::alias_hint(name) {
                                alias if alias.is_empty() => format!(
                                    "unknown function '{name}'{}; `runbook doc` lists the primitives",
                                    crate::suggest::hint(name, known.iter().copied())
                                ),
                                alias => format!(
                                    "unknown function '{name}'; `runbook doc` lists the primitives{alias}"
                                ),
                            },
                        );
                    }
                } else {
                    let root = f.namespace.root();
                    match modules.get(root) {
                        Some(fns) if !fns.contains(name) => report(
                            pos_of(*pos),
                            format!(
                                "module '{root}' has no function '{name}'{}",
                                crate::suggest::hint(name, fns.iter().map(String::as_str))
                            ),
                        ),
                        Some(_) => {}
                        None if imports.iter().any(|(_, a, _)| a == root) => {}
                        None => report(
                            pos_of(*pos),
                            format!("'{root}::{name}': no `import \"…\" as {root};` in this file"),
                        ),
                    }
                }
            }
            (_, Some(ASTNode::Expr(Expr::Dot(b, ..)))) if !own_args => {
                lint_args_property(b, module, &declared, report)
            }
            _ => {}
        }
        true
    });
}

/// Names that may be called like functions although no function has them:
/// function parameters, `let`/`const` and `for` variables (a variable may
/// hold a closure).
fn variables(ast: &AST) -> HashSet<String> {
    let mut vars: HashSet<String> = HashSet::new();
    for f in ast.iter_functions() {
        vars.extend(f.params.iter().map(|p| p.to_string()));
    }
    ast.walk(&mut |nodes: &[ASTNode]| {
        match nodes.last() {
            Some(ASTNode::Stmt(Stmt::Var(x, ..))) => {
                vars.insert(x.0.name.to_string());
            }
            Some(ASTNode::Stmt(Stmt::For(x, ..))) => {
                vars.insert(x.0.name.to_string());
                if let Some(i) = &x.1 {
                    vars.insert(i.name.to_string());
                }
            }
            _ => {}
        }
        true
    });
    vars
}

/// The public functions of each imported module, by alias; reports imports
/// that do not resolve or do not compile.
fn imported_modules(
    engine: &Engine,
    ctx: &Arc<Ctx>,
    ast: &AST,
    imports: &[(String, String, Position)],
    report: &mut dyn FnMut(Option<(usize, usize)>, String),
) -> HashMap<String, HashSet<String>> {
    let resolver = Resolver::new(&ctx.settings.playbook);
    let mut modules: HashMap<String, HashSet<String>> = HashMap::new();
    for (msg, pos) in crate::engine::unresolved_imports(ast, &resolver) {
        report(pos_of(pos), msg);
    }
    for (name, alias, pos) in imports {
        let Some((origin, text)) = resolver.find(name) else {
            continue;
        };
        match crate::engine::compile_module(engine, &origin, &text) {
            Ok(m) => {
                let fns = m
                    .iter_functions()
                    .filter(|f| f.access != rhai::FnAccess::Private)
                    .map(|f| f.name.to_string())
                    .collect();
                if !alias.is_empty() {
                    modules.insert(alias.clone(), fns);
                }
            }
            Err(e) => report(
                pos_of(*pos),
                format!(
                    "import \"{name}\": {origin} does not compile: {}",
                    e.err_type()
                ),
            ),
        }
    }
    modules
}

/// `args.x` where no parameter `x` is declared, or `args` in a module
/// (which never sees the playbook's arguments).
fn lint_args_property(
    b: &rhai::BinaryExpr,
    module: bool,
    declared: &[&str],
    report: &mut dyn FnMut(Option<(usize, usize)>, String),
) {
    let Expr::Variable(v, _, _) = &b.lhs else {
        return;
    };
    if v.1 != "args" {
        return;
    }
    let Some((prop, pos)) = first_property(&b.rhs) else {
        return;
    };
    if module {
        report(
            pos_of(pos),
            format!("args.{prop}: a module does not see the playbook's `args`; take the value as a function argument"),
        );
    } else if !declared.contains(&prop.as_str()) {
        report(
            pos_of(pos),
            format!(
                "args.{prop}: no parameter '{prop}' is declared in PARAMS{}",
                crate::suggest::hint(&prop, declared.iter().copied())
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_in_backtick_strings_are_found() {
        let src = "let a = \"x\\ny\"; // `not\\n code`\nsummary(`### T\\n\\n${a + `in\\tner`} \"q\"`);\nlet c = '`';\n/* `\\n` */ let d = `ok\n`;\n";
        let found = backtick_escapes(src);
        let got: Vec<(usize, usize, &str)> =
            found.iter().map(|(l, c, e)| (*l, *c, e.as_str())).collect();
        assert_eq!(
            got,
            [(2, 15, "\\n"), (2, 17, "\\n"), (2, 28, "\\t")],
            "{src}"
        );
    }

    #[test]
    fn lines_inside_block_comments_are_counted_once() {
        let src = "/* one\ntwo\nthree */\nsummary(`a\\nb`);\n";
        assert_eq!(backtick_escapes(src), [(4, 11, "\\n".to_string())]);
    }

    #[test]
    fn modules_are_told_from_playbooks() {
        let engine = Engine::new();
        let module = |src: &str| is_module(&engine.compile(src).unwrap());
        assert!(module("import \"images\" as images;\nexport const X_PARAMS = #{ a: #{} };\nfn f() { images::short_sha(\"x\") }"));
        assert!(module("const LIMIT = 3;\nfn f() { 1 }"));
        // Anything that runs, or declares PARAMS, is a playbook.
        assert!(!module("fn f() { 1 }\nf();"));
        assert!(!module("const PARAMS = #{};\nfn f() { 1 }"));
        assert!(!module("let x = env(\"A\");\nfn f() { 1 }"));
        assert!(!module(""));
    }
}
