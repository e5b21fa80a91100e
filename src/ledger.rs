//! The deployment ledger: every run that changed something (≥ 1 mutation
//! passed the gate) appends one record for its target: the lock's name,
//! else the playbook's file name. `file` backend: JSON Lines at
//! `<state>/ledger/<target>.jsonl`, each record one `O_APPEND` write (so
//! records never interleave), appended while the run still holds its lock.
//! `kube` backend: see [`crate::lock::kube`] (a ConfigMap per target).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::Error;
use crate::lock::Backend;

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

/// Append one record to the file ledger of `target`.
pub fn append(state: &Path, target: &str, record: &Value) -> Result<(), String> {
    let p = path(state, target);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)
            .map_err(|e| format!("cannot create the ledger folder {}: {e}", d.display()))?;
    }
    let mut line = record.to_string();
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .map_err(|e| format!("cannot open the ledger {}: {e}", p.display()))?;
    // One write of the whole line: with O_APPEND it lands whole at the end.
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| format!("cannot append to the ledger {}: {e}", p.display()))
}

/// Every record of `target` in the file ledger, oldest first. Lines that do
/// not parse are skipped with a warning (a torn line from a crash).
pub fn read(state: &Path, target: &str) -> Result<Vec<Value>, String> {
    let p = path(state, target);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read the ledger {}: {e}", p.display())),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) => out.push(v),
            Err(e) => tracing::warn!(
                "{} line {}: not a record ({e}); skipped",
                p.display(),
                i + 1
            ),
        }
    }
    Ok(out)
}

/// Where a ledger lives: `RUNBOOK_LEDGER_BACKEND` ("file" or "kube") if
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
        (Some(other), _) => Err(format!(
            "RUNBOOK_LEDGER_BACKEND '{other}' is not one of \"file\", \"kube\""
        )),
    }
}

/// Records of `target`, oldest first, from `place`.
pub fn read_any(
    state: &Path,
    target: &str,
    place: &Backend,
    rt: &tokio::runtime::Handle,
) -> Result<Vec<Value>, String> {
    match place {
        Backend::File => read(state, target),
        // A client of its own: `runbook history` has no run, and the run's
        // end reads once after its primitives are done.
        Backend::Kube { namespace, context } => rt.block_on(crate::lock::kube::ledger_read(
            &crate::kube::Clients::default(),
            target,
            namespace.as_deref(),
            context.as_deref(),
        )),
    }
}

fn append_any(
    state: &Path,
    target: &str,
    record: &Value,
    place: &Backend,
    rt: &tokio::runtime::Handle,
) -> Result<(), String> {
    match place {
        Backend::File => append(state, target, record),
        Backend::Kube { namespace, context } => rt.block_on(crate::lock::kube::ledger_append(
            target,
            record,
            namespace.as_deref(),
            context.as_deref(),
        )),
    }
}

/// Notes for one target are kept in the run's notes map under this
/// prefix + the target's name (an object); the rest apply to every target.
pub const TARGET_NOTE: &str = "@target:";

