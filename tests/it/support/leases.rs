//! A fake `coordination.k8s.io/v1` and ConfigMap API for the lock and
//! ledger tests: Leases and ConfigMaps stored in memory with
//! resourceVersion optimistic concurrency (a write whose
//! `metadata.resourceVersion` is stale answers 409 Conflict, as the real
//! API server does), a switch to become unreachable mid-run (connections
//! are dropped unanswered), and a renewTime skew (every Lease write from
//! then on is stored with its renewTime moved back, so the holder looks
//! expired to everyone else). On the HTTP stub (127.0.0.1). Kept apart
//! from `FakeKube`: a store with writes, not a scripted cluster.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::http::{Reply, Request, Stub};
use super::kube::kubeconfig_for;
use super::kube_objects::status;

#[derive(Default)]
struct Store {
    /// (kind, namespace, name) → object
    objects: HashMap<(String, String, String), Value>,
    /// Seconds to move renewTime back on every Lease write (0: none).
    skew: i64,
    /// Another writer's object, stored just before the next write of the
    /// same (kind, namespace, name), which then loses with a 409.
    race: Option<Value>,
    /// (method, kind) answered 403 Forbidden, as RBAC without the verb.
    forbidden: Option<(String, String)>,
}

/// The fake coordination API. Stopped when dropped.
pub struct FakeLeases {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    store: Arc<Mutex<Store>>,
    unreachable: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    _stub: Stub,
}

static RV: AtomicU64 = AtomicU64::new(5000);

/// Move an RFC 3339 micro-time back by `secs` (the fake keeps it simple:
/// it re-renders in the same format kube-rs sends).
pub fn shift(t: &str, secs: i64) -> String {
    // 2026-12-03T05:41:10.123456Z
    let parse = || -> Option<i64> {
        let (date, time) = t.trim_end_matches('Z').split_once('T')?;
        let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
        let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
        let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
        let mut h = hms.split(':').map(|x| x.parse::<i64>().ok());
        let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
        let _ = frac;
        // days from civil (Howard Hinnant)
        let y2 = if m <= 2 { y - 1 } else { y };
        let era = y2.div_euclid(400);
        let yoe = y2 - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + dd - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
    };
    let Some(secs0) = parse() else {
        return t.to_string();
    };
    // runbook's own RFC 3339 renderer, with kube-rs's micro-time fraction.
    let at = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs0 - secs).unwrap_or(0));
    runbook::opts::rfc3339(at).replace('Z', ".000000Z")
}

/// A write (create or replace) of `kind` in `ns`, or why not.
fn write(st: &mut Store, req: &Request, kind: &str, ns: &str, plural: &str) -> Reply {
    let Ok(mut obj) = serde_json::from_slice::<Value>(&req.body) else {
        return Reply::json(400, &status(400, "BadRequest", "the body is not JSON"));
    };
    let n = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key = (kind.to_string(), ns.to_string(), n.clone());
    if let Some(mut other) = st.race.take() {
        if other["metadata"]["name"] == json!(n) {
            other["metadata"]["resourceVersion"] =
                json!(RV.fetch_add(1, Ordering::SeqCst).to_string());
            other["metadata"]["namespace"] = json!(ns);
            st.objects.insert(key, other);
            return Reply::json(409, &status(409, "Conflict", &format!(
                "Operation cannot be fulfilled on {plural} \"{n}\": the object has been modified; please apply your changes to the latest version and try again"
            )));
        }
        st.race = Some(other);
    }
    match (req.method.as_str(), st.objects.get(&key)) {
        ("POST", Some(_)) => {
            return Reply::json(
                409,
                &status(
                    409,
                    "AlreadyExists",
                    &format!("{plural} \"{n}\" already exists"),
                ),
            )
        }
        ("PUT", None) => return not_found(kind, &n),
        // Optimistic concurrency: the write must name the version it read.
        ("PUT", Some(cur))
            if obj["metadata"]["resourceVersion"] != cur["metadata"]["resourceVersion"] =>
        {
            return Reply::json(409, &status(409, "Conflict", &format!(
                "Operation cannot be fulfilled on {plural} \"{n}\": the object has been modified; please apply your changes to the latest version and try again"
            )));
        }
        _ => {}
    }
    let rv = RV.fetch_add(1, Ordering::SeqCst).to_string();
    obj["metadata"]["resourceVersion"] = json!(rv);
    obj["metadata"]["namespace"] = json!(ns);
    obj["kind"] = json!(kind);
    obj["apiVersion"] = json!(if kind == "Lease" {
        "coordination.k8s.io/v1"
    } else {
        "v1"
    });
    if kind == "Lease" && st.skew != 0 {
        if let Some(t) = obj["spec"]["renewTime"].as_str().map(String::from) {
            obj["spec"]["renewTime"] = json!(shift(&t, st.skew));
        }
    }
    st.objects.insert(key, obj.clone());
    Reply::json(if req.method == "POST" { 201 } else { 200 }, &obj)
}

