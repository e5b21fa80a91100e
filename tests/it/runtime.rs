//! The runtime, end to end through the binary: usage, parameters, errors,
//! sandbox limits, deadlines, signals, redaction, GitHub Actions details,
//! artifacts, `check`, `doc`.

use crate::support;

use std::time::{Duration, Instant};

use support::{pb, Project, CANARY};

const SHA_PB: &str = r#"//! Test playbook.
const PARAMS = #{
    sha: #{ required: true, pattern: "[0-9a-f]{40}", help: "full git SHA" },
    count: #{ type: "int", default_value: 1 },
    flag: #{ type: "bool", default_value: false },
    stack: #{ choices: ["banano", "api", "both"], default_value: "both" },
};
write_json("ran.json", #{ sha: args.sha, count: args.count, flag: args.flag, stack: args.stack });
"#;
const SHA: &str = "4f1c2a9d0b8e7c6f5a4b3c2d1e0f9a8b7c6d5e4f";

#[test]
fn version_and_usage() {
    let p = Project::new();
    p.run(&["--version"]).code(0).has(env!("CARGO_PKG_VERSION"));
    p.run(&[]).code(2).has("no playbook given");
    p.run(&["missing.rhai"])
        .code(2)
        .has("playbook not found: missing.rhai");
    p.run(&["--frob", "x.rhai"])
        .code(2)
        .has("unknown option '--frob'");
    p.run(&["completions", "bash"]).code(0).has("runbook");
}

#[test]
fn parameters_reach_the_script() {
    let p = pb(SHA_PB);
    p.run(&[
        "pb.rhai",
        "--sha",
        SHA,
        "--count=3",
        "--flag",
        "--stack",
        "api",
    ])
    .code(0);
    let ran: serde_json::Value = serde_json::from_str(&p.read("ran.json").unwrap()).unwrap();
    assert_eq!(
        ran,
        serde_json::json!({"sha": SHA, "count": 3, "flag": true, "stack": "api"})
    );
}

#[test]
fn help_reads_the_declaration_and_runs_nothing() {
    let p = pb(SHA_PB);
    p.run(&["pb.rhai", "--help"])
        .code(0)
        .has("Test playbook.")
        .has("--sha <string>")
        .has("full git SHA")
        .has("one of: banano, api, both");
    assert!(p.read("ran.json").is_none());
}

#[test]
fn bad_parameters_exit_2_before_anything_runs() {
    let p = pb(SHA_PB);
    let upper = SHA.to_uppercase();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "missing required parameter --sha"),
        (
            vec!["--sha", &SHA[..39]],
            "does not match the pattern [0-9a-f]{40}",
        ),
        (vec!["--sha", &upper], "does not match the pattern"),
        (vec!["--sha", "main"], "does not match the pattern"),
        (
            vec!["--sha", SHA, "--count", "three"],
            "--count wants an integer, got 'three'",
        ),
        (
            vec!["--sha", SHA, "--flag=perhaps"],
            "--flag wants true or false",
        ),
        (
            vec!["--sha", SHA, "--stack", "node"],
            "is not one of banano, api, both",
        ),
        (
            vec!["--sha", SHA, "--shaa", "x"],
            "unknown parameter --shaa (did you mean '--sha'?)",
        ),
        (vec!["--sha", SHA, "extra"], "unexpected argument 'extra'"),
        (vec!["--sha", SHA, "--timeout", "soon"], "--timeout 'soon'"),
        (
            vec!["--sha", SHA, "--log-format", "xml"],
            "--log-format 'xml'",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["pb.rhai"];
        args.extend(extra.iter().copied());
        let out = p.run(&args);
        out.code(2).has(want);
        assert!(p.read("ran.json").is_none(), "{args:?} ran the playbook");
    }
}

#[test]
fn broken_declarations_exit_2() {
    pb("const PARAMS = #{ x: #{ type: \"float\" } };")
        .run(&["pb.rhai"])
        .code(2)
        .has("type 'float'");
    pb("const PARAMS = #{ help: #{} };")
        .run(&["pb.rhai"])
        .code(2)
        .has("reserved");
}

