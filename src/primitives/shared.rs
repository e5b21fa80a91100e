//! What bindings of several families share, written once: the option rows
//! and readers of an Akash deployment (the akash primitives and
//! `discover_port`'s akash source), the kube context row and the Service
//! source (the kube and helm families and `discover_port`'s kube source),
//! and the health check's retry options (`http_check`,
//! `kube_service_check`). A binding imports from here or from its family's
//! `mod.rs`, never from another family.

use rhai::{Array, Dynamic, Map};

use crate::akash::{Config, LeaseId};
use crate::context::{error, RhaiResult};
use crate::declare::{opt, Opt};
use crate::error::PrimError;
use crate::kube::capacity::Res;
use crate::kube::service::{PortRef, Source, Target};
use crate::kube::{check_name, check_selector};
use crate::net::retry::Schedule;
use crate::opts::Opts;
use crate::value::map;
use std::time::Duration;

// ---- Akash -------------------------------------------------------------

#[rustfmt::skip]
pub const DSEQ: Opt = Opt { key: "dseq", ty: "int or string", default: "", help: "required: the deployment sequence number" };
#[rustfmt::skip]
pub const BACKEND: Opt = Opt { key: "backend", ty: "string", default: "`AKASH_BACKEND`, else \"console\"", help: "\"console\" (Akash Console API) or \"cli\" (provider-services)" };
#[rustfmt::skip]
pub const API_URL: Opt = Opt { key: "api_url", ty: "string", default: "`AKASH_CONSOLE_API_URL`, else the public Console API", help: "the Console API's base URL" };
#[rustfmt::skip]
pub const PROVIDER: Opt = Opt { key: "provider", ty: "string", default: "`AKASH_PROVIDER`", help: "the provider's address (CLI backend; narrows the Console's leases)" };
#[rustfmt::skip]
pub const FROM: Opt = Opt { key: "from", ty: "string", default: "`AKASH_FROM`", help: "the key to sign with (CLI backend)" };

/// The keys of `discover_port`'s akash source map (listed in its doc; a
/// test keeps the two equal).
pub const AKASH_SOURCE: &[&str] = &[
    "dseq", "provider", "gseq", "oseq", "backend", "api_url", "from",
];

/// The Akash backend options (`backend`, `api_url`, `provider`, `from`),
/// with their environment fallbacks.
pub fn config_from(o: &Opts) -> RhaiResult<Config> {
    Ok(Config::resolve(
        o.str("backend")?,
        o.str("api_url")?,
        o.str("provider")?,
        o.str("from")?,
    )?)
}

/// The lease ids of the options (also the `akash` discovery source's).
pub fn read_lease_id(o: &Opts) -> RhaiResult<LeaseId> {
    Ok(LeaseId {
        gseq: o.int("gseq")?,
        oseq: o.int("oseq")?,
    })
}

// ---- Kubernetes --------------------------------------------------------

#[rustfmt::skip]
pub const CONTEXT: Opt = opt("context", "string", "", "kube context, like `kubectl --context`");

/// The keys of `discover_port`'s kube source map (listed in its doc; a
/// test keeps the two equal).
pub const KUBE_SOURCE: &[&str] = &[
    "namespace",
    "service",
    "selector",
    "port",
    "node",
    "context",
];

/// CPU (millicores) and memory (bytes) as `#{cpu, memory}`.
pub fn res_map(r: Res) -> Dynamic {
    Dynamic::from(map([("cpu", r.cpu.into()), ("memory", r.memory.into())]))
}

/// A Service port by number (1–65535, or digits in a string) or name.
pub fn read_port(v: &Dynamic) -> Result<PortRef, PrimError> {
    let text = v.is_string().then(|| v.to_string());
    let number = v
        .as_int()
        .ok()
        .or_else(|| text.as_deref().and_then(|s| s.parse().ok()));
    match (number, text) {
        (Some(i), _) if (1..=65535).contains(&i) => Ok(PortRef::Number(i as i32)),
        (Some(i), _) => Err(PrimError::usage(format!(
            "port {i} is not a port (1–65535)"
        ))),
        (None, Some(s)) if !s.is_empty() => Ok(PortRef::Name(s)),
        _ => Err(PrimError::usage(format!(
            "the port wants the Service's port number (e.g. 3000) or its name, got {} ({v})",
            v.type_name()
        ))),
    }
}

