//! `lock(name[, opts])`, `unlock(name)` and `ledger_note(map)`: the target
//! lock of a run and the fields it adds to the deployment ledger.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, Map, Position};

use crate::context::{error, terminated, Ctx, RhaiResult};
use crate::declare::{Opt, Spec};
use crate::error::BusyError;
use crate::lock::{self, Backend, HolderInfo, LockError};
use crate::opts::Opts;

/// The parsed options of `lock`.
struct LockOpts {
    backend: Backend,
    ttl: Duration,
    wait: Duration,
}

fn read_opts(o: &Opts) -> RhaiResult<LockOpts> {
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

/// What `lock(..)` returns: `#{ name, backend, holder, token, expires }`.
fn result_map(name: &str, backend: &str, holder: &str, token: u64, expires: &str) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), name.into());
    m.insert("backend".into(), backend.into());
    m.insert("holder".into(), holder.into());
    m.insert("token".into(), (token as i64).into());
    m.insert("expires".into(), expires.into());
    m
}

/// A backend's refusal as the script sees it: busy becomes a
/// [`BusyError`] (the run exits 75), cancellation stops the script.
/// `shown` is the lock as messages name it ([`lock::describe_name`]).
fn lock_error(shown: &str, e: LockError) -> Box<EvalAltResult> {
    match e {
        LockError::Busy { holder, waited } => {
            let msg = lock::busy_message(shown, holder.as_deref(), waited);
            let msg = crate::redact::redact(&msg).into_owned();
            EvalAltResult::ErrorRuntime(Dynamic::from(BusyError(msg)), Position::NONE).into()
        }
        LockError::Cancelled => terminated(),
        LockError::Failed(e) => e.into(),
    }
}

fn take(ctx: &Arc<Ctx>, target: &str, opts: &Opts) -> RhaiResult<Map> {
    let name = &lock::name_for(target);
    let o = read_opts(opts)?;
    if name != target {
        tracing::info!(
            lock = name.as_str(),
            target,
            "lock {}",
            lock::describe_name(target, name)
        );
    }
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
            Backend::Kube { namespace, context } => ctx
                .call(
                    "lock",
                    Duration::from_secs(30),
                    lock::kube::status(&ctx.kube, name, namespace.as_deref(), context.as_deref()),
                )?
                .map(Ok)?,
            Backend::Github => ctx
                .call(
                    "lock",
                    Duration::from_secs(60),
                    lock::github::status((*ctx.http_same_origin).clone(), name),
                )?
                .map(Ok)?,
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
    let want = lock::Want {
        name,
        info: &info,
        ttl: o.ttl,
        wait: o.wait,
    };
    let (scope, locks) = (&ctx.scope(), &ctx.locks);
    let taken = match &o.backend {
        Backend::File => {
            let state = lock::state_dir(&ctx.settings.workdir);
            // A new lock file goes on from the highest token the ledger
            // remembers, never back to 1.
            let floor = || crate::ledger::high_water(&state, name);
            lock::file::take(scope, locks, &state, &want, &floor)
        }
        Backend::Kube { namespace, context } => lock::kube::take(
            scope,
            locks,
            &ctx.kube,
            namespace.as_deref(),
            context.as_deref(),
            &want,
        ),
        Backend::Github => lock::github::take(scope, locks, (*ctx.http_same_origin).clone(), &want),
    }
    .map_err(|e| lock_error(&lock::describe_name(target, name), e))?;
    Ok(result_map(
        name,
        taken.backend,
        &taken.holder,
        taken.token,
        &taken.expires,
    ))
}

/// Merge `fields` (redacted) into the run's notes, for every target or one.
fn note(ctx: &Ctx, target: Option<&str>, fields: Map) -> RhaiResult<()> {
    let v = crate::value::to_json(&Dynamic::from(fields))
        .map_err(|e| error(format!("ledger_note: {e}")))?;
    let text = crate::redact::redact(&v.to_string()).into_owned();
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| error(format!("ledger_note: {e}")))?;
    let Some(o) = v.as_object() else {
        return Ok(());
    };
    let mut notes = ctx.ledger_notes.lock();
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

