//! Real parts for the registry tests: the Debian `docker-registry` (CNCF
//! distribution) on 127.0.0.1, a Bearer-token issuer that signs ES256 JWTs
//! with an `x5c` self-signed certificate and counts what it is asked,
//! image and cosign-signature pushes over plain HTTP, and a fault-injecting
//! HTTP server. Everything binds 127.0.0.1 only; every loop is bounded.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use sha2::{Digest, Sha256};

/// Where the registry binary lives (Debian package `docker-registry`).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Whether the registry tests can run; prints why not when they cannot.
pub fn registry_available(test: &str) -> bool {
    if Path::new(REGISTRY_BIN).exists() {
        return true;
    }
    eprintln!(
        "SKIPPED {test}: {REGISTRY_BIN} is absent; install it with `apt-get install -y docker-registry` (CI does)"
    );
    false
}

fn support(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/issuer")
        .join(rel)
}

/// The repository's cosign test data folder.
pub fn cosign_data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cosign")
        .join(rel)
}

/// `sha256:<hex>` of bytes.
pub fn digest(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------------------
// A minimal blocking HTTP/1.1 client (Connection: close) for the harness.

/// A response seen by the harness.
#[derive(Debug)]
pub struct HttpResp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// One request to `http://127.0.0.1:port/path…`.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResp {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = TcpStream::connect(hostport).unwrap_or_else(|e| panic!("connect {hostport}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let mut hs = HashMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            hs.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    if hs
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body);
    }
    HttpResp {
        status,
        headers: hs,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            break;
        };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
    out
}

/// A request read by one of the harness's servers.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

