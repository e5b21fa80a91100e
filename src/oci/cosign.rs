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
//! Keyless checking (see README, "What `verified` means") takes the
//! signature through five steps, each named in an `invalid` verdict:
//! `digest` (the payload names the image), `signature` (it verifies with
//! the certificate's key), `chain` (the certificate is for code signing,
//! chains to a Fulcio CA of the trust root, which was valid when the log
//! saw the signature, and carries an SCT from a CT log of the trust root),
//! `log` (a Rekor entry signed by a log key of the trust
//! root records this signature, certificate and payload, at a time inside
//! the certificate's validity) and `identity` (SAN, OIDC issuer, GitHub
//! claims).

use std::sync::Arc;

use base64::Engine as _;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::Value;

use super::cosign_cert::{check_identity, parse_certificate, Identity};
use super::sigstore::{chain, rekor, sct, TrustRoot};
use crate::error::PrimError;

/// Media type of a simple-signing payload layer.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Annotation holding the PEM certificate (keyless).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Annotation holding the Rekor entry (keyless): SET and payload, JSON.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
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
    /// Could not tell (registry, key file, trust root, options).
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

/// The check a signature failed, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// The payload does not name the image digest (or does not parse).
    Digest,
    /// The signature does not verify with the key or certificate.
    Signature,
    /// The certificate does not chain to a Fulcio CA valid at signing time,
    /// or no CT log of the trust root vouches for it (embedded SCTs).
    Chain,
    /// No valid transparency-log entry for this signature.
    Log,
    /// The certificate shows another identity.
    Identity,
}

impl Step {
    /// As the script sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Digest => "digest",
            Step::Signature => "signature",
            Step::Chain => "chain",
            Step::Log => "log",
            Step::Identity => "identity",
        }
    }
}

/// Why one signature was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The step that failed.
    pub step: Step,
    /// What was wrong.
    pub msg: String,
}

impl Rejection {
    /// A refusal at `step`.
    pub fn new(step: Step, msg: impl Into<String>) -> Rejection {
        Rejection {
            step,
            msg: msg.into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step.as_str(), self.msg)
    }
}

/// What a keyless signature must satisfy.
#[derive(Clone, Debug)]
pub struct Keyless {
    /// Who must have signed.
    pub identity: Identity,
    /// The CAs and logs to trust.
    pub trust: Arc<TrustRoot>,
}

/// What a signature must satisfy.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// The public key (`opts.key`).
    pub key: Option<VerifyingKey>,
    /// Keyless: identity and trust root (`opts.identity`, `issuer`, …).
    pub keyless: Option<Keyless>,
}

/// A verification's result.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The status.
    pub status: Status,
    /// Why (empty when verified by the only signature there).
    pub reason: String,
    /// The step that failed, for `invalid`.
    pub step: Option<Step>,
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
            step: None,
            signatures,
            source,
            signer: None,
        }
    }

    /// `invalid`, from the refusals of every signature examined: the step is
    /// the furthest any signature reached (the most telling one).
    pub fn invalid(rejections: &[Rejection], signatures: usize, source: &'static str) -> Verdict {
        let mut v = Verdict::new(Status::Invalid, join(rejections), signatures, source);
        v.step = rejections.iter().map(|r| r.step).max();
        v
    }
}

/// The reasons of several refusals, `; `-separated.
pub fn join(rejections: &[Rejection]) -> String {
    rejections
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Read a PEM public key (SPKI, `-----BEGIN PUBLIC KEY-----`), P-256 only.
/// The key is the caller's: a bad one is a usage error.
pub fn load_key_pem(pem: &str) -> Result<VerifyingKey, PrimError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
        PrimError::usage(format!("not an ECDSA P-256 public key in PEM (-----BEGIN PUBLIC KEY-----) form ({e}); cosign keys made by `cosign generate-key-pair` are"))
    })
}

/// A signature's bytes from base64 (DER, or raw r‖s).
pub fn signature_bytes(b64: &str) -> Result<Vec<u8>, Rejection> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| {
            Rejection::new(
                Step::Signature,
                format!("the signature is not base64 ({e})"),
            )
        })
}

/// A P-256 signature from base64: DER (what cosign writes) or raw r‖s.
pub fn decode_signature(b64: &str) -> Result<Signature, Rejection> {
    let bytes = signature_bytes(b64)?;
    Signature::from_der(&bytes)
        .or_else(|_| Signature::from_slice(&bytes))
        .map_err(|_| {
            Rejection::new(
                Step::Signature,
                "the signature is not an ECDSA P-256 signature (DER or raw)",
            )
        })
}

/// What comes with a signature to prove who made it and when.
#[derive(Clone, Debug, Default)]
pub struct Evidence<'a> {
    /// The signing certificate (PEM or DER).
    pub cert: Option<&'a [u8]>,
    /// The transparency-log entry, or why it could not be read.
    pub log: Option<Result<rekor::Entry, String>>,
    /// The bytes the log entry hashes: the simple-signing payload, or the
    /// DSSE envelope's payload.
    pub logged: &'a [u8],
}