#[rustfmt::skip]
static LOCK: Spec = Spec {
    name: "lock",
    params: &["name: String"],
    returns: "Map",
    doc: include_str!("docs/lock.md"),
    opts: &[
        Opt { key: "backend", ty: "string", default: "`RUNBOOK_LOCK_BACKEND`, else \"file\"", help: "\"file\" (a lock file in the state folder), \"kube\" (a Lease) or \"github\" (a Git ref in `GITHUB_REPOSITORY`, with `GITHUB_TOKEN`)" },
        Opt { key: "ttl", ty: "duration", default: "60s", help: "how long the lock lives without renewal (at least 1 s; renewed every ttl/3)" },
        Opt { key: "wait", ty: "duration", default: "0", help: "how long to wait for a busy lock before exit 75" },
        Opt { key: "namespace", ty: "string", default: "the context's", help: "kube backend: the Lease's namespace" },
        Opt { key: "context", ty: "string", default: "the current one", help: "kube backend: the kubeconfig context" },
    ],
};

#[rustfmt::skip]
static UNLOCK: Spec = Spec {
    name: "unlock",
    params: &["name: String"],
    returns: "bool",
    doc: include_str!("docs/unlock.md"),
    opts: &[],
};

#[rustfmt::skip]
static LEDGER_HISTORY: Spec = Spec {
    name: "ledger_history",
    params: &["target: String"],
    returns: "Array",
    doc: include_str!("docs/ledger_history.md"),
    opts: &[],
};

/// `ledger_history(target, opts)`. Registered first: its one-argument
/// overload is then replaced by [`LEDGER_HISTORY`]'s, which has other
/// defaults (the newest 1,000, unfiltered).
#[rustfmt::skip]
static LEDGER_HISTORY_OPTS: Spec = Spec {
    name: "ledger_history",
    params: &["target: String"],
    returns: "Array",
    doc: include_str!("docs/ledger_history_opts.md"),
    opts: &[
        Opt { key: "limit", ty: "int", default: "20", help: "at most this many records, the newest (1 to 10000)" },
        Opt { key: "result", ty: "string", default: "any", help: "only records whose `result` is this (\"ok\", \"failed\", \"cancelled\", \"fenced\", \"broken\")" },
        Opt { key: "has", ty: "string", default: "none", help: "only records where this field is a non-empty string (e.g. \"sha\", \"image\")" },
    ],
};

/// Records `ledger_history(target)` returns at most.
const HISTORY_ALL: usize = 1_000;
/// The default and the largest `limit` of `ledger_history(target, opts)`.
const HISTORY_DEFAULT: usize = 20;
const HISTORY_MAX: usize = 10_000;
/// The engine's bound on the array and map entries (nested ones counted)
/// of one value (`engine::base`): a longer answer would fail in the
/// engine with no hint, so the binding names the fix first.
const ENGINE_MAX_ITEMS: usize = 100_000;

#[rustfmt::skip]
static LEDGER_NOTE: Spec = Spec {
    name: "ledger_note",
    params: &["fields: Map"],
    returns: "()",
    doc: include_str!("docs/ledger_note.md"),
    opts: &[],
};

#[rustfmt::skip]
static LEDGER_NOTE_TARGET: Spec = Spec {
    name: "ledger_note",
    params: &["target: String", "fields: Map"],
    returns: "()",
    doc: include_str!("docs/ledger_note_target.md"),
    opts: &[],
};

/// What `ledger_history(target, opts)` asks for: how many, which.
fn history_opts(o: &Opts) -> RhaiResult<(usize, crate::ledger::Filter)> {
    let limit = match o.int("limit")? {
        None => HISTORY_DEFAULT,
        Some(n) if (1..=HISTORY_MAX as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(error(format!(
                "ledger_history: option 'limit' is {n}; give 1 to {HISTORY_MAX}"
            )))
        }
    };
    let filter = crate::ledger::Filter {
        result: o.str("result")?,
        has: o.str("has")?.filter(|s| !s.is_empty()),
    };
    Ok((limit, filter))
}

