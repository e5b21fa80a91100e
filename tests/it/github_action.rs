//! `action.yml`: its two steps' own scripts, run with bash as a runner
//! would, against a local "release" served on 127.0.0.1: the binary is
//! fetched, its SHA-256 checked (a tampered one is refused and never put on
//! PATH), and the playbook runs with its exit code as the step's output.

use crate::support;

use std::path::Path;
use std::process::Command;

use support::http::{Reply, Stub};
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

/// A static file server for `dir` (by a URL's last segment), on the stub.
fn serve_files(dir: &Path) -> Stub {
    let dir = dir.to_path_buf();
    Stub::start(move |req| {
        let name = req.path.rsplit('/').next().unwrap_or("");
        match std::fs::read(dir.join(name)) {
            Ok(body) => Reply::status(200).body(body),
            Err(_) => Reply::status(404),
        }
    })
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
    let files = serve_files(release.path());
    let work = tempfile::tempdir().unwrap();
    let runner_temp = work.path().join("tmp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    let gh_path = work.path().join("github_path");
    let base_env = |want: &str, version: &str| {
        vec![
            ("VERSION", version.to_string()),
            ("WANT_SHA256", want.to_string()),
            ("REPOSITORY", "acme/runbook".to_string()),
            ("DOWNLOAD_URL", files.url()),
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
