//! The plans' artifact contracts, checked with a real JSON Schema validator
//! (draft 2020-12): `endpoint.json` as the binary writes it
//! (`stdlib/endpoints.rhai::write_artifact`) matches
//! `schemas/endpoint.schema.json`, and the schema and the strict reader
//! (`read_artifact`, run through the binary) accept and refuse the same
//! artifacts, so a producer checking the schema and the consumer reading
//! the file cannot disagree.

use serde_json::{json, Value};

use crate::support::{pb, repo, Project};

const KEY: &str = "banano_rpc_endpoint";

/// The schema, itself checked against the draft 2020-12 meta-schema.
fn validator() -> jsonschema::Validator {
    let path = repo().join("schemas/endpoint.schema.json");
    let text = std::fs::read_to_string(&path).expect("schemas/endpoint.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
        panic!(
            "{} is not a valid draft 2020-12 schema: {e}",
            path.display()
        );
    }
    jsonschema::draft202012::new(&schema).expect("the schema compiles")
}

/// The schema's errors for `v`, empty when it is valid.
fn schema_errors(v: &jsonschema::Validator, artifact: &Value) -> Vec<String> {
    v.iter_errors(artifact).map(|e| e.to_string()).collect()
}

#[test]
fn the_endpoint_artifact_the_binary_writes_matches_the_schema() {
    let v = validator();
    for endpoint in [
        "provider.europlots.com:31877",
        "node-1.example:1024",
        "x:65535",
    ] {
        let p = pb(&format!(
            "import \"endpoints\" as e;\ne::write_artifact(\"endpoint.json\", \"{KEY}\", \"{endpoint}\");\n"
        ));
        p.run(&["pb.rhai"]).code(0);
        let text = p
            .read("endpoint.json")
            .expect("write_artifact wrote endpoint.json");
        let artifact: Value = serde_json::from_str(&text).expect("endpoint.json is JSON");
        let errors = schema_errors(&v, &artifact);
        assert!(errors.is_empty(), "{text}\nschema: {errors:?}");
        assert_eq!(artifact, json!({ KEY: endpoint }));
    }
}

/// Run `read_artifact` on `artifact` written as endpoint.json: whether it
/// accepted it, and what the run printed.
fn reader_accepts(p: &Project, artifact: &Value) -> (bool, String) {
    p.file("endpoint.json", &artifact.to_string());
    let out = p.run(&["pb.rhai"]);
    match out.code {
        0 => {
            out.has("read: ");
            (true, out.all())
        }
        1 => {
            // Refused by the reader (its fail or validate_endpoint), not
            // by something else failing.
            out.has("in read_artifact()");
            (false, out.all())
        }
        _ => panic!("read_artifact exited {}:\n{}", out.code, out.all()),
    }
}

#[test]
fn the_schema_and_the_strict_reader_agree_on_every_artifact() {
    let v = validator();
    let p = pb(&format!(
        "import \"endpoints\" as e;\nprint(`read: ${{e::read_artifact(\"endpoint.json\", \"{KEY}\", \"no artifact\")}}`);\n"
    ));
    let ep = |s: &str| json!({ KEY: s });
    #[rustfmt::skip]
    let table: Vec<(Value, bool, &str)> = vec![
        (ep("provider.europlots.com:31877"), true, "a provider's host name"),
        (ep("node-1.example:7072"), true, "digits and hyphens in the host"),
        (ep("a-1:1024"), true, "the lowest forwarded port"),
        (ep("x:65535"), true, "the highest port"),
        (ep("10-0-0-1.nip.example:30000"), true, "a host with digits and a hyphen"),
        (ep("provider.example"), false, "no port"),
        (ep("provider.example:"), false, "an empty port"),
        (ep("provider.example:0"), false, "port zero"),
        (ep("provider.example:65536"), false, "a port over 65535"),
        (ep("provider.example:99999999999999999999"), false, "a port far over 65535"),
        (ep("provider.example:80"), false, "a port below 1024 (never a forwarded port)"),
        (ep("provider.example:1023"), false, "just below 1024"),
        (ep("provider.example:07072"), false, "a leading zero"),
        (ep("provider.example:+3187"), false, "a signed port"),
        (ep("provider.example:31a77"), false, "a port that is not a number"),
        (ep(":31877"), false, "no host"),
        (ep(""), false, "empty"),
        (ep("pro vider.example:31877"), false, "a space in the host"),
        (ep(" provider.example:31877"), false, "a leading space"),
        (ep("provider.example:31877 "), false, "a trailing space"),
        (ep("provider.example:31877\n"), false, "a trailing newline"),
        (ep("http://provider.example:31877"), false, "a scheme"),
        (ep("tcp://provider.example:31877"), false, "another scheme"),
        (ep("provider.example:31877/rpc"), false, "a path"),
        (ep("Provider.example:31877"), false, "upper case"),
        (ep("provider_x.example:31877"), false, "an underscore"),
        (ep("10.0.0.1:31877"), false, "a bare IPv4 address"),
        (ep("1234:31877"), false, "a bare number"),
        (ep("[::1]:31877"), false, "an IPv6 address"),
        (ep("-:31877"), false, "a host of one hyphen (RFC 1123)"),
        (ep("a..b.example:31877"), false, "an empty label"),
        (ep(".a.example:31877"), false, "a leading dot"),
        (ep("a.example.:31877"), false, "a trailing dot"),
        (ep("-a.example:31877"), false, "a label starting with a hyphen"),
        (ep("a-.example:31877"), false, "a label ending with a hyphen"),
        (ep(&format!("{}.example:31877", "a".repeat(64))), false, "a label over 63 characters"),
        (ep(&format!("{}.example:31877", "a".repeat(63))), true, "a label of 63 characters"),
        (ep(&format!("{}.example:31877", vec!["a".repeat(60); 5].join("."))), false, "a host over 253 characters"),
        (json!({ KEY: 31877 }), false, "a number, not a string"),
        (json!({ KEY: null }), false, "null"),
        (json!({ KEY: ["provider.example:31877"] }), false, "an array"),
        (json!({ KEY: "provider.example:31877", "x": 1 }), false, "a second key"),
        (json!({ "banano_endpoint": "provider.example:31877" }), false, "another key only"),
        (json!({}), false, "no key"),
        (json!(["provider.example:31877"]), false, "an array, not an object"),
        (json!("provider.example:31877"), false, "a bare string"),
    ];
    let mut wrong = Vec::new();
    for (artifact, want, why) in &table {
        let (reader, said) = reader_accepts(&p, artifact);
        let errors = schema_errors(&v, artifact);
        let schema = errors.is_empty();
        if reader != *want || schema != *want {
            wrong.push(format!(
                "{artifact} ({why}): want {}, reader {}, schema {} {errors:?}\n{said}",
                verdict(*want),
                verdict(reader),
                verdict(schema)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn verdict(accepts: bool) -> &'static str {
    if accepts {
        "accept"
    } else {
        "refuse"
    }
}
