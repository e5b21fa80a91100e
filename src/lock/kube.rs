//! The `kube` lock backend: a `coordination.k8s.io/v1` Lease.

/// A held Lease.
pub struct KubeLock {}

impl KubeLock {
    /// Give the Lease up.
    pub fn release(self, _rt: &tokio::runtime::Handle, _lost: bool) -> Result<(), String> {
        Ok(())
    }
}

/// Take the Lease `runbook-<name>`.
pub fn take(
    _ctx: &std::sync::Arc<crate::context::Ctx>,
    _name: &str,
    _namespace: Option<&str>,
    _context: Option<&str>,
    _ttl: std::time::Duration,
    _wait: std::time::Duration,
    _info: &super::HolderInfo,
) -> crate::context::RhaiResult<rhai::Map> {
    Err(crate::context::error(
        "lock: the kube backend is not available yet",
    ))
}

/// The ledger of `target` from its ConfigMap.
pub async fn ledger_read(
    _target: &str,
    _namespace: Option<&str>,
    _context: Option<&str>,
) -> Result<Vec<serde_json::Value>, String> {
    Err("the kube ledger backend is not available yet".into())
}

/// Append to the ledger ConfigMap of `target`.
pub async fn ledger_append(
    _target: &str,
    _record: &serde_json::Value,
    _namespace: Option<&str>,
    _context: Option<&str>,
) -> Result<(), String> {
    Err("the kube ledger backend is not available yet".into())
}

/// The Lease's state.
pub async fn status(
    _name: &str,
    _namespace: Option<&str>,
    _context: Option<&str>,
) -> Result<super::Status, String> {
    Err("the kube lock backend is not available yet".into())
}

/// Break the Lease.
pub async fn break_lock(
    _name: &str,
    _namespace: Option<&str>,
    _context: Option<&str>,
    _by: &str,
    _reason: &str,
) -> Result<super::Status, String> {
    Err("the kube lock backend is not available yet".into())
}
