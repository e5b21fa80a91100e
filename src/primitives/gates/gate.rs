//! `gate(name, opts)`: a gate's options read and checked, and read back
//! from the map the script holds.

use std::time::Duration;

use rhai::{Array, Dynamic, FnPtr, Map};

use super::usage;
use crate::context::{error, RhaiResult};
use crate::declare::{opt, Opt, Spec};
use crate::gates::prometheus;
use crate::gates::{Cond, Judge, Limits, OnEmpty, Schedule};
use crate::opts::Opts;

#[rustfmt::skip]
const GATE_OPTS: &[Opt] = &[
    opt("prometheus", "map", "", "`#{ url, query }`: an instant query's single value"),
    opt("http", "map", "", "`#{ url, status, json }`: a GET's status, or a JSON pointer's value in its answer"),
    opt("check", "closure", "", "`|| …` returning a number or a bool (`()` is empty)"),
    opt("success", "string", "", "a measurement is good when this holds, e.g. \"value < 0.01\""),
    opt("failure", "string", "", "a measurement is bad when this holds, e.g. \"value >= 0.05\""),
    opt("on_empty", "string", "\"inconclusive\"", "an empty result, NaN or no data: \"inconclusive\", \"failed\" or \"passed\""),
    opt("initial_delay", "duration", "0s", "wait before the first measurement"),
    opt("interval", "duration", "10s", "between measurements"),
    opt("count", "int", "3", "how many measurements"),
    opt("timeout", "duration", "10s", "bound on one measurement"),
    opt("failure_limit", "int", "0", "failed measurements tolerated"),
    opt("inconclusive_limit", "int", "0", "inconclusive measurements tolerated"),
    opt("error_limit", "int", "2", "measurements that could not be taken tolerated"),
];

#[rustfmt::skip]
pub(super) static GATE: Spec = Spec { name: "gate", params: &["name: String"], returns: "Map", doc: include_str!("../docs/gate.md"), opts: GATE_OPTS };

/// What a gate measures.
#[derive(Clone)]
pub(super) enum Source {
    Prometheus {
        url: String,
        query: String,
    },
    Http {
        url: String,
        expect: Option<Vec<u16>>,
        json: Option<String>,
    },
    Check(FnPtr),
}

/// A gate, read and checked.
#[derive(Clone)]
pub(super) struct Gate {
    pub(super) name: String,
    pub(super) source: Source,
    pub(super) judge: Judge,
    pub(super) schedule: Schedule,
    pub(super) limits: Limits,
}

impl Gate {
    pub(super) fn what(&self) -> String {
        match &self.source {
            Source::Prometheus { url, query } => format!("query `{query}` on {url}"),
            Source::Http {
                url, json: Some(p), ..
            } => format!("GET {url} (JSON {p})"),
            Source::Http { url, .. } => format!("GET {url}"),
            Source::Check(f) => format!("check closure {}", f.fn_name()),
        }
    }
}

fn limit(o: &Opts, key: &str, default: u32) -> RhaiResult<u32> {
    match o.int(key)? {
        None => Ok(default),
        Some(n) => u32::try_from(n).map_err(|_| usage(format!("{key} is {n}; give 0 or more"))),
    }
}

fn cond(name: &str, o: &Opts, key: &str) -> RhaiResult<Option<Cond>> {
    o.str(key)?
        .map(|s| Cond::parse(&s).map_err(|e| usage(format!("gate '{name}': {key} \"{s}\": {e}"))))
        .transpose()
}

pub(super) fn http_url(name: &str, url: &str) -> RhaiResult<()> {
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || reqwest::Url::parse(url).is_err()
    {
        return Err(usage(format!(
            "gate '{name}': '{url}' is not an http(s) URL; give the whole URL, e.g. \"http://127.0.0.1:9090\""
        )));
    }
    Ok(())
}

