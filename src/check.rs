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

/// One problem found in a playbook: where, and what ([`Lint`]).
#[derive(Clone, Debug)]
pub struct Finding {
    /// The file.
    pub path: PathBuf,
    /// Line and column, when known.
    pub pos: Option<(usize, usize)>,
    /// What is wrong; its [`Display`](std::fmt::Display) says what to do.
    pub lint: Lint,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pos {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", self.path.display(), self.lint),
            None => write!(f, "{}: {}", self.path.display(), self.lint),
        }
    }
}

/// What a lint found. Each kind carries what its message needs; the
/// message is its [`Display`](std::fmt::Display).
#[derive(Clone, Debug, PartialEq)]
pub enum Lint {
    /// The file cannot be read.
    Unreadable(String),
    /// The file does not compile: Rhai's message.
    DoesNotCompile(String),
    /// A mistake in `PARAMS` (or a module's shared parameter specs), as
    /// the parameter reader words it.
    Params(String),
    /// An `import` that does not resolve, or names a module badly, as the
    /// resolver words it.
    Import(String),
    /// An imported module that does not compile.
    ModuleDoesNotCompile {
        /// The module name in `import "…"`.
        name: String,
        /// Where it was found.
        origin: String,
        /// Rhai's error.
        error: String,
    },
    /// A call of a function nothing defines.
    UnknownFunction {
        /// The name called.
        name: String,
        /// Rhai's word for a name from another language, or the closest
        /// name (empty when there is none), to append.
        hint: String,
    },
    /// `module::f()` where the imported module has no public `f`.
    NoSuchModuleFunction {
        /// The module's alias.
        module: String,
        /// The function called.
        name: String,
        /// The closest of its functions, to append (empty when none).
        hint: String,
    },
    /// `m::f()` with no `import "…" as m;` in the file.
    NotImported {
        /// The alias used.
        module: String,
        /// The function called.
        name: String,
    },
    /// `args.x` where no parameter `x` is declared.
    UndeclaredArg {
        /// The property read.
        name: String,
        /// The closest declared parameter, to append (empty when none).
        hint: String,
    },
    /// `args` read in a module, which never sees the playbook's arguments.
    ArgsInModule {
        /// The property read.
        name: String,
    },
    /// A call with the wrong arguments, an unknown method, an in-place
    /// result used; `caret` shows the line with a caret under the call.
    Call {
        /// What the call check found.
        problem: crate::signatures::Problem,
        /// The source line and a caret (empty when the line is unknown).
        caret: String,
    },
    /// A parameter named like an option `runbook job` keeps for itself
    /// (a warning: the playbook still runs, but not as a Job).
    JobReserved(String),
    /// `\n` and friends inside a backtick string, which Rhai keeps as a
    /// backslash and a letter.
    BacktickEscape {
        /// The escape as written (`\n`).
        escape: String,
    },
}

impl std::fmt::Display for Lint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lint::Unreadable(e) => write!(f, "cannot read: {e}"),
            Lint::DoesNotCompile(e) => write!(f, "does not compile: {e}"),
            Lint::Params(e) | Lint::Import(e) | Lint::JobReserved(e) => f.write_str(e),
            Lint::ModuleDoesNotCompile {
                name,
                origin,
                error,
            } => write!(f, "import \"{name}\": {origin} does not compile: {error}"),
            Lint::UnknownFunction { name, hint } => {
                let alias = crate::pitfalls::alias_hint(name);
                if alias.is_empty() {
                    write!(
                        f,
                        "unknown function '{name}'{hint}; `runbook doc` lists the primitives"
                    )
                } else {
                    write!(
                        f,
                        "unknown function '{name}'; `runbook doc` lists the primitives{alias}"
                    )
                }
            }
            Lint::NoSuchModuleFunction { module, name, hint } => {
                write!(f, "module '{module}' has no function '{name}'{hint}")
            }
            Lint::NotImported { module, name } => write!(
                f,
                "'{module}::{name}': no `import \"…\" as {module};` in this file"
            ),
            Lint::UndeclaredArg { name, hint } => write!(
                f,
                "args.{name}: no parameter '{name}' is declared in PARAMS{hint}"
            ),
            Lint::ArgsInModule { name } => write!(
                f,
                "args.{name}: a module does not see the playbook's `args`; take the value as a function argument"
            ),
            Lint::Call { problem, caret } if caret.is_empty() => write!(f, "{problem}"),
            Lint::Call { problem, caret } => write!(f, "{problem}\n{}", caret.trim_end()),
            Lint::BacktickEscape { escape } => write!(
                f,
                "`{escape}` inside a backtick string stays a backslash and a letter (Rhai does not process escapes there): break the line in the source instead, or use a \"…\" string"
            ),
        }
    }
}

/// A lint at a place in the file being linted (the file is added by the
/// caller).
pub type Placed = (Option<(usize, usize)>, Lint);

