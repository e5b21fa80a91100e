//! Every read is bounded: HTTP bodies (endless, a 10 GB Content-Length, a
//! trickle), files (`/dev/zero`, a FIFO, a huge file) and a child's output.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{run_measured, RSS_BOUND_KIB};
use crate::support::http::{Reply, Stub};
use crate::support::pb;
use crate::support::raw::RawServer;

/// Answers 200 and then `x` for as long as the client reads (at most
/// 8 GiB, far past any cap; the client hangs up long before).
fn endless(s: &mut TcpStream) {
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..(128 * 1024) {
        if s.write_all(&chunk).is_err() {
            return;
        }
    }
}

/// Declares 10 GB, sends a few bytes, then waits.
fn huge_length(s: &mut TcpStream) {
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n{\"a\":");
    std::thread::sleep(Duration::from_secs(5));
}

/// One byte a second, for at most 60 s.
fn trickle(s: &mut TcpStream) {
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    for _ in 0..60 {
        if s.write_all(b" ").is_err() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn discover_url(url: &str, bounds: &str) -> String {
    let bounds = if bounds.is_empty() {
        r#"max_elapsed: "20s", attempt_timeout: "10s""#
    } else {
        bounds
    };
    format!(
        r#"let ep = discover_port(#{{ internal_port: 7072, source: #{{ url: "{url}/status" }}, {bounds} }}); print(ep);"#
    )
}

#[test]
fn an_endless_body_stops_at_the_cap_with_bounded_memory() {
    let srv = RawServer::start(endless);
    let p = pb(&discover_url(&srv.url(), ""));
    let (out, rss) = run_measured(&p, &["pb.rhai"]);
    out.code(1)
        .has("discover_port: the answer from")
        .has("/status is longer, over the 4 MiB cap on what discover_port reads")
        .has("check that the URL names the right endpoint");
    assert!(
        rss < RSS_BOUND_KIB,
        "peak RSS {rss} KiB against an endless body"
    );
    eprintln!("endless body: peak RSS {rss} KiB");
}

#[test]
fn a_10gb_content_length_is_refused_before_reading() {
    let srv = RawServer::start(huge_length);
    let p = pb(&discover_url(&srv.url(), ""));
    let out = p.run(&["pb.rhai"]);
    out.code(1)
        .has("declares 9536.7 MiB (Content-Length: 10000000000), over the 4 MiB cap");
    // Refused up front: one attempt, no wait for the body.
    assert!(out.elapsed < Duration::from_secs(4), "{:?}", out.elapsed);
}

#[test]
fn the_akash_console_client_reads_bounded_too() {
    let srv = RawServer::start(endless);
    let mut p = pb(&format!(
        r#"let d = akash_deployment(#{{ dseq: "1234", api_url: "{}", timeout: "20s" }}); print(d);"#,
        srv.url()
    ));
    p.env("AKASH_CONSOLE_API_KEY", "key-0123456789abcdef");
    p.run(&["pb.rhai"])
        .code(1)
        .has("over the 4 MiB cap on what akash console reads");
}

#[test]
fn a_trickling_body_is_ended_by_the_attempt_timeout() {
    let srv = RawServer::start(trickle);
    let p = pb(&discover_url(
        &srv.url(),
        r#"max_elapsed: "3s", attempt_timeout: "1s", initial_interval: "200ms""#,
    ));
    let started = Instant::now();
    let out = p.run(&["pb.rhai"]);
    out.code(1).has("no answer within");
    // The contract bound: max_elapsed (3 s) plus start-up slack.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_trickling_console_answer_is_ended_by_the_call_timeout() {
    let srv = RawServer::start(trickle);
    let mut p = pb(&format!(
        r#"let d = akash_deployment(#{{ dseq: "1234", api_url: "{}", timeout: "2s" }}); print(d);"#,
        srv.url()
    ));
    p.env("AKASH_CONSOLE_API_KEY", "key-0123456789abcdef");
    let out = p.run(&["pb.rhai"]);
    out.code(1).has("no answer within 2s");
    assert!(out.elapsed < Duration::from_secs(6), "{:?}", out.elapsed);
}

#[test]
fn dev_zero_fifos_and_huge_files_are_refused_before_reading() {
    let p = pb(r#"let v = read_json("/dev/zero"); print(v);"#);
    let (out, rss) = run_measured(&p, &["pb.rhai"]);
    out.code(1)
        .has("read_json: cannot read '/dev/zero': it is a character device, not a regular file");
    assert!(rss < RSS_BOUND_KIB, "peak RSS {rss} KiB reading /dev/zero");
    eprintln!("/dev/zero: peak RSS {rss} KiB");

    let p = pb(r#"let v = read_yaml("pipe"); print(v);"#);
    nix::unistd::mkfifo(&p.path().join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let out = p.run(&["pb.rhai"]);
    out.code(1)
        .has("read_yaml: cannot read 'pipe': it is a FIFO (named pipe)");
    assert!(out.elapsed < Duration::from_secs(10));

    // A sparse 17 MiB file: over the 16 MiB cap, refused by its size.
    let p = pb(r#"let v = read_json("big.json"); print(v);"#);
    let f = std::fs::File::create(p.path().join("big.json")).unwrap();
    f.set_len(17 * 1024 * 1024).unwrap();
    p.run(&["pb.rhai"])
        .code(1)
        .has("it is 17825792 bytes, over the 16 MiB cap on data files");

    // discover_port's file source reads the same way.
    let p = pb(
        r#"let ep = discover_port(#{ internal_port: 7072, source: #{ file: "/dev/zero" }, max_elapsed: "2s" }); print(ep);"#,
    );
    p.run(&["pb.rhai"]).code(1).has("a character device");

    // file_exists only looks: a FIFO is not a file and does not block.
    let p = pb(
        r#"print(`fifo=${file_exists("pipe")} dir=${file_exists(".")} pb=${file_exists("pb.rhai")}`);"#,
    );
    nix::unistd::mkfifo(&p.path().join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    p.run(&["pb.rhai"])
        .code(0)
        .has("fifo=false dir=false pb=true");
}

#[test]
fn a_child_printing_a_gibibyte_is_captured_head_and_tail() {
    // 1 GiB of zeros turned to 'y', then a last line: head and tail kept.
    let mut p = pb(
        r#"let out = exec(["sh", "-c", "head -c 1073741824 /dev/zero | tr '\\0' y; echo; echo LAST-LINE"], #{ timeout: "100s" });
print(`dropped=${out.dropped} len=${out.stdout.len()}`);
print(out.stdout.sub_string(out.stdout.len() - 10));
if out.stdout.contains("runbook dropped") { print("marker=yes"); }"#,
    );
    p.env("RUNBOOK_ALLOW", "sh");
    let (out, rss) = run_measured(&p, &["pb.rhai"]);
    out.code(0)
        .has(&format!(
            "dropped={}",
            1024u64 * 1024 * 1024 + 11 - 8 * 1024 * 1024
        ))
        .has("LAST-LINE")
        .has("marker=yes");
    assert!(rss < RSS_BOUND_KIB, "peak RSS {rss} KiB capturing 1 GiB");
    eprintln!("1 GiB child: peak RSS {rss} KiB");
}

#[test]
fn an_error_answer_is_quoted_short() {
    let srv = Stub::start(|_| Reply::status(500).body("E".repeat(100_000)));
    let mut p = pb(&format!(
        r#"let d = akash_deployment(#{{ dseq: "1234", api_url: "{}", timeout: "5s" }}); print(d);"#,
        srv.url()
    ));
    p.env("AKASH_CONSOLE_API_KEY", "key-0123456789abcdef");
    let out = p.run(&["pb.rhai"]);
    out.code(1).has("answered 500");
    assert!(
        !out.all().contains(&"E".repeat(400)),
        "the body is quoted in full"
    );
}
