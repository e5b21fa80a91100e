//! The github backend of the ledger: each record a GitHub Deployment in
//! the environment named after the target (the record as its `payload`,
//! the run's commit as its `ref`) with a status; read newest first, page
//! by page.

use reqwest::Method;
use serde_json::{json, Value};

use super::Filter;
use crate::error::PrimError;
use crate::lock::github::CALL;
use crate::net::github::{Api, Permission};

/// Deployments asked for per page when a filter may skip many (GitHub's
/// largest page).
const PAGE_MAX: usize = 100;

/// Pages read at most by one ledger read: 10,000 deployments.
const PAGES_MAX: usize = 100;

/// The state of the deployment status a record's `result` maps to.
fn status_state(result: &str) -> &'static str {
    match result {
        "ok" => "success",
        "failed" => "failure",
        // cancelled, broken: nothing runs from it.
        _ => "inactive",
    }
}

/// At most 140 characters (GitHub's bound on a status description).
fn short140(s: &str) -> String {
    match s.char_indices().nth(139) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Record one run of `target` as a GitHub Deployment in the environment
/// `target` (the record as its `payload`, the run's commit as its `ref`),
/// then its status: 2 requests.
pub async fn append(api: &Api, target: &str, record: &Value) -> Result<(), PrimError> {
    let sha = std::env::var("GITHUB_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            record
                .get("sha")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from)
        })
        .ok_or_else(|| {
            PrimError::usage(
                "the github ledger records a run as a deployment of a commit: set GITHUB_SHA (GitHub Actions does) or note the commit with ledger_note(#{ sha: ... })",
            )
        })?;
    let result = record.get("result").and_then(Value::as_str).unwrap_or("ok");
    let playbook = record.get("playbook").and_then(Value::as_str).unwrap_or("");
    let event = record.get("event").and_then(Value::as_str).unwrap_or("run");
    let description = short140(&if event == "lock-break" {
        format!("runbook lock break ({result})")
    } else {
        format!("runbook {playbook}: {result}")
    });
    let body = json!({
        "ref": sha,
        "task": "deploy",
        "environment": target,
        "payload": record,
        "auto_merge": false,
        "required_contexts": [],
        "transient_environment": false,
        "description": description,
    });
    let what = format!(
        "record the run of '{target}' as a deployment in {}",
        api.repo().slug()
    );
    let a = api
        .call(Method::POST, "/deployments", Some(&body), CALL)
        .await?;
    let id = match (a.status, a.body.get("id").and_then(Value::as_i64)) {
        (201, Some(id)) => id,
        _ => return Err(api.refused(&what, Permission::Deployments, &a)),
    };
    let mut status = json!({
        "state": status_state(result),
        "description": description,
    });
    if let Some(u) = record.get("run_url").and_then(Value::as_str) {
        status["log_url"] = json!(u);
    }
    let a = api
        .call(
            Method::POST,
            &format!("/deployments/{id}/statuses"),
            Some(&status),
            CALL,
        )
        .await?;
    if a.status != 201 {
        return Err(api.refused(
            &format!("set the status of deployment {id} ({what})"),
            Permission::Deployments,
            &a,
        ));
    }
    Ok(())
}

/// The ledger record a deployment carries: its `payload`, when runbook
/// wrote it (an object with a string `event`); deployments other tools
/// made in the same environment are not records.
fn record_of(d: &Value) -> Option<Value> {
    let p = d.get("payload")?;
    let p = match p {
        Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
        v => v.clone(),
    };
    p.get("event").and_then(Value::as_str)?;
    Some(p)
}

/// The newest `limit` records of `target` that `filter` keeps, oldest
/// first: pages of deployments, newest first, read only until enough are
/// kept (one request per `limit` records unfiltered, per 100 deployments
/// filtered).
pub async fn newest(
    api: &Api,
    target: &str,
    limit: usize,
    filter: &Filter,
) -> Result<Vec<Value>, PrimError> {
    let mut kept = Vec::new();
    if limit == 0 {
        return Ok(kept);
    }
    let per_page = if *filter == Filter::default() {
        limit.min(PAGE_MAX)
    } else {
        PAGE_MAX
    };
    let what = format!(
        "read the deployments of '{target}' in {}",
        api.repo().slug()
    );
    for page in 1..=PAGES_MAX {
        let path = format!("/deployments?environment={target}&per_page={per_page}&page={page}");
        let a = api.call(Method::GET, &path, None, CALL).await?;
        let Some(ds) = a.body.as_array().filter(|_| a.status == 200) else {
            return Err(api.refused(&what, Permission::Deployments, &a));
        };
        for r in ds.iter().filter_map(record_of) {
            if filter.keeps(&r) {
                kept.push(r);
                if kept.len() >= limit {
                    kept.reverse();
                    return Ok(kept);
                }
            }
        }
        if ds.len() < per_page {
            break;
        }
    }
    kept.reverse();
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_runbooks_payloads_only() {
        let r = json!({"event": "run", "result": "ok"});
        assert_eq!(record_of(&json!({"payload": r})), Some(r.clone()));
        assert_eq!(record_of(&json!({"payload": r.to_string()})), Some(r));
        assert_eq!(record_of(&json!({"payload": {}})), None);
        assert_eq!(record_of(&json!({"payload": ""})), None);
        assert_eq!(status_state("failed"), "failure");
        assert_eq!(status_state("cancelled"), "inactive");
        assert_eq!(short140(&"x".repeat(200)).chars().count(), 140);
    }
}
