//! `lock(name[, opts])`, `unlock(name)` and `ledger_note(map)`: the target
//! lock of a run and the fields it adds to the deployment ledger.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, FuncRegistration, Map};
use tokio_util::sync::CancellationToken;

use crate::context::{error, Ctx, RhaiResult};
use crate::lock::{self, Backend, BusyError, Deadline, Held, HolderInfo};
use crate::primitives::Opts;

const LOCK_DOC: &str = "\
/// Take an exclusive lock on a target for the rest of the run: released when
/// the run ends (success, failure, signal, timeout) or by `unlock(name)`.
/// Renewed every ttl/3 in the background; every primitive that changes the
/// world checks it first and refuses once it was lost (renewal failed by
/// the deadline, or `runbook lock break`), so the run never acts after.
///
/// Options: `backend` (\"file\" or \"kube\"; default `RUNBOOK_LOCK_BACKEND`,
/// else \"file\"), `ttl` (default 60 s, at least 1 s), `wait` (how long to
/// wait for a busy lock, default 0), and for kube: `namespace`, `context`.
///
/// Returns `#{ name, backend, holder, token, expires }`; `token` is the
/// fencing token, which only grows per lock name. A lock still busy after
/// `wait` ends the run with exit code 75, naming the holder, its playbook,
/// run URL and how long it has held it. A dry run takes no lock: it logs
/// whether the lock is free.
///
/// ```rhai
/// let l = lock(`akash-${args.dseq}`, #{ wait: 120 });
/// ```";

/// The parsed options of `lock`.
struct LockOpts {
    backend: Backend,
    ttl: Duration,
    wait: Duration,
}

fn read_opts(opts: &Map) -> RhaiResult<LockOpts> {
    let o = Opts::new(
        "lock",
        opts,
        &["backend", "ttl", "wait", "namespace", "context"],
    )?;
    let backend = Backend::parse(
        o.str("backend")?.as_deref(),
        o.str("namespace")?,
        o.str("context")?,
    )
    .map_err(|e| error(format!("lock: {e}")))?;
    let ttl = o.duration("ttl")?.unwrap_or(lock::DEFAULT_TTL);
    if ttl < Duration::from_secs(1) {
        return Err(error(
            "lock: option 'ttl' must be at least 1 second (it is renewed every ttl/3)",
        ));
    }
    let wait = o.duration("wait")?.unwrap_or(Duration::ZERO);
    Ok(LockOpts { backend, ttl, wait })
}

fn result_map(name: &str, backend: &str, holder: &str, token: u64, expires: &str) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), Dynamic::from(name.to_string()));
    m.insert("backend".into(), Dynamic::from(backend.to_string()));
    m.insert("holder".into(), Dynamic::from(holder.to_string()));
    m.insert("token".into(), Dynamic::from(token as i64));
    m.insert("expires".into(), Dynamic::from(expires.to_string()));
    m
}

/// The error of a lock still busy after `wait`: the run exits 75.
pub fn busy(name: &str, holder: Option<&HolderInfo>, waited: Duration) -> Box<rhai::EvalAltResult> {
    let who = holder.map_or_else(
        || "another run (its record is unreadable)".into(),
        HolderInfo::describe,
    );
    let msg = format!(
        "lock: '{name}' is held by {who}; waited {} (exit {}: retry later, or give `wait` to queue for it)",
        crate::error::fmt_secs(waited),
        lock::BUSY_EXIT
    );
    let msg = crate::redact::redact(&msg).into_owned();
    rhai::EvalAltResult::ErrorRuntime(Dynamic::from(BusyError(msg)), rhai::Position::NONE).into()
}

