//! A scripted registry for the fault tests, on the HTTP stub (127.0.0.1):
//! request n gets `script[n]` (the last entry repeats), each answer closes
//! its connection, so request n is also connection n.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::http::{Reply, Request, Stub};

/// What the fault server does with one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and headers (no body for HEAD).
    Status(u16, Vec<(String, String)>),
    /// Answer 200 as a registry would for a present manifest.
    Present,
    /// Answer 404 as a registry would for a missing manifest.
    Absent,
    /// No answer, the connection reset: the peer sees a TCP RST.
    Reset,
    /// Accept and never answer (the connection is held up to 60 s).
    Hang,
}

/// The digest the fault server reports for present manifests.
pub const FAULT_DIGEST: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn reply(fault: Fault) -> Reply {
    let reply = match fault {
        Fault::Status(code, headers) => {
            let body = format!(r#"{{"errors":[{{"code":"FAULT","message":"injected {code}"}}]}}"#);
            headers
                .iter()
                .fold(Reply::status(code), |r, (k, v)| r.header(k, v))
                .body(body)
        }
        Fault::Present => Reply::status(200)
            .header("Docker-Content-Digest", FAULT_DIGEST)
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body("{}"),
        Fault::Absent => Reply::status(404)
            .header("Content-Type", "application/json")
            .body(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#),
        Fault::Reset => return Reply::reset(),
        Fault::Hang => return Reply::hang(Duration::from_secs(60)),
    };
    reply.header("Connection", "close")
}

/// The scripted server; stopped when dropped.
pub struct FaultServer {
    stub: Stub,
    hits: Arc<AtomicUsize>,
}

impl FaultServer {
    pub fn start(script: Vec<Fault>) -> FaultServer {
        assert!(!script.is_empty());
        let hits = Arc::new(AtomicUsize::new(0));
        let h2 = hits.clone();
        let stub = Stub::start(move |_: &Request| {
            let n = h2.fetch_add(1, Ordering::SeqCst);
            reply(script[n.min(script.len() - 1)].clone())
        });
        FaultServer { stub, hits }
    }

    /// `127.0.0.1:PORT/repo`.
    pub fn image(&self, repo: &str) -> String {
        format!("{}/{repo}", self.stub.host())
    }

    /// Requests answered (or reset, or left hanging) so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Every request so far, with when it arrived.
    pub fn seen(&self) -> Vec<Request> {
        self.stub.seen()
    }
}
