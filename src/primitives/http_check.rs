//! `http_check(url, opts)`: GET a URL until it answers the expected status,
//! with bounded, jittered exponential backoff. The bound is hard: the call
//! returns or throws by `max_elapsed`, the last attempt cut to fit.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, ImmutableString, Map};

use crate::context::{error, Ctx, RhaiResult};
use crate::declare::Spec;
use crate::error::{fmt_secs, PrimError};
use crate::net::retry::retry_with;
use crate::opts::Opts;
use crate::primitives::shared::{Retry, RETRY_OPTS};

/// What one attempt saw.
pub enum Probe {
    /// An answer with this status.
    Status(u16),
    /// No answer worth retrying (connection refused, timeout, reset).
    Transient(String),
    /// No point trying again (a bad URL, a 403 from the API server).
    Fatal(String),
}

/// A successful check: the status and how long it took.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The status that matched.
    pub status: u16,
    /// From the first attempt to the answer.
    pub elapsed: Duration,
    /// Attempts made.
    pub attempts: u32,
}

impl Checked {
    /// As the map the check primitives return: `#{status, elapsed}`.
    pub fn to_map(&self) -> Map {
        let mut m = Map::new();
        m.insert("status".into(), Dynamic::from(i64::from(self.status)));
        m.insert(
            "elapsed".into(),
            Dynamic::from(self.elapsed.as_secs_f64() as rhai::FLOAT),
        );
        m
    }
}

/// Call `probe` until it answers a status in `r.expect`, on the one retry
/// schedule bounded by `r.max_elapsed` (each attempt by `r.timeout`, cut
/// to fit). `prim` and `what` name the call in logs and errors.
pub async fn retry_until<F, Fut>(
    prim: &'static str,
    what: &str,
    r: &Retry,
    mut probe: F,
) -> Result<Checked, PrimError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Probe>,
{
    let start = Instant::now();
    let outcome = retry_with(&r.schedule(), |attempt| {
        let fut = probe();
        async move {
            let seen = match fut.await {
                Probe::Status(s) if r.expect.contains(&s) => return Ok(s),
                Probe::Status(s) => PrimError::transient(format!("answered {s}")),
                Probe::Transient(e) => PrimError::transient(e),
                Probe::Fatal(e) => return Err(PrimError::fatal(e)),
            };
            tracing::info!(
                primitive = prim, target_url = %what, attempt,
                elapsed_ms = start.elapsed().as_millis() as u64, seen = %seen.msg, outcome = "waiting",
                "{what}: attempt {attempt} {}", seen.msg
            );
            Err(seen)
        }
    })
    .await;
    match outcome {
        Ok((status, stats)) => {
            let attempt = stats.attempts;
            tracing::info!(
                primitive = prim, target_url = %what, status, attempt,
                elapsed_ms = stats.elapsed.as_millis() as u64, outcome = "healthy",
                "{what} answered {status} (attempt {attempt}, {})", fmt_secs(stats.elapsed)
            );
            Ok(Checked {
                status,
                elapsed: stats.elapsed,
                attempts: attempt,
            })
        }
        Err(g) if !g.exhausted => Err(PrimError::fatal(format!(
            "{prim}: {what}: {} (attempt {}; not retried: retrying cannot fix this)",
            g.last.msg, g.attempts
        ))),
        Err(g) => {
            let want: Vec<String> = r.expect.iter().map(u16::to_string).collect();
            Err(PrimError::transient(format!(
                "{prim}: {what} did not answer {} after {} attempt(s) in {} (bound max_elapsed = {}); last: {}",
                want.join(" or "),
                g.attempts,
                fmt_secs(g.elapsed),
                fmt_secs(r.max_elapsed),
                g.last.msg
            )))
        }
    }
}

