//! Keyless verification against real public-good material and forgeries
//! of it, each refused at the step it breaks.

use std::sync::Arc;

use base64::Engine as _;
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
use serde_json::{json, Value};

use super::keys::sha256_hex;
use super::rekor;
use super::sct;
use super::trust_root::{self, TrustRoot, EMBEDDED};
use crate::oci::cosign::fixtures::*;
use crate::oci::cosign::{verify_simple_signing, Rejection, Step};
use crate::oci::cosign_bundle::verify_bundle;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const FLAVIO_DIGEST: &str =
    "sha256:5f481572d088dc4023afb35fced9530ced3d9b03bf7299c6f492163cb9f0452e";
const KW_DIGEST: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const KW_ID: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const GH: &str = "https://token.actions.githubusercontent.com";
const TEST_LOG_KEY: &str = "generated/TEST-ONLY-email-signer.key";

/// The embedded root, edited.
fn root_with(edit: impl FnOnce(&mut Value)) -> Arc<TrustRoot> {
    let mut v: Value = serde_json::from_slice(EMBEDDED).unwrap();
    edit(&mut v);
    Arc::new(trust_root::parse(v.to_string().as_bytes(), "edited").unwrap())
}

/// The test log key's SPKI DER.
fn test_log_der() -> Vec<u8> {
    let sk = p256::ecdsa::SigningKey::from_pkcs8_pem(&data(TEST_LOG_KEY)).unwrap();
    sk.verifying_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// The embedded root plus the test key as a Rekor log.
fn root_with_test_log() -> Arc<TrustRoot> {
    let der = B64.encode(test_log_der());
    root_with(|v| {
        v["tlogs"].as_array_mut().unwrap().push(json!({
            "baseUrl": "https://rekor.test.invalid",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": der, "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": "2021-01-01T00:00:00Z"}},
            "logId": {"keyId": ""}
        }))
    })
}

/// A cosign bundle annotation for `entry`, its SET signed with the test key.
fn bundle_signed_by_test_key(entry: &rekor::Entry) -> String {
    let set = sign(TEST_LOG_KEY, &rekor::set_payload(entry));
    json!({
        "SignedEntryTimestamp": set,
        "Payload": {"body": entry.body_b64, "integratedTime": entry.integrated_time,
                    "logIndex": entry.log_index, "logID": entry.log_id}
    })
    .to_string()
}

struct Classic {
    payload: String,
    sig: String,
    cert: String,
    bundle: String,
}

/// cosign's 2021 public-good signature (sigstore-rs fixtures): Fulcio's
/// first root, Rekor entry 783607.
fn flavio() -> Classic {
    Classic {
        payload: data("sigstore-rs-0.15.0-keyless/payload.json"),
        sig: data("sigstore-rs-0.15.0-keyless/signature.b64"),
        cert: data("sigstore-rs-0.15.0-keyless/cert.pem"),
        bundle: data("sigstore-rs-0.15.0-keyless/rekor-bundle.json"),
    }
}

fn check(
    c: &Classic,
    digest: &str,
    identity: &str,
    issuer: &str,
    root: Arc<TrustRoot>,
) -> Result<String, Rejection> {
    verify_simple_signing(
        c.payload.as_bytes(),
        &c.sig,
        Some(&c.cert),
        Some(&c.bundle),
        digest,
        &keyless_under(identity, issuer, root),
    )
}

fn embedded() -> Arc<TrustRoot> {
    trust_root::embedded().unwrap()
}

#[track_caller]
fn refused(r: Result<impl std::fmt::Debug, Rejection>, step: Step, says: &str) {
    let e = r.unwrap_err();
    assert_eq!(e.step, step, "{e}");
    assert!(e.msg.contains(says), "{e}\nshould say: {says}");
}

fn kubewarden() -> Value {
    serde_json::from_str(&data(
        "bundle-format/sigstore-rs-0.15.0_tests_data_bundle_v03.json",
    ))
    .unwrap()
}

fn kw_check(
    bundle: &Value,
    identity: &str,
    root: Arc<TrustRoot>,
) -> Result<Option<String>, Rejection> {
    verify_bundle(
        bundle.to_string().as_bytes(),
        KW_DIGEST,
        &keyless_under(identity, GH, root),
    )
}

#[test]
fn a_real_2026_bundle_verifies_offline_with_the_embedded_root() {
    assert_eq!(
        kw_check(&kubewarden(), KW_ID, embedded())
            .unwrap()
            .as_deref(),
        Some(KW_ID)
    );
}

#[test]
fn a_real_2021_signature_passes_log_and_is_refused_at_chain_for_want_of_an_sct() {
    // Fulcio's 2021 certificates carry no SCT: with the CT logs of the
    // embedded root one is required (cosign's rule).
    refused(
        check(
            &flavio(),
            FLAVIO_DIGEST,
            "flavio@castelli.me",
            "https://github.com/login/oauth",
            embedded(),
        ),
        Step::Chain,
        "the certificate has no embedded SCT (extension 1.3.6.1.4.1.11129.2.4.2), so no CT log of the trust root (embedded) vouches that it was logged",
    );
    // A root without CT logs requires none: the chain and the Rekor entry
    // verify; the issuer cannot be shown (Fulcio added its extension in 2022).
    let no_ct = root_with(|v| v["ctlogs"] = json!([]));
    refused(
        check(
            &flavio(),
            FLAVIO_DIGEST,
            "flavio@castelli.me",
            "https://github.com/login/oauth",
            no_ct,
        ),
        Step::Identity,
        "no OIDC issuer extension",
    );
}

#[test]
fn a_self_signed_certificate_with_the_right_san_and_issuer_is_refused_at_chain() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"ghcr.io/mconstant/pay2slay-api"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    );
    let gh =
        "https://github.com/mconstant/pay2slay/.github/workflows/build-api.yml@refs/heads/main";
    let c = Classic {
        sig: sign("generated/TEST-ONLY-keyless-signer.key", payload.as_bytes()),
        payload,
        cert: data("generated/keyless-signer-cert.pem"),
        bundle: String::new(),
    };
    let r = verify_simple_signing(
        c.payload.as_bytes(),
        &c.sig,
        Some(&c.cert),
        None,
        &digest,
        &keyless(gh, GH),
    );
    refused(r, Step::Chain, "the certificate is self-signed");
    // Even with a log entry the forger made up and signed.
    let entry = rekor::Entry {
        body_b64: B64.encode("{}"),
        integrated_time: 1_700_000_000,
        log_index: 1,
        log_id: sha256_hex(&test_log_der()),
        set: None,
        proof: None,
    };
    let bundle = bundle_signed_by_test_key(&entry);
    let r = verify_simple_signing(
        c.payload.as_bytes(),
        &c.sig,
        Some(&c.cert),
        Some(&bundle),
        &digest,
        &keyless(gh, GH),
    );
    refused(r, Step::Chain, "self-signed");
}

