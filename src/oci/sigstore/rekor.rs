//! Rekor log entries: parsed from cosign's `dev.sigstore.cosign/bundle`
//! annotation or a Sigstore bundle's `tlogEntries`, and verified: the
//! signed entry timestamp (SET, the log's promise of inclusion) by a log
//! key of the trust root, the inclusion proof and its checkpoint when the
//! bundle has one, and the entry's body against the signature, the
//! certificate and the signed payload.

use base64::Engine as _;
use serde_json::Value;
use sha2::Digest;
use x509_cert::der::{DecodePem, Encode};

use super::keys::{hex, sha256_hex, unhex, Hash, PublicKey};
use super::time;
use super::trust_root::{LogKey, TrustRoot};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Most hashes an inclusion proof may hold (a tree of 2^64 leaves has 64).
const MAX_PROOF: usize = 64;

/// One log entry, as the signature carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The body, base64 (exactly as logged: the SET covers this text).
    pub body_b64: String,
    /// When the log integrated it (Unix seconds).
    pub integrated_time: i64,
    /// Its index in the log.
    pub log_index: i64,
    /// The log's id (SHA-256 of its key), hex.
    pub log_id: String,
    /// The signed entry timestamp (DER ECDSA), if given.
    pub set: Option<Vec<u8>>,
    /// The inclusion proof, if given.
    pub proof: Option<Proof>,
}

/// A Merkle inclusion proof and the checkpoint that signs its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The leaf's index in the tree (Rekor's shard, not the global index).
    pub index: u64,
    /// The tree's size.
    pub tree_size: u64,
    /// Its root hash.
    pub root: Vec<u8>,
    /// The audit path, leaf to root.
    pub hashes: Vec<Vec<u8>>,
    /// The signed note (checkpoint) for that root, if given.
    pub checkpoint: Option<String>,
}

/// What the entry's body must name.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    /// The bytes the log hashed: the simple-signing payload, or a DSSE
    /// envelope's payload.
    pub payload: &'a [u8],
    /// The signature (DER).
    pub signature: &'a [u8],
    /// The signing certificate (DER).
    pub cert_der: &'a [u8],
}

fn int(v: Option<&Value>, what: &str) -> Result<i64, String> {
    match v {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("the log entry has no integer {what}"))
}

fn b64(v: Option<&Value>, what: &str) -> Result<Vec<u8>, String> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the log entry has no {what}"))?;
    B64.decode(s)
        .map_err(|e| format!("the log entry's {what} is not base64 ({e})"))
}

/// The entry in cosign's `dev.sigstore.cosign/bundle` annotation:
/// `{SignedEntryTimestamp, Payload: {body, integratedTime, logIndex, logID}}`.
pub fn from_cosign_bundle(json: &str) -> Result<Entry, String> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| format!("the Rekor bundle annotation is not JSON ({e})"))?;
    let p = v.get("Payload").ok_or("the Rekor bundle has no Payload")?;
    let body_b64 = p
        .get("body")
        .and_then(Value::as_str)
        .ok_or("the log entry has no body")?;
    let log_id = p
        .get("logID")
        .and_then(Value::as_str)
        .ok_or("the log entry has no logID")?;
    if unhex(log_id).is_none_or(|b| b.len() != 32) {
        return Err(format!(
            "the log entry's logID '{log_id}' is not 64 hex digits"
        ));
    }
    Ok(Entry {
        body_b64: body_b64.to_string(),
        integrated_time: int(p.get("integratedTime"), "integratedTime")?,
        log_index: int(p.get("logIndex"), "logIndex")?,
        log_id: log_id.to_ascii_lowercase(),
        set: Some(b64(v.get("SignedEntryTimestamp"), "SignedEntryTimestamp")?),
        proof: None,
    })
}

