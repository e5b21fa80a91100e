//! The deployment ledger: every run that changed something (≥ 1 mutation
//! passed the gate) appends one record for its target: the lock's name,
//! else the playbook's file name. `file` backend: JSON Lines at
//! `<state>/ledger/<target>.jsonl`, each record one `O_APPEND` write (so
//! records never interleave), appended while the run still holds its lock.
//! `kube` backend: see [`crate::lock::kube`] (a ConfigMap per target).
//! `github` backend: see [`crate::lock::github`] (a GitHub Deployment per
//! record, in the environment named after the target).

use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
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
    crate::lock::state::prepare(state, "ledger")?;
    let mut line = record.to_string();
    line.push('\n');
    let mut f = crate::lock::state::open(&p, crate::lock::state::Mode::Append)
        .map_err(|e| format!("cannot open the ledger {}: {e}", p.display()))?;
    // A line torn by a crash has no newline: start a new line rather than
    // glue this record onto it (both would be lost as one bad line).
    if ends_torn(&mut f) {
        line.insert(0, '\n');
    }
    // One write of the whole line: with O_APPEND it lands whole at the end.
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| format!("cannot append to the ledger {}: {e}", p.display()))
}

/// Whether the file's last byte is not a newline (a torn last line).
fn ends_torn(f: &mut std::fs::File) -> bool {
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1))
        .and_then(|_| f.read_exact(&mut last))
        .is_ok_and(|()| last[0] != b'\n')
}

/// Bytes read per step when scanning a ledger file from its end.
const CHUNK: usize = 64 * 1024;

/// The longest line taken as a record; a longer one is a bad line (no
/// record runbook writes comes near: a torn or foreign file does).
pub const MAX_LINE: usize = 1024 * 1024;

/// The fields every reader relies on: a record whose value for one of them
/// is neither a string nor null is a bad line.
const CORE_FIELDS: [&str; 4] = ["result", "start", "sha", "image"];

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

/// Lines of a ledger file a read skipped: told once per read, by the
/// caller (a warning in a run, a line on stderr for `runbook history`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLines {
    /// The ledger file.
    pub file: PathBuf,
    /// How many lines were skipped.
    pub count: usize,
    /// The line number (from 1) of the earliest one, when it could be counted.
    pub first_line: Option<u64>,
    /// What was wrong with that line.
    pub why: String,
}

impl std::fmt::Display for BadLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.count == 1 { "" } else { "s" };
        let at = match self.first_line {
            Some(n) => format!("line {n}"),
            None => "one line".into(),
        };
        write!(
            f,
            "ledger {}: skipped {} bad line{s} (first at {at}: {}); the other records are read. \
             Move the bad lines out of the file to silence this",
            self.file.display(),
            self.count,
            self.why
        )
    }
}

/// What a read found: the records it kept and the lines it skipped.
#[derive(Debug, Default)]
pub struct Found {
    /// Oldest first.
    pub records: Vec<Value>,
    /// `None` when every line read was a record.
    pub bad: Option<BadLines>,
}

/// One line as a record: `Ok(None)` for a blank line, `Err(why)` for a bad
/// one (not UTF-8, not JSON, not an object, a core field not a string).
fn parse_line(line: &[u8]) -> Result<Option<Value>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let Some(o) = v.as_object() else {
        return Err(format!("not a JSON object ({})", short(text)));
    };
    for k in CORE_FIELDS {
        if let Some(x) = o.get(k).filter(|x| !(x.is_string() || x.is_null())) {
            return Err(format!("'{k}' is {}, not a string", short(&x.to_string())));
        }
    }
    Ok(Some(v))
}

