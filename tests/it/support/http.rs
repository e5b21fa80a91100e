//! The one HTTP stub every fake server of the tests is built on: hyper 1
//! (HTTP/1.1; kube and reqwest already build it) on a tokio runtime of the
//! test process. A handler sees each request whole (its body capped at
//! 4 MiB) and returns a [`Reply`]: a body, a chunked stream, silence, or a
//! reset. A stub binds a loopback address only, serves at most 64
//! connections at once, and stops when dropped or after 10 minutes at the
//! latest. Also the harness's own client ([`request`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

const LIFETIME: Duration = Duration::from_secs(600);
const MAX_CONNECTIONS: usize = 64;
const MAX_BODY: usize = 4 << 20;

/// The runtime the stubs and the client run on (one per test process).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("http-stub")
            .enable_all()
            .build()
            .expect("the HTTP stubs' runtime")
    })
}

/// A free port on 127.0.0.1 (nobody listens on it once this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A request as a stub received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query, still percent-encoded.
    pub target: String,
    /// The path, percent-decoded.
    pub path: String,
    /// The query's pairs, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Header names lowercased (the last of a repeated header).
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// When it had arrived whole.
    pub at: Instant,
}

impl Request {
    /// A query parameter ("" when absent).
    pub fn query(&self, key: &str) -> &str {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// A header by its lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

enum Body {
    Full(Vec<u8>),
    Stream(Box<dyn FnOnce(&Sink) + Send>),
    Hang(Duration),
    Reset,
}

/// What a stub does with one request.
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Reply {
    /// This status, no body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Full(Vec::new()),
        }
    }

    /// This status and a JSON body.
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::status(status)
            .header("Content-Type", "application/json")
            .body(value.to_string())
    }

    /// Add a header (not Content-Length: hyper frames the body).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = Body::Full(body.into());
        self
    }

    /// This status, then a chunked body that `produce` writes through a
    /// [`Sink`] (on a thread of its own; the body ends when it returns).
    pub fn stream(status: u16, produce: impl FnOnce(&Sink) + Send + 'static) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Stream(Box::new(produce)),
        }
    }

    /// No answer at all: the connection is held silent for `max` (less when
    /// the stub stops), then closed.
    pub fn hang(max: Duration) -> Reply {
        Reply {
            body: Body::Hang(max),
            ..Reply::status(0)
        }
    }

    /// No answer: the connection is reset (closed with SO_LINGER 0, so the
    /// peer sees a TCP RST).
    pub fn reset() -> Reply {
        Reply {
            body: Body::Reset,
            ..Reply::status(0)
        }
    }
}

/// Where a streamed reply writes its chunks.
pub struct Sink {
    tx: mpsc::Sender<Bytes>,
    stopped: watch::Receiver<bool>,
}

impl Sink {
    /// Send one chunk; false once the client has gone.
    pub fn send(&self, data: impl Into<Vec<u8>>) -> bool {
        self.tx.blocking_send(Bytes::from(data.into())).is_ok()
    }

    /// Keep the body open for `max`, less when the stub stops or the
    /// client goes.
    pub fn hold(&self, max: Duration) {
        let started = Instant::now();
        while started.elapsed() < max && !*self.stopped.borrow() && !self.tx.is_closed() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    seen: Mutex<Vec<Request>>,
    stopped: watch::Receiver<bool>,
}

/// An HTTP server on a loopback address that answers with a handler and
/// records every request. Stopped when dropped.
pub struct Stub {
    pub ip: &'static str,
    pub port: u16,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl Stub {
    /// A stub on 127.0.0.1.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Stub {
        Stub::start_on("127.0.0.1", handler)
    }

    /// A stub on `ip`, a loopback address (127.0.0.2 plays another origin).
    pub fn start_on(
        ip: &'static str,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Stub {
        assert!(ip.starts_with("127."), "stubs bind loopback only, not {ip}");
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind a loopback port");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            seen: Mutex::new(Vec::new()),
            stopped,
        });
        runtime().spawn(accept(listener, shared.clone()));
        Stub {
            ip,
            port,
            shared,
            stop,
        }
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// `IP:PORT`.
    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Request> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Accept connections until the stub stops or its lifetime ends.
async fn accept(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut stopped = shared.stopped.clone();
    let deadline = tokio::time::sleep(LIFETIME);
    tokio::pin!(deadline);
    loop {
        let accepted = tokio::select! {
            _ = &mut deadline => return,
            _ = stopped.wait_for(|s| *s) => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        // Over the cap the connection is dropped unanswered.
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            tokio::spawn(connection(stream, shared.clone(), permit));
        }
    }
}

/// Serve one connection (keep-alive) until it ends or the stub stops.
async fn connection(
    stream: tokio::net::TcpStream,
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
) {
    // A second handle on the socket, to set SO_LINGER for `Reply::reset`.
    let Ok(std) = stream.into_std() else { return };
    let Ok(socket) = std.try_clone() else { return };
    let Ok(stream) = tokio::net::TcpStream::from_std(std) else {
        return;
    };
    let socket = Arc::new(socket);
    let s2 = shared.clone();
    let service = hyper::service::service_fn(move |req| answer(req, s2.clone(), socket.clone()));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(stream), service);
    let mut stopped = shared.stopped.clone();
    tokio::select! {
        _ = conn => {}
        _ = stopped.wait_for(|s| *s) => {}
    }
}

