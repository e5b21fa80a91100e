//! Settings and control: `env`, `secret`, `fail`, `log_info`, `log_warn`,
//! `git_sha`, `sleep`, `is_dry_run`.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, ImmutableString};

use crate::context::{error, Ctx, RhaiResult};
use crate::declare::Spec;
use crate::opts::Opts;

static ENV: Spec = Spec::plain("env", &["name: String"], "String", "A plain setting from the environment. Throws if it is not set: use\n`env(name, default)` for an optional one, and `secret(name)` for anything secret.");
static ENV_OR: Spec = Spec::plain(
    "env",
    &["name: String", "default: String"],
    "String",
    "A plain setting from the environment, or `default` when unset or empty.",
);
static SECRET: Spec = Spec::plain("secret", &["name: String"], "String", "A secret from the environment. Its value is registered for redaction in\nevery sink (logs, errors, outputs, summaries; `::add-mask::` under GitHub\nActions), in every encoded form, before it is returned. A value shorter\nthan 4 characters cannot be redacted: a warning says so. Throws if it is not set.");
static FAIL: Spec = Spec::plain(
    "fail",
    &["message: String"],
    "()",
    "Stop the playbook with a message (exit code 1).",
);
static FAIL_USAGE: Spec = Spec::plain("fail_usage", &["message: String"], "()", "Stop the playbook as a usage error (exit code 2): for a parameter\nvalue that `PARAMS` cannot express a rule for (e.g. two that conflict).");
static UTC_NOW: Spec = Spec::plain(
    "utc_now",
    &[],
    "String",
    "The current time, UTC, as RFC 3339 (`2026-11-23T13:04:45Z`).",
);
static LOG_INFO: Spec = Spec::plain(
    "log_info",
    &["message: String"],
    "()",
    "Log a line at info level.",
);
static LOG_WARN: Spec = Spec::plain(
    "log_warn",
    &["message: String"],
    "()",
    "Log a line at warning level (`::warning::` under GitHub Actions).",
);
static LOG_EVENT: Spec = Spec::plain("log_event", &["name: String", "fields: Map"], "()", "Log one structured event: `name` plus the fields of a map, as one JSON\nobject in the message (one line, easy to grep or parse).");
static IS_DRY_RUN: Spec = Spec::plain(
    "is_dry_run",
    &[],
    "bool",
    "Whether this run is a dry run (`--dry-run`).",
);
static SLEEP: Spec = Spec::plain(
    "sleep",
    &["seconds: float"],
    "()",
    "Wait, waking early when the run is cancelled (at most a week).",
);
static SLEEP_INT: Spec = Spec::plain(
    "sleep",
    &["seconds: int"],
    "()",
    "Wait, waking early when the run is cancelled (at most a week).",
);
static GIT_SHA: Spec = Spec::plain("git_sha", &[], "String", "The current git commit: `GITHUB_SHA` when set (in CI), else\n`git rev-parse HEAD` in the working directory (bounded to 30 s, and\nstopped with the run). Always 40 lowercase hex.");

/// `env(name)`: required.
fn env(name: &str) -> RhaiResult<String> {
    let v = std::env::var(name).map_err(|_| {
        error(format!(
            "env: {name} is not set; export it, or use env(\"{name}\", default) in the playbook"
        ))
    })?;
    // A variable runbook knows to be secret stays one, however read.
    if crate::redact::is_known_secret_var(name) {
        crate::redact::register(&v);
    }
    Ok(v)
}

/// `env(name, default)`.
fn env_or(name: &str, default: &str) -> String {
    let v = std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string());
    if crate::redact::is_known_secret_var(name) {
        crate::redact::register(&v);
    }
    v
}

/// `secret(name)`: registered for redaction before it is returned.
fn secret(name: &str) -> RhaiResult<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => {
            if crate::redact::too_short(&v) {
                tracing::warn!(
                    primitive = "secret",
                    name,
                    "secret {name} is shorter than {} characters: it cannot be redacted from logs (GitHub will not mask it either); use a longer value",
                    crate::redact::MIN_LEN
                );
            }
            crate::redact::register(&v);
            tracing::info!(primitive = "secret", name, "read secret {name}");
            Ok(v)
        }
        _ => Err(error(format!(
            "secret: {name} is not set; export it (in GitHub Actions: `env: {name}: ${{{{ secrets.{name} }}}}`)"
        ))),
    }
}

