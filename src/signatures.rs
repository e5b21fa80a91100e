//! Calls checked against the engine's own function signatures, before
//! anything runs: a primitive called with the wrong number of arguments or
//! a literal of the wrong type, and a method no function provides
//! (`arr.join(", ")`). `runbook check` reports them; a run refuses to start.

use std::collections::{HashMap, HashSet};

use rhai::{ASTNode, Dynamic, Engine, Expr, Position, Stmt, AST};

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

/// One signature: its parameter types and its text.
#[derive(Clone, Debug)]
pub struct Sig {
    /// Parameter types as the metadata writes them (`&str`, `Map`, `Dynamic`, …).
    pub params: Vec<String>,
    /// The whole signature, for messages.
    pub text: String,
}

/// What a call check found, with what its message needs; [`Display`]
/// writes the message.
///
/// [`Display`]: std::fmt::Display
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// A primitive called with a number of arguments none of its
    /// signatures takes.
    Arity {
        /// The primitive.
        name: String,
        /// The argument counts its signatures take, ascending.
        takes: Vec<usize>,
        /// The arguments the call gives.
        given: usize,
        /// Its signatures, for the message.
        sigs: String,
    },
    /// A literal argument of a type the parameter never takes.
    Type {
        /// The primitive.
        name: String,
        /// The argument, from 1.
        arg: usize,
        /// The parameter's type.
        want: String,
        /// The literal's kind (`string`, `int`, …).
        given: &'static str,
        /// Its signatures, for the message.
        sigs: String,
    },
    /// A method no function provides (`arr.join(", ")`).
    UnknownMethod {
        /// The method.
        name: String,
        /// Rhai's word for a name from another language, or the closest
        /// name: text to append, empty when there is none.
        hint: String,
    },
    /// The result of an in-place method (always `()`) used as a value.
    InPlaceResult {
        /// The method.
        name: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Arity {
                name,
                takes,
                given,
                sigs,
            } => {
                let counts = takes
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ");
                write!(
                    f,
                    "{name} takes {counts} argument(s), this call gives {given}: {sigs}"
                )
            }
            Problem::Type {
                name,
                arg,
                want,
                given,
                sigs,
            } => write!(
                f,
                "{name}: argument {arg} wants {}, this call gives {}: {sigs}",
                pretty_type(want),
                what(given)
            ),
            Problem::UnknownMethod { name, hint } => write!(
                f,
                "no function or method '{name}'{hint} (not a primitive, not a Rhai built-in); `runbook doc builtins` lists the language's functions{}",
                crate::pitfalls::alias_hint(name)
            ),
            Problem::InPlaceResult { name } => write!(
                f,
                "the result of `{name}` is used, but it is always `()`; {}",
                crate::pitfalls::in_place_hint(name)
            ),
        }
    }
}

mod std_names;

/// Every function the engine knows, by name.
pub struct Table {
    /// The engine's own functions (the primitives).
    names: HashSet<String>,
    /// The signatures of those a script calls.
    own: HashMap<String, Vec<Sig>>,
}

/// Function names, and the signatures of those in `wanted` (all of them
/// when `None`), read from the engine's metadata in one pass: only a
/// wanted signature is formatted. Without `std`, the standard package
/// (flagged as such by Rhai) is skipped before anything is read: its
/// ~1,500 functions are not listed on every run.
fn collect(
    engine: &Engine,
    std: bool,
    wanted: Option<&HashSet<&str>>,
) -> (HashSet<String>, HashMap<String, Vec<Sig>>) {
    let list = engine.collect_fn_metadata(
        None,
        |info| {
            let m = info.metadata;
            if wanted.is_some_and(|w| !w.contains(m.name.as_str())) {
                return Some((m.name.to_string(), None));
            }
            let mut infos: Vec<String> = m.params_info.iter().map(|p| p.to_string()).collect();
            // The last entry of params_info is the return type when given.
            if infos.len() == m.num_params + 1 {
                infos.pop();
            }
            if infos.len() != m.num_params {
                infos = vec!["_: ?".to_string(); m.num_params];
            }
            let params = infos
                .iter()
                .map(|p| match p.rsplit_once(": ") {
                    Some((_, t)) => t.trim().to_string(),
                    None => p.trim().to_string(),
                })
                .collect();
            let text = format!("{}({})", m.name, infos.join(", "));
            Some((m.name.to_string(), Some(Sig { params, text })))
        },
        std,
    );
    let mut names = HashSet::new();
    let mut sigs: HashMap<String, Vec<Sig>> = HashMap::new();
    for (name, sig) in list {
        if let Some(sig) = sig {
            sigs.entry(name.clone()).or_default().push(sig);
        }
        names.insert(name);
    }
    (names, sigs)
}

