//! Sigstore bundles v0.1 to v0.3 (cosign v3): a DSSE envelope around an
//! in-toto statement naming the image digest, signed with a certificate's
//! key (its Rekor entry in `tlogEntries`) or a public key, verified under a
//! [`Policy`].

use base64::Engine as _;
use serde_json::Value;

use super::cosign::{
    signature_bytes, verify_message, Evidence, Policy, Rejection, Step, MAX_SIGNATURES,
    SIGN_PREDICATE,
};
use super::sigstore::rekor;

/// DSSE pre-authentication encoding.
fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Verify a Sigstore bundle (DSSE, in-toto statement). `Ok(None)` when
/// the bundle is not a cosign signature (an attestation of another kind).
pub fn verify_bundle(
    bundle: &[u8],
    digest: &str,
    policy: &Policy,
) -> Result<Option<String>, Rejection> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = |m: String| Rejection::new(Step::Signature, m);
    let v: Value =
        serde_json::from_slice(bundle).map_err(|e| bad(format!("the bundle is not JSON ({e})")))?;
    let env = v.get("dsseEnvelope").ok_or_else(|| {
        bad("the bundle has no dsseEnvelope (message-signature bundles are not supported)".into())
    })?;
    let body = b64
        .decode(
            env.get("payload")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
        .map_err(|e| bad(format!("the bundle's payload is not base64 ({e})")))?;
    let payload_type = env
        .get("payloadType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let statement: Value = serde_json::from_slice(&body).map_err(|e| {
        Rejection::new(
            Step::Digest,
            format!("the bundle's statement is not JSON ({e})"),
        )
    })?;
    if statement.get("predicateType").and_then(Value::as_str) != Some(SIGN_PREDICATE) {
        return Ok(None);
    }
    let hex = digest.trim_start_matches("sha256:");
    let subjects: Vec<&str> = statement
        .get("subject")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.pointer("/digest/sha256").and_then(Value::as_str))
        .collect();
    if !subjects.contains(&hex) {
        return Err(Rejection::new(
            Step::Digest,
            format!(
                "the bundle's statement is for {}, not {digest}",
                if subjects.is_empty() {
                    "no digest".to_string()
                } else {
                    format!("sha256:{}", subjects.join(", sha256:"))
                }
            ),
        ));
    }
    let vm = v.get("verificationMaterial");
    let cert_b64 = vm
        .and_then(|m| {
            m.pointer("/certificate/rawBytes")
                .or_else(|| m.pointer("/x509CertificateChain/certificates/0/rawBytes"))
        })
        .and_then(Value::as_str);
    let cert = match cert_b64 {
        Some(c) => Some(b64.decode(c).map_err(|e| {
            Rejection::new(
                Step::Chain,
                format!("the bundle's certificate is not base64 ({e})"),
            )
        })?),
        None => None,
    };
    let ev = Evidence {
        cert: cert.as_deref(),
        log: vm
            .and_then(|m| m.pointer("/tlogEntries/0"))
            .map(rekor::from_tlog_entry),
        logged: &body,
    };
    let msg = pae(payload_type, &body);
    let mut last = bad("the bundle has no signatures".into());
    for s in env
        .get("signatures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(MAX_SIGNATURES)
    {
        let sig = match signature_bytes(s.get("sig").and_then(Value::as_str).unwrap_or_default()) {
            Ok(sig) => sig,
            Err(e) => {
                last = e;
                continue;
            }
        };
        match verify_message(&msg, &sig, &ev, policy) {
            Ok(who) => return Ok(Some(who)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::cosign::fixtures::*;
    use crate::oci::cosign_cert::parse_certificate;

    #[test]
    fn bundle_v03_verifies_with_its_certificate_identity_and_issuer() {
        let bundle = data("bundle-format/sigstore-rs-0.15.0_tests_data_bundle_v03.json");
        let digest = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
        let identity = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
        let issuer = "https://token.actions.githubusercontent.com";
        let who = verify_bundle(bundle.as_bytes(), digest, &keyless(identity, issuer)).unwrap();
        assert_eq!(who.as_deref(), Some(identity));
        let err = verify_bundle(
            bundle.as_bytes(),
            digest,
            &keyless(identity, "https://accounts.google.com"),
        )
        .unwrap_err()
        .msg;
        assert!(err.contains("issuer is https://token.actions.githubusercontent.com, not https://accounts.google.com"), "{err}");
        let err = verify_bundle(
            bundle.as_bytes(),
            digest,
            &keyless("someone@example.com", issuer),
        )
        .unwrap_err()
        .msg;
        assert!(
            err.contains("identity is https://github.com/kubewarden"),
            "{err}"
        );
        let other = format!("sha256:{}", "1".repeat(64));
        let err = verify_bundle(bundle.as_bytes(), &other, &keyless(identity, issuer))
            .unwrap_err()
            .msg;
        assert!(err.contains("statement is for sha256:c811d58d"), "{err}");
        // A key that did not sign it.
        let err = verify_bundle(
            bundle.as_bytes(),
            digest,
            &key("sigstore-rs-0.15.0-keyed/cosign.pub"),
        )
        .unwrap_err()
        .msg;
        assert!(err.contains("does not verify with the given key"), "{err}");
    }

    #[test]
    fn attestation_bundles_are_not_signatures() {
        let bundle = data("bundle-format/cosign_pkg_cosign_testdata_oci-attestation.sigstore.json");
        let digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4";
        assert_eq!(
            verify_bundle(
                bundle.as_bytes(),
                digest,
                &keyless("cody@soyland.com", "https://github.com/login/oauth")
            )
            .unwrap(),
            None
        );
        // Its certificate carries the issuer in both extension forms.
        let v: Value = serde_json::from_str(&bundle).unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                v["verificationMaterial"]["certificate"]["rawBytes"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        let info = parse_certificate(&der).unwrap();
        assert_eq!(
            info.issuer.as_deref(),
            Some("https://github.com/login/oauth")
        );
        assert_eq!(info.identities, vec!["cody@soyland.com".to_string()]);
    }

    #[test]
    fn dsse_pae_is_the_spec_encoding() {
        assert_eq!(pae("t", b"ab"), b"DSSEv1 1 t 2 ab".to_vec());
    }
}
