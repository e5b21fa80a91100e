//! Signing images in a registry the way cosign does: the classic
//! `sha256-<hex>.sig` tag, and v3 Sigstore bundles found through the
//! referrers tag schema; and the P-256 keys to sign with.

use std::path::Path;

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;

use super::issuer::b64;
use super::registry::{digest, Registry};

impl Registry {
    /// Sign `image_digest` in cosign's exact layout: the simple-signing
    /// payload (for `payload_digest`, normally the same digest) as a blob,
    /// `{}` as config, and a manifest at tag `sha256-<hex>.sig` whose layer
    /// carries the signature (and the certificate, when given).
    pub fn cosign_sign(
        &self,
        repo: &str,
        image_digest: &str,
        payload_digest: &str,
        key: &SigningKey,
        cert_pem: Option<&str>,
    ) {
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{}/{repo}"}},"image":{{"docker-manifest-digest":"{payload_digest}"}},"type":"cosign container image signature"}},"optional":null}}"#,
            self.host()
        );
        let sig: Signature = key.sign(payload.as_bytes());
        let sig_b64 = b64(sig.to_der().as_bytes());
        let payload_d = self.push_blob(repo, payload.as_bytes());
        let config_d = self.push_blob(repo, b"{}");
        let mut annotations = serde_json::json!({"dev.cosignproject.cosign/signature": sig_b64});
        if let Some(c) = cert_pem {
            annotations["dev.sigstore.cosign/certificate"] = c.into();
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": 2},
            "layers": [{
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": payload_d, "size": payload.len(), "annotations": annotations
            }]
        })
        .to_string()
        .into_bytes();
        let hex = image_digest.trim_start_matches("sha256:");
        self.push_manifest(
            repo,
            &format!("sha256-{hex}.sig"),
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        );
    }
    /// Push a cosign `.sig` manifest for `image_digest` holding one
    /// simple-signing layer exactly as given: payload bytes, base64
    /// signature, and the keyless certificate and Rekor bundle annotations.
    pub fn cosign_push_signature(
        &self,
        repo: &str,
        image_digest: &str,
        payload: &[u8],
        sig_b64: &str,
        cert_pem: &str,
        rekor_bundle: Option<&str>,
    ) {
        let payload_d = self.push_blob(repo, payload);
        let config_d = self.push_blob(repo, b"{}");
        let mut annotations = serde_json::json!({
            "dev.cosignproject.cosign/signature": sig_b64,
            "dev.sigstore.cosign/certificate": cert_pem,
        });
        if let Some(b) = rekor_bundle {
            annotations["dev.sigstore.cosign/bundle"] = b.into();
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": 2},
            "layers": [{
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": payload_d, "size": payload.len(), "annotations": annotations
            }]
        })
        .to_string()
        .into_bytes();
        let hex = image_digest.trim_start_matches("sha256:");
        self.push_manifest(
            repo,
            &format!("sha256-{hex}.sig"),
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        );
    }

    /// Sign `image_digest` the cosign v3 way: a Sigstore bundle v0.3 (DSSE
    /// envelope around an in-toto statement for `statement_digest`) stored
    /// as an OCI artifact that refers to the image, listed in the index at
    /// tag `sha256-<hex>` (the referrers tag schema, for registries without
    /// the referrers API, like distribution 2.8).
    pub fn cosign_v3_sign(
        &self,
        repo: &str,
        image_digest: &str,
        statement_digest: &str,
        key: &SigningKey,
    ) {
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": format!("{}/{repo}", self.host()),
                         "digest": {"sha256": statement_digest.trim_start_matches("sha256:")}}],
            "predicateType": "https://sigstore.dev/cosign/sign/v1",
            "predicate": {}
        })
        .to_string();
        let payload_type = "application/vnd.in-toto+json";
        let pae = format!(
            "DSSEv1 {} {payload_type} {} {statement}",
            payload_type.len(),
            statement.len()
        );
        let sig: Signature = key.sign(pae.as_bytes());
        let bundle = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "runbook-test"}},
            "dsseEnvelope": {
                "payload": b64(statement.as_bytes()),
                "payloadType": payload_type,
                "signatures": [{"sig": b64(sig.to_der().as_bytes())}]
            }
        })
        .to_string()
        .into_bytes();
        self.cosign_v3_push_bundle(repo, image_digest, &bundle);
    }

    /// Store a Sigstore bundle v0.3 (bytes as given) as an OCI artifact
    /// referring to `image_digest`, listed in the index at tag
    /// `sha256-<hex>` (the referrers tag schema, for registries without
    /// the referrers API, like distribution 2.8).
    pub fn cosign_v3_push_bundle(&self, repo: &str, image_digest: &str, bundle: &[u8]) {
        let bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json";
        let bundle_d = self.push_blob(repo, bundle);
        let empty_d = self.push_blob(repo, b"{}");
        let artifact = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": bundle_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_d, "size": 2},
            "layers": [{"mediaType": bundle_type, "digest": bundle_d, "size": bundle.len()}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image_digest, "size": 1}
        })
        .to_string()
        .into_bytes();
        let artifact_d = digest(&artifact);
        self.push_manifest(
            repo,
            &artifact_d,
            "application/vnd.oci.image.manifest.v1+json",
            &artifact,
        );
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": artifact_d, "size": artifact.len(), "artifactType": bundle_type
            }]
        })
        .to_string()
        .into_bytes();
        let hex = image_digest.trim_start_matches("sha256:");
        self.push_manifest(
            repo,
            &format!("sha256-{hex}"),
            "application/vnd.oci.image.index.v1+json",
            &index,
        );
    }
}

/// A fresh P-256 signing key and its PEM public key.
pub fn new_key() -> (SigningKey, String) {
    use p256::pkcs8::EncodePublicKey;
    for _ in 0..16 {
        let bytes: [u8; 32] = rand::random();
        if let Ok(k) = SigningKey::from_bytes(&bytes.into()) {
            let pem = k
                .verifying_key()
                .to_public_key_pem(p256::pkcs8::LineEnding::LF)
                .unwrap();
            return (k, pem);
        }
    }
    panic!("no valid P-256 key in 16 draws");
}

/// A signing key from a PKCS#8 PEM file.
pub fn key_from(path: &Path) -> SigningKey {
    SigningKey::from_pkcs8_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}