/// The language's own functions with their signatures, read once per
/// process and only when a check needs one (a primitive that shares its
/// name with one of them).
fn std_table() -> &'static HashMap<String, Vec<Sig>> {
    static STD: std::sync::OnceLock<HashMap<String, Vec<Sig>>> = std::sync::OnceLock::new();
    STD.get_or_init(|| {
        let (_, mut all) = collect(&crate::engine::new_engine(), true, None);
        all.retain(|name, _| is_std(name));
        all
    })
}

/// Whether the standard package has a function of that name: a lookup in
/// the list generated from it ([`std_names::STD_NAMES`], kept current by a
/// test), so a run does not list the package to know its names.
fn is_std(name: &str) -> bool {
    std_names::STD_NAMES.binary_search(&name).is_ok()
}

/// A literal argument's type, when the call site shows it.
fn literal(e: &Expr) -> Option<&'static str> {
    Some(match e {
        Expr::StringConstant(..) | Expr::InterpolatedString(..) => "string",
        Expr::IntegerConstant(..) => "int",
        Expr::FloatConstant(..) => "float",
        Expr::BoolConstant(..) => "bool",
        Expr::CharConstant(..) => "char",
        Expr::Array(..) => "array",
        Expr::Map(..) => "map",
        Expr::Unit(..) => "()",
        Expr::DynamicConstant(v, _) => dynamic_kind(v)?,
        _ => return None,
    })
}

fn dynamic_kind(v: &Dynamic) -> Option<&'static str> {
    Some(if v.is_string() {
        "string"
    } else if v.is_int() {
        "int"
    } else if v.is_float() {
        "float"
    } else if v.is_bool() {
        "bool"
    } else if v.is_array() {
        "array"
    } else if v.is_map() {
        "map"
    } else {
        return None;
    })
}

/// Whether a parameter of type `ty` takes a literal of kind `lit`.
/// Unknown types take anything: only sure mismatches are reported.
pub fn accepts(ty: &str, lit: &str) -> bool {
    let t = ty.trim_start_matches("&mut ").trim_start_matches('&');
    let want = match t {
        "str" | "String" | "ImmutableString" | "string" => "string",
        "i64" | "INT" | "int" => "int",
        "f64" | "FLOAT" | "float" => "float",
        "bool" => "bool",
        "char" => "char",
        "Array" | "array" => "array",
        "Map" | "map" => "map",
        "()" => "()",
        _ => return true,
    };
    want == lit
}

fn what(lit: &str) -> &'static str {
    match lit {
        "string" => "a string",
        "int" => "an integer",
        "float" => "a float",
        "bool" => "a bool",
        "char" => "a character",
        "array" => "an array",
        "map" => "a map",
        _ => "()",
    }
}

fn pretty_type(t: &str) -> String {
    t.replace("&str", "String")
        .replace("i64", "int")
        .replace("f64", "float")
}

impl Table {
    /// The names of `engine`'s own functions (its primitives), with the
    /// signatures of those `ast` calls; the language's are looked up by
    /// name when needed.
    pub fn new(engine: &Engine, ast: &AST) -> Table {
        let mut called: HashSet<String> = HashSet::new();
        ast.walk(&mut |nodes: &[ASTNode]| {
            if let Some(ASTNode::Expr(Expr::FnCall(f, _)) | ASTNode::Stmt(Stmt::FnCall(f, _))) =
                nodes.last()
            {
                if f.namespace.is_empty() {
                    called.insert(f.name.to_string());
                }
            }
            true
        });
        let called: HashSet<&str> = called.iter().map(String::as_str).collect();
        let (names, own) = collect(engine, false, Some(&called));
        Table { names, own }
    }

