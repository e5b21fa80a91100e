//! Connecting to a cluster as kubectl would, and explaining what went
//! wrong when a call fails. The clients of a run live in its context
//! ([`Clients`], a field of `Ctx`), not in a process static: two runs in
//! one process (the test harness) must not share a kubeconfig read or a
//! connection pool.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

use kube::config::KubeConfigOptions;
use kube::{Client, Config};

use crate::error::PrimError;

/// A client for one context, with the server it talks to.
pub struct Kube {
    /// The kube-rs client.
    pub client: Client,
    /// The API server URL.
    pub server: String,
    /// The API server's host (an IP address or a name, no port).
    pub host: String,
    /// The context, as messages name it ("context 'x'" or "the current context").
    pub context: String,
}

/// The clients a run has made, by context: one kubeconfig read and one
/// connection pool per context for the whole run.
#[derive(Default)]
pub struct Clients {
    made: Mutex<Vec<(Option<String>, Arc<Kube>)>>,
}

impl Clients {
    /// The client for `context` (like `kubectl --context`; `None`: the
    /// current context of `KUBECONFIG` / `~/.kube/config`, else
    /// in-cluster), made on first use.
    pub async fn connect(&self, context: Option<&str>) -> Result<Arc<Kube>, PrimError> {
        let key = context.map(str::to_string);
        if let Some(k) = self.cached(&key) {
            return Ok(k);
        }
        // Not held across the await: a second caller may connect too, and
        // the first one stored wins (both clients work).
        let k = Arc::new(connect_new(context).await?);
        let mut made = self.made.lock();
        if let Some((_, old)) = made.iter().find(|(c, _)| *c == key) {
            return Ok(old.clone());
        }
        made.push((key, k.clone()));
        Ok(k)
    }

    fn cached(&self, key: &Option<String>) -> Option<Arc<Kube>> {
        self.made
            .lock()
            .iter()
            .find(|(c, _)| c == key)
            .map(|(_, k)| k.clone())
    }
}

fn kubeconfig_path() -> String {
    std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into())
}

async fn load_config(context: Option<&str>) -> Result<Config, PrimError> {
    match context {
        Some(c) => Config::from_kubeconfig(&KubeConfigOptions {
            context: Some(c.to_string()),
            ..KubeConfigOptions::default()
        })
        .await
        .map_err(|e| {
            PrimError::fatal(format!(
                "cannot load the kube context '{c}' ({e}); check `kubectl config get-contexts` (KUBECONFIG={})",
                kubeconfig_path()
            ))
        }),
        None => Config::infer().await.map_err(|e| {
            PrimError::fatal(format!(
                "no kubeconfig to use ({e}); set KUBECONFIG or start the cluster (`minikube start` writes ~/.kube/config)"
            ))
        }),
    }
}

async fn connect_new(context: Option<&str>) -> Result<Kube, PrimError> {
    let mut cfg = load_config(context).await?;
    // Bounded connects: a dead API server answers quickly or not at all.
    cfg.connect_timeout = Some(Duration::from_secs(5));
    let server = cfg
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let host = cfg
        .cluster_url
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let client = Client::try_from(cfg)
        .map_err(|e| PrimError::fatal(format!("cannot build a client for {server}: {e}")))?;
    Ok(Kube {
        client,
        server,
        host,
        context: context.map_or_else(
            || "the current context".into(),
            |c| format!("context '{c}'"),
        ),
    })
}

/// The error's text with its sources, and whether a connection was refused
/// somewhere down the chain.
fn chain(e: &dyn std::error::Error) -> (String, bool) {
    let mut text = e.to_string();
    let mut refused = false;
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        let t = s.to_string();
        if !text.contains(&t) {
            text = format!("{text}: {t}");
        }
        src = s.source();
    }
    refused |= text.to_lowercase().contains("connection refused");
    (text, refused)
}

/// Whether `e` is the API's answer with status `code`.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(r) if r.code == code)
}