fn read_request(s: &mut TcpStream) -> Option<SeenRequest> {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.lines();
    let first = lines.next()?;
    let mut parts = first.split(' ');
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    for l in lines {
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some(SeenRequest {
        method,
        path,
        headers,
    })
}

fn respond(
    s: &mut TcpStream,
    status: u16,
    reason: &str,
    headers: &[(String, String)],
    body: &[u8],
    head_only: bool,
) {
    let mut r = format!(
        "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let _ = s.write_all(r.as_bytes());
    if !head_only {
        let _ = s.write_all(body);
    }
    let _ = s.flush();
}

/// Run `handle` for each connection to a 127.0.0.1 listener, in threads,
/// until `stop` is set or `lifetime` passes.
fn serve(
    lifetime: Duration,
    stop: Arc<AtomicBool>,
    handle: impl Fn(TcpStream) + Send + Sync + 'static,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        let started = Instant::now();
        while !stop.load(Ordering::Relaxed) && started.elapsed() < lifetime {
            match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let h = handle.clone();
                    std::thread::spawn(move || h(s));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    port
}

// ---------------------------------------------------------------------------
// The token issuer

/// How the issuer behaves.
#[derive(Clone, Debug, Default)]
pub struct IssuerMode {
    /// Require HTTP Basic with exactly these credentials (else 401).
    pub basic: Option<(String, String)>,
    /// Grant access to this repository instead of the one asked for.
    pub grant_other_repo: Option<String>,
}

/// A Bearer-token issuer on 127.0.0.1 for distribution's `auth.token`.
pub struct Issuer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    /// (scope, from the harness?) of every token request.
    seen: Arc<Mutex<Vec<(String, bool)>>>,
    pub mode: Arc<Mutex<IssuerMode>>,
}

pub const SERVICE: &str = "test-registry";
pub const ISSUER: &str = "test-issuer";

fn pem_body(pem: &str) -> Vec<u8> {
    let b: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(b).unwrap()
}

impl Issuer {
    /// Start it (it stops by itself after 10 minutes at the latest).
    pub fn start() -> Issuer {
        let key = SigningKey::from_pkcs8_pem(
            &std::fs::read_to_string(support("issuer-key.pem")).unwrap(),
        )
        .unwrap();
        let cert_pem = std::fs::read_to_string(support("issuer-cert.pem")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rootbundle.pem"), &cert_pem).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(IssuerMode::default()));
        let key = Arc::new(key);
        let cert_der = Arc::new(pem_body(&cert_pem));
        let (k2, c2, s2, m2) = (key, cert_der, seen.clone(), mode.clone());
        let port = serve(Duration::from_secs(600), stop.clone(), move |mut s| {
            let Some(req) = read_request(&mut s) else {
                return;
            };
            let (path, query) = req.path.split_once('?').unwrap_or((req.path.as_str(), ""));
            if path != "/token" {
                respond(&mut s, 404, "Not Found", &[], b"", false);
                return;
            }
            let q = parse_query(query);
            let scope = q.get("scope").cloned().unwrap_or_default();
            let harness = req.headers.contains_key("x-harness");
            s2.lock().unwrap().push((scope.clone(), harness));
            let mode = m2.lock().unwrap().clone();
            if let (Some((u, p)), false) = (&mode.basic, harness) {
                let want = format!("Basic {}", b64(format!("{u}:{p}").as_bytes()));
                if req.headers.get("authorization") != Some(&want) {
                    respond(
                        &mut s,
                        401,
                        "Unauthorized",
                        &[("Content-Type".into(), "application/json".into())],
                        br#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#,
                        false,
                    );
                    return;
                }
            }
            // scope = repository:NAME:ACTIONS
            let mut parts = scope.splitn(3, ':');
            let (_, mut name, actions) = (
                parts.next(),
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("pull"),
            );
            if let (Some(other), false) = (&mode.grant_other_repo, harness) {
                name = other.clone();
            }
            let actions: Vec<&str> = actions.split(',').collect();
            let token = jwt(&k2, &c2, &name, &actions);
            let body =
                serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
                    .to_string();
            respond(
                &mut s,
                200,
                "OK",
                &[("Content-Type".into(), "application/json".into())],
                body.as_bytes(),
                false,
            );
        });
        Issuer {
            port,
            dir,
            stop,
            seen,
            mode,
        }
    }

    /// The realm URL.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// Token requests from runbook (not the harness's own), by scope.
    pub fn requests(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, h)| !h)
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Forget what was seen.
    pub fn reset(&self) {
        self.seen.lock().unwrap().clear();
    }

    /// Change the behaviour.
    pub fn set_mode(&self, m: IssuerMode) {
        *self.mode.lock().unwrap() = m;
    }

    /// A push+pull token for the harness itself (not counted).
    pub fn harness_token(&self, repo: &str) -> String {
        let r = http(
            "GET",
            &format!(
                "{}?service={SERVICE}&scope=repository:{repo}:pull,push",
                self.realm()
            ),
            &[("X-Harness", "1")],
            b"",
        );
        assert_eq!(
            r.status,
            200,
            "harness token: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["token"].as_str().unwrap().to_string()
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
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

// ---------------------------------------------------------------------------
// The registry

/// A running `docker-registry serve` on 127.0.0.1 (killed when dropped).
pub struct Registry {
    child: Child,
    /// Its storage, config and log (removed when dropped).
    _dir: tempfile::TempDir,
    pub port: u16,
    /// Set for the Bearer-token registry.
    pub issuer: Option<Issuer>,
    /// Whether it wants HTTP Basic (htpasswd) credentials.
    pub basic: bool,
}

/// The user of the htpasswd registry.
pub const BASIC_USER: &str = "runbook-user";
/// Its password (the bcrypt line below was made with `htpasswd -Bbn`).
pub const BASIC_PASS: &str = "pw-4b9e1c77-basic";
const HTPASSWD: &str =
    "runbook-user:$2y$05$TPCKIOq1EKcHzZ10Ku4dkO4Mm3JK4iWudu.6l/WigMMtnBrwsKDpO\n";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// An open registry.
    pub fn open() -> Registry {
        Registry::start(None, false)
    }

    /// A registry that wants HTTP Basic credentials (htpasswd).
    pub fn with_basic() -> Registry {
        Registry::start(None, true)
    }

    /// A registry behind a Bearer-token challenge whose issuer is the harness's.
    pub fn with_tokens() -> Registry {
        Registry::start(Some(Issuer::start()), false)
    }

    fn start(issuer: Option<Issuer>, basic: bool) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: runbook-test-secret\n",
                dir.path().join("data").display()
            );
            if let Some(iss) = &issuer {
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    iss.realm(),
                    iss.dir.path().join("rootbundle.pem").display()
                ));
            }
            if basic {
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, HTPASSWD).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: runbook-test\n    path: {}\n",
                    file.display()
                ));
            }
            let cfg = dir.path().join("config.yml");
            std::fs::write(&cfg, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Registry {
                        child,
                        _dir: dir,
                        port,
                        issuer,
                        basic,
                    };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            last = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        }
        panic!("docker-registry did not start:\n{last}");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/repo`.
    pub fn image(&self, repo: &str) -> String {
        format!("{}/{repo}", self.host())
    }

    fn auth(&self, repo: &str) -> Vec<(String, String)> {
        match &self.issuer {
            Some(i) => vec![(
                "Authorization".into(),
                format!("Bearer {}", i.harness_token(repo)),
            )],
            None if self.basic => {
                vec![(
                    "Authorization".into(),
                    format!(
                        "Basic {}",
                        b64(format!("{BASIC_USER}:{BASIC_PASS}").as_bytes())
                    ),
                )]
            }
            None => Vec::new(),
        }
    }

    fn req(
        &self,
        method: &str,
        url: &str,
        repo: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResp {
        let auth = self.auth(repo);
        let mut hs: Vec<(&str, &str)> =
            auth.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        hs.extend_from_slice(extra);
        let url = if url.starts_with("http://") {
            url.to_string()
        } else {
            format!("http://{}{url}", self.host())
        };
        http(method, &url, &hs, body)
    }

    /// Upload a blob (POST then monolithic PUT); returns its digest.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let d = digest(bytes);
        let r = self.req(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            repo,
            &[],
            b"",
        );
        assert_eq!(
            r.status,
            202,
            "blob upload start: {}",
            String::from_utf8_lossy(&r.body)
        );
        let loc = r.headers.get("location").expect("upload location").clone();
        let loc = if loc.starts_with('/') {
            format!("http://{}{loc}", self.host())
        } else {
            loc
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self.req(
            "PUT",
            &format!("{loc}{sep}digest={d}"),
            repo,
            &[("Content-Type", "application/octet-stream")],
            bytes,
        );
        assert_eq!(
            r.status,
            201,
            "blob upload: {}",
            String::from_utf8_lossy(&r.body)
        );
        d
    }

    /// Put a manifest at `reference`; returns its digest.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let r = self.req(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            repo,
            &[("Content-Type", media_type)],
            bytes,
        );
        assert_eq!(
            r.status,
            201,
            "manifest put: {}",
            String::from_utf8_lossy(&r.body)
        );
        digest(bytes)
    }

    /// Push a small image (config + one layer) as an OCI manifest (or a
    /// Docker v2 one); returns the manifest digest.
    pub fn push_image(&self, repo: &str, tag: &str, seed: &str, oci: bool) -> String {
        let layer = format!("layer for {repo}:{tag} {seed}").into_bytes();
        let layer_d = self.push_blob(repo, &layer);
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer_d]}
        })
        .to_string()
        .into_bytes();
        let config_d = self.push_blob(repo, &config);
        let (mt, config_mt, layer_mt) = if oci {
            (
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        } else {
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": mt,
            "config": {"mediaType": config_mt, "digest": config_d, "size": config.len()},
            "layers": [{"mediaType": layer_mt, "digest": layer_d, "size": layer.len()}]
        })
        .to_string()
        .into_bytes();
        self.push_manifest(repo, tag, mt, &manifest)
    }

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
}

impl Registry {
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
        let bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json";
        let bundle_d = self.push_blob(repo, &bundle);
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

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

// ---------------------------------------------------------------------------
// The fault-injecting server

/// What the fault server does with one connection.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and headers (no body for HEAD).
    Status(u16, Vec<(String, String)>),
    /// Answer 200 as a registry would for a present manifest.
    Present,
    /// Answer 404 as a registry would for a missing manifest.
    Absent,
    /// Read nothing and close: the peer sees a reset.
    Reset,
    /// Accept and never answer (the connection is held up to 60 s).
    Hang,
}

/// The digest the fault server reports for present manifests.
pub const FAULT_DIGEST: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// A scripted HTTP server on 127.0.0.1: connection n gets `script[n]`
/// (the last entry repeats). Counts the requests it saw.
pub struct FaultServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    pub hits: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<(Instant, SeenRequest)>>>,
}

impl FaultServer {
    pub fn start(script: Vec<Fault>) -> FaultServer {
        assert!(!script.is_empty());
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (h2, s2, st2) = (hits.clone(), seen.clone(), stop.clone());
        let port = serve(Duration::from_secs(300), stop.clone(), move |mut s| {
            let n = h2.fetch_add(1, Ordering::SeqCst);
            let fault = script[n.min(script.len() - 1)].clone();
            if let Fault::Reset = fault {
                // Wait for the request to arrive, leave it unread, close: the kernel sends RST.
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut b = [0u8; 1];
                let _ = s.peek(&mut b);
                s2.lock().unwrap().push((
                    Instant::now(),
                    SeenRequest {
                        method: "?".into(),
                        path: "(reset)".into(),
                        headers: HashMap::new(),
                    },
                ));
                return;
            }
            let Some(req) = read_request(&mut s) else {
                return;
            };
            s2.lock().unwrap().push((Instant::now(), req.clone()));
            let head = req.method == "HEAD";
            match fault {
                Fault::Status(code, headers) => {
                    let body =
                        format!(r#"{{"errors":[{{"code":"FAULT","message":"injected {code}"}}]}}"#);
                    respond(&mut s, code, "Injected", &headers, body.as_bytes(), head)
                }
                Fault::Present => respond(
                    &mut s,
                    200,
                    "OK",
                    &[
                        ("Docker-Content-Digest".into(), FAULT_DIGEST.into()),
                        (
                            "Content-Type".into(),
                            "application/vnd.oci.image.manifest.v1+json".into(),
                        ),
                    ],
                    b"{}",
                    head,
                ),
                Fault::Absent => respond(
                    &mut s,
                    404,
                    "Not Found",
                    &[("Content-Type".into(), "application/json".into())],
                    br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                    head,
                ),
                Fault::Hang => {
                    let started = Instant::now();
                    while !st2.load(Ordering::Relaxed)
                        && started.elapsed() < Duration::from_secs(60)
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                Fault::Reset => {}
            }
        });
        FaultServer {
            port,
            stop,
            hits,
            seen,
        }
    }

    pub fn image(&self, repo: &str) -> String {
        format!("127.0.0.1:{}/{repo}", self.port)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
