//! The `kube` lock backend: a `coordination.k8s.io/v1` Lease
//! `runbook-<name>`. The kube ledger (`ledger::kube`) writes its ConfigMap
//! through the helpers here.
//!
//! Every write carries the resourceVersion it read (optimistic
//! concurrency): a 409 means someone else wrote in between, so the Lease is
//! read again and judged anew, never overwritten. The fencing token is the
//! Lease's `leaseTransitions`, raised by every acquisition (and by a
//! break). Holder metadata lives in annotations. A Lease whose
//! `renewTime + leaseDurationSeconds` passed is expired and may be taken
//! over; renewal runs every ttl/3 and the holder self-fences when it has
//! not succeeded by its deadline.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::chrono::{DateTime, Utc};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use super::{Deadline, Held, HolderInfo, LockError, Locks, Renewal, Status, Taken, Want};
use crate::kube::client::{Call, Kube};
use crate::process::cancel::Scope;

const ANN: &str = "runbook.dev/holder";
const ANN_BROKEN: &str = "runbook.dev/broken";
/// Bound of one API call made by the lock.
pub(crate) const CALL: Duration = Duration::from_secs(10);

/// The Lease's object name for lock `name`.
pub fn lease_name(name: &str) -> String {
    format!("runbook-{name}")
}

/// The kinds this file reads and writes (Lease, ConfigMap): namespaced,
/// with a static type, and (de)serializable.
pub(crate) trait Namespaced:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
{
}

impl<K> Namespaced for K where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned
{
}

/// The namespaced API for `K`, its namespace, and the client it came
/// from (whose server and context an error names).
#[derive(Clone)]
pub(crate) struct Target<K> {
    pub(crate) api: Api<K>,
    pub(crate) ns: String,
    kube: Arc<Kube>,
}

impl<K: Namespaced> Target<K> {
    /// A failed call, explained as every kube call is
    /// ([`crate::kube::client::explain`]): a 403 names the RBAC permission
    /// `verb` on this kind, a 401 the credentials, a refused connection
    /// the cluster.
    pub(crate) fn fail(&self, what: &str, verb: &str, e: &kube::Error) -> String {
        let resource = K::plural(&());
        let call = Call {
            what,
            verb,
            resource: &resource,
            ns: Some(&self.ns),
        };
        crate::kube::client::explain(&self.kube, e, call).msg
    }
}

/// The namespaced API for `K` through `clients` (the run's own for the
/// `lock` primitive), in `namespace` or the context's default.
pub(crate) async fn api_with<K>(
    clients: &crate::kube::Clients,
    namespace: Option<&str>,
    context: Option<&str>,
) -> Result<Target<K>, String>
where
    K: Namespaced,
{
    let kube = clients.connect(context).await.map_err(|e| e.msg)?;
    let ns = namespace
        .map(String::from)
        .unwrap_or_else(|| kube.client.default_namespace().to_string());
    Ok(Target {
        api: Api::namespaced(kube.client.clone(), &ns),
        ns,
        kube,
    })
}

/// [`api_with`] on a client of its own: `lock break` and the ledger
/// append at a run's end make one or two calls, outside any run's clients.
pub(crate) async fn api<K>(
    namespace: Option<&str>,
    context: Option<&str>,
) -> Result<Target<K>, String>
where
    K: Namespaced,
{
    api_with(&crate::kube::Clients::default(), namespace, context).await
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(r) => Some(r.code),
        _ => None,
    }
}

pub(crate) async fn bounded<T>(
    what: &str,
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<Result<T, kube::Error>, String> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| format!("{what}: no answer within {}", crate::error::fmt_secs(limit)))
}