/// An entry of a Sigstore bundle's `verificationMaterial.tlogEntries`
/// (v0.1 to v0.3: int64 fields as strings, bytes as base64).
pub fn from_tlog_entry(v: &Value) -> Result<Entry, String> {
    let body_b64 = v
        .get("canonicalizedBody")
        .and_then(Value::as_str)
        .ok_or("the log entry has no canonicalizedBody")?;
    let log_id = b64(v.pointer("/logId/keyId"), "logId.keyId")?;
    let set = match v.pointer("/inclusionPromise/signedEntryTimestamp") {
        None => None,
        s => Some(b64(s, "inclusionPromise")?),
    };
    let proof = match v.get("inclusionProof") {
        None => None,
        Some(p) => Some(proof(p)?),
    };
    Ok(Entry {
        body_b64: body_b64.to_string(),
        integrated_time: int(v.get("integratedTime"), "integratedTime")?,
        log_index: int(v.get("logIndex"), "logIndex")?,
        log_id: hex(&log_id),
        set,
        proof,
    })
}

fn proof(p: &Value) -> Result<Proof, String> {
    let n = |k: &str| {
        int(p.get(k), &format!("inclusionProof.{k}")).and_then(|i| {
            u64::try_from(i).map_err(|_| format!("the log entry's inclusionProof.{k} is negative"))
        })
    };
    let hashes = p
        .get("hashes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if hashes.len() > MAX_PROOF {
        return Err(format!(
            "the inclusion proof has {} hashes, more than {MAX_PROOF}",
            hashes.len()
        ));
    }
    Ok(Proof {
        index: n("logIndex")?,
        tree_size: n("treeSize")?,
        root: b64(p.get("rootHash"), "inclusionProof.rootHash")?,
        hashes: hashes
            .iter()
            .map(|h| b64(Some(h), "inclusionProof.hashes"))
            .collect::<Result<_, _>>()?,
        checkpoint: p
            .pointer("/checkpoint/envelope")
            .and_then(Value::as_str)
            .map(String::from),
    })
}

/// What the SET signs: the canonical JSON (RFC 8785: keys sorted, no
/// space) of `{body, integratedTime, logID, logIndex}`.
pub fn set_payload(e: &Entry) -> Vec<u8> {
    // serde_json escapes a string as RFC 8785 does for the characters a
    // base64 body or a hex id can hold (and for any other, below 0x7f).
    let s = |t: &str| Value::String(t.to_string()).to_string();
    format!(
        r#"{{"body":{},"integratedTime":{},"logID":{},"logIndex":{}}}"#,
        s(&e.body_b64),
        e.integrated_time,
        s(&e.log_id),
        e.log_index
    )
    .into_bytes()
}

/// Verify `e` against the trust root and the signature it is for: the
/// log is known and was signing at the entry's time, its SET verifies,
/// the inclusion proof (if any) reaches a checkpoint it signed, and the
/// body names this signature, certificate and payload.
pub fn verify<'a>(e: &Entry, root: &'a TrustRoot, signed: &Signed) -> Result<&'a LogKey, String> {
    let log = root.tlog(&e.log_id).ok_or_else(|| {
        format!(
            "the entry's log {} is no transparency log of the trust root ({})",
            e.log_id, root.origin
        )
    })?;
    let key = log.key.as_ref().ok_or_else(|| {
        format!(
            "the log {} signs with {}, which is not verified here",
            log.base_url, log.details
        )
    })?;
    if !log.valid_for.contains(e.integrated_time) {
        return Err(format!(
            "the log key of {} is trusted {}, not at the entry's time {}",
            log.base_url,
            log.valid_for,
            time::show(e.integrated_time)
        ));
    }
    let set = e.set.as_ref().ok_or(
        "the entry has no signed entry timestamp (inclusion promise), so its time is not the log's word",
    )?;
    if !key.verify(Hash::Sha256, &set_payload(e), set) {
        return Err(format!(
            "the signed entry timestamp does not verify with the key of {}",
            log.base_url
        ));
    }
    if let Some(p) = &e.proof {
        let body = B64
            .decode(&e.body_b64)
            .map_err(|err| format!("the entry's body is not base64 ({err})"))?;
        verify_inclusion(&body, p, key, &e.log_id)?;
    }
    check_body(&e.body_b64, signed)?;
    Ok(log)
}

fn leaf_hash(body: &[u8]) -> Vec<u8> {
    let mut h = sha2::Sha256::new();
    h.update([0u8]);
    h.update(body);
    h.finalize().to_vec()
}

fn node_hash(l: &[u8], r: &[u8]) -> Vec<u8> {
    let mut h = sha2::Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().to_vec()
}

