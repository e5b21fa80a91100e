//! Hostile input, one test binary grouped by promise (the README's
//! security model): no workflow command smuggled (`injection`), no secret
//! printed in any form (`redaction`), no abort and cleanup on every path
//! (`aborts`, `signals`), imports stay in the project (`imports`), every
//! read bounded (`bounds`), credentials never leave their host
//! (`credentials`), `exec`'s sandbox holds (`sandbox`), a run's memory is
//! bounded (`memory`), JUnit output is XML (`junit`), writes cannot be
//! raced out of the working directory and only regular files are read
//! (`files`). Outputs are read
//! the way the GitHub Actions runner reads them (`runner`). The real binary
//! against real servers on 127.0.0.1 and 127.0.0.2 (a second origin): the
//! stub of `support::http`, or `support::raw` where the bytes on the wire
//! are the attack; every server has a bounded lifetime and every load is
//! bounded in size and time.

mod runner;

mod aborts;
mod bounds;
mod credentials;
mod fencing;
mod files;
mod imports;
mod injection;
mod job;
mod junit;
mod memory;
mod redaction;
mod sandbox;
mod signals;
mod state;
mod terminal;

use std::time::{Duration, Instant};

use crate::support::{self, Output, Project};

/// GNU time (Debian package `time`), not the shell keyword: only it has `-v`.
const TIME_BIN: &str = "/usr/bin/time";

/// Run the binary under `/usr/bin/time -v` (bounded: 120 s) and return its
/// output with its peak RSS in KiB (`Maximum resident set size`).
/// Panics, naming the install command, when `/usr/bin/time` is absent: a
/// memory bound that cannot be measured fails the test instead of passing
/// unmeasured.
pub fn run_measured(p: &Project, args: &[&str]) -> (Output, u64) {
    run_measured_within(p, args, None)
}

/// [`run_measured`] with the address space limited to `as_kib` KiB
/// (`ulimit -v`), so a binary without its own bound fails fast (an
/// allocation failure aborts it) instead of taking the machine's memory.
pub fn run_measured_within(p: &Project, args: &[&str], as_kib: Option<u64>) -> (Output, u64) {
    assert!(
        std::path::Path::new(TIME_BIN).exists(),
        "{TIME_BIN} is absent: install it with `apt-get install -y time` \
         (ci/install-deps.sh does; ci/test.sh runs it when it is missing)"
    );
    let plain = p.command(args);
    let mut cmd = std::process::Command::new(TIME_BIN);
    cmd.arg("-v");
    if let Some(kib) = as_kib {
        // exec keeps the pid, so time -v measures runbook itself.
        cmd.args([
            "sh",
            "-c",
            &format!("ulimit -v {kib} && exec \"$0\" \"$@\""),
        ]);
    }
    cmd.arg(support::bin()).args(args);
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