/// At most 40 characters of a bad value, for the warning.
fn short(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Walk the lines of `r` from its end, newest first, reading `chunk`
/// bytes at a time: `on_line(offset, line)` gets each line's byte offset
/// and its bytes (without the newline), or `None` for a line longer than
/// [`MAX_LINE`], until it breaks. Memory: one chunk plus one line.
fn walk_back<R: Read + Seek>(
    r: &mut R,
    chunk: usize,
    mut on_line: impl FnMut(u64, Option<&[u8]>) -> ControlFlow<()>,
) -> std::io::Result<()> {
    let mut pos = r.seek(SeekFrom::End(0))?;
    let mut buf = vec![0u8; chunk.max(1)];
    // The end of a line whose start lies in an earlier chunk, in file order.
    let mut tail: Vec<u8> = Vec::new();
    let mut too_long = false;
    while pos > 0 {
        let n = buf.len().min(usize::try_from(pos).unwrap_or(usize::MAX));
        pos -= n as u64;
        r.seek(SeekFrom::Start(pos))?;
        r.read_exact(&mut buf[..n])?;
        let mut end = n;
        while let Some(i) = buf[..end].iter().rposition(|&b| b == b'\n') {
            let piece = &buf[i + 1..end];
            let line = if too_long || tail.len() + piece.len() > MAX_LINE {
                None
            } else if tail.is_empty() {
                Some(piece)
            } else {
                tail.splice(0..0, piece.iter().copied());
                Some(&tail[..])
            };
            if on_line(pos + i as u64 + 1, line).is_break() {
                return Ok(());
            }
            tail.clear();
            too_long = false;
            end = i;
        }
        // No newline left in this chunk: its start continues the line
        // whose end is in `tail`.
        if !too_long {
            if tail.len() + end > MAX_LINE {
                too_long = true;
                tail = Vec::new();
            } else {
                tail.splice(0..0, buf[..end].iter().copied());
            }
        }
    }
    let line = if too_long { None } else { Some(&tail[..]) };
    let _ = on_line(0, line);
    Ok(())
}

/// The line number (from 1) of the line starting at byte `offset`:
/// newlines before it counted, only when a bad line needs naming.
fn line_number<R: Read + Seek>(r: &mut R, offset: u64) -> std::io::Result<u64> {
    r.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; CHUNK];
    let mut left = offset;
    let mut lines = 1u64;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = r.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        left -= n as u64;
    }
    Ok(lines)
}

/// Scan `r` (the ledger `file`) newest first: `f` gets each record and
/// says when to stop. Bad lines are skipped and counted.
fn scan<R: Read + Seek>(
    file: &Path,
    r: &mut R,
    chunk: usize,
    mut f: impl FnMut(Value) -> ControlFlow<()>,
) -> Result<Option<BadLines>, String> {
    let mut count = 0;
    let mut first: Option<(u64, String)> = None;
    walk_back(r, chunk, |offset, line| {
        let parsed = match line {
            Some(l) => parse_line(l),
            None => Err(format!("longer than {} KiB", MAX_LINE / 1024)),
        };
        match parsed {
            Ok(Some(v)) => f(v),
            Ok(None) => ControlFlow::Continue(()),
            Err(why) => {
                count += 1;
                // Walking back, the last one met is the earliest in the file.
                first = Some((offset, why));
                ControlFlow::Continue(())
            }
        }
    })
    .map_err(|e| format!("cannot read the ledger {}: {e}", file.display()))?;
    Ok(first.map(|(offset, why)| BadLines {
        file: file.to_path_buf(),
        count,
        first_line: line_number(r, offset).ok(),
        why,
    }))
}

/// Scan the file ledger of `target` from its end, newest record first,
/// until `f` breaks: memory stays one chunk and one line whatever the
/// file's size. A missing file has no records.
pub fn scan_back(
    state: &Path,
    target: &str,
    f: impl FnMut(Value) -> ControlFlow<()>,
) -> Result<Option<BadLines>, String> {
    let p = path(state, target);
    crate::lock::state::check_existing(state, "ledger")?;
    let mut file = match crate::lock::state::open(&p, crate::lock::state::Mode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the ledger {}: {e}", p.display())),
    };
    scan(&p, &mut file, CHUNK, f)
}

