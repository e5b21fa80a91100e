//! Akash SDL v2 edits: point a service at a new image and set env entries.
//! Read and written with `serde_norway` (a maintained serde YAML crate);
//! key order is kept, so the file's meaning is unchanged but for the edit.

use serde_norway::{Mapping, Value};

/// The result of editing an SDL.
#[derive(Debug)]
pub struct Applied {
    /// The new SDL text.
    pub sdl: String,
    /// The service that was edited.
    pub service: String,
    /// The image the template had for it.
    pub template_image: String,
}

/// Split an image reference into (repository, tag, digest).
pub fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    // A ':' after the last '/' is a tag; before it, a registry port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(&rest[last_slash + i + 1..]),
            digest,
        ),
        None => (rest, None, digest),
    }
}

/// An image set by a deploy must be immutable: a 40-hex git SHA tag or a
/// `@sha256:` digest. Never `latest`, a branch name or no tag.
pub fn validate_deploy_image(image: &str) -> Result<(), String> {
    let (repo, tag, digest) = split_image(image);
    if repo.is_empty() || image.chars().any(char::is_whitespace) {
        return Err(format!("the image '{image}' is not an image reference"));
    }
    if let Some(d) = digest {
        let ok = d.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64
                && h.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        });
        return if ok {
            Ok(())
        } else {
            Err(format!(
                "the image '{image}' has a malformed digest; want @sha256:<64 hex>"
            ))
        };
    }
    match tag {
        None => Err(format!(
            "the image '{image}' has no tag (that means `latest`); deploy an immutable tag: the full 40-hex git SHA"
        )),
        Some("latest") => Err(format!(
            "the image '{image}' uses the floating tag `latest`; deploy an immutable tag: the full 40-hex git SHA"
        )),
        Some(t) if crate::process::git::is_sha(t) => Ok(()),
        Some(t) => Err(format!(
            "the image '{image}' has the tag '{t}', which is not a full 40-hex lowercase git SHA; floating tags (branch names, versions that can be re-pushed) are refused on the deploy path"
        )),
    }
}

/// A template's own image only has to be pinned: tagged, and not `latest`.
pub fn validate_pinned_image(image: &str) -> Result<(), String> {
    match split_image(image) {
        (_, _, Some(_)) => validate_deploy_image(image),
        (_, None, None) | (_, Some("latest"), None) => Err(format!(
            "the image '{image}' is not pinned (no tag, or `latest`); pin a version in the SDL"
        )),
        _ => Ok(()),
    }
}

fn valid_env_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(x) if x.is_ascii_uppercase() || x == '_')
        && c.all(|x| x.is_ascii_uppercase() || x.is_ascii_digit() || x == '_')
}

fn services(doc: &Value) -> Result<&Mapping, String> {
    doc.get("services")
        .and_then(Value::as_mapping)
        .ok_or_else(|| "the SDL has no `services:` map".to_string())
}

fn pick_service(doc: &Value, service: Option<&str>) -> Result<String, String> {
    let svcs = services(doc)?;
    let names: Vec<String> = svcs
        .keys()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    match service {
        Some(s) if names.iter().any(|n| n == s) => Ok(s.to_string()),
        Some(s) => Err(format!(
            "the SDL has no service '{s}'{} (services: {})",
            crate::suggest::hint(s, names.iter().map(String::as_str)),
            names.join(", ")
        )),
        None if names.len() == 1 => Ok(names[0].clone()),
        None => Err(format!(
            "the SDL has several services ({}); say which with `service`",
            names.join(", ")
        )),
    }
}

/// Parse SDL text and check it is version 2.
pub fn parse(text: &str) -> Result<Value, String> {
    let doc: Value =
        serde_norway::from_str(text).map_err(|e| format!("the SDL is not valid YAML: {e}"))?;
    match doc.get("version").and_then(Value::as_str) {
        Some(v) if v.starts_with("2.") => Ok(doc),
        Some(v) => Err(format!(
            "the SDL is version {v}; runbook edits SDL v2 (version: \"2.0\")"
        )),
        None => Err("the SDL has no `version:` (want \"2.0\"); is this an Akash SDL?".into()),
    }
}

/// The image of `service` (or of the only service) in SDL text.
pub fn image_of(text: &str, service: Option<&str>) -> Result<(String, String), String> {
    let doc = parse(text)?;
    let svc = pick_service(&doc, service)?;
    let image = services(&doc)?
        .get(svc.as_str())
        .and_then(|s| s.get("image"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("service '{svc}' has no image"))?
        .to_string();
    Ok((svc, image))
}

/// The env entries (`NAME=value`) of `service` in SDL text.
pub fn env_of(text: &str, service: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let doc = parse(text)?;
    let svc = pick_service(&doc, service)?;
    let list = services(&doc)?
        .get(svc.as_str())
        .and_then(|s| s.get("env"))
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    Ok(list
        .iter()
        .filter_map(Value::as_str)
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.to_string(), String::new()),
        })
        .collect())
}

