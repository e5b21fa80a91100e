use super::*;
use crate::engine::Resolver;
use rhai::Map;

const PB: &str = r#"//! Roll back the API.
//! Second line.
const PARAMS = #{
sha: #{ type: "string", required: true, pattern: "[0-9a-f]{40}", help: "git SHA" },
dseq: #{ type: "int", default_value: 5 },
stack: #{ choices: ["banano", "api", "both"], default_value: "both" },
verbose: #{ type: "bool", default_value: false },
rpc_endpoint: #{ help: "host:port" },
};
print(args.sha);
"#;

/// Imports of a playbook in the current folder (these have none).
fn here() -> Resolver {
    Resolver::new(std::path::Path::new("pb.rhai"))
}

fn decl() -> Declaration {
    let ast = rhai::Engine::new().compile(PB).unwrap();
    declaration(&ast, PB, &here()).unwrap()
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const SHA: &str = "4f1c2a9d0b8e7c6f5a4b3c2d1e0f9a8b7c6d5e4f";

#[test]
fn reads_the_declaration_without_running() {
    let d = decl();
    assert_eq!(d.description, "Roll back the API.\nSecond line.");
    let names: Vec<&str> = d.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["sha", "dseq", "rpc_endpoint", "stack", "verbose"]);
    let help = render_help(&d, "rollback.rhai");
    assert!(help.contains("--sha <string>"), "{help}");
    assert!(help.contains("--rpc-endpoint"), "{help}");
    assert!(help.contains("one of: banano, api, both"), "{help}");
}

#[test]
fn parses_both_forms_and_defaults() {
    let m = parse_args_with_env(
        &decl(),
        &args(&[
            "--sha",
            SHA,
            "--dseq=7",
            "--verbose",
            "--rpc-endpoint",
            "a.b:2000",
        ]),
        &|_| None,
    )
    .unwrap();
    assert_eq!(m["sha"].to_string(), SHA);
    assert_eq!(m["dseq"].as_int().unwrap(), 7);
    assert!(m["verbose"].as_bool().unwrap());
    assert_eq!(m["stack"].to_string(), "both");
    assert_eq!(m["rpc_endpoint"].to_string(), "a.b:2000");
    let m = parse_args_with_env(&decl(), &args(&["--sha", SHA]), &|_| None).unwrap();
    assert!(m["rpc_endpoint"].is_unit());
    // Bool flags take a separate true/false too.
    for (a, want) in [
        (&["--verbose", "false"][..], false),
        (&["--verbose", "true", "--dseq", "2"][..], true),
    ] {
        let mut v = args(&["--sha", SHA]);
        v.extend(args(a));
        let m = parse_args_with_env(&decl(), &v, &|_| None).unwrap();
        assert_eq!(m["verbose"].as_bool().unwrap(), want, "{a:?}");
    }
}

#[test]
fn bad_input_names_the_parameter() {
    let d = decl();
    let cases: &[(&[&str], &str)] = &[
        (&[], "missing required parameter --sha"),
        (&["--sha", &SHA[..39]], "does not match the pattern"),
        (
            &["--sha", &SHA.to_uppercase()],
            "does not match the pattern",
        ),
        (&["--sha", SHA, "--dseq", "x"], "--dseq wants an integer"),
        (
            &["--sha", SHA, "--stack", "bananna"],
            "did you mean 'banano'",
        ),
        (&["--sha", SHA, "--verbose=maybe"], "wants true or false"),
        (
            &["--sha", SHA, "--verbose", "maybe"],
            "parameter --verbose is a switch: give --verbose alone, or --verbose true / --verbose false (got 'maybe')",
        ),
        (
            &["--sha", SHA, "--dry-rn"],
            "unknown parameter --dry-rn (did you mean '--dry-run'?)",
        ),
        (
            &["--sha", SHA, "--dryrun"],
            "unknown parameter --dryrun (did you mean '--dry-run'?)",
        ),
        (
            &["--sha", SHA, "--shaa", "x"],
            "unknown parameter --shaa (did you mean '--sha'?)",
        ),
        (&["--sha", SHA, "stray"], "unexpected argument 'stray'"),
        (&["--sha", SHA, "--sha", SHA], "given twice"),
        (&["--sha"], "needs a value"),
    ];
    for (a, want) in cases {
        let err = parse_args_with_env(&d, &args(a), &|_| None).unwrap_err();
        assert!(err.contains(want), "{a:?}: {err}");
    }
}

#[test]
fn bad_declarations_are_refused() {
    let cases = [
        (
            "const PARAMS = #{ x: #{ type: \"float\" } };",
            "type 'float'",
        ),
        (
            "const PARAMS = #{ x: #{ typ: \"int\" } };",
            "did you mean 'type'",
        ),
        (
            "const PARAMS = #{ x: #{ pattern: \"(\" } };",
            "not a valid regular expression",
        ),
        ("const PARAMS = #{ timeout: #{} };", "reserved"),
        ("let PARAMS = #{ x: #{} };", "a constant"),
        (
            "const PARAMS = #{ x: #{ type: \"int\", default_value: \"a\" } };",
            "is not of type int",
        ),
        (
            "const PARAMS = #{ x: #{ required: true, default_value: \"a\" } };",
            "choose one",
        ),
    ];
    for (src, want) in cases {
        let ast = rhai::Engine::new().compile(src).unwrap();
        let err = declaration(&ast, src, &here()).unwrap_err();
        assert!(err.contains(want), "{src}: {err}");
    }
}

