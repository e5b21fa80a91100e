//! No secret printed or written, in any form a sink can produce: raw,
//! JSON-escaped, Rhai-escaped, workflow-escaped, percent-encoded, or one
//! line of a multi-line value; in logs (every format), errors, `print`,
//! outputs, summaries and files.

use super::runner::commands;
use crate::support::Project;

/// A secret with every character that changes under some encoding.
const SECRET: &str = "s3cr\"et\\va%lue,with:colon\nSECOND-line-xyz\r\nthird-line-9q";

/// Pieces of [`SECRET`] that survive every encoding: any of them in an
/// output means a leak.
const PIECES: &[&str] = &["s3cr", "SECOND-line", "third-line", "va%lue", "va%25lue"];

/// Everything the run left for anyone to read, but `::add-mask::` lines
/// (which must carry the secret to the runner).
fn everything(p: &Project, stdout: &str, stderr: &str) -> String {
    let mut all = String::new();
    for text in [stdout, stderr] {
        let masks: Vec<String> = commands(text)
            .into_iter()
            .filter(|c| c.name == "add-mask")
            .map(|c| c.data)
            .collect();
        for line in text.split(['\n', '\r']) {
            let is_mask = line.starts_with("::add-mask::")
                && masks.iter().any(|m| {
                    line.ends_with(
                        &m.replace('%', "%25")
                            .replace('\r', "%0D")
                            .replace('\n', "%0A"),
                    )
                });
            if !is_mask {
                all.push_str(line);
                all.push('\n');
            }
        }
    }
    for e in walk(p.path()) {
        all.push_str(&format!("== file {}\n", e.display()));
        all.push_str(&std::fs::read_to_string(&e).unwrap_or_default());
        all.push_str(&e.display().to_string());
    }
    all
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if !p.ends_with("pb.rhai") {
            out.push(p);
        }
    }
    out
}

#[track_caller]
fn assert_no_leak(what: &str, all: &str) {
    for piece in PIECES {
        assert!(
            !all.contains(piece),
            "{what}: the secret leaked ({piece:?}):\n{all}"
        );
    }
}

const PLAYBOOK: &str = r#"
let s = secret("HOSTILE_SECRET");
log_info(s);
log_warn(`warn ${s}`);
log_event("e", #{ s: s, list: [s] });
print(s);
print(#{ s: s });
print([s]);
print(to_json(#{ s: s }));
debug(#{ s: s });
output("o1", s);
output("o2", #{ s: s });
summary(`## summary ${s}`);
try { write_json("leak.json", #{ s: s }); } catch (e) { log_info(`refused: ${e}`); }
try { write_json(`${s}.json`, #{ a: 1 }); } catch (e) { log_info(`refused: ${e}`); }
let t = env("GITHUB_TOKEN");
print(`token ${t}`);
let r = exec(["sh", "-c", "printf 'child says %s\n' \"$1\"", "sh", s]);
print(r.stdout);
"#;

#[test]
fn a_secret_leaks_in_no_form_through_any_sink() {
    for (gha, format) in [
        (true, "github"),
        (true, "json"),
        (false, "json"),
        (false, "pretty"),
    ] {
        let mut p = Project::new();
        let out_file = p.path().join("gh_output");
        let sum_file = p.path().join("gh_summary");
        p.env("HOSTILE_SECRET", SECRET)
            .env("GITHUB_TOKEN", "ghp_s3cr-token-%\"x")
            .env("GITHUB_OUTPUT", out_file.to_str().unwrap())
            .env("GITHUB_STEP_SUMMARY", sum_file.to_str().unwrap())
            .env("RUNBOOK_LOG", "debug");
        if gha {
            p.env("GITHUB_ACTIONS", "true");
        }
        p.file("pb.rhai", PLAYBOOK);
        let out = p.run(&["pb.rhai", "--allow", "sh", "--log-format", format]);
        out.code(0);
        let what = format!("GITHUB_ACTIONS={gha} --log-format {format}");
        let all = everything(&p, &out.stdout, &out.stderr);
        assert_no_leak(&what, &all);
        assert!(
            !all.contains("ghp_s3cr"),
            "{what}: GITHUB_TOKEN read by env() leaked:\n{all}"
        );
        // The run did what it was asked, with the secret masked.
        assert!(all.contains("refused: "), "{what}: {all}");
        assert!(
            p.read("leak.json").is_none(),
            "{what}: a file holding the secret was written"
        );
        assert!(
            p.read("gh_output").unwrap_or_default().contains("o2<<"),
            "{what}"
        );
        assert!(all.contains("child says ***"), "{what}: {all}");
    }
}

#[test]
fn a_failing_run_leaks_no_secret_in_its_error() {
    let mut p = Project::new();
    p.env("HOSTILE_SECRET", SECRET)
        .env("GITHUB_ACTIONS", "true");
    p.file(
        "pb.rhai",
        "let s = secret(\"HOSTILE_SECRET\");\nfail(`bad ${s} and ${to_json(s)}`);\n",
    );
    for format in ["github", "json", "pretty"] {
        let out = p.run(&["pb.rhai", "--log-format", format]);
        out.code(1);
        assert_no_leak(format, &everything(&p, &out.stdout, &out.stderr));
    }
}

#[test]
fn a_short_secret_is_named_as_unredactable() {
    let mut p = Project::new();
    p.env("TINY", "abc");
    p.file("pb.rhai", "let s = secret(\"TINY\");\n");
    let out = p.run(&["pb.rhai"]);
    out.code(0).has("shorter than 4 characters");
}

#[test]
fn a_secret_across_the_cut_of_an_error_answer_is_masked_not_half_shown() {
    use crate::support::http::{Reply, Stub};
    // 46 characters, as an x-api-key: the cut at 300 falls inside it.
    let key = "akey-0123456789abcdefghijklmnopqrstuvwxyzABCDE";
    for before in [270, 290, 299] {
        let body = format!("{}{key} and more", "E".repeat(before));
        let srv = Stub::start(move |_| Reply::status(500).body(body.clone()));
        let mut p = Project::new();
        p.file(
            "pb.rhai",
            &format!(
                r#"let d = akash_deployment(#{{ dseq: "1234", api_url: "{}", timeout: "5s" }}); print(d);"#,
                srv.url()
            ),
        );
        p.env("AKASH_CONSOLE_API_KEY", key);
        let out = p.run(&["pb.rhai"]);
        out.code(1).has("answered 500");
        let all = out.all();
        assert!(
            !all.contains(&key[..8]),
            "{before}: a prefix of the key survived the cut: {all}"
        );
    }
}
