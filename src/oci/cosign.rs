//! Cosign signatures without Rhai: keys, certificates, simple-signing
//! payloads and Sigstore bundles, verified under a [`Policy`]. Finding them
//! in a registry is `cosign_find.rs`.
//!
//! Where signatures live:
//! - cosign's classic layout: an OCI manifest at tag `sha256-<hex>.sig`
//!   whose layers (`application/vnd.dev.cosign.simplesigning.v1+json`) are
//!   simple-signing payloads, each with its signature (base64 DER ECDSA
//!   P-256 / SHA-256 over the exact payload bytes) in the annotation
//!   `dev.cosignproject.cosign/signature` and, for keyless signing, the
//!   Fulcio certificate in `dev.sigstore.cosign/certificate`;
//! - cosign v3: a Sigstore bundle v0.3 (DSSE envelope around an in-toto
//!   statement) stored as an OCI 1.1 artifact that refers to the image,
//!   found through `GET /v2/<name>/referrers/<digest>` or, on registries
//!   without that API, the index at tag `sha256-<hex>`.
//!
//! The check after the token is 2 registry requests for the classic
//! layout (manifest, blob); the referrers path is only taken when the
//! `.sig` tag is absent.
//!
//! Keyless checking verifies the signature with the certificate's key and
//! matches the certificate's identity (SAN) and OIDC issuer; it does not
//! check the certificate chain against Fulcio's root or the Rekor log
//! (those need Sigstore's trust root, which a soft pre-deploy check does
//! not fetch).

use base64::Engine as _;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::Value;
use x509_cert::der::{Decode, DecodePem, Encode};

/// Media type of a simple-signing payload layer.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Annotation holding the PEM certificate (keyless).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Artifact type (prefix) of Sigstore bundles.
pub const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle";
/// The in-toto predicate type of a cosign v3 signature.
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Fulcio OIDC issuer, raw string (deprecated form).
pub const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio OIDC issuer, DER UTF8String.
pub const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const OID_SAN: &str = "2.5.29.17";

pub(crate) const SIG_MANIFEST_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const INDEX_ACCEPT: &str = "application/vnd.oci.image.index.v1+json";
/// Largest signature payload or bundle read.
pub(crate) const BLOB_LIMIT: usize = 1024 * 1024;
/// Most signatures examined in one verification.
pub(crate) const MAX_SIGNATURES: usize = 16;

/// The outcome of a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// A signature verified under the policy.
    Verified,
    /// No signature found.
    Unsigned,
    /// Signatures found, none verified.
    Invalid,
    /// Could not tell (registry, key file, options).
    Error,
}

impl Status {
    /// As the script sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Unsigned => "unsigned",
            Status::Invalid => "invalid",
            Status::Error => "error",
        }
    }
}

/// What a signature must satisfy.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// The public key (`opts.key`).
    pub key: Option<VerifyingKey>,
    /// The certificate identity: SAN email or URI (`opts.identity`).
    pub identity: Option<String>,
    /// The OIDC issuer in the certificate (`opts.issuer`).
    pub issuer: Option<String>,
}

/// A verification's result.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The status.
    pub status: Status,
    /// Why (empty when verified by the only signature there).
    pub reason: String,
    /// How many signatures were examined.
    pub signatures: usize,
    /// Where they were found: `sig-tag`, `referrers`, `referrers-tag`, `none`.
    pub source: &'static str,
    /// Who signed: the certificate identity, or `key`.
    pub signer: Option<String>,
}

impl Verdict {
    /// A verdict without a signer.
    pub fn new(
        status: Status,
        reason: impl Into<String>,
        signatures: usize,
        source: &'static str,
    ) -> Verdict {
        Verdict {
            status,
            reason: reason.into(),
            signatures,
            source,
            signer: None,
        }
    }
}

/// Read a PEM public key (SPKI, `-----BEGIN PUBLIC KEY-----`), P-256 only.
pub fn load_key_pem(pem: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
        format!("not an ECDSA P-256 public key in PEM (-----BEGIN PUBLIC KEY-----) form ({e}); cosign keys made by `cosign generate-key-pair` are")
    })
}

