//! A real registry for the registry tests: the Debian `docker-registry`
//! (CNCF distribution) on 127.0.0.1 (open, behind the harness's token
//! issuer, or behind htpasswd), and the harness's image pushes to it over
//! plain HTTP. Signing images the cosign way is in `cosign`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::bin::repo;
use super::http::{free_port, request, Response};
use super::issuer::{b64, Issuer, ISSUER, SERVICE};

/// Where the registry binary lives (Debian package `docker-registry`).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Panics, naming the install command, when the registry binary is absent:
/// a registry test that cannot run fails instead of passing by doing
/// nothing. `Registry::start` calls it, so every registry test checks.
pub fn require_registry() {
    assert!(
        Path::new(REGISTRY_BIN).exists(),
        "{REGISTRY_BIN} is absent: install it with `apt-get install -y docker-registry` \
         (ci/install-deps.sh does; ci/test.sh runs it when the registry is missing)"
    );
}

/// The repository's cosign test data folder.
pub fn cosign_data(rel: &str) -> PathBuf {
    repo().join("tests/data/cosign").join(rel)
}

/// `sha256:<hex>` of bytes.
pub fn digest(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

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
        require_registry();
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
    ) -> Response {
        let auth = self.auth(repo);
        let mut hs: Vec<(&str, &str)> =
            auth.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        hs.extend_from_slice(extra);
        let url = if url.starts_with("http://") {
            url.to_string()
        } else {
            format!("http://{}{url}", self.host())
        };
        request(method, &url, &hs, body)
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
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