/// At the run's end: append this run's record, to the ledger of each lock
/// it took (else of its playbook), if it changed anything.
pub fn record_run(
    ctx: &Ctx,
    playbook: &Path,
    args: &rhai::Map,
    started: SystemTime,
    result: &Result<(), Error>,
) {
    if ctx.dry_run() || ctx.locks.mutations() == 0 {
        return;
    }
    let mut targets: Vec<(String, Option<u64>, Option<Backend>)> = ctx
        .locks
        .targets()
        .into_iter()
        .map(|(n, t, b)| (n, Some(t), Some(b)))
        .collect();
    targets.dedup_by(|a, b| a.0 == b.0);
    if targets.is_empty() {
        targets.push((target_of_playbook(playbook), None, None));
    }
    let notes = ctx
        .ledger_notes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (target, token, lock_place) in targets {
        record_one(
            ctx,
            playbook,
            args,
            started,
            result,
            &notes,
            &target,
            token,
            lock_place.as_ref(),
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn record_one(
    ctx: &Ctx,
    playbook: &Path,
    args: &rhai::Map,
    started: SystemTime,
    result: &Result<(), Error>,
    notes: &Map<String, Value>,
    target: &str,
    token: Option<u64>,
    lock_place: Option<&Backend>,
) {
    let place = match place_for(lock_place) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("ledger: {e}; this run is not recorded");
            return;
        }
    };
    let state = crate::lock::state_dir(&ctx.settings.workdir);
    let outcome = match result {
        Ok(()) => "ok",
        Err(Error::Timeout(_) | Error::Interrupted(_)) => "cancelled",
        Err(_) => "failed",
    };
    let params = crate::value::to_json(&rhai::Dynamic::from(args.clone()))
        .ok()
        .map(|v| crate::redact::redact(&v.to_string()).into_owned())
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .unwrap_or(Value::Null);
    let previous_image = read_any(&state, target, &place, &ctx.rt)
        .ok()
        .and_then(|rs| {
            rs.iter()
                .rev()
                .find_map(|r| r.get("image").and_then(Value::as_str).map(String::from))
        });
    let mut rec = Map::new();
    // Notes first (every target's, then this target's): the fields the
    // runtime knows win over a note's.
    for (k, v) in notes.iter().filter(|(k, _)| !k.starts_with(TARGET_NOTE)) {
        rec.insert(k.clone(), v.clone());
    }
    if let Some(Value::Object(o)) = notes.get(&format!("{TARGET_NOTE}{target}")) {
        for (k, v) in o {
            rec.insert(k.clone(), v.clone());
        }
    }
    let core = json!({
        "event": "run",
        "target": target,
        "playbook": playbook.display().to_string(),
        "params": params,
        "actor": crate::lock::actor(),
        "run_url": crate::lock::run_url(),
        "start": crate::opts::rfc3339(started),
        "end": crate::opts::rfc3339(SystemTime::now()),
        "result": outcome,
        "token": token,
        "previous_image": previous_image,
    });
    if let Some(o) = core.as_object() {
        for (k, v) in o {
            rec.insert(k.clone(), v.clone());
        }
    }
    let rec = Value::Object(rec);
    match append_any(&state, target, &rec, &place, &ctx.rt) {
        Ok(()) => {
            tracing::info!(target = %target, result = outcome, "ledger: recorded this run for {target} ({outcome})")
        }
        Err(e) => tracing::warn!("ledger: could not record this run for {target}: {e}"),
    }
}

/// Record a `lock break` in the target's ledger.
pub fn record_break(
    state: &Path,
    place: &Backend,
    rt: &tokio::runtime::Handle,
    target: &str,
    reason: &str,
    token: u64,
    holder: Option<String>,
) -> Result<(), String> {
    let now = crate::opts::rfc3339(SystemTime::now());
    let rec = json!({
        "event": "lock-break",
        "target": target,
        "actor": crate::lock::actor(),
        "run_url": crate::lock::run_url(),
        "start": now,
        "end": now,
        "result": "broken",
        "reason": reason,
        "token": token,
        "broken_holder": holder,
    });
    let place = place_for(Some(place))?;
    append_any(state, target, &rec, &place, rt)
}

fn cell(r: &Value, k: &str) -> String {
    match r.get(k) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
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

/// `runbook history TARGET [--json] [--limit N]`.
pub fn history(
    target: &str,
    as_json: bool,
    limit: usize,
    backend: Option<&str>,
    namespace: Option<&str>,
    context: Option<&str>,
) -> Result<(), Error> {
    crate::lock::check_name(target).map_err(Error::Usage)?;
    let workdir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let state = crate::lock::state_dir(&workdir);
    let lock_place = Backend::parse(
        backend,
        namespace.map(String::from),
        context.map(String::from),
    )
    .map_err(Error::Usage)?;
    let place = if backend.is_some() {
        lock_place
    } else {
        place_for(Some(&lock_place)).map_err(Error::Usage)?
    };
    // Multi-thread: the kube ledger is read through Handle::block_on, which
    // only drives I/O and timers on a runtime with worker threads.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?;
    let records = read_any(&state, target, &place, rt.handle()).map_err(Error::Failed)?;
    if as_json {
        let tail: Vec<&Value> = records.iter().rev().take(limit).collect();
        let tail: Vec<&Value> = tail.into_iter().rev().collect();
        crate::out::println(&serde_json::to_string_pretty(&tail).unwrap_or_else(|_| "[]".into()));
        return Ok(());
    }
    if records.is_empty() {
        let at = match &place {
            Backend::File => state.display().to_string(),
            Backend::Kube { .. } => format!("ConfigMap runbook-ledger-{target}"),
        };
        crate::out::println(&format!(
            "no ledger records for '{target}' ({} backend, {at})",
            place.name()
        ));
        return Ok(());
    }
    crate::out::text(crate::out::Stream::Stdout, &render_table(&records, limit));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let rs = read(dir.path(), "t").unwrap();
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