fn not_found(kind: &str, name: &str) -> Reply {
    let what = if kind == "Lease" {
        "leases.coordination.k8s.io"
    } else {
        "configmaps"
    };
    Reply::json(
        404,
        &status(404, "NotFound", &format!("{what} \"{name}\" not found")),
    )
}

/// The answer to one request.
fn route(store: &Mutex<Store>, req: &Request) -> Reply {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let (kind, plural, ns, name) = match segs.as_slice() {
        ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", rest @ ..] => {
            ("Lease", "leases", *ns, rest.first().copied())
        }
        ["api", "v1", "namespaces", ns, "configmaps", rest @ ..] => {
            ("ConfigMap", "configmaps", *ns, rest.first().copied())
        }
        _ => {
            return Reply::json(
                404,
                &status(
                    404,
                    "NotFound",
                    &format!(
                        "the server could not find the requested resource ({} {})",
                        req.method, req.path
                    ),
                ),
            )
        }
    };
    let mut st = store.lock().unwrap();
    if st
        .forbidden
        .as_ref()
        .is_some_and(|(m, k)| *m == req.method && k == kind)
    {
        let verb = if req.method == "POST" {
            "create"
        } else {
            "update"
        };
        return Reply::json(403, &status(403, "Forbidden", &format!(
            "{plural} is forbidden: User \"dev\" cannot {verb} resource \"{plural}\" in the namespace \"{ns}\""
        )));
    }
    match (req.method.as_str(), name) {
        ("GET", Some(n)) => match st.objects.get(&(kind.into(), ns.into(), n.into())) {
            Some(o) => Reply::json(200, o),
            None => not_found(kind, n),
        },
        ("POST", None) | ("PUT", Some(_)) => write(&mut st, req, kind, ns, plural),
        _ => Reply::json(
            405,
            &status(405, "MethodNotAllowed", "not supported by the fake"),
        ),
    }
}

impl FakeLeases {
    /// Start it.
    pub fn start() -> FakeLeases {
        let store = Arc::new(Mutex::new(Store::default()));
        let unreachable = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (st2, u2, r2) = (store.clone(), unreachable.clone(), requests.clone());
        let stub = Stub::start(move |req| {
            if u2.load(Ordering::SeqCst) {
                // Unreachable: the connection dies unanswered.
                return Reply::reset();
            }
            r2.lock()
                .unwrap()
                .push(format!("{} {}", req.method, req.path));
            route(&st2, req)
        });
        FakeLeases {
            url: stub.url(),
            store,
            unreachable,
            requests,
            _stub: stub,
        }
    }

    /// Become unreachable (true) or reachable again.
    pub fn set_unreachable(&self, on: bool) {
        self.unreachable.store(on, Ordering::SeqCst);
    }

    /// Move renewTime back by `secs` on every Lease write from now on, and
    /// on the Leases stored now (their resourceVersion changes, as any
    /// write's would).
    pub fn skew_renew_time(&self, secs: i64) {
        let mut st = self.store.lock().unwrap();
        st.skew = secs;
        for ((kind, _, _), obj) in st.objects.iter_mut() {
            if kind == "Lease" {
                if let Some(t) = obj["spec"]["renewTime"].as_str().map(String::from) {
                    obj["spec"]["renewTime"] = json!(shift(&t, secs));
                    obj["metadata"]["resourceVersion"] =
                        json!(RV.fetch_add(1, Ordering::SeqCst).to_string());
                }
            }
        }
    }

    /// Let another writer get in first: `obj` (with its `metadata.name`)
    /// is stored between runbook's read and its next write of that object,
    /// and that write answers 409 Conflict.
    pub fn race_next_write(&self, obj: Value) {
        self.store.lock().unwrap().race = Some(obj);
    }

    /// Answer `method` on `kind` with 403 Forbidden from now on.
    pub fn forbid(&self, method: &str, kind: &str) {
        self.store.lock().unwrap().forbidden = Some((method.into(), kind.into()));
    }

    /// Store `obj` as `kind` `ns/name`, as another writer would have.
    pub fn put(&self, kind: &str, ns: &str, name: &str, mut obj: Value) {
        obj["metadata"]["name"] = json!(name);
        obj["metadata"]["namespace"] = json!(ns);
        obj["metadata"]["resourceVersion"] = json!(RV.fetch_add(1, Ordering::SeqCst).to_string());
        self.store
            .lock()
            .unwrap()
            .objects
            .insert((kind.into(), ns.into(), name.into()), obj);
    }

    /// The stored object, if any.
    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        self.store
            .lock()
            .unwrap()
            .objects
            .get(&(kind.into(), ns.into(), name.into()))
            .cloned()
    }

    /// Every request, as "METHOD /path".
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Write a kubeconfig pointing here (namespace "default"); its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        kubeconfig_for(dir, &self.url, "fake")
    }
}