    fn sigs(&self, name: &str) -> Vec<&Sig> {
        let mut v: Vec<&Sig> = self
            .own
            .get(name)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        // Only a name the packages also define needs their signatures.
        if is_std(name) {
            v.extend(
                std_table()
                    .get(name)
                    .map(|s| s.iter())
                    .into_iter()
                    .flatten(),
            );
        }
        v
    }

    /// Whether any function of that name exists.
    pub fn knows(&self, name: &str) -> bool {
        self.names.contains(name) || is_std(name)
    }

    /// Every function name, for did-you-mean hints.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .map(String::as_str)
            .chain(std_names::STD_NAMES.iter().copied())
    }

    /// What is wrong with a call of primitive `name` with `args`, if anything.
    pub fn check_call(&self, name: &str, args: &[Expr]) -> Option<Problem> {
        if !self.names.contains(name) {
            return None;
        }
        let sigs = self.sigs(name);
        let list = || {
            let mut v: Vec<String> = self
                .own
                .get(name)
                .map(|s| s.iter().map(|s| pretty_type(&s.text)).collect())
                .unwrap_or_default();
            v.sort();
            v.dedup();
            v.join("; ")
        };
        let same_arity: Vec<&Sig> = sigs
            .iter()
            .copied()
            .filter(|s| s.params.len() == args.len())
            .collect();
        if same_arity.is_empty() {
            let mut takes: Vec<usize> = sigs.iter().map(|s| s.params.len()).collect();
            takes.sort();
            takes.dedup();
            return Some(Problem::Arity {
                name: name.to_string(),
                takes,
                given: args.len(),
                sigs: list(),
            });
        }
        let lits: Vec<Option<&'static str>> = args.iter().map(literal).collect();
        if lits.iter().all(Option::is_none) {
            return None;
        }
        let fits = |s: &Sig| {
            s.params
                .iter()
                .zip(&lits)
                .all(|(t, l)| l.is_none_or(|l| accepts(t, l)))
        };
        if same_arity.iter().any(|s| fits(s)) {
            return None;
        }
        let s = same_arity[0];
        let (i, (t, l)) = s
            .params
            .iter()
            .zip(&lits)
            .enumerate()
            .find(|(_, (t, l))| l.is_some_and(|l| !accepts(t, l)))?;
        Some(Problem::Type {
            name: name.to_string(),
            arg: i + 1,
            want: t.clone(),
            given: l.unwrap_or("()"),
            sigs: list(),
        })
    }
}

/// Findings of the call checks in `ast`, with their positions.
pub fn check(table: &Table, ast: &AST) -> Vec<(Position, Problem)> {
    let script_fns: HashSet<String> = ast.iter_functions().map(|f| f.name.to_string()).collect();
    // Properties and map keys may hold closures called like methods.
    let mut props: HashSet<String> = HashSet::new();
    let mut vars: HashSet<String> = HashSet::new();
    ast.walk(&mut |nodes: &[ASTNode]| {
        match nodes.last() {
            Some(ASTNode::Expr(Expr::Property(x, _))) => {
                props.insert(x.2.to_string());
            }
            Some(ASTNode::Expr(Expr::Map(x, _))) => {
                props.extend(x.0.iter().map(|(k, _)| k.name.to_string()));
                props.extend(x.1.keys().map(|k| k.to_string()));
            }
            Some(ASTNode::Expr(Expr::DynamicConstant(v, _))) => {
                if let Some(m) = v.read_lock::<rhai::Map>() {
                    props.extend(m.keys().map(|k| k.to_string()));
                }
            }
            Some(ASTNode::Stmt(Stmt::Var(x, ..))) => {
                vars.insert(x.0.name.to_string());
            }
            _ => {}
        }
        true
    });
    for f in ast.iter_functions() {
        vars.extend(f.params.iter().map(|p| p.to_string()));
    }
    let mut out = Vec::new();
    ast.walk(&mut |nodes: &[ASTNode]| {
        match nodes.last() {
            Some(ASTNode::Expr(Expr::FnCall(f, pos)))
            | Some(ASTNode::Stmt(Stmt::FnCall(f, pos)))
                if f.op_token.is_none()
                    && f.namespace.is_empty()
                    && !script_fns.contains(f.name.as_str())
                    && !vars.contains(f.name.as_str()) =>
            {
                if let Some(msg) = table.check_call(&f.name, &f.args) {
                    out.push((*pos, msg));
                }
            }
            Some(ASTNode::Expr(Expr::MethodCall(f, pos))) => {
                let name = f.name.as_str();
                if !table.knows(name)
                    && !script_fns.contains(name)
                    && !props.contains(name)
                    && !KEYWORD_FNS.contains(&name)
                {
                    // A name from another language gets Rhai's word for
                    // it (in the message); anything else the closest
                    // name, if any is close.
                    let hint = if crate::pitfalls::alias_hint(name).is_empty() {
                        crate::suggest::hint(name, table.names())
                    } else {
                        String::new()
                    };
                    out.push((
                        *pos,
                        Problem::UnknownMethod {
                            name: name.to_string(),
                            hint,
                        },
                    ));
                }
            }
            _ => {}
        }
        true
    });
    out.extend(in_place_results(ast, &script_fns, &props));
    out
}

