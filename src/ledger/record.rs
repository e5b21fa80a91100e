//! What a run leaves in the ledger: one record per target it changed (at
//! its end, or `rollback_pending` before a guarded rollback), and a
//! `lock break`'s record. Takes the run's facts ([`RunFacts`]), not the
//! run's context.

use std::path::Path;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::append::append_any;
use super::{newest_any, place_for, target_of_playbook, Filter};
use crate::error::Error;
use crate::lock::Backend;

/// What the ledger needs of a run: where it ran, whether it was a dry
/// run, its locks (targets, mutations, a refused mutation), its notes and
/// its guarded outcome. The run's context composes it (`Ctx::ledger_facts`).
pub struct RunFacts<'a> {
    /// The playbook being run.
    pub playbook: &'a Path,
    /// The working directory (the state folder is found from it).
    pub workdir: &'a Path,
    /// A dry run records nothing.
    pub dry_run: bool,
    /// The run's locks.
    pub locks: &'a crate::lock::Locks,
    /// Fields `ledger_note` added (a rollback adds its reason).
    pub notes: &'a parking_lot::Mutex<Map<String, Value>>,
    /// The guarded deploy's outcome as a record's `result`, if one ran.
    pub guarded: Option<&'static str>,
    /// The runtime the kube and github backends run on.
    pub rt: &'a tokio::runtime::Handle,
}

/// Notes for one target are kept in the run's notes map under this
/// prefix + the target's name (an object); the rest apply to every target.
pub const TARGET_NOTE: &str = "@target:";

/// At the run's end: append this run's record, to the ledger of each lock
/// it took (else of its playbook), if it changed anything. `params`: the
/// run's arguments as JSON (redacted again here).
pub fn record_run(
    facts: &RunFacts,
    playbook: &Path,
    params: &Value,
    started: SystemTime,
    result: &Result<(), Error>,
) {
    record_all(facts, playbook, params, started, result, None);
}

/// The result of a record written as a guarded rollback starts: a run that
/// dies during its rollback leaves it as the target's newest record, so
/// the next run knows the target may run either version (the run's own
/// record, at its end, follows it).
pub const ROLLBACK_PENDING: &str = "rollback_pending";

/// Before a guarded rollback starts: a `rollback_pending` record, with
/// `why`, in the ledger of each target (as `record_run` picks them), when
/// the run changed anything.
pub fn record_pending(facts: &RunFacts, why: &str) {
    facts.notes.lock().insert(
        "rollback_reason".into(),
        Value::String(crate::redact::redact(why).into_owned()),
    );
    record_all(
        facts,
        facts.playbook,
        &Value::Object(Map::new()),
        SystemTime::now(),
        &Ok(()),
        Some(ROLLBACK_PENDING),
    );
}

