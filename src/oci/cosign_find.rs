//! Finding the signatures of an image digest in its repository: the
//! cosign tag `sha256-<hex>.sig`, else the Sigstore bundles among the
//! referrers (cosign v3), each verified with [`super::cosign`].

use serde_json::Value;

use super::client::Client;
use super::cosign::*;
use super::reference::validate_digest;

fn layers(manifest: &Value) -> impl Iterator<Item = &Value> {
    manifest
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Find and verify the signature of `digest` in `client`'s repository:
/// the cosign tag `sha256-<hex>.sig` first, else a Sigstore bundle among
/// the referrers (cosign v3). `Err` is a registry failure (status `error`).
pub async fn find_and_verify(
    client: &Client,
    digest: &str,
    policy: &Policy,
) -> Result<Verdict, String> {
    let hex = validate_digest(digest)?;
    let sig_tag = format!("sha256-{hex}.sig");
    if let Some(r) = client.get_manifest(&sig_tag, SIG_MANIFEST_ACCEPT).await? {
        return verify_sig_tag(client, &r.body, digest, &sig_tag, policy).await;
    }
    verify_bundles(client, digest, hex, &sig_tag, policy).await
}

/// The signatures of a cosign `.sig` manifest: the first valid one wins.
async fn verify_sig_tag(
    client: &Client,
    body: &[u8],
    digest: &str,
    sig_tag: &str,
    policy: &Policy,
) -> Result<Verdict, String> {
    let m: Value = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Verdict::new(
                Status::Invalid,
                format!("the manifest at tag {sig_tag} is not JSON ({e})"),
                0,
                "sig-tag",
            ))
        }
    };
    let sigs: Vec<&Value> = layers(&m)
        .filter(|l| l.get("mediaType").and_then(Value::as_str) == Some(SIMPLESIGNING))
        .take(MAX_SIGNATURES)
        .collect();
    if sigs.is_empty() {
        return Ok(Verdict::new(
            Status::Invalid,
            format!("the manifest at tag {sig_tag} has no simple-signing layers"),
            0,
            "sig-tag",
        ));
    }
    let mut reasons = Vec::new();
    for layer in &sigs {
        let Some(layer_digest) = layer.get("digest").and_then(Value::as_str) else {
            reasons.push("a signature layer has no digest".to_string());
            continue;
        };
        let ann = |k: &str| {
            layer
                .pointer(&format!("/annotations/{}", k.replace('/', "~1")))
                .and_then(Value::as_str)
        };
        let Some(sig) = ann(SIGNATURE_ANNOTATION) else {
            reasons.push(format!(
                "layer {layer_digest} has no {SIGNATURE_ANNOTATION} annotation"
            ));
            continue;
        };
        if let Some(size) = layer.get("size").and_then(Value::as_u64) {
            if size as usize > BLOB_LIMIT {
                reasons.push(format!("layer {layer_digest} is {size} bytes, over the {BLOB_LIMIT}-byte bound for a payload"));
                continue;
            }
        }
        // A missing or tampered payload makes this signature invalid,
        // not the whole check an error: the others are still tried.
        let payload = match client.fetch_blob(layer_digest, BLOB_LIMIT).await? {
            Ok(p) => p,
            Err(e) => {
                reasons.push(e);
                continue;
            }
        };
        match verify_simple_signing(&payload, sig, ann(CERTIFICATE_ANNOTATION), digest, policy) {
            Ok(who) => {
                let mut v =
                    Verdict::new(Status::Verified, reasons.join("; "), sigs.len(), "sig-tag");
                v.signer = Some(who);
                return Ok(v);
            }
            Err(e) => reasons.push(e),
        }
    }
    Ok(Verdict::new(
        Status::Invalid,
        reasons.join("; "),
        sigs.len(),
        "sig-tag",
    ))
}

/// cosign v3: the Sigstore bundles referring to the image (through the
/// referrers API, or its fallback tag).
async fn verify_bundles(
    client: &Client,
    digest: &str,
    hex: &str,
    sig_tag: &str,
    policy: &Policy,
) -> Result<Verdict, String> {
    let (index, source) = match client.referrers(digest).await? {
        Some(r) => (r, "referrers"),
        None => match client
            .get_manifest(&format!("sha256-{hex}"), INDEX_ACCEPT)
            .await?
        {
            Some(r) => (r, "referrers-tag"),
            None => {
                return Ok(Verdict::new(
                    Status::Unsigned,
                    format!(
                        "no signature: no tag {sig_tag} and no Sigstore bundle refers to {digest}"
                    ),
                    0,
                    "none",
                ))
            }
        },
    };
    let index: Value = match serde_json::from_slice(&index.body) {
        Ok(v) => v,
        Err(e) => {
            return Ok(Verdict::new(
                Status::Invalid,
                format!("the index of signatures for {digest} is not JSON ({e})"),
                0,
                source,
            ))
        }
    };
    let bundles: Vec<&str> = index
        .get("manifests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|d| {
            d.get("artifactType")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with(BUNDLE_TYPE))
        })
        .filter_map(|d| d.get("digest").and_then(Value::as_str))
        .take(MAX_SIGNATURES)
        .collect();
    let mut reasons = Vec::new();
    let mut signatures = 0;
    for manifest_digest in bundles {
        if let Err(e) = validate_digest(manifest_digest) {
            signatures += 1;
            reasons.push(e);
            continue;
        }
        let Some(r) = client
            .get_manifest(manifest_digest, SIG_MANIFEST_ACCEPT)
            .await?
        else {
            signatures += 1;
            reasons.push(format!("the bundle manifest {manifest_digest} is missing"));
            continue;
        };
        let Ok(m) = serde_json::from_slice::<Value>(&r.body) else {
            signatures += 1;
            reasons.push(format!("the bundle manifest {manifest_digest} is not JSON"));
            continue;
        };
        let Some(layer_digest) = layers(&m)
            .find(|l| {
                l.get("mediaType")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.starts_with(BUNDLE_TYPE))
            })
            .and_then(|l| l.get("digest").and_then(Value::as_str))
        else {
            continue;
        };
        let blob = match client.fetch_blob(layer_digest, BLOB_LIMIT).await? {
            Ok(b) => b,
            Err(e) => {
                signatures += 1;
                reasons.push(e);
                continue;
            }
        };
        match verify_bundle(&blob, digest, policy) {
            Ok(None) => {}
            Ok(Some(who)) => {
                let mut v =
                    Verdict::new(Status::Verified, reasons.join("; "), signatures + 1, source);
                v.signer = Some(who);
                return Ok(v);
            }
            Err(e) => {
                signatures += 1;
                reasons.push(e);
            }
        }
    }
    if signatures == 0 {
        return Ok(Verdict::new(
            Status::Unsigned,
            format!("no signature: no tag {sig_tag}, and no cosign signature bundle among the referrers of {digest}"),
            0,
            source,
        ));
    }
    Ok(Verdict::new(
        Status::Invalid,
        reasons.join("; "),
        signatures,
        source,
    ))
}
