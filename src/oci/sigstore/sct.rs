//! The signing certificate's embedded SCTs (RFC 6962 §3.3): each is a CT
//! log's promise, signed, that it logged the certificate's precertificate.
//! One must verify with a CT log key of the trust root when the root lists
//! any (cosign's rule), so a Fulcio CA cannot issue a certificate nobody
//! can see. sigstore-go `pkg/verify/sct.go` and sigstore-rs
//! `src/crypto/transparency.rs` were the reference.

use sha2::Digest;
use x509_cert::der::asn1::OctetString;
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

use super::keys::{hex, Hash};
use super::time;
use super::trust_root::TrustRoot;

/// The X.509 extension holding the SCT list.
pub const OID_SCT_LIST: &str = "1.3.6.1.4.1.11129.2.4.2";

/// One v1 SignedCertificateTimestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sct {
    /// SHA-256 of the log's DER SubjectPublicKeyInfo.
    pub log_id: [u8; 32],
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The SCT's extensions, opaque (empty in practice).
    pub extensions: Vec<u8>,
    /// TLS HashAlgorithm (4 = SHA-256).
    pub hash_alg: u8,
    /// TLS SignatureAlgorithm (3 = ECDSA).
    pub sig_alg: u8,
    /// The signature, DER.
    pub signature: Vec<u8>,
}

/// A bounded reader over TLS-encoded bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("{what} needs {n} bytes, {} are left", self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn uint(&mut self, n: usize, what: &str) -> Result<u64, String> {
        Ok(self
            .take(n, what)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A `opaque <0..2^(8n)-1>`: an n-byte length, then that many bytes.
    fn vec(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let len = self.uint(n, what)?;
        let len = usize::try_from(len).map_err(|_| format!("{what} is too long"))?;
        self.take(len, what)
    }
}

/// The SCTs of a TLS `SignedCertificateTimestampList`: one `Ok` per v1
/// SCT, one `Err` per entry that is not (another version, or malformed).
/// `Err` overall when the list itself is malformed.
pub fn parse_list(bytes: &[u8]) -> Result<Vec<Result<Sct, String>>, String> {
    let mut outer = Reader(bytes);
    let mut list = Reader(outer.vec(2, "the SCT list")?);
    if !outer.0.is_empty() {
        return Err(format!(
            "the SCT list has {} bytes after its end",
            outer.0.len()
        ));
    }
    let mut out = Vec::new();
    while !list.0.is_empty() {
        let one = list.vec(2, "an SCT")?;
        out.push(parse_one(one));
    }
    if out.is_empty() {
        return Err("the SCT list is empty".into());
    }
    Ok(out)
}

fn parse_one(bytes: &[u8]) -> Result<Sct, String> {
    let mut r = Reader(bytes);
    let version = r.uint(1, "the SCT version")?;
    if version != 0 {
        return Err(format!("it is SCT version {version}; only v1 (0) is known"));
    }
    let mut log_id = [0u8; 32];
    log_id.copy_from_slice(r.take(32, "the SCT log id")?);
    let timestamp = r.uint(8, "the SCT timestamp")?;
    let extensions = r.vec(2, "the SCT extensions")?.to_vec();
    let hash_alg = r.take(1, "the SCT hash algorithm")?[0];
    let sig_alg = r.take(1, "the SCT signature algorithm")?[0];
    let signature = r.vec(2, "the SCT signature")?.to_vec();
    if !r.0.is_empty() {
        return Err(format!("the SCT has {} bytes after its end", r.0.len()));
    }
    Ok(Sct {
        log_id,
        timestamp,
        extensions,
        hash_alg,
        sig_alg,
        signature,
    })
}

/// The leaf's SCT list, from its extension (an OCTET STRING wrapping the
/// TLS bytes); `None` when it has none.
pub fn embedded(leaf: &Certificate) -> Result<Option<Vec<Result<Sct, String>>>, String> {
    let Some(ext) = leaf
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == OID_SCT_LIST)
    else {
        return Ok(None);
    };
    let inner = OctetString::from_der(ext.extn_value.as_bytes())
        .map_err(|e| format!("the SCT extension is not an OCTET STRING ({e})"))?;
    parse_list(inner.as_bytes()).map(Some)
}

