//! Signing certificates (keyless cosign): the key, the SAN identities and
//! Fulcio's extensions (OIDC issuer, GitHub workflow claims), and the
//! [`Identity`] a certificate must show. The chain to Fulcio is checked in
//! [`super::sigstore::chain`].

use std::collections::BTreeMap;

use regex::Regex;
use x509_cert::der::{Decode, DecodePem, Encode};

use super::sigstore::keys::PublicKey;
use crate::error::PrimError;

/// Fulcio OIDC issuer, raw string (deprecated form).
pub const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio OIDC issuer, DER UTF8String.
pub const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
/// Arc under which Fulcio puts its extensions.
const FULCIO_ARC: &str = "1.3.6.1.4.1.57264.1.";
const OID_SAN: &str = "2.5.29.17";
/// The issuer of GitHub Actions' OIDC tokens.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// The parts of a signing certificate that matter here.
#[derive(Clone, Debug)]
pub struct CertInfo {
    /// The certificate.
    pub cert: x509_cert::Certificate,
    /// Its DER.
    pub der: Vec<u8>,
    /// Its public key.
    pub key: PublicKey,
    /// Its SAN emails and URIs.
    pub identities: Vec<String>,
    /// The Fulcio issuer extension, if present.
    pub issuer: Option<String>,
    /// Fulcio's extensions by their last arc (1.3.6.1.4.1.57264.1.N → N),
    /// as text: 1 to 7 are raw strings, 8 on DER UTF8Strings.
    pub fulcio: BTreeMap<u32, String>,
}

/// Parse a certificate (PEM or DER).
pub fn parse_certificate(bytes: &[u8]) -> Result<CertInfo, PrimError> {
    let cert = if bytes.starts_with(b"-----") {
        x509_cert::Certificate::from_pem(bytes)
    } else {
        x509_cert::Certificate::from_der(bytes)
    }
    .map_err(|e| format!("the certificate does not parse ({e})"))?;
    let der = cert
        .to_der()
        .map_err(|e| format!("the certificate does not encode ({e})"))?;
    let tbs = &cert.tbs_certificate;
    let spki = tbs
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("the certificate's public key does not encode ({e})"))?;
    let key =
        PublicKey::from_spki_der(&spki).map_err(|e| format!("the certificate's key is {e}"))?;
    let mut identities = Vec::new();
    let mut fulcio = BTreeMap::new();
    for ext in tbs.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        let value = ext.extn_value.as_bytes();
        if oid == OID_SAN {
            let san = x509_cert::ext::pkix::SubjectAltName::from_der(value)
                .map_err(|e| format!("the certificate's SAN does not parse ({e})"))?;
            for name in san.0 {
                match name {
                    x509_cert::ext::pkix::name::GeneralName::Rfc822Name(s)
                    | x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(s) => {
                        identities.push(s.to_string())
                    }
                    _ => {}
                }
            }
        } else if let Some(n) = oid
            .strip_prefix(FULCIO_ARC)
            .and_then(|n| n.parse::<u32>().ok())
        {
            let text = if n < 8 {
                std::str::from_utf8(value).ok().map(String::from)
            } else {
                x509_cert::der::asn1::Utf8StringRef::from_der(value)
                    .ok()
                    .map(|s| s.as_str().to_string())
            };
            if let Some(t) = text {
                fulcio.insert(n, t);
            }
        }
    }
    Ok(CertInfo {
        issuer: fulcio.get(&8).or_else(|| fulcio.get(&1)).cloned(),
        cert,
        der,
        key,
        identities,
        fulcio,
    })
}

/// How the SAN must read.
#[derive(Clone, Debug)]
pub enum San {
    /// Exactly this.
    Exact(String),
    /// Wholly matched by this (anchored) expression.
    Regexp(Regex),
}

impl San {
    /// An anchored expression: `identity_regexp` must match the whole SAN.
    pub fn regexp(re: &str) -> Result<San, String> {
        Regex::new(&format!("^(?:{re})$"))
            .map(San::Regexp)
            .map_err(|e| format!("`identity_regexp` is not a regular expression ({e})"))
    }

    fn matches(&self, san: &str) -> bool {
        match self {
            San::Exact(s) => s == san,
            San::Regexp(r) => r.is_match(san),
        }
    }
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Exact(s) => f.write_str(s),
            San::Regexp(r) => write!(f, "an identity matching {}", r.as_str()),
        }
    }
}

/// The identity a keyless certificate must show.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The SAN (email or URI).
    pub san: San,
    /// The OIDC issuer (extension .1.8, or the older .1.1).
    pub issuer: String,
    /// GitHub: the repository `OWNER/REPO` (extension .1.5, or the source
    /// repository URI .1.12).
    pub github_repository: Option<String>,
    /// GitHub: the ref, `refs/heads/main` (extension .1.6, or .1.14).
    pub github_ref: Option<String>,
    /// GitHub: the commit SHA (extension .1.3, or .1.13).
    pub github_sha: Option<String>,
}

