//! Diagnostics that point at the right line: module errors, errors Rhai
//! leaves without a position, check's lints (also applied before a run),
//! PARAMS mistakes in one pass, bool flags, `runbook doc` for built-ins,
//! reports that survive a failed run.

use crate::support;

use support::{pb, Project};

#[test]
fn an_error_in_a_module_shows_the_module_line_first_then_the_calls() {
    let p = pb("import \"helper\" as h;\nlet a = 1;\nh::outer(5);\n");
    p.file(
        "helper.rhai",
        "fn check(x) {\n    if x > 0 {\n        fail(`bad x ${x}`);\n    }\n}\nfn outer(x) {\n    check(x)\n}\n",
    );
    let out = p.run(&["pb.rhai"]);
    out.code(1);
    let want = "error: bad x 5\n  --> ./helper.rhai:3:9\n  |\n3 |         fail(`bad x ${x}`);\n  |         ^\n  = in check(), called from ./helper.rhai:7:5\n  = in outer(), called from pb.rhai:3:4\n";
    assert!(out.stderr.contains(want), "{}", out.stderr);
}

#[test]
fn an_error_without_a_position_gets_one_and_a_data_race_an_explanation() {
    let out = pb("let m = #{ a: true, b: false };\nprint(m.keys().filter(|k| !m[k]));\n")
        .run(&["pb.rhai"]);
    out.code(1)
        .has("Data race detected on argument #2 of function 'filter'")
        .has("let keys = m.keys(); keys.filter(|k| m[k])")
        .has("--> pb.rhai:2:16")
        .has("2 | print(m.keys().filter(|k| !m[k]));");
}

#[test]
fn check_finds_wrong_calls_escapes_and_every_params_mistake() {
    let p = pb(r#"const PARAMS = #{
    tag: #{ "default": "x", typ: "int" },
    n: #{ requred: true },
};
let x = validate_endpoint(args.tag, 5);
ghcr_has_tags("img", "v1");
print([1, 2].join(", "));
summary(`### Title\n\nbody`);
"#);
    let out = p.run(&["check", "pb.rhai"]);
    out.code(2)
        .has("PARAMS.tag: write `default_value: …`")
        .has("PARAMS.tag: unknown key 'typ' (did you mean 'type'?)")
        .has("PARAMS.n: unknown key 'requred' (did you mean 'required'?)")
        .has("pb.rhai:5:9: validate_endpoint: argument 2 wants Map, this call gives an integer")
        .has("pb.rhai:6:1: ghcr_has_tags: argument 2 wants Array, this call gives a string")
        .has("pb.rhai:7:14: no function or method 'join'")
        .has("pb.rhai:8:19: `\\n` inside a backtick string stays a backslash and a letter")
        .has("8 problem(s) found")
        // `tag` is declared despite its mistakes: no false follow-up.
        .lacks("no parameter 'tag'");
    Project::new()
        .run(&[
            "check",
            &support::repo().join("playbooks").display().to_string(),
        ])
        .code(0);
}

#[test]
fn a_run_applies_the_lints_before_its_first_primitive() {
    let p = pb("write_json(\"report.json\", #{ step: 1 });\noutput(\"a\", \"1\");\nlet r = validate_endpoint(\"a.b:2000\", 5);\n");
    let out = p.run(&["pb.rhai"]);
    out.code(2)
        .has("pb.rhai has 1 problem(s) that would fail the run; nothing was run")
        .has("pb.rhai:3:9: validate_endpoint: argument 2 wants Map");
    assert!(p.read("report.json").is_none(), "nothing ran");
}

#[test]
fn bool_parameters_take_true_or_false_as_a_separate_word() {
    let p = pb("const PARAMS = #{ strict: #{ type: \"bool\", default_value: true }, n: #{ type: \"int\", default_value: 1 } };\nprint(`strict=${args.strict} n=${args.n}`);\n");
    p.run(&["pb.rhai", "--strict", "false", "--n", "2"])
        .code(0)
        .has("strict=false n=2");
    p.run(&["pb.rhai", "--strict", "--n", "3"])
        .code(0)
        .has("strict=true n=3");
    p.run(&["pb.rhai", "--strict=false"])
        .code(0)
        .has("strict=false n=1");
    p.run(&["pb.rhai", "--strict", "maybe"])
        .code(2)
        .has("parameter --strict is a switch");
}