fn record_all(
    facts: &RunFacts,
    playbook: &Path,
    params: &Value,
    started: SystemTime,
    result: &Result<(), Error>,
    forced: Option<&'static str>,
) {
    if facts.dry_run || facts.locks.mutations() == 0 {
        return;
    }
    // One record per target however often the run took its lock (a, b,
    // then a again), with the last token it held: the highest.
    let mut targets: Vec<(String, Option<u64>, Option<Backend>)> = Vec::new();
    for (name, token, backend) in facts.locks.targets() {
        match targets.iter_mut().find(|t| t.0 == name) {
            Some(t) => (t.1, t.2) = (Some(token), Some(backend)),
            None => targets.push((name, Some(token), Some(backend))),
        }
    }
    if targets.is_empty() {
        targets.push((target_of_playbook(playbook), None, None));
    }
    let notes = facts.notes.lock().clone();
    for (target, token, lock_place) in targets {
        record_one(
            facts,
            playbook,
            params,
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
    facts: &RunFacts,
    playbook: &Path,
    params: &Value,
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
    let state = crate::lock::state_dir(facts.workdir);
    // A guarded deploy's outcome says what the target runs now, whatever
    // stopped the run after it (a signal during the rollback included):
    // `--sha previous` reads only `ok` records.
    let outcome = match (forced, facts.guarded, result) {
        (Some(f), _, _) => f,
        (None, Some(o), _) => o,
        (None, None, Ok(())) => "ok",
        (None, None, Err(Error::Timeout(_) | Error::Interrupted(_))) => "cancelled",
        // The gate refused a mutation: the lock was broken, lost or expired.
        (None, None, Err(_)) if facts.locks.refused().is_some() => "fenced",
        (None, None, Err(_)) => "failed",
    };
    let params = serde_json::from_str::<Value>(&crate::redact::redact(&params.to_string()))
        .unwrap_or(Value::Null);
    let previous_image = previous_image(&state, target, &place, facts.rt);
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
        "start": crate::error::rfc3339(started),
        "end": crate::error::rfc3339(SystemTime::now()),
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
    match append_any(&state, target, &rec, &place, facts.rt) {
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
    let now = crate::error::rfc3339(SystemTime::now());
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

/// The highest fencing token among the newest records of `name`'s file
/// ledger (a bounded look from its end), if any: where a new lock file's
/// counter goes on from (see `lock::file::acquire`).
pub fn high_water(state: &Path, name: &str) -> Option<u64> {
    let mut high: Option<u64> = None;
    let mut seen = 0;
    let _ = super::scan_back(state, name, |r| {
        if let Some(t) = r.get("token").and_then(Value::as_u64) {
            high = Some(high.map_or(t, |h| h.max(t)));
        }
        seen += 1;
        if seen >= 100 {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    high
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Locks;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn records(workdir: &Path, target: &str) -> Vec<Value> {
        let state = crate::lock::state_dir(workdir);
        super::super::newest(&state, target, 100, &Filter::default())
            .unwrap()
            .records
    }

    /// Only a run that changed something is recorded (under its
    /// playbook's name when it took no lock), a dry run never; the
    /// guarded outcome and a rollback's reason reach the record.
    #[test]
    fn a_run_is_recorded_from_its_facts() {
        let dir = tempfile::tempdir().unwrap();
        let rt = rt();
        let locks = Locks::default();
        let notes = parking_lot::Mutex::new(Map::new());
        let playbook = Path::new("playbooks/Split_Deploy.rhai");
        let facts = |dry_run, guarded| RunFacts {
            playbook,
            workdir: dir.path(),
            dry_run,
            locks: &locks,
            notes: &notes,
            guarded,
            rt: rt.handle(),
        };
        // A secret among the arguments is masked in the record.
        crate::redact::register("ledger-record-test-secret");
        let args = json!({"api_key": "ledger-record-test-secret", "replicas": 2});
        let now = SystemTime::now();
        record_run(&facts(false, None), playbook, &args, now, &Ok(()));
        assert!(
            records(dir.path(), "split-deploy").is_empty(),
            "no mutation"
        );
        locks.guard("write_json").unwrap();
        record_run(&facts(true, None), playbook, &args, now, &Ok(()));
        assert!(records(dir.path(), "split-deploy").is_empty(), "dry run");
        record_run(&facts(false, None), playbook, &args, now, &Ok(()));
        record_pending(&facts(false, None), "health gate failed");
        let failed = Err(Error::Failed("x".into()));
        record_run(
            &facts(false, Some("rolled_back")),
            playbook,
            &args,
            now,
            &failed,
        );
        let rs = records(dir.path(), "split-deploy");
        let results: Vec<&str> = rs.iter().filter_map(|r| r["result"].as_str()).collect();
        assert_eq!(results, ["ok", ROLLBACK_PENDING, "rolled_back"]);
        assert_eq!(rs[1]["rollback_reason"], "health gate failed");
        assert_eq!(rs[0]["playbook"], "playbooks/Split_Deploy.rhai");
        assert_eq!(rs[0]["params"], json!({"api_key": "***", "replicas": 2}));
        assert_eq!(rs[1]["params"], json!({}), "a pending record has no params");
    }

    /// A new lock file's counter goes on from the highest token among the
    /// ledger's newest records.
    #[test]
    fn the_high_water_is_the_largest_recent_token() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(high_water(dir.path(), "t"), None);
        for t in [3, 9, 4] {
            super::super::append(dir.path(), "t", &json!({"result": "ok", "token": t})).unwrap();
        }
        super::super::append(dir.path(), "t", &json!({"result": "ok", "token": null})).unwrap();
        assert_eq!(high_water(dir.path(), "t"), Some(9));
    }
}
