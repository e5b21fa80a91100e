//! Registry credentials per host, read the way registry clients (docker,
//! podman, skopeo, crane) read them — no Rhai in here:
//!
//! 1. `REGISTRY_AUTH_FILE`, 2. `$XDG_RUNTIME_DIR/containers/auth.json`,
//! 3. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
//!
//! In each file, for the registry's host: a `credHelpers` entry (run
//! `docker-credential-<name> get`), an `auths` entry (base64 `auth` =
//! `user:password`, or `identitytoken`), then `credsStore`. The first file
//! that knows the host wins. A credential found here is only ever sent to
//! that host (see `oci::auth::Cred::may_go_to` for the token endpoint rule).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

/// A credential for one registry host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostCred {
    /// User name and password (or token used as a password).
    User {
        /// The user name.
        user: String,
        /// The password.
        pass: String,
        /// Where it came from, for messages (never the value).
        source: String,
    },
    /// An OAuth2 refresh token (`identitytoken`).
    Identity {
        /// The token.
        token: String,
        /// Where it came from.
        source: String,
    },
}

/// What a config file says about a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigEntry {
    /// `auths.<host>.auth` decoded, or `username`/`password` fields.
    User(String, String),
    /// `auths.<host>.identitytoken`.
    Identity(String),
    /// A credential helper's name (`credHelpers.<host>` or `credsStore`).
    Helper(String),
}

/// An `auths` key as a bare `host[:port]`: `https://index.docker.io/v1/`
/// → `index.docker.io`, `http://host:5000` → `host:5000`.
pub fn normalize_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.split('/').next().unwrap_or_default();
    let k = k.to_ascii_lowercase();
    // Docker Hub goes by several names.
    match k.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => k,
    }
}

/// Read a config file's entry for `host` (already normalized). A file
/// that is not the expected JSON is an error naming the problem.
pub fn entry_in_config(text: &str, host: &str) -> Result<Option<ConfigEntry>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("it is not valid JSON ({e})"))?;
    let Some(obj) = v.as_object() else {
        return Err("it is not a JSON object".into());
    };
    let find = |section: &str| -> Option<&serde_json::Value> {
        obj.get(section)?
            .as_object()?
            .iter()
            .find(|(k, _)| normalize_key(k) == host)
            .map(|(_, v)| v)
    };
    if let Some(h) = find("credHelpers").and_then(|h| h.as_str()) {
        return Ok(Some(ConfigEntry::Helper(h.to_string())));
    }
    if let Some(a) = find("auths") {
        let field = |k: &str| a.get(k).and_then(|x| x.as_str()).filter(|s| !s.is_empty());
        if let Some(t) = field("identitytoken") {
            return Ok(Some(ConfigEntry::Identity(t.to_string())));
        }
        if let Some(enc) = field("auth") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(enc.trim())
                .map_err(|e| {
                    format!("the auths entry for {host} has an `auth` that is not base64 ({e})")
                })?;
            let raw = String::from_utf8(raw).map_err(|_| {
                format!("the auths entry for {host} has an `auth` that is not UTF-8")
            })?;
            let Some((u, p)) = raw.split_once(':') else {
                return Err(format!(
                    "the auths entry for {host} has an `auth` that is not base64 of user:password"
                ));
            };
            return Ok(Some(ConfigEntry::User(u.to_string(), p.to_string())));
        }
        if let (Some(u), Some(p)) = (field("username"), field("password")) {
            return Ok(Some(ConfigEntry::User(u.to_string(), p.to_string())));
        }
    }
    if let Some(s) = obj
        .get("credsStore")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
    {
        return Ok(Some(ConfigEntry::Helper(s.to_string())));
    }
    Ok(None)
}

/// The auth files to look in, in order, from the environment.
pub fn config_paths() -> Vec<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut out = Vec::new();
    if let Some(p) = var("REGISTRY_AUTH_FILE") {
        out.push(p);
    }
    if let Some(d) = var("XDG_RUNTIME_DIR") {
        out.push(d.join("containers/auth.json"));
    }
    if let Some(d) = var("DOCKER_CONFIG") {
        out.push(d.join("config.json"));
    } else if let Some(h) = var("HOME") {
        out.push(h.join(".docker/config.json"));
    }
    out
}

/// The biggest auth file read (they hold a few entries).
const CONFIG_CAP: u64 = 1024 * 1024;

/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a helper's output read.
const HELPER_CAP: usize = 64 * 1024;