#[test]
fn doc_points_at_the_languages_builtins() {
    let p = Project::new();
    p.run(&["doc", "join"])
        .code(2)
        .has("there is no primitive or Rhai built-in 'join'")
        .has("runbook doc builtins")
        .lacks("there is no primitive 'join'");
    p.run(&["doc", "split"])
        .code(0)
        .has("split is not a runbook primitive but a function of the language")
        .has("split(string: string, delimiter: string) -> array\n")
        .lacks("Result<");
    p.run(&["doc", "builtins"])
        .code(0)
        .has("trim(string: string) -> ()\n    IN PLACE")
        .lacks("ImmutableString");
    // Only close names are suggested.
    p.run(&["doc", "foo"]).code(2).lacks("did you mean");
    p.run(&["doc", "sub_strin"])
        .code(2)
        .has("did you mean 'sub_string'");
}

#[test]
fn a_report_written_to_keep_survives_the_failed_run() {
    let p = pb("write_json(\"report.json\", #{ passed: false }, #{ keep_on_failure: true });\nwrite_json(\"endpoint.json\", #{ a: 1 });\nfail(\"gate failed\");\n");
    p.run(&["pb.rhai"]).code(1).has("gate failed");
    assert!(p
        .read("report.json")
        .is_some_and(|t| t.contains("\"passed\": false")));
    assert!(
        p.read("endpoint.json").is_none(),
        "the default is still to take it back"
    );
    pb("write_json(\"r.json\", 1, #{ keep: true });\n")
        .run(&["pb.rhai"])
        .code(1)
        .has("write_json: unknown option 'keep'; it takes: keep_on_failure");
}

#[test]
fn validate_endpoint_keeps_its_defaults_and_takes_options() {
    let p = pb("print(validate_endpoint(\"10.0.0.5:5432\", #{ allow_ip: true }).endpoint);\nprint(validate_endpoint(\"db.example:80\", #{ ports: [1, 65535] }).endpoint);\nvalidate_endpoint(\"10.0.0.5:5432\");\n");
    p.run(&["pb.rhai"])
        .code(1)
        .has("10.0.0.5:5432\ndb.example:80")
        .has("bare dotted number")
        .has("allow_ip: true");
}

#[test]
fn a_typo_in_an_imported_module_stops_the_run_before_anything_is_written() {
    let p = pb(
        "import \"lib/names\" as names;\nwrite_json(\"out.json\", #{ a: 1 });\nprint(names::short(\"abcdefghij\"));\n",
    );
    // The typo is two imports deep: lib/names imports lib/text.
    p.file(
        "lib/names.rhai",
        "import \"lib/text\" as text;\nfn short(s) { text::cut(s) }\n",
    )
    .file("lib/text.rhai", "fn cut(s) {\n    sub_strin(s, 0, 7)\n}\n");
    let out = p.run(&["pb.rhai"]);
    out.code(2)
        .has("nothing was run")
        .has("lib/text.rhai:2:5: unknown function 'sub_strin' (did you mean 'sub_string'?)");
    assert!(p.read("out.json").is_none(), "nothing written");
    // `runbook test` refuses it the same way.
    p.file(
        "pb.test.rhai",
        "fn test_it() { let r = playbook(\"pb.rhai\").run(); assert_eq(r.code, 2); assert_match(r.error, \"did you mean 'sub_string'\"); }\n",
    );
    p.run(&["test", "pb.test.rhai"]).code(0).has("1 passed");
}

