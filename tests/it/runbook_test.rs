//! `runbook test`: the real binary on small test files — passing, failing
//! (file:line and caret), unstubbed primitives, replay of a recording,
//! snapshots, JUnit output and exit codes.

use crate::support;

use support::{Project, CANARY};

const PB: &str = r####"//! Deploy an image if it exists.
const PARAMS = #{ tag: #{ required: true, pattern: "[a-z0-9]+" }, strict: #{ type: "bool", default_value: false } };
if !ghcr_has_tag("ghcr.io/o/app", args.tag) {
    fail(`no image ${args.tag}`);
}
let d = image_digest("ghcr.io/o/app", args.tag);
write_json("deployed.json", #{ digest: d });
output("digest", d);
summary(`### Deployed

${d}`);
"####;

fn project(tests: &str) -> Project {
    let p = Project::new();
    p.file("pb.rhai", PB).file("pb.test.rhai", tests);
    p
}

#[test]
fn passing_tests_print_one_line_each_and_the_count_last() {
    let p = project(
        r####"
fn test_deploys() {
    let t = playbook("pb.rhai", #{ tag: "v1" });
    t.stub("ghcr_has_tag", true);
    t.stub("image_digest", |image, tag| `sha256:${tag}`);
    let r = t.run();
    assert_eq(r.code, 0, r.report);
    assert_eq(r.outputs.digest, "sha256:v1");
    assert_eq(r.artifacts["deployed.json"], #{ digest: "sha256:v1" });
    assert_eq(r.summary, "### Deployed\n\nsha256:v1");
    assert_eq(r.calls("image_digest")[0].args, ["ghcr.io/o/app", "v1"]);
    assert_eq(r.mutations.map(|m| m.name), ["write_json", "output"]);
}
fn test_missing_image_changes_nothing() {
    let t = playbook("pb.rhai", #{ tag: "v1" });
    t.stub("ghcr_has_tag", false);
    let r = t.run();
    assert_eq(r.code, 1);
    assert_match(r.error, "no image v1");
    assert_eq(r.mutations, []);
}
fn test_bad_parameter_is_exit_2() {
    let r = playbook("pb.rhai", #{ tag: "V1!" }).run();
    assert_eq(r.code, 2);
    assert_match(r.error, "does not match the pattern");
}
fn helper_is_not_a_test() { throw "not run"; }
"####,
    );
    let out = p.run(&["test"]);
    out.code(0)
        .has("ok   ./pb.test.rhai::test_deploys (")
        .has("ok   ./pb.test.rhai::test_missing_image_changes_nothing (")
        .lacks("helper_is_not_a_test");
    assert_eq!(
        out.stdout.lines().last(),
        Some("3 passed, 0 failed"),
        "{}",
        out.stdout
    );
    // Nothing leaks into the project: each run has its own temporary folder.
    assert!(p.read("deployed.json").is_none());
}

#[test]
fn a_failure_shows_both_values_and_the_test_line_with_a_caret() {
    let p = project(
        "fn test_ok() { assert(true); }\n\nfn test_wrong() {\n    let t = playbook(\"pb.rhai\", #{ tag: \"v1\" });\n    t.stub(\"ghcr_has_tag\", true);\n    t.stub(\"image_digest\", \"sha256:real\");\n    let r = t.run();\n    assert_eq(r.outputs.digest, \"sha256:expected\");\n}\n",
    );
    let out = p.run(&["test", "pb.test.rhai"]);
    out.code(1)
        .has("FAIL pb.test.rhai::test_wrong")
        .has("left:  \"sha256:real\"")
        .has("right: \"sha256:expected\"")
        .has("--> pb.test.rhai:8:5")
        .has("8 |     assert_eq(r.outputs.digest, \"sha256:expected\");")
        .has("  |     ^");
    assert_eq!(out.stdout.lines().last(), Some("1 passed, 1 failed"));
}

#[test]
fn an_error_inside_a_stub_closure_names_the_test_file_and_line() {
    let p = project(
        r####"fn test_a_mistake_in_the_stub() {
    let t = playbook("pb.rhai", #{ tag: "v1" });
    t.stub("ghcr_has_tag", true);
    t.stub("image_digest", |image, tag| {
        let pad = "0" * 64;
        `sha256:${pad}`
    });
    let r = t.run();
    print(r.report);
    assert_eq(r.code, 1);
    assert_match(r.error, "^the stub of image_digest failed at ./pb.test.rhai:5:23: there is no function \\*");
}
fn test_an_assertion_in_the_stub() {
    let t = playbook("pb.rhai", #{ tag: "v1" });
    t.stub("ghcr_has_tag", |image, tag| {
        assert_eq(tag, "v2");
        true
    });
    let r = t.run();
    assert_match(r.error, "^the stub of ghcr_has_tag failed at ./pb.test.rhai:16:9: assert_eq failed");
}
fn test_a_throw_is_still_the_primitives_error() {
    let t = playbook("pb.rhai", #{ tag: "v1" });
    t.stub("ghcr_has_tag", |image, tag| throw "503 from the registry");
    let r = t.run();
    assert_eq(r.error, "503 from the registry");
}
"####,
    );
    let out = p.run(&["test"]);
    out.code(0);
    let want = "     | error: the stub of image_digest failed at ./pb.test.rhai:5:23: there is no function * (&str | ImmutableString | String, i64): Rhai cannot repeat a string with `*`: `let s = \"\"; s.pad(64, \"a\");` (`pad` works in place) or a loop with `s += \"a\"`\n  --> ./pb.test.rhai:5:23\n  |\n5 |         let pad = \"0\" * 64;\n  |                       ^\n  = in the stub of image_digest, called from ./pb.rhai:6:9\n";
    assert!(out.stdout.contains(want), "{}", out.stdout);
}

#[test]
fn an_unstubbed_primitive_fails_the_run_naming_it() {
    let p = project(
        r####"fn test_forgot_a_stub() {
    let t = playbook("pb.rhai", #{ tag: "v1" });
    t.stub("ghcr_has_tag", true);
    let r = t.run();
    assert_eq(r.code, 1);
    assert_match(r.error, "^unstubbed primitive `image_digest\\(\"ghcr.io/o/app\",\"v1\"\\)`: stub it with t.stub");
    assert_eq(r.mutations, []);
}
fn test_caught_unstubbed_call_still_fails() {
    let t = playbook("sneaky.rhai");
    let r = t.run();
    assert_eq(r.code, 1);
    assert_match(r.error, "unstubbed primitive `git_sha\\(\\)`");
}
fn test_stub_names_are_checked() {
    let t = playbook("pb.rhai", #{ tag: "v1" });
    t.stub("image_digset", "sha256:x");
}
"####,
    );
    p.file(
        "sneaky.rhai",
        "let s = \"none\";\ntry { s = git_sha(); } catch { log_warn(\"no git\"); }\n",
    );
    let out = p.run(&["test"]);
    out.code(1)
        .has("ok   ./pb.test.rhai::test_forgot_a_stub")
        .has("ok   ./pb.test.rhai::test_caught_unstubbed_call_still_fails")
        .has("FAIL ./pb.test.rhai::test_stub_names_are_checked")
        .has("there is no primitive 'image_digset' (did you mean 'image_digest'?)");
}

#[test]
fn a_stub_closure_may_throw_the_primitive_error() {
    let p = project(
        r####"fn test_transient_registry_error() {
    let t = playbook("pb.rhai", #{ tag: "v1" });
    t.stub("ghcr_has_tag", |image, tag| throw `registry answered 503 for ${image}:${tag}`);
    let r = t.run();
    assert_eq(r.code, 1);
    assert_eq(r.error, "registry answered 503 for ghcr.io/o/app:v1");
    assert_match(r.report, "--> .*pb.rhai:3:5");
}"####,
    );
    p.run(&["test"]).code(0).has("1 passed, 0 failed");
}

#[test]
fn env_secrets_and_files_are_the_tests_own() {
    let mut p = project(
        r####"fn test_env() {
    let t = playbook("env.rhai");
    t.env("TARGET", "staging");
    t.secret("TOKEN", "tok-abcdef-123");
    t.file("in/config.json", #{ replicas: 3 });
    let r = t.run();
    assert_eq(r.code, 0, r.report);
    assert_eq(r.outputs, #{ target: "staging", replicas: "3", home: "unset" });
    assert_eq(r.logs, ["info: token ***"]);
}"####,
    );
    p.file(
        "env.rhai",
        "let tok = secret(\"TOKEN\");\nlog_info(`token ${tok}`);\noutput(\"target\", env(\"TARGET\"));\noutput(\"replicas\", read_json(\"in/config.json\").replicas);\noutput(\"home\", env(\"HOME\", \"unset\"));\n",
    );
    // The process environment does not reach the playbook.
    p.env("TARGET", "production");
    p.run(&["test"]).code(0).has("1 passed, 0 failed");
}

#[test]
fn record_a_real_run_then_replay_it_and_name_the_first_divergence() {
    let mut p = project(
        r####"fn test_replays() {
    let t = playbook("rec.rhai", #{ host: "node.example" });
    t.secret("API_TOKEN", "tok-test-1");
    t.replay("fixtures/ok.json");
    let r = t.run();
    assert_eq(r.code, 0, r.report);
    assert_eq(r.outputs.head, "ref: refs/heads/main");
}
fn test_diverges() {
    let t = playbook("rec.rhai", #{ host: "other.example" });
    t.secret("API_TOKEN", "tok-test-1");
    t.replay("fixtures/ok.json");
    let r = t.run();
    assert_eq(r.code, 1);
    print(r.error);
}"####,
    );
    // A real run: exec of an allow-listed program, recorded.
    p.file(
        "rec.rhai",
        "const PARAMS = #{ host: #{ required: true } };\nlet tok = secret(\"API_TOKEN\");\nlet ep = validate_endpoint(`${args.host}:7072`);\nlet out = exec([\"git\", \"--version\"], #{ read_only: true, env: #{ HOST: ep.host, TOKEN: tok } });\noutput(\"head\", \"ref: refs/heads/main\");\n",
    );
    p.env("API_TOKEN", CANARY);
    std::fs::create_dir_all(p.path().join("fixtures")).unwrap();
    p.run(&[
        "rec.rhai",
        "--host",
        "node.example",
        "--record",
        "fixtures/ok.json",
    ])
    .code(0);
    let rec = p.read("fixtures/ok.json").expect("the recording");
    assert!(rec.contains("\"format\": \"runbook-record/1\""), "{rec}");
    assert!(rec.contains("\"name\": \"exec\""), "{rec}");
    assert!(!rec.contains(CANARY), "secrets are redacted: {rec}");
    let out = p.run(&["test"]);
    out.code(0)
        .has("ok   ./pb.test.rhai::test_replays")
        .has("replay diverged at call #1: the playbook called `exec([\"git\",\"--version\"],{\"env\":{\"HOST\":\"other.example\"");
}

#[test]
fn snapshots_are_written_on_request_and_compared_after() {
    let p = project(
        r####"fn test_snap() {
    let t = playbook("pb.rhai", #{ tag: "v1" });
    t.stub("ghcr_has_tag", true);
    t.stub("image_digest", "sha256:one");
    assert_snapshot("outputs", t.run().outputs);
}"####,
    );
    p.run(&["test"]).code(1).has("--update-snapshots");
    p.run(&["test", "--update-snapshots"]).code(0);
    let snap = p
        .read("snapshots/pb.outputs.json")
        .expect("snapshot written");
    assert!(snap.contains("\"digest\": \"sha256:one\""), "{snap}");
    p.run(&["test"]).code(0);
    p.file(
        "snapshots/pb.outputs.json",
        "{\"digest\": \"sha256:two\"}\n",
    );
    p.run(&["test"])
        .code(1)
        .has("snapshot 'outputs' differs")
        .has("-   \"digest\": \"sha256:two\"")
        .has("+   \"digest\": \"sha256:one\"");
}

#[test]
fn junit_filter_and_exit_codes() {
    let p = project(
        "fn test_a() { print(\"noise\"); assert(true); }\nfn test_b() { assert(1 == 2, \"one is not two\"); }\n",
    );
    let out = p.run(&["test", "--format", "junit"]);
    out.code(1)
        .has("<testsuites name=\"runbook test\" tests=\"2\" failures=\"1\"")
        .has("<testcase classname=\"./pb.test.rhai\" name=\"test_a\"")
        .has("<failure message=\"assertion failed: one is not two\">");
    assert!(out.stderr.contains("1 passed, 1 failed"), "{}", out.stderr);
    // stdout is the XML alone: a test's print goes to stderr.
    assert!(
        out.stdout.starts_with("<?xml") && !out.stdout.contains("noise"),
        "{}",
        out.stdout
    );
    p.run(&["test", "--filter", "test_a"])
        .code(0)
        .has("1 passed, 0 failed");
    p.run(&["test", "--filter", "nothing"])
        .code(2)
        .has("no test matches --filter");
    p.run(&["test", "nowhere"])
        .code(2)
        .has("nowhere: no such file or folder");
    p.file("bad.test.rhai", "fn test_x() { let = 1; }\n");
    p.run(&["test", "bad.test.rhai"])
        .code(2)
        .has("the test file does not compile")
        .has("--> bad.test.rhai:1:19");
    let empty = Project::new();
    empty.run(&["test"]).code(2).has("no *.test.rhai file");
}

#[test]
fn a_dry_run_plans_exec_without_a_stub_but_reads_need_one() {
    let p = project(
        r####"fn test_dry_run_exec() {
    let t = playbook("ex.rhai");
    t.dry_run(true);
    let r = t.run();
    assert_eq(r.code, 0, r.report);
    assert_eq(r.outputs, #{ planned: "true" });
    assert_eq(r.mutations[0].name, "exec");
    assert(r.mutations[0].planned);
}
fn test_real_run_needs_a_stub() {
    let r = playbook("ex.rhai").run();
    assert_eq(r.code, 1);
    assert_match(r.error, "unstubbed primitive `exec\\(\\[\"helm\",\"uninstall\",\"x\"\\]\\)`");
}
fn test_read_only_exec_needs_a_stub_in_a_dry_run_too() {
    let t = playbook("ro.rhai");
    t.dry_run(true);
    let r = t.run();
    assert_eq(r.code, 1);
    assert_match(r.error, "unstubbed primitive `exec");
}"####,
    );
    p.file(
        "ex.rhai",
        "let r = exec([\"helm\", \"uninstall\", \"x\"]);\noutput(\"planned\", `${r.planned}`);\n",
    );
    p.file(
        "ro.rhai",
        "exec([\"helm\", \"status\", \"x\"], #{ read_only: true });\n",
    );
    p.run(&["test"]).code(0).has("3 passed, 0 failed");
}

/// The README's example test file, taken from the README itself and run
/// against the shipped rollback playbook: the documentation stays true.
#[test]
fn the_readme_example_passes_as_written() {
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    let example: String = readme
        .split("```rhai\n")
        .find(|block| block.starts_with("// playbooks/rollback.test.rhai"))
        .and_then(|block| block.split("```").next())
        .expect("the README has the rollback.test.rhai example")
        .to_string();
    let p = Project::new();
    p.copy_from_repo("playbooks/rollback.rhai")
        .copy_from_repo("playbooks/lib")
        .copy_from_repo("stdlib")
        .file("playbooks/readme_example.test.rhai", &example);
    p.run(&["test", "playbooks/readme_example.test.rhai"])
        .code(0)
        .has("2 passed, 0 failed");
}

/// Under `runbook test`, `lock` answers the shape a dry run gets for real:
/// `expires` a (empty) string, so string methods on it work in both.
#[test]
fn the_lock_stand_in_has_the_real_result_shape() {
    let p = Project::new();
    p.file(
        "pb.rhai",
        "let l = lock(\"app\");\noutput(\"lock\", `${l.backend} ${l.token} ${type_of(l.expires)} ${l.expires.len()}`);\n",
    )
    .file(
        "pb.test.rhai",
        "fn test_lock() {\n    let r = playbook(\"pb.rhai\", #{}).run();\n    assert_eq(r.code, 0, r.report);\n    assert_eq(r.outputs.lock, \"test 1 string 0\");\n}\n",
    );
    p.run(&["test", "pb.test.rhai"]).code(0).has("1 passed");
    p.run(&["pb.rhai", "--dry-run"])
        .code(0)
        .has("lock=file 0 string 0");
}

#[test]
fn artifacts_hold_every_file_the_run_kept_keep_on_failure_ones_included() {
    let p = Project::new();
    p.file(
        "kept.rhai",
        r#"const PARAMS = #{ fail: #{ type: "bool", default_value: false } };
write_json("report.json", #{ ok: true }, #{ keep_on_failure: true });
write_json("plain.json", #{ n: 1 });
if args.fail { fail("on purpose"); }
"#,
    )
    .file(
        "kept.test.rhai",
        r#"
fn test_success_keeps_both() {
    let r = playbook("kept.rhai").run();
    assert_eq(r.code, 0, r.report);
    assert_eq(r.artifacts.keys().len(), 2);
    assert_eq(r.artifacts["report.json"], #{ ok: true });
    assert_eq(r.artifacts["plain.json"], #{ n: 1 });
}
fn test_failure_keeps_only_keep_on_failure() {
    let r = playbook("kept.rhai", #{ fail: true }).run();
    assert_eq(r.code, 1);
    assert_eq(r.artifacts.keys(), ["report.json"]);
    assert_eq(r.files.keys(), r.artifacts.keys());
}
"#,
    );
    p.run(&["test"]).code(0).has("2 passed, 0 failed");
}

#[test]
fn a_test_file_without_a_test_says_so() {
    let p = support::pb("print(1);\n");
    p.file(
        "pb.test.rhai",
        "test(\"it runs\", || {\n    let r = playbook(\"pb.rhai\", #{}).run();\n});\nfn test_takes_a_param(t) { }\n",
    );
    p.run(&["test", "pb.test.rhai"])
        .has("warning: pb.test.rhai has no test: a test is a top-level `fn test_…()` with no parameters")
        .has("0 passed, 0 failed");
}