/// The root an audit path leads to (RFC 9162, 2.1.3.2); `None` when the
/// path does not fit the index and size.
pub fn root_from_path(index: u64, size: u64, leaf: Vec<u8>, path: &[Vec<u8>]) -> Option<Vec<u8>> {
    if index >= size {
        return None;
    }
    let (mut f, mut s, mut r) = (index, size - 1, leaf);
    for p in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

fn verify_inclusion(body: &[u8], p: &Proof, key: &PublicKey, log_id: &str) -> Result<(), String> {
    let root = root_from_path(p.index, p.tree_size, leaf_hash(body), &p.hashes)
        .ok_or("the inclusion proof does not fit its index and tree size")?;
    if root != p.root {
        return Err("the inclusion proof does not lead to its root hash".into());
    }
    if let Some(note) = &p.checkpoint {
        verify_checkpoint(note, p, key, log_id)?;
    }
    Ok(())
}

/// A checkpoint (signed note): `origin\nsize\nbase64(root)\n[…]\n\n— name
/// base64(4-byte key hint ‖ signature)\n`; the signature covers the text
/// up to and including the blank line's first newline.
pub fn verify_checkpoint(
    note: &str,
    p: &Proof,
    key: &PublicKey,
    log_id: &str,
) -> Result<(), String> {
    let (text, sigs) = note
        .split_once("\n\n")
        .ok_or("the checkpoint has no signature block")?;
    let mut lines = text.lines();
    let (_origin, size, root) = (lines.next(), lines.next(), lines.next());
    if size.and_then(|s| s.parse::<u64>().ok()) != Some(p.tree_size)
        || root.and_then(|r| B64.decode(r).ok()).as_deref() != Some(p.root.as_slice())
    {
        return Err("the checkpoint is for another tree than the inclusion proof".into());
    }
    let hint = unhex(log_id).unwrap_or_default();
    let signed = format!("{text}\n");
    let ok = sigs
        .lines()
        .filter_map(|l| l.strip_prefix("\u{2014} "))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(_, s)| B64.decode(s).ok())
        .filter(|s| s.len() > 4 && hint.get(..4) == s.get(..4))
        .any(|s| key.verify(Hash::Sha256, signed.as_bytes(), &s[4..]));
    if ok {
        Ok(())
    } else {
        Err("the checkpoint is not signed by the log's key".into())
    }
}

/// A signature a body records: (signature base64, verifier base64 PEM).
type Recorded<'a> = (Option<&'a str>, Option<&'a str>);

/// The body names this signature, certificate and payload (kinds
/// `hashedrekord`, `rekord`, `dsse`, `intoto`).
pub fn check_body(body_b64: &str, s: &Signed) -> Result<(), String> {
    let body = B64
        .decode(body_b64)
        .map_err(|e| format!("the entry's body is not base64 ({e})"))?;
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| format!("the entry's body is not JSON ({e})"))?;
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    let spec = v.get("spec").ok_or("the entry's body has no spec")?;
    let str_at = |p: &str| spec.pointer(p).and_then(Value::as_str);
    let (hash, sigs): (Option<&str>, Vec<Recorded>) = match kind {
        "hashedrekord" | "rekord" => (
            str_at("/data/hash/value"),
            vec![(
                str_at("/signature/content"),
                str_at("/signature/publicKey/content"),
            )],
        ),
        "dsse" => (
            str_at("/payloadHash/value"),
            list(spec.get("signatures"))
                .map(|x| {
                    (
                        x.get("signature").and_then(Value::as_str),
                        x.get("verifier").and_then(Value::as_str),
                    )
                })
                .collect(),
        ),
        "intoto" => (
            str_at("/content/payloadHash/value"),
            list(spec.pointer("/content/envelope/signatures"))
                .map(|x| {
                    (
                        x.get("sig").and_then(Value::as_str),
                        x.get("publicKey").and_then(Value::as_str),
                    )
                })
                .collect(),
        ),
        other => {
            return Err(format!(
                "the entry is of kind '{other}', not hashedrekord, rekord, dsse or intoto"
            ))
        }
    };
    let want = sha256_hex(s.payload);
    if !hash.is_some_and(|h| h.eq_ignore_ascii_case(&want)) {
        return Err(format!(
            "the entry is for payload sha256:{}, not this one (sha256:{want})",
            hash.unwrap_or("(none)")
        ));
    }
    let mut why = "the entry has no signatures".to_string();
    for (sig, verifier) in sigs {
        let sig = sig.and_then(|x| B64.decode(x).ok()).map(|raw| {
            // intoto v0.0.2 base64-encodes the envelope's base64 signature again.
            if kind == "intoto" {
                B64.decode(&raw).unwrap_or(raw)
            } else {
                raw
            }
        });
        if sig.as_deref() != Some(s.signature) {
            why = "the entry records another signature than this one".into();
            continue;
        }
        if verifier_der(verifier).as_deref() != Some(s.cert_der) {
            why = "the entry records another certificate than this one".into();
            continue;
        }
        return Ok(());
    }
    Err(why)
}