#[test]
fn misspelt_runner_options_switch_values_and_escapes_after_block_comments() {
    let p = pb("const PARAMS = #{ strict: #{ type: \"bool\", default_value: false } };\n");
    p.file(
        "esc.rhai",
        "/* a\n   block\n   comment */\nprint(1);\nprint(`x\\ny`);\n",
    );
    p.run(&["pb.rhai", "--dry-rn"])
        .code(2)
        .has("unknown parameter --dry-rn (did you mean '--dry-run'?)");
    p.run(&["--dryrun", "pb.rhai"])
        .code(2)
        .has("unknown option '--dryrun' before the playbook (did you mean '--dry-run'?)");
    p.run(&["pb.rhai", "--strict", "maybe"])
        .code(2)
        .has("parameter --strict is a switch: give --strict alone, or --strict true / --strict false (got 'maybe')");
    // The escape is on line 5, after a three-line block comment.
    p.run(&["check", "esc.rhai"])
        .code(2)
        .has("esc.rhai:5:9: `\\n` inside a backtick string");
}

/// The Rhai pitfalls of the README's "Rhai for shell and Python people":
/// each one's error carries the hint that says what to write instead.
#[test]
fn each_rhai_pitfall_gets_its_hint_where_the_error_happens() {
    // (what the user wrote, exit code, the hint)
    let cases: &[(&str, i32, &str)] = &[
        // An in-place method on a constant (`args` is one).
        (
            "const PARAMS = #{ image: #{ default_value: \"a/b\" } };\nargs.image.replace(\"/\", \"-\");\n",
            1,
            "Non-pure method 'replace' cannot be called on constant: `replace` changes the value it is called on (and returns nothing), and `args` or a `const` cannot change: copy the value into a `let` first, then use the copy: `let t = args.image; t.replace(…);`\n  --> pb.rhai:2:12\n",
        ),
        // The result of an in-place method used: always (), caught before the run.
        (
            "let s = \"a/b\";\nlet t = s.replace(\"/\", \"-\");\n",
            2,
            "pb.rhai:2:11: the result of `replace` is used, but it is always `()`; `replace` works in place and returns nothing (`()`): change a copy, then use the copy: `let t = s; t.replace(…);`",
        ),
        ("let s = \" a \";\nprint(s.trim());\n", 2, "pb.rhai:2:9: the result of `trim` is used"),
        // String repetition.
        (
            "let s = \"a\" * 64;\n",
            1,
            "there is no function * (&str | ImmutableString | String, i64): Rhai cannot repeat a string with `*`: `let s = \"\"; s.pad(64, \"a\");` (`pad` works in place) or a loop with `s += \"a\"`\n  --> pb.rhai:1:13\n",
        ),
        // Other operators between a string and a number.
        ("let n = \"5\" - 1;\n", 1, "`-` does not combine a string and an int: convert one side first"),
        // A value that is () where one was expected.
        ("let x = ();\nprint(x.len());\n", 1, "one of the values is `()` (nothing)"),
        // join, and names from other languages.
        ("print([\"a\", \"b\"].join(\",\"));\n", 2, "Rhai has no `join`: `arr.reduce("),
        ("print([1].length());\n", 2, "'length' (not a primitive, not a Rhai built-in); `runbook doc builtins` lists the language's functions; in Rhai that is `len()`"),
        ("print(upper(\"a\"));\n", 2, "unknown function 'upper'; `runbook doc` lists the primitives; in Rhai that is `to_upper()`"),
        // Reserved words as names and keys.
        (
            "let m = #{ with: 1 };\n",
            2,
            "'with' is a reserved keyword; Rhai reserves `with`: pick another name for a variable, or quote it as a map key, `#{ \"with\": 1 }`, and read it with `m[\"with\"]`",
        ),
        ("let default = 1;\n", 2, "elsewhere pick another name, or quote a map key"),
        ("let x = null;\n", 2, "Rhai's nothing is `()`"),
        ("let x = None;\n", 1, "Variable not found: None: Rhai's nothing is `()`"),
        ("let n = 1;\nn++;\n", 2, "Rhai has no `++`/`--`: write `x += 1`"),
        // Functions do not see the playbook's variables.
        (
            "let region = \"eu\";\nfn where_to() { region }\nprint(where_to());\n",
            1,
            "Variable not found: region: a function sees only its own parameters and variables, not the playbook's: pass `region` as an argument; a top-level `const region` is readable as `global::region`",
        ),
        // A property of nothing (a missing key in a test's result, say).
        ("let f = ();\nprint(f.found);\n", 1, "the value before the `.` is `()` (nothing): a map key that is not there"),
        // A map is not iterable.
        ("let m = #{ a: 1 };\nfor k in m { print(k); }\n", 1, "for a map: `for k in m.keys() { let v = m[k]; … }`"),
        // A closure sharing a captured variable (a data race).
        ("let m = #{ a: true };\nprint(m.keys().filter(|k| m[k]));\n", 1, "Read it into its own variable first"),
    ];
    for (src, code, hint) in cases {
        let out = pb(src).run(&["pb.rhai"]);
        out.code(*code).has(hint);
    }
}

