//! Settings and control: `env`, `secret`, `fail`, `log_info`, `log_warn`,
//! `git_sha`, `sleep`, `is_dry_run`.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, FuncRegistration};

use crate::context::{error, Ctx, RhaiResult};

/// A time as RFC 3339 UTC, whole seconds.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Register the settings and control primitives.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    FuncRegistration::new("env")
        .with_params_info(["name: &str", "String"])
        .with_comments(["/// A plain setting from the environment. Throws if it is not set: use\n/// `env(name, default)` for an optional one, and `secret(name)` for anything secret."])
        .register_into_engine(engine, |name: &str| -> RhaiResult<String> {
            let v = std::env::var(name).map_err(|_| {
                error(format!("env: {name} is not set; export it, or use env(\"{name}\", default) in the playbook"))
            })?;
            // A variable runbook knows to be secret stays one, however read.
            if crate::redact::is_known_secret_var(name) {
                crate::redact::register(&v);
            }
            Ok(v)
        });
    FuncRegistration::new("env")
        .with_params_info(["name: &str", "default: &str", "String"])
        .with_comments([
            "/// A plain setting from the environment, or `default` when unset or empty.",
        ])
        .register_into_engine(engine, |name: &str, default: &str| -> String {
            let v = std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string());
            if crate::redact::is_known_secret_var(name) {
                crate::redact::register(&v);
            }
            v
        });

    FuncRegistration::new("secret")
        .with_params_info(["name: &str", "String"])
        .with_comments(["/// A secret from the environment. Its value is registered for redaction in\n/// every sink (logs, errors, outputs, summaries; `::add-mask::` under GitHub\n/// Actions), in every encoded form, before it is returned. A value shorter\n/// than 4 characters cannot be redacted: a warning says so. Throws if it is not set."])
        .register_into_engine(engine, |name: &str| -> RhaiResult<String> {
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
        });

    FuncRegistration::new("fail")
        .with_params_info(["message: &str", "()"])
        .with_comments(["/// Stop the playbook with a message (exit code 1)."])
        .register_into_engine(engine, |msg: &str| -> RhaiResult<()> { Err(error(msg)) });

    FuncRegistration::new("fail_usage")
        .with_params_info(["message: &str", "()"])
        .with_comments(["/// Stop the playbook as a usage error (exit code 2): for a parameter\n/// value that `PARAMS` cannot express a rule for (e.g. two that conflict)."])
        .register_into_engine(engine, |msg: &str| -> RhaiResult<()> {
            Err(crate::error::PrimError::usage(msg).into())
        });

    FuncRegistration::new("utc_now")
        .with_params_info(["String"])
        .with_comments(["/// The current time, UTC, as RFC 3339 (`2026-11-23T13:04:45Z`)."])
        .register_into_engine(engine, || rfc3339(std::time::SystemTime::now()));

    FuncRegistration::new("log_info")
        .with_params_info(["message: &str", "()"])
        .with_comments(["/// Log a line at info level."])
        .register_into_engine(engine, |msg: &str| tracing::info!("{msg}"));
    FuncRegistration::new("log_warn")
        .with_params_info(["message: &str", "()"])
        .with_comments(["/// Log a line at warning level (`::warning::` under GitHub Actions)."])
        .register_into_engine(engine, |msg: &str| tracing::warn!("{msg}"));
    FuncRegistration::new("log_event")
        .with_params_info(["name: &str", "fields: Map", "()"])
        .with_comments(["/// Log one structured event: `name` plus the fields of a map, as one JSON\n/// object in the message (one line, easy to grep or parse)."])
        .register_into_engine(engine, |name: &str, fields: rhai::Map| -> RhaiResult<()> {
            let mut v = crate::primitives::to_json(&Dynamic::from(fields)).map_err(error)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("event".into(), serde_json::Value::String(name.into()));
            }
            tracing::info!(event = name, "{v}");
            Ok(())
        });

    let c = ctx.clone();
    FuncRegistration::new("is_dry_run")
        .with_params_info(["bool"])
        .with_comments(["/// Whether this run is a dry run (`--dry-run`)."])
        .register_into_engine(engine, move || c.dry_run());

    // Both number types: `sleep(2)` and `sleep(0.5)`.
    fn sleep_for(c: &Ctx, secs: f64) -> RhaiResult<()> {
        let d = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| *d <= crate::primitives::MAX_DURATION)
            .ok_or_else(|| {
                error(format!(
                    "sleep: {secs} is not a number of seconds from 0 to a week"
                ))
            })?;
        c.sleep(d)
    }
    let c = ctx.clone();
    FuncRegistration::new("sleep")
        .with_params_info(["seconds: f64", "()"])
        .with_comments(["/// Wait, waking early when the run is cancelled (at most a week)."])
        .register_into_engine(engine, move |secs: f64| sleep_for(&c, secs));
    let c = ctx.clone();
    FuncRegistration::new("sleep")
        .with_params_info(["seconds: i64", "()"])
        .with_comments(["/// Wait, waking early when the run is cancelled (at most a week)."])
        .register_into_engine(engine, move |secs: i64| sleep_for(&c, secs as f64));

    let c = ctx.clone();
    FuncRegistration::new("git_sha")
        .with_params_info(["String"])
        .with_comments(["/// The current git commit: `GITHUB_SHA` when set (in CI), else\n/// `git rev-parse HEAD`. Always 40 lowercase hex."])
        .register_into_engine(engine, move || -> RhaiResult<String> {
            let sha = match std::env::var("GITHUB_SHA") {
                Ok(s) if !s.is_empty() => s,
                _ => {
                    let out = std::process::Command::new("git")
                        .args(["rev-parse", "HEAD"])
                        .current_dir(&c.settings.workdir)
                        .output()
                        .map_err(|e| error(format!("git_sha: cannot run git: {e}")))?;
                    if !out.status.success() {
                        return Err(error(format!(
                            "git_sha: not in a git repository with a commit ({})",
                            String::from_utf8_lossy(&out.stderr).trim()
                        )));
                    }
                    String::from_utf8_lossy(&out.stdout).trim().to_string()
                }
            };
            if sha.len() != 40 || !sha.chars().all(|ch| ch.is_ascii_digit() || ('a'..='f').contains(&ch)) {
                return Err(error(format!("git_sha: '{sha}' is not a 40-hex commit SHA")));
            }
            Ok(sha)
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_439_085)),
            "2026-11-23T13:04:45Z"
        );
    }
}