/// A call to explain when it fails: what it was and what it needed.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The call as messages name it ("watch Deployment ns/x").
    pub what: &'a str,
    /// The RBAC verb it needs ("get", "list", "watch").
    pub verb: &'a str,
    /// The resource it acts on ("deployments").
    pub resource: &'a str,
    /// Its namespace, for the `kubectl auth can-i` hint.
    pub ns: Option<&'a str>,
}

/// Explain a kube-rs error with the way out: a 403 names the RBAC
/// permission, a 401 the credentials, a refused connection the cluster and
/// the context. 5xx, 429 and connection trouble are transient; the rest
/// (bad config, TLS, 4xx) fatal.
pub fn explain(k: &Kube, e: &kube::Error, call: Call<'_>) -> PrimError {
    let Call {
        what,
        verb,
        resource,
        ns,
    } = call;
    match e {
        kube::Error::Api(resp) => {
            let detail = if resp.message.is_empty() {
                resp.reason.clone()
            } else {
                resp.message.clone()
            };
            let ns_flag = ns.map(|n| format!(" -n {n}")).unwrap_or_default();
            let msg = match resp.code {
                403 => format!(
                    "{what}: forbidden (403) by {}: {detail}. The user of {} lacks the RBAC permission to {verb} {resource}: bind it a Role or ClusterRole that allows it (check with `kubectl auth can-i {verb} {resource}{ns_flag}`), or use a context that has it (`context` option / --context)",
                    k.server, k.context
                ),
                401 => format!(
                    "{what}: unauthorized (401) by {}: {detail}. The credentials of {} were refused: refresh them (for Minikube: `minikube update-context`)",
                    k.server, k.context
                ),
                404 => format!("{what}: not found (404): {detail}"),
                code => format!("{what}: the API server {} answered {code} {}: {detail}", k.server, resp.reason),
            };
            if resp.code >= 500 || resp.code == 429 {
                PrimError::transient(msg)
            } else {
                PrimError::fatal(msg)
            }
        }
        other => {
            let (text, refused) = chain(other);
            let msg = if refused {
                format!(
                    "{what}: cannot reach the Kubernetes API at {} (connection refused). Is the cluster running? (`minikube status`; start it with `minikube start`) Does {} point at it? (`kubectl config current-context`, the `context` option)",
                    k.server, k.context
                )
            } else {
                format!(
                    "{what}: cannot talk to the Kubernetes API at {}: {text}",
                    k.server
                )
            };
            // Connection-level trouble may pass; bad config, TLS or
            // credentials will not, so fail at once with the reason.
            if matches!(
                other,
                kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_)
            ) {
                PrimError::transient(msg)
            } else {
                PrimError::fatal(msg)
            }
        }
    }
}

/// What `GET /version` says, with where the server is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// The API server URL.
    pub server: String,
    /// Its host.
    pub host: String,
    /// `gitVersion`, e.g. "v1.30.2".
    pub version: String,
    /// `major` as a number (digits only: some distributions print "1+").
    pub major: i64,
    /// `minor` as a number ("30+" → 30).
    pub minor: i64,
}

/// The leading digits of `s` as a number (0 when there are none).
fn digits(s: &str) -> i64 {
    s.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse::<i64>()
        .unwrap_or(0)
}

/// Reach the API server: `GET /version`.
pub async fn server_info(k: &Kube) -> Result<ServerInfo, PrimError> {
    let info = k.client.apiserver_version().await.map_err(|e| {
        explain(
            k,
            &e,
            Call {
                what: "GET /version",
                verb: "get",
                resource: "the /version endpoint",
                ns: None,
            },
        )
    })?;
    Ok(ServerInfo {
        server: k.server.clone(),
        host: k.host.clone(),
        version: info.git_version.clone(),
        major: digits(&info.major),
        minor: digits(&info.minor),
    })
}