#[test]
fn check_reports_an_in_place_result_and_passes_the_right_use() {
    let p = pb("let s = \"a/b\";\ns.replace(\"/\", \"-\");\nlet n = s.len();\nlet parts = [];\nparts.push(s);\nprint(`${s} ${parts.len()}`);\nlet u = s.to_upper();\nlet t = s.trim();\n");
    let out = p.run(&["check", "pb.rhai"]);
    out.code(2)
        .has("pb.rhai:8:11: the result of `trim` is used")
        .has("1 problem(s) found");
}

#[test]
fn a_call_with_the_wrong_number_of_arguments_points_at_the_call() {
    let p = pb("let tag = \"v1\";\nlet ok = ghcr_has_tag(\"ghcr.io/acme/app\");\n");
    let sigs = "ghcr_has_tag(image: String, tag: String); ghcr_has_tag(image: String, tag: String, opts: Map)";
    let at = "  |\n2 | let ok = ghcr_has_tag(\"ghcr.io/acme/app\");\n  |          ^\n";
    let out = p.run(&["check", "pb.rhai"]);
    out.code(2);
    let want = format!(
        "error pb.rhai:2:10: ghcr_has_tag takes 2 or 3 argument(s), this call gives 1: {sigs}\n{at}"
    );
    assert!(out.stdout.contains(&want), "{}", out.stdout);
    // A run refuses it with the same caret, indented under its finding.
    let out = p.run(&["pb.rhai"]);
    out.code(2);
    let indented: String = at.lines().map(|l| format!("  {l}\n")).collect();
    let want = format!(
        "  pb.rhai:2:10: ghcr_has_tag takes 2 or 3 argument(s), this call gives 1: {sigs}\n{indented}"
    );
    assert!(out.stderr.contains(&want), "{}", out.stderr);
}

#[test]
fn runbook_test_shows_a_primitives_real_signature() {
    let p = pb("let ok = ghcr_has_tag(\"ghcr.io/acme/app\");\n");
    p.file(
        "pb.test.rhai",
        "fn test_it() {\n    let t = playbook(\"pb.rhai\", #{});\n    t.stub(\"ghcr_has_tag\", true);\n    let r = t.run();\n    assert_eq(r.code, 0, r.error);\n}\n",
    );
    p.run(&["test", "pb.test.rhai"])
        .code(1)
        .has("ghcr_has_tag takes 2 or 3 argument(s), this call gives 1: ghcr_has_tag(image: String, tag: String); ghcr_has_tag(image: String, tag: String, opts: Map)")
        .has("|          ^")
        .lacks("_: ?");
}

#[test]
fn a_reference_split_at_the_ports_colon_is_named_with_the_fix() {
    let p = pb("let r = \"127.0.0.1:5055/acme/app:v1\";\nlet i = r.index_of(\":\");\nprint(ghcr_has_tag(r.sub_string(0, i), r.sub_string(i + 1)));\n");
    p.run(&["pb.rhai"])
        .code(1)
        .has("ghcr_has_tag: the image '127.0.0.1' and the tag '5055/acme/app:v1' look like the reference '127.0.0.1:5055/acme/app:v1' split at the port's ':'")
        .has("`let parts = reference.split_rev(\":\", 2);` gives [\"v1\", \"127.0.0.1:5055/acme/app\"]")
        .has("--> pb.rhai:3:7");
}
