//! The one retry schedule: jittered exponential backoff with a hard
//! deadline. Every primitive that tries again (registry requests, HTTP
//! checks, port discovery, Akash and Kubernetes calls) goes through
//! [`retry_with`]; only [`Kind::Transient`] failures are retried, and the
//! whole loop returns by `max_elapsed`, the last attempt cut to fit.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;

use crate::error::{fmt_secs, Kind, PrimError};

/// How often and how long to try.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// First delay between attempts.
    pub initial: Duration,
    /// Largest delay between attempts.
    pub max_interval: Duration,
    /// Hard bound on the whole loop, attempts and delays included.
    pub max_elapsed: Duration,
    /// Bound on one attempt (cut to what is left of `max_elapsed`).
    pub attempt_timeout: Duration,
    /// At most this many attempts (a second guard besides the deadline).
    pub max_attempts: u32,
    /// Growth of the delay from one attempt to the next.
    pub factor: f32,
    /// Randomize delays (0–100 % more), so many runners do not poll in step.
    pub jitter: bool,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            initial: Duration::from_millis(500),
            max_interval: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(5),
            max_attempts: 10_000,
            factor: 2.0,
            jitter: true,
        }
    }
}

impl Schedule {
    /// The default schedule bounded by `max_elapsed`.
    pub fn within(max_elapsed: Duration) -> Self {
        Schedule {
            max_elapsed,
            ..Schedule::default()
        }
    }

    /// At most `n` attempts.
    pub fn attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Delays from `initial` doubling up to `max_interval`.
    pub fn delays(mut self, initial: Duration, max_interval: Duration) -> Self {
        self.initial = initial;
        self.max_interval = max_interval.max(initial);
        self
    }

    /// Each attempt bounded by `d`.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }
}

/// The schedule's clock for one loop: whether another attempt fits, its
/// budget, and the delay before it. [`retry_with`] runs on it, and so does
/// a loop that must stay on the script thread (`discover_port` with a
/// closure source).
pub struct Pacer {
    schedule: Schedule,
    delays: backon::ExponentialBackoff,
    start: Instant,
    attempt: u32,
}

impl Pacer {
    /// Start the clock.
    pub fn start(s: &Schedule) -> Pacer {
        let b = backon::ExponentialBuilder::default()
            .with_min_delay(s.initial)
            .with_max_delay(s.max_interval.max(s.initial))
            .with_factor(s.factor)
            .without_max_times();
        let b = if s.jitter { b.with_jitter() } else { b };
        Pacer {
            schedule: s.clone(),
            delays: b.build(),
            start: Instant::now(),
            attempt: 0,
        }
    }

    /// The next attempt's number and time budget, or `None` when the
    /// schedule is spent (too little time left for a meaningful attempt,
    /// or the attempts used up).
    pub fn next_attempt(&mut self) -> Option<(u32, Duration)> {
        let remaining = self.remaining();
        if remaining < Duration::from_millis(5) || self.attempt >= self.schedule.max_attempts {
            return None;
        }
        self.attempt += 1;
        Some((self.attempt, self.schedule.attempt_timeout.min(remaining)))
    }

    /// The delay before the next attempt, at least `at_least` (a
    /// `Retry-After`), cut to the time left; `None` when none is left.
    pub fn next_delay(&mut self, at_least: Option<Duration>) -> Option<Duration> {
        let remaining = self.remaining();
        if remaining.is_zero() || self.attempt >= self.schedule.max_attempts {
            return None;
        }
        let backoff = self.delays.next().unwrap_or(self.schedule.max_interval);
        Some(at_least.map_or(backoff, |a| a.max(backoff)).min(remaining))
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn remaining(&self) -> Duration {
        self.schedule
            .max_elapsed
            .saturating_sub(self.start.elapsed())
    }
}

/// How a successful loop went.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// Attempts made, the successful one included.
    pub attempts: u32,
    /// From the first attempt to the answer.
    pub elapsed: Duration,
}

/// Why the loop stopped without a value.
#[derive(Clone, Debug)]
pub struct GaveUp {
    /// Attempts made.
    pub attempts: u32,
    /// From the first attempt to giving up.
    pub elapsed: Duration,
    /// The last failure seen.
    pub last: PrimError,
    /// True when the schedule ran out (time or attempts); false when a
    /// fatal or usage failure stopped it at once.
    pub exhausted: bool,
}