/// A signature from base64: DER (what cosign writes) or raw r‖s.
pub fn decode_signature(b64: &str) -> Result<Signature, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("the signature is not base64 ({e})"))?;
    Signature::from_der(&bytes)
        .or_else(|_| Signature::from_slice(&bytes))
        .map_err(|_| "the signature is not an ECDSA P-256 signature (DER or raw)".to_string())
}

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
pub fn parse_certificate(bytes: &[u8]) -> Result<CertInfo, String> {
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
pub fn check_identity(info: &CertInfo, identity: &str, issuer: &str) -> Result<String, String> {
    let Some(got_issuer) = &info.issuer else {
        return Err(format!(
            "the certificate has no OIDC issuer extension ({OID_ISSUER_V2} or {OID_ISSUER_V1}); expected issuer {issuer}"
        ));
    };
    if got_issuer != issuer {
        return Err(format!(
            "the certificate's issuer is {got_issuer}, not {issuer}"
        ));
    }
    if !info.identities.iter().any(|i| i == identity) {
        return Err(format!(
            "the certificate's identity is {}, not {identity}",
            if info.identities.is_empty() {
                "missing".to_string()
            } else {
                info.identities.join(", ")
            }
        ));
    }
    Ok(identity.to_string())
}

/// Verify a signature over `msg` under the policy: with the key, and/or with
/// the certificate (identity + issuer). Returns who signed.
fn verify_message(
    msg: &[u8],
    sig: &Signature,
    cert: Option<&[u8]>,
    policy: &Policy,
) -> Result<String, String> {
    let mut signer = None;
    if let Some(key) = &policy.key {
        key.verify(msg, sig)
            .map_err(|_| "the signature does not verify with the given key".to_string())?;
        signer = Some("key".to_string());
    }
    if let (Some(identity), Some(issuer)) = (&policy.identity, &policy.issuer) {
        let cert =
            cert.ok_or("the signature carries no certificate, so its identity cannot be checked")?;
        let info = parse_certificate(cert)?;
        info.key
            .verify(msg, sig)
            .map_err(|_| "the signature does not verify with its certificate's key".to_string())?;
        signer = Some(check_identity(&info, identity, issuer)?);
    }
    signer.ok_or_else(|| {
        "nothing to verify against: give `key`, or `identity` and `issuer`".to_string()
    })
}

/// The digest a simple-signing payload signs.
pub fn payload_digest(payload: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("the signed payload is not JSON ({e})"))?;
    v.pointer("/critical/image/docker-manifest-digest")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| {
            "the signed payload has no critical.image.docker-manifest-digest".to_string()
        })
}

/// Verify one simple-signing signature: the payload names `digest`, and the
/// signature over the exact payload bytes verifies under the policy.
pub fn verify_simple_signing(
    payload: &[u8],
    signature_b64: &str,
    cert_pem: Option<&str>,
    digest: &str,
    policy: &Policy,
) -> Result<String, String> {
    let signed = payload_digest(payload)?;
    if signed != digest {
        return Err(format!("the signed payload is for {signed}, not {digest}"));
    }
    let sig = decode_signature(signature_b64)?;
    verify_message(payload, &sig, cert_pem.map(str::as_bytes), policy)
}

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

