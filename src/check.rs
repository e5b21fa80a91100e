//! `runbook check PATH…`: compile and lint playbooks without running
//! anything — unknown functions, undeclared parameters, missing imports and
//! malformed `PARAMS` — with the file, line and column of each finding.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{ASTNode, Engine, Expr, Position, Stmt, AST};

use crate::context::{Ctx, Settings};
use crate::engine::Resolver;

/// One problem found in a playbook.
#[derive(Debug)]
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

/// Functions the language itself provides by keyword.
const KEYWORD_FNS: &[&str] = &[
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

/// Lint one playbook (or module) file.
pub fn check_file(path: &Path, rt: &tokio::runtime::Handle) -> Vec<Finding> {
    let finding = |pos: Option<(usize, usize)>, message: String| Finding {
        path: path.to_path_buf(),
        pos,
        message,
    };
    let source = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => return vec![finding(None, format!("cannot read: {e}"))],
    };
    let mut settings = Settings::new(path, crate::logging::LogFormat::Pretty);
    settings.dry_run = true;
    let ctx = Ctx::new(settings, rt.clone());
    let engine = crate::engine::build(&ctx);
    let ast = match engine.compile(&source) {
        Ok(a) => a,
        Err(e) => {
            let r = crate::report::parse_error(&e, path, &source);
            return vec![finding(
                r.position,
                format!("does not compile: {}", r.message),
            )];
        }
    };
    let mut out = Vec::new();
    let decl = match crate::params::declaration(&ast, &source) {
        Ok(d) => d,
        Err(e) => {
            out.push(finding(None, e));
            crate::params::Declaration::default()
        }
    };
    lint_ast(&engine, &ctx, &ast, &decl, &mut |pos, msg| {
        out.push(finding(pos, msg))
    });
    out
}

fn lint_ast(
    engine: &Engine,
    ctx: &Arc<Ctx>,
    ast: &AST,
    decl: &crate::params::Declaration,
    report: &mut dyn FnMut(Option<(usize, usize)>, String),
) {
    let mut known: HashSet<String> = engine
        .gen_fn_signatures(true)
        .iter()
        .map(|s| s.split('(').next().unwrap_or("").trim().to_string())
        .collect();
    known.extend(KEYWORD_FNS.iter().map(|s| s.to_string()));
    known.extend(ast.iter_functions().map(|f| f.name.to_string()));

    // First pass: variable names (a variable holding a closure may be
    // called like a function) and import aliases.
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
    let imports = crate::engine::imports(ast);

    let resolver = Resolver::new(&ctx.settings.playbook);
    let mut modules: HashMap<String, HashSet<String>> = HashMap::new();
    for (msg, pos) in crate::engine::unresolved_imports(ast, &resolver) {
        report(pos_of(pos), msg);
    }
    for (name, alias, pos) in &imports {
        match resolver.find(name) {
            None => {}
            Some((origin, text)) => match engine.compile(&text) {
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
            },
        }
    }

    let declared: Vec<&str> = decl.params.iter().map(|p| p.name.as_str()).collect();
    let known_list: Vec<String> = known.iter().cloned().collect();
    ast.walk(&mut |nodes: &[ASTNode]| {
        let call = match nodes.last() {
            Some(ASTNode::Expr(Expr::FnCall(f, pos))) | Some(ASTNode::Stmt(Stmt::FnCall(f, pos))) => Some((f, pos)),
            _ => None,
        };
        match (call, nodes.last()) {
            (Some((f, pos)), _) if f.op_token.is_none() => {
                let name = f.name.as_str();
                let is_ident = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
                if f.namespace.is_empty() {
                    if is_ident && !known.contains(name) && !vars.contains(name) {
                        report(
                            pos_of(*pos),
                            format!(
                                "unknown function '{name}'{}; `runbook doc` lists the primitives",
                                crate::suggest::hint(name, known_list.iter().map(String::as_str))
                            ),
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
                        None => report(pos_of(*pos), format!("'{root}::{name}': no `import \"…\" as {root};` in this file")),
                    }
                }
            }
            (_, Some(ASTNode::Expr(Expr::Dot(b, ..)))) => {
                if let Expr::Variable(v, _, _) = &b.lhs {
                    if v.1 == "args" {
                        if let Some((prop, pos)) = first_property(&b.rhs) {
                            if !declared.contains(&prop.as_str()) {
                                report(
                                    pos_of(pos),
                                    format!(
                                        "args.{prop}: no parameter '{prop}' is declared in PARAMS{}",
                                        crate::suggest::hint(&prop, declared.iter().copied())
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        true
    });
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
        let findings = check_file(f, rt);
        if findings.is_empty() {
            crate::out::println(&format!("ok    {}", f.display()));
        }
        for finding in &findings {
            crate::out::println(&format!("error {finding}"));
        }
        count += findings.len();
    }
    Ok(count)
}