/// Call `op` (given the attempt number, from 1) until it succeeds, a
/// non-transient failure stops it, or the schedule runs out.
pub async fn retry_with<T, F, Fut>(s: &Schedule, mut op: F) -> Result<(T, Stats), GaveUp>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, PrimError>>,
{
    let mut pacer = Pacer::start(s);
    let mut last = PrimError::transient("no attempt fitted in the bound");
    while let Some((attempt, budget)) = pacer.next_attempt() {
        let err = match tokio::time::timeout(budget, op(attempt)).await {
            Ok(Ok(v)) => {
                let stats = Stats {
                    attempts: attempt,
                    elapsed: pacer.elapsed(),
                };
                return Ok((v, stats));
            }
            Ok(Err(e)) if e.kind != Kind::Transient => {
                return Err(GaveUp {
                    attempts: attempt,
                    elapsed: pacer.elapsed(),
                    last: e,
                    exhausted: false,
                })
            }
            Ok(Err(e)) => e,
            Err(_) => PrimError::transient(format!("no answer within {}", fmt_secs(budget))),
        };
        let delay = pacer.next_delay(err.retry_after);
        last = err;
        let Some(delay) = delay else { break };
        tracing::debug!(attempt, delay_ms = delay.as_millis() as u64, seen = %last.msg, "retrying");
        tokio::time::sleep(delay).await;
    }
    Err(GaveUp {
        attempts: pacer.attempts(),
        elapsed: pacer.elapsed(),
        last,
        exhausted: true,
    })
}

/// [`retry_with`], its outcome as one error naming `what`, the attempts,
/// the time and the bound, and the last failure.
pub async fn retry<T, F, Fut>(what: &str, s: &Schedule, op: F) -> Result<T, PrimError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, PrimError>>,
{
    match retry_with(s, op).await {
        Ok((v, _)) => Ok(v),
        Err(g) if !g.exhausted => Err(g.last),
        Err(g) => Err(PrimError::transient(format!(
            "{what}: gave up after {} attempt(s) in {} (bound {}); last: {}",
            g.attempts,
            fmt_secs(g.elapsed),
            fmt_secs(s.max_elapsed),
            g.last.msg
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> Schedule {
        Schedule::within(Duration::from_millis(600))
            .delays(Duration::from_millis(10), Duration::from_millis(50))
            .attempt_timeout(Duration::from_millis(200))
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let n = AtomicU32::new(0);
        let (v, stats) = retry_with(&fast(), |a| {
            n.fetch_add(1, Ordering::SeqCst);
            async move {
                if a < 3 {
                    Err(PrimError::transient("refused"))
                } else {
                    Ok(a)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!((v, stats.attempts), (3, 3));
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn fatal_and_usage_stop_at_once() {
        for e in [PrimError::fatal("403"), PrimError::usage("bad")] {
            let n = AtomicU32::new(0);
            let g = retry_with(&fast(), |_| {
                n.fetch_add(1, Ordering::SeqCst);
                let e = e.clone();
                async move { Err::<(), _>(e) }
            })
            .await
            .unwrap_err();
            assert_eq!(n.load(Ordering::SeqCst), 1);
            assert!(!g.exhausted);
            assert_eq!(g.last, e);
        }
    }

    #[tokio::test]
    async fn the_deadline_is_hard_and_the_message_names_the_last_failure() {
        let started = Instant::now();
        let e = retry("GET /v2/", &fast(), |_| async {
            Err::<(), _>(PrimError::transient("answered 503"))
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(900), "{e}");
        assert!(e.msg.starts_with("GET /v2/: gave up after"), "{e}");
        assert!(e.msg.ends_with("last: answered 503"), "{e}");
        assert!(e.is_transient());
    }

    #[tokio::test]
    async fn a_hung_attempt_is_cut_by_its_timeout() {
        let started = Instant::now();
        let g = retry_with(&fast(), |_| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<(), PrimError>(())
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(900));
        assert!(g.last.msg.contains("no answer within"), "{}", g.last);
    }

    #[tokio::test]
    async fn attempts_are_bounded_too() {
        let n = AtomicU32::new(0);
        let s = fast().attempts(2);
        let g = retry_with(&s, |_| {
            n.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(PrimError::transient("refused")) }
        })
        .await
        .unwrap_err();
        assert_eq!(n.load(Ordering::SeqCst), 2);
        assert!(g.exhausted);
    }

    #[tokio::test]
    async fn retry_after_is_honoured_within_the_bound() {
        let started = Instant::now();
        let s = fast().attempts(2);
        let _ = retry_with(&s, |_| async {
            Err::<(), _>(PrimError::transient("429").after(Some(Duration::from_millis(300))))
        })
        .await;
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
