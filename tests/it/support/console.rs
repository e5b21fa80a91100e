//! The Akash Console API stand-in (tests/standins/akash_console.py, a
//! real Python process on 127.0.0.1) and the states the split-deploy
//! tests give it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::bin::{repo, Project};

/// The Akash Console API stand-in (tests/standins/akash_console.py), on
/// 127.0.0.1 with a random port; killed when dropped.
pub struct Console {
    child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
}

pub const API_KEY: &str = "console-key-5b1e0a77";

impl Console {
    /// Start it with a `state.json`.
    pub fn start(state: serde_json::Value) -> Console {
        let dir = tempfile::tempdir().unwrap();
        Console::write_state_in(dir.path(), &state);
        let child = Command::new("python3")
            .arg(repo().join("tests/standins/akash_console.py"))
            .args([
                "--dir",
                dir.path().to_str().unwrap(),
                "--api-key-env",
                "STANDIN_API_KEY",
                "--max-seconds",
                "300",
            ])
            .env("STANDIN_API_KEY", API_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 for the Akash stand-in");
        let port_file = dir.path().join("port");
        let started = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                if let Ok(p) = p.trim().parse::<u16>() {
                    break p;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the Akash stand-in did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        Console {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn write_state_in(dir: &Path, state: &serde_json::Value) {
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_string(state).unwrap()).unwrap();
        std::fs::rename(tmp, dir.join("state.json")).unwrap();
    }

    /// Change the stand-in's state between runs (read, edit, write back
    /// atomically), e.g. a deployment someone updated by hand.
    pub fn edit_state(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.dir.path().join("state.json");
        let mut state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut state);
        Console::write_state_in(self.dir.path(), &state);
    }

    /// The deployment as the stand-in answers it now (`GET`, with the key).
    pub fn deployment(&self, dseq: &str) -> serde_json::Value {
        let r = super::http::request(
            "GET",
            &format!("{}/v1/deployments/{dseq}", self.url),
            &[("x-api-key", API_KEY)],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    /// Every request it saw, in order.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The requests with this method.
    pub fn requests_with(&self, method: &str) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["method"] == method)
            .collect()
    }

    /// Point a project's runs at this server.
    pub fn configure(&self, p: &mut Project) {
        p.env("AKASH_CONSOLE_API_URL", &self.url)
            .env("AKASH_CONSOLE_API_KEY", API_KEY);
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repo's SDL of a stack.
pub fn sdl(stack: &str) -> String {
    std::fs::read_to_string(repo().join(format!("infra/{stack}/deploy.yaml"))).unwrap()
}

/// A state with the two split-deploy deployments (1001 node, 1002 api).
pub fn split_state(extra: serde_json::Value) -> serde_json::Value {
    let mut state = serde_json::json!({
        "deployments": {
            "1001": {"sdl": sdl("akash-banano")},
            "1002": {"sdl": sdl("akash-api")}
        },
        "scenario": "ready"
    });
    if let (Some(s), Some(e)) = (state.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    state
}
