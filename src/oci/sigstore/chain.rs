//! The signing certificate's chain to a Fulcio CA of the trust root: the
//! leaf is for code signing and is signed by a CA's issuing certificate,
//! whose own chain holds to its root; then, once the log has dated the
//! signature, the CA and every certificate of its chain were valid then.

use x509_cert::der::Encode;
use x509_cert::Certificate;

use super::keys::{Hash, PublicKey};
use super::time::{self, Window};
use super::trust_root::{Authority, TrustRoot};

const OID_EKU: &str = "2.5.29.37";
const OID_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";

/// Whether `child` carries a valid signature by `parent`'s key.
pub fn signed_by(child: &Certificate, parent: &Certificate) -> Result<(), String> {
    let alg = child.signature_algorithm.oid.to_string();
    let hash = Hash::of_ecdsa_oid(&alg)
        .ok_or_else(|| format!("its signature algorithm {alg} is not ECDSA with SHA-2"))?;
    let spki = parent
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("the issuer's key does not encode ({e})"))?;
    let key = PublicKey::from_spki_der(&spki).map_err(|e| format!("the issuer's key is {e}"))?;
    let tbs = child
        .tbs_certificate
        .to_der()
        .map_err(|e| format!("the certificate does not encode ({e})"))?;
    let sig = child
        .signature
        .as_bytes()
        .ok_or("its signature is not a whole number of bytes")?;
    if key.verify(hash, &tbs, sig) {
        Ok(())
    } else {
        Err("its signature does not verify with the issuer's key".into())
    }
}

/// The leaf's extended key usage includes code signing.
fn code_signing(leaf: &Certificate) -> Result<(), String> {
    use x509_cert::der::Decode;
    let ext = leaf
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == OID_EKU)
        .ok_or("the certificate has no extended key usage, so it is not for code signing")?;
    let eku = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
        .map_err(|e| format!("the certificate's extended key usage does not parse ({e})"))?;
    if eku.0.iter().any(|o| o.to_string() == OID_CODE_SIGNING) {
        Ok(())
    } else {
        Err("the certificate's extended key usage does not include code signing".into())
    }
}

/// The CA of `root` that issued `leaf` (a code-signing certificate), its
/// own chain checked up to its root. Times are checked later, by
/// [`valid_at`], once the log has given one.
pub fn verify_path<'a>(leaf: &Certificate, root: &'a TrustRoot) -> Result<&'a Authority, String> {
    code_signing(leaf)?;
    let issuer = &leaf.tbs_certificate.issuer;
    let mut tried = Vec::new();
    for ca in &root.authorities {
        let Some(first) = ca.chain.first() else {
            continue;
        };
        if &first.tbs_certificate.subject != issuer {
            continue;
        }
        match signed_by(leaf, first) {
            Ok(()) => {
                for (i, pair) in ca.chain.windows(2).enumerate() {
                    signed_by(&pair[0], &pair[1]).map_err(|e| {
                        format!(
                            "the trust root's chain for {} is broken at certificate {i}: {e}",
                            ca.uri
                        )
                    })?;
                }
                return Ok(ca);
            }
            Err(e) => tried.push(format!("{} ({e})", ca.uri)),
        }
    }
    let self_signed = leaf.tbs_certificate.subject == *issuer && signed_by(leaf, leaf).is_ok();
    Err(if self_signed {
        format!("the certificate is self-signed (issuer '{issuer}'), not issued by a Fulcio CA of the trust root ({})", root.origin)
    } else if tried.is_empty() {
        format!(
            "the certificate's issuer '{issuer}' is no Fulcio CA of the trust root ({})",
            root.origin
        )
    } else {
        format!(
            "the certificate names a CA of the trust root as issuer but is not signed by it: {}",
            tried.join("; ")
        )
    })
}

/// A certificate's NotBefore..NotAfter.
pub fn validity(cert: &Certificate) -> Window {
    let v = &cert.tbs_certificate.validity;
    Window {
        start: Some(time::of_x509(&v.not_before)),
        end: Some(time::of_x509(&v.not_after)),
    }
}

/// The CA could issue at `t`: inside its `validFor` and every
/// certificate of its chain's validity.
pub fn valid_at(ca: &Authority, t: i64) -> Result<(), String> {
    if !ca.valid_for.contains(t) {
        return Err(format!(
            "the CA {} is trusted from {} by the trust root, not at the signing time {}",
            ca.uri,
            ca.valid_for,
            time::show(t)
        ));
    }
    for cert in &ca.chain {
        let w = validity(cert);
        if !w.contains(t) {
            return Err(format!(
                "the CA certificate '{}' is valid {w}, not at the signing time {}",
                cert.tbs_certificate.subject,
                time::show(t)
            ));
        }
    }
    Ok(())
}
