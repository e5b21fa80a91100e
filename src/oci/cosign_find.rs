//! Finding the signatures of an image digest in its repository: the
//! cosign tag `sha256-<hex>.sig`, else the Sigstore bundles among the
//! referrers (cosign v3), each verified with [`super::cosign`] and
//! [`super::cosign_bundle`]. A registry failure is an `Err`; a signature
//! that is missing, tampered with or wrong is a reason in the [`Verdict`].

use serde_json::Value;

use super::client::{Client, Resp};
use super::cosign::{
    verify_simple_signing, Policy, Rejection, Status, Step, Verdict, BLOB_LIMIT, BUNDLE_ANNOTATION,
    BUNDLE_TYPE, CERTIFICATE_ANNOTATION, INDEX_ACCEPT, MAX_SIGNATURES, SIGNATURE_ANNOTATION,
    SIG_MANIFEST_ACCEPT, SIMPLESIGNING,
};
use super::cosign_bundle::verify_bundle;
use super::reference::validate_digest;
use crate::error::PrimError;

/// What one candidate signature turned out to be.
enum Found {
    /// Not a signature at all (an attestation, a manifest without a
    /// bundle): not counted.
    Other,
    /// A signature that does not verify, and why.
    Bad(Rejection),
    /// A signature that verifies, and who signed.
    Signed(String),
}

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
) -> Result<Verdict, PrimError> {
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
) -> Result<Verdict, PrimError> {
    let invalid = |reason: String, n| {
        Verdict::invalid(&[Rejection::new(Step::Signature, reason)], n, "sig-tag")
    };
    let m: Value = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => {
            return Ok(invalid(
                format!("the manifest at tag {sig_tag} is not JSON ({e})"),
                0,
            ))
        }
    };
    let sigs: Vec<&Value> = layers(&m)
        .filter(|l| l.get("mediaType").and_then(Value::as_str) == Some(SIMPLESIGNING))
        .take(MAX_SIGNATURES)
        .collect();
    if sigs.is_empty() {
        return Ok(invalid(
            format!("the manifest at tag {sig_tag} has no simple-signing layers"),
            0,
        ));
    }
    let mut reasons = Vec::new();
    for layer in &sigs {
        match check_layer(client, layer, digest, policy).await? {
            Found::Signed(who) => {
                let mut v = Verdict::new(
                    Status::Verified,
                    super::cosign::join(&reasons),
                    sigs.len(),
                    "sig-tag",
                );
                v.signer = Some(who);
                return Ok(v);
            }
            Found::Bad(why) => reasons.push(why),
            Found::Other => {}
        }
    }
    Ok(Verdict::invalid(&reasons, sigs.len(), "sig-tag"))
}

/// One simple-signing layer: its annotation, its payload (fetched and
/// hash-checked), the signature over it.
async fn check_layer(
    client: &Client,
    layer: &Value,
    digest: &str,
    policy: &Policy,
) -> Result<Found, PrimError> {
    let bad = |m: String| Ok(Found::Bad(Rejection::new(Step::Signature, m)));
    let Some(layer_digest) = layer.get("digest").and_then(Value::as_str) else {
        return bad("a signature layer has no digest".into());
    };
    let ann = |k: &str| {
        layer
            .pointer(&format!("/annotations/{}", k.replace('/', "~1")))
            .and_then(Value::as_str)
    };
    let Some(sig) = ann(SIGNATURE_ANNOTATION) else {
        return bad(format!(
            "layer {layer_digest} has no {SIGNATURE_ANNOTATION} annotation"
        ));
    };
    if let Some(size) = layer.get("size").and_then(Value::as_u64) {
        if size as usize > BLOB_LIMIT {
            return bad(format!(
                "layer {layer_digest} is {size} bytes, over the {BLOB_LIMIT}-byte bound for a payload"
            ));
        }
    }
    // A missing or tampered payload makes this signature invalid, not the
    // whole check an error: the others are still tried.
    let payload = match client.fetch_blob(layer_digest, BLOB_LIMIT).await? {
        Ok(p) => p,
        Err(e) => return Ok(Found::Bad(Rejection::new(Step::Digest, e.msg))),
    };
    Ok(
        match verify_simple_signing(
            &payload,
            sig,
            ann(CERTIFICATE_ANNOTATION),
            ann(BUNDLE_ANNOTATION),
            digest,
            policy,
        ) {
            Ok(who) => Found::Signed(who),
            Err(e) => Found::Bad(e),
        },
    )
}

