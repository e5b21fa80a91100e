//! The Sigstore trust root (protobuf-specs `TrustedRoot`, JSON): the
//! Fulcio certificate authorities a signing certificate must chain to, the
//! Rekor keys that sign log entries and the certificate-transparency log
//! keys that sign the certificate's SCTs, each with the time it is valid
//! for. The public-good instance's root is embedded (see
//! `TRUSTED_ROOT_SOURCE.md` beside it); a file replaces it.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use serde_json::Value;
use x509_cert::der::Decode;
use x509_cert::Certificate;

use super::keys::{sha256_hex, PublicKey};
use super::time::{parse_rfc3339, Window};

/// The public-good instance's `trusted_root.json`, from sigstore/root-signing.
pub const EMBEDDED: &[u8] = include_bytes!("trusted_root.json");
/// Environment variable naming a trust root file that replaces the embedded one.
pub const ENV: &str = "SIGSTORE_TRUSTED_ROOT";
/// Largest trust root file read (the public-good one is 7 KiB).
const FILE_CAP: u64 = 1024 * 1024;

/// A certificate authority: its chain, issuing certificate first.
#[derive(Clone, Debug)]
pub struct Authority {
    /// Where it lives (`https://fulcio.sigstore.dev`).
    pub uri: String,
    /// Issuing certificate first, root last.
    pub chain: Vec<Certificate>,
    /// When it may issue.
    pub valid_for: Window,
}

/// A transparency (or certificate-transparency) log's key.
#[derive(Clone, Debug)]
pub struct LogKey {
    /// Where it lives (`https://rekor.sigstore.dev`).
    pub base_url: String,
    /// Its log id: SHA-256 of the key's DER, hex.
    pub id: String,
    /// The key; `None` for a kind not verified here (Ed25519 Rekor v2 logs),
    /// with `details` saying which.
    pub key: Option<PublicKey>,
    /// `keyDetails` as the trust root states it.
    pub details: String,
    /// When it signs.
    pub valid_for: Window,
}

/// A parsed trust root.
#[derive(Clone, Debug)]
pub struct TrustRoot {
    /// Fulcio CAs.
    pub authorities: Vec<Authority>,
    /// Rekor keys.
    pub tlogs: Vec<LogKey>,
    /// Certificate-transparency log keys; empty means SCTs are not
    /// required (cosign's rule).
    pub ctlogs: Vec<LogKey>,
    /// Where it came from: `embedded` or a path.
    pub origin: String,
}

impl TrustRoot {
    /// The Rekor key whose id is `id` (hex).
    pub fn tlog(&self, id: &str) -> Option<&LogKey> {
        self.tlogs.iter().find(|k| k.id.eq_ignore_ascii_case(id))
    }

    /// The CT log keys whose id is `id` (hex): a log may have rotated its
    /// key under the same id only in theory, so all are returned.
    pub fn ctlogs_with_id<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a LogKey> {
        self.ctlogs
            .iter()
            .filter(move |k| k.id.eq_ignore_ascii_case(id))
    }
}

/// The embedded public-good trust root, parsed once.
pub fn embedded() -> Result<Arc<TrustRoot>, String> {
    static ROOT: OnceLock<Result<Arc<TrustRoot>, String>> = OnceLock::new();
    ROOT.get_or_init(|| parse(EMBEDDED, "embedded").map(Arc::new))
        .clone()
}

/// The trust root in effect: the file `path` (an option), else the file
/// named by `SIGSTORE_TRUSTED_ROOT`, else the embedded one.
pub fn load(path: Option<&Path>) -> Result<Arc<TrustRoot>, String> {
    let env = std::env::var_os(ENV).filter(|v| !v.is_empty());
    let (path, how) = match (path, &env) {
        (Some(p), _) => (p.to_path_buf(), "the `trusted_root` option"),
        (None, Some(v)) => (v.into(), ENV),
        (None, None) => return embedded(),
    };
    let bytes = crate::fsread::read_bytes(&path, FILE_CAP).map_err(|e| {
        format!(
            "cannot read the trust root '{}' ({how}): {e}",
            path.display()
        )
    })?;
    parse(&bytes, &path.display().to_string()).map(Arc::new)
}

