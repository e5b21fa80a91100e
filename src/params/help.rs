//! `runbook PLAYBOOK --help`: the description, usage, parameters and the
//! runner's own options.

use super::{flag, Declaration, Kind};

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
    s.push_str(" [runner options]\n");
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
    s.push('\n');
    s.push_str(&super::runner::help());
    s
}