/// Verify a Sigstore bundle v0.3 (DSSE, in-toto statement). `Ok(None)` when
/// the bundle is not a cosign signature (an attestation of another kind).
pub fn verify_bundle(
    bundle: &[u8],
    digest: &str,
    policy: &Policy,
) -> Result<Option<String>, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let v: Value =
        serde_json::from_slice(bundle).map_err(|e| format!("the bundle is not JSON ({e})"))?;
    let env = v
        .get("dsseEnvelope")
        .ok_or("the bundle has no dsseEnvelope (message-signature bundles are not supported)")?;
    let body = b64
        .decode(
            env.get("payload")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
        .map_err(|e| format!("the bundle's payload is not base64 ({e})"))?;
    let payload_type = env
        .get("payloadType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let statement: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("the bundle's statement is not JSON ({e})"))?;
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
        return Err(format!(
            "the bundle's statement is for {}, not {digest}",
            if subjects.is_empty() {
                "no digest".to_string()
            } else {
                format!("sha256:{}", subjects.join(", sha256:"))
            }
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
        Some(c) => Some(
            b64.decode(c)
                .map_err(|e| format!("the bundle's certificate is not base64 ({e})"))?,
        ),
        None => None,
    };
    let msg = pae(payload_type, &body);
    let mut last = "the bundle has no signatures".to_string();
    for s in env
        .get("signatures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(MAX_SIGNATURES)
    {
        let sig = match decode_signature(s.get("sig").and_then(Value::as_str).unwrap_or_default()) {
            Ok(sig) => sig,
            Err(e) => {
                last = e;
                continue;
            }
        };
        match verify_message(&msg, &sig, cert.as_deref(), policy) {
            Ok(who) => return Ok(Some(who)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::reference::sha256_digest;

    fn data(rel: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/cosign")
            .join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn key(rel: &str) -> Policy {
        Policy {
            key: Some(load_key_pem(&data(rel)).unwrap()),
            ..Policy::default()
        }
    }

    fn keyless(identity: &str, issuer: &str) -> Policy {
        Policy {
            identity: Some(identity.into()),
            issuer: Some(issuer.into()),
            ..Policy::default()
        }
    }

    const KEYED_DIGEST: &str =
        "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b";
    const LAB_DIGEST: &str =
        "sha256:bcc94b61198df26d2e0de628be72a43f9c3270ce5e913d3616b21a9ba03d117d";
    const KEYLESS_DIGEST: &str =
        "sha256:5f481572d088dc4023afb35fced9530ced3d9b03bf7299c6f492163cb9f0452e";

    #[test]
    fn sigstore_rs_keyed_fixture_verifies_and_wrong_key_does_not() {
        let payload = data("sigstore-rs-0.15.0-keyed/payload.json");
        let sig = data("sigstore-rs-0.15.0-keyed/signature.b64");
        let ok = verify_simple_signing(
            payload.as_bytes(),
            &sig,
            None,
            KEYED_DIGEST,
            &key("sigstore-rs-0.15.0-keyed/cosign.pub"),
        );
        assert_eq!(ok.unwrap(), "key");
        let bad = verify_simple_signing(
            payload.as_bytes(),
            &sig,
            None,
            KEYED_DIGEST,
            &key("sigstore-rs-0.15.0-keyed/wrong-key.pub"),
        );
        assert!(bad
            .unwrap_err()
            .contains("does not verify with the given key"));
        // One byte more (a trailing newline) and the signature no longer covers it.
        let mut nl = payload.clone().into_bytes();
        nl.push(b'\n');
        assert!(verify_simple_signing(
            &nl,
            &sig,
            None,
            KEYED_DIGEST,
            &key("sigstore-rs-0.15.0-keyed/cosign.pub")
        )
        .is_err());
    }

    #[test]
    fn lab_signature_manifest_verifies_with_the_signer_key_only() {
        let manifest: Value =
            serde_json::from_str(&data("lab-generated-distribution-2.8.2/sig-manifest.json"))
                .unwrap();
        let payload = data("lab-generated-distribution-2.8.2/sig-payload.json");
        let layer = &manifest["layers"][0];
        assert_eq!(layer["mediaType"], SIMPLESIGNING);
        assert_eq!(
            layer["digest"].as_str().unwrap(),
            sha256_digest(payload.as_bytes())
        );
        let sig = layer["annotations"][SIGNATURE_ANNOTATION].as_str().unwrap();
        let image_manifest = data("lab-generated-distribution-2.8.2/image-manifest.json");
        assert_eq!(sha256_digest(image_manifest.as_bytes()), LAB_DIGEST);
        let good = key("lab-generated-distribution-2.8.2/test-signer.pub");
        assert_eq!(
            verify_simple_signing(payload.as_bytes(), sig, None, LAB_DIGEST, &good).unwrap(),
            "key"
        );
        let wrong = key("lab-generated-distribution-2.8.2/wrong-key.pub");
        assert!(verify_simple_signing(payload.as_bytes(), sig, None, LAB_DIGEST, &wrong).is_err());
    }

    #[test]
    fn payload_for_another_digest_is_refused_before_the_signature() {
        let payload = data("lab-generated-distribution-2.8.2/sig-payload.json");
        let manifest: Value =
            serde_json::from_str(&data("lab-generated-distribution-2.8.2/sig-manifest.json"))
                .unwrap();
        let sig = manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
            .unwrap();
        let other = format!("sha256:{}", "0".repeat(64));
        let err = verify_simple_signing(
            payload.as_bytes(),
            sig,
            None,
            &other,
            &key("lab-generated-distribution-2.8.2/test-signer.pub"),
        )
        .unwrap_err();
        assert!(
            err.contains(&format!("is for {LAB_DIGEST}, not {other}")),
            "{err}"
        );
    }

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
        .unwrap_err();
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
        .unwrap_err();
        assert!(err.contains("issuer is https://token.actions.githubusercontent.com, not https://accounts.google.com"), "{err}");
        let err = verify_bundle(
            bundle.as_bytes(),
            digest,
            &keyless("someone@example.com", issuer),
        )
        .unwrap_err();
        assert!(
            err.contains("identity is https://github.com/kubewarden"),
            "{err}"
        );
        let other = format!("sha256:{}", "1".repeat(64));
        let err = verify_bundle(bundle.as_bytes(), &other, &keyless(identity, issuer)).unwrap_err();
        assert!(err.contains("statement is for sha256:c811d58d"), "{err}");
        // A key that did not sign it.
        let err = verify_bundle(
            bundle.as_bytes(),
            digest,
            &key("sigstore-rs-0.15.0-keyed/cosign.pub"),
        )
        .unwrap_err();
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
    fn bad_inputs_say_what_is_wrong() {
        assert!(load_key_pem("not a key")
            .unwrap_err()
            .contains("P-256 public key"));
        assert!(decode_signature("!!!").unwrap_err().contains("not base64"));
        assert!(decode_signature("AAAA")
            .unwrap_err()
            .contains("not an ECDSA"));
        assert!(parse_certificate(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        .is_err());
        assert!(payload_digest(b"{}")
            .unwrap_err()
            .contains("docker-manifest-digest"));
        assert!(payload_digest(b"nope").unwrap_err().contains("not JSON"));
        let payload = data("sigstore-rs-0.15.0-keyed/payload.json");
        let sig = data("sigstore-rs-0.15.0-keyed/signature.b64");
        let err = verify_simple_signing(
            payload.as_bytes(),
            &sig,
            None,
            KEYED_DIGEST,
            &Policy::default(),
        )
        .unwrap_err();
        assert!(err.contains("nothing to verify against"));
        let err = verify_simple_signing(
            payload.as_bytes(),
            &sig,
            None,
            KEYED_DIGEST,
            &keyless("a@b.c", "https://x"),
        )
        .unwrap_err();
        assert!(err.contains("carries no certificate"));
    }

    fn sign(key_rel: &str, msg: &[u8]) -> String {
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::DecodePrivateKey;
        let sk = p256::ecdsa::SigningKey::from_pkcs8_pem(&data(key_rel)).unwrap();
        let sig: Signature = sk.sign(msg);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
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
        .unwrap_err();
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
        .unwrap_err();
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
        .unwrap_err();
        assert!(
            err.contains("issuer is https://accounts.google.com"),
            "{err}"
        );
    }

    #[test]
    fn dsse_pae_is_the_spec_encoding() {
        assert_eq!(pae("t", b"ab"), b"DSSEv1 1 t 2 ab".to_vec());
    }
}
