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

/// Text for a terminal: all entries, or those named `name`.
pub fn render(entries: &[Entry], name: Option<&str>, markdown: bool) -> Result<String, String> {
    let picked: Vec<&Entry> = entries
        .iter()
        .filter(|e| name.is_none_or(|n| e.name == n))
        .collect();
    if picked.is_empty() {
        let n = name.unwrap_or("");
        return Err(format!(
            "there is no primitive '{n}'{}; `runbook doc` lists them all",
            crate::suggest::hint(n, entries.iter().map(|e| e.name.as_str()))
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
