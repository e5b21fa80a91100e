//! Health gates, without Rhai: how a measurement is judged ([`Judge`]),
//! how a gate's measurements add up to passed, failed or inconclusive
//! ([`Tally`]), the Prometheus instant query ([`prometheus`]), and the
//! run-wide state of a guarded deploy ([`Shield`]) that lets a rollback
//! outlive a signal or a deadline.

pub mod expr;
pub mod prometheus;
pub mod shield;

use std::time::Duration;

pub use expr::Cond;
pub use shield::{Outcome, Shield};

/// How a measurement that has no value (an empty result, NaN, no data)
/// is judged: never an internal error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnEmpty {
    /// Neither good nor bad (the default).
    Inconclusive,
    /// Counts as a failure.
    Failed,
    /// Counts as a success.
    Passed,
}

impl OnEmpty {
    /// Read `"inconclusive" | "failed" | "passed"`.
    pub fn parse(s: &str) -> Result<OnEmpty, String> {
        match s {
            "inconclusive" => Ok(OnEmpty::Inconclusive),
            "failed" => Ok(OnEmpty::Failed),
            "passed" => Ok(OnEmpty::Passed),
            _ => Err(format!(
                "on_empty is \"{s}\"; give \"inconclusive\", \"failed\" or \"passed\""
            )),
        }
    }
}

/// What one measurement saw.
#[derive(Clone, Debug, PartialEq)]
pub enum Measured {
    /// A number (NaN is judged as empty).
    Value(f64),
    /// A yes/no answer (a closure's bool).
    Bool(bool),
    /// No value: an empty result, no series, a missing JSON field.
    Empty(String),
    /// A value that is a failure by itself (an HTTP status not expected).
    Bad(f64, String),
    /// The measurement could not be taken (the endpoint answered 500, a
    /// timeout, a closure threw).
    Error(String),
}

impl Measured {
    /// How the value reads in a message.
    pub fn show(&self) -> String {
        match self {
            Measured::Value(v) if v.is_nan() => "NaN".into(),
            Measured::Value(v) | Measured::Bad(v, _) => fmt_num(*v),
            Measured::Bool(b) => b.to_string(),
            Measured::Empty(_) => "empty".into(),
            Measured::Error(_) => "error".into(),
        }
    }
}

/// A number as a person would write it (no trailing `.0`).
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The judgement of one measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Good.
    Success,
    /// Bad.
    Failure,
    /// Neither condition said.
    Inconclusive,
    /// Not measured.
    Error,
}

/// How a gate judges a measurement: `success` and `failure` conditions
/// and what an empty value means.
#[derive(Clone, Debug)]
pub struct Judge {
    /// The value is good when this holds.
    pub success: Option<Cond>,
    /// The value is bad when this holds.
    pub failure: Option<Cond>,
    /// An empty value's verdict.
    pub on_empty: OnEmpty,
}

impl Judge {
    /// The verdict on one measurement. With both conditions, neither
    /// holding is inconclusive; with one, its negation is the other
    /// verdict; with none, only a bool (true is success) can be judged.
    pub fn judge(&self, m: &Measured) -> (Verdict, Option<String>) {
        let v = match m {
            Measured::Error(e) => return (Verdict::Error, Some(e.clone())),
            Measured::Bad(_, why) => return (Verdict::Failure, Some(why.clone())),
            Measured::Empty(why) => return (self.empty(), Some(why.clone())),
            Measured::Value(v) if v.is_nan() => return (self.empty(), Some("NaN".into())),
            Measured::Value(v) => *v,
            Measured::Bool(b) if self.success.is_none() && self.failure.is_none() => {
                return (
                    if *b {
                        Verdict::Success
                    } else {
                        Verdict::Failure
                    },
                    None,
                )
            }
            Measured::Bool(b) => f64::from(u8::from(*b)),
        };
        let verdict = match (&self.success, &self.failure) {
            (Some(s), _) if s.holds(v) => Verdict::Success,
            (_, Some(f)) if f.holds(v) => Verdict::Failure,
            (Some(_), Some(_)) => Verdict::Inconclusive,
            (Some(_), None) => Verdict::Failure,
            (None, Some(_)) => Verdict::Success,
            (None, None) => {
                return (
                    Verdict::Error,
                    Some(
                        "a number cannot be judged without a `success` or `failure` condition"
                            .into(),
                    ),
                )
            }
        };
        (verdict, None)
    }

    fn empty(&self) -> Verdict {
        match self.on_empty {
            OnEmpty::Inconclusive => Verdict::Inconclusive,
            OnEmpty::Failed => Verdict::Failure,
            OnEmpty::Passed => Verdict::Success,
        }
    }
}

/// When a gate measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Wait before the first measurement.
    pub initial_delay: Duration,
    /// Between measurements.
    pub interval: Duration,
    /// How many measurements (at least 1).
    pub count: u32,
    /// Bound on one measurement.
    pub timeout: Duration,
}

impl Schedule {
    /// The time the whole schedule needs at most: the delays and every
    /// measurement's bound.
    pub fn span(&self) -> Duration {
        self.initial_delay
            + self.interval * self.count.saturating_sub(1)
            + self.timeout * self.count
    }
}