/// The leaf's TBSCertificate as its precertificate was: without the SCT
/// list extension, DER.
pub fn precert_tbs(leaf: &Certificate) -> Result<Vec<u8>, String> {
    let mut tbs = leaf.tbs_certificate.clone();
    if let Some(exts) = tbs.extensions.as_mut() {
        exts.retain(|e| e.extn_id.to_string() != OID_SCT_LIST);
        if exts.is_empty() {
            tbs.extensions = None;
        }
    }
    tbs.to_der()
        .map_err(|e| format!("the certificate does not re-encode without its SCTs ({e})"))
}

/// What a CT log signs for a precertificate entry (RFC 6962 §3.2):
/// version, signature type, timestamp, entry type, the issuer's key hash,
/// the precertificate's TBS and the SCT's extensions.
pub fn signed_data(sct: &Sct, issuer_key_hash: &[u8; 32], tbs: &[u8]) -> Result<Vec<u8>, String> {
    let tbs_len = u32::try_from(tbs.len())
        .ok()
        .filter(|n| *n < 1 << 24)
        .ok_or("the certificate is too large for an SCT")?;
    let ext_len =
        u16::try_from(sct.extensions.len()).map_err(|_| "the SCT extensions are too long")?;
    let mut out = Vec::with_capacity(tbs.len() + 64);
    out.push(0); // v1
    out.push(0); // certificate_timestamp
    out.extend_from_slice(&sct.timestamp.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
    out.extend_from_slice(issuer_key_hash);
    out.extend_from_slice(&tbs_len.to_be_bytes()[1..]);
    out.extend_from_slice(tbs);
    out.extend_from_slice(&ext_len.to_be_bytes());
    out.extend_from_slice(&sct.extensions);
    Ok(out)
}

/// Whether one SCT verifies with a CT log key of `root` valid at its time.
fn verify_one(sct: &Sct, signed: &[u8], root: &TrustRoot) -> Result<(), String> {
    let id = hex(&sct.log_id);
    let secs = i64::try_from(sct.timestamp / 1000).unwrap_or(i64::MAX);
    let mut logs = root.ctlogs_with_id(&id).peekable();
    if logs.peek().is_none() {
        return Err(format!(
            "its log id {id} is no CT log of the trust root ({})",
            root.origin
        ));
    }
    if (sct.hash_alg, sct.sig_alg) != (4, 3) {
        return Err(format!(
            "its algorithm (hash {}, signature {}) is not ECDSA with SHA-256 (4, 3)",
            sct.hash_alg, sct.sig_alg
        ));
    }
    let mut why = Vec::new();
    for log in logs {
        let Some(key) = &log.key else {
            why.push(format!(
                "the key of {} is {}, not verified here",
                log.base_url, log.details
            ));
            continue;
        };
        if !log.valid_for.contains(secs) {
            why.push(format!(
                "the key of {} is trusted {}, not at the SCT's time {}",
                log.base_url,
                log.valid_for,
                time::show(secs)
            ));
            continue;
        }
        if key.verify(Hash::Sha256, signed, &sct.signature) {
            return Ok(());
        }
        why.push(format!(
            "its signature does not verify with the key of {}",
            log.base_url
        ));
    }
    Err(why.join("; "))
}

/// At least one of `leaf`'s embedded SCTs verifies with a CT log of `root`,
/// over the precertificate `issuer` (the CA certificate that signed the
/// leaf) issued. Nothing is required when the root lists no CT log.
pub fn verify(leaf: &Certificate, issuer: &Certificate, root: &TrustRoot) -> Result<(), String> {
    if root.ctlogs.is_empty() {
        return Ok(());
    }
    let scts = embedded(leaf)
        .map_err(|e| format!("the certificate's embedded SCTs do not parse: {e}"))?
        .ok_or_else(|| {
            format!(
                "the certificate has no embedded SCT (extension {OID_SCT_LIST}), so no CT log of the trust root ({}) vouches that it was logged",
                root.origin
            )
        })?;
    let spki = issuer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("the issuer's key does not encode ({e})"))?;
    let issuer_key_hash: [u8; 32] = sha2::Sha256::digest(&spki).into();
    let tbs = precert_tbs(leaf)?;
    let mut why = Vec::new();
    for (i, sct) in scts.iter().enumerate() {
        let r = sct.as_ref().map_err(Clone::clone).and_then(|sct| {
            let signed = signed_data(sct, &issuer_key_hash, &tbs)?;
            verify_one(sct, &signed, root)
        });
        match r {
            Ok(()) => return Ok(()),
            Err(e) => why.push(format!("SCT {i}: {e}")),
        }
    }
    Err(format!(
        "no embedded SCT of the certificate verifies with a CT log of the trust root: {}",
        why.join("; ")
    ))
}