/// The newest `limit` records of `target` that `filter` keeps, oldest
/// first, read from the end of the file ledger.
pub fn newest(state: &Path, target: &str, limit: usize, filter: &Filter) -> Result<Found, String> {
    let mut records = Vec::new();
    if limit == 0 {
        return Ok(Found::default());
    }
    let bad = scan_back(state, target, |r| {
        if filter.keeps(&r) {
            records.push(r);
        }
        if records.len() >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    records.reverse();
    Ok(Found { records, bad })
}

/// The newest `limit` of `records` (oldest first, e.g. a kube ledger's)
/// that `filter` keeps, oldest first.
pub fn keep_newest(records: Vec<Value>, limit: usize, filter: &Filter) -> Vec<Value> {
    let mut kept: Vec<Value> = records.into_iter().filter(|r| filter.keeps(r)).collect();
    let skip = kept.len().saturating_sub(limit);
    kept.drain(..skip);
    kept
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
            let all = rt.block_on(crate::lock::kube::ledger_read(
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
            let api = crate::github::api::Api::from_env(crate::github::api::client())
                .map_err(|e| e.msg)?;
            let records = rt
                .block_on(crate::lock::github::ledger_newest(
                    &api, target, limit, filter,
                ))
                .map_err(|e| e.msg)?;
            Ok(Found { records, bad: None })
        }
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
        Backend::Github => {
            let api = crate::github::api::Api::from_env(crate::github::api::client())
                .map_err(|e| e.msg)?;
            rt.block_on(crate::lock::github::ledger_append(&api, target, record))
                .map_err(|e| e.msg)
        }
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
    record_all(ctx, playbook, args, started, result, None);
}

/// The result of a record written as a guarded rollback starts: a run that
/// dies during its rollback leaves it as the target's newest record, so
/// the next run knows the target may run either version (the run's own
/// record, at its end, follows it).
pub const ROLLBACK_PENDING: &str = "rollback_pending";

/// Before a guarded rollback starts: a `rollback_pending` record, with
/// `why`, in the ledger of each target (as `record_run` picks them), when
/// the run changed anything.
pub fn record_pending(ctx: &Ctx, why: &str) {
    ctx.ledger_notes.lock().insert(
        "rollback_reason".into(),
        Value::String(crate::redact::redact(why).into_owned()),
    );
    let playbook = ctx.settings.playbook.clone();
    record_all(
        ctx,
        &playbook,
        &rhai::Map::new(),
        SystemTime::now(),
        &Ok(()),
        Some(ROLLBACK_PENDING),
    );
}

fn record_all(
    ctx: &Ctx,
    playbook: &Path,
    args: &rhai::Map,
    started: SystemTime,
    result: &Result<(), Error>,
    forced: Option<&'static str>,
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
    let notes = ctx.ledger_notes.lock().clone();
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
            forced,
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
    forced: Option<&'static str>,
) {
    let place = match place_for(lock_place) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("ledger: {e}; this run is not recorded");
            return;
        }
    };
    let state = crate::lock::state_dir(&ctx.settings.workdir);
    // A guarded deploy's outcome says what the target runs now, whatever
    // stopped the run after it (a signal during the rollback included):
    // `--sha previous` reads only `ok` records.
    let outcome = match (forced, ctx.shield.outcome(), result) {
        (Some(f), _, _) => f,
        (None, Some(o), _) => o.ledger_result(),
        (None, None, Ok(())) => "ok",
        (None, None, Err(Error::Timeout(_) | Error::Interrupted(_))) => "cancelled",
        // The gate refused a mutation: the lock was broken, lost or expired.
        (None, None, Err(_)) if ctx.locks.refused().is_some() => "fenced",
        (None, None, Err(_)) => "failed",
    };
    let params = crate::value::to_json(&rhai::Dynamic::from(args.clone()))
        .ok()
        .map(|v| crate::redact::redact(&v.to_string()).into_owned())
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .unwrap_or(Value::Null);
    let previous_image = previous_image(&state, target, &place, &ctx.rt);
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

/// The image of the newest record of `target` that has one: the scan
/// stops there, however long the ledger.
fn previous_image(
    state: &Path,
    target: &str,
    place: &Backend,
    rt: &tokio::runtime::Handle,
) -> Option<String> {
    let with_image = Filter {
        has: Some("image".into()),
        ..Filter::default()
    };
    match newest_any(state, target, place, rt, 1, &with_image) {
        Ok(found) => {
            if let Some(bad) = &found.bad {
                tracing::warn!("{bad}");
            }
            found
                .records
                .into_iter()
                .next()
                .and_then(|r| r.get("image").and_then(Value::as_str).map(String::from))
        }
        Err(e) => {
            tracing::warn!("ledger: cannot find the previous image of {target}: {e}");
            None
        }
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

/// `runbook history TARGET [--json] [--limit N]`.
pub fn history(
    target: &str,
    as_json: bool,
    limit: usize,
    backend: Option<&str>,
    namespace: Option<&str>,
    context: Option<&str>,
) -> Result<(), Error> {
    let target = &crate::lock::name_for(target);
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
    let found = newest_any(
        &state,
        target,
        &place,
        rt.handle(),
        limit,
        &Filter::default(),
    )
    .map_err(Error::Failed)?;
    // No log sink here: the warning goes straight to stderr.
    if let Some(bad) = &found.bad {
        crate::out::eprintln(&format!("warning: {bad}"));
    }
    let records = found.records;
    if as_json {
        crate::out::println(
            &serde_json::to_string_pretty(&records).unwrap_or_else(|_| "[]".into()),
        );
        return Ok(());
    }
    if records.is_empty() {
        let at = match &place {
            Backend::File => state.display().to_string(),
            Backend::Kube { .. } => format!("ConfigMap runbook-ledger-{target}"),
            Backend::Github => format!(
                "deployments to environment {target} of {}",
                std::env::var("GITHUB_REPOSITORY").unwrap_or_default()
            ),
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

    /// Scan `bytes` newest first with a `chunk`-byte step; the `start`
    /// of each record, and the bad lines.
    fn scan_bytes(bytes: &[u8], chunk: usize) -> (Vec<String>, Option<BadLines>) {
        let mut got = Vec::new();
        let bad = scan(
            Path::new("t.jsonl"),
            &mut std::io::Cursor::new(bytes.to_vec()),
            chunk,
            |r| {
                got.push(cell(&r, "start"));
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        (got, bad)
    }

    fn lines(starts: &[&str]) -> Vec<u8> {
        starts
            .iter()
            .map(|s| format!("{{\"start\":\"{s}\",\"result\":\"ok\"}}\n"))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn the_walk_back_yields_every_line_newest_first_whatever_the_chunk() {
        let bytes = lines(&["a", "bb", "ccc", "dddd", "e"]);
        for chunk in [1, 2, 3, 7, 16, 17, 64, 1 << 16] {
            let (got, bad) = scan_bytes(&bytes, chunk);
            assert_eq!(got, ["e", "dddd", "ccc", "bb", "a"], "chunk {chunk}");
            assert_eq!(bad, None, "chunk {chunk}");
        }
        // No newline at the end, blank lines, CRLF: the same records.
        let mut odd = b"\n".to_vec();
        odd.extend(lines(&["a", "b"]));
        odd.extend(b"\r\n\n{\"start\":\"c\"}\r\n{\"start\":\"d\"}");
        for chunk in [1, 5, 1 << 16] {
            assert_eq!(
                scan_bytes(&odd, chunk),
                (vec!["d".into(), "c".into(), "b".into(), "a".into()], None)
            );
        }
        assert_eq!(scan_bytes(b"", 4), (vec![], None));
    }

    #[test]
    fn a_record_longer_than_a_chunk_is_read_and_one_past_the_cap_is_a_bad_line() {
        let big = "x".repeat(200_000);
        let mut bytes = lines(&["a"]);
        bytes.extend(format!("{{\"start\":\"b\",\"note\":\"{big}\"}}\n").into_bytes());
        bytes.extend(lines(&["c"]));
        let (got, bad) = scan_bytes(&bytes, 4096);
        assert_eq!(got, ["c", "b", "a"]);
        assert_eq!(bad, None);

        let huge = "y".repeat(MAX_LINE + 10);
        for at_start in [false, true] {
            let mut bytes = Vec::new();
            if at_start {
                bytes.extend(format!("{{\"start\":\"h\",\"n\":\"{huge}\"}}\n").into_bytes());
            }
            bytes.extend(lines(&["a", "b"]));
            if !at_start {
                bytes.extend(format!("{{\"start\":\"h\",\"n\":\"{huge}\"}}\n").into_bytes());
            }
            bytes.extend(lines(&["c"]));
            let (got, bad) = scan_bytes(&bytes, 64 * 1024);
            assert_eq!(got, ["c", "b", "a"], "the long line first: {at_start}");
            let bad = bad.expect("the long line is bad");
            assert_eq!(bad.count, 1);
            assert_eq!(bad.first_line, Some(if at_start { 1 } else { 3 }));
            assert!(bad.why.contains("longer than 1024 KiB"), "{}", bad.why);
        }
    }

    #[test]
    fn bad_lines_of_every_kind_are_skipped_and_counted_once_with_the_first_line() {
        let kinds: [&[u8]; 9] = [
            b"\xff\xfe{}",
            b"null",
            b"3",
            b"[]",
            b"{\"result\":",
            b"{\"result\": 5}",
            b"{\"start\": {}}",
            b"{\"sha\": [1]}",
            b"{\"image\": true}",
        ];
        for kind in kinds {
            for place in 0..3 {
                // The bad line first, in the middle, or last.
                let mut bytes = Vec::new();
                let push_bad = |b: &mut Vec<u8>| {
                    b.extend_from_slice(kind);
                    b.push(b'\n');
                };
                if place == 0 {
                    push_bad(&mut bytes);
                }
                bytes.extend(lines(&["a", "b"]));
                if place == 1 {
                    push_bad(&mut bytes);
                }
                bytes.extend(lines(&["c"]));
                if place == 2 {
                    push_bad(&mut bytes);
                }
                for chunk in [3, 1 << 16] {
                    let (got, bad) = scan_bytes(&bytes, chunk);
                    let shown = String::from_utf8_lossy(kind);
                    assert_eq!(got, ["c", "b", "a"], "{shown} at {place}");
                    let bad = bad.unwrap_or_else(|| panic!("{shown} at {place} not reported"));
                    assert_eq!(bad.count, 1, "{shown}");
                    assert_eq!(bad.first_line, Some([1, 3, 4][place]), "{shown} at {place}");
                    let text = bad.to_string();
                    assert!(
                        text.starts_with("ledger t.jsonl: skipped 1 bad line (first at line"),
                        "{text}"
                    );
                }
            }
        }
        // Several: one report, the earliest line, the count.
        let mut bytes = b"null\n".to_vec();
        bytes.extend(lines(&["a"]));
        bytes.extend(b"{\"result\":\n\xff\n");
        bytes.extend(lines(&["b"]));
        let (got, bad) = scan_bytes(&bytes, 5);
        assert_eq!(got, ["b", "a"]);
        let bad = bad.unwrap();
        assert_eq!((bad.count, bad.first_line), (3, Some(1)));
        assert_eq!(bad.why, "not a JSON object (null)");
    }

    #[test]
    fn newest_stops_at_what_it_needs_and_filters_while_scanning() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..50 {
            let mut r = json!({"start": format!("s{i}"), "result": if i % 3 == 0 { "ok" } else { "failed" }});
            if i % 2 == 0 {
                r["sha"] = json!(format!("sha{i}"));
            }
            append(dir.path(), "t", &r).unwrap();
        }
        let starts = |f: Found| {
            f.records
                .iter()
                .map(|r| cell(r, "start"))
                .collect::<Vec<_>>()
        };
        let all = Filter::default();
        assert_eq!(
            starts(newest(dir.path(), "t", 3, &all).unwrap()),
            ["s47", "s48", "s49"]
        );
        assert_eq!(
            newest(dir.path(), "t", 500, &all).unwrap().records.len(),
            50
        );
        assert!(newest(dir.path(), "t", 0, &all).unwrap().records.is_empty());
        assert!(newest(dir.path(), "missing", 5, &all)
            .unwrap()
            .records
            .is_empty());
        let ok_with_sha = Filter {
            result: Some("ok".into()),
            has: Some("sha".into()),
        };
        // i % 6 == 0: ok and a sha.
        assert_eq!(
            starts(newest(dir.path(), "t", 2, &ok_with_sha).unwrap()),
            ["s42", "s48"]
        );
        // The scan stops at the second match: the records before it are
        // never looked at.
        let mut seen = 0;
        scan_back(dir.path(), "t", |r| {
            seen += 1;
            if cell(&r, "start") == "s42" {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(seen, 8);
        // The kube path filters the same way.
        let rs: Vec<Value> = (0..50)
            .map(|i| json!({"start": format!("s{i}"), "result": if i % 3 == 0 { "ok" } else { "failed" }, "sha": if i % 2 == 0 { json!(format!("x{i}")) } else { json!("") }}))
            .collect();
        let kept: Vec<String> = keep_newest(rs, 2, &ok_with_sha)
            .iter()
            .map(|r| cell(r, "start"))
            .collect();
        assert_eq!(kept, ["s42", "s48"]);
    }
}
