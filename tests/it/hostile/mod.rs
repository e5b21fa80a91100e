//! Hostile input, one test binary grouped by promise (the README's
//! security model): no workflow command smuggled (`injection`), no secret
//! printed in any form (`redaction`), no abort and cleanup on every path
//! (`aborts`, `signals`), imports stay in the project (`imports`), every
//! read bounded (`bounds`), credentials never leave their host
//! (`credentials`), `exec`'s sandbox holds (`sandbox`). Outputs are read
//! the way the GitHub Actions runner reads them (`runner`). The real binary against real servers on
//! 127.0.0.1 and 127.0.0.2 (a second origin); every server here has a
//! bounded lifetime and every load is bounded in size and time.

mod runner;

mod aborts;
mod bounds;
mod credentials;
mod imports;
mod injection;
mod redaction;
mod sandbox;
mod signals;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{self, Output, Project};

/// One request a hostile server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    /// The body (at most 1 MiB), as text.
    pub body: String,
}

/// A server on `ip` that records every request and answers with `handler`
/// (which writes the whole answer itself). It stops when dropped, or after
/// 120 s at the latest.
pub struct Hostile {
    pub port: u16,
    pub ip: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Hostile {
    pub fn start(
        ip: &'static str,
        handler: impl Fn(&Seen, &mut TcpStream) + Send + Sync + 'static,
    ) -> Hostile {
        let l = TcpListener::bind((ip, 0)).expect("bind a loopback port");
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (seen.clone(), stop.clone());
        let handler = Arc::new(handler);
        std::thread::spawn(move || {
            let started = Instant::now();
            while !st2.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let (s3, h, st3) = (s2.clone(), handler.clone(), st2.clone());
                        std::thread::spawn(move || {
                            s.set_nonblocking(false).ok();
                            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                            // Keep-alive: answer requests until the peer closes.
                            while !st3.load(Ordering::Relaxed) {
                                let Some(req) = read_head(&s) else { return };
                                s3.lock().unwrap().push(req.clone());
                                h(&req, &mut s);
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Hostile {
            port,
            ip,
            seen,
            stop,
        }
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.ip, self.port)
    }

    /// `IP:PORT`.
    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Read a request head (and skip a small body by Content-Length).
fn read_head(s: &TcpStream) -> Option<Seen> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.min(1 << 20)];
    if len > 0 {
        std::io::Read::read_exact(&mut r, &mut body).ok()?;
    }
    Some(Seen {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Write a whole small answer.
pub fn answer(s: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
}

/// A playbook project with `pb.rhai`.
pub fn pb(src: &str) -> Project {
    let p = Project::new();
    p.file("pb.rhai", src);
    p
}

/// Run the binary under `/usr/bin/time -v` (bounded: 120 s) and return its
/// output with its peak RSS in KiB (`Maximum resident set size`).
pub fn run_measured(p: &Project, args: &[&str]) -> (Output, u64) {
    let plain = p.command(args);
    let mut cmd = std::process::Command::new("/usr/bin/time");
    cmd.arg("-v").arg(support::bin()).args(args);
    if let Some(d) = plain.get_current_dir() {
        cmd.current_dir(d);
    }
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().expect("/usr/bin/time (Debian package `time`)");
    let out = support::wait_output(child, Duration::from_secs(120), started);
    let kib = out
        .stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|n| n.trim().parse().ok())
        .expect("time -v reports the peak RSS");
    (out, kib)
}

/// The contract's memory bound for any hostile input.
pub const RSS_BOUND_KIB: u64 = 200 * 1024;

/// Whether `/usr/bin/time` is there (CI installs the `time` package).
pub fn have_time(test: &str) -> bool {
    let ok = std::path::Path::new("/usr/bin/time").exists();
    if !ok {
        eprintln!("skipping {test}: /usr/bin/time is missing (apt-get install time)");
    }
    ok
}