impl Identity {
    /// A SAN and issuer, no GitHub claims.
    pub fn new(san: San, issuer: String) -> Identity {
        Identity {
            san,
            issuer,
            github_repository: None,
            github_ref: None,
            github_sha: None,
        }
    }

    /// From `github_workflow: "OWNER/REPO/.github/workflows/FILE@REF"`: the
    /// SAN GitHub Actions' certificates carry and GitHub's issuer.
    pub fn github_workflow(w: &str) -> Result<Identity, String> {
        let shape = "`github_workflow` is OWNER/REPO/.github/workflows/FILE@REF (e.g. mconstant/pay2slay/.github/workflows/build.yml@refs/heads/main)";
        let (path, git_ref) = w.split_once('@').ok_or(shape)?;
        let parts: Vec<&str> = path.split('/').collect();
        let ok = parts.len() == 5
            && parts[2] == ".github"
            && parts[3] == "workflows"
            && parts.iter().all(|p| !p.is_empty())
            && git_ref.starts_with("refs/");
        if !ok {
            return Err(format!("{shape}, not '{w}'"));
        }
        Ok(Identity {
            san: San::Exact(format!("https://github.com/{w}")),
            issuer: GITHUB_ISSUER.to_string(),
            github_repository: None,
            github_ref: None,
            github_sha: None,
        })
    }
}