/// The call at the end of `e` when it is a method that works in place and
/// returns nothing (`s.replace(…)`, `a.b.push(x)`).
fn in_place_tail(e: &Expr) -> Option<(&str, Position)> {
    let Expr::Dot(b, ..) = e else {
        return None;
    };
    match &b.rhs {
        Expr::MethodCall(f, pos) if crate::pitfalls::IN_PLACE.contains(&f.name.as_str()) => {
            Some((f.name.as_str(), *pos))
        }
        Expr::Dot(..) => in_place_tail(&b.rhs),
        _ => None,
    }
}

/// The result of an in-place method used as a value (`let t =
/// s.replace("/", "-")`, `print(s.trim())`): always `()`, never what was
/// meant, and nothing fails until much later.
fn in_place_results(
    ast: &AST,
    script_fns: &HashSet<String>,
    props: &HashSet<String>,
) -> Vec<(Position, Problem)> {
    let mut out = Vec::new();
    ast.walk(&mut |nodes: &[ASTNode]| {
        let used: Vec<&Expr> = match nodes.last() {
            Some(ASTNode::Stmt(Stmt::Var(x, ..))) => vec![&x.1],
            Some(ASTNode::Stmt(Stmt::Assignment(x))) => vec![&x.1.rhs],
            Some(ASTNode::Stmt(Stmt::Return(Some(e), ..))) => vec![&**e],
            Some(ASTNode::Stmt(Stmt::FnCall(f, _)))
            | Some(ASTNode::Expr(Expr::FnCall(f, _)))
            | Some(ASTNode::Expr(Expr::MethodCall(f, _))) => f.args.iter().collect(),
            Some(ASTNode::Expr(Expr::InterpolatedString(items, _)))
            | Some(ASTNode::Expr(Expr::Array(items, _))) => items.iter().collect(),
            Some(ASTNode::Expr(Expr::Map(x, _))) => x.0.iter().map(|(_, e)| e).collect(),
            // `s.trim().len()`: the object of the next call.
            Some(ASTNode::Expr(Expr::Dot(b, ..))) => match &b.rhs {
                Expr::Dot(inner, ..) => match &inner.lhs {
                    Expr::MethodCall(f, pos)
                        if crate::pitfalls::IN_PLACE.contains(&f.name.as_str()) =>
                    {
                        if !script_fns.contains(f.name.as_str()) && !props.contains(f.name.as_str())
                        {
                            out.push((*pos, in_place(&f.name)));
                        }
                        vec![]
                    }
                    _ => vec![],
                },
                _ => vec![],
            },
            _ => vec![],
        };
        for e in used {
            if let Some((name, pos)) = in_place_tail(e) {
                if !script_fns.contains(name) && !props.contains(name) {
                    out.push((pos, in_place(name)));
                }
            }
        }
        true
    });
    out
}

