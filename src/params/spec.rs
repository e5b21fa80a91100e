//! Reading `PARAMS` from a compiled playbook without running it: the
//! literal map (or literal maps and imported fragments joined with `+`),
//! then each parameter's spec, key by key.

use std::collections::HashMap;

use regex::Regex;
use rhai::{ASTFlags, Dynamic, Expr, Map, Stmt, AST};

use super::{is_reserved, Kind, Param};
use crate::engine::Resolver;

fn spec_err(name: &str, msg: impl std::fmt::Display) -> String {
    format!("PARAMS.{name}: {msg}")
}

/// The keys a parameter's spec may have.
const KEYS: &[&str] = &[
    "type",
    "required",
    "default_value",
    "env",
    "pattern",
    "choices",
    "help",
];

/// One parameter's spec; `None` (and the mistake in `errors`) when it
/// cannot be read at all. Every other mistake is added to `errors` and the
/// parameter is still declared as far as it can be read.
pub(super) fn read_spec(name: String, spec: Dynamic, errors: &mut Vec<String>) -> Option<Param> {
    if is_reserved(&name) {
        errors.push(spec_err(
            &name,
            "the name is reserved for the runner's own options; choose another",
        ));
        return None;
    }
    let Some(spec) = spec.try_cast::<Map>() else {
        errors.push(spec_err(
            &name,
            "wants a map like #{ type: \"string\", help: \"…\" }",
        ));
        return None;
    };
    let mut err = |msg: String| errors.push(spec_err(&name, msg));
    check_keys(&spec, &mut err);
    let kind = kind_of(&spec, &mut err);
    let required = required_of(&spec, &mut err);
    let default = default_of(&spec, kind, required, &mut err);
    let pattern = pattern_of(&spec, &mut err);
    let choices = choices_of(&spec, &mut err);
    Some(Param {
        kind,
        required,
        default,
        env: text(&spec, "env"),
        pattern,
        choices,
        help: text(&spec, "help").unwrap_or_default(),
        name,
    })
}

/// A key's value as text, when it is there and not `()`.
fn text(spec: &Map, k: &str) -> Option<String> {
    spec.get(k).filter(|v| !v.is_unit()).map(|v| v.to_string())
}

/// Unknown keys, and `default` for `default_value`.
fn check_keys(spec: &Map, err: &mut dyn FnMut(String)) {
    for k in spec.keys() {
        if k.as_str() == "default" {
            err(
                "write `default_value: …` for the default (`default` is a reserved word in Rhai)"
                    .into(),
            );
        } else if let Some(why) = crate::opts::unknown_key("key", k, KEYS, "keys") {
            err(why);
        }
    }
}

fn kind_of(spec: &Map, err: &mut dyn FnMut(String)) -> Kind {
    match text(spec, "type").as_deref() {
        None | Some("string") => Kind::String,
        Some("int") => Kind::Int,
        Some("bool") => Kind::Bool,
        Some(t) => {
            err(format!("type '{t}' is not one of string, int, bool"));
            Kind::String
        }
    }
}

fn required_of(spec: &Map, err: &mut dyn FnMut(String)) -> bool {
    match spec.get("required") {
        None => false,
        Some(v) => v.as_bool().unwrap_or_else(|_| {
            err("required wants true or false".into());
            false
        }),
    }
}

/// `default_value`, when it has the parameter's type.
fn default_of(
    spec: &Map,
    kind: Kind,
    required: bool,
    err: &mut dyn FnMut(String),
) -> Option<Dynamic> {
    let d = spec
        .get("default_value")
        .or_else(|| spec.get("default"))
        .cloned()
        .filter(|v| !v.is_unit())?;
    let ok = match kind {
        Kind::String => d.is_string(),
        Kind::Int => d.is_int(),
        Kind::Bool => d.is_bool(),
    };
    if !ok {
        err(format!("default_value {d} is not of type {}", kind.name()));
        return None;
    }
    if required {
        err("is required and has a default_value; choose one".into());
    }
    Some(d)
}

/// `pattern`, anchored: the whole value must match.
fn pattern_of(spec: &Map, err: &mut dyn FnMut(String)) -> Option<(String, Regex)> {
    let p = text(spec, "pattern")?;
    match Regex::new(&format!("^(?:{p})$")) {
        Ok(re) => Some((p, re)),
        Err(e) => {
            err(format!("pattern is not a valid regular expression: {e}"));
            None
        }
    }
}

fn choices_of(spec: &Map, err: &mut dyn FnMut(String)) -> Vec<String> {
    match spec.get("choices") {
        None => Vec::new(),
        Some(v) => match v.clone().try_cast::<rhai::Array>() {
            Some(a) => a.iter().map(|c| c.to_string()).collect(),
            None => {
                err("choices wants an array of strings".into());
                Vec::new()
            }
        },
    }
}

/// Mistakes in a module's parameter fragments (every `export const
/// *_PARAMS`), so `runbook check` reports them at the module itself and
/// not only, once per importer, as the importing playbook's `PARAMS`.
pub fn fragment_errors(ast: &AST) -> Vec<String> {
    let mut errors = Vec::new();
    for s in ast.statements() {
        let Stmt::Var(x, flags, _) = s else { continue };
        let name = x.0.name.as_str();
        if !flags.contains(ASTFlags::EXPORTED) || !name.ends_with("PARAMS") {
            continue;
        }
        let Some(map) =
            x.1.get_literal_value(None)
                .and_then(|v| v.try_cast::<Map>())
        else {
            errors.push(format!("{name}: a parameter fragment must be a literal map of parameter specs, #{{ name: #{{ help: \"…\" }}, … }}"));
            continue;
        };
        let mut found = Vec::new();
        for (param, spec) in map {
            read_spec(param.to_string(), spec, &mut found);
        }
        errors.extend(found.into_iter().map(|e| match e.strip_prefix("PARAMS.") {
            Some(rest) => format!("{name}.{rest}"),
            None => e,
        }));
    }
    errors
}