/// Write `obj` under the resourceVersion it was read with: replace what
/// existed, create what did not. `Ok(None)` on a 409: another writer came
/// between the read and this write, so the caller reads and decides again.
pub(crate) async fn write_unless_raced<K>(
    t: &Target<K>,
    existed: bool,
    obj: &K,
    what: &str,
) -> Result<Option<K>, String>
where
    K: Namespaced,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let pp = PostParams::default();
    let (res, verb) = if existed {
        let put = t.api.replace(&name, &pp, obj);
        (bounded(what, CALL, put).await?, "update")
    } else {
        let post = t.api.create(&pp, obj);
        (bounded(what, CALL, post).await?, "create")
    };
    match res {
        Ok(o) => Ok(Some(o)),
        Err(e) if status_code(&e) == Some(409) => Ok(None),
        Err(e) => Err(t.fail(what, verb, &e)),
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Whether the Lease is held now (holder set and not expired).
fn live(l: &Lease) -> bool {
    let Some(s) = &l.spec else { return false };
    if s.holder_identity.as_deref().is_none_or(str::is_empty) {
        return false;
    }
    let (Some(MicroTime(renew)), Some(secs)) = (&s.renew_time, s.lease_duration_seconds) else {
        return false;
    };
    *renew + k8s_openapi::chrono::Duration::seconds(i64::from(secs)) > now()
}

fn holder_of(l: &Lease) -> Option<HolderInfo> {
    let ann = l.metadata.annotations.as_ref()?.get(ANN)?;
    serde_json::from_str(ann).ok().or_else(|| {
        Some(HolderInfo {
            holder: l.spec.as_ref()?.holder_identity.clone()?,
            ..HolderInfo::default()
        })
    })
}

fn transitions(l: &Lease) -> u64 {
    l.spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .map_or(0, |t| u64::try_from(t).unwrap_or(0))
}

fn expires_of(l: &Lease) -> Option<u64> {
    let s = l.spec.as_ref()?;
    let MicroTime(r) = s.renew_time.as_ref()?;
    let t = r.timestamp() + i64::from(s.lease_duration_seconds?);
    u64::try_from(t).ok()
}

fn ttl_secs(ttl: Duration) -> i32 {
    i32::try_from(ttl.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// The Lease as we hold it: our identity, a raised transitions count.
fn ours(
    prev: Option<&Lease>,
    name: &str,
    ns: &str,
    info: &HolderInfo,
    ttl: Duration,
) -> Result<Lease, String> {
    // leaseTransitions is an i32: past it the token would repeat.
    let token = super::next_token(
        prev.map_or(0, transitions),
        i32::MAX as u64,
        name,
        &format!("the Lease {ns}/{}", lease_name(name)),
    )?;
    let mut meta = prev
        .map(|l| l.metadata.clone())
        .unwrap_or_else(|| ObjectMeta {
            name: Some(lease_name(name)),
            namespace: Some(ns.to_string()),
            ..ObjectMeta::default()
        });
    let mut ann = meta.annotations.take().unwrap_or_default();
    ann.insert(ANN.into(), serde_json::to_string(info).unwrap_or_default());
    ann.remove(ANN_BROKEN);
    meta.annotations = Some(ann);
    let mut labels = meta.labels.take().unwrap_or_default();
    labels.insert("app.kubernetes.io/managed-by".into(), "runbook".into());
    meta.labels = Some(labels);
    let t = now();
    Ok(Lease {
        metadata: meta,
        spec: Some(LeaseSpec {
            holder_identity: Some(info.holder.clone()),
            lease_duration_seconds: Some(ttl_secs(ttl)),
            acquire_time: Some(MicroTime(t)),
            renew_time: Some(MicroTime(t)),
            lease_transitions: Some(i32::try_from(token).unwrap_or(i32::MAX)),
        }),
    })
}

/// One try: Ok(Ok(lease)) ours, Ok(Err(holder)) busy.
async fn try_acquire(
    t: &Target<Lease>,
    name: &str,
    info: &HolderInfo,
    ttl: Duration,
) -> Result<Result<Lease, Option<HolderInfo>>, String> {
    let (ln, ns) = (lease_name(name), t.ns.as_str());
    // A 409 means another run wrote between our read and our write: read
    // again and decide again (bounded).
    for _ in 0..5 {
        let cur = bounded("read Lease", CALL, t.api.get_opt(&ln))
            .await?
            .map_err(|e| t.fail(&format!("read Lease {ns}/{ln}"), "get", &e))?;
        let res = match &cur {
            Some(l) if live(l) => return Ok(Err(holder_of(l))),
            Some(l) => {
                if holder_of(l).is_some()
                    && l.spec
                        .as_ref()
                        .and_then(|s| s.holder_identity.as_deref())
                        .is_some_and(|h| !h.is_empty())
                {
                    tracing::info!(lock = name, "the Lease {ns}/{ln} expired; taking it over");
                }
                let want = ours(Some(l), name, ns, info, ttl)?;
                write_unless_raced(t, true, &want, &format!("take Lease {ns}/{ln}")).await?
            }
            None => {
                let want = ours(None, name, ns, info, ttl)?;
                write_unless_raced(t, false, &want, &format!("take Lease {ns}/{ln}")).await?
            }
        };
        if let Some(l) = res {
            return Ok(Ok(l));
        }
    }
    Err(format!(
        "take Lease {ns}/{ln}: it keeps changing under us (5 conflicts in a row)"
    ))
}

/// A held Lease.
pub struct KubeLock {
    target: Target<Lease>,
    name: String,
    lease: Arc<Mutex<Lease>>,
}

/// Take the Lease `runbook-<name>` of `want` (the `lock` primitive's kube
/// path), through the run's `clients`: poll up to its `wait` while it is
/// busy (waiting in `scope`), then hold it in `locks`, renewed every
/// ttl/3, until the run ends or unlocks it.
pub fn take(
    scope: &Scope,
    locks: &Locks,
    clients: &crate::kube::Clients,
    namespace: Option<&str>,
    context: Option<&str>,
    want: &Want,
) -> Result<Taken, LockError> {
    let Want {
        name,
        info,
        ttl,
        wait,
    } = *want;
    let t = scope.call(
        "lock",
        CALL * 2,
        api_with::<Lease>(clients, namespace, context),
    )??;
    let ns = t.ns.clone();
    let mut waiter = super::Waiter::new(name, wait);
    loop {
        let got = scope.call("lock", CALL * 6, try_acquire(&t, name, info, ttl))??;
        match got {
            Ok(lease) => {
                let token = transitions(&lease);
                let deadline = Deadline::new(ttl);
                let stop = CancellationToken::new();
                let held = KubeLock {
                    target: t,
                    name: name.to_string(),
                    lease: Arc::new(Mutex::new(lease.clone())),
                };
                held.spawn_renewal(
                    &scope.rt,
                    ttl,
                    info.holder.clone(),
                    token,
                    deadline.clone(),
                    stop.clone(),
                );
                let expires = expires_of(&lease)
                    .map(super::rfc3339_secs)
                    .unwrap_or_default();
                tracing::info!(
                    primitive = "lock",
                    lock = name,
                    backend = "kube",
                    fencing_token = token,
                    "locked '{name}' (Lease {ns}/{}, fencing token {token}, ttl {})",
                    lease_name(name),
                    crate::error::fmt_secs(ttl)
                );
                locks.add(Held {
                    name: name.to_string(),
                    backend: "kube",
                    place: super::Backend::Kube {
                        namespace: namespace.map(String::from),
                        context: context.map(String::from),
                    },
                    token,
                    deadline,
                    stop,
                    handle: super::Handle::Kube(held),
                });
                return Ok(Taken {
                    backend: "kube",
                    holder: info.holder.clone(),
                    token,
                    expires,
                });
            }
            Err(holder) => scope.pause(waiter.busy_again(holder, Duration::from_millis(250))?)?,
        }
    }
}

/// One renewal of a Lease: write a new renewTime; on a conflict, find
/// whether it is still ours.
async fn renew_lease(
    t: &Target<Lease>,
    ln: &str,
    lease: &Mutex<Lease>,
    me: &str,
    token: u64,
    bound: Duration,
) -> Renewal {
    let start = Instant::now();
    let mut want = lease.lock().clone();
    if let Some(s) = want.spec.as_mut() {
        s.renew_time = Some(MicroTime(now()));
    }
    let e =
        match tokio::time::timeout(bound, t.api.replace(ln, &PostParams::default(), &want)).await {
            Ok(Ok(l)) => {
                *lease.lock() = l;
                return Renewal::Renewed(start);
            }
            Ok(Err(e)) => e,
            Err(_) => {
                tracing::warn!("renewing the Lease {ln}: no answer in time");
                return Renewal::Kept;
            }
        };
    if !matches!(status_code(&e), Some(409 | 404)) {
        tracing::warn!(
            "{}",
            t.fail(&format!("renew Lease {}/{ln}", t.ns), "update", &e)
        );
        return Renewal::Kept;
    }
    // Someone else wrote: is it still ours?
    match tokio::time::timeout(bound, t.api.get_opt(ln)).await {
        Ok(Ok(Some(l))) => {
            let holder = l
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_default();
            if holder == me && transitions(&l) == token {
                *lease.lock() = l;
                return Renewal::Kept;
            }
            let broken = l
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_BROKEN).cloned());
            Renewal::Lost(broken.unwrap_or_else(|| {
                format!(
                    "the Lease was taken over by {} (fencing token {})",
                    if holder.is_empty() {
                        "nobody (released)".to_string()
                    } else {
                        holder
                    },
                    transitions(&l)
                )
            }))
        }
        Ok(Ok(None)) => Renewal::Lost("the Lease was deleted".to_string()),
        _ => Renewal::Kept,
    }
}

impl KubeLock {
    fn spawn_renewal(
        &self,
        rt: &tokio::runtime::Handle,
        ttl: Duration,
        me: String,
        token: u64,
        deadline: Arc<Mutex<Deadline>>,
        stop: CancellationToken,
    ) {
        let (t, ln, lease) = (
            self.target.clone(),
            lease_name(&self.name),
            self.lease.clone(),
        );
        let every = (ttl / 3).max(Duration::from_millis(200));
        super::spawn_renewal(rt, ttl, deadline, stop, move || {
            let (t, ln, lease, me) = (t.clone(), ln.clone(), lease.clone(), me.clone());
            async move { renew_lease(&t, &ln, &lease, &me, token, every).await }
        });
    }

    /// Give the Lease up (holder cleared, same transitions), unless it was
    /// lost: then it is someone else's and is left alone.
    pub fn release(self, rt: &tokio::runtime::Handle, lost: bool) -> Result<(), String> {
        if lost {
            return Ok(());
        }
        let mut want = self.lease.lock().clone();
        if let Some(s) = want.spec.as_mut() {
            s.holder_identity = None;
            s.lease_duration_seconds = Some(1);
        }
        let (t, ln) = (self.target, lease_name(&self.name));
        let what = format!("release Lease {}/{ln}", t.ns);
        // A 409: changed since our last renewal, so not ours to clear.
        rt.block_on(write_unless_raced(&t, true, &want, &what))
            .map(|_| ())
    }
}

/// The Lease's state, through `clients` (the run's during a run; a fresh
/// [`crate::kube::Clients`] for `runbook lock status`).
pub async fn status(
    clients: &crate::kube::Clients,
    name: &str,
    namespace: Option<&str>,
    context: Option<&str>,
) -> Result<Status, String> {
    let t = api_with::<Lease>(clients, namespace, context).await?;
    let ln = lease_name(name);
    let l = bounded("read Lease", CALL, t.api.get_opt(&ln))
        .await?
        .map_err(|e| t.fail(&format!("read Lease {}/{ln}", t.ns), "get", &e))?;
    Ok(match l {
        None => Status::free(name),
        Some(l) => Status {
            name: name.into(),
            held: live(&l),
            holder: holder_of(&l),
            expires: expires_of(&l),
            token: transitions(&l),
        },
    })
}

/// Break the Lease: clear the holder, raise the transitions (so the old
/// holder's next renewal conflicts and it self-fences), note who and why.
pub async fn break_lock(
    name: &str,
    namespace: Option<&str>,
    context: Option<&str>,
    by: &str,
    reason: &str,
) -> Result<Status, String> {
    let t = api::<Lease>(namespace, context).await?;
    let (api, ns) = (&t.api, &t.ns);
    let ln = lease_name(name);
    for _ in 0..5 {
        let Some(l) = bounded("read Lease", CALL, api.get_opt(&ln))
            .await?
            .map_err(|e| t.fail(&format!("read Lease {ns}/{ln}"), "get", &e))?
        else {
            return Ok(Status::free(name));
        };
        let before = Status {
            name: name.into(),
            held: live(&l),
            holder: holder_of(&l),
            expires: expires_of(&l),
            token: transitions(&l),
        };
        let mut want = l.clone();
        let mut ann = want.metadata.annotations.take().unwrap_or_default();
        ann.insert(
            ANN_BROKEN.into(),
            format!(
                "broken by {by} at {}: {reason}",
                super::rfc3339_secs(super::unix_now())
            ),
        );
        want.metadata.annotations = Some(ann);
        // leaseTransitions is an i32: at its top the token would repeat,
        // and the old holder pass the new fence.
        let token = super::next_token(
            before.token,
            i32::MAX as u64,
            name,
            &format!("the Lease {ns}/{ln}"),
        )
        .map_err(|e| e.to_string())?;
        if let Some(s) = want.spec.as_mut() {
            s.holder_identity = None;
            s.lease_transitions = Some(i32::try_from(token).unwrap_or(i32::MAX));
        }
        let what = format!("break Lease {ns}/{ln}");
        if write_unless_raced(&t, true, &want, &what).await?.is_some() {
            return Ok(before);
        }
    }
    Err(format!(
        "break Lease {ns}/{ln}: it keeps changing (5 conflicts in a row)"
    ))
}
