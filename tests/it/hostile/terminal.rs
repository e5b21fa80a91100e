//! A clean terminal (issue 18): escape sequences, C1 controls, bidi
//! overrides and line separators from untrusted text — parameters echoed
//! in a usage error, `log_info`, a server's error answer, a child's echoed
//! output, a recorded note in the `history` table — are shown escaped in
//! every human format, never passed to the terminal.

use crate::support::http::{Reply, Stub};
use crate::support::{Output, Project};

/// ESC-started OSC (retitle) and CSI (clear screen), a C1 CSI, a bidi
/// override, a line separator.
const ATTACK: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\u{202e}evil\u{2028}x";

fn assert_clean(what: &str, out: &Output) {
    let all = out.all();
    for bad in ['\u{1b}', '\u{9b}', '\u{202e}', '\u{2028}', '\u{7}'] {
        assert!(
            !all.contains(bad),
            "{what}: {bad:?} reached the terminal: {all:?}"
        );
    }
}

fn run(p: &Project, args: &[&str], format: &str) -> Output {
    let mut all = args.to_vec();
    all.extend(["--log-format", format]);
    p.run(&all)
}

#[test]
fn parameters_logs_and_prints_are_shown_escaped() {
    let p = Project::new();
    p.file(
        "pb.rhai",
        "const PARAMS = #{ v: #{ help: \"x\" }, n: #{ help: \"n\", type: \"int\", default_value: 1 } };\nlog_info(args.v);\nprint(args.v);\n",
    );
    for format in ["pretty", "json", "github"] {
        let out = run(&p, &["pb.rhai", "--v", ATTACK], format);
        out.code(0);
        assert_clean(format, &out);
        if format == "pretty" {
            out.has("\\x1b]0;pwned\\x07").has("\\u202e");
        }
        let out = run(&p, &["pb.rhai", "--v", "x", "--n", ATTACK], format);
        out.code(2);
        assert_clean(format, &out);
    }
}

#[test]
fn a_server_error_answer_and_a_childs_output_are_shown_escaped() {
    let srv = Stub::start(|_| Reply::status(500).body(format!("bad {ATTACK} bad")));
    let mut p = Project::new();
    p.file(
        "pb.rhai",
        &format!(
            r#"let d = akash_deployment(#{{ dseq: "1234", api_url: "{}", timeout: "5s" }}); print(d);"#,
            srv.url()
        ),
    );
    p.env("AKASH_CONSOLE_API_KEY", "key-0123456789abcdef");
    let out = p.run(&["pb.rhai"]);
    out.code(1).has("answered 500").has("pwned");
    assert_clean("server answer", &out);

    let mut p = Project::new();
    p.env("RUNBOOK_ALLOW", "printf");
    p.file(
        "pb.rhai",
        r#"exec(["printf", "\\033]0;pwned\\007\\033[2J\\342\\200\\256evil\\n"], #{ echo: true });"#,
    );
    let out = p.run(&["pb.rhai"]);
    out.code(0);
    out.has("pwned").has("\\x1b[2J");
    assert_clean("exec echo", &out);
}

#[test]
fn a_newline_in_a_note_cannot_forge_a_history_row() {
    let p = Project::new();
    p.file(
        "pb.rhai",
        "const PARAMS = #{ v: #{ help: \"x\" } };\nlock(\"t1\");\nledger_note(#{ image: args.v });\nwrite_json(\"a.json\", #{ a: 1 });\n",
    );
    let forged = "img:1\n2099-01-01T00:00:00Z  ok      999    admin  deploy.rhai  img:forged";
    p.run(&["pb.rhai", "--v", forged]).code(0);
    let out = p.run(&["history", "t1"]);
    out.code(0).has("img:1\\n2099");
    assert_eq!(
        out.stdout.trim_end().lines().count(),
        2,
        "a header and one row: {}",
        out.stdout
    );
    assert_clean("history", &out);
}