fn take(ctx: &Arc<Ctx>, name: &str, opts: &Map) -> RhaiResult<Map> {
    lock::check_name(name).map_err(|e| error(format!("lock: {e}")))?;
    let o = read_opts(opts)?;
    if let Some(token) = ctx.locks.token_of(name) {
        tracing::info!(lock = name, "lock '{name}' is already held by this run");
        let me = HolderInfo::current("");
        return Ok(result_map(name, o.backend.name(), &me.holder, token, ""));
    }
    let playbook = ctx.settings.playbook.display().to_string();
    let info = HolderInfo::current(&playbook);
    if ctx.dry_run() {
        // A dry run changes nothing, a Lease included: it only tells.
        let s = match &o.backend {
            Backend::File => lock::file::status(&lock::state_dir(&ctx.settings.workdir), name),
            Backend::Kube { namespace, context } => {
                let (ns, cx, n) = (namespace.clone(), context.clone(), name.to_string());
                ctx.block_on("lock", Duration::from_secs(30), async move {
                    lock::kube::status(&n, ns.as_deref(), cx.as_deref()).await
                })
                .map(Ok)?
            }
        }
        .map_err(|e| error(format!("lock: {e}")))?;
        let now = match (&s.holder, s.held) {
            (Some(h), true) => format!("held now by {}", h.describe()),
            _ => "free now".into(),
        };
        tracing::info!(
            primitive = "lock",
            lock = name,
            planned = true,
            "dry run: would lock '{name}' ({}; {now})",
            o.backend.name()
        );
        let mut m = result_map(name, o.backend.name(), &info.holder, 0, "");
        m.insert("planned".into(), Dynamic::from(true));
        return Ok(m);
    }
    match &o.backend {
        Backend::File => take_file(ctx, name, &o, &info),
        Backend::Kube { namespace, context } => crate::lock::kube::take(
            ctx,
            name,
            namespace.as_deref(),
            context.as_deref(),
            o.ttl,
            o.wait,
            &info,
        ),
    }
}

fn take_file(ctx: &Arc<Ctx>, name: &str, o: &LockOpts, info: &HolderInfo) -> RhaiResult<Map> {
    let state = lock::state_dir(&ctx.settings.workdir);
    let started = Instant::now();
    let mut waiting_logged = false;
    loop {
        match lock::file::acquire(&state, name, info, o.ttl)
            .map_err(|e| error(format!("lock: {e}")))?
        {
            lock::file::Acquire::Held(f, record) => {
                let deadline = Deadline::new(o.ttl);
                let stop = CancellationToken::new();
                f.spawn_renewal(&ctx.rt, o.ttl, deadline.clone(), stop.clone());
                let expires = lock::rfc3339_secs(record.expires.unwrap_or_default());
                tracing::info!(
                    primitive = "lock",
                    lock = name,
                    backend = "file",
                    fencing_token = record.token,
                    "locked '{name}' (file, fencing token {}, ttl {})",
                    record.token,
                    crate::error::fmt_secs(o.ttl)
                );
                ctx.locks.add(Held {
                    name: name.to_string(),
                    backend: "file",
                    place: Backend::File,
                    token: record.token,
                    deadline,
                    stop,
                    handle: lock::Handle::File(f),
                });
                return Ok(result_map(
                    name,
                    "file",
                    &info.holder,
                    record.token,
                    &expires,
                ));
            }
            lock::file::Acquire::Busy(rec) => {
                let holder = rec.as_ref().and_then(|r| r.holder.clone());
                if started.elapsed() >= o.wait {
                    return Err(busy(name, holder.as_ref(), started.elapsed()));
                }
                if !waiting_logged {
                    waiting_logged = true;
                    tracing::info!(
                        lock = name,
                        "lock '{name}' is busy ({}); waiting up to {}",
                        holder
                            .as_ref()
                            .map_or_else(|| "holder unknown".into(), HolderInfo::describe),
                        crate::error::fmt_secs(o.wait)
                    );
                }
                // flock has no queue: poll (waiters are not served in order).
                let left = o.wait.saturating_sub(started.elapsed());
                ctx.sleep(left.min(Duration::from_millis(50)))?;
            }
        }
    }
}

/// Merge `fields` (redacted) into the run's notes, for every target or one.
fn note(ctx: &Ctx, target: Option<&str>, fields: Map) -> RhaiResult<()> {
    let v = crate::primitives::to_json(&Dynamic::from(fields))
        .map_err(|e| error(format!("ledger_note: {e}")))?;
    let text = crate::redact::redact(&v.to_string()).into_owned();
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| error(format!("ledger_note: {e}")))?;
    let Some(o) = v.as_object() else {
        return Ok(());
    };
    let mut notes = ctx.ledger_notes.lock().unwrap_or_else(|e| e.into_inner());
    let dest = match target {
        None => &mut *notes,
        Some(t) => {
            let slot = notes
                .entry(format!("{}{t}", crate::ledger::TARGET_NOTE))
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if !slot.is_object() {
                *slot = serde_json::Value::Object(serde_json::Map::new());
            }
            match slot.as_object_mut() {
                Some(m) => m,
                None => return Ok(()),
            }
        }
    };
    for (k, v) in o {
        dest.insert(k.clone(), v.clone());
    }
    Ok(())
}

