//! Playbook parameters. A playbook declares them in a literal constant at
//! the top level, which `--help` and `check` read without running anything:
//!
//! ```rhai
//! const PARAMS = #{
//!     sha:  #{ type: "string", required: true, pattern: "[0-9a-f]{40}", help: "git SHA of the image" },
//!     dseq: #{ type: "int", env: "AKASH_DSEQ", help: "Akash deployment" },
//!     dry:  #{ type: "bool", default_value: false },
//! // (`default` is a reserved word in Rhai, hence `default_value`.)
//! };
//! ```
//!
//! Values reach the script as the constant map `args` (`args.sha`).

use std::collections::HashMap;

use regex::Regex;
use rhai::{ASTFlags, Dynamic, Expr, Map, Stmt, AST};

use crate::engine::Resolver;

/// The type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    String,
    /// A whole number.
    Int,
    /// true/false; `--flag` alone means true.
    Bool,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Int => "int",
            Kind::Bool => "bool",
        }
    }
}

/// One declared parameter.
#[derive(Clone, Debug)]
pub struct Param {
    /// Name as the script sees it (`args.name`); `--name` or `--na-me` on the command line.
    pub name: String,
    /// Its type.
    pub kind: Kind,
    /// Must be given (on the command line or through `env`).
    pub required: bool,
    /// Value when not given.
    pub default: Option<Dynamic>,
    /// Environment variable read when the flag is not given.
    pub env: Option<String>,
    /// A regular expression the whole value must match.
    pub pattern: Option<(String, Regex)>,
    /// Allowed values.
    pub choices: Vec<String>,
    /// One line of help.
    pub help: String,
}

/// What a playbook declares about itself.
#[derive(Clone, Debug, Default)]
pub struct Declaration {
    /// The `//!` lines at the top of the file.
    pub description: String,
    /// Declared parameters, in declaration order.
    pub params: Vec<Param>,
}

/// Names the runner itself takes; a playbook cannot declare them.
pub const RESERVED: &[&str] = &[
    "help",
    "dry_run",
    "log_format",
    "timeout",
    "allow",
    "record",
    "version",
];

/// The runner's own options as typed, for did-you-mean on a misspelt one
/// (`--dry-rn`, `--dryrun`).
pub const RUNNER_FLAGS: &[&str] = &[
    "--help",
    "--dry-run",
    "--log-format",
    "--timeout",
    "--allow",
    "--record",
    "--allow-cwd-outside",
];