#[test]
fn compile_errors_show_the_line_and_exit_2() {
    let out = pb("let a = 1;\nlet b = ;\n").run(&["pb.rhai"]);
    out.code(2)
        .has("does not compile")
        .has("pb.rhai:2:9")
        .has("2 | let b = ;");
    pb("eval(\"1\");")
        .run(&["pb.rhai"])
        .code(2)
        .has("does not compile");
}

#[test]
fn missing_import_exits_2_before_anything_runs() {
    let p = pb("write_json(\"ran.json\", 1);\nimport \"nosuch\" as x;\n");
    p.run(&["pb.rhai"])
        .code(2)
        .has("import \"nosuch\"")
        .has("pb.rhai:2:1");
    assert!(p.read("ran.json").is_none());
    pb("import \"../etc/passwd\" as x;")
        .run(&["pb.rhai"])
        .code(2)
        .has("no '..'");
}

#[test]
fn imports_resolve_folder_then_stdlib_then_embedded() {
    let p = pb("import \"helper\" as h;\nimport \"endpoints\" as e;\nimport \"images\" as i;\nprint(h::hi() + \" \" + i::repository(\"main\", \"ghcr.io\", \"o\"));\n");
    p.file("helper.rhai", "fn hi() { \"from-folder\" }");
    // A project's stdlib/ overrides the embedded module of the same name.
    p.file(
        "stdlib/images.rhai",
        "fn repository(b, r, o) { \"overridden\" }",
    );
    p.run(&["pb.rhai"]).code(0).has("from-folder overridden");
}

/// The embedded `endpoints` module serves any key, and its reader is
/// strict: one key, a string, a valid endpoint.
#[test]
fn the_embedded_endpoint_artifact_module_takes_any_key_and_reads_strictly() {
    let p = pb("import \"endpoints\" as e;\ne::write_artifact(\"db.json\", \"db_endpoint\", \"db.example:5432\");\nprint(e::read_artifact(\"db.json\", \"db_endpoint\", \"run the db stack\"));\n");
    p.run(&["pb.rhai"]).code(0).has("db.example:5432");
    assert_eq!(
        p.read("db.json").unwrap().trim(),
        r#"{
  "db_endpoint": "db.example:5432"
}"#
    );
    let read = "import \"endpoints\" as e;\nprint(e::read_artifact(\"db.json\", \"db_endpoint\", \"run the db stack first\"));\n";
    let p = pb(read);
    p.run(&["pb.rhai"])
        .code(1)
        .has("db.json is missing: run the db stack first");
    for (text, want) in [
        (
            r#"{"db_endpoint": "db.example:5432", "x": 1}"#,
            "must hold exactly one key, db_endpoint",
        ),
        (
            r#"{"other": "db.example:5432"}"#,
            "must hold exactly one key, db_endpoint",
        ),
        (
            r#"{"db_endpoint": 5432}"#,
            "db_endpoint must be a \"host:port\" string",
        ),
        (r#"["db.example:5432"]"#, "is not a JSON object"),
        (
            r#"{"db_endpoint": "db.example:0"}"#,
            "the port 0 is outside",
        ),
    ] {
        p.file("db.json", text);
        p.run(&["pb.rhai"]).code(1).has(want);
    }
}