/// `log_event(name, fields)`: one JSON object in one line.
fn log_event(name: &str, fields: rhai::Map) -> RhaiResult<()> {
    let mut v = crate::value::to_json(&Dynamic::from(fields)).map_err(error)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("event".into(), serde_json::Value::String(name.into()));
    }
    tracing::info!(event = name, "{v}");
    Ok(())
}

/// Both number types: `sleep(2)` and `sleep(0.5)`.
fn sleep_for(c: &Ctx, secs: f64) -> RhaiResult<()> {
    let d = Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= crate::opts::MAX_DURATION)
        .ok_or_else(|| {
            error(format!(
                "sleep: {secs} is not a number of seconds from 0 to a week"
            ))
        })?;
    c.sleep(d)
}

/// `git_sha()`.
fn git_sha(c: &Ctx) -> RhaiResult<String> {
    let sha = match std::env::var("GITHUB_SHA") {
        Ok(s) if !s.is_empty() => s,
        _ => {
            let head = crate::process::git::head(&c.settings.workdir, &c.children);
            match c.bounded(GIT_BUDGET, head)? {
                Some(r) => r.map_err(|e| error(format!("git_sha: {e}")))?,
                None => {
                    return Err(error(format!(
                        "git_sha: `git rev-parse HEAD` did not answer within {}; set GITHUB_SHA instead",
                        crate::error::fmt_secs(GIT_BUDGET)
                    )))
                }
            }
        }
    };
    if !crate::process::git::is_sha(&sha) {
        return Err(error(format!(
            "git_sha: '{sha}' is not a 40-hex commit SHA"
        )));
    }
    Ok(sha)
}

/// How long `git rev-parse HEAD` may take (a hung credential helper or a
/// network file system must not hang the run).
const GIT_BUDGET: Duration = Duration::from_secs(30);

type S = ImmutableString;

/// Register the settings and control primitives.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    ENV.register1(engine, |name: S, _: &Opts| env(&name));
    ENV_OR.register2(engine, |name: S, default: S, _: &Opts| {
        Ok(env_or(&name, &default))
    });
    SECRET.register1(engine, |name: S, _: &Opts| secret(&name));
    FAIL.register1(engine, |msg: S, _: &Opts| -> RhaiResult<()> {
        Err(error(msg))
    });
    FAIL_USAGE.register1(engine, |msg: S, _: &Opts| -> RhaiResult<()> {
        let msg = crate::redact::redact(&msg).into_owned();
        Err(
            rhai::EvalAltResult::ErrorRuntime(crate::error::usage_value(msg), rhai::Position::NONE)
                .into(),
        )
    });
    UTC_NOW.register0(engine, |_: &Opts| {
        Ok(crate::opts::rfc3339(std::time::SystemTime::now()))
    });
    LOG_INFO.register1(engine, |msg: S, _: &Opts| {
        tracing::info!("{msg}");
        Ok(())
    });
    LOG_WARN.register1(engine, |msg: S, _: &Opts| {
        tracing::warn!("{msg}");
        Ok(())
    });
    LOG_EVENT.register2(engine, |name: S, fields: rhai::Map, _: &Opts| {
        log_event(&name, fields)
    });
    let c = ctx.clone();
    IS_DRY_RUN.register0(engine, move |_: &Opts| Ok(c.dry_run()));
    let c = ctx.clone();
    SLEEP.register1(engine, move |secs: f64, _: &Opts| sleep_for(&c, secs));
    let c = ctx.clone();
    SLEEP_INT.register1(engine, move |secs: i64, _: &Opts| {
        sleep_for(&c, secs as f64)
    });
    let c = ctx.clone();
    GIT_SHA.register0(engine, move |_: &Opts| git_sha(&c));
}
