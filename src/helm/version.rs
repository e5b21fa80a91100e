//! The Helm client's version, and the flags that differ between Helm 3
//! and Helm 4: a flow written once runs on either.

use std::time::Duration;

use super::{run_bounded, Runner};
use crate::error::PrimError;

/// A Helm client version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelmVersion {
    /// Major (3 or 4).
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// As printed, e.g. "v3.14.4+g81c902a".
    pub raw: String,
}

impl HelmVersion {
    /// Helm 4 renamed `--atomic` and made `--wait` a strategy.
    pub fn is_v4(&self) -> bool {
        self.major >= 4
    }

    /// The flag that waits for resources to be ready.
    pub fn wait_flag(&self) -> &'static str {
        if self.is_v4() {
            "--wait=watcher"
        } else {
            "--wait"
        }
    }

    /// The flag that rolls back a failed upgrade (uninstalls a failed install).
    pub fn atomic_flag(&self) -> &'static str {
        if self.is_v4() {
            "--rollback-on-failure"
        } else {
            "--atomic"
        }
    }
}

/// Parse `helm version --short` ("v3.14.4+g81c902a", "v4.0.0+g1234567")
/// and refuse a Helm older than 3.12 (the oldest whose flags and output
/// runbook relies on).
pub fn parse_version(out: &str) -> Result<HelmVersion, PrimError> {
    let raw = out.trim().lines().next().unwrap_or("").trim().to_string();
    let not_a_version = || {
        PrimError::fatal(format!(
            "`helm version --short` printed '{raw}', which is not a Helm version (vMAJOR.MINOR.PATCH)"
        ))
    };
    let nums: Vec<u32> = raw
        .trim_start_matches('v')
        .split(['.', '+', '-'])
        .take(2)
        .map(|p| p.parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| not_a_version())?;
    let [major, minor] = nums[..] else {
        return Err(not_a_version());
    };
    if major < 3 || (major == 3 && minor < 12) {
        return Err(PrimError::fatal(format!(
            "Helm {raw} is too old: runbook needs Helm 3.12 or newer (or Helm 4); upgrade it (https://helm.sh/docs/intro/install/)"
        )));
    }
    Ok(HelmVersion { major, minor, raw })
}

/// Ask the Helm on PATH for its version (bounded: 30 s).
pub async fn detect<R: Runner>(runner: &R) -> Result<HelmVersion, PrimError> {
    let argv = ["helm", "version", "--short"].map(String::from);
    let out = run_bounded(runner, &argv, Duration::from_secs(30)).await?;
    if out.code != 0 {
        return Err(PrimError::fatal(format!(
            "`helm version --short` exited with {}: {}",
            out.code,
            out.tail()
        )));
    }
    parse_version(&out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helm::testing::Script;

    fn v(s: &str) -> HelmVersion {
        parse_version(s).unwrap()
    }

    #[test]
    fn versions() {
        assert_eq!(v("v3.14.4+g81c902a").minor, 14);
        assert!(!v("v3.12.0+gc9f554d").is_v4());
        assert!(v("v4.0.0+g1234567").is_v4());
        assert!(parse_version("v3.11.3+g66a969e")
            .unwrap_err()
            .msg
            .contains("too old"));
        assert!(parse_version("v2.17.0")
            .unwrap_err()
            .msg
            .contains("too old"));
        assert!(parse_version("garbage")
            .unwrap_err()
            .msg
            .contains("not a Helm version"));
        assert!(parse_version("v3")
            .unwrap_err()
            .msg
            .contains("not a Helm version"));
    }

    #[test]
    fn each_major_has_its_flags() {
        assert_eq!(v("v3.14.4").wait_flag(), "--wait");
        assert_eq!(v("v3.14.4").atomic_flag(), "--atomic");
        assert_eq!(v("v4.0.0").wait_flag(), "--wait=watcher");
        assert_eq!(v("v4.0.0").atomic_flag(), "--rollback-on-failure");
    }

    #[tokio::test]
    async fn detection_reads_the_short_version_and_reports_a_failure() {
        let ok = Script::default().on("helm version --short", 0, "v3.14.4+g81c902a\n", "");
        assert_eq!(detect(&ok).await.unwrap().minor, 14);
        let broken = Script::default().on("helm version", 1, "", "Error: boom");
        let e = detect(&broken).await.unwrap_err();
        assert!(e.msg.contains("exited with 1: Error: boom"), "{e}");
    }
}