#[test]
fn a_module_beside_the_playbooks_is_checked_as_a_module_and_not_run() {
    let p = pb("import \"lib/shared\" as base;\nconst PARAMS = base::COMMON_PARAMS + #{ n: #{ type: \"int\", default_value: 1 } };\nprint(`${base::greet(args.who)} ${args.n}`);\n");
    p.file(
        "lib/shared.rhai",
        "export const COMMON_PARAMS = #{ who: #{ default_value: \"world\", help: \"whom to greet\" } };\nfn greet(who) { `hello ${who}` }\n",
    );
    p.run(&["pb.rhai", "--who", "team"])
        .code(0)
        .has("hello team 1");
    p.run(&["pb.rhai", "--help"]).code(0).has("whom to greet");
    p.run(&["check", "."])
        .code(0)
        .has("ok    ./lib/shared.rhai (module)")
        .has("ok    ./pb.rhai\n");
    p.run(&["lib/shared.rhai"])
        .code(2)
        .has("lib/shared.rhai is a module, not a playbook");
    // A module cannot see `args`, and its fragments are checked where written.
    p.file(
        "lib/shared.rhai",
        "export const COMMON_PARAMS = #{ who: #{ typ: \"int\" } };\nfn greet(who) { args.who }\n",
    );
    p.run(&["check", "lib/shared.rhai"])
        .code(2)
        .has("COMMON_PARAMS.who: unknown key 'typ'")
        .has("args.who: a module does not see the playbook's `args`");
    // Taking them as a function argument, as the message says, is fine.
    p.file(
        "lib/shared.rhai",
        "fn greet(args) { `hello ${args.who}` }\n",
    );
    p.run(&["check", "lib/shared.rhai"]).code(0);
}

/// Exit 2 is the command line's and `fail_usage`'s. A primitive that
/// refuses what the playbook gave it is a failed run (exit 1), as the
/// README's table says, whatever the kind of its error.
#[test]
fn a_primitive_refusing_its_input_exits_1_and_fail_usage_exits_2() {
    for (script, message) in [
        (
            "helm_install(\"r\", \"\");\n",
            "helm_install: the chart is empty",
        ),
        (
            "kube_node_port(\"default\", \"svc\", 0);\n",
            "kube_node_port: port 0 is not a port",
        ),
        ("kube_cpu(\"lots\");\n", "'lots' is not a quantity"),
        (
            "http_check(\"http://127.0.0.1:9/\", #{ expect: 99 });\n",
            "99, which is not an HTTP status",
        ),
    ] {
        pb(script).run(&["pb.rhai"]).code(1).has(message);
    }
    pb("fail_usage(\"give --n below 2\");\n")
        .run(&["pb.rhai"])
        .code(2)
        .has("error: give --n below 2");
    // From inside a function too (the error wraps it).
    pb("fn check(n) { if n > 1 { fail_usage(\"give --n below 2\"); } }\ncheck(5);\n")
        .run(&["pb.rhai"])
        .code(2)
        .has("give --n below 2");
    // A usage failure caught by the playbook is plain text to it.
    pb("try { fail_usage(\"x\"); } catch (e) { print(`caught ${e}`); }\n")
        .run(&["pb.rhai"])
        .code(0)
        .has("caught x");
}

#[test]
fn fail_exits_1_with_location_and_caret() {
    let out = pb("let x = 1;\nfail(\"the endpoint is stale\");\n").run(&["pb.rhai"]);
    out.code(1)
        .has("error: the endpoint is stale")
        .has("--> pb.rhai:2:1")
        .has("2 | fail(\"the endpoint is stale\");");
}

#[test]
fn runtime_errors_exit_1_and_name_the_primitive() {
    pb("validate_endpoint(\"10.0.0.1:31877\");")
        .run(&["pb.rhai"])
        .code(1)
        .has("validate_endpoint: '10.0.0.1:31877'")
        .has("bare dotted number");
    // check's lints run before the first primitive: exit 2, nothing run.
    pb("let x = nosuch_primitive(1);")
        .run(&["pb.rhai"])
        .code(2)
        .has("unknown function 'nosuch_primitive'")
        .has("nothing was run")
        .has("runbook doc");
    pb("discover_port(#{ internal_port: 7072, max_elpased: 2 });")
        .run(&["pb.rhai"])
        .code(1)
        .has("did you mean 'max_elapsed'");
    pb("let m = #{}; print(m.nothing);")
        .run(&["pb.rhai"])
        .code(1)
        .has("no property 'nothing'");
}

