//! `action.yml`: its two steps' own scripts, run with bash as a runner
//! would, against a local "release" served on 127.0.0.1: the binary is
//! fetched, its SHA-256 checked against the one the workflow pinned (a
//! tampered one is refused and never put on PATH; a mirror without a pinned
//! checksum is refused before anything is fetched), and the playbook runs
//! with its exit code as the step's output, each line of `args` one argv
//! element, however hostile.

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

/// A release folder served on loopback: `runbook-linux-<arch>` holding
/// `binary`, and a SHA256SUMS that vouches for it (as a mirror would).
struct Release {
    _dir: tempfile::TempDir,
    files: Stub,
    sha256: String,
}

fn release(binary: &[u8]) -> Release {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("runbook-linux-{}", arch());
    std::fs::write(dir.path().join(&name), binary).unwrap();
    let sha256 = sha256_hex(binary);
    std::fs::write(
        dir.path().join("SHA256SUMS"),
        format!(
            "{sha256}  {name}\n{}  runbook-linux-other\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let files = serve_files(dir.path());
    Release {
        _dir: dir,
        files,
        sha256,
    }
}

/// The fetch step's environment: `want` is the `sha256` input.
fn fetch_env(rel: &Release, want: &str, version: &str, work: &Path) -> Vec<(&'static str, String)> {
    let runner_temp = work.join("tmp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    vec![
        ("VERSION", version.to_string()),
        ("WANT_SHA256", want.to_string()),
        ("REPOSITORY", "acme/runbook".to_string()),
        ("DOWNLOAD_URL", rel.files.url()),
        ("RUNNER_TEMP", runner_temp.display().to_string()),
        (
            "GITHUB_PATH",
            work.join("github_path").display().to_string(),
        ),
        ("PATH", std::env::var("PATH").unwrap()),
    ]
}

#[test]
fn the_action_fetches_verifies_and_runs() {
    let steps = steps();
    assert_eq!(steps.len(), 2);
    // The "prebuilt binary": a small launcher of the binary under test (a
    // 200 MB debug build would make the test slow, not more real).
    let binary = format!("#!/bin/sh\nexec '{}' \"$@\"\n", bin().display()).into_bytes();
    let rel = release(&binary);
    let work = tempfile::tempdir().unwrap();
    let gh_path = work.path().join("github_path");

    // A checksum that does not match: refused, nothing put on PATH.
    let (code, out) = run_step(
        &steps[0].0,
        &fetch_env(&rel, &"a".repeat(64), "v-bad", work.path()),
        work.path(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checksum mismatch"), "{out}");
    assert!(!gh_path.exists(), "a refused binary is never put on PATH");
    assert!(
        !work.path().join("tmp/runbook-v-bad/runbook").exists(),
        "a refused binary is removed"
    );

    // A mirror with no pinned checksum: refused before any download, even
    // though the mirror's own SHA256SUMS would vouch for its binary.
    let (code, out) = run_step(
        &steps[0].0,
        &fetch_env(&rel, "", "v1", work.path()),
        work.path(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("'download-url' is set but 'sha256' is not"),
        "{out}"
    );
    assert!(!work.path().join("tmp/runbook-v1").exists(), "{out}");
    assert!(!gh_path.exists());

    // A pinned checksum that is not one, and a version that is a path.
    for (want, version, says) in [
        ("SHA256SUMS", "v1", "must be 64 lowercase hex"),
        (rel.sha256.as_str(), "../../etc", "must be a release tag"),
    ] {
        let (code, out) = run_step(
            &steps[0].0,
            &fetch_env(&rel, want, version, work.path()),
            work.path(),
        );
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(says), "{out}");
        assert!(!gh_path.exists());
    }

    // The pinned checksum of what the mirror serves: accepted, on PATH.
    let (code, out) = run_step(
        &steps[0].0,
        &fetch_env(&rel, &rel.sha256, "v1", work.path()),
        work.path(),
    );
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
    // One argument per line, as `args: |` gives it (a trailing newline).
    let (code, out) = run_step(&steps[1].0, &run_env("--n\n1\n"), work.path());
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_step(&steps[1].0, &run_env("--n=5"), work.path());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("::error"), "github log format: {out}");
    // The old space-separated form is one argument now: a usage error.
    let (code, out) = run_step(&steps[1].0, &run_env("--n 1"), work.path());
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        std::fs::read_to_string(&gh_out).unwrap(),
        "exit-code=0\nexit-code=2\nexit-code=2\n"
    );
}

/// What a recording "runbook" got as argv, NUL-separated in `file`.
fn argv_of(file: &Path) -> Vec<String> {
    let raw = std::fs::read(file).unwrap();
    raw.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect()
}

#[test]
fn each_args_line_is_one_argv_element_however_hostile() {
    let steps = steps();
    let work = tempfile::tempdir().unwrap();
    // A "runbook" on PATH that records its argv, one NUL after each.
    let bindir = work.path().join("bin");
    std::fs::create_dir_all(&bindir).unwrap();
    let record = work.path().join("argv");
    let fake = bindir.join("runbook");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > '{}'\n",
            record.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Files a glob would match, and a marker `$(…)` would create.
    std::fs::write(work.path().join("a.rhai"), "").unwrap();
    std::fs::write(work.path().join("b.rhai"), "").unwrap();
    let pwned = work.path().join("pwned");
    let hostile = [
        "--sha",
        "4f1c2a0000000000000000000000000000000000 --registry evil",
        "$(touch pwned) `touch pwned` ${HOME} $HOME",
        "*.rhai ? [ab].rhai ~ {a,b}",
        "literal \\n and a real\rcarriage return",
        "::error::forged ::add-mask::x ::stop-commands::y",
        "'quoted' \"double\" ; | & > out < in",
        "",
        "  leading and trailing spaces  ",
    ];
    let args = hostile.join("\n") + "\n";
    let gh_out = work.path().join("github_output");
    let env = vec![
        ("PLAYBOOK", "play book.rhai".to_string()),
        ("ARGS", args),
        ("GITHUB_OUTPUT", gh_out.display().to_string()),
        (
            "PATH",
            format!("{}:{}", bindir.display(), std::env::var("PATH").unwrap()),
        ),
    ];
    let (code, out) = run_step(&steps[1].0, &env, work.path());
    assert_eq!(code, 0, "{out}");
    let mut want = vec!["play book.rhai".to_string()];
    want.extend(hostile.iter().map(|s| s.to_string()));
    want.extend(["--log-format".to_string(), "github".to_string()]);
    // The empty line is an (empty) argument too: count it apart, since the
    // NUL-split reader drops empty strings.
    let raw = std::fs::read(&record).unwrap();
    assert_eq!(
        raw.iter().filter(|b| **b == 0).count(),
        want.len(),
        "one argv element per line: {:?}",
        String::from_utf8_lossy(&raw)
    );
    want.retain(|s| !s.is_empty());
    assert_eq!(argv_of(&record), want);
    assert!(!pwned.exists(), "a $(…) in args ran");
    assert!(!work.path().join("out").exists(), "a > in args redirected");

    // No args at all: just the playbook and the log format.
    let env: Vec<_> = env
        .into_iter()
        .map(|(k, v)| {
            if k == "ARGS" {
                (k, String::new())
            } else {
                (k, v)
            }
        })
        .collect();
    let (code, out) = run_step(&steps[1].0, &env, work.path());
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        argv_of(&record),
        ["play book.rhai", "--log-format", "github"]
    );
}