/// How many bad measurements a gate tolerates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Failed measurements tolerated (default 0).
    pub failure: u32,
    /// Inconclusive measurements tolerated (default 0).
    pub inconclusive: u32,
    /// Measurements that could not be taken tolerated (default 2).
    pub error: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            failure: 0,
            inconclusive: 0,
            error: 2,
        }
    }
}

/// A gate's state, and at the end its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Still measuring.
    Running,
    /// Every measurement taken, no limit passed, at least one success.
    Passed,
    /// A failure or error limit was passed.
    Failed,
    /// The inconclusive limit was passed, or no measurement succeeded, or
    /// the measurements did not finish in time.
    Inconclusive,
}

impl Status {
    /// As the result map says it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Inconclusive => "inconclusive",
        }
    }
}

/// One gate's measurements so far, judged as they come.
#[derive(Clone, Debug)]
pub struct Tally {
    /// The gate's name.
    pub name: String,
    /// What it measures, resolved (`prometheus http://…: QUERY`, `GET URL`).
    pub what: String,
    judge: Judge,
    limits: Limits,
    count: u32,
    /// Every measurement, in order.
    pub measured: Vec<Measured>,
    successes: u32,
    failures: u32,
    inconclusives: u32,
    errors: u32,
    last_note: Option<String>,
    /// Running until a limit passes or every measurement is in.
    pub status: Status,
    /// Why it ended as it did.
    pub reason: String,
}

impl Tally {
    /// A gate about to measure.
    pub fn new(name: &str, what: &str, judge: Judge, limits: Limits, count: u32) -> Tally {
        Tally {
            name: name.into(),
            what: what.into(),
            judge,
            limits,
            count: count.max(1),
            measured: Vec::new(),
            successes: 0,
            failures: 0,
            inconclusives: 0,
            errors: 0,
            last_note: None,
            status: Status::Running,
            reason: String::new(),
        }
    }

    /// Whether it needs no more measurements.
    pub fn done(&self) -> bool {
        self.status != Status::Running
    }

    /// Judge one measurement; a limit passed ends the gate at once.
    pub fn record(&mut self, m: Measured) -> Verdict {
        let (verdict, note) = self.judge.judge(&m);
        self.measured.push(m);
        if note.is_some() {
            self.last_note = note;
        }
        match verdict {
            Verdict::Success => self.successes += 1,
            Verdict::Failure => self.failures += 1,
            Verdict::Inconclusive => self.inconclusives += 1,
            Verdict::Error => self.errors += 1,
        }
        let l = self.limits;
        if self.failures > l.failure {
            self.end(
                Status::Failed,
                format!(
                    "failure_limit {} passed: {} failed measurement(s)",
                    l.failure, self.failures
                ),
            );
        } else if self.errors > l.error {
            self.end(
                Status::Failed,
                format!(
                    "error_limit {} passed: {} measurement(s) could not be taken",
                    l.error, self.errors
                ),
            );
        } else if self.inconclusives > l.inconclusive {
            self.end(
                Status::Inconclusive,
                format!(
                    "inconclusive_limit {} passed: {} inconclusive measurement(s)",
                    l.inconclusive, self.inconclusives
                ),
            );
        } else if self.measured.len() as u32 >= self.count {
            if self.successes == 0 {
                // Never "passed" on errors alone (argo-rollouts#4479).
                self.end(
                    Status::Inconclusive,
                    format!("no measurement of {} succeeded", self.count),
                );
            } else {
                self.end(
                    Status::Passed,
                    format!(
                        "{} of {} measurement(s) succeeded",
                        self.successes, self.count
                    ),
                );
            }
        }
        verdict
    }

    /// Stop a gate that is still measuring (time ran out, another gate
    /// failed first): inconclusive, saying why.
    pub fn cut(&mut self, why: &str) {
        if !self.done() {
            self.end(
                Status::Inconclusive,
                format!(
                    "{why} after {} of {} measurement(s)",
                    self.measured.len(),
                    self.count
                ),
            );
        }
    }

    fn end(&mut self, status: Status, reason: String) {
        self.status = status;
        self.reason = reason;
    }

    /// The last three values, as a message shows them.
    pub fn last_values(&self) -> String {
        let n = self.measured.len();
        let last: Vec<String> = self.measured[n.saturating_sub(3)..]
            .iter()
            .map(Measured::show)
            .collect();
        if last.is_empty() {
            "none".into()
        } else {
            last.join(", ")
        }
    }

    /// The one line a failed or inconclusive gate is reported with: the
    /// gate, what it measured, the last three values, the limit passed.
    pub fn message(&self) -> String {
        let mut s = format!(
            "gate '{}' {}: {}; {}; last values: {}",
            self.name,
            self.status.as_str(),
            self.reason,
            self.what,
            self.last_values()
        );
        if let Some(n) = &self.last_note {
            s.push_str(&format!(" (last: {n})"));
        }
        s
    }
}