/// The credential for `host` (`host[:port]` as in the image reference),
/// from the auth files and credential helpers. `Ok(None)` when none knows
/// the host.
pub async fn lookup(host: &str) -> Result<Option<HostCred>, String> {
    let host = normalize_key(host);
    for path in config_paths() {
        let text = match crate::fsread::read_text(&path, CONFIG_CAP) {
            Ok(t) => t,
            Err(crate::fsread::ReadError::Missing) => continue,
            Err(e) => {
                return Err(format!(
                    "cannot read the registry auth file {}: {e}",
                    path.display()
                ))
            }
        };
        let entry = entry_in_config(&text, &host)
            .map_err(|e| format!("the registry auth file {} is unusable: {e}", path.display()))?;
        let source = |what: &str| format!("{what} for {host} in {}", path.display());
        match entry {
            None => continue,
            Some(ConfigEntry::User(user, pass)) => {
                return Ok(Some(HostCred::User {
                    user,
                    pass,
                    source: source("the auths entry"),
                }))
            }
            Some(ConfigEntry::Identity(token)) => {
                return Ok(Some(HostCred::Identity {
                    token,
                    source: source("the identitytoken"),
                }))
            }
            Some(ConfigEntry::Helper(name)) => {
                return run_helper(&name, &host, &path).await;
            }
        }
    }
    Ok(None)
}

/// `docker-credential-<name> get` with the host on stdin, bounded in time
/// and output.
async fn run_helper(name: &str, host: &str, config: &Path) -> Result<Option<HostCred>, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "the credential helper '{name}' named in {} is not a plain name",
            config.display()
        ));
    }
    let program = format!("docker-credential-{name}");
    let path = crate::process::resolve(&program, std::env::var_os("PATH").as_deref())
        .map_err(|_| format!("the credential helper {program} (named in {}) is not on PATH; install it or remove it from the file", config.display()))?;
    let spec = crate::process::Spec {
        program: program.clone(),
        path,
        args: vec!["get".into()],
        cwd: std::env::temp_dir(),
        stdin: Some(host.to_string()),
        cap: HELPER_CAP,
        ..crate::process::Spec::default()
    };
    let groups = crate::process::Groups::default();
    let out = tokio::time::timeout(HELPER_TIMEOUT, crate::process::run(&spec, &groups))
        .await
        .map_err(|_| {
            format!(
                "the credential helper {program} gave no answer within {}s",
                HELPER_TIMEOUT.as_secs()
            )
        })??;
    if out.code != 0 {
        // Helpers say "credentials not found" with a non-zero exit.
        if out.stdout.text.contains("not found") || out.stderr.text.contains("not found") {
            return Ok(None);
        }
        return Err(format!(
            "the credential helper {program} failed for {host} (exit {}): {}",
            out.code,
            crate::net::snippet(&out.stderr.text)
        ));
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout.text).map_err(|e| {
        format!("the credential helper {program} answered something that is not JSON ({e})")
    })?;
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (user, secret) = (field("Username"), field("Secret"));
    if secret.is_empty() {
        return Ok(None);
    }
    let source = format!("the credential helper {program} for {host}");
    // Docker's convention: the user "<token>" marks an identity token.
    Ok(Some(if user == "<token>" {
        HostCred::Identity {
            token: secret,
            source,
        }
    } else {
        HostCred::User {
            user,
            pass: secret,
            source,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalize_like_docker_reads_them() {
        assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_key("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            normalize_key("Registry.Example.com/"),
            "registry.example.com"
        );
    }

    #[test]
    fn entries_are_found_per_host_only() {
        let enc = base64::engine::general_purpose::STANDARD.encode("bob:pa:ss");
        let cfg = format!(
            r#"{{"auths": {{"https://reg.example.com/v1/": {{"auth": "{enc}"}}, "tok.example.com": {{"identitytoken": "it"}}}},
                "credHelpers": {{"helper.example.com": "pass"}}}}"#
        );
        assert_eq!(
            entry_in_config(&cfg, "reg.example.com").unwrap(),
            Some(ConfigEntry::User("bob".into(), "pa:ss".into()))
        );
        assert_eq!(
            entry_in_config(&cfg, "tok.example.com").unwrap(),
            Some(ConfigEntry::Identity("it".into()))
        );
        assert_eq!(
            entry_in_config(&cfg, "helper.example.com").unwrap(),
            Some(ConfigEntry::Helper("pass".into()))
        );
        assert_eq!(entry_in_config(&cfg, "other.example.com").unwrap(), None);
        assert_eq!(entry_in_config(&cfg, "reg.example.com:5000").unwrap(), None);
        let store = r#"{"auths": {}, "credsStore": "desktop"}"#;
        assert_eq!(
            entry_in_config(store, "any.example.com").unwrap(),
            Some(ConfigEntry::Helper("desktop".into()))
        );
        assert!(entry_in_config(r#"{"auths": {"h": {"auth": "!!"}}}"#, "h")
            .unwrap_err()
            .contains("not base64"));
        assert!(entry_in_config("[]", "h").is_err());
    }
}
