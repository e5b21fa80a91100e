//! A Bearer-token issuer for distribution's `auth.token`, on the HTTP stub
//! (127.0.0.1): it signs ES256 JWTs with an `x5c` self-signed certificate
//! (tests/data/issuer/) and counts the scopes it is asked for.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;

use super::bin::repo;
use super::http::{request, Reply, Request, Stub};

/// The `service` the registry and its tokens name.
pub const SERVICE: &str = "test-registry";
/// The `iss` of the tokens.
pub const ISSUER: &str = "test-issuer";

/// How the issuer behaves.
#[derive(Clone, Debug, Default)]
pub struct IssuerMode {
    /// Require HTTP Basic with exactly these credentials (else 401).
    pub basic: Option<(String, String)>,
    /// Grant access to this repository instead of the one asked for.
    pub grant_other_repo: Option<String>,
}

/// The issuer; stopped when dropped.
pub struct Issuer {
    stub: Stub,
    /// Holds `rootbundle.pem`, the certificate the registry trusts.
    pub dir: tempfile::TempDir,
    mode: Arc<Mutex<IssuerMode>>,
    /// Requests before this index are forgotten (`reset`).
    forgotten: Mutex<usize>,
}

fn data(rel: &str) -> PathBuf {
    repo().join("tests/data/issuer").join(rel)
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn pem_body(pem: &str) -> Vec<u8> {
    let b: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(b).unwrap()
}

/// Whether the harness itself asked (its requests are not counted).
fn from_harness(req: &Request) -> bool {
    req.headers.contains_key("x-harness")
}

/// The answer to a token request under `mode`.
fn token(req: &Request, mode: &IssuerMode, key: &SigningKey, cert_der: &[u8]) -> Reply {
    if req.path != "/token" {
        return Reply::status(404);
    }
    let harness = from_harness(req);
    if let (Some((u, p)), false) = (&mode.basic, harness) {
        let want = format!("Basic {}", b64(format!("{u}:{p}").as_bytes()));
        if req.header("authorization") != Some(want.as_str()) {
            return Reply::status(401)
                .header("Content-Type", "application/json")
                .body(r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#);
        }
    }
    // scope = repository:NAME:ACTIONS
    let mut parts = req.query("scope").splitn(3, ':');
    let (_, mut name, actions) = (
        parts.next(),
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("pull"),
    );
    if let (Some(other), false) = (&mode.grant_other_repo, harness) {
        name = other.clone();
    }
    let actions: Vec<&str> = actions.split(',').collect();
    let token = jwt(key, cert_der, &name, &actions);
    Reply::json(
        200,
        &serde_json::json!({"token": token, "access_token": token, "expires_in": 300}),
    )
}

impl Issuer {
    /// Start it.
    pub fn start() -> Issuer {
        let key_pem = std::fs::read_to_string(data("issuer-key.pem")).unwrap();
        let key = SigningKey::from_pkcs8_pem(&key_pem).unwrap();
        let cert_pem = std::fs::read_to_string(data("issuer-cert.pem")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rootbundle.pem"), &cert_pem).unwrap();
        let cert_der = pem_body(&cert_pem);
        let mode = Arc::new(Mutex::new(IssuerMode::default()));
        let m2 = mode.clone();
        let stub = Stub::start(move |req| {
            let mode = m2.lock().unwrap().clone();
            token(req, &mode, &key, &cert_der)
        });
        Issuer {
            stub,
            dir,
            mode,
            forgotten: Mutex::new(0),
        }
    }

    /// The realm URL.
    pub fn realm(&self) -> String {
        format!("{}/token", self.stub.url())
    }

    /// Token requests from runbook (not the harness's own), by scope.
    pub fn requests(&self) -> Vec<String> {
        let from = *self.forgotten.lock().unwrap();
        self.stub.seen()[from..]
            .iter()
            .filter(|r| r.path == "/token" && !from_harness(r))
            .map(|r| r.query("scope").to_string())
            .collect()
    }

    /// Forget what was seen.
    pub fn reset(&self) {
        *self.forgotten.lock().unwrap() = self.stub.seen().len();
    }

    /// Change the behaviour.
    pub fn set_mode(&self, m: IssuerMode) {
        *self.mode.lock().unwrap() = m;
    }

    /// A push+pull token for the harness itself (not counted).
    pub fn harness_token(&self, repo: &str) -> String {
        let url = format!(
            "{}?service={SERVICE}&scope=repository:{repo}:pull,push",
            self.realm()
        );
        let r = request("GET", &url, &[("X-Harness", "1")], b"");
        assert_eq!(r.status, 200, "harness token: {}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["token"].as_str().unwrap().to_string()
    }
}

/// An ES256 JWT as distribution 2.8 accepts it (x5c header, aud a string).
fn jwt(key: &SigningKey, cert_der: &[u8], repo: &str, actions: &[&str]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [b64(cert_der)]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "runbook-test", "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{:x}", rand::random::<u64>()),
        "access": [{"type": "repository", "name": repo, "actions": actions}],
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig: Signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&sig.to_bytes()))
}