/// Verify a signature (`sig`, raw bytes) over `msg` under the policy: with
/// the key, and/or keyless with the certificate, its chain, its log entry
/// and its identity. Returns who signed.
pub(crate) fn verify_message(
    msg: &[u8],
    sig: &[u8],
    ev: &Evidence,
    policy: &Policy,
) -> Result<String, Rejection> {
    let mut signer = None;
    if let Some(key) = &policy.key {
        let ok = Signature::from_der(sig)
            .or_else(|_| Signature::from_slice(sig))
            .is_ok_and(|s| key.verify(msg, &s).is_ok());
        if !ok {
            return Err(Rejection::new(
                Step::Signature,
                "the signature does not verify with the given key",
            ));
        }
        signer = Some("key".to_string());
    }
    if let Some(keyless) = &policy.keyless {
        signer = Some(verify_keyless(msg, sig, ev, keyless)?);
    }
    signer.ok_or_else(|| {
        Rejection::new(
            Step::Signature,
            "nothing to verify against: give `key`, or `identity` and `issuer`",
        )
    })
}

/// The keyless steps, in order: signature, chain, log, the chain's
/// validity at the log's time and the certificate's SCTs (both `chain`),
/// identity.
fn verify_keyless(
    msg: &[u8],
    sig: &[u8],
    ev: &Evidence,
    kl: &Keyless,
) -> Result<String, Rejection> {
    let chain_err = |m: String| Rejection::new(Step::Chain, m);
    let log_err = |m: String| Rejection::new(Step::Log, m);
    let cert = ev.cert.ok_or_else(|| {
        chain_err("the signature carries no certificate, so its identity cannot be checked".into())
    })?;
    let info = parse_certificate(cert).map_err(|e| chain_err(e.msg))?;
    if !info.key.verify(info.key.default_hash(), msg, sig) {
        return Err(Rejection::new(
            Step::Signature,
            "the signature does not verify with its certificate's key",
        ));
    }
    let ca = chain::verify_path(&info.cert, &kl.trust).map_err(chain_err)?;
    let entry = ev
        .log
        .clone()
        .ok_or_else(|| log_err(format!("the signature has no transparency-log entry (no {BUNDLE_ANNOTATION} annotation or bundle tlogEntries), so nothing proves when it was made")))?
        .map_err(log_err)?;
    let signed = rekor::Signed {
        payload: ev.logged,
        signature: sig,
        cert_der: &info.der,
    };
    rekor::verify(&entry, &kl.trust, &signed).map_err(log_err)?;
    let t = entry.integrated_time;
    let validity = chain::validity(&info.cert);
    if !validity.contains(t) {
        return Err(log_err(format!(
            "the log saw the signature at {}, outside the certificate's validity ({validity})",
            super::sigstore::time::show(t)
        )));
    }
    chain::valid_at(ca, t).map_err(chain_err)?;
    // The CA issued the leaf, so its first certificate is the SCT's issuer.
    if let Some(issuer) = ca.chain.first() {
        sct::verify(&info.cert, issuer, &kl.trust).map_err(chain_err)?;
    }
    check_identity(&info, &kl.identity).map_err(|m| Rejection::new(Step::Identity, m))
}

/// The digest a simple-signing payload signs.
pub fn payload_digest(payload: &[u8]) -> Result<String, Rejection> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| {
        Rejection::new(
            Step::Digest,
            format!("the signed payload is not JSON ({e})"),
        )
    })?;
    v.pointer("/critical/image/docker-manifest-digest")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| {
            Rejection::new(
                Step::Digest,
                "the signed payload has no critical.image.docker-manifest-digest",
            )
        })
}

/// Verify one simple-signing signature: the payload names `digest`, and the
/// signature over the exact payload bytes verifies under the policy (with
/// the certificate and the Rekor bundle annotation, for keyless).
pub fn verify_simple_signing(
    payload: &[u8],
    signature_b64: &str,
    cert_pem: Option<&str>,
    rekor_bundle: Option<&str>,
    digest: &str,
    policy: &Policy,
) -> Result<String, Rejection> {
    let signed = payload_digest(payload)?;
    if signed != digest {
        return Err(Rejection::new(
            Step::Digest,
            format!("the signed payload is for {signed}, not {digest}"),
        ));
    }
    let sig = signature_bytes(signature_b64)?;
    let ev = Evidence {
        cert: cert_pem.map(str::as_bytes),
        log: rekor_bundle.map(rekor::from_cosign_bundle),
        logged: payload,
    };
    verify_message(payload, &sig, &ev, policy)
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
        keyless_under(
            identity,
            issuer,
            crate::oci::sigstore::trust_root::embedded().unwrap(),
        )
    }

    pub fn keyless_under(
        identity: &str,
        issuer: &str,
        trust: std::sync::Arc<crate::oci::sigstore::TrustRoot>,
    ) -> Policy {
        use crate::oci::cosign_cert::{Identity, San};
        Policy {
            keyless: Some(Keyless {
                identity: Identity::new(San::Exact(identity.into()), issuer.into()),
                trust,
            }),
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
            None,
            KEYED_DIGEST,
            &key("sigstore-rs-0.15.0-keyed/cosign.pub"),
        );
        assert_eq!(ok.unwrap(), "key");
        let bad = verify_simple_signing(
            payload.as_bytes(),
            &sig,
            None,
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
            verify_simple_signing(payload.as_bytes(), sig, None, None, LAB_DIGEST, &good).unwrap(),
            "key"
        );
        let wrong = key("lab-generated-distribution-2.8.2/wrong-key.pub");
        assert!(
            verify_simple_signing(payload.as_bytes(), sig, None, None, LAB_DIGEST, &wrong).is_err()
        );
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
            None,
            KEYED_DIGEST,
            &keyless("a@b.c", "https://x"),
        )
        .unwrap_err()
        .msg;
        assert!(err.contains("carries no certificate"));
    }
}