pub use crate::signatures::KEYWORD_FNS;

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
///
/// Rhai's own tokenizer finds the strings (so comments, nested block
/// comments, `"…"`, raw `#"…"#` and character literals are read as the
/// compiler reads them); each backtick segment is then read from the
/// source, where it starts. A `${…}` is followed as the parser does:
/// after its closing brace the tokenizer is told it is back in the text.
pub fn backtick_escapes(engine: &Engine, source: &str) -> Vec<(usize, usize, String)> {
    use rhai::Token;
    let starts = line_starts(source);
    let inputs = [source];
    let (mut tokens, control) = engine.lex(&inputs);
    let mut out = Vec::new();
    // One entry per open `${`: the depth of braces inside it.
    let mut open: Vec<usize> = Vec::new();
    // Where the `}` that ended a `${…}` stands: the text resumes after it.
    let mut resumed: Option<Position> = None;
    // Bounded: every token but the last consumes at least one character.
    for _ in 0..=source.len() + 1 {
        let Some((token, pos)) = tokens.next() else {
            break;
        };
        let continued = resumed.take();
        match token {
            Token::EOF | Token::LexError(_) => break,
            Token::StringConstant(_) | Token::InterpolatedString(_) => {
                // A segment starts after its opening backtick (the token's
                // position), or after the `}` that closed a `${…}`.
                let start = continued.or_else(|| {
                    offset(source, &starts, pos)
                        .filter(|&at| source[at..].starts_with('`'))
                        .map(|_| pos)
                });
                if let Some(start) = start {
                    if let Some(at) = offset(source, &starts, start) {
                        out.extend(segment_escapes(source, at + 1, start));
                    }
                }
                if matches!(token, Token::InterpolatedString(_)) {
                    open.push(0);
                }
            }
            Token::LeftBrace | Token::MapStart => {
                if let Some(d) = open.last_mut() {
                    *d += 1;
                }
            }
            Token::RightBrace => {
                if let Some(d) = open.last_mut() {
                    *d = d.saturating_sub(1);
                    if *d == 0 {
                        open.pop();
                        control.borrow_mut().is_within_text = true;
                        resumed = Some(pos);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The byte offset where each line starts.
fn line_starts(source: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(source.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// The byte offset of a token's position (1-based line and character
/// column, as Rhai counts them).
fn offset(source: &str, starts: &[usize], pos: Position) -> Option<usize> {
    let start = *starts.get(pos.line()?.checked_sub(1)?)?;
    let col = pos.position()?.checked_sub(1)?;
    source[start..]
        .char_indices()
        .nth(col)
        .map(|(i, _)| start + i)
}

/// The escapes in one backtick segment, which starts at byte `first`, one
/// column after `pos` (its backtick, or the `}` before it); it ends at a
/// lone backtick or a `${`.
fn segment_escapes(source: &str, first: usize, pos: Position) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let (Some(mut line), Some(mut col)) = (pos.line(), pos.position()) else {
        return out;
    };
    col += 1;
    let mut chars = source[first..].chars().peekable();
    while let Some(c) = chars.next() {
        let mut width = 1;
        match (c, chars.peek().copied()) {
            ('`', Some('`')) => {
                chars.next(); // a doubled backtick is one, kept
                width = 2;
            }
            ('`', _) | ('$', Some('{')) => break,
            ('\\', Some('$')) => {
                chars.next(); // `\${` is a literal `${`
                width = 2;
                if chars.peek() == Some(&'{') {
                    chars.next();
                    width = 3;
                }
            }
            ('\\', Some(e @ ('n' | 't' | 'r' | '"' | '\\' | '0'))) => {
                out.push((line, col, format!("\\{e}")));
                chars.next();
                width = 2;
            }
            ('\n', _) => {
                line += 1;
                col = 1;
                continue;
            }
            _ => {}
        }
        col += width;
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
) -> Vec<Placed> {
    let mut out = Vec::new();
    let table = crate::signatures::Table::new(engine, ast);
    lint_ast(&table, engine, ctx, ast, decl, &mut |pos, lint| {
        out.push((pos, lint))
    });
    // A call with the wrong arguments is shown with its line and a caret
    // under the call, as a compile error is: the column alone is easy to
    // misread on a line with several calls.
    for (pos, problem) in crate::signatures::check(&table, ast) {
        let caret = crate::report::caret(source, pos);
        out.push((pos_of(pos), Lint::Call { problem, caret }));
    }
    for (pos, lint) in lint_source(engine, source) {
        out.push((Some(pos), lint));
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
    let at = |file: &Path, found: Vec<Placed>| -> Vec<Finding> {
        found
            .into_iter()
            .map(|(pos, lint)| Finding {
                path: file.to_path_buf(),
                pos,
                lint,
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
pub fn lint_source(engine: &Engine, source: &str) -> Vec<((usize, usize), Lint)> {
    backtick_escapes(engine, source)
        .into_iter()
        .map(|(l, c, escape)| ((l, c), Lint::BacktickEscape { escape }))
        .collect()
}

fn lint_ast(
    table: &crate::signatures::Table,
    engine: &Engine,
    ctx: &Arc<Ctx>,
    ast: &AST,
    decl: &crate::params::Declaration,
    report: &mut dyn FnMut(Option<(usize, usize)>, Lint),
) {
    let script_fns: HashSet<&str> = ast.iter_functions().map(|f| f.name).collect();
    let knows =
        |name: &str| table.knows(name) || KEYWORD_FNS.contains(&name) || script_fns.contains(name);
    // Every name, for a did-you-mean: built only for a name not known.
    let known = || {
        table
            .names()
            .chain(KEYWORD_FNS.iter().copied())
            .chain(script_fns.iter().copied())
    };
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
                    if is_ident && !knows(name) && !vars.contains(name) {
                        let hint = if crate::pitfalls::alias_hint(name).is_empty() {
                            crate::suggest::hint(name, known())
                        } else {
                            String::new()
                        };
                        report(
                            pos_of(*pos),
                            Lint::UnknownFunction {
                                name: name.to_string(),
                                hint,
                            },
                        );
                    }
                } else {
                    let root = f.namespace.root();
                    match modules.get(root) {
                        Some(fns) if !fns.contains(name) => report(
                            pos_of(*pos),
                            Lint::NoSuchModuleFunction {
                                module: root.to_string(),
                                name: name.to_string(),
                                hint: crate::suggest::hint(name, fns.iter().map(String::as_str)),
                            },
                        ),
                        Some(_) => {}
                        None if imports.iter().any(|(_, a, _)| a == root) => {}
                        None => report(
                            pos_of(*pos),
                            Lint::NotImported {
                                module: root.to_string(),
                                name: name.to_string(),
                            },
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
    report: &mut dyn FnMut(Option<(usize, usize)>, Lint),
) -> HashMap<String, HashSet<String>> {
    let resolver = Resolver::new(&ctx.settings.playbook);
    let mut modules: HashMap<String, HashSet<String>> = HashMap::new();
    for (msg, pos) in crate::engine::unresolved_imports(ast, &resolver) {
        report(pos_of(pos), Lint::Import(msg));
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
                Lint::ModuleDoesNotCompile {
                    name: name.clone(),
                    origin,
                    error: e.err_type().to_string(),
                },
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
    report: &mut dyn FnMut(Option<(usize, usize)>, Lint),
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
        report(pos_of(pos), Lint::ArgsInModule { name: prop });
    } else if !declared.contains(&prop.as_str()) {
        let hint = crate::suggest::hint(&prop, declared.iter().copied());
        report(pos_of(pos), Lint::UndeclaredArg { name: prop, hint });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escapes(src: &str) -> Vec<(usize, usize, String)> {
        backtick_escapes(&Engine::new_raw(), src)
    }

    #[test]
    fn escapes_in_backtick_strings_are_found() {
        let src = "let a = \"x\\ny\"; // `not\\n code`\nsummary(`### T\\n\\n${a + `in\\tner`} \"q\"`);\nlet c = '`';\n/* `\\n` */ let d = `ok\n`;\n";
        let found = escapes(src);
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
        assert_eq!(escapes(src), [(4, 11, "\\n".to_string())]);
    }

    /// Read as Rhai reads them: block comments nest, and comment markers
    /// inside strings are text. (The hand-written scanner this replaced
    /// ended a comment at the first `*/` and reported line 1.)
    #[test]
    fn nested_comments_and_markers_in_strings_are_read_as_rhai_reads_them() {
        let src = concat!(
            "/* outer /* inner */ still a comment: `x\\n` */\n",
            "let a = \"not /* a comment\"; let b = `one\\n`;\n",
            "let c = \"*/ `\\t` //\"; // `\\n` in a line comment\n",
            "let d = #\"raw `\\n` \"#; let e = '`'; let f = `two ``\\t`` ${ \"}\" + `in\\r` }`;\n",
            "let g = `a\\${b}\\0`; let h = #{ k: `${ #{ x: 1 }.x }\\n` };\n",
            "let i = `\\t${g}${h}\\n`; let j = \"\\n\";\n",
        );
        let got: Vec<(usize, usize, String)> = escapes(src);
        assert_eq!(
            got,
            [
                (2, 41, "\\n".to_string()),
                (4, 52, "\\t".to_string()),
                (4, 69, "\\r".to_string()),
                (5, 16, "\\0".to_string()),
                (5, 52, "\\n".to_string()),
                (6, 10, "\\t".to_string()),
                (6, 20, "\\n".to_string()),
            ],
            "{src}"
        );
        // Rhai compiles it: the test reads real syntax.
        Engine::new().compile(src).unwrap();
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