fn list(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

/// A body's verifier: base64 of a PEM certificate, as DER.
fn verifier_der(v: Option<&str>) -> Option<Vec<u8>> {
    let pem = B64.decode(v?).ok()?;
    x509_cert::Certificate::from_pem(&pem).ok()?.to_der().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof_fixture() -> (Vec<u8>, Proof) {
        let bundle: Value = serde_json::from_str(&crate::oci::cosign::fixtures::data(
            "bundle-format/sigstore-rs-0.15.0_tests_data_bundle_v03.json",
        ))
        .unwrap();
        let t = &bundle["verificationMaterial"]["tlogEntries"][0];
        let e = from_tlog_entry(t).unwrap();
        (B64.decode(&e.body_b64).unwrap(), e.proof.unwrap())
    }

    #[test]
    fn a_real_inclusion_proof_and_checkpoint_verify_and_a_changed_one_does_not() {
        let (body, p) = proof_fixture();
        let root = super::super::trust_root::embedded().unwrap();
        let log = root
            .tlog("c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d")
            .unwrap();
        let key = log.key.as_ref().unwrap();
        verify_inclusion(&body, &p, key, &log.id).unwrap();
        let mut other = body.clone();
        other.push(b' ');
        assert_eq!(
            verify_inclusion(&other, &p, key, &log.id).unwrap_err(),
            "the inclusion proof does not lead to its root hash"
        );
        let mut q = p.clone();
        q.index += 1;
        assert!(verify_inclusion(&body, &q, key, &log.id).is_err());
        let mut q = p.clone();
        q.checkpoint = q
            .checkpoint
            .map(|c| c.replacen("rekor.sigstore.dev - ", "rekor.sigstore.dev -- ", 1));
        assert_eq!(
            verify_inclusion(&body, &q, key, &log.id).unwrap_err(),
            "the checkpoint is not signed by the log's key"
        );
    }

    #[test]
    fn audit_paths_follow_rfc_9162() {
        // A 3-leaf tree: root = H(H(l0,l1), l2).
        let l: Vec<Vec<u8>> = (0u8..3).map(|i| leaf_hash(&[i])).collect();
        let root = node_hash(&node_hash(&l[0], &l[1]), &l[2]);
        assert_eq!(
            root_from_path(0, 3, l[0].clone(), &[l[1].clone(), l[2].clone()]),
            Some(root.clone())
        );
        assert_eq!(
            root_from_path(2, 3, l[2].clone(), &[node_hash(&l[0], &l[1])]),
            Some(root.clone())
        );
        assert_eq!(root_from_path(3, 3, l[2].clone(), &[]), None);
        assert_eq!(root_from_path(0, 3, l[0].clone(), &[l[1].clone()]), None);
        assert_eq!(root_from_path(0, 1, l[0].clone(), &[]), Some(l[0].clone()));
    }

    #[test]
    fn the_set_payload_is_canonical_json() {
        let e = Entry {
            body_b64: "eyJ9".into(),
            integrated_time: 1634714717,
            log_index: 783607,
            log_id: "c0d2".into(),
            set: None,
            proof: None,
        };
        assert_eq!(
            String::from_utf8(set_payload(&e)).unwrap(),
            r#"{"body":"eyJ9","integratedTime":1634714717,"logID":"c0d2","logIndex":783607}"#
        );
    }
}
