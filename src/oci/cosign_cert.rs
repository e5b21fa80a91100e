//! Signing certificates (keyless cosign): the key, the SAN identities and
//! the Fulcio OIDC issuer extension, and the check of identity and issuer.
//! The chain to Fulcio's root is not checked (see [`super::cosign`]).

use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey;
use x509_cert::der::{Decode, DecodePem, Encode};

use crate::error::PrimError;

/// Fulcio OIDC issuer, raw string (deprecated form).
pub const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio OIDC issuer, DER UTF8String.
pub const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const OID_SAN: &str = "2.5.29.17";

/// The parts of a signing certificate that matter here.
#[derive(Clone, Debug)]
pub struct CertInfo {
    /// Its public key.
    pub key: VerifyingKey,
    /// Its SAN emails and URIs.
    pub identities: Vec<String>,
    /// The Fulcio issuer extension, if present.
    pub issuer: Option<String>,
}

/// Parse a certificate (PEM or DER).
pub fn parse_certificate(bytes: &[u8]) -> Result<CertInfo, PrimError> {
    let cert = if bytes.starts_with(b"-----") {
        x509_cert::Certificate::from_pem(bytes)
    } else {
        x509_cert::Certificate::from_der(bytes)
    }
    .map_err(|e| format!("the certificate does not parse ({e})"))?;
    let tbs = &cert.tbs_certificate;
    let spki = tbs
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("the certificate's public key does not encode ({e})"))?;
    let key = VerifyingKey::from_public_key_der(&spki)
        .map_err(|_| "the certificate's key is not an ECDSA P-256 key".to_string())?;
    let mut identities = Vec::new();
    let mut issuer_v1 = None;
    let mut issuer_v2 = None;
    for ext in tbs.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        let value = ext.extn_value.as_bytes();
        match oid.as_str() {
            OID_SAN => {
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
            }
            OID_ISSUER_V1 => issuer_v1 = std::str::from_utf8(value).ok().map(String::from),
            OID_ISSUER_V2 => {
                issuer_v2 = x509_cert::der::asn1::Utf8StringRef::from_der(value)
                    .ok()
                    .map(|s| s.as_str().to_string())
            }
            _ => {}
        }
    }
    Ok(CertInfo {
        key,
        identities,
        issuer: issuer_v2.or(issuer_v1),
    })
}

/// Check a certificate's identity and issuer; returns the identity matched.
pub fn check_identity(info: &CertInfo, identity: &str, issuer: &str) -> Result<String, PrimError> {
    let Some(got_issuer) = &info.issuer else {
        return Err(PrimError::fatal(format!(
            "the certificate has no OIDC issuer extension ({OID_ISSUER_V2} or {OID_ISSUER_V1}); expected issuer {issuer}"
        )));
    };
    if got_issuer != issuer {
        return Err(PrimError::fatal(format!(
            "the certificate's issuer is {got_issuer}, not {issuer}"
        )));
    }
    if !info.identities.iter().any(|i| i == identity) {
        return Err(PrimError::fatal(format!(
            "the certificate's identity is {}, not {identity}",
            if info.identities.is_empty() {
                "missing".to_string()
            } else {
                info.identities.join(", ")
            }
        )));
    }
    Ok(identity.to_string())
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Verifier;

    use super::*;
    use crate::oci::cosign::fixtures::*;
    use crate::oci::cosign::{decode_signature, verify_simple_signing};

    const KEYLESS_DIGEST: &str =
        "sha256:5f481572d088dc4023afb35fced9530ced3d9b03bf7299c6f492163cb9f0452e";

    #[test]
    fn keyless_fixture_checks_identity_and_issuer() {
        let payload = data("sigstore-rs-0.15.0-keyless/payload.json");
        let sig = data("sigstore-rs-0.15.0-keyless/signature.b64");
        let cert = data("sigstore-rs-0.15.0-keyless/cert.pem");
        let info = parse_certificate(cert.as_bytes()).unwrap();
        assert_eq!(info.identities, vec!["flavio@castelli.me".to_string()]);
        // A 2021 Fulcio certificate: no issuer extension yet.
        assert_eq!(info.issuer, None);
        let err = verify_simple_signing(
            payload.as_bytes(),
            &sig,
            Some(&cert),
            KEYLESS_DIGEST,
            &keyless("flavio@castelli.me", "https://github.com/login/oauth"),
        )
        .unwrap_err()
        .msg;
        assert!(err.contains("no OIDC issuer extension"), "{err}");
        // The signature itself verifies with the certificate's key.
        let s = decode_signature(&sig).unwrap();
        assert!(info.key.verify(payload.as_bytes(), &s).is_ok());
        // The wrong certificate's key does not.
        let other =
            parse_certificate(data("cosign-spec-examples/certificate-example.pem").as_bytes())
                .unwrap();
        assert!(other.key.verify(payload.as_bytes(), &s).is_err());
        assert_eq!(other.identities, vec!["dlorenc@google.com".to_string()]);
    }

    #[test]
    fn generated_keyless_certificates_check_san_and_both_issuer_forms() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"ghcr.io/mconstant/pay2slay-api"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        );
        let gh_identity =
            "https://github.com/mconstant/pay2slay/.github/workflows/build-api.yml@refs/heads/main";
        let gh_issuer = "https://token.actions.githubusercontent.com";
        let cert = data("generated/keyless-signer-cert.pem");
        let info = parse_certificate(cert.as_bytes()).unwrap();
        assert_eq!(info.identities, vec![gh_identity.to_string()]);
        assert_eq!(info.issuer.as_deref(), Some(gh_issuer));
        let sig = sign("generated/TEST-ONLY-keyless-signer.key", payload.as_bytes());
        let ok = verify_simple_signing(
            payload.as_bytes(),
            &sig,
            Some(&cert),
            &digest,
            &keyless(gh_identity, gh_issuer),
        );
        assert_eq!(ok.unwrap(), gh_identity);
        let err = verify_simple_signing(
            payload.as_bytes(),
            &sig,
            Some(&cert),
            &digest,
            &keyless(
                "https://github.com/evil/fork/.github/workflows/build-api.yml@refs/heads/main",
                gh_issuer,
            ),
        )
        .unwrap_err()
        .msg;
        assert!(
            err.contains("identity is https://github.com/mconstant/pay2slay"),
            "{err}"
        );
        // Signed by another key than the certificate's: refused even with the right identity.
        let forged = sign("generated/TEST-ONLY-email-signer.key", payload.as_bytes());
        let err = verify_simple_signing(
            payload.as_bytes(),
            &forged,
            Some(&cert),
            &digest,
            &keyless(gh_identity, gh_issuer),
        )
        .unwrap_err()
        .msg;
        assert!(err.contains("certificate's key"), "{err}");

        // Only the older raw 1.1 issuer extension, and an email SAN.
        let cert = data("generated/email-signer-cert-v1-issuer.pem");
        let sig = sign("generated/TEST-ONLY-email-signer.key", payload.as_bytes());
        let ok = verify_simple_signing(
            payload.as_bytes(),
            &sig,
            Some(&cert),
            &digest,
            &keyless("release@example.com", "https://accounts.google.com"),
        );
        assert_eq!(ok.unwrap(), "release@example.com");
        let err = verify_simple_signing(
            payload.as_bytes(),
            &sig,
            Some(&cert),
            &digest,
            &keyless("release@example.com", gh_issuer),
        )
        .unwrap_err()
        .msg;
        assert!(
            err.contains("issuer is https://accounts.google.com"),
            "{err}"
        );
    }
}