/// Check a certificate's identity; returns the SAN that matched.
pub fn check_identity(info: &CertInfo, want: &Identity) -> Result<String, String> {
    let Some(got_issuer) = &info.issuer else {
        return Err(format!(
            "the certificate has no OIDC issuer extension ({OID_ISSUER_V2} or {OID_ISSUER_V1}); expected issuer {}",
            want.issuer
        ));
    };
    if *got_issuer != want.issuer {
        return Err(format!(
            "the certificate's issuer is {got_issuer}, not {}",
            want.issuer
        ));
    }
    let Some(san) = info.identities.iter().find(|i| want.san.matches(i)) else {
        return Err(format!(
            "the certificate's identity is {}, not {}",
            if info.identities.is_empty() {
                "missing".to_string()
            } else {
                info.identities.join(", ")
            },
            want.san
        ));
    };
    let repo_v2 = info
        .fulcio
        .get(&12)
        .map(|u| u.trim_start_matches("https://github.com/").to_string());
    let claims = [
        // (what, wanted, old form, new form, their OIDs, case-insensitive?)
        (
            "repository",
            &want.github_repository,
            info.fulcio.get(&5).cloned(),
            repo_v2,
            "5 or .12",
            true,
        ),
        (
            "ref",
            &want.github_ref,
            info.fulcio.get(&6).cloned(),
            info.fulcio.get(&14).cloned(),
            "6 or .14",
            false,
        ),
        (
            "commit SHA",
            &want.github_sha,
            info.fulcio.get(&3).cloned(),
            info.fulcio.get(&13).cloned(),
            "3 or .13",
            true,
        ),
    ];
    for (what, want, v1, v2, oids, fold) in claims {
        let Some(want) = want else { continue };
        let got: Vec<String> = [v1, v2].into_iter().flatten().collect();
        if got.is_empty() {
            return Err(format!(
                "the certificate has no GitHub workflow {what} extension (1.3.6.1.4.1.57264.1.{oids}); expected {want}"
            ));
        }
        if let Some(bad) = got
            .iter()
            .find(|g| !(**g == *want || fold && g.eq_ignore_ascii_case(want)))
        {
            return Err(format!(
                "the certificate's GitHub workflow {what} is {bad}, not {want}"
            ));
        }
    }
    Ok(san.clone())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::oci::cosign::fixtures::*;

    fn id(san: &str, issuer: &str) -> Identity {
        Identity::new(San::Exact(san.into()), issuer.into())
    }

    /// The certificate of the real 2026 GitHub Actions bundle (kubewarden).
    fn github_cert() -> CertInfo {
        let v: serde_json::Value = serde_json::from_str(&data(
            "bundle-format/sigstore-rs-0.15.0_tests_data_bundle_v03.json",
        ))
        .unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                v["verificationMaterial"]["certificate"]["rawBytes"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        parse_certificate(&der).unwrap()
    }

    const KW: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";

    #[test]
    fn a_2021_fulcio_certificate_has_an_email_and_no_issuer() {
        let info =
            parse_certificate(data("sigstore-rs-0.15.0-keyless/cert.pem").as_bytes()).unwrap();
        assert_eq!(info.identities, vec!["flavio@castelli.me".to_string()]);
        assert_eq!(info.issuer, None);
        let err = check_identity(
            &info,
            &id("flavio@castelli.me", "https://github.com/login/oauth"),
        )
        .unwrap_err();
        assert!(err.contains("no OIDC issuer extension"), "{err}");
    }

    #[test]
    fn san_and_both_issuer_forms_are_read_and_matched() {
        let info = parse_certificate(data("generated/keyless-signer-cert.pem").as_bytes()).unwrap();
        let gh =
            "https://github.com/mconstant/pay2slay/.github/workflows/build-api.yml@refs/heads/main";
        assert_eq!(info.identities, vec![gh.to_string()]);
        assert_eq!(info.issuer.as_deref(), Some(GITHUB_ISSUER));
        assert_eq!(check_identity(&info, &id(gh, GITHUB_ISSUER)).unwrap(), gh);
        let err = check_identity(
            &info,
            &id(
                "https://github.com/evil/fork/.github/workflows/build-api.yml@refs/heads/main",
                GITHUB_ISSUER,
            ),
        )
        .unwrap_err();
        assert!(
            err.contains("identity is https://github.com/mconstant/pay2slay"),
            "{err}"
        );
        // Only the older raw 1.1 issuer extension, and an email SAN.
        let info = parse_certificate(data("generated/email-signer-cert-v1-issuer.pem").as_bytes())
            .unwrap();
        assert_eq!(
            check_identity(
                &info,
                &id("release@example.com", "https://accounts.google.com")
            )
            .unwrap(),
            "release@example.com"
        );
        let err = check_identity(&info, &id("release@example.com", GITHUB_ISSUER)).unwrap_err();
        assert!(
            err.contains("issuer is https://accounts.google.com"),
            "{err}"
        );
    }

    #[test]
    fn identity_regexp_matches_the_whole_san_only() {
        let info = github_cert();
        let re = |r: &str| Identity::new(San::regexp(r).unwrap(), GITHUB_ISSUER.into());
        let ok = check_identity(
            &info,
            &re(r"https://github\.com/kubewarden/.+@refs/tags/v.*"),
        )
        .unwrap();
        assert_eq!(ok, KW);
        // Unanchored it would match; anchored, a prefix is not enough.
        let err = check_identity(&info, &re("https://github.com/kubewarden")).unwrap_err();
        assert!(
            err.contains("not an identity matching ^(?:https://github.com/kubewarden)$"),
            "{err}"
        );
        assert!(San::regexp("(")
            .unwrap_err()
            .contains("`identity_regexp` is not a regular expression"));
    }

    #[test]
    fn github_workflow_builds_the_san_and_checks_the_claims_asked_for() {
        let info = github_cert();
        assert_eq!(
            info.fulcio.get(&5).map(String::as_str),
            Some("kubewarden/kubewarden-controller")
        );
        let mut want = Identity::github_workflow(
            "kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0",
        )
        .unwrap();
        assert_eq!(check_identity(&info, &want).unwrap(), KW);
        want.github_repository = Some("Kubewarden/kubewarden-controller".into());
        want.github_ref = Some("refs/tags/v1.34.0".into());
        want.github_sha = Some("2a6b879b7a5ef59d7fb348d0b5d14314538ac0a6".into());
        assert_eq!(check_identity(&info, &want).unwrap(), KW);
        let mut bad = want.clone();
        bad.github_sha = Some("0".repeat(40));
        let err = check_identity(&info, &bad).unwrap_err();
        assert_eq!(err, format!("the certificate's GitHub workflow commit SHA is 2a6b879b7a5ef59d7fb348d0b5d14314538ac0a6, not {}", "0".repeat(40)));
        let mut bad = want.clone();
        bad.github_ref = Some("refs/heads/main".into());
        assert!(check_identity(&info, &bad)
            .unwrap_err()
            .contains("ref is refs/tags/v1.34.0, not refs/heads/main"));
        let mut bad = want;
        bad.github_repository = Some("evil/kubewarden-controller".into());
        assert!(check_identity(&info, &bad)
            .unwrap_err()
            .contains("repository is kubewarden/kubewarden-controller"));
        // A certificate without the extensions cannot satisfy a claim.
        let plain =
            parse_certificate(data("generated/keyless-signer-cert.pem").as_bytes()).unwrap();
        let mut w = Identity::github_workflow(
            "mconstant/pay2slay/.github/workflows/build-api.yml@refs/heads/main",
        )
        .unwrap();
        w.github_ref = Some("refs/heads/main".into());
        assert!(check_identity(&plain, &w)
            .unwrap_err()
            .contains("has no GitHub workflow ref extension (1.3.6.1.4.1.57264.1.6 or .14)"));
        for bad in [
            "owner/repo",
            "owner/repo/build.yml@refs/heads/main",
            "owner/repo/.github/workflows/x.yml@main",
            "o//.github/workflows/x.yml@refs/heads/main",
        ] {
            assert!(
                Identity::github_workflow(bad)
                    .unwrap_err()
                    .contains("OWNER/REPO/.github/workflows/FILE@REF"),
                "{bad}"
            );
        }
    }
}