#[test]
fn every_mistake_in_one_pass_without_follow_ups() {
    let src = r#"const PARAMS = #{
tag: #{ "default": "x", typ: "int" },
n: #{ requred: true, type: "float" },
};"#;
    let ast = rhai::Engine::new().compile(src).unwrap();
    let (decl, errors) = declaration_all(&ast, src, &here());
    let all = errors.join("\n");
    assert_eq!(errors.len(), 4, "{all}");
    assert!(
        all.contains("PARAMS.tag: write `default_value: …`"),
        "{all}"
    );
    assert!(
        all.contains("PARAMS.tag: unknown key 'typ' (did you mean 'type'?)"),
        "{all}"
    );
    assert!(
        all.contains("PARAMS.n: unknown key 'requred' (did you mean 'required'?)"),
        "{all}"
    );
    assert!(all.contains("PARAMS.n: type 'float'"), "{all}");
    // Both stay declared: `args.tag` is not a false "not declared".
    let names: Vec<&str> = decl.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["n", "tag"]);
}

/// A project with `lib/shared.rhai` beside `pb.rhai`: the declaration
/// of `pb` (source given) and its mistakes.
fn with_fragment(module: &str, pb: &str) -> (Declaration, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("lib/shared.rhai"), module).unwrap();
    let path = dir.path().join("pb.rhai");
    let ast = rhai::Engine::new().compile(pb).unwrap();
    declaration_all(&ast, pb, &Resolver::new(&path))
}

const SHARED: &str = r#"export const IMAGE_PARAMS = #{
sha: #{ required: true, pattern: "[0-9a-f]{40}", help: "git SHA" },
branch: #{ default_value: "main" },
};
const PRIVATE_PARAMS = #{ x: #{} };
fn helper() { 1 }
"#;

#[test]
fn imported_fragments_join_with_later_specs_winning() {
    let pb = "import \"lib/shared\" as base;\nconst PARAMS = base::IMAGE_PARAMS + #{ branch: #{ default_value: \"dev\" }, dseq: #{ type: \"int\" } };\n";
    let (d, errors) = with_fragment(SHARED, pb);
    assert!(errors.is_empty(), "{errors:?}");
    let names: Vec<&str> = d.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["sha", "branch", "dseq"]);
    assert_eq!(d.params[1].default.as_ref().unwrap().to_string(), "dev");
    assert!(d.params[0].pattern.is_some());
    // Rhai's own `+` on maps agrees at run time.
    let run = rhai::Engine::new()
        .eval::<Map>("#{ a: 1, b: 1 } + #{ b: 2 }")
        .unwrap();
    assert_eq!(run["b"].as_int().unwrap(), 2);
}

#[test]
fn fragment_mistakes_are_named() {
    let cases = [
        (
            "const PARAMS = other::IMAGE_PARAMS;",
            "no `import \"…\" as other;`",
        ),
        (
            "const PARAMS = base::IMAGE_PARAMS;\nimport \"lib/shared\" as base;",
            "move `import \"lib/shared\" as base;` above PARAMS",
        ),
        (
            "import \"lib/shared\" as base;\nconst PARAMS = base::PRIVATE_PARAMS;",
            "no literal `export const PRIVATE_PARAMS",
        ),
        (
            "import \"lib/nosuch\" as base;\nconst PARAMS = base::IMAGE_PARAMS;",
            "the module \"lib/nosuch\" is not found",
        ),
        (
            "import \"lib/shared\" as base;\nconst PARAMS = base::IMAGE_PARAMS + helper();",
            "PARAMS must be a literal map",
        ),
    ];
    for (pb, want) in cases {
        let (_, errors) = with_fragment(SHARED, pb);
        assert!(errors.join("\n").contains(want), "{pb}: {errors:?}");
    }
    // A module that does not parse is named, not skipped.
    let pb = "import \"lib/shared\" as base;\nconst PARAMS = base::IMAGE_PARAMS;";
    let (_, errors) = with_fragment("export const IMAGE_PARAMS = #{ sha: ", pb);
    assert!(
        errors
            .join("\n")
            .contains("lib/shared.rhai does not compile"),
        "{errors:?}"
    );
}

#[test]
fn two_fragments_of_one_module_join() {
    let pb =
        "import \"lib/shared\" as base;\nconst PARAMS = base::IMAGE_PARAMS + base::MORE_PARAMS;";
    let module = format!("{SHARED}export const MORE_PARAMS = #{{ dseq: #{{ type: \"int\" }} }};\n");
    let (d, errors) = with_fragment(&module, pb);
    assert!(errors.is_empty(), "{errors:?}");
    let names: Vec<&str> = d.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["sha", "branch", "dseq"]);
}

#[test]
fn an_import_earlier_on_the_same_line_counts_as_above() {
    let pb = "import \"lib/shared\" as base; const PARAMS = base::IMAGE_PARAMS;";
    let (d, errors) = with_fragment(SHARED, pb);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(d.params.len(), 2);
    let pb = "const PARAMS = base::IMAGE_PARAMS; import \"lib/shared\" as base;";
    let (_, errors) = with_fragment(SHARED, pb);
    assert!(errors.join("\n").contains("above PARAMS"), "{errors:?}");
}

#[test]
fn a_modules_fragments_are_checked_where_they_are_written() {
    let src = "export const IMAGE_PARAMS = #{ sha: #{ typ: \"int\" }, timeout: #{} };\nexport const BAD_PARAMS = 5;\nexport const OTHER = #{ x: 1 };\n";
    let ast = rhai::Engine::new().compile(src).unwrap();
    let all = fragment_errors(&ast).join("\n");
    assert!(all.contains("IMAGE_PARAMS.sha: unknown key 'typ'"), "{all}");
    assert!(
        all.contains("IMAGE_PARAMS.timeout: the name is reserved"),
        "{all}"
    );
    assert!(
        all.contains("BAD_PARAMS: a parameter fragment must be a literal map"),
        "{all}"
    );
    assert!(!all.contains("OTHER"), "{all}");
}
