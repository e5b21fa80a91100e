//! `action.yml`: its two steps' own scripts, run with bash as a runner
//! would, against a local "release" served on 127.0.0.1: the binary is
//! fetched, its SHA-256 checked (a tampered one is refused and never put on
//! PATH), and the playbook runs with its exit code as the step's output.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{bin, repo};

/// The `run:` script and `env:` of each step of the action.
fn steps() -> Vec<(String, serde_json::Value)> {
    let text = std::fs::read_to_string(repo().join("action.yml")).unwrap();
    let y: serde_json::Value = serde_norway::from_str(&text).unwrap();
    y["runs"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["run"].as_str().unwrap().to_string(), s["env"].clone()))
        .collect()
}

/// A static file server for `dir` on 127.0.0.1 (GET only, bounded: it
/// stops when dropped or after 60 s).
struct Files {
    url: String,
    stop: Arc<AtomicBool>,
}

impl Files {
    fn serve(dir: &Path) -> Files {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let stop = Arc::new(AtomicBool::new(false));
        let (dir, s2) = (dir.to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            let t = Instant::now();
            while !s2.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(60) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                let mut r = BufReader::new(stream.try_clone().unwrap());
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                for _ in 0..100 {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) <= 2 {
                        break;
                    }
                }
                let path = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let file = dir.join(path.rsplit('/').next().unwrap_or(""));
                match std::fs::read(&file) {
                    Ok(body) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(&body);
                    }
                    Err(_) => {
                        let _ = write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                }
            }
        });
        Files { url, stop }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Run one step's script with `env`, in `work`; (exit code, stderr+stdout).
fn run_step(script: &str, env: &[(&str, String)], work: &Path) -> (i32, String) {
    let mut cmd = Command::new("bash");
    cmd.arg("-e").arg("-c").arg(script).current_dir(work);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_action_fetches_verifies_and_runs() {
    let steps = steps();
    assert_eq!(steps.len(), 2);
    let release = tempfile::tempdir().unwrap();
    let name = format!("runbook-linux-{}", arch());
    // The "prebuilt binary": a small launcher of the binary under test (a
    // 200 MB debug build would make the test slow, not more real).
    let binary = format!("#!/bin/sh\nexec '{}' \"$@\"\n", bin().display()).into_bytes();
    std::fs::write(release.path().join(&name), &binary).unwrap();
    std::fs::write(
        release.path().join("SHA256SUMS"),
        format!(
            "{}  {name}\n{}  runbook-linux-other\n",
            sha256_hex(&binary),
            "0".repeat(64)
        ),
    )
    .unwrap();
    let files = Files::serve(release.path());
    let work = tempfile::tempdir().unwrap();
    let runner_temp = work.path().join("tmp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    let gh_path = work.path().join("github_path");
    let base_env = |want: &str, version: &str| {
        vec![
            ("VERSION", version.to_string()),
            ("WANT_SHA256", want.to_string()),
            ("REPOSITORY", "acme/runbook".to_string()),
            ("DOWNLOAD_URL", files.url.clone()),
            ("RUNNER_TEMP", runner_temp.display().to_string()),
            ("GITHUB_PATH", gh_path.display().to_string()),
            ("PATH", std::env::var("PATH").unwrap()),
        ]
    };

    // A checksum that does not match: refused, nothing put on PATH.
    let (code, out) = run_step(
        &steps[0].0,
        &base_env(&"a".repeat(64), "v-bad"),
        work.path(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checksum mismatch"), "{out}");
    assert!(!gh_path.exists(), "a refused binary is never put on PATH");

    // From SHA256SUMS: accepted, its folder added to PATH.
    let (code, out) = run_step(&steps[0].0, &base_env("", "v1"), work.path());
    assert_eq!(code, 0, "{out}");
    let dir = std::fs::read_to_string(&gh_path)
        .unwrap()
        .trim()
        .to_string();
    assert!(Path::new(&dir).join("runbook").is_file());

    // The run step: the playbook with its args, exit code as an output.
    std::fs::write(
        work.path().join("pb.rhai"),
        "const PARAMS = #{ n: #{ type: \"int\", required: true } };\nif args.n > 1 { fail_usage(\"n too big\"); }\n",
    )
    .unwrap();
    let gh_out = work.path().join("github_output");
    let run_env = |args: &str| {
        vec![
            ("PLAYBOOK", "pb.rhai".to_string()),
            ("ARGS", args.to_string()),
            ("GITHUB_OUTPUT", gh_out.display().to_string()),
            ("PATH", format!("{dir}:{}", std::env::var("PATH").unwrap())),
        ]
    };
    let (code, out) = run_step(&steps[1].0, &run_env("--n 1"), work.path());
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_step(&steps[1].0, &run_env("--n 5"), work.path());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("::error"), "github log format: {out}");
    assert_eq!(
        std::fs::read_to_string(&gh_out).unwrap(),
        "exit-code=0\nexit-code=2\n"
    );
}
