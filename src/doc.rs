//! `runbook doc [NAME]`: the reference of every primitive, generated from
//! the engine's own metadata (names, parameters, doc comments), and
//! `--definitions` for editors (`.d.rhai`).

use serde_json::Value;

/// One documented function.
#[derive(Debug)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// Its signature, e.g. `validate_endpoint(endpoint: &str) -> Map`.
    pub signature: String,
    /// Its doc text, without comment markers.
    pub doc: String,
}

fn clean(comments: &[Value]) -> String {
    comments
        .iter()
        .filter_map(Value::as_str)
        .flat_map(|c| c.lines())
        .map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("///").unwrap_or(l);
            l.strip_prefix(' ').unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every primitive the engine registers (not the language's packages).
pub fn entries(engine: &rhai::Engine) -> Vec<Entry> {
    let json = engine.gen_fn_metadata_to_json(false).unwrap_or_default();
    let v: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
    let mut out: Vec<Entry> = v
        .get("functions")
        .and_then(Value::as_array)
        .map(|fs| {
            fs.iter()
                .map(|f| Entry {
                    name: f
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    signature: f
                        .get("signature")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .replace("&str", "String")
                        .replace("i64", "int")
                        .replace("f64", "float"),
                    doc: clean(
                        f.get("docComments")
                            .and_then(Value::as_array)
                            .map_or(&[][..], |a| a.as_slice()),
                    ),
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(a.signature.len().cmp(&b.signature.len()))
    });
    out
}

/// The language's own functions (Rhai's standard packages), by name, with
/// their signatures: what a playbook can use besides the primitives.
pub fn builtins(engine: &rhai::Engine) -> Vec<(String, Vec<String>)> {
    let primitives: std::collections::HashSet<String> = engine
        .gen_fn_signatures(false)
        .iter()
        .filter_map(|s| s.split('(').next().map(|n| n.trim().to_string()))
        .collect();
    let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for sig in engine.gen_fn_signatures(true) {
        let name = sig.split('(').next().unwrap_or("").trim().to_string();
        // Operators and internal getters/setters are not called by name.
        if name.is_empty()
            || primitives.contains(&name)
            || !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            || name.contains('$')
        {
            continue;
        }
        let sig = sig
            .replace("&mut ", "")
            .replace("&str", "String")
            .replace("i64", "int")
            .replace("f64", "float");
        by_name.entry(name).or_default().push(sig);
    }
    for v in by_name.values_mut() {
        v.sort();
        v.dedup();
    }
    by_name.into_iter().collect()
}

/// `runbook doc builtins`, or one built-in's signatures.
pub fn render_builtins(builtins: &[(String, Vec<String>)], name: Option<&str>) -> String {
    let mut s = String::new();
    if name.is_none() {
        s.push_str("The language's own functions (Rhai's standard library), usable in every playbook.\nMethods are called either way: `s.trim()` or `trim(s)`. Reference: https://rhai.rs/book/ (Built-in functions).\n\n");
    }
    for (n, sigs) in builtins {
        if name.is_some_and(|want| want != n) {
            continue;
        }
        for sig in sigs {
            s.push_str(&format!("{sig}\n"));
        }
    }
    s
}

/// Text for a terminal: all entries, or those named `name`.
pub fn render(entries: &[Entry], name: Option<&str>, markdown: bool) -> Result<String, String> {
    render_with(entries, &[], name, markdown)
}

/// [`render`], pointing at the language's built-ins when `name` is one of
/// them (or is none at all).
pub fn render_with(
    entries: &[Entry],
    builtins: &[(String, Vec<String>)],
    name: Option<&str>,
    markdown: bool,
) -> Result<String, String> {
    if name == Some("builtins") {
        return Ok(render_builtins(builtins, None));
    }
    let picked: Vec<&Entry> = entries
        .iter()
        .filter(|e| name.is_none_or(|n| e.name == n))
        .collect();
    if picked.is_empty() {
        let n = name.unwrap_or("");
        if builtins.iter().any(|(b, _)| b == n) {
            return Ok(format!(
                "{n} is not a runbook primitive but a function of the language (Rhai's standard library):\n\n{}\n`runbook doc builtins` lists them all.\n",
                render_builtins(builtins, Some(n))
            ));
        }
        let join_hint = if n == "join" {
            "; Rhai has no join: `arr.reduce(|acc, s| if acc == \"\" { s } else { acc + \", \" + s }, \"\")`"
        } else {
            ""
        };
        let hint = if n == "join" {
            String::new()
        } else {
            crate::suggest::hint(
                n,
                entries
                    .iter()
                    .map(|e| e.name.as_str())
                    .chain(builtins.iter().map(|(b, _)| b.as_str())),
            )
        };
        return Err(format!(
            "there is no primitive or Rhai built-in '{n}'{hint}{join_hint}; `runbook doc` lists the primitives, `runbook doc builtins` the language's own functions"
        ));
    }
    let mut s = String::new();
    for e in picked {
        if markdown {
            s.push_str(&format!("### `{}`\n\n{}\n\n", e.signature, e.doc));
        } else {
            s.push_str(&format!("{}\n", e.signature));
            for line in e.doc.lines() {
                s.push_str(&format!("    {line}\n"));
            }
            s.push('\n');
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_unknown_names_point_somewhere() {
        let engine = crate::engine::new_engine();
        let b = builtins(&engine);
        let all = render_with(&[], &b, Some("builtins"), false).unwrap();
        assert!(
            all.contains("split(string: string, delimiter: string) -> Array"),
            "{all}"
        );
        let one = render_with(&[], &b, Some("trim"), false).unwrap();
        assert!(
            one.starts_with("trim is not a runbook primitive but a function of the language"),
            "{one}"
        );
        let err = render_with(&[], &b, Some("join"), false).unwrap_err();
        assert!(
            err.contains("no primitive or Rhai built-in 'join'"),
            "{err}"
        );
        assert!(err.contains("`runbook doc builtins`"), "{err}");
        assert!(err.contains("arr.reduce"), "{err}");
    }
}