/// Register `lock`, `unlock`, `ledger_history` and `ledger_note`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    FuncRegistration::new("lock")
        .with_params_info(["name: &str", "opts: Map", "Map"])
        .with_comments([LOCK_DOC])
        .register_into_engine(engine, move |name: &str, opts: Map| take(&c, name, &opts));
    let c = ctx.clone();
    FuncRegistration::new("lock")
        .with_params_info(["name: &str", "Map"])
        .with_comments(["/// `lock(name)`: `lock` with the default options."])
        .register_into_engine(engine, move |name: &str| take(&c, name, &Map::new()));

    let c = ctx.clone();
    FuncRegistration::new("unlock")
        .with_params_info(["name: &str", "bool"])
        .with_comments(["/// Release a lock this run holds before the run ends. Returns whether it\n/// was held. Mutations after it are no longer fenced by that lock."])
        .register_into_engine(engine, move |name: &str| -> bool { c.locks.release(name, &c.rt) });

    let c = ctx.clone();
    FuncRegistration::new("ledger_history")
        .with_params_info(["target: &str", "Array"])
        .with_comments(["/// The deployment-ledger records of `target`, oldest first (maps with\n/// `result`, `start`, `end`, `actor`, `playbook`, `token`, and the fields\n/// `ledger_note` added, e.g. `sha`, `image`). Read from where this run's\n/// lock on `target` lives, else `RUNBOOK_LEDGER_BACKEND`, else the state folder."])
        .register_into_engine(engine, move |target: &str| -> RhaiResult<rhai::Array> {
            lock::check_name(target).map_err(|e| error(format!("ledger_history: {e}")))?;
            let held = c.locks.target().filter(|(n, _, _)| n == target).map(|(_, _, p)| p);
            let place = crate::ledger::place_for(held.as_ref()).map_err(|e| error(format!("ledger_history: {e}")))?;
            let state = lock::state_dir(&c.settings.workdir);
            let (c2, t2) = (c.clone(), target.to_string());
            // The kube read blocks on the runtime: run it off the script's
            // async context like every other call.
            let records = match &place {
                Backend::File => crate::ledger::read(&state, target),
                Backend::Kube { namespace, context } => {
                    let (ns, cx) = (namespace.clone(), context.clone());
                    c2.block_on("ledger_history", Duration::from_secs(30), async move {
                        lock::kube::ledger_read(&t2, ns.as_deref(), cx.as_deref()).await
                    }).map(Ok)?
                }
            }
            .map_err(|e| error(format!("ledger_history: {e}")))?;
            Ok(records.iter().map(crate::primitives::to_dynamic).collect())
        });

    let c = ctx.clone();
    FuncRegistration::new("ledger_note")
        .with_params_info(["fields: Map", "()"])
        .with_comments(["/// Add fields to this run's deployment-ledger records (e.g. `#{ image, sha,\n/// digest }`); later notes replace earlier ones of the same name. Secrets\n/// are redacted. The records are written at the run's end, one per lock\n/// taken, if the run changed anything (a dry run records nothing)."])
        .register_into_engine(engine, move |fields: Map| -> RhaiResult<()> { note(&c, None, fields) });
    let c = ctx.clone();
    FuncRegistration::new("ledger_note")
        .with_params_info(["target: &str", "fields: Map", "()"])
        .with_comments(["/// `ledger_note` for the record of one target only (a run that locks\n/// several, e.g. split-deploy's two stacks)."])
        .register_into_engine(engine, move |target: &str, fields: Map| -> RhaiResult<()> {
            lock::check_name(target).map_err(|e| error(format!("ledger_note: {e}")))?;
            note(&c, Some(target), fields)
        });
}