#[test]
fn a_real_certificate_over_a_different_payload_is_refused_at_signature() {
    let mut c = flavio();
    c.payload = c
        .payload
        .replace("registry-testing.svc.lan", "evil.example");
    refused(
        check(&c, FLAVIO_DIGEST, "flavio@castelli.me", "x", embedded()),
        Step::Signature,
        "does not verify with its certificate's key",
    );
    // The DSSE kind: the statement changed under a real signature.
    let mut b = kubewarden();
    let stmt = String::from_utf8(
        B64.decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    b["dsseEnvelope"]["payload"] = B64
        .encode(stmt.replacen("\"_type\"", "\"_type\" ", 1))
        .into();
    refused(
        kw_check(&b, KW_ID, embedded()),
        Step::Signature,
        "does not verify with its certificate's key",
    );
}

#[test]
fn a_rekor_bundle_signed_by_another_key_is_refused_at_log() {
    let mut c = flavio();
    let entry = rekor::from_cosign_bundle(&c.bundle).unwrap();
    // Same entry, SET by the forger's key, still claiming Rekor's log id.
    c.bundle = bundle_signed_by_test_key(&entry);
    refused(
        check(&c, FLAVIO_DIGEST, "flavio@castelli.me", "x", embedded()),
        Step::Log,
        "the signed entry timestamp does not verify with the key of https://rekor.sigstore.dev",
    );
    // Claiming the forger's own log: not in the trust root.
    let mut e2 = entry.clone();
    e2.log_id = sha256_hex(&test_log_der());
    c.bundle = bundle_signed_by_test_key(&e2);
    refused(
        check(&c, FLAVIO_DIGEST, "flavio@castelli.me", "x", embedded()),
        Step::Log,
        "is no transparency log of the trust root (embedded)",
    );
    // A real entry with a real SET, for another signature (the cosign spec's example).
    c.bundle = data("cosign-spec-examples/rekor-bundle-example.json");
    refused(
        check(&c, FLAVIO_DIGEST, "flavio@castelli.me", "x", embedded()),
        Step::Log,
        "the entry is for payload sha256:a4492b0e",
    );
    // No entry at all.
    let r = verify_simple_signing(
        c.payload.as_bytes(),
        &c.sig,
        Some(&c.cert),
        None,
        FLAVIO_DIGEST,
        &keyless("flavio@castelli.me", "x"),
    );
    refused(r, Step::Log, "has no transparency-log entry");
    // A v0.3 bundle whose SET was changed, or whose proof was.
    let mut b = kubewarden();
    b["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1775719410".into();
    refused(
        kw_check(&b, KW_ID, embedded()),
        Step::Log,
        "signed entry timestamp does not verify",
    );
    let mut b = kubewarden();
    b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][0] =
        B64.encode([0u8; 32]).into();
    refused(
        kw_check(&b, KW_ID, embedded()),
        Step::Log,
        "the inclusion proof does not lead to its root hash",
    );
    let mut b = kubewarden();
    b["verificationMaterial"]["tlogEntries"] = json!([]);
    refused(
        kw_check(&b, KW_ID, embedded()),
        Step::Log,
        "has no transparency-log entry",
    );
}

#[test]
fn an_integrated_time_outside_the_certificate_validity_is_refused_at_log() {
    // A log the trust root lists (the test key) vouches for a time an hour
    // after the 20-minute certificate expired.
    let mut c = flavio();
    let mut entry = rekor::from_cosign_bundle(&c.bundle).unwrap();
    entry.log_id = sha256_hex(&test_log_der());
    entry.integrated_time += 3600;
    c.bundle = bundle_signed_by_test_key(&entry);
    refused(check(&c, FLAVIO_DIGEST, "flavio@castelli.me", "x", root_with_test_log()), Step::Log, "the log saw the signature at 2021-10-20T08:25:17Z, outside the certificate's validity (2021-10-20T07:25:16Z to 2021-10-20T07:45:15Z)");
    // The same log at the true time: the log step passes (and the 2021
    // certificate's missing SCT is what stops it).
    entry.integrated_time -= 3600;
    c.bundle = bundle_signed_by_test_key(&entry);
    refused(
        check(
            &c,
            FLAVIO_DIGEST,
            "flavio@castelli.me",
            "x",
            root_with_test_log(),
        ),
        Step::Chain,
        "has no embedded SCT",
    );
}

#[test]
fn the_right_chain_with_the_wrong_identity_is_refused_at_identity() {
    refused(
        kw_check(
            &kubewarden(),
            "https://github.com/evil/fork/.github/workflows/release.yml@refs/heads/main",
            embedded(),
        ),
        Step::Identity,
        "identity is https://github.com/kubewarden",
    );
    let b = kubewarden();
    let r = verify_bundle(
        b.to_string().as_bytes(),
        KW_DIGEST,
        &keyless_under(KW_ID, "https://accounts.google.com", embedded()),
    );
    refused(
        r,
        Step::Identity,
        "issuer is https://token.actions.githubusercontent.com, not https://accounts.google.com",
    );
}

#[test]
fn a_trust_root_whose_ca_ended_before_the_signing_time_is_refused_at_chain() {
    let ended = root_with(|v| {
        v["certificateAuthorities"][1]["validFor"]["end"] = "2025-01-01T00:00:00Z".into()
    });
    refused(kw_check(&kubewarden(), KW_ID, ended), Step::Chain, "is trusted from 2022-04-13T20:06:15Z to 2025-01-01T00:00:00Z by the trust root, not at the signing time 2026-04-09T07:23:29Z");
    let ended = root_with(|v| {
        v["certificateAuthorities"][0]["validFor"]["end"] = "2021-10-01T00:00:00Z".into()
    });
    refused(
        check(&flavio(), FLAVIO_DIGEST, "flavio@castelli.me", "x", ended),
        Step::Chain,
        "not at the signing time 2021-10-20T07:25:17Z",
    );
    // A trust root without the CA that issued it.
    let without = root_with(|v| {
        v["certificateAuthorities"]
            .as_array_mut()
            .unwrap()
            .remove(1);
    });
    refused(kw_check(&kubewarden(), KW_ID, without), Step::Chain, "issuer 'CN=sigstore-intermediate,O=sigstore.dev' is no Fulcio CA of the trust root (edited)");
    // A Rekor key the root stops trusting before the entry.
    let log_ended = root_with(|v| {
        v["tlogs"][0]["publicKey"]["validFor"]["end"] = "2026-01-01T00:00:00Z".into()
    });
    refused(
        kw_check(&kubewarden(), KW_ID, log_ended),
        Step::Log,
        "the log key of https://rekor.sigstore.dev is trusted",
    );
}

#[test]
fn a_certificate_not_for_code_signing_is_refused_at_chain() {
    // The generated email certificate has no extended key usage.
    let digest = format!("sha256:{}", "cd".repeat(32));
    let payload = format!(r#"{{"critical":{{"image":{{"docker-manifest-digest":"{digest}"}}}}}}"#);
    let sig = sign("generated/TEST-ONLY-email-signer.key", payload.as_bytes());
    let cert = data("generated/email-signer-cert-v1-issuer.pem");
    let r = verify_simple_signing(
        payload.as_bytes(),
        &sig,
        Some(&cert),
        None,
        &digest,
        &keyless("release@example.com", "https://accounts.google.com"),
    );
    refused(r, Step::Chain, "no extended key usage");
}

/// The kubewarden bundle's leaf (Fulcio, 2026, one SCT from ctfe 2022)
/// and the intermediate that issued it.
fn kw_leaf_and_issuer() -> (x509_cert::Certificate, x509_cert::Certificate) {
    use x509_cert::der::Decode;
    let b = kubewarden();
    let der = B64
        .decode(
            b["verificationMaterial"]["certificate"]["rawBytes"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let leaf = x509_cert::Certificate::from_der(&der).unwrap();
    let issuer = embedded().authorities[1].chain[0].clone();
    (leaf, issuer)
}

/// `leaf` with its SCT list replaced by `list` (TLS bytes), or removed.
fn with_scts(leaf: &x509_cert::Certificate, list: Option<&[u8]>) -> x509_cert::Certificate {
    use x509_cert::der::asn1::OctetString;
    use x509_cert::der::Encode;
    let mut leaf = leaf.clone();
    let exts = leaf.tbs_certificate.extensions.as_mut().unwrap();
    let at = exts
        .iter()
        .position(|e| e.extn_id.to_string() == sct::OID_SCT_LIST)
        .unwrap();
    match list {
        Some(tls) => {
            let inner = OctetString::new(tls.to_vec()).unwrap().to_der().unwrap();
            exts[at].extn_value = OctetString::new(inner).unwrap();
        }
        None => {
            exts.remove(at);
        }
    }
    leaf
}

/// A TLS SignedCertificateTimestampList of `scts`.
fn encode_list(scts: &[sct::Sct]) -> Vec<u8> {
    let mut body = Vec::new();
    for s in scts {
        let mut one = vec![0u8];
        one.extend_from_slice(&s.log_id);
        one.extend_from_slice(&s.timestamp.to_be_bytes());
        one.extend_from_slice(&(s.extensions.len() as u16).to_be_bytes());
        one.extend_from_slice(&s.extensions);
        one.extend_from_slice(&[s.hash_alg, s.sig_alg]);
        one.extend_from_slice(&(s.signature.len() as u16).to_be_bytes());
        one.extend_from_slice(&s.signature);
        body.extend_from_slice(&(one.len() as u16).to_be_bytes());
        body.extend_from_slice(&one);
    }
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// The real SCT of the kubewarden leaf.
fn kw_sct(leaf: &x509_cert::Certificate) -> sct::Sct {
    let list = sct::embedded(leaf).unwrap().unwrap();
    assert_eq!(list.len(), 1);
    list[0].clone().unwrap()
}

/// `s` re-signed by the test key over what a log signs for `leaf`.
fn resigned(
    s: &sct::Sct,
    leaf: &x509_cert::Certificate,
    issuer: &x509_cert::Certificate,
) -> sct::Sct {
    use sha2::Digest;
    use x509_cert::der::Encode;
    let spki = issuer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    let ikh: [u8; 32] = sha2::Sha256::digest(&spki).into();
    let signed = sct::signed_data(s, &ikh, &sct::precert_tbs(leaf).unwrap()).unwrap();
    let mut out = s.clone();
    out.signature = B64.decode(sign(TEST_LOG_KEY, &signed)).unwrap();
    out
}

/// The embedded root plus the test key as a CT log.
fn root_with_test_ctlog() -> Arc<TrustRoot> {
    let der = B64.encode(test_log_der());
    root_with(|v| {
        v["ctlogs"].as_array_mut().unwrap().push(json!({
            "baseUrl": "https://ctfe.test.invalid",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": der, "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": "2021-01-01T00:00:00Z"}},
            "logId": {"keyId": ""}
        }))
    })
}

#[test]
fn real_public_good_leaves_scts_verify_with_the_embedded_ct_log() {
    let (leaf, issuer) = kw_leaf_and_issuer();
    let s = kw_sct(&leaf);
    assert_eq!(
        super::keys::hex(&s.log_id),
        "dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e"
    );
    // Apr  9 07:23:29.615 2026 GMT, as openssl shows it.
    assert_eq!(s.timestamp, 1_775_719_409_615);
    assert_eq!((s.hash_alg, s.sig_alg), (4, 3));
    assert_eq!(sct::verify(&leaf, &issuer, &embedded()), Ok(()));
    // cosign's own test bundle: a 2025 public-good leaf, same CT log.
    let att: Value = serde_json::from_str(&data(
        "bundle-format/cosign_pkg_cosign_testdata_oci-attestation.sigstore.json",
    ))
    .unwrap();
    let der = B64
        .decode(
            att["verificationMaterial"]["certificate"]["rawBytes"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let leaf2 = <x509_cert::Certificate as x509_cert::der::Decode>::from_der(&der).unwrap();
    assert_eq!(kw_sct(&leaf2).timestamp, 1_740_770_291_145);
    assert_eq!(sct::verify(&leaf2, &issuer, &embedded()), Ok(()));
    // The list re-encoded as it was parsed is the same certificate.
    assert_eq!(with_scts(&leaf, Some(&encode_list(&[s]))), leaf);
    // Over another issuer's key hash it does not verify.
    let root_cert = embedded().authorities[1].chain[1].clone();
    let e = sct::verify(&leaf, &root_cert, &embedded()).unwrap_err();
    assert!(
        e.contains(
            "SCT 0: its signature does not verify with the key of https://ctfe.sigstore.dev/2022"
        ),
        "{e}"
    );
}

#[test]
fn forged_removed_or_mismatched_scts_are_refused() {
    let (leaf, issuer) = kw_leaf_and_issuer();
    let real = kw_sct(&leaf);
    let root = embedded();
    let check = |l: &x509_cert::Certificate, r: &TrustRoot| sct::verify(l, &issuer, r);
    // Re-signed by another key, still claiming the real log's id.
    let forged = with_scts(
        &leaf,
        Some(&encode_list(&[resigned(&real, &leaf, &issuer)])),
    );
    let e = check(&forged, &root).unwrap_err();
    assert!(e.contains("no embedded SCT of the certificate verifies with a CT log of the trust root: SCT 0: its signature does not verify with the key of https://ctfe.sigstore.dev/2022"), "{e}");
    // Signed by a log the trust root does not list.
    let mut own = real.clone();
    own.log_id = super::keys::unhex(&sha256_hex(&test_log_der()))
        .unwrap()
        .try_into()
        .unwrap();
    let own = resigned(&own, &leaf, &issuer);
    let unknown = with_scts(&leaf, Some(&encode_list(std::slice::from_ref(&own))));
    let e = check(&unknown, &root).unwrap_err();
    assert!(
        e.contains(&format!(
            "SCT 0: its log id {} is no CT log of the trust root (embedded)",
            sha256_hex(&test_log_der())
        )),
        "{e}"
    );
    // The same SCT verifies once the root lists that log: the signed data
    // is rebuilt as a log builds it, not only matched against real bytes.
    assert_eq!(check(&unknown, &root_with_test_ctlog()), Ok(()));
    // One good SCT among bad ones is enough; only bad ones is not.
    let both = with_scts(&leaf, Some(&encode_list(&[own.clone(), real.clone()])));
    assert_eq!(check(&both, &root), Ok(()));
    // The SCT removed.
    let e = check(&with_scts(&leaf, None), &root).unwrap_err();
    assert!(e.contains("the certificate has no embedded SCT"), "{e}");
    // The SAN changed under the original SCT.
    let mut tampered = leaf.clone();
    for ext in tampered.tbs_certificate.extensions.as_mut().unwrap() {
        if ext.extn_id.to_string() == "2.5.29.17" {
            let v = ext.extn_value.as_bytes().to_vec();
            let at = v.windows(10).position(|w| w == b"kubewarden").unwrap();
            let mut v2 = v.clone();
            v2[at] = b'K';
            ext.extn_value = x509_cert::der::asn1::OctetString::new(v2).unwrap();
        }
    }
    let e = check(&tampered, &root).unwrap_err();
    assert!(
        e.contains(
            "SCT 0: its signature does not verify with the key of https://ctfe.sigstore.dev/2022"
        ),
        "{e}"
    );
    // The CT log key no longer trusted at the SCT's time.
    let ended = root_with(|v| {
        v["ctlogs"][1]["publicKey"]["validFor"]["end"] = "2026-01-01T00:00:00Z".into()
    });
    let e = check(&leaf, &ended).unwrap_err();
    assert!(e.contains("the key of https://ctfe.sigstore.dev/2022 is trusted 2022-10-20T00:00:00Z to 2026-01-01T00:00:00Z, not at the SCT's time 2026-04-09T07:23:29Z"), "{e}");
    // A list that does not parse, and another version.
    let e = check(&with_scts(&leaf, Some(&[0, 9, 1])), &root).unwrap_err();
    assert!(
        e.contains("the certificate's embedded SCTs do not parse"),
        "{e}"
    );
    let mut v2 = encode_list(&[real]);
    v2[4] = 1;
    let e = check(&with_scts(&leaf, Some(&v2)), &root).unwrap_err();
    assert!(
        e.contains("SCT 0: it is SCT version 1; only v1 (0) is known"),
        "{e}"
    );
}

#[test]
fn sct_failures_in_a_real_bundle_are_refused_at_chain() {
    // Only the test key as CT log: the real SCT's log is unknown.
    let test_only = root_with(|v| {
        v["ctlogs"] = json!([{
            "baseUrl": "https://ctfe.test.invalid",
            "publicKey": {"rawBytes": B64.encode(test_log_der()), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": "2021-01-01T00:00:00Z"}}
        }])
    });
    refused(
        kw_check(&kubewarden(), KW_ID, test_only),
        Step::Chain,
        "SCT 0: its log id dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e is no CT log of the trust root (edited)",
    );
    let ended = root_with(|v| {
        v["ctlogs"][1]["publicKey"]["validFor"]["end"] = "2026-01-01T00:00:00Z".into()
    });
    refused(
        kw_check(&kubewarden(), KW_ID, ended),
        Step::Chain,
        "not at the SCT's time 2026-04-09T07:23:29Z",
    );
    // A certificate whose SCT was removed or replaced no longer carries
    // Fulcio's signature either: refused at chain before its SCTs are read.
    use x509_cert::der::Encode;
    let (leaf, _) = kw_leaf_and_issuer();
    let mut b = kubewarden();
    b["verificationMaterial"]["certificate"]["rawBytes"] =
        B64.encode(with_scts(&leaf, None).to_der().unwrap()).into();
    refused(
        kw_check(&b, KW_ID, embedded()),
        Step::Chain,
        "not signed by it",
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::oci::cosign_cert::parse_certificate;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = rekor::from_cosign_bundle(&text);
            let _ = parse_certificate(&bytes);
            let _ = trust_root::parse(&bytes, "p");
            let _ = super::super::time::parse_rfc3339(&text);
            let _ = sct::parse_list(&bytes);
            let _ = rekor::check_body(&B64.encode(&bytes), &rekor::Signed { payload: &bytes, signature: &bytes, cert_der: &bytes });
            let _ = verify_bundle(&bytes, KW_DIGEST, &keyless("a", "b"));
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                let _ = rekor::from_tlog_entry(&v);
            }
        }

        #[test]
        fn sct_lists_with_plausible_framing_never_panic(
            entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..160), 0..4),
            skew in 0usize..3, version in 0u8..2,
        ) {
            // Length prefixes right or off by `skew`, so the parser reaches
            // each field and each bound.
            let mut body = Vec::new();
            for mut e in entries {
                if let Some(first) = e.first_mut() { *first = version; }
                body.extend_from_slice(&((e.len() + skew) as u16).to_be_bytes());
                body.extend_from_slice(&e);
            }
            let mut list = ((body.len() + skew) as u16).to_be_bytes().to_vec();
            list.extend_from_slice(&body);
            let _ = sct::parse_list(&list);
            let (leaf, issuer) = kw_leaf_and_issuer();
            let _ = sct::verify(&with_scts(&leaf, Some(&list)), &issuer, &embedded());
        }

        #[test]
        fn json_shaped_entries_never_panic(
            body in "[A-Za-z0-9+/=]{0,40}",
            t in any::<i64>(), i in any::<i64>(),
            id in "[0-9a-fA-F]{0,70}",
            set in "[A-Za-z0-9+/=]{0,20}",
            hashes in proptest::collection::vec("[A-Za-z0-9+/=]{0,50}", 0..70),
            size in any::<u64>(), idx in any::<u64>(),
            note in ".{0,200}",
        ) {
            let a = json!({"SignedEntryTimestamp": set, "Payload": {"body": body, "integratedTime": t, "logIndex": i, "logID": id}}).to_string();
            let _ = rekor::from_cosign_bundle(&a);
            let e = json!({"canonicalizedBody": body, "integratedTime": t.to_string(), "logIndex": i.to_string(),
                "logId": {"keyId": set}, "inclusionPromise": {"signedEntryTimestamp": set},
                "inclusionProof": {"logIndex": idx.to_string(), "treeSize": size.to_string(), "rootHash": set, "hashes": hashes, "checkpoint": {"envelope": note}}});
            if let Ok(entry) = rekor::from_tlog_entry(&e) {
                let _ = rekor::verify(&entry, &embedded(), &rekor::Signed { payload: b"", signature: b"", cert_der: b"" });
            }
            let leaf = vec![0u8; 32];
            let _ = rekor::root_from_path(idx, size, leaf, &vec![vec![1u8; 32]; 3]);
        }

        #[test]
        fn the_set_payload_is_canonical_json_for_any_entry(
            body in "\\PC{0,40}", t in any::<i64>(), i in any::<i64>(), id in "[0-9a-f]{64}",
        ) {
            let e = rekor::Entry { body_b64: body.clone(), integrated_time: t, log_index: i, log_id: id.clone(), set: None, proof: None };
            let out = rekor::set_payload(&e);
            let v: Value = serde_json::from_slice(&out).unwrap();
            // Keys sorted, values intact, and no whitespace between tokens.
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            prop_assert_eq!(keys, vec!["body", "integratedTime", "logID", "logIndex"]);
            prop_assert_eq!(v["body"].as_str().unwrap(), body.as_str());
            prop_assert_eq!(v["integratedTime"].as_i64().unwrap(), t);
            prop_assert_eq!(v["logIndex"].as_i64().unwrap(), i);
            prop_assert_eq!(v.to_string().into_bytes(), out);
        }
    }
}