/// Read the `kube` source map of `discover_port`:
/// `#{namespace, service | selector, port?, node?, context?}`.
pub fn read_kube_source(m: &Map) -> RhaiResult<Source> {
    let o = Opts::new("discover_port kube source", m, KUBE_SOURCE)?;
    let namespace = o.str("namespace")?.unwrap_or_else(|| "default".into());
    check_name("namespace", &namespace)?;
    let target = match (o.str("service")?, o.str("selector")?) {
        (Some(s), None) => check_name("service", &s).map(|_| Target::Name(s))?,
        (None, Some(sel)) => check_selector(&sel).map(|_| Target::Selector(sel))?,
        (Some(_), Some(_)) => {
            return Err(
                PrimError::usage("the kube source takes 'service' or 'selector', not both").into(),
            )
        }
        (None, None) => {
            return Err(PrimError::usage(
                "the kube source needs 'service' (a name) or 'selector' (labels)",
            )
            .into())
        }
    };
    Ok(Source {
        namespace,
        target,
        port: o.raw("port").map(read_port).transpose()?,
        node: o.str("node")?.filter(|s| !s.trim().is_empty()),
        context: o.str("context")?,
    })
}

// ---- Health checks -----------------------------------------------------

/// How often and how long to try.
#[derive(Clone, Debug)]
pub struct Retry {
    /// Statuses that count as healthy.
    pub expect: Vec<u16>,
    /// Bound on one attempt.
    pub timeout: Duration,
    /// Hard bound on the whole check.
    pub max_elapsed: Duration,
    /// First delay between attempts.
    pub initial_interval: Duration,
    /// Largest delay between attempts.
    pub max_interval: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            expect: vec![200],
            timeout: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
            initial_interval: Duration::from_millis(500),
            max_interval: Duration::from_secs(5),
        }
    }
}

impl Retry {
    /// Read the retry options of `prim`.
    pub fn from_opts(prim: &str, o: &Opts) -> RhaiResult<Retry> {
        let d = Retry::default();
        let expect = match o.raw("expect") {
            None => d.expect,
            Some(v) if v.is_int() => vec![status_code(prim, v)?],
            Some(v) if v.is_array() => {
                let a = v.clone().cast::<Array>();
                let codes = a
                    .iter()
                    .map(|x| status_code(prim, x))
                    .collect::<RhaiResult<Vec<u16>>>()?;
                if codes.is_empty() {
                    return Err(error(format!(
                        "{prim}: `expect` is an empty list; give the status (e.g. 200) or a list of them"
                    )));
                }
                codes
            }
            Some(v) => {
                return Err(error(format!(
                    "{prim}: `expect` wants a status code or a list of them, got {} ({v})",
                    v.type_name()
                )))
            }
        };
        let r = Retry {
            expect,
            timeout: o.duration("timeout")?.unwrap_or(d.timeout),
            max_elapsed: o.duration("max_elapsed")?.unwrap_or(d.max_elapsed),
            initial_interval: o
                .duration("initial_interval")?
                .unwrap_or(d.initial_interval),
            max_interval: o.duration("max_interval")?.unwrap_or(d.max_interval),
        };
        if r.timeout.is_zero() || r.max_elapsed.is_zero() || r.initial_interval.is_zero() {
            return Err(error(format!(
                "{prim}: timeout, max_elapsed and initial_interval must be more than 0"
            )));
        }
        Ok(r)
    }
}

impl Retry {
    /// The one retry schedule (`net::retry`) with these bounds.
    pub fn schedule(&self) -> Schedule {
        Schedule::within(self.max_elapsed)
            .delays(self.initial_interval, self.max_interval)
            .attempt_timeout(self.timeout)
    }
}

fn status_code(prim: &str, v: &Dynamic) -> RhaiResult<u16> {
    match v.as_int() {
        Ok(i) if (100..=599).contains(&i) => Ok(i as u16),
        _ => Err(error(format!(
            "{prim}: `expect` holds {v}, which is not an HTTP status (100–599)"
        ))),
    }
}