fn in_place(name: &str) -> Problem {
    Problem::InPlaceResult {
        name: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's engine with every primitive, on a runtime of its own.
    fn run_engine() -> (tokio::runtime::Runtime, Engine) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ctx = crate::context::Ctx::new(
            crate::context::Settings::new(
                std::path::Path::new("t.rhai"),
                crate::logging::LogFormat::Json,
            ),
            rt.handle().clone(),
        );
        let engine = crate::primitives::engine(&ctx);
        (rt, engine)
    }

    fn findings(src: &str) -> Vec<String> {
        let (_rt, engine) = run_engine();
        let ast = engine.compile(src).unwrap();
        let table = Table::new(&engine, &ast);
        check(&table, &ast)
            .into_iter()
            .map(|(p, m)| format!("{}: {m}", p.line().unwrap_or(0)))
            .collect()
    }

    /// The generated list is the standard package's names, each once, in
    /// order. `UPDATE_STD_NAMES=1 cargo nextest run -E 'test(std_names_are_current)'`
    /// rewrites it after a Rhai upgrade.
    #[test]
    fn std_names_are_current() {
        let engine = crate::engine::new_engine();
        let mut names: Vec<String> = engine
            .collect_fn_metadata(None, |info| Some(info.metadata.name.to_string()), true)
            .into_iter()
            .collect();
        names.sort();
        names.dedup();
        let mut text = String::from(
            "//! Generated by `UPDATE_STD_NAMES=1 cargo nextest run -E 'test(std_names_are_current)'`:\n\
             //! the names of Rhai's standard package, sorted. Do not edit.\n\n\
             /// The standard package's function names, sorted (binary search).\n\
             pub const STD_NAMES: &[&str] = &[\n",
        );
        for n in &names {
            text.push_str(&format!("    {n:?},\n"));
        }
        text.push_str("];\n");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/signatures/std_names.rs");
        if std::env::var_os("UPDATE_STD_NAMES").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let current = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            current == text,
            "{path} is not the standard package's names (a Rhai upgrade?): rerun this test with UPDATE_STD_NAMES=1 and commit the file"
        );
        assert!(std_names::STD_NAMES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn primitives_and_the_language_are_told_apart() {
        let (_rt, engine) = run_engine();
        let ast = engine.compile("validate_endpoint(\"a.b:2000\");").unwrap();
        let table = Table::new(&engine, &ast);
        // Its own table holds primitives only: the standard package is
        // not listed (nor loaded) to build it; only a called primitive's
        // signatures are read.
        assert!(table.names.contains("validate_endpoint") && table.names.contains("exec"));
        assert!(!table.names.contains("len") && !table.names.contains("to_upper"));
        assert!(table.own.contains_key("validate_endpoint") && !table.own.contains_key("exec"));
        assert!(table.knows("len") && table.knows("validate_endpoint"));
        assert!(!table.knows("join"));
    }

    #[test]
    fn wrong_calls_are_named() {
        let f = findings(
            "let x = \"a.b:2000\";\nvalidate_endpoint(x, 5);\nghcr_has_tags(\"img\", \"v1\");\nlet arr = [\"a\"];\nprint(arr.join(\", \"));\nvalidate_endpoint(x);\nghcr_has_tags(\"img\", [\"v1\"]);\nlet m = #{ act: || 1 };\nm.act();\nvalidate_endpoint(x, #{ allow_ip: true });\nlet f = |v| v + 1;\nprint(f.call(2));\n",
        );
        assert_eq!(f.len(), 3, "{f:#?}");
        assert!(
            f[0].starts_with(
                "2: validate_endpoint: argument 2 wants Map, this call gives an integer"
            ),
            "{f:#?}"
        );
        assert!(
            f[1].starts_with("3: ghcr_has_tags: argument 2 wants Array, this call gives a string"),
            "{f:#?}"
        );
        assert!(
            f[2].starts_with("5: no function or method 'join'"),
            "{f:#?}"
        );
        let f = findings("validate_endpoint(\"a.b:2000\", #{}, 3);\n");
        assert!(
            f[0].contains("validate_endpoint takes 1 or 2 argument(s), this call gives 3"),
            "{f:#?}"
        );
    }
}