/// The map `PARAMS` declares, read without running anything: a literal
/// map, or literal maps and fragments of imported modules joined with `+`
/// (`const PARAMS = release::IMAGE_PARAMS + #{ dseq: … };`), later ones
/// replacing earlier specs of the same name, as Rhai's `+` on maps does at
/// run time. Fragments let several playbooks declare a shared parameter
/// once; they must be literal `export const` maps of the module, so
/// `--help` and `check` can still read them without running it.
pub(super) fn params_map(
    ast: &AST,
    source: &str,
    resolver: &Resolver,
    errors: &mut Vec<String>,
) -> Option<Map> {
    let found = ast.statements().iter().find_map(|s| match s {
        Stmt::Var(x, flags, pos) if x.0.name == "PARAMS" => Some((&x.1, *flags, *pos)),
        _ => None,
    });
    let Some((expr, flags, pos)) = found else {
        if source
            .lines()
            .any(|l| l.trim_start().starts_with("const PARAMS"))
        {
            errors.push("PARAMS must be declared at the top level of the playbook, not inside a block or function".into());
        }
        return None;
    };
    if !flags.contains(ASTFlags::CONSTANT) {
        errors.push(
            "declare parameters with `const PARAMS = #{ ... };` (a constant, not `let`)".into(),
        );
    }
    let mut terms = Vec::new();
    sum_terms(expr, &mut terms);
    let mut map = Map::new();
    // Each module parsed once, however many of its fragments PARAMS joins.
    let mut modules = HashMap::new();
    for term in terms {
        match term_map(ast, term, pos, resolver, &mut modules) {
            Ok(m) => map.extend(m),
            Err(e) => {
                errors.push(e);
                return None;
            }
        }
    }
    Some(map)
}

/// The operands of `a + b + …`, left to right.
fn sum_terms<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::FnCall(f, _)
            if f.op_token.is_some()
                && f.name == "+"
                && f.args.len() == 2
                && f.namespace.is_empty() =>
        {
            sum_terms(&f.args[0], out);
            sum_terms(&f.args[1], out);
        }
        _ => out.push(e),
    }
}

const PARAMS_SHAPE: &str = "PARAMS must be a literal map (no variables, calls or expressions inside it), or literal maps and imported fragments joined with + (`const PARAMS = release::IMAGE_PARAMS + #{ … };`), at the top level";

/// One operand of `PARAMS`: a literal map, or `alias::NAME`, the literal
/// `export const NAME` of the module imported as `alias` above `PARAMS`.
fn term_map(
    ast: &AST,
    term: &Expr,
    params_pos: rhai::Position,
    resolver: &Resolver,
    modules: &mut HashMap<String, (String, AST)>,
) -> Result<Map, String> {
    if let Some(v) = term.get_literal_value(None) {
        return v.try_cast::<Map>().ok_or_else(|| {
            "PARAMS must be a map: #{ name: #{ type: \"string\", help: \"…\" }, … }".to_string()
        });
    }
    let Expr::Variable(x, ..) = term else {
        return Err(PARAMS_SHAPE.into());
    };
    if x.2.is_empty() {
        return Err(PARAMS_SHAPE.into());
    }
    let (alias, name) = (x.2.root(), x.1.as_str());
    let Some((path, _, import_pos)) = crate::engine::imports(ast)
        .into_iter()
        .find(|(_, a, _)| a == alias)
    else {
        return Err(format!(
            "PARAMS: `{alias}::{name}`: no `import \"…\" as {alias};` in this playbook"
        ));
    };
    let at = |p: rhai::Position| (p.line(), p.position());
    if at(import_pos) >= at(params_pos) {
        return Err(format!(
            "PARAMS: `{alias}::{name}`: move `import \"{path}\" as {alias};` above PARAMS (it runs in order)"
        ));
    }
    if !modules.contains_key(&path) {
        let (origin, text) = resolver.lookup(&path)?.ok_or_else(|| {
            format!("PARAMS: `{alias}::{name}`: the module \"{path}\" is not found")
        })?;
        // Parsed only, never run (and not through the run's module cache:
        // the run compiles its modules on its own sandboxed engine).
        let mut parser = rhai::Engine::new_raw();
        parser.set_max_expr_depths(64, 64);
        let module = parser
            .compile(&text)
            .map_err(|e| format!("PARAMS: `{alias}::{name}`: {origin} does not compile: {e}"))?;
        modules.insert(path.clone(), (origin, module));
    }
    let (origin, module) = &modules[&path];
    let fragment = module
        .iter_literal_variables(true, false)
        .find(|(n, ..)| *n == name)
        .and_then(|(_, _, v)| v.try_cast::<Map>());
    let exported = module.statements().iter().any(|s| {
        matches!(s, Stmt::Var(x, flags, _) if x.0.name == name && flags.contains(ASTFlags::EXPORTED))
    });
    match fragment {
        Some(m) if exported => Ok(m),
        _ => Err(format!(
            "PARAMS: `{alias}::{name}`: {origin} has no literal `export const {name} = #{{ … }};` (a fragment is a literal map of parameter specs)"
        )),
    }
}