#[test]
fn endless_loops_hit_the_operation_limit() {
    let mut p = pb("let i = 0;\nloop { i += 1; }\n");
    p.env("RUNBOOK_MAX_OPERATIONS", "200000");
    p.run(&["pb.rhai"])
        .code(1)
        .has("more than 200000 operations")
        .has("RUNBOOK_MAX_OPERATIONS");
    pb("fn f(n) { f(n + 1) }\nf(0);")
        .run(&["pb.rhai"])
        .code(1)
        .has("too deep");
}

#[test]
fn whole_run_deadline_exits_124() {
    let p = pb("sleep(30);\nwrite_json(\"late.json\", 1);");
    let out = p.run(&["pb.rhai", "--timeout", "1"]);
    out.code(124).has("deadline of 1s passed");
    assert!(
        out.elapsed < Duration::from_secs(10),
        "took {:?}",
        out.elapsed
    );
    assert!(p.read("late.json").is_none());
}

fn wait_for_file(path: &std::path::Path, bound: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.trim().is_empty() {
                return s;
            }
        }
        assert!(start.elapsed() < bound, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pid_alive(pid: i32) -> bool {
    // A zombie (nothing reaps orphans in some containers) counts as dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .split(") ")
            .nth(1)
            .is_some_and(|rest| rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn signal_mid_exec(sig: nix::sys::signal::Signal, want: i32) {
    let mut p = pb("write_json(\"early.json\", 1);\nexec([\"terraform\", \"output\", \"-json\"], #{ read_only: true });\n");
    p.standins().env("STANDIN_SLEEP_FOREVER", "1");
    let started = Instant::now();
    let child = p.command(&["pb.rhai"]).spawn().unwrap();
    let standin = p.path().join("standin");
    let child_pid: i32 = wait_for_file(&standin.join("child.pid"), Duration::from_secs(20))
        .trim()
        .parse()
        .unwrap();
    let standin_pid: i32 = wait_for_file(&standin.join("standin.pid"), Duration::from_secs(5))
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    let out = support::wait_output(child, Duration::from_secs(30), started);
    out.code(want).has("interrupted by");
    // The whole process group of the child is gone.
    let t = Instant::now();
    while (pid_alive(child_pid) || pid_alive(standin_pid)) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!pid_alive(standin_pid), "the stand-in survived");
    assert!(!pid_alive(child_pid), "the stand-in's child survived");
    // Artifacts of an interrupted run are taken back.
    assert!(p.read("early.json").is_none());
}

#[test]
fn sigterm_kills_the_child_group_and_exits_143() {
    signal_mid_exec(nix::sys::signal::Signal::SIGTERM, 143);
}

#[test]
fn sigint_exits_130() {
    signal_mid_exec(nix::sys::signal::Signal::SIGINT, 130);
}

#[test]
fn secrets_are_redacted_in_every_sink() {
    let summary = tempfile::NamedTempFile::new().unwrap();
    let gh_out = tempfile::NamedTempFile::new().unwrap();
    for format in ["pretty", "json"] {
        let mut p = pb(r#"let t = secret("API_TOKEN");
log_info("token is " + t);
log_event("e", #{ token: t });
print("printed " + t);
summary("summary " + t);
output("tok", "out " + t);
exec(["git", "--version"], #{ env: #{ X: t }, echo: true });
fail("failed with " + t);
"#);
        p.env("API_TOKEN", CANARY)
            .env("GITHUB_STEP_SUMMARY", summary.path().to_str().unwrap())
            .env("GITHUB_OUTPUT", gh_out.path().to_str().unwrap());
        let out = p.run(&["pb.rhai", "--log-format", format]);
        out.code(1)
            .lacks(CANARY)
            .has("token is ***")
            .has("printed ***")
            .has("failed with ***");
    }
    let s = std::fs::read_to_string(summary.path()).unwrap();
    assert!(s.contains("summary ***") && !s.contains(CANARY), "{s}");
    // A failed run sets no output.
    assert_eq!(std::fs::read_to_string(gh_out.path()).unwrap(), "");
}

#[test]
fn write_json_refuses_a_secret() {
    let mut p = pb("let t = secret(\"API_TOKEN\");\nwrite_json(\"x.json\", #{ t: t });");
    p.env("API_TOKEN", CANARY);
    p.run(&["pb.rhai"])
        .code(1)
        .has("contains a secret")
        .lacks(CANARY);
    assert!(p.read("x.json").is_none());
}

#[test]
fn missing_secret_and_env_say_what_to_do() {
    pb("secret(\"NOPE_NOT_SET\");")
        .run(&["pb.rhai"])
        .code(1)
        .has("NOPE_NOT_SET is not set")
        .has("secrets.NOPE_NOT_SET");
    pb("env(\"NOPE_NOT_SET\");")
        .run(&["pb.rhai"])
        .code(1)
        .has("env(\"NOPE_NOT_SET\", default)");
    pb("print(env(\"NOPE_NOT_SET\", \"fallback\"));")
        .run(&["pb.rhai"])
        .code(0)
        .has("fallback");
}

#[test]
fn github_format_masks_first_and_annotates_errors() {
    let gh_out = tempfile::NamedTempFile::new().unwrap();
    let mut p = pb("let t = secret(\"API_TOKEN\");\nlog_info(\"using \" + t);\noutput(\"multi\", \"line1\\nline2\");\noutput(\"endpoint\", \"a.b:2000\");\n");
    p.env("API_TOKEN", CANARY)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", gh_out.path().to_str().unwrap());
    let out = p.run(&["pb.rhai"]);
    out.code(0);
    let first = out.stdout.lines().position(|l| l.contains(CANARY)).unwrap();
    assert_eq!(
        out.stdout.lines().nth(first).unwrap(),
        format!("::add-mask::{CANARY}")
    );
    assert_eq!(
        out.all().matches(CANARY).count(),
        1,
        "only the mask line names it:\n{}",
        out.all()
    );
    let text = std::fs::read_to_string(gh_out.path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let delim = lines[0].strip_prefix("multi<<").unwrap();
    assert!(delim.starts_with("ghadelimiter_") && delim.len() > 20);
    assert_eq!(&lines[1..4], &["line1", "line2", delim]);
    assert!(text.contains("endpoint<<"), "{text}");

    let mut p = pb("let a = 1;\nfail(\"50% done: a,b\\nnext\");\n");
    p.env("GITHUB_ACTIONS", "true");
    p.run(&["pb.rhai"])
        .code(1)
        .has("::error file=pb.rhai,line=2,col=1::50%25 done: a,b%0Anext");
}

#[test]
fn child_output_cannot_issue_workflow_commands() {
    let mut p = pb("exec([\"terraform\", \"version\"], #{ echo: true, read_only: true });");
    p.standins().env("GITHUB_ACTIONS", "true");
    p.file("standin/terraform.json", "{}");
    let out = p.run(&["pb.rhai"]);
    out.code(0);
    let stop = out
        .stdout
        .lines()
        .find(|l| l.starts_with("::stop-commands::"))
        .expect("stop-commands");
    let token = stop.trim_start_matches("::stop-commands::");
    assert!(token.len() >= 16);
    assert!(
        out.stdout.contains(&format!("::{token}::")),
        "{}",
        out.stdout
    );
}

#[test]
fn json_logs_are_one_object_a_line() {
    let out = pb("log_info(\"hello\");\nvalidate_endpoint(\"a.example:2000\");").run(&[
        "pb.rhai",
        "--log-format",
        "json",
    ]);
    out.code(0);
    let events: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(events
        .iter()
        .any(|e| e["primitive"] == "validate_endpoint" && e["outcome"] == "valid"));
}

#[test]
fn exec_runs_only_allow_listed_argv() {
    pb("exec([\"rm\", \"-rf\", \"x\"]);")
        .run(&["pb.rhai"])
        .code(1)
        .has("'rm' is not on the allow-list")
        .has("--allow rm");
    pb("exec([\"/bin/ls\"]);")
        .run(&["pb.rhai"])
        .code(1)
        .has("is a path");
    pb("exec(\"ls -la\");")
        .run(&["pb.rhai"])
        .code(2)
        .has("exec: argument 1 wants Array, this call gives a string");
    pb("exec([]);")
        .run(&["pb.rhai"])
        .code(1)
        .has("argv is empty");
    pb("let r = exec([\"ls\"]); print(r.code);")
        .run(&["pb.rhai", "--allow", "ls"])
        .code(0)
        .has("0");
    let mut p = pb("let r = exec([\"ls\"]); print(r.code);");
    p.env("RUNBOOK_ALLOW", "ls");
    p.run(&["pb.rhai"]).code(0);
    pb("exec([\"git\", \"--no-such-flag\"]);")
        .run(&["pb.rhai"])
        .code(1)
        .has("exited with");
    pb("let r = exec([\"git\", \"--no-such-flag\"], #{ allow_failure: true }); print(`code ${r.code}`);").run(&["pb.rhai"]).code(0).has("code 129");
    let mut p = pb("exec([\"terraform\", \"version\"], #{ timeout: 0.5 });");
    p.standins().env("STANDIN_SLEEP_FOREVER", "1");
    p.run(&["pb.rhai"]).code(1).has("no answer within 0.5s");
}

#[test]
fn dry_run_runs_no_mutating_command() {
    let mut p = pb("exec([\"terraform\", \"apply\", \"-auto-approve\"]);\nexec([\"terraform\", \"version\"], #{ read_only: true });\nwrite_json(\"a.json\", 1);");
    p.standins();
    p.run(&["pb.rhai", "--dry-run"])
        .code(0)
        .has("would run terraform apply")
        .has("would write a.json");
    let calls = p.read("standin/calls.jsonl").unwrap_or_default();
    assert!(
        !calls.contains("apply") && calls.contains("version"),
        "{calls}"
    );
    assert!(p.read("a.json").is_none());
}

#[test]
fn write_json_stays_inside_the_working_directory() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("x.json");
    let p = pb(&format!("write_json({:?}, 1);", target.to_str().unwrap()));
    p.run(&["pb.rhai"]).code(1).has("absolute path");
    assert!(!target.exists());
    pb("write_json(\"../x.json\", 1);")
        .run(&["pb.rhai"])
        .code(1)
        .has("'..'");
    let p = pb("write_json(\"link/x.json\", 1);");
    std::os::unix::fs::symlink(outside.path(), p.path().join("link")).unwrap();
    p.run(&["pb.rhai"])
        .code(1)
        .has("outside the working directory");
    assert!(!target.exists());
    let p = pb("write_json(\"out/deep/x.json\", #{ a: [1, 2] });");
    p.run(&["pb.rhai"]).code(0);
    assert_eq!(
        p.read("out/deep/x.json").unwrap(),
        "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n"
    );
}

#[test]
fn a_failed_run_takes_back_its_artifacts() {
    let p = pb("write_json(\"endpoint.json\", #{ banano_rpc_endpoint: \"a.b:2000\" });\nfail(\"later step failed\");");
    p.run(&["pb.rhai"])
        .code(1)
        .has("removed")
        .has("endpoint.json");
    assert!(p.read("endpoint.json").is_none());
}

#[test]
fn kill_9_never_leaves_a_half_written_artifact() {
    // Rewrite a large artifact in a loop and kill -9 at several moments:
    // the file is always the old or the new whole document.
    let p = pb("let big = []; for i in 0..20000 { big.push(`item-${i}`); }\nlet n = 0;\nloop { n += 1; write_json(\"big.json\", #{ n: n, big: big }); }");
    for delay_ms in [150u64, 300, 450] {
        let started = Instant::now();
        let mut child = p.command(&["pb.rhai"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        let _ = support::wait_output(child, Duration::from_secs(10), started);
        if let Some(text) = p.read("big.json") {
            let v: serde_json::Value = serde_json::from_str(&text).expect("a whole JSON document");
            assert_eq!(v["big"].as_array().map(Vec::len), Some(20000));
        }
    }
}

#[test]
fn check_lints_without_running() {
    let p = Project::new();
    p.file(
        "ok.rhai",
        "const PARAMS = #{ sha: #{} };\nprint(args.sha);\nlet f = |x| x + 1;\nprint(f(1));\n",
    );
    p.file("bad.rhai", "const PARAMS = #{ sha: #{} };\nwrite_json(\"ran.json\", 1);\nprint(args.shaa);\nvalidate_endpont(\"x\");\nimport \"nosuch\" as n;\nimport \"endpoints\" as e;\ne::no_such_fn();\n");
    let out = p.run(&["check", "ok.rhai", "bad.rhai"]);
    out.code(2)
        .has("ok    ok.rhai")
        .has("bad.rhai:3:12: args.shaa: no parameter 'shaa' is declared in PARAMS (did you mean 'sha'?)")
        .has("bad.rhai:4:1: unknown function 'validate_endpont' (did you mean 'validate_endpoint'?)")
        .has("bad.rhai:5:1: import \"nosuch\"")
        .has("module 'e' has no function 'no_such_fn'")
        .has("4 problem(s) found");
    assert!(p.read("ran.json").is_none());
    p.file("broken.rhai", "let = 1;");
    p.run(&["check", "broken.rhai"])
        .code(2)
        .has("broken.rhai:1:5: does not compile");
    p.run(&["check", "nowhere"]).code(2).has("no such file");
}

#[test]
fn the_repository_playbooks_pass_check() {
    let out = Project::new()
        .command(&["check", "playbooks", "stdlib"])
        .current_dir(support::repo())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ok    playbooks/split-deploy.rhai"), "{text}");
}

#[test]
fn doc_lists_every_primitive() {
    let p = Project::new();
    let out = p.run(&["doc"]);
    out.code(0);
    for name in [
        "validate_endpoint",
        "discover_port",
        "akash_update",
        "akash_lease_status",
        "exec",
        "write_json",
        "secret",
        "output",
        "summary",
    ] {
        out.has(&format!("{name}("));
    }
    p.run(&["doc", "discover_port"])
        .code(0)
        .has("max_elapsed")
        .lacks("akash_update(");
    p.run(&["doc", "discover_prot"])
        .code(2)
        .has("did you mean 'discover_port'");
    p.run(&["doc", "--definitions", "defs"]).code(0);
    assert!(std::fs::read_dir(p.path().join("defs")).unwrap().count() > 0);
}

#[test]
fn the_readme_reference_is_current() {
    let out = Project::new().run(&["doc", "--markdown"]);
    out.code(0);
    let committed =
        std::fs::read_to_string(support::repo().join("docs/primitives.md")).unwrap_or_default();
    let want = format!("{}{}", DOC_HEADER, out.stdout);
    assert!(
        committed == want,
        "docs/primitives.md is stale: regenerate it with `ci/gen-docs.sh`"
    );
}

const DOC_HEADER: &str = "# Primitives\n\nGenerated by `runbook doc --markdown` (see `ci/gen-docs.sh`); do not edit by hand.\n\n";

#[test]
fn children_do_not_inherit_secrets_unless_handed_one() {
    let mut p = pb(r#"let t = secret("TF_VAR_secret");
exec(["terraform", "version"], #{ read_only: true });
exec(["terraform", "version"], #{ read_only: true, env: #{ TF_VAR_token: t } });
"#);
    p.standins()
        .env("TF_VAR_secret", CANARY)
        .env("TF_VAR_plain", "not-a-secret");
    p.file("standin/terraform.json", "{}");
    p.run(&["pb.rhai"]).code(0);
    let calls = p.standin_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["env"]["TF_VAR_plain"], "not-a-secret");
    assert!(
        calls[0]["env"].get("TF_VAR_secret").is_none(),
        "{}",
        calls[0]
    );
    assert_eq!(calls[1]["env"]["TF_VAR_token"], CANARY, "handed on purpose");
}