/// Read a minimum version "1.28" (a leading "v" and a patch are allowed)
/// as (major, minor).
pub fn parse_min_version(s: &str) -> Result<(i64, i64), PrimError> {
    let t = s.trim().trim_start_matches('v');
    let mut parts = t.split('.');
    let num = |p: Option<&str>| {
        p.filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            .and_then(|p| p.parse::<i64>().ok())
    };
    match (num(parts.next()), num(parts.next())) {
        (Some(major), Some(minor)) if parts.all(|p| p.chars().all(|c| c.is_ascii_digit())) => {
            Ok((major, minor))
        }
        _ => Err(PrimError::usage(format!(
            "min_version '{s}' is not a Kubernetes version MAJOR.MINOR (e.g. \"1.28\")"
        ))),
    }
}

/// Refuse a server older than `min` (major, minor), naming both.
pub fn require_version(info: &ServerInfo, min: (i64, i64)) -> Result<(), PrimError> {
    if (info.major, info.minor) >= min {
        return Ok(());
    }
    Err(PrimError::fatal(format!(
        "the cluster at {} runs Kubernetes {}, older than the {}.{} required (min_version); upgrade the cluster (for Minikube: `minikube start --kubernetes-version=v{}.{}.0`) or use another context",
        info.server, info.version, min.0, min.1, min.0, min.1
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn info(major: i64, minor: i64) -> ServerInfo {
        ServerInfo {
            server: "https://192.168.49.2:8443".into(),
            host: "192.168.49.2".into(),
            version: format!("v{major}.{minor}.3"),
            major,
            minor,
        }
    }

    #[test]
    fn min_versions_are_read_or_refused_as_usage() {
        assert_eq!(parse_min_version("1.28").unwrap(), (1, 28));
        assert_eq!(parse_min_version("v1.28.0").unwrap(), (1, 28));
        for bad in ["", "1", "one.two", "1.x", "1.28.x", "1..28"] {
            let e = parse_min_version(bad).unwrap_err();
            assert_eq!(e.kind, Kind::Usage, "{bad}");
            assert!(e.msg.contains("MAJOR.MINOR"), "{e}");
        }
    }

    #[test]
    fn an_older_server_is_refused_with_both_versions() {
        assert!(require_version(&info(1, 28), (1, 28)).is_ok());
        assert!(require_version(&info(2, 0), (1, 28)).is_ok());
        let e = require_version(&info(1, 27), (1, 28)).unwrap_err();
        assert_eq!(e.kind, Kind::Fatal);
        assert!(
            e.msg
                .contains("runs Kubernetes v1.27.3, older than the 1.28 required"),
            "{e}"
        );
    }

    #[test]
    fn version_fields_keep_their_digits() {
        assert_eq!(digits("30+"), 30);
        assert_eq!(digits("1"), 1);
        assert_eq!(digits(""), 0);
    }

    #[tokio::test]
    async fn api_errors_are_classified_and_explained() {
        let k = Kube {
            client: Client::try_from(Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap(),
            server: "http://127.0.0.1:9".into(),
            host: "127.0.0.1".into(),
            context: "context 'minikube'".into(),
        };
        let api = |code: u16| {
            kube::Error::Api(kube::core::ErrorResponse {
                status: "Failure".into(),
                message: "denied".into(),
                reason: "Forbidden".into(),
                code,
            })
        };
        let call = Call {
            what: "list deployments",
            verb: "list",
            resource: "deployments",
            ns: Some("ht"),
        };
        let e = explain(&k, &api(403), call);
        assert_eq!(e.kind, Kind::Fatal);
        assert!(
            e.msg.contains("kubectl auth can-i list deployments -n ht"),
            "{e}"
        );
        assert!(explain(&k, &api(503), call).is_transient());
        assert!(explain(&k, &api(429), call).is_transient());
        assert_eq!(explain(&k, &api(404), call).kind, Kind::Fatal);
        assert!(explain(&k, &api(401), call)
            .msg
            .contains("minikube update-context"));
    }
}