/// Read a gate from its name and options (`gate()` and `verify()` both).
pub(super) fn read_gate(name: &str, o: &Opts) -> RhaiResult<Gate> {
    if name.trim().is_empty() {
        return Err(usage(
            "a gate needs a name (it is what a failure names)".into(),
        ));
    }
    let prom = o.map("prometheus")?;
    let http = o.map("http")?;
    let check = o.raw("check").cloned();
    let mut success = cond(name, o, "success")?;
    let failure = cond(name, o, "failure")?;
    let source = match (prom, http, check) {
        (Some(p), None, None) => {
            let p = Opts::new("gate prometheus source", &p, &["url", "query"])?;
            let url = p.req_str("url")?;
            let query = p.req_str("query")?;
            prometheus::query_url(&url, &query).map_err(|e| usage(format!("gate '{name}': {}", e.msg)))?;
            if success.is_none() && failure.is_none() {
                return Err(usage(format!(
                    "gate '{name}': a Prometheus value needs `success` or `failure` (e.g. success: \"value < 0.01\")"
                )));
            }
            Source::Prometheus { url: url.trim_end_matches('/').to_string(), query }
        }
        (None, Some(h), None) => {
            let h = Opts::new("gate http source", &h, &["url", "status", "json"])?;
            let url = h.req_str("url")?;
            http_url(name, &url)?;
            let expect = match h.raw("status") {
                None => None,
                Some(v) => {
                    let list: Array = if v.is_array() { v.clone().cast() } else { vec![v.clone()] };
                    let codes = list
                        .iter()
                        .map(|x| match x.as_int() {
                            Ok(i) if (100..=599).contains(&i) => Ok(i as u16),
                            _ => Err(usage(format!("gate '{name}': status {x} is not an HTTP status (100–599)"))),
                        })
                        .collect::<RhaiResult<Vec<u16>>>()?;
                    Some(codes)
                }
            };
            let json = h.str("json")?;
            if let Some(p) = &json {
                if !(p.is_empty() || p.starts_with('/')) {
                    return Err(usage(format!(
                        "gate '{name}': json \"{p}\" is not a JSON pointer; write it like \"/status/errors\""
                    )));
                }
            } else if success.is_none() && failure.is_none() {
                // The status alone: the expected one(s), else any 2xx.
                let text = match &expect {
                    Some(codes) => codes.iter().map(|c| format!("value == {c}")).collect::<Vec<_>>().join(" || "),
                    None => "value >= 200 && value < 300".into(),
                };
                success = Some(Cond::parse(&text).map_err(error)?);
            }
            Source::Http { url, expect, json }
        }
        (None, None, Some(f)) => match f.try_cast::<FnPtr>() {
            Some(f) => Source::Check(f),
            None => return Err(usage(format!("gate '{name}': check wants a closure `|| …`"))),
        },
        (None, None, None) => {
            return Err(usage(format!(
                "gate '{name}' has no source; give one of prometheus: #{{ url, query }}, http: #{{ url }}, check: || …"
            )))
        }
        _ => return Err(usage(format!("gate '{name}' has more than one source; give one of prometheus, http, check"))),
    };
    let on_empty = match o.str("on_empty")? {
        None => OnEmpty::Inconclusive,
        Some(s) => OnEmpty::parse(&s).map_err(|e| usage(format!("gate '{name}': {e}")))?,
    };
    let count = match o.int("count")? {
        None => 3,
        Some(n) if (1..=10_000).contains(&n) => n as u32,
        Some(n) => {
            return Err(usage(format!(
                "gate '{name}': count is {n}; give 1 to 10000"
            )))
        }
    };
    let schedule = Schedule {
        initial_delay: o.duration("initial_delay")?.unwrap_or_default(),
        interval: o.duration("interval")?.unwrap_or(Duration::from_secs(10)),
        count,
        timeout: o.duration("timeout")?.unwrap_or(Duration::from_secs(10)),
    };
    if schedule.timeout.is_zero() {
        return Err(usage(format!("gate '{name}': timeout must be more than 0")));
    }
    let d = Limits::default();
    let limits = Limits {
        failure: limit(o, "failure_limit", d.failure)?,
        inconclusive: limit(o, "inconclusive_limit", d.inconclusive)?,
        error: limit(o, "error_limit", d.error)?,
    };
    Ok(Gate {
        name: name.to_string(),
        source,
        judge: Judge {
            success,
            failure,
            on_empty,
        },
        schedule,
        limits,
    })
}

/// A gate as the script holds it: its options and its name.
pub(super) fn gate_map(name: &str, o: &Map) -> Map {
    let mut m = o.clone();
    m.insert("name".into(), Dynamic::from(name.to_string()));
    m
}

/// Read a gate back from the map `gate()` returned.
fn gate_of(v: &Dynamic) -> RhaiResult<Gate> {
    let Some(m) = v.read_lock::<Map>().map(|m| m.clone()) else {
        return Err(usage(format!(
            "a gate is what gate(name, opts) returns, got {} ({v})",
            v.type_name()
        )));
    };
    let name = m.get("name").map(|n| n.to_string()).unwrap_or_default();
    let mut rest = m.clone();
    rest.remove("name");
    let o = GATE.read(&rest)?;
    read_gate(&name, &o)
}

pub(super) fn gates_of(v: &Array) -> RhaiResult<Vec<Gate>> {
    if v.is_empty() {
        return Err(usage("verify: no gates; give [gate(...), …]".into()));
    }
    let gates = v.iter().map(gate_of).collect::<RhaiResult<Vec<Gate>>>()?;
    let mut names: Vec<&str> = gates.iter().map(|g| g.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(usage(format!(
            "two gates are named '{}'; each failure names its gate, so names must differ",
            w[0]
        )));
    }
    Ok(gates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::gates::test_engine as engine;

    #[test]
    fn gates_are_checked_when_declared() {
        let (_rt, e) = engine();
        for (src, want) in [
            (r#"gate("", #{ check: || 1 })"#, "needs a name"),
            (r#"gate("a", #{})"#, "has no source"),
            (
                r#"gate("a", #{ check: || 1, http: #{ url: "http://x/" } })"#,
                "more than one source",
            ),
            (
                r#"gate("a", #{ prometheus: #{ url: "http://p:9090", query: "up" } })"#,
                "needs `success` or `failure`",
            ),
            (
                r#"gate("a", #{ prometheus: #{ url: "p:9090", query: "up" }, success: "value > 0" })"#,
                "not an http(s) URL",
            ),
            (
                r#"gate("a", #{ check: || 1, success: "value = 1" })"#,
                "compare with '=='",
            ),
            (
                r#"gate("a", #{ check: || 1, on_empty: "ignore" })"#,
                "on_empty is \"ignore\"",
            ),
            (r#"gate("a", #{ check: || 1, count: 0 })"#, "count is 0"),
            (
                r#"gate("a", #{ check: || 1, failure_limit: -1 })"#,
                "give 0 or more",
            ),
            (
                r#"gate("a", #{ http: #{ url: "http://x/", json: "errors" } })"#,
                "not a JSON pointer",
            ),
            (
                r#"gate("a", #{ check: || 1, succes: "value > 1" })"#,
                "unknown option 'succes'",
            ),
            (
                r#"verify([gate("a", #{ check: || 1 }), gate("a", #{ check: || 2 })])"#,
                "two gates are named 'a'",
            ),
        ] {
            let err = e.eval::<Dynamic>(src).unwrap_err().to_string();
            assert!(err.contains(want), "{src}: {err}");
        }
    }
}
