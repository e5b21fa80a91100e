//! The `provider-services` command lines runbook runs, and what their
//! output means. Running them is the binding's (allow-list, process
//! groups, capped capture): this file only builds and reads.

use serde_json::Value;

use super::{Config, LeaseId};
use crate::error::PrimError;
use crate::net::snippet;

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `provider-services lease-status` for `dseq` (and the lease ids given).
pub fn lease_status_argv(
    cfg: &Config,
    dseq: &str,
    lease: &LeaseId,
) -> Result<Vec<String>, PrimError> {
    let provider = cfg.provider()?;
    let mut argv = owned(&[
        "provider-services",
        "lease-status",
        "--dseq",
        dseq,
        "--provider",
        provider,
    ]);
    for (flag, v) in [("--gseq", lease.gseq), ("--oseq", lease.oseq)] {
        if let Some(v) = v {
            argv.push(flag.into());
            argv.push(v.to_string());
        }
    }
    if let Some(from) = &cfg.from {
        argv.push("--from".into());
        argv.push(from.clone());
    }
    Ok(argv)
}

/// Read `lease-status`'s answer: a non-zero exit is worth another try (the
/// provider may not answer yet), malformed JSON is not.
pub fn lease_status_of(code: i32, stdout: &str, tail: &str) -> Result<Value, PrimError> {
    if code != 0 {
        return Err(PrimError::transient(format!(
            "provider-services lease-status exited with {code}: {tail}"
        )));
    }
    serde_json::from_str(stdout).map_err(|e| {
        PrimError::fatal(format!(
            "provider-services lease-status printed malformed JSON ({e}): {}",
            snippet(stdout)
        ))
    })
}

/// The two steps of an update with the SDL at `sdl_path`: the transaction,
/// then the manifest to the provider.
pub fn update_argvs(
    cfg: &Config,
    dseq: &str,
    sdl_path: &str,
) -> Result<[Vec<String>; 2], PrimError> {
    let (provider, from) = (cfg.provider()?, cfg.from()?);
    Ok([
        owned(&[
            "provider-services",
            "tx",
            "deployment",
            "update",
            sdl_path,
            "--dseq",
            dseq,
            "--from",
            from,
            "-y",
        ]),
        owned(&[
            "provider-services",
            "send-manifest",
            sdl_path,
            "--dseq",
            dseq,
            "--provider",
            provider,
            "--from",
            from,
        ]),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(provider: Option<&str>, from: Option<&str>) -> Config {
        Config {
            backend: super::super::Backend::Cli,
            api_url: String::new(),
            provider: provider.map(String::from),
            from: from.map(String::from),
        }
    }

    #[test]
    fn lease_status_names_the_lease() {
        let argv = lease_status_argv(
            &cfg(Some("akash1p"), None),
            "42",
            &LeaseId {
                gseq: Some(1),
                oseq: None,
            },
        )
        .unwrap();
        assert_eq!(
            argv.join(" "),
            "provider-services lease-status --dseq 42 --provider akash1p --gseq 1"
        );
        let e = lease_status_argv(&cfg(None, None), "42", &LeaseId::default()).unwrap_err();
        assert!(e.msg.contains("needs the provider's address"), "{e}");
    }

    #[test]
    fn exits_are_retried_and_bad_json_is_not() {
        assert!(lease_status_of(1, "", "not yet")
            .unwrap_err()
            .is_transient());
        assert!(!lease_status_of(0, "{", "").unwrap_err().is_transient());
        assert_eq!(lease_status_of(0, "{\"a\":1}", "").unwrap()["a"], 1);
    }

    #[test]
    fn an_update_needs_the_key_and_the_provider() {
        assert!(update_argvs(&cfg(Some("p"), None), "1", "/t.yaml").is_err());
        let [tx, send] = update_argvs(&cfg(Some("p"), Some("k")), "1", "/t.yaml").unwrap();
        assert_eq!(tx[..4].join(" "), "provider-services tx deployment update");
        assert_eq!(send[1], "send-manifest");
    }
}
