//! No workflow command smuggled: under GitHub Actions, untrusted text
//! (playbook strings, parameter values, child output, error messages)
//! never reaches the runner as a command, on stdout or stderr, in any log
//! format.

use super::runner::{assert_no_injection, commands, PAYLOAD};
use crate::support::Project;

const FORMATS: [&str; 3] = ["github", "json", "pretty"];

fn gha(p: &mut Project) -> &mut Project {
    let out = p.path().join("gh_output");
    let summary = p.path().join("gh_summary");
    p.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", out.to_str().unwrap())
        .env("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())
}

/// Every way a playbook's own strings reach the log.
const SUCCESSFUL: &str = r###"
output("o1", "line1\n::error::INJECTED");
output("o2", "a\r::error::INJECTED");
output("o3", "##[error]INJECTED");
log_info("::notice::x\n::error::INJECTED");
log_info("a\r::error::INJECTED");
log_info("  \t::error::INJECTED");
log_warn("w\n::error::INJECTED\r##[error]INJECTED");
log_event("e", #{ v: "x\n::error::INJECTED", w: "##[error]INJECTED" });
print("##[error]INJECTED");
print("p\r::error::INJECTED");
print("\u00a0::error::INJECTED");
let s = secret("HOSTILE_SECRET");
exec(["echo", "x\r::error::INJECTED", "::error::INJECTED", "##[error]INJECTED"]);
"###;

#[test]
fn playbook_text_never_becomes_a_command() {
    for format in FORMATS {
        let mut p = Project::new();
        gha(&mut p).env("HOSTILE_SECRET", "s\r::error::INJECTED\n::add-mask::y");
        p.file("pb.rhai", SUCCESSFUL);
        let out = p.run(&["pb.rhai", "--allow", "echo", "--log-format", format]);
        out.code(0);
        assert_no_injection(&out.stdout, &out.stderr);
        // The text itself is still there for a person to read.
        assert!(out.all().contains(PAYLOAD), "{format}: {}", out.all());
    }
}

#[test]
fn error_reports_and_usage_errors_stay_text() {
    for format in FORMATS {
        let mut p = Project::new();
        gha(&mut p);
        p.file(
            "pb.rhai",
            "const PARAMS = #{ n: #{ type: \"int\" } };\nfail(\"f\\n::error::INJECTED\\r##[error]INJECTED\");\n",
        );
        let out = p.run(&["pb.rhai", "--log-format", format]);
        out.code(1);
        assert_no_injection(&out.stdout, &out.stderr);
        // runbook's own annotation is there, once, on the right line.
        let own: Vec<_> = commands(&out.stdout)
            .into_iter()
            .filter(|c| c.name == "error" && c.props.contains("line=2"))
            .collect();
        if format == "github" {
            assert_eq!(own.len(), 1, "{}", out.stdout);
        }

        let out = p.run(&[
            "pb.rhai",
            "--log-format",
            format,
            "--n",
            "1\n::error::INJECTED",
        ]);
        out.code(2);
        assert_no_injection(&out.stdout, &out.stderr);

        let out = p.run(&[
            "pb.rhai",
            "--log-format",
            format,
            "--m\r::error::INJECTED",
            "1",
        ]);
        out.code(2);
        assert_no_injection(&out.stdout, &out.stderr);
    }
}

#[test]
fn a_failing_child_cannot_inject_through_the_error_excerpt() {
    for format in FORMATS {
        let mut p = Project::new();
        gha(&mut p);
        p.file(
            "pb.rhai",
            r###"exec(["sh", "-c", "echo '::error::INJECTED'; printf 'x\r::error::INJECTED\n##[error]INJECTED\n' >&2; exit 3"]);"###,
        );
        let out = p.run(&["pb.rhai", "--allow", "sh", "--log-format", format]);
        out.code(1);
        assert_no_injection(&out.stdout, &out.stderr);
    }
}

#[test]
fn outside_github_actions_text_is_printed_as_it_is() {
    let p = Project::new();
    p.file("pb.rhai", r###"print("::notice::plain ##[x]");"###);
    let out = p.run(&["pb.rhai"]);
    out.code(0);
    assert!(
        out.stdout.contains("::notice::plain ##[x]"),
        "{}",
        out.stdout
    );
}

#[test]
fn masks_are_issued_under_github_actions_in_every_format() {
    for format in FORMATS {
        let mut p = Project::new();
        gha(&mut p).env("MY_SECRET", "mask-me-3f9a");
        p.file("pb.rhai", r#"let s = secret("MY_SECRET");"#);
        let out = p.run(&["pb.rhai", "--log-format", format]);
        out.code(0);
        let masks: Vec<_> = commands(&out.stdout)
            .into_iter()
            .filter(|c| c.name == "add-mask")
            .map(|c| c.data)
            .collect();
        assert!(
            masks.contains(&"mask-me-3f9a".to_string()),
            "{format}: {}",
            out.stdout
        );
    }
}

#[test]
fn history_and_lock_status_print_recorded_text_as_text() {
    let mut p = Project::new();
    p.file(
        "pb.rhai",
        "const PARAMS = #{ v: #{ help: \"x\" } };\nlock(\"t1\");\nledger_note(#{ note: args.v });\nwrite_json(\"a.json\", #{ a: 1 });\n",
    );
    p.env("GITHUB_ACTOR", "a\r::error::INJECTED");
    p.run(&["pb.rhai", "--v", "x\n::error::INJECTED\r##[error]INJECTED"])
        .code(0);
    gha(&mut p);
    for args in [
        &["history", "t1"][..],
        &["history", "t1", "--json"],
        &["lock", "status", "t1"],
    ] {
        let out = p.run(args);
        assert_no_injection(&out.stdout, &out.stderr);
        if args[0] == "history" {
            // The table shows the actor, the JSON every field.
            out.code(0).has(PAYLOAD);
        }
    }
}