/// Parse a `trusted_root.json`. Log keys of kinds not verified here are
/// kept without a key; a CA whose certificates do not parse is an error.
pub fn parse(bytes: &[u8], origin: &str) -> Result<TrustRoot, String> {
    let bad = |why: String| format!("the trust root '{origin}' {why}");
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("is not JSON ({e})")))?;
    let media = v
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !media.starts_with("application/vnd.dev.sigstore.trustedroot") {
        return Err(bad(format!(
            "is not a Sigstore trusted root (mediaType '{media}', expected application/vnd.dev.sigstore.trustedroot+json;version=0.1)"
        )));
    }
    let authorities = list(&v, "certificateAuthorities")
        .enumerate()
        .map(|(i, ca)| authority(ca).map_err(|e| bad(format!("certificateAuthorities[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let tlogs = list(&v, "tlogs")
        .enumerate()
        .map(|(i, l)| log_key(l).map_err(|e| bad(format!("tlogs[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let ctlogs = list(&v, "ctlogs")
        .enumerate()
        .map(|(i, l)| log_key(l).map_err(|e| bad(format!("ctlogs[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if authorities.is_empty() || tlogs.is_empty() {
        return Err(bad(
            "has no certificateAuthorities or no tlogs: nothing keyless could chain to".into(),
        ));
    }
    Ok(TrustRoot {
        authorities,
        tlogs,
        ctlogs,
        origin: origin.to_string(),
    })
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn b64(v: Option<&Value>, what: &str) -> Result<Vec<u8>, String> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| format!("has no {what}"))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("{what} is not base64 ({e})"))
}

fn window(v: Option<&Value>) -> Result<Window, String> {
    let at = |k: &str| -> Result<Option<i64>, String> {
        match v.and_then(|w| w.get(k)) {
            None | Some(Value::Null) => Ok(None),
            Some(t) => t
                .as_str()
                .and_then(parse_rfc3339)
                .map(Some)
                .ok_or_else(|| format!("validFor.{k} is not an RFC 3339 UTC time: {t}")),
        }
    };
    Ok(Window {
        start: at("start")?,
        end: at("end")?,
    })
}

fn authority(ca: &Value) -> Result<Authority, String> {
    let chain = ca
        .pointer("/certChain/certificates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let der = b64(c.get("rawBytes"), "rawBytes")?;
            Certificate::from_der(&der).map_err(|e| format!("certificate {i} does not parse ({e})"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if chain.is_empty() {
        return Err("has no certificates".into());
    }
    Ok(Authority {
        uri: ca
            .get("uri")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        chain,
        valid_for: window(ca.get("validFor"))?,
    })
}

fn log_key(l: &Value) -> Result<LogKey, String> {
    let pk = l.get("publicKey").ok_or("has no publicKey")?;
    let der = b64(pk.get("rawBytes"), "publicKey.rawBytes")?;
    let details = pk
        .get("keyDetails")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let key = match details.as_str() {
        d if d.starts_with("PKIX_ECDSA_P256") || d.starts_with("PKIX_ECDSA_P384") => {
            Some(PublicKey::from_spki_der(&der).map_err(|e| format!("publicKey: {e}"))?)
        }
        _ => PublicKey::from_spki_der(&der).ok(),
    };
    Ok(LogKey {
        base_url: l
            .get("baseUrl")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        id: sha256_hex(&der),
        key,
        details,
        valid_for: window(pk.get("validFor"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_public_good_root_parses() {
        let root = embedded().unwrap();
        assert_eq!(root.authorities.len(), 2);
        // The 2021 root alone, then the 2022 intermediate + root (P-384).
        assert_eq!(root.authorities[0].chain.len(), 1);
        assert_eq!(root.authorities[1].chain.len(), 2);
        assert_eq!(
            root.authorities[0].valid_for.end,
            parse_rfc3339("2022-12-31T23:59:59.999Z")
        );
        let rekor = root
            .tlog("c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d")
            .unwrap();
        assert_eq!(rekor.base_url, "https://rekor.sigstore.dev");
        assert!(matches!(rekor.key, Some(PublicKey::P256(_))));
        // The Rekor v2 log's Ed25519 key is listed but not used.
        assert!(root
            .tlogs
            .iter()
            .any(|k| k.key.is_none() && k.details == "PKIX_ED25519"));
        // The two CT logs, ids as the trust root states them (base64).
        assert_eq!(root.ctlogs.len(), 2);
        assert_eq!(
            root.ctlogs[1].id,
            "dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e"
        );
        assert_eq!(root.ctlogs[1].base_url, "https://ctfe.sigstore.dev/2022");
    }

    #[test]
    fn bad_trust_roots_say_what_is_wrong() {
        let e = parse(b"nope", "x.json").unwrap_err();
        assert!(e.starts_with("the trust root 'x.json' is not JSON"), "{e}");
        let e = parse(br#"{"mediaType":"other"}"#, "x.json").unwrap_err();
        assert!(e.contains("is not a Sigstore trusted root"), "{e}");
        let e = parse(
            br#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#,
            "x.json",
        )
        .unwrap_err();
        assert!(e.contains("no certificateAuthorities"), "{e}");
        let mut v: Value = serde_json::from_slice(EMBEDDED).unwrap();
        v["certificateAuthorities"][0]["validFor"]["start"] = "yesterday".into();
        let e = parse(v.to_string().as_bytes(), "x.json").unwrap_err();
        assert!(
            e.contains("certificateAuthorities[0]: validFor.start is not an RFC 3339"),
            "{e}"
        );
        let e = load(Some(Path::new("/nonexistent/trusted_root.json"))).unwrap_err();
        assert!(e.contains("cannot read the trust root '/nonexistent/trusted_root.json' (the `trusted_root` option)"), "{e}");
    }
}