/// `ledger_history(target[, opts])`: the newest `limit` records `filter`
/// keeps, oldest first.
fn history(
    c: &Arc<Ctx>,
    target: &str,
    limit: usize,
    filter: &crate::ledger::Filter,
) -> RhaiResult<rhai::Array> {
    let target = &lock::name_for(target);
    let held = c
        .locks
        .target()
        .filter(|(n, _, _)| n == target)
        .map(|(_, _, p)| p);
    let place = crate::ledger::place_for(held.as_ref())
        .map_err(|e| error(format!("ledger_history: {e}")))?;
    let state = lock::state_dir(&c.settings.workdir);
    // The kube read goes through the run's clients and is bounded and
    // cancelled like every other call.
    let records = match &place {
        Backend::File => crate::ledger::newest(&state, target, limit, filter).map(|found| {
            if let Some(bad) = &found.bad {
                tracing::warn!("{bad}");
            }
            found.records
        }),
        Backend::Kube { namespace, context } => c
            .call(
                "ledger_history",
                Duration::from_secs(30),
                crate::ledger::kube::read(
                    &c.kube,
                    target,
                    namespace.as_deref(),
                    context.as_deref(),
                ),
            )?
            .map(|all| Ok(crate::ledger::keep_newest(all, limit, filter)))?,
        Backend::Github => {
            let api = crate::net::github::Api::from_env((*c.http_same_origin).clone())
                .map_err(|e| error(format!("ledger_history: {e}")))?;
            c.call(
                "ledger_history",
                Duration::from_secs(120),
                crate::ledger::github::newest(&api, target, limit, filter),
            )?
            .map_err(|e| e.msg)
        }
    }
    .map_err(|e| error(format!("ledger_history: {e}")))?;
    let (arrays, maps) = records.iter().fold((records.len(), 0), |(a, m), r| {
        let (ra, rm) = sizes(r);
        (a + ra, m + rm)
    });
    if arrays.max(maps) > ENGINE_MAX_ITEMS {
        return Err(error(format!(
            "ledger_history: the {} records of '{target}' asked for hold {} values, more than a \
             playbook value may ({ENGINE_MAX_ITEMS}); ask for fewer with `limit` or narrow them \
             with `result` and `has`",
            records.len(),
            arrays.max(maps)
        )));
    }
    Ok(records.iter().map(crate::value::to_dynamic).collect())
}

/// The array elements and map entries inside `v`, nested ones included:
/// what the engine counts against its size limits, as Rhai's
/// `calc_data_sizes` does.
fn sizes(v: &serde_json::Value) -> (usize, usize) {
    let add = |(a, m): (usize, usize), (b, n): (usize, usize)| (a + b, m + n);
    match v {
        serde_json::Value::Array(xs) => xs.iter().map(sizes).fold((xs.len(), 0), add),
        serde_json::Value::Object(o) => o.values().map(sizes).fold((0, o.len()), add),
        _ => (0, 0),
    }
}

/// Register `lock`, `unlock`, `ledger_history` and `ledger_note`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    LOCK.register1(engine, move |name: ImmutableString, o: &Opts| {
        take(&c, &name, o)
    });
    let c = ctx.clone();
    UNLOCK.register1(engine, move |name: ImmutableString, _: &Opts| {
        Ok(c.locks.release(&lock::name_for(&name), &c.rt))
    });
    let c = ctx.clone();
    LEDGER_HISTORY_OPTS.register1(engine, move |target: ImmutableString, o: &Opts| {
        let (limit, filter) = history_opts(o)?;
        history(&c, &target, limit, &filter)
    });
    let c = ctx.clone();
    LEDGER_HISTORY.register1(engine, move |target: ImmutableString, _: &Opts| {
        history(&c, &target, HISTORY_ALL, &crate::ledger::Filter::default())
    });
    let c = ctx.clone();
    LEDGER_NOTE.register1(engine, move |fields: Map, _: &Opts| note(&c, None, fields));
    let c = ctx.clone();
    LEDGER_NOTE_TARGET.register2(
        engine,
        move |target: ImmutableString, fields: Map, _: &Opts| {
            note(&c, Some(&lock::name_for(&target)), fields)
        },
    );
}