type ReplyBody = BoxBody<Bytes, std::io::Error>;

/// Read the request, ask the handler, and turn its reply into a response
/// (or into silence or a reset: an error makes hyper drop the connection).
async fn answer(
    req: hyper::Request<Incoming>,
    shared: Arc<Shared>,
    socket: Arc<std::net::TcpStream>,
) -> Result<hyper::Response<ReplyBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, MAX_BODY).collect().await else {
        return Ok(full(Reply::status(413)));
    };
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request {
        method: parts.method.to_string(),
        target: target.to_string(),
        path: percent_encoding::percent_decode_str(parts.uri.path())
            .decode_utf8_lossy()
            .into_owned(),
        query: form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_bytes().to_vec(),
        at: Instant::now(),
    };
    shared.seen.lock().unwrap().push(request.clone());
    let s2 = shared.clone();
    // Handlers may block (locks, sleeps): off the runtime's workers.
    let reply = tokio::task::spawn_blocking(move || (s2.handler)(&request))
        .await
        .map_err(std::io::Error::other)?;
    match reply.body {
        Body::Full(_) => Ok(full(reply)),
        Body::Stream(produce) => {
            let (tx, rx) = mpsc::channel(16);
            let sink = Sink {
                tx,
                stopped: shared.stopped.clone(),
            };
            tokio::task::spawn_blocking(move || produce(&sink));
            let frames = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
            });
            Ok(response(
                reply.status,
                &reply.headers,
                StreamBody::new(frames).boxed(),
            ))
        }
        Body::Hang(max) => {
            let mut stopped = shared.stopped.clone();
            let _ = tokio::time::timeout(max, stopped.wait_for(|s| *s)).await;
            Err(std::io::Error::other("hung up after a silence"))
        }
        Body::Reset => {
            socket2::SockRef::from(&*socket).set_linger(Some(Duration::ZERO))?;
            Err(std::io::Error::other("reset"))
        }
    }
}

fn full(reply: Reply) -> hyper::Response<ReplyBody> {
    let Body::Full(bytes) = reply.body else {
        unreachable!("a full body")
    };
    let body = Full::new(Bytes::from(bytes))
        .map_err(|e| match e {})
        .boxed();
    response(reply.status, &reply.headers, body)
}

fn response(
    status: u16,
    headers: &[(String, String)],
    body: ReplyBody,
) -> hyper::Response<ReplyBody> {
    let mut r = hyper::Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(k, v);
    }
    r.body(body).expect("a valid response head")
}

/// An answer the harness's client got.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request from the harness itself (`http://HOST:PORT/…`, a fresh
/// connection), bounded to 20 s.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let uri: hyper::Uri = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
    let authority = uri.authority().expect("a URL with a host").to_string();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header("Host", &authority);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("a valid request");
    let exchange = async move {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .unwrap_or_else(|e| panic!("connect {authority}: {e}"));
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("an HTTP/1.1 connection");
        tokio::spawn(conn);
        let resp = send.send_request(req).await.expect("an answer");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("the body")
            .to_bytes()
            .to_vec();
        Response {
            status,
            headers,
            body,
        }
    };
    runtime()
        .block_on(async { tokio::time::timeout(Duration::from_secs(20), exchange).await })
        .unwrap_or_else(|_| panic!("{method} {url}: no answer within 20 s"))
}

/// The stub's own promise the fault tests rely on: a reset is a TCP RST,
/// not a clean close.
#[test]
fn a_reset_reply_is_a_tcp_rst() {
    use std::io::{Read, Write};
    let stub = Stub::start(|_| Reply::reset());
    let mut s = std::net::TcpStream::connect(stub.host()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    let err = s
        .read(&mut buf)
        .expect_err("no answer, not even a clean close");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}