/// One GET through the run's HTTP client.
async fn get_once(ctx: &Ctx, url: &str) -> Probe {
    match crate::net::get_status(&ctx.http, url).await {
        Ok(status) => Probe::Status(status),
        Err(e) if e.is_transient() => Probe::Transient(e.msg),
        Err(e) => Probe::Fatal(e.msg),
    }
}

fn check(ctx: &Arc<Ctx>, url: &str, o: &Opts) -> RhaiResult<Map> {
    let r = Retry::from_opts("http_check", o)?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(error(format!(
            "http_check: '{url}' is not an http(s) URL; give the whole URL, e.g. \"http://192.168.49.2:30080/health\""
        )));
    }
    if reqwest::Url::parse(url).is_err() {
        return Err(error(format!("http_check: '{url}' is not a valid URL")));
    }
    let c2 = ctx.clone();
    let u2 = url.to_string();
    // The loop bounds itself; the outer bound is a backstop.
    let checked = ctx.block_on(
        "http_check",
        r.max_elapsed + Duration::from_secs(5),
        async move {
            let c3 = c2.clone();
            let u3 = u2.clone();
            retry_until("http_check", &u2, &r, move || {
                let c4 = c3.clone();
                let u4 = u3.clone();
                async move { get_once(&c4, &u4).await }
            })
            .await
        },
    )?;
    Ok(checked.to_map())
}

#[rustfmt::skip]
static SPEC: Spec = Spec {
    name: "http_check",
    params: &["url: String"],
    returns: "Map",
    doc: include_str!("docs/http_check.md"),
    opts: RETRY_OPTS,
};

/// Register `http_check`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    SPEC.register1(engine, move |url: ImmutableString, o: &Opts| {
        check(&c, &url, o)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> Retry {
        Retry {
            expect: vec![200],
            timeout: Duration::from_millis(200),
            max_elapsed: Duration::from_millis(600),
            initial_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn retries_until_the_expected_status() {
        let n = AtomicU32::new(0);
        let r = retry_until("t", "x", &fast(), || {
            let k = n.fetch_add(1, Ordering::SeqCst);
            async move {
                match k {
                    0 => Probe::Transient("connection refused".into()),
                    1 => Probe::Status(503),
                    _ => Probe::Status(200),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.attempts, 3);
    }

    #[tokio::test]
    async fn gives_up_by_the_bound_naming_the_last_answer() {
        let started = Instant::now();
        let err = retry_until("t", "http://x/health", &fast(), || async {
            Probe::Status(503)
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(900), "{err}");
        assert!(err.msg.contains("did not answer 200"), "{err}");
        assert!(err.msg.contains("last: answered 503"), "{err}");
        assert!(err.msg.contains("bound max_elapsed"), "{err}");
    }

    #[tokio::test]
    async fn a_hung_attempt_is_cut_by_its_timeout() {
        let started = Instant::now();
        let err = retry_until("t", "x", &fast(), || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Probe::Status(200)
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(900), "{err}");
        assert!(err.msg.contains("no answer within"), "{err}");
    }

    #[tokio::test]
    async fn fatal_is_not_retried() {
        let n = AtomicU32::new(0);
        let err = retry_until("t", "x", &fast(), || {
            n.fetch_add(1, Ordering::SeqCst);
            async { Probe::Fatal("forbidden".into()) }
        })
        .await
        .unwrap_err();
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert!(err.msg.contains("not retried"), "{err}");
    }

    #[test]
    fn expect_accepts_a_code_or_a_list() {
        let mut m = Map::new();
        m.insert(
            "expect".into(),
            Dynamic::from(vec![Dynamic::from(200_i64), Dynamic::from(307_i64)]),
        );
        let o = SPEC.read(&m).unwrap();
        assert_eq!(
            Retry::from_opts("http_check", &o).unwrap().expect,
            [200, 307]
        );
        m.insert("expect".into(), Dynamic::from(42_i64));
        let o = SPEC.read(&m).unwrap();
        assert!(Retry::from_opts("http_check", &o).is_err());
    }
}
