//! A fake `coordination.k8s.io/v1` and ConfigMap API for the lock and
//! ledger tests: Leases and ConfigMaps stored in memory with
//! resourceVersion optimistic concurrency (a write whose
//! `metadata.resourceVersion` is stale answers 409 Conflict, as the real
//! API server does), a switch to become unreachable mid-run (connections
//! are dropped unanswered), and a renewTime skew (every Lease write from
//! then on is stored with its renewTime moved back, so the holder looks
//! expired to everyone else). Plain HTTP on 127.0.0.1, a thread per
//! connection (at most 64), every read bounded. Kept apart from
//! `FakeKube` (it needs request bodies; that one does not read them).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[derive(Default)]
struct Store {
    /// (kind, namespace, name) → object
    objects: HashMap<(String, String, String), Value>,
    /// Seconds to move renewTime back on every Lease write (0: none).
    skew: i64,
}

/// The fake coordination API. Stopped when dropped.
pub struct FakeLeases {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    port: u16,
    store: Arc<Mutex<Store>>,
    unreachable: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    handle: Option<JoinHandle<()>>,
}

struct Req {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_req(stream: &mut TcpStream) -> Option<Req> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut len = 0usize;
    for _ in 0..100 {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    // Bodies are small objects; refuse absurd sizes.
    if len > 4 << 20 {
        return None;
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let path = target
        .split_once('?')
        .map_or(target.as_str(), |(p, _)| p)
        .to_string();
    Some(Req { method, path, body })
}

fn respond(stream: &mut TcpStream, code: u16, body: &Value) {
    let text = body.to_string();
    let reason = match code {
        200 => "OK",
        201 => "Created",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Error",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
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
    runbook::primitives::settings::rfc3339(at).replace('Z', ".000000Z")
}

fn handle(mut stream: TcpStream, store: Arc<Mutex<Store>>, requests: Arc<Mutex<Vec<String>>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Some(req) = read_req(&mut stream) else {
        return;
    };
    requests
        .lock()
        .unwrap()
        .push(format!("{} {}", req.method, req.path));
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let (kind, ns, name) = match segs.as_slice() {
        ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", rest @ ..] => {
            ("Lease", *ns, rest.first().copied())
        }
        ["api", "v1", "namespaces", ns, "configmaps", rest @ ..] => {
            ("ConfigMap", *ns, rest.first().copied())
        }
        _ => {
            return respond(
                &mut stream,
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
    let plural = if kind == "Lease" {
        "leases"
    } else {
        "configmaps"
    };
    let group = if kind == "Lease" {
        "coordination.k8s.io"
    } else {
        ""
    };
    let mut st = store.lock().unwrap();
    let not_found = |n: &str| {
        status(
            404,
            "NotFound",
            &format!(
                "{plural}{} \"{n}\" not found",
                if group.is_empty() {
                    String::new()
                } else {
                    format!(".{group}")
                }
            ),
        )
    };
    match (req.method.as_str(), name) {
        ("GET", Some(n)) => match st.objects.get(&(kind.into(), ns.into(), n.into())) {
            Some(o) => respond(&mut stream, 200, o),
            None => respond(&mut stream, 404, &not_found(n)),
        },
        ("POST", None) | ("PUT", Some(_)) => {
            let Ok(mut obj) = serde_json::from_slice::<Value>(&req.body) else {
                return respond(
                    &mut stream,
                    400,
                    &status(400, "BadRequest", "the body is not JSON"),
                );
            };
            let n = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let key = (kind.to_string(), ns.to_string(), n.clone());
            let existing = st.objects.get(&key).cloned();
            if req.method == "POST" {
                if existing.is_some() {
                    return respond(
                        &mut stream,
                        409,
                        &status(
                            409,
                            "AlreadyExists",
                            &format!("{plural} \"{n}\" already exists"),
                        ),
                    );
                }
            } else {
                let Some(cur) = existing else {
                    return respond(&mut stream, 404, &not_found(&n));
                };
                // Optimistic concurrency: the write must name the version
                // it read.
                if obj["metadata"]["resourceVersion"] != cur["metadata"]["resourceVersion"] {
                    return respond(&mut stream, 409, &status(409, "Conflict", &format!(
                        "Operation cannot be fulfilled on {plural} \"{n}\": the object has been modified; please apply your changes to the latest version and try again"
                    )));
                }
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
            respond(
                &mut stream,
                if req.method == "POST" { 201 } else { 200 },
                &obj,
            )
        }
        _ => respond(
            &mut stream,
            405,
            &status(405, "MethodNotAllowed", "not supported by the fake"),
        ),
    }
}

impl FakeLeases {
    /// Start it.
    pub fn start() -> FakeLeases {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake coordination API");
        let port = listener.local_addr().unwrap().port();
        let store = Arc::new(Mutex::new(Store::default()));
        let unreachable = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(Mutex::new(Vec::new()));
        let (st2, u2, s2, w2) = (
            store.clone(),
            unreachable.clone(),
            stop.clone(),
            writes.clone(),
        );
        let handle = std::thread::spawn(move || {
            let active = Arc::new(AtomicUsize::new(0));
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(600) {
                let accepted = listener.accept();
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok((stream, _)) = accepted else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                if u2.load(Ordering::SeqCst) {
                    // Unreachable: the connection dies unanswered.
                    drop(stream);
                    continue;
                }
                if active.load(Ordering::SeqCst) >= 64 {
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let (st3, w3, a3) = (st2.clone(), w2.clone(), active.clone());
                std::thread::spawn(move || {
                    handle(stream, st3, w3);
                    a3.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        FakeLeases {
            url: format!("http://127.0.0.1:{port}"),
            port,
            store,
            unreachable,
            stop,
            requests: writes,
            handle: Some(handle),
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
        super::kube::kubeconfig_for(dir, &self.url, "fake")
    }
}

impl Drop for FakeLeases {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