/// The `//!` description at the top of a playbook.
pub fn description(source: &str) -> String {
    source
        .lines()
        .skip_while(|l| l.starts_with("#!"))
        .take_while(|l| l.trim_start().starts_with("//!") || l.trim().is_empty())
        .filter_map(|l| l.trim_start().strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn spec_err(name: &str, msg: impl std::fmt::Display) -> String {
    format!("PARAMS.{name}: {msg}")
}

/// Read the declaration from a compiled playbook. `resolver` finds the
/// modules its `PARAMS` takes shared fragments from (see `params_map`).
pub fn declaration(ast: &AST, source: &str, resolver: &Resolver) -> Result<Declaration, String> {
    let (decl, errors) = declaration_all(ast, source, resolver);
    if errors.is_empty() {
        Ok(decl)
    } else {
        Err(errors.join("\n"))
    }
}

/// Read the declaration and every mistake in it, in one pass. Parameters
/// with a mistake are still declared as far as they can be read, so later
/// checks (`args.x`) do not report false follow-ups.
pub fn declaration_all(ast: &AST, source: &str, resolver: &Resolver) -> (Declaration, Vec<String>) {
    let mut decl = Declaration {
        description: description(source),
        params: Vec::new(),
    };
    let mut errors = Vec::new();
    let Some(map) = params_map(ast, source, resolver, &mut errors) else {
        return (decl, errors);
    };
    decl.params = map
        .into_iter()
        .filter_map(|(name, spec)| read_spec(name.to_string(), spec, &mut errors))
        .collect();
    // Maps have no order of their own: required ones first, then by name.
    decl.params
        .sort_by(|a, b| b.required.cmp(&a.required).then(a.name.cmp(&b.name)));
    (decl, errors)
}

/// One parameter's spec; `None` (and the mistake in `errors`) when it
/// cannot be read at all.
fn read_spec(name: String, spec: Dynamic, errors: &mut Vec<String>) -> Option<Param> {
    if RESERVED.contains(&name.as_str()) {
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
    const KEYS: &[&str] = &[
        "type",
        "required",
        "default_value",
        "env",
        "pattern",
        "choices",
        "help",
    ];
    for k in spec.keys() {
        if k.as_str() == "default" {
            errors.push(spec_err(
                &name,
                "write `default_value: …` for the default (`default` is a reserved word in Rhai)",
            ));
        } else if let Some(why) = crate::opts::unknown_key("key", k, KEYS, "keys") {
            errors.push(spec_err(&name, why));
        }
    }
    let text = |k: &str| spec.get(k).filter(|v| !v.is_unit()).map(|v| v.to_string());
    let kind = match text("type").as_deref() {
        None | Some("string") => Kind::String,
        Some("int") => Kind::Int,
        Some("bool") => Kind::Bool,
        Some(t) => {
            errors.push(spec_err(
                &name,
                format!("type '{t}' is not one of string, int, bool"),
            ));
            Kind::String
        }
    };
    let required = match spec.get("required") {
        None => false,
        Some(v) => v.as_bool().unwrap_or_else(|_| {
            errors.push(spec_err(&name, "required wants true or false"));
            false
        }),
    };
    let mut default = spec
        .get("default_value")
        .or_else(|| spec.get("default"))
        .cloned()
        .filter(|v| !v.is_unit());
    if let Some(d) = &default {
        let ok = match kind {
            Kind::String => d.is_string(),
            Kind::Int => d.is_int(),
            Kind::Bool => d.is_bool(),
        };
        if !ok {
            errors.push(spec_err(
                &name,
                format!("default_value {d} is not of type {}", kind.name()),
            ));
            default = None;
        } else if required {
            errors.push(spec_err(
                &name,
                "is required and has a default_value; choose one",
            ));
        }
    }
    let pattern = match text("pattern") {
        None => None,
        Some(p) => match Regex::new(&format!("^(?:{p})$")) {
            Ok(re) => Some((p, re)),
            Err(e) => {
                errors.push(spec_err(
                    &name,
                    format!("pattern is not a valid regular expression: {e}"),
                ));
                None
            }
        },
    };
    let choices = match spec.get("choices") {
        None => Vec::new(),
        Some(v) => match v.clone().try_cast::<rhai::Array>() {
            Some(a) => a.iter().map(|c| c.to_string()).collect(),
            None => {
                errors.push(spec_err(&name, "choices wants an array of strings"));
                Vec::new()
            }
        },
    };
    Some(Param {
        name,
        kind,
        required,
        default,
        env: text("env"),
        pattern,
        choices,
        help: text("help").unwrap_or_default(),
    })
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
fn params_map(
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

fn flag(name: &str) -> String {
    format!("--{}", name.replace('_', "-"))
}

impl Param {
    fn convert(&self, raw: &str, from: &str) -> Result<Dynamic, String> {
        let f = flag(&self.name);
        let value = match self.kind {
            Kind::String => Dynamic::from(raw.to_string()),
            Kind::Int => Dynamic::from(
                raw.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("parameter {f} wants an integer, got '{raw}'{from}"))?,
            ),
            Kind::Bool => Dynamic::from(match raw {
                "true" | "yes" | "1" => true,
                "false" | "no" | "0" => false,
                _ => {
                    return Err(format!(
                        "parameter {f} wants true or false, got '{raw}'{from}"
                    ))
                }
            }),
        };
        if let Some((p, re)) = &self.pattern {
            if !re.is_match(raw) {
                let help = if self.help.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", self.help)
                };
                return Err(format!(
                    "parameter {f}: '{raw}'{from} does not match the pattern {p}{help}"
                ));
            }
        }
        if !self.choices.is_empty() && !self.choices.iter().any(|c| c == raw) {
            return Err(format!(
                "parameter {f}: '{raw}'{from} is not one of {}{}",
                self.choices.join(", "),
                crate::suggest::hint(raw, self.choices.iter().map(String::as_str))
            ));
        }
        Ok(value)
    }
}

/// Parse `--name value` / `--name=value` arguments against the declaration,
/// reading `env` fallbacks from the process environment.
pub fn parse_args(decl: &Declaration, args: &[String]) -> Result<Map, String> {
    parse_args_with_env(decl, args, &|name| std::env::var(name).ok())
}

/// [`parse_args`] with the environment given by `env` (`runbook test` hands
/// it the test's `t.env` values, never the real environment).
pub fn parse_args_with_env(
    decl: &Declaration,
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Map, String> {
    let mut given: Vec<(String, Dynamic)> = Vec::new();
    let names: Vec<String> = decl.params.iter().map(|p| flag(&p.name)).collect();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let Some(body) = a.strip_prefix("--") else {
            return Err(format!(
                "unexpected argument '{a}'; parameters are given as --name value (see --help)"
            ));
        };
        let (key, inline) = match body.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (body, None),
        };
        let norm = key.replace('-', "_");
        let Some(p) = decl.params.iter().find(|p| p.name == norm) else {
            let list = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            return Err(format!(
                "unknown parameter --{key}{}; this playbook takes: {list}",
                crate::suggest::hint(
                    &format!("--{key}"),
                    names
                        .iter()
                        .map(String::as_str)
                        .chain(RUNNER_FLAGS.iter().copied())
                )
            ));
        };
        if given.iter().any(|(n, _)| *n == p.name) {
            return Err(format!("parameter {} is given twice", flag(&p.name)));
        }
        let raw = match (inline, p.kind) {
            (Some(v), _) => v,
            // `--flag` alone is true; `--flag true|false` is accepted too.
            (None, Kind::Bool) => match args.get(i + 1).map(String::as_str) {
                Some(v @ ("true" | "false")) => {
                    i += 1;
                    v.to_string()
                }
                // `--flag maybe`: name the values, not "unexpected argument".
                Some(v) if !v.starts_with("--") => {
                    return Err(format!(
                        "parameter {f} is a switch: give {f} alone, or {f} true / {f} false (got '{v}')",
                        f = flag(&p.name)
                    ))
                }
                _ => "true".to_string(),
            },
            (None, _) => {
                i += 1;
                match args.get(i) {
                    Some(v) => v.clone(),
                    None => return Err(format!("parameter {} needs a value", flag(&p.name))),
                }
            }
        };
        given.push((p.name.clone(), p.convert(&raw, "")?));
        i += 1;
    }
    let mut out = Map::new();
    for p in &decl.params {
        let value = match given.iter().position(|(n, _)| *n == p.name) {
            Some(idx) => given.swap_remove(idx).1,
            None => match p
                .env
                .as_ref()
                .and_then(|e| env(e).filter(|v| !v.is_empty()).map(|v| (e, v)))
            {
                Some((e, v)) => p.convert(&v, &format!(" (from ${e})"))?,
                None => match &p.default {
                    Some(d) => d.clone(),
                    None if p.required => {
                        let env = p
                            .env
                            .as_ref()
                            .map_or(String::new(), |e| format!(" or set ${e}"));
                        let help = if p.help.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", p.help)
                        };
                        return Err(format!(
                            "missing required parameter {}{env}{help}",
                            flag(&p.name)
                        ));
                    }
                    None => Dynamic::UNIT,
                },
            },
        };
        out.insert(p.name.as_str().into(), value);
    }
    Ok(out)
}

/// `runbook PLAYBOOK --help`.
pub fn render_help(decl: &Declaration, playbook: &str) -> String {
    let mut s = String::new();
    if !decl.description.is_empty() {
        s.push_str(&decl.description);
        s.push_str("\n\n");
    }
    let mut usage = format!("Usage: runbook {playbook}");
    for p in &decl.params {
        let v = match p.kind {
            Kind::Bool => String::new(),
            k => format!(" <{}>", k.name()),
        };
        if p.required {
            usage.push_str(&format!(" {}{v}", flag(&p.name)));
        } else {
            usage.push_str(&format!(" [{}{v}]", flag(&p.name)));
        }
    }
    s.push_str(&usage);
    s.push_str(" [--dry-run] [--log-format pretty|json|github] [--timeout SECS]\n");
    if !decl.params.is_empty() {
        s.push_str("\nParameters:\n");
        let width = decl
            .params
            .iter()
            .map(|p| flag(&p.name).len() + 9)
            .max()
            .unwrap_or(0);
        for p in &decl.params {
            let head = match p.kind {
                Kind::Bool => flag(&p.name),
                k => format!("{} <{}>", flag(&p.name), k.name()),
            };
            let mut notes = Vec::new();
            if p.required {
                notes.push("required".to_string());
            }
            if let Some(d) = &p.default {
                notes.push(format!("default: {d}"));
            }
            if let Some(e) = &p.env {
                notes.push(format!("env: ${e}"));
            }
            if !p.choices.is_empty() {
                notes.push(format!("one of: {}", p.choices.join(", ")));
            }
            if let Some((pat, _)) = &p.pattern {
                notes.push(format!("pattern: {pat}"));
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!(" [{}]", notes.join("; "))
            };
            s.push_str(&format!("  {head:width$}  {}{notes}\n", p.help));
        }
    }
    s.push_str("\nRunner options:\n  --dry-run            read for real, change nothing, print the plan\n  --log-format FORMAT  pretty (terminal), json, github (default under GitHub Actions)\n  --timeout SECS       deadline for the whole run (exit 124)\n  --allow PROGRAM      let exec() run PROGRAM too\n  --record FILE.json   write every primitive call and its result (for t.replay)\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const PB: &str = r#"//! Roll back the API.
//! Second line.
const PARAMS = #{
    sha: #{ type: "string", required: true, pattern: "[0-9a-f]{40}", help: "git SHA" },
    dseq: #{ type: "int", default_value: 5 },
    stack: #{ choices: ["banano", "api", "both"], default_value: "both" },
    verbose: #{ type: "bool", default_value: false },
    rpc_endpoint: #{ help: "host:port" },
};
print(args.sha);
"#;

    /// Imports of a playbook in the current folder (these have none).
    fn here() -> Resolver {
        Resolver::new(std::path::Path::new("pb.rhai"))
    }

    fn decl() -> Declaration {
        let ast = rhai::Engine::new().compile(PB).unwrap();
        declaration(&ast, PB, &here()).unwrap()
    }

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const SHA: &str = "4f1c2a9d0b8e7c6f5a4b3c2d1e0f9a8b7c6d5e4f";

    #[test]
    fn reads_the_declaration_without_running() {
        let d = decl();
        assert_eq!(d.description, "Roll back the API.\nSecond line.");
        let names: Vec<&str> = d.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["sha", "dseq", "rpc_endpoint", "stack", "verbose"]);
        let help = render_help(&d, "rollback.rhai");
        assert!(help.contains("--sha <string>"), "{help}");
        assert!(help.contains("--rpc-endpoint"), "{help}");
        assert!(help.contains("one of: banano, api, both"), "{help}");
    }

    #[test]
    fn parses_both_forms_and_defaults() {
        let m = parse_args(
            &decl(),
            &args(&[
                "--sha",
                SHA,
                "--dseq=7",
                "--verbose",
                "--rpc-endpoint",
                "a.b:2000",
            ]),
        )
        .unwrap();
        assert_eq!(m["sha"].to_string(), SHA);
        assert_eq!(m["dseq"].as_int().unwrap(), 7);
        assert!(m["verbose"].as_bool().unwrap());
        assert_eq!(m["stack"].to_string(), "both");
        assert_eq!(m["rpc_endpoint"].to_string(), "a.b:2000");
        let m = parse_args(&decl(), &args(&["--sha", SHA])).unwrap();
        assert!(m["rpc_endpoint"].is_unit());
        // Bool flags take a separate true/false too.
        for (a, want) in [
            (&["--verbose", "false"][..], false),
            (&["--verbose", "true", "--dseq", "2"][..], true),
        ] {
            let mut v = args(&["--sha", SHA]);
            v.extend(args(a));
            let m = parse_args(&decl(), &v).unwrap();
            assert_eq!(m["verbose"].as_bool().unwrap(), want, "{a:?}");
        }
    }

    #[test]
    fn bad_input_names_the_parameter() {
        let d = decl();
        let cases: &[(&[&str], &str)] = &[
            (&[], "missing required parameter --sha"),
            (&["--sha", &SHA[..39]], "does not match the pattern"),
            (
                &["--sha", &SHA.to_uppercase()],
                "does not match the pattern",
            ),
            (&["--sha", SHA, "--dseq", "x"], "--dseq wants an integer"),
            (
                &["--sha", SHA, "--stack", "bananna"],
                "did you mean 'banano'",
            ),
            (&["--sha", SHA, "--verbose=maybe"], "wants true or false"),
            (
                &["--sha", SHA, "--verbose", "maybe"],
                "parameter --verbose is a switch: give --verbose alone, or --verbose true / --verbose false (got 'maybe')",
            ),
            (
                &["--sha", SHA, "--dry-rn"],
                "unknown parameter --dry-rn (did you mean '--dry-run'?)",
            ),
            (
                &["--sha", SHA, "--dryrun"],
                "unknown parameter --dryrun (did you mean '--dry-run'?)",
            ),
            (
                &["--sha", SHA, "--shaa", "x"],
                "unknown parameter --shaa (did you mean '--sha'?)",
            ),
            (&["--sha", SHA, "stray"], "unexpected argument 'stray'"),
            (&["--sha", SHA, "--sha", SHA], "given twice"),
            (&["--sha"], "needs a value"),
        ];
        for (a, want) in cases {
            let err = parse_args(&d, &args(a)).unwrap_err();
            assert!(err.contains(want), "{a:?}: {err}");
        }
    }

    #[test]
    fn bad_declarations_are_refused() {
        let cases = [
            (
                "const PARAMS = #{ x: #{ type: \"float\" } };",
                "type 'float'",
            ),
            (
                "const PARAMS = #{ x: #{ typ: \"int\" } };",
                "did you mean 'type'",
            ),
            (
                "const PARAMS = #{ x: #{ pattern: \"(\" } };",
                "not a valid regular expression",
            ),
            ("const PARAMS = #{ timeout: #{} };", "reserved"),
            ("let PARAMS = #{ x: #{} };", "a constant"),
            (
                "const PARAMS = #{ x: #{ type: \"int\", default_value: \"a\" } };",
                "is not of type int",
            ),
            (
                "const PARAMS = #{ x: #{ required: true, default_value: \"a\" } };",
                "choose one",
            ),
        ];
        for (src, want) in cases {
            let ast = rhai::Engine::new().compile(src).unwrap();
            let err = declaration(&ast, src, &here()).unwrap_err();
            assert!(err.contains(want), "{src}: {err}");
        }
    }

    #[test]
    fn every_mistake_in_one_pass_without_follow_ups() {
        let src = r#"const PARAMS = #{
    tag: #{ "default": "x", typ: "int" },
    n: #{ requred: true, type: "float" },
};"#;
        let ast = rhai::Engine::new().compile(src).unwrap();
        let (decl, errors) = declaration_all(&ast, src, &here());
        let all = errors.join("\n");
        assert_eq!(errors.len(), 4, "{all}");
        assert!(
            all.contains("PARAMS.tag: write `default_value: …`"),
            "{all}"
        );
        assert!(
            all.contains("PARAMS.tag: unknown key 'typ' (did you mean 'type'?)"),
            "{all}"
        );
        assert!(
            all.contains("PARAMS.n: unknown key 'requred' (did you mean 'required'?)"),
            "{all}"
        );
        assert!(all.contains("PARAMS.n: type 'float'"), "{all}");
        // Both stay declared: `args.tag` is not a false "not declared".
        let names: Vec<&str> = decl.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["n", "tag"]);
    }

    /// A project with `lib/shared.rhai` beside `pb.rhai`: the declaration
    /// of `pb` (source given) and its mistakes.
    fn with_fragment(module: &str, pb: &str) -> (Declaration, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/shared.rhai"), module).unwrap();
        let path = dir.path().join("pb.rhai");
        let ast = rhai::Engine::new().compile(pb).unwrap();
        declaration_all(&ast, pb, &Resolver::new(&path))
    }

    const SHARED: &str = r#"export const IMAGE_PARAMS = #{
    sha: #{ required: true, pattern: "[0-9a-f]{40}", help: "git SHA" },
    branch: #{ default_value: "main" },
};
const PRIVATE_PARAMS = #{ x: #{} };
fn helper() { 1 }
"#;

    #[test]
    fn imported_fragments_join_with_later_specs_winning() {
        let pb = "import \"lib/shared\" as base;\nconst PARAMS = base::IMAGE_PARAMS + #{ branch: #{ default_value: \"dev\" }, dseq: #{ type: \"int\" } };\n";
        let (d, errors) = with_fragment(SHARED, pb);
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<&str> = d.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["sha", "branch", "dseq"]);
        assert_eq!(d.params[1].default.as_ref().unwrap().to_string(), "dev");
        assert!(d.params[0].pattern.is_some());
        // Rhai's own `+` on maps agrees at run time.
        let run = rhai::Engine::new()
            .eval::<Map>("#{ a: 1, b: 1 } + #{ b: 2 }")
            .unwrap();
        assert_eq!(run["b"].as_int().unwrap(), 2);
    }

    #[test]
    fn fragment_mistakes_are_named() {
        let cases = [
            (
                "const PARAMS = other::IMAGE_PARAMS;",
                "no `import \"…\" as other;`",
            ),
            (
                "const PARAMS = base::IMAGE_PARAMS;\nimport \"lib/shared\" as base;",
                "move `import \"lib/shared\" as base;` above PARAMS",
            ),
            (
                "import \"lib/shared\" as base;\nconst PARAMS = base::PRIVATE_PARAMS;",
                "no literal `export const PRIVATE_PARAMS",
            ),
            (
                "import \"lib/nosuch\" as base;\nconst PARAMS = base::IMAGE_PARAMS;",
                "the module \"lib/nosuch\" is not found",
            ),
            (
                "import \"lib/shared\" as base;\nconst PARAMS = base::IMAGE_PARAMS + helper();",
                "PARAMS must be a literal map",
            ),
        ];
        for (pb, want) in cases {
            let (_, errors) = with_fragment(SHARED, pb);
            assert!(errors.join("\n").contains(want), "{pb}: {errors:?}");
        }
        // A module that does not parse is named, not skipped.
        let pb = "import \"lib/shared\" as base;\nconst PARAMS = base::IMAGE_PARAMS;";
        let (_, errors) = with_fragment("export const IMAGE_PARAMS = #{ sha: ", pb);
        assert!(
            errors
                .join("\n")
                .contains("lib/shared.rhai does not compile"),
            "{errors:?}"
        );
    }

    #[test]
    fn two_fragments_of_one_module_join() {
        let pb = "import \"lib/shared\" as base;\nconst PARAMS = base::IMAGE_PARAMS + base::MORE_PARAMS;";
        let module =
            format!("{SHARED}export const MORE_PARAMS = #{{ dseq: #{{ type: \"int\" }} }};\n");
        let (d, errors) = with_fragment(&module, pb);
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<&str> = d.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["sha", "branch", "dseq"]);
    }

    #[test]
    fn an_import_earlier_on_the_same_line_counts_as_above() {
        let pb = "import \"lib/shared\" as base; const PARAMS = base::IMAGE_PARAMS;";
        let (d, errors) = with_fragment(SHARED, pb);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(d.params.len(), 2);
        let pb = "const PARAMS = base::IMAGE_PARAMS; import \"lib/shared\" as base;";
        let (_, errors) = with_fragment(SHARED, pb);
        assert!(errors.join("\n").contains("above PARAMS"), "{errors:?}");
    }

    #[test]
    fn a_modules_fragments_are_checked_where_they_are_written() {
        let src = "export const IMAGE_PARAMS = #{ sha: #{ typ: \"int\" }, timeout: #{} };\nexport const BAD_PARAMS = 5;\nexport const OTHER = #{ x: 1 };\n";
        let ast = rhai::Engine::new().compile(src).unwrap();
        let all = fragment_errors(&ast).join("\n");
        assert!(all.contains("IMAGE_PARAMS.sha: unknown key 'typ'"), "{all}");
        assert!(
            all.contains("IMAGE_PARAMS.timeout: the name is reserved"),
            "{all}"
        );
        assert!(
            all.contains("BAD_PARAMS: a parameter fragment must be a literal map"),
            "{all}"
        );
        assert!(!all.contains("OTHER"), "{all}");
    }
}
