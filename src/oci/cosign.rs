//! Cosign signatures without Rhai: keys, simple-signing payloads and the
//! [`Policy`] they are verified under; certificates are in
//! [`super::cosign_cert`], Sigstore bundles in [`super::cosign_bundle`],
//! finding them in a registry in [`super::cosign_find`].
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

use super::cosign_cert::{check_identity, parse_certificate};
use crate::error::PrimError;

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
/// The key is the caller's: a bad one is a usage error.
pub fn load_key_pem(pem: &str) -> Result<VerifyingKey, PrimError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
        PrimError::usage(format!("not an ECDSA P-256 public key in PEM (-----BEGIN PUBLIC KEY-----) form ({e}); cosign keys made by `cosign generate-key-pair` are"))
    })
}

/// A signature from base64: DER (what cosign writes) or raw r‖s.
pub fn decode_signature(b64: &str) -> Result<Signature, PrimError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("the signature is not base64 ({e})"))?;
    Signature::from_der(&bytes)
        .or_else(|_| Signature::from_slice(&bytes))
        .map_err(|_| PrimError::fatal("the signature is not an ECDSA P-256 signature (DER or raw)"))
}

/// Verify a signature over `msg` under the policy: with the key, and/or with
/// the certificate (identity + issuer). Returns who signed.
pub(crate) fn verify_message(
    msg: &[u8],
    sig: &Signature,
    cert: Option<&[u8]>,
    policy: &Policy,
) -> Result<String, PrimError> {
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
        PrimError::usage("nothing to verify against: give `key`, or `identity` and `issuer`")
    })
}

/// The digest a simple-signing payload signs.
pub fn payload_digest(payload: &[u8]) -> Result<String, PrimError> {
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("the signed payload is not JSON ({e})"))?;
    v.pointer("/critical/image/docker-manifest-digest")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| {
            PrimError::fatal("the signed payload has no critical.image.docker-manifest-digest")
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
) -> Result<String, PrimError> {
    let signed = payload_digest(payload)?;
    if signed != digest {
        return Err(PrimError::fatal(format!(
            "the signed payload is for {signed}, not {digest}"
        )));
    }
    let sig = decode_signature(signature_b64)?;
    verify_message(payload, &sig, cert_pem.map(str::as_bytes), policy)
}

#[cfg(test)]
pub(super) mod fixtures {
    //! The published and generated signatures under tests/data/cosign.
    use super::*;

    pub fn data(rel: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/cosign")
            .join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    pub fn key(rel: &str) -> Policy {
        Policy {
            key: Some(load_key_pem(&data(rel)).unwrap()),
            ..Policy::default()
        }
    }

    pub fn keyless(identity: &str, issuer: &str) -> Policy {
        Policy {
            identity: Some(identity.into()),
            issuer: Some(issuer.into()),
            ..Policy::default()
        }
    }

    pub fn sign(key_rel: &str, msg: &[u8]) -> String {
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::DecodePrivateKey;
        let sk = p256::ecdsa::SigningKey::from_pkcs8_pem(&data(key_rel)).unwrap();
        let sig: Signature = sk.sign(msg);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::oci::reference::sha256_digest;

    const KEYED_DIGEST: &str =
        "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b";
    const LAB_DIGEST: &str =
        "sha256:bcc94b61198df26d2e0de628be72a43f9c3270ce5e913d3616b21a9ba03d117d";

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
            .msg
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
        .unwrap_err()
        .msg;
        assert!(
            err.contains(&format!("is for {LAB_DIGEST}, not {other}")),
            "{err}"
        );
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        assert!(load_key_pem("not a key")
            .unwrap_err()
            .msg
            .contains("P-256 public key"));
        assert!(decode_signature("!!!")
            .unwrap_err()
            .msg
            .contains("not base64"));
        assert!(decode_signature("AAAA")
            .unwrap_err()
            .msg
            .contains("not an ECDSA"));
        assert!(parse_certificate(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        .is_err());
        assert!(payload_digest(b"{}")
            .unwrap_err()
            .msg
            .contains("docker-manifest-digest"));
        assert!(payload_digest(b"nope")
            .unwrap_err()
            .msg
            .contains("not JSON"));
        let payload = data("sigstore-rs-0.15.0-keyed/payload.json");
        let sig = data("sigstore-rs-0.15.0-keyed/signature.b64");
        let err = verify_simple_signing(
            payload.as_bytes(),
            &sig,
            None,
            KEYED_DIGEST,
            &Policy::default(),
        )
        .unwrap_err()
        .msg;
        assert!(err.contains("nothing to verify against"));
        let err = verify_simple_signing(
            payload.as_bytes(),
            &sig,
            None,
            KEYED_DIGEST,
            &keyless("a@b.c", "https://x"),
        )
        .unwrap_err()
        .msg;
        assert!(err.contains("carries no certificate"));
    }
}
