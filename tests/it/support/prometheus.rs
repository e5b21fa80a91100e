//! A real Prometheus (Debian's `prometheus`) on 127.0.0.1, scraping every
//! second one stand-in service whose error ratio the test controls; killed
//! when dropped. Every wait is bounded.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::{free_port, Reply, Stub};

/// The stand-in service: `GET /deploy/IMAGE` points it at an image (an
/// image whose name holds "bad" errs 20% of the time), `GET /metrics`
/// says its error ratio as a gauge, `GET /health` answers 200 (503 when
/// bad).
pub struct App {
    pub stub: Stub,
    pub image: Arc<Mutex<String>>,
}

impl App {
    /// Running `image`.
    pub fn start(image: &str) -> App {
        let state = Arc::new(Mutex::new(image.to_string()));
        let s = state.clone();
        let stub = Stub::start(move |req| {
            let bad = s.lock().unwrap().contains("bad");
            if let Some(img) = req.path.strip_prefix("/deploy/") {
                *s.lock().unwrap() = img.to_string();
                return Reply::status(200);
            }
            match req.path.as_str() {
                "/metrics" => Reply::status(200)
                    .header("Content-Type", "text/plain; version=0.0.4")
                    .body(format!(
                        "# TYPE app_error_ratio gauge\napp_error_ratio {}\n",
                        if bad { "0.2" } else { "0" }
                    )),
                "/health" => Reply::status(if bad { 503 } else { 200 }),
                _ => Reply::status(404),
            }
        });
        App { stub, image: state }
    }

    /// The image it runs now.
    pub fn image(&self) -> String {
        self.image.lock().unwrap().clone()
    }
}

/// A Prometheus process.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// Whether the Prometheus binary is installed (ci/install-deps.sh does).
pub fn available() -> bool {
    Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One GET with std only (no panic on a refused connection): status and body.
pub fn get(port: u16, target: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

impl Prometheus {
    /// Start it scraping `target` (`IP:PORT`) every second, and wait
    /// (bounded: 30 s) until it is ready and has the target's first sample.
    pub fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus (ci/install-deps.sh installs it)");
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        p.wait_for("/api/v1/query?query=app_error_ratio", |b| {
            b.contains("\"value\"")
        });
        p
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Poll `target` until its 200 body satisfies `ok` (bounded: 30 s).
    pub fn wait_for(&self, target: &str, ok: impl Fn(&str) -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some((200, body)) = get(self.port, target) {
                if ok(&body) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "prometheus on port {} did not answer {target} within 30 s",
            self.port
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
