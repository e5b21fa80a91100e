//! The deployment ledger: every run that changed something (≥ 1 mutation
//! passed the gate) appends one record for its target: the lock's name,
//! else the playbook's file name. `file` backend: JSON Lines at
//! `<state>/ledger/<target>.jsonl`, each record one `O_APPEND` write (so
//! records never interleave), appended while the run still holds its lock.
//! `kube` backend: see [`kube`] (a ConfigMap per target).
//! `github` backend: see [`github`] (a GitHub Deployment per record, in
//! the environment named after the target).
//!
//! Parts: [`tail`] reads a file ledger from its end, [`mod@append`] appends
//! (and repairs a torn last line), [`record`] writes what a run did; here:
//! where a ledger lives, reading any backend, and the table `runbook
//! history` prints (the command itself is `crate::commands::lock`).

pub mod append;
pub mod github;
pub mod kube;
pub mod record;
pub mod tail;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::lock::Backend;

pub use append::append;
pub use record::{
    high_water, record_break, record_pending, record_run, RunFacts, ROLLBACK_PENDING, TARGET_NOTE,
};
pub use tail::{keep_newest, newest, scan_back, BadLines, Found, MAX_LINE};

/// Records kept per target by the kube backend (a ConfigMap holds at most
/// 1 MiB: 50 records stay far below it).
pub const KUBE_CAP: usize = 50;

/// The ledger file of `target`.
pub fn path(state: &Path, target: &str) -> PathBuf {
    state.join("ledger").join(format!("{target}.jsonl"))
}

/// A target name from a playbook's file name: lowercase, anything but
/// letters, digits, '.' and '-' becomes '-'.
pub fn target_of_playbook(p: &Path) -> String {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let t: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let t = t.trim_matches(['-', '.']).to_string();
    if t.is_empty() {
        "playbook".into()
    } else {
        t
    }
}

/// Which records a read keeps (all, when empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only records whose `result` is exactly this.
    pub result: Option<String>,
    /// Only records where this field is a non-empty string.
    pub has: Option<String>,
}

impl Filter {
    /// Whether `r` passes.
    pub fn keeps(&self, r: &Value) -> bool {
        let s = |k: &str| r.get(k).and_then(Value::as_str);
        self.result
            .as_deref()
            .is_none_or(|want| s("result") == Some(want))
            && self
                .has
                .as_deref()
                .is_none_or(|k| s(k).is_some_and(|v| !v.is_empty()))
    }
}

/// Where a ledger lives: `RUNBOOK_LEDGER_BACKEND` ("file", "kube" or "github") if
/// set, else where the run's first lock lives, else the file backend.
pub fn place_for(lock: Option<&Backend>) -> Result<Backend, String> {
    let env = std::env::var("RUNBOOK_LEDGER_BACKEND")
        .ok()
        .filter(|s| !s.is_empty());
    let (ns, cx) = match lock {
        Some(Backend::Kube { namespace, context }) => (namespace.clone(), context.clone()),
        _ => (None, None),
    };
    match (env.as_deref(), lock) {
        (None, Some(b)) => Ok(b.clone()),
        (None, None) | (Some("file"), _) => Ok(Backend::File),
        (Some("kube"), _) => Ok(Backend::Kube {
            namespace: ns,
            context: cx,
        }),
        (Some("github"), _) => Ok(Backend::Github),
        (Some(other), _) => Err(format!(
            "RUNBOOK_LEDGER_BACKEND '{other}' is not one of \"file\", \"kube\", \"github\""
        )),
    }
}

/// The newest `limit` records of `target` that `filter` keeps, oldest
/// first, from `place`: the file ledger is read from its end; the kube
/// one (at most [`KUBE_CAP`] records) whole, then filtered; the github one
/// page by page, newest first, until enough are kept.
pub fn newest_any(
    state: &Path,
    target: &str,
    place: &Backend,
    rt: &tokio::runtime::Handle,
    limit: usize,
    filter: &Filter,
) -> Result<Found, String> {
    match place {
        Backend::File => newest(state, target, limit, filter),
        // A client of its own: `runbook history` has no run, and the run's
        // end reads once after its primitives are done.
        Backend::Kube { namespace, context } => {
            let all = rt.block_on(kube::read(
                &crate::kube::Clients::default(),
                target,
                namespace.as_deref(),
                context.as_deref(),
            ))?;
            Ok(Found {
                records: keep_newest(all, limit, filter),
                bad: None,
            })
        }
        Backend::Github => {
            let api = crate::net::github::Api::from_env(crate::net::github::client())
                .map_err(|e| e.msg)?;
            let records = rt
                .block_on(github::newest(&api, target, limit, filter))
                .map_err(|e| e.msg)?;
            Ok(Found { records, bad: None })
        }
    }
}

fn cell(r: &Value, k: &str) -> String {
    match r.get(k) {
        None | Some(Value::Null) => "-".into(),
        // A recorded newline (a `ledger_note`, a break's reason) would
        // print a forged row: cells are one line.
        Some(Value::String(s)) => crate::out::one_line(s).into_owned(),
        Some(v) => v.to_string(),
    }
}

/// The records as a table, newest first, at most `limit`.
pub fn render_table(records: &[Value], limit: usize) -> String {
    let cols = [
        "start",
        "result",
        "token",
        "actor",
        "playbook",
        "image",
        "previous_image",
    ];
    let rows: Vec<Vec<String>> = records
        .iter()
        .rev()
        .take(limit)
        .map(|r| {
            cols.iter()
                .map(|c| match *c {
                    "image" => {
                        let v = cell(r, "image");
                        if v == "-" {
                            cell(r, "sha")
                        } else {
                            v
                        }
                    }
                    "playbook" if r.get("event").and_then(Value::as_str) == Some("lock-break") => {
                        format!("lock break: {}", cell(r, "reason"))
                    }
                    _ => cell(r, c),
                })
                .collect()
        })
        .collect();
    let heads: Vec<String> = cols.iter().map(|c| c.to_uppercase()).collect();
    let mut widths: Vec<usize> = heads.iter().map(String::len).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&heads);
    for r in &rows {
        out.push_str(&line(r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn append_then_read_and_render() {
        let dir = tempfile::tempdir().unwrap();
        append(
            dir.path(),
            "t",
            &json!({"start": "a", "result": "ok", "image": "img:1"}),
        )
        .unwrap();
        append(
            dir.path(),
            "t",
            &json!({"start": "b", "result": "failed", "sha": "abc"}),
        )
        .unwrap();
        let rs = newest(dir.path(), "t", 10, &Filter::default())
            .unwrap()
            .records;
        assert_eq!(rs.len(), 2);
        let t = render_table(&rs, 10);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("START"), "{t}");
        assert!(
            lines[1].starts_with("b") && lines[1].contains("abc"),
            "newest first: {t}"
        );
        assert!(lines[2].contains("img:1"), "{t}");
        assert_eq!(render_table(&rs, 1).lines().count(), 2, "limit");
    }

    #[test]
    fn targets_from_playbook_names() {
        assert_eq!(
            target_of_playbook(Path::new("playbooks/Split_Deploy.rhai")),
            "split-deploy"
        );
        assert_eq!(target_of_playbook(Path::new("__.rhai")), "playbook");
    }
}