/// cosign v3: the Sigstore bundles referring to the image (through the
/// referrers API, or its fallback tag).
async fn verify_bundles(
    client: &Client,
    digest: &str,
    hex: &str,
    sig_tag: &str,
    policy: &Policy,
) -> Result<Verdict, PrimError> {
    let Some((index, source)) = referrers_index(client, digest, hex).await? else {
        return Ok(Verdict::new(
            Status::Unsigned,
            format!("no signature: no tag {sig_tag} and no Sigstore bundle refers to {digest}"),
            0,
            "none",
        ));
    };
    let index: Value = match serde_json::from_slice(&index.body) {
        Ok(v) => v,
        Err(e) => {
            return Ok(Verdict::invalid(
                &[Rejection::new(
                    Step::Signature,
                    format!("the index of signatures for {digest} is not JSON ({e})"),
                )],
                0,
                source,
            ))
        }
    };
    let mut reasons = Vec::new();
    let mut signatures = 0;
    for manifest_digest in bundle_digests(&index) {
        match check_bundle(client, manifest_digest, digest, policy).await? {
            Found::Other => {}
            Found::Bad(why) => {
                signatures += 1;
                reasons.push(why);
            }
            Found::Signed(who) => {
                let mut v = Verdict::new(
                    Status::Verified,
                    super::cosign::join(&reasons),
                    signatures + 1,
                    source,
                );
                v.signer = Some(who);
                return Ok(v);
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
    Ok(Verdict::invalid(&reasons, signatures, source))
}

/// The index of what refers to `digest`, and where it came from: the
/// referrers API, else the fallback tag `sha256-<hex>`; `None` if neither.
async fn referrers_index(
    client: &Client,
    digest: &str,
    hex: &str,
) -> Result<Option<(Resp, &'static str)>, PrimError> {
    if let Some(r) = client.referrers(digest).await? {
        return Ok(Some((r, "referrers")));
    }
    let tag = format!("sha256-{hex}");
    Ok(client
        .get_manifest(&tag, INDEX_ACCEPT)
        .await?
        .map(|r| (r, "referrers-tag")))
}

/// The manifests of an index whose artifact type is a Sigstore bundle.
fn bundle_digests(index: &Value) -> Vec<&str> {
    index
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
        .collect()
}

/// One bundle artifact: its manifest, its bundle layer (fetched and
/// hash-checked), the bundle verified.
async fn check_bundle(
    client: &Client,
    manifest_digest: &str,
    digest: &str,
    policy: &Policy,
) -> Result<Found, PrimError> {
    let bad = |m: String| Ok(Found::Bad(Rejection::new(Step::Signature, m)));
    if let Err(e) = validate_digest(manifest_digest) {
        return bad(e.msg);
    }
    let Some(r) = client
        .get_manifest(manifest_digest, SIG_MANIFEST_ACCEPT)
        .await?
    else {
        return bad(format!("the bundle manifest {manifest_digest} is missing"));
    };
    let Ok(m) = serde_json::from_slice::<Value>(&r.body) else {
        return bad(format!("the bundle manifest {manifest_digest} is not JSON"));
    };
    let Some(layer_digest) = layers(&m)
        .find(|l| {
            l.get("mediaType")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with(BUNDLE_TYPE))
        })
        .and_then(|l| l.get("digest").and_then(Value::as_str))
    else {
        return Ok(Found::Other);
    };
    let blob = match client.fetch_blob(layer_digest, BLOB_LIMIT).await? {
        Ok(b) => b,
        Err(e) => return Ok(Found::Bad(Rejection::new(Step::Digest, e.msg))),
    };
    Ok(match verify_bundle(&blob, digest, policy) {
        Ok(None) => Found::Other,
        Ok(Some(who)) => Found::Signed(who),
        Err(e) => Found::Bad(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bundle_artifacts_are_candidates_and_at_most_sixteen() {
        let mut manifests = vec![
            serde_json::json!({"artifactType": "application/spdx+json", "digest": "sha256:aa"}),
            serde_json::json!({"digest": "sha256:bb"}),
        ];
        for i in 0..20 {
            manifests.push(serde_json::json!({
                "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "digest": format!("sha256:{i}"),
            }));
        }
        let index = serde_json::json!({ "manifests": manifests });
        let found = bundle_digests(&index);
        assert_eq!(found.len(), MAX_SIGNATURES);
        assert_eq!(found[0], "sha256:0");
        assert!(bundle_digests(&serde_json::json!({})).is_empty());
        assert!(bundle_digests(&serde_json::json!({"manifests": "no"})).is_empty());
    }

    #[test]
    fn signature_layers_are_read_from_the_manifest() {
        let m = serde_json::json!({"layers": [{"mediaType": SIMPLESIGNING}, {"mediaType": "x"}]});
        assert_eq!(layers(&m).count(), 2);
        assert_eq!(layers(&serde_json::json!({"layers": 3})).count(), 0);
    }
}