/// The overall status of several gates: failed if any failed, else
/// inconclusive if any was, else passed.
pub fn overall(tallies: &[Tally]) -> Status {
    if tallies.iter().any(|t| t.status == Status::Failed) {
        Status::Failed
    } else if tallies.iter().all(|t| t.status == Status::Passed) {
        Status::Passed
    } else {
        Status::Inconclusive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(s: Option<&str>, f: Option<&str>) -> Judge {
        Judge {
            success: s.map(|s| Cond::parse(s).unwrap()),
            failure: f.map(|f| Cond::parse(f).unwrap()),
            on_empty: OnEmpty::Inconclusive,
        }
    }

    fn tally(count: u32, limits: Limits) -> Tally {
        Tally::new(
            "errors",
            "prometheus http://p: q",
            judge(Some("value < 0.01"), Some("value >= 0.05")),
            limits,
            count,
        )
    }

    #[test]
    fn each_measurement_is_judged() {
        let j = judge(Some("value < 0.01"), Some("value >= 0.05"));
        assert_eq!(j.judge(&Measured::Value(0.0)).0, Verdict::Success);
        assert_eq!(j.judge(&Measured::Value(0.2)).0, Verdict::Failure);
        assert_eq!(j.judge(&Measured::Value(0.02)).0, Verdict::Inconclusive);
        assert_eq!(j.judge(&Measured::Value(f64::NAN)).0, Verdict::Inconclusive);
        assert_eq!(
            j.judge(&Measured::Empty("no series".into())).0,
            Verdict::Inconclusive
        );
        assert_eq!(j.judge(&Measured::Error("500".into())).0, Verdict::Error);
        // One condition: its negation is the other verdict.
        let only_success = judge(Some("value < 0.01"), None);
        assert_eq!(
            only_success.judge(&Measured::Value(0.02)).0,
            Verdict::Failure
        );
        let only_failure = judge(None, Some("value > 0.5"));
        assert_eq!(
            only_failure.judge(&Measured::Value(0.02)).0,
            Verdict::Success
        );
        // No condition: a bool judges itself, a number cannot be judged.
        let none = judge(None, None);
        assert_eq!(none.judge(&Measured::Bool(false)).0, Verdict::Failure);
        assert_eq!(none.judge(&Measured::Value(3.0)).0, Verdict::Error);
        for (on, want) in [
            (OnEmpty::Failed, Verdict::Failure),
            (OnEmpty::Passed, Verdict::Success),
        ] {
            let j = Judge {
                on_empty: on,
                ..judge(Some("value < 1"), None)
            };
            assert_eq!(j.judge(&Measured::Empty("x".into())).0, want);
        }
    }

    #[test]
    fn a_failure_past_the_limit_ends_the_gate_naming_it() {
        let mut t = tally(5, Limits::default());
        t.record(Measured::Value(0.0));
        assert!(!t.done());
        t.record(Measured::Value(0.2));
        assert_eq!(t.status, Status::Failed);
        let m = t.message();
        assert!(m.contains("gate 'errors' failed"), "{m}");
        assert!(m.contains("failure_limit 0 passed"), "{m}");
        assert!(m.contains("prometheus http://p: q"), "{m}");
        assert!(m.contains("last values: 0, 0.2"), "{m}");
    }

    #[test]
    fn errors_pass_the_error_limit_and_never_pass_the_gate() {
        let mut t = tally(10, Limits::default());
        for _ in 0..3 {
            t.record(Measured::Error("answered 500".into()));
        }
        assert_eq!(t.status, Status::Failed);
        assert!(t.reason.contains("error_limit 2 passed"), "{}", t.reason);
        assert!(
            t.message().contains("(last: answered 500)"),
            "{}",
            t.message()
        );
        // Within the limit but nothing measured: inconclusive, not passed.
        let mut t = tally(1, Limits::default());
        t.record(Measured::Error("timeout".into()));
        assert_eq!(t.status, Status::Inconclusive);
    }

    #[test]
    fn limits_tolerate_and_empty_is_inconclusive_by_default() {
        let mut t = tally(
            3,
            Limits {
                failure: 1,
                ..Limits::default()
            },
        );
        t.record(Measured::Value(0.2));
        t.record(Measured::Value(0.0));
        t.record(Measured::Value(0.0));
        assert_eq!(t.status, Status::Passed);
        let mut t = tally(3, Limits::default());
        t.record(Measured::Empty("no series".into()));
        assert_eq!(t.status, Status::Inconclusive);
        assert!(t.reason.contains("inconclusive_limit 0 passed"));
        let mut t = tally(3, Limits::default());
        t.record(Measured::Value(0.0));
        t.cut("the deadline came");
        assert_eq!(t.status, Status::Inconclusive);
        assert!(t.reason.contains("after 1 of 3"), "{}", t.reason);
        assert_eq!(overall(&[t.clone()]), Status::Inconclusive);
    }

    #[test]
    fn the_schedule_span_bounds_every_wait() {
        let s = Schedule {
            initial_delay: Duration::from_secs(2),
            interval: Duration::from_secs(5),
            count: 3,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(s.span(), Duration::from_secs(2 + 10 + 3));
    }
}
