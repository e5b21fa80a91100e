//! The GitHub REST API stand-in (tests/standins/github_api.py, a real
//! Python process on 127.0.0.1), and the contract every answer it gives
//! is held to: tests/data/github/rest-api-subset.json, the operations'
//! schemas from GitHub's published OpenAPI description.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::bin::{repo, Project};

/// The token the stand-in requires and the tests give runbook.
pub const TOKEN: &str = "ghs_standinTok3nVALUE0123456789";

/// The repository the tests' runs write to.
pub const REPO: &str = "acme/app";

/// The stand-in, on 127.0.0.1 with a random port; killed when dropped.
pub struct GithubApi {
    child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl GithubApi {
    /// Start it (no knobs).
    pub fn start() -> GithubApi {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("python3")
            .arg(repo().join("tests/standins/github_api.py"))
            .args(["--dir", dir.path().to_str().unwrap()])
            .args(["--token-env", "STANDIN_TOKEN", "--max-seconds", "300"])
            .env("STANDIN_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 for the GitHub stand-in");
        let port_file = dir.path().join("port");
        let started = Instant::now();
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                break p;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the GitHub stand-in did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        GithubApi {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Set the knobs (written atomically; read on the next request).
    pub fn knobs(&self, k: Value) {
        let tmp = self.dir.path().join("knobs.json.tmp");
        std::fs::write(&tmp, k.to_string()).unwrap();
        std::fs::rename(tmp, self.dir.path().join("knobs.json")).unwrap();
    }

    /// Every request it saw, in order, with its answer.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// `METHOD path` of every request, the repository prefix cut.
    pub fn calls(&self) -> Vec<String> {
        let prefix = format!("/repos/{REPO}");
        self.requests()
            .iter()
            .map(|r| {
                let path = r["path"].as_str().unwrap_or("");
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap_or(""),
                    path.strip_prefix(&prefix).unwrap_or(path)
                )
            })
            .collect()
    }

    /// The repository's state: refs, commits, deployments, statuses.
    pub fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("repo.json"))
            .unwrap_or_else(|_| "{}".into());
        let all: Value = serde_json::from_str(&text).unwrap();
        all.get(REPO).cloned().unwrap_or(json!({}))
    }

    /// What the lock ref's commit says (its message, as JSON).
    pub fn lock_commit(&self, name: &str) -> Option<Value> {
        let s = self.state();
        let sha = s["refs"][format!("refs/runbook/locks/{name}")].as_str()?;
        serde_json::from_str(s["commits"][sha]["message"].as_str()?).ok()
    }

    /// The payloads of the deployments of `env`, oldest first.
    pub fn records(&self, env: &str) -> Vec<Value> {
        self.state()["deployments"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d["environment"] == env)
            .map(|d| d["payload"].clone())
            .collect()
    }

    /// Point a project's runs at this server, both backends github.
    pub fn configure(&self, p: &mut Project) {
        p.env("GITHUB_API_URL", &self.url)
            .env("GITHUB_REPOSITORY", REPO)
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_SHA", "4f1c2a0000000000000000000000000000000001")
            .env("RUNBOOK_LOCK_BACKEND", "github")
            .env("RUNBOOK_LEDGER_BACKEND", "github");
    }

    /// Every answer it gave is in GitHub's schema for its operation and
    /// status, and every request body it accepted in the operation's
    /// request schema; the token was never outside the header.
    /// Answers without the right token (401) are held to the error shape.
    #[track_caller]
    pub fn assert_contract(&self) {
        let reqs = self.requests();
        assert!(!reqs.is_empty(), "no request reached the stand-in");
        for r in &reqs {
            let (method, path) = (r["method"].as_str().unwrap(), r["path"].as_str().unwrap());
            let what = format!("{method} {path} → {}", r["status"]);
            assert_eq!(
                r["token_in_request"], false,
                "{what}: the token outside the header"
            );
            let Some(op) = operation(method, path) else {
                panic!("{what}: not an operation of the subset");
            };
            let status = r["status"].as_u64().unwrap().to_string();
            conforms(&response_schema(op, &status), &what, &r["answer"]);
            // A body GitHub accepted is in the request schema (a test's
            // deliberately bad ones are refused and not held to it).
            let accepted = r["status"].as_u64().is_some_and(|s| s < 300);
            if let Some(body) = r.get("body").filter(|b| accepted && !b.is_null()) {
                conforms(
                    &format!("/operations/{}/request", esc(op)),
                    &format!("{what}: the request body"),
                    body,
                );
            }
        }
    }
}

impl Drop for GithubApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The operation a request is, by method and path.
pub fn operation(method: &str, path: &str) -> Option<&'static str> {
    let tail = path.strip_prefix("/repos/")?.splitn(3, '/').nth(2)?;
    let tail = format!("/{tail}");
    let statuses = tail.starts_with("/deployments/") && tail.ends_with("/statuses");
    Some(match method {
        "GET" if tail.starts_with("/git/ref/") => "git/get-ref",
        "POST" if tail == "/git/refs" => "git/create-ref",
        "PATCH" if tail.starts_with("/git/refs/") => "git/update-ref",
        "POST" if tail == "/git/commits" => "git/create-commit",
        "GET" if tail.starts_with("/git/commits/") => "git/get-commit",
        "POST" if tail == "/deployments" => "repos/create-deployment",
        "GET" if tail == "/deployments" => "repos/list-deployments",
        "POST" if statuses => "repos/create-deployment-status",
        "GET" if statuses => "repos/list-deployment-statuses",
        _ => return None,
    })
}

fn esc(op: &str) -> String {
    op.replace('~', "~0").replace('/', "~1")
}

/// The JSON pointer (into the subset) of `op`'s answer with `status`: the
/// operation's own when it lists the status, else GitHub's shared error
/// answers (401, 403, 404, 422; a rate limit's 403/429 and a 5xx are
/// basic errors too).
pub fn response_schema(op: &str, status: &str) -> String {
    let doc = subset();
    if !doc["operations"][op]["responses"][status].is_null() {
        return format!("/operations/{}/responses/{status}", esc(op));
    }
    match status {
        "401" => "/errors/requires_authentication".into(),
        "404" => "/errors/not_found".into(),
        "422" => "/errors/validation_failed".into(),
        _ => "/errors/forbidden".into(),
    }
}

/// The recorded subset of GitHub's description.
pub fn subset() -> Value {
    let text = std::fs::read_to_string(repo().join("tests/data/github/rest-api-subset.json"))
        .expect("the recorded GitHub API subset");
    serde_json::from_str(&text).expect("the subset is JSON")
}

/// A validator for the schema at `pointer` in the subset.
pub fn schema(pointer: &str) -> jsonschema::Validator {
    let mut s = subset();
    assert!(
        s.pointer(pointer).is_some_and(|v| !v.is_null()),
        "the subset has nothing at {pointer}"
    );
    s["$ref"] = json!(format!("#{pointer}"));
    jsonschema::draft202012::new(&s).expect("the subset compiles")
}

/// Fails naming each way `v` departs from the schema at `pointer`.
#[track_caller]
pub fn conforms(pointer: &str, what: &str, v: &Value) {
    let errors: Vec<String> = schema(pointer)
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} is not {pointer}:\n  {}\n{v:#}",
        errors.join("\n  ")
    );
}