/// Set `service`'s image (if given) and env entries in SDL text.
pub fn apply(
    text: &str,
    service: Option<&str>,
    image: Option<&str>,
    env: &[(String, String)],
) -> Result<Applied, String> {
    let mut doc = parse(text)?;
    let svc = pick_service(&doc, service)?;
    let (_, template_image) = image_of(text, Some(&svc))?;
    match image {
        Some(i) => validate_deploy_image(i)?,
        None => validate_pinned_image(&template_image)?,
    }
    for (k, v) in env {
        if !valid_env_name(k) {
            return Err(format!(
                "env name '{k}' is not an environment variable name ([A-Z_][A-Z0-9_]*)"
            ));
        }
        if v.contains('\n') || v.contains('\r') {
            return Err(format!("env {k}: the value has a line break"));
        }
    }
    let entry = doc
        .get_mut("services")
        .and_then(|s| s.get_mut(svc.as_str()))
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| format!("service '{svc}' is not a map"))?;
    if let Some(i) = image {
        entry.insert(Value::from("image"), Value::from(i));
    }
    if !env.is_empty() {
        let list = entry
            .entry(Value::from("env"))
            .or_insert_with(|| Value::Sequence(Vec::new()));
        let Some(list) = list.as_sequence_mut() else {
            return Err(format!(
                "service '{svc}': `env` is not a list of NAME=value"
            ));
        };
        for (k, v) in env {
            let new = Value::from(format!("{k}={v}"));
            let prefix = format!("{k}=");
            match list
                .iter_mut()
                .find(|e| e.as_str().is_some_and(|s| s.starts_with(&prefix) || s == k))
            {
                Some(slot) => *slot = new,
                None => list.push(new),
            }
        }
    }
    let sdl = serde_norway::to_string(&doc).map_err(|e| format!("could not write the SDL: {e}"))?;
    Ok(Applied {
        sdl,
        service: svc,
        template_image,
    })
}

/// SDL text as runbook writes it (comments and layout dropped), so a diff
/// between two SDLs shows only what changes in meaning.
pub fn normalize(text: &str) -> String {
    serde_norway::from_str::<Value>(text)
        .ok()
        .and_then(|v| serde_norway::to_string(&v).ok())
        .unwrap_or_else(|| text.to_string())
}

/// A line diff (`-`/`+`), small SDLs only.
pub fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "4f1c2a9d0b8e7c6f5a4b3c2d1e0f9a8b7c6d5e4f";
    const SDL: &str = r#"version: "2.0"
services:
  api:
    image: ghcr.io/mconstant/pay2slay-api:0000000000000000000000000000000000000000
    env:
      - LOG_LEVEL=info
      - BANANO_RPC_ENDPOINT=
    expose:
      - port: 8000
        as: 80
        to:
          - global: true
profiles:
  compute:
    api:
      resources:
        cpu:
          units: 1
deployment:
  api:
    akash:
      profile: api
      count: 1
"#;

    #[test]
    fn sets_image_and_env_keeping_the_rest() {
        let image = format!("ghcr.io/mconstant/pay2slay-api:{SHA}");
        let env = vec![
            ("BANANO_RPC_ENDPOINT".to_string(), "p.io:31877".to_string()),
            ("NEW_ONE".to_string(), "x".to_string()),
        ];
        let out = apply(SDL, None, Some(&image), &env).unwrap();
        assert_eq!(out.service, "api");
        assert!(out
            .template_image
            .ends_with(":0000000000000000000000000000000000000000"));
        let doc = parse(&out.sdl).unwrap();
        let svc = &doc["services"]["api"];
        assert_eq!(svc["image"].as_str(), Some(image.as_str()));
        let env: Vec<&str> = svc["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            env,
            [
                "LOG_LEVEL=info",
                "BANANO_RPC_ENDPOINT=p.io:31877",
                "NEW_ONE=x"
            ]
        );
        assert_eq!(doc["deployment"]["api"]["akash"]["count"].as_u64(), Some(1));
        assert_eq!(doc["services"]["api"]["expose"][0]["as"].as_u64(), Some(80));
        let d = diff(&normalize(SDL), &out.sdl);
        assert!(d.contains(&format!("+     image: {image}")), "{d}");
        assert!(d.contains("+     - BANANO_RPC_ENDPOINT=p.io:31877"), "{d}");
    }

    #[test]
    fn reads_env_entries() {
        let env = env_of(SDL, Some("api")).unwrap();
        assert_eq!(env[0], ("LOG_LEVEL".to_string(), "info".to_string()));
        assert_eq!(env[1], ("BANANO_RPC_ENDPOINT".to_string(), String::new()));
    }

    #[test]
    fn refuses_floating_and_malformed_images() {
        for bad in [
            "ghcr.io/x/y",
            "ghcr.io/x/y:latest",
            "ghcr.io/x/y:main",
            "ghcr.io/x/y:4F1C2A9D0B8E7C6F5A4B3C2D1E0F9A8B7C6D5E4F",
            "ghcr.io/x/y:4f1c2a9",
            "ghcr.io/x/y@sha256:abc",
            "localhost:5000/x/y",
        ] {
            assert!(validate_deploy_image(bad).is_err(), "{bad}");
        }
        assert!(validate_deploy_image(&format!("localhost:5000/x/y:{SHA}")).is_ok());
        assert!(validate_deploy_image(&format!("x/y@sha256:{}", "a".repeat(64))).is_ok());
        assert!(validate_pinned_image("bananocoin/banano:V27.0").is_ok());
        assert!(validate_pinned_image("bananocoin/banano").is_err());
    }

    #[test]
    fn bad_sdls_and_services_are_named() {
        assert!(parse("version: \"1.0\"\nservices: {}")
            .unwrap_err()
            .contains("version 1.0"));
        assert!(parse("services: [").unwrap_err().contains("not valid YAML"));
        let err = apply(SDL, Some("apii"), None, &[]).unwrap_err();
        assert!(err.contains("did you mean 'api'"), "{err}");
        let err = apply(SDL, None, None, &[("lower".into(), "x".into())]).unwrap_err();
        assert!(err.contains("env name 'lower'"), "{err}");
    }
}
