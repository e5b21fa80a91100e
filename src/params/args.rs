//! The playbook's parameters on the command line: `--name value`,
//! `--name=value`, a bool's `--flag` alone, each converted and checked
//! against its spec, then `env` fallbacks and defaults.

use rhai::{Dynamic, Map};

use super::{flag, Declaration, Kind, Param};

/// A switch's value, read the same way for a bool parameter and for the
/// runner's own switches (`--dry-run=false`): true/yes/1 or false/no/0.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

impl Param {
    fn convert(&self, raw: &str, from: &str) -> Result<Dynamic, String> {
        let f = flag(&self.name);
        let value =
            match self.kind {
                Kind::String => Dynamic::from(raw.to_string()),
                Kind::Int => {
                    Dynamic::from(raw.trim().parse::<i64>().map_err(|_| {
                        format!("parameter {f} wants an integer, got '{raw}'{from}")
                    })?)
                }
                Kind::Bool => Dynamic::from(parse_bool(raw).ok_or_else(|| {
                    format!("parameter {f} wants true or false, got '{raw}'{from}")
                })?),
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
/// reading `env` fallbacks through `env` (a run hands it the process
/// environment, `runbook test` the test's `t.env` values).
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
                        .chain(super::runner::flags().iter().map(String::as_str))
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
