//! A run's memory is bounded whatever the script does: past
//! `RUNBOOK_MAX_MEMORY` the script is ended with a clear error and exit 1,
//! never an abort (exit 134), in `runbook run` and `runbook test` alike.
//! Each run is also held to a 2 GiB address space, so a binary without the
//! bound aborts within seconds instead of taking the machine's memory.

use super::run_measured_within;
use crate::support::{pb, Project};

/// The cap the tests set, and the peak RSS they accept: the hard cap is
/// half as much again, plus the binary and its threads.
const CAP: &str = "128M";
const RSS_BOUND_KIB: u64 = 400 * 1024;
const AS_KIB: Option<u64> = Some(2 * 1024 * 1024);

/// A 16 MiB string, the largest a script may build.
const BIG: &str = "let big = \"\"; big.pad(16 * 1024 * 1024 - 16, 'x');\n";

/// Run `script` under `cap` and the address-space bound; its output and
/// peak RSS, which must be under [`RSS_BOUND_KIB`].
fn run_capped(script: &str, cap: &str) -> (crate::support::Output, u64) {
    let mut p = pb(script);
    p.env("RUNBOOK_MAX_MEMORY", cap);
    let (out, rss) = run_measured_within(&p, &["pb.rhai"], AS_KIB);
    assert!(rss < RSS_BOUND_KIB, "peak RSS {rss} KiB");
    (out, rss)
}

#[test]
fn a_map_of_big_strings_ends_the_run_with_exit_1_not_an_abort() {
    let (out, rss) = run_capped(
        &format!(
            "{BIG}let m = #{{}};\nfor i in 0..2000 {{ m[`k${{i}}`] = big + \"b\"; }}\nprint(m.len());\n"
        ),
        CAP,
    );
    out.code(1)
        .has("the run used more than 128 MiB of memory")
        .has("raise RUNBOOK_MAX_MEMORY")
        .lacks("memory allocation of");
    eprintln!("m[k] = big + \"b\": peak RSS {rss} KiB");
}

#[test]
fn array_map_is_bounded_too() {
    let (out, _) = run_capped(
        &format!(
            "{BIG}let a = []; a.pad(2000, 0);\nlet b = a.map(|x| big + \"b\");\nprint(b.len());\n"
        ),
        CAP,
    );
    out.code(1).has("the run used more than 128 MiB of memory");
}

#[test]
fn the_test_engine_has_the_same_limits() {
    let mut p = Project::new();
    p.file(
        "big.test.rhai",
        &format!(
            "fn test_hoards() {{\n{BIG}let m = #{{}};\nfor i in 0..2000 {{ m[`k${{i}}`] = big + \"b\"; }}\n}}\n\
             fn test_long_string() {{ let s = \"\"; s.pad(32 * 1024 * 1024, 'x'); }}\n\
             fn test_runs_after() {{ assert_eq(1 + 1, 2); }}\n"
        ),
    );
    p.env("RUNBOOK_MAX_MEMORY", CAP);
    let (out, rss) = run_measured_within(&p, &["test", "big.test.rhai"], AS_KIB);
    out.code(1)
        .has("FAIL big.test.rhai::test_hoards")
        .has("the run used more than 128 MiB of memory")
        .has("FAIL big.test.rhai::test_long_string")
        .has("Length of string too large")
        // The memory was given back: the next test runs.
        .has("ok   big.test.rhai::test_runs_after")
        .has("1 passed, 2 failed");
    assert!(rss < RSS_BOUND_KIB, "peak RSS {rss} KiB");
    eprintln!("runbook test, hoarding test: peak RSS {rss} KiB");
}

/// One step that allocates past the cap and half as much again before
/// the script can be stopped (a 16 MiB string under a 12 MiB cap): the
/// process ends at once with one line and exit 1, not an abort.
#[test]
fn one_step_past_the_hard_cap_exits_1_with_one_line() {
    let (out, _) = run_capped(
        "let s = \"\";\ns.pad(16 * 1024 * 1024 - 16, 'x');\nprint(s.len());\n",
        "12M",
    );
    out.code(1)
        .has("runbook used far more memory than RUNBOOK_MAX_MEMORY allows")
        .lacks("memory allocation of");
}
