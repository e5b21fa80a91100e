//! Raw TCP, only for the hostile servers whose point is the bytes on the
//! wire (a body with no framing, a Content-Length that lies, a trickle),
//! which an HTTP library would frame correctly. Every other server is the
//! stub of `http`.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A server on 127.0.0.1 that reads each connection's request head and
/// lets `respond` write whatever it likes, then closes. Stops when dropped
/// or after 120 s.
pub struct RawServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

/// Read up to the blank line that ends a request head (at most 64 KiB and
/// 10 s); the request is not parsed, only taken off the wire.
fn skip_head(s: &mut TcpStream) -> bool {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(n) if n > 0 && head.len() < 64 * 1024 => head.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    true
}

impl RawServer {
    pub fn start(respond: fn(&mut TcpStream)) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            while !s2.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                std::thread::spawn(move || {
                    s.set_nonblocking(false).ok();
                    if skip_head(&mut s) {
                        respond(&mut s);
                    }
                });
            }
        });
        RawServer { port, stop }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