/// The options every retrying check takes (`http_check`,
/// `kube_service_check`): one table, one parser ([`Retry::from_opts`]).
#[rustfmt::skip]
pub const RETRY_OPTS: &[Opt] = &[
    Opt { key: "expect", ty: "int or [int]", default: "200", help: "the status, or the statuses, that count as healthy" },
    Opt { key: "timeout", ty: "duration", default: "5s", help: "bound on one attempt" },
    Opt { key: "max_elapsed", ty: "duration", default: "60s", help: "hard bound on the whole check, the last attempt cut to fit" },
    Opt { key: "initial_interval", ty: "duration", default: "0.5s", help: "first delay between attempts (doubling, jittered)" },
    Opt { key: "max_interval", ty: "duration", default: "5s", help: "largest delay between attempts" },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn src(pairs: &[(&str, Dynamic)]) -> RhaiResult<Source> {
        read_kube_source(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).into(), v.clone()))
                .collect(),
        )
    }

    /// The message of a thrown error, a usage error's included.
    fn message(e: &rhai::EvalAltResult) -> String {
        match e {
            rhai::EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
            other => other.to_string(),
        }
    }

    #[test]
    fn the_discover_port_source_is_read_and_checked() {
        let s = src(&[
            ("service", "habit-tracker-frontend".into()),
            ("port", 3000_i64.into()),
            ("node", "192.168.49.2".into()),
        ])
        .unwrap();
        assert_eq!(s.namespace, "default");
        assert_eq!(s.port, Some(PortRef::Number(3000)));
        let s = src(&[("selector", "app.kubernetes.io/component=frontend".into())]).unwrap();
        assert_eq!(
            s.target,
            Target::Selector("app.kubernetes.io/component=frontend".into())
        );
        let err = |pairs: &[(&str, Dynamic)]| message(&src(pairs).unwrap_err());
        assert!(err(&[("service", "Bad_Name".into())]).contains("not a Kubernetes name"));
        assert!(err(&[]).contains("needs 'service' (a name) or 'selector'"));
        assert!(err(&[("service", "x".into()), ("selector", "a=b".into())]).contains("not both"));
        assert!(err(&[("selector", "a in (b)".into())]).contains("not a label selector"));
        assert!(err(&[("selector", 3_i64.into())]).contains("wants a string"));
        assert!(err(&[("service", "x".into()), ("nodes", "y".into())])
            .contains("unknown option 'nodes'"));
    }

    #[test]
    fn ports_are_numbers_or_names() {
        assert_eq!(
            read_port(&Dynamic::from(8000_i64)).unwrap(),
            PortRef::Number(8000)
        );
        assert_eq!(
            read_port(&Dynamic::from("8000")).unwrap(),
            PortRef::Number(8000)
        );
        assert_eq!(
            read_port(&Dynamic::from("http")).unwrap(),
            PortRef::Name("http".into())
        );
        for bad in [
            Dynamic::from(0_i64),
            Dynamic::from(70000_i64),
            Dynamic::from(""),
            Dynamic::from(1.5),
        ] {
            assert_eq!(read_port(&bad).unwrap_err().kind, Kind::Usage, "{bad}");
        }
    }

    /// The keys `#{ NAME: #{ … } }` lists in the doc of `discover_port`.
    fn documented_keys(name: &str) -> Vec<String> {
        let doc = include_str!("docs/discover_port.md").replace('\n', " ");
        let start = format!("{name}: #{{");
        let from = doc.find(&start).map(|i| i + start.len()).unwrap();
        let inner = &doc[from..from + doc[from..].find('}').unwrap()];
        let mut keys: Vec<String> = inner
            .split([',', '|'])
            .map(|k| k.trim().trim_end_matches('?').to_string())
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn the_doc_of_discover_port_lists_exactly_the_source_keys() {
        for (name, table) in [("akash", AKASH_SOURCE), ("kube", KUBE_SOURCE)] {
            let mut want: Vec<String> = table.iter().map(|k| k.to_string()).collect();
            want.sort();
            assert_eq!(
                documented_keys(name),
                want,
                "the {name} source in docs/discover_port.md"
            );
        }
    }
}
