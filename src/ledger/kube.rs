//! The kube backend of the ledger: the records of a target in the
//! ConfigMap `runbook-ledger-<target>` (the newest [`KUBE_CAP`]), next to
//! the target's Lease; written under resourceVersion preconditions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::KUBE_CAP;
use crate::lock::kube::{api, api_with, bounded, write_unless_raced, CALL};

fn ledger_name(target: &str) -> String {
    format!("runbook-ledger-{target}")
}

fn records_of(cm: &ConfigMap) -> Vec<serde_json::Value> {
    cm.data
        .as_ref()
        .and_then(|d| d.get("records"))
        .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(t).ok())
        .unwrap_or_default()
}

/// The ledger of `target` from its ConfigMap, oldest first, through
/// `clients` (the run's during a run).
pub async fn read(
    clients: &crate::kube::Clients,
    target: &str,
    namespace: Option<&str>,
    context: Option<&str>,
) -> Result<Vec<serde_json::Value>, String> {
    let t = api_with::<ConfigMap>(clients, namespace, context).await?;
    let n = ledger_name(target);
    let cm = bounded("read ConfigMap", CALL, t.api.get_opt(&n))
        .await?
        .map_err(|e| t.fail(&format!("read ConfigMap {}/{n}", t.ns), "get", &e))?;
    Ok(cm.as_ref().map(records_of).unwrap_or_default())
}

/// Append to the ledger ConfigMap of `target`, keeping the last
/// [`KUBE_CAP`] records; resourceVersion preconditions, a
/// 409 re-reads and appends again.
pub async fn append(
    target: &str,
    record: &serde_json::Value,
    namespace: Option<&str>,
    context: Option<&str>,
) -> Result<(), String> {
    let t = api::<ConfigMap>(namespace, context).await?;
    let ns = t.ns.clone();
    let n = ledger_name(target);
    for _ in 0..5 {
        let cur = bounded("read ConfigMap", CALL, t.api.get_opt(&n))
            .await?
            .map_err(|e| t.fail(&format!("read ConfigMap {ns}/{n}"), "get", &e))?;
        let mut records = cur.as_ref().map(records_of).unwrap_or_default();
        records.push(record.clone());
        let skip = records.len().saturating_sub(KUBE_CAP);
        let records: Vec<_> = records.into_iter().skip(skip).collect();
        let text = serde_json::to_string(&records).map_err(|e| e.to_string())?;
        let existed = cur.is_some();
        let mut cm = cur.unwrap_or_else(|| ConfigMap {
            metadata: ObjectMeta {
                name: Some(n.clone()),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        });
        cm.data
            .get_or_insert_with(BTreeMap::new)
            .insert("records".into(), text);
        let what = format!("write ConfigMap {ns}/{n}");
        if write_unless_raced(&t, existed, &cm, &what).await?.is_some() {
            return Ok(());
        }
    }
    Err(format!(
        "write ConfigMap {ns}/{n}: it keeps changing (5 conflicts in a row)"
    ))
}
