//! Akash without Rhai: how to reach it ([`Config`]), the Console API client
//! ([`console`]), the `provider-services` command lines and their output
//! ([`cli`]), SDL templates ([`sdl`]) and the JSON shapes a forwarded port
//! is read from ([`shapes`]). The bindings in `primitives/akash.rs` parse
//! options, run these, and shape the results.

pub mod cli;
pub mod console;
pub mod sdl;
pub mod shapes;

use crate::error::PrimError;

/// Which way to talk to Akash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The Akash Console API (managed wallet; what CI uses).
    Console,
    /// The `provider-services` CLI.
    Cli,
}

impl Backend {
    /// Its name in options and results.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Console => "console",
            Backend::Cli => "cli",
        }
    }
}

/// How to reach Akash for one call.
#[derive(Clone, Debug)]
pub struct Config {
    /// Console or CLI.
    pub backend: Backend,
    /// Console API base URL.
    pub api_url: String,
    /// The provider's address (CLI backend).
    pub provider: Option<String>,
    /// The key name to sign with (CLI backend).
    pub from: Option<String>,
}

impl Config {
    /// The configuration from the given values, falling back to
    /// `AKASH_BACKEND`, `AKASH_CONSOLE_API_URL`, `AKASH_PROVIDER` and
    /// `AKASH_FROM`.
    pub fn resolve(
        backend: Option<String>,
        api_url: Option<String>,
        provider: Option<String>,
        from: Option<String>,
    ) -> Result<Config, PrimError> {
        let backend = match backend
            .or_else(|| std::env::var("AKASH_BACKEND").ok())
            .as_deref()
        {
            None | Some("console") | Some("") => Backend::Console,
            Some("cli") | Some("provider-services") => Backend::Cli,
            Some(other) => {
                return Err(PrimError::fatal(format!(
                    "akash: unknown backend '{other}'; use \"console\" (Akash Console API) or \"cli\" (provider-services)"
                )))
            }
        };
        let api_url = api_url
            .or_else(|| std::env::var("AKASH_CONSOLE_API_URL").ok())
            .unwrap_or_else(|| "https://console-api.akash.network".into())
            .trim_end_matches('/')
            .to_string();
        Ok(Config {
            backend,
            api_url,
            provider: provider.or_else(|| std::env::var("AKASH_PROVIDER").ok()),
            from: from.or_else(|| std::env::var("AKASH_FROM").ok()),
        })
    }

    /// The provider's address, which the CLI backend needs.
    pub fn provider(&self) -> Result<&str, PrimError> {
        self.provider.as_deref().ok_or_else(|| {
            PrimError::fatal("the provider-services backend needs the provider's address: `provider` option or AKASH_PROVIDER")
        })
    }

    /// The key to sign with, which the CLI backend's updates need.
    pub fn from(&self) -> Result<&str, PrimError> {
        self.from.as_deref().ok_or_else(|| {
            PrimError::fatal(
                "the provider-services backend needs `from`, the key to sign with (or AKASH_FROM)",
            )
        })
    }
}

/// Lease ids narrowing which lease to read.
#[derive(Clone, Debug, Default)]
pub struct LeaseId {
    /// Group sequence.
    pub gseq: Option<i64>,
    /// Order sequence.
    pub oseq: Option<i64>,
}

/// A dseq: digits only.
pub fn check_dseq(prim: &str, dseq: &str) -> Result<(), String> {
    if dseq.is_empty() || !dseq.chars().all(|c| c.is_ascii_digit()) || dseq == "0" {
        return Err(format!(
            "{prim}: dseq '{dseq}' is not a deployment sequence number (digits, e.g. 1234567); pass --dseq or set it in the playbook"
        ));
    }
    Ok(())
}

/// A lease status: from the Console deployment's lease, or
/// `provider-services lease-status`.
pub async fn lease_status(
    http: &reqwest::Client,
    exec: &crate::process::exec::Env,
    cfg: &Config,
    dseq: &str,
    lease: &LeaseId,
) -> Result<serde_json::Value, PrimError> {
    match cfg.backend {
        Backend::Console => {
            let dep = console::get_deployment(http, cfg, dseq).await?;
            console::lease_status_of(&dep, cfg, dseq, lease)
        }
        Backend::Cli => {
            let argv = cli::lease_status_argv(cfg, dseq, lease)?;
            let out =
                crate::process::exec::run(exec, &argv, &crate::process::exec::ExecOpts::default())
                    .await
                    .map_err(PrimError::fatal)?;
            cli::lease_status_of(out.code, &out.stdout, &out.tail())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dseq_must_be_digits() {
        assert!(check_dseq("p", "1234567").is_ok());
        for bad in ["", "0", "12a", "-1", " 1"] {
            assert!(check_dseq("p", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn backends_by_name() {
        let c = Config::resolve(Some("cli".into()), Some("http://x/".into()), None, None).unwrap();
        assert_eq!((c.backend, c.api_url.as_str()), (Backend::Cli, "http://x"));
        let e = Config::resolve(Some("ssh".into()), None, None, None).unwrap_err();
        assert!(e.msg.contains("unknown backend 'ssh'"), "{e}");
    }
}
