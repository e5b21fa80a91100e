//! Property tests of every parser that takes outside text: zero panics on
//! any input, and the safety properties hold for any value. They run in
//! the test suite with a bounded number of cases; for a longer fuzzing run
//! by hand: `PROPTEST_CASES=200000 cargo test --release --test it properties::`.

use proptest::prelude::*;
use runbook::akash::{sdl, shapes};
use runbook::helm::{failure, status, template, version};
use runbook::kube::{capacity, service};
use runbook::primitives::validate_endpoint;

/// Text that looks like what the parsers see: JSON/YAML punctuation,
/// digits, hosts, newlines, control characters and anything else.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~\\n\\r\\t]{0,200}",
        "[{}\\[\\]:,\"0-9a-z.\\-\\\\ \\n]{0,120}",
        "(v?[0-9]{1,12}(\\.[0-9]{0,12}){0,4}[+\\-a-z0-9]{0,10}\\n?){1,3}",
    ]
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        hostile_text().prop_map(serde_json::Value::from),
        (0u32..70000).prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("forwarded_ports".to_string()),
                    Just("port".to_string()),
                    Just("externalPort".to_string()),
                    Just("host".to_string()),
                    Just("data".to_string()),
                    Just("leases".to_string()),
                    Just("status".to_string()),
                    Just("value".to_string()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn validate_endpoint_never_panics_and_keeps_its_rules(s in hostile_text(), host in "[a-z0-9.\\-]{1,30}", port in any::<u32>()) {
        let _ = validate_endpoint::validate(&s);
        let candidate = format!("{host}:{port}");
        if let Ok(ep) = validate_endpoint::validate(&candidate) {
            prop_assert!((1024..=65535).contains(&ep.port));
            prop_assert!(ep.host.chars().any(|c| c.is_ascii_lowercase() || c == '-'));
            let again = format!("{}:{}", ep.host, ep.port);
            prop_assert!(validate_endpoint::validate(&again).is_ok());
        }
        // RFC 1123 by default: no empty label, none with '-' at an edge
        // (a port in range, so the host is what decides).
        if let Ok(ep) = validate_endpoint::validate(&format!("{host}:{}", 1024 + port % 64512)) {
            for label in ep.host.split('.') {
                prop_assert!(!label.is_empty() && !label.starts_with('-') && !label.ends_with('-'), "{}", ep.host);
            }
        }
    }

    #[test]
    fn durations_never_panic(s in hostile_text(), n in any::<f64>(), unit in "(ms|s|m|h|d|)") {
        let _ = runbook::opts::parse_duration(&s);
        if let Some(d) = runbook::opts::parse_duration(&format!("{n}{unit}")) {
            prop_assert!(d.as_secs_f64().is_finite());
        }
    }

    #[test]
    fn sdl_and_image_parsers_never_panic(text in hostile_text(), image in hostile_text()) {
        let _ = sdl::parse(&text);
        let _ = sdl::image_of(&text, None);
        let _ = sdl::image_of(&text, Some("api"));
        let _ = sdl::env_of(&text, None);
        let _ = sdl::normalize(&text);
        let _ = sdl::split_image(&image);
        let _ = sdl::validate_deploy_image(&image);
        let _ = sdl::validate_pinned_image(&image);
    }

    #[test]
    fn endpoint_shapes_never_panic(v in json_value(), port in any::<u16>()) {
        let _ = shapes::find(&v, port, None, None);
        let _ = shapes::find(&v, port, Some("banano"), Some("endpoint"));
        let _ = shapes::find(&serde_json::json!({"forwarded_ports": v}), port, None, None);
        let _ = shapes::find(&serde_json::json!({"data": {"leases": [{"status": v}]}}), port, None, None);
    }

    #[test]
    fn helm_and_kube_text_parsers_never_panic(text in hostile_text(), v in json_value()) {
        let _ = version::parse_version(&text);
        let _ = status::parse_status(&text);
        let _ = status::parse_status(&v.to_string());
        let _ = status::last_good_revision(&text);
        let _ = status::last_good_revision(&v.to_string());
        let _ = failure::blocking_resource(&text);
        let _ = failure::last_event(&text, None);
        let _ = failure::last_event(&v.to_string(), Some(("Deployment", "x")));
        let _ = template::parse_manifests(&text);
        let _ = template::parse_manifests(&v.to_string());
        let _ = capacity::parse_quantity(&text);
        let _ = capacity::cpu_millis(&text);
        let _ = capacity::memory_bytes(&text);
        let _ = service::validate_node_endpoint(&text);
    }

    #[test]
    fn json_text_never_panics_and_values_round_trip(text in hostile_text(), v in json_value()) {
        let _ = runbook::primitives::files::parse_json_text("p", "text", &text);
        let parsed = runbook::primitives::files::parse_json_text("p", "text", &v.to_string());
        prop_assert!(parsed.is_ok());
        let back = runbook::value::to_json(&runbook::value::to_dynamic(&v));
        prop_assert!(back.is_ok());
    }

    #[test]
    fn no_line_of_neutralized_text_is_a_workflow_command(s in hostile_text(), prefix in "[ \\t:#\\[\\r\\n]{0,6}") {
        let text = format!("{prefix}{s}");
        let safe = runbook::out::neutralize(&text);
        for line in safe.split(['\n', '\r']) {
            prop_assert!(!runbook::out::is_command_like(line), "{:?} -> {:?}", text, line);
        }
    }

}

proptest! {
    // Each case registers one more secret for the rest of the process:
    // fewer cases keep the matcher small.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_registered_secret_is_masked_in_every_form(secret in "[ -~\\n]{4,40}", before in "[a-z ]{0,10}") {
        prop_assume!(!runbook::redact::too_short(&secret));
        runbook::redact::register(&secret);
        for form in [
            secret.clone(),
            serde_json::to_string(&secret).unwrap(),
            format!("{secret:?}"),
            runbook::github::escape_data(&secret),
            serde_json::to_string(&format!("{secret:?}")).unwrap(),
        ] {
            let text = format!("{before}{form}");
            let red = runbook::redact::redact(&text);
            prop_assert!(!red.contains(secret.as_str()), "{:?} -> {:?}", text, red);
            prop_assert!(runbook::redact::contains_secret(&text));
        }
    }
}

/// Parameters from the command line: any argv against a declaration with
/// every kind of parameter.
#[test]
fn parameter_parsing_never_panics() {
    let src = r#"const PARAMS = #{
        n: #{ type: "int", required: true },
        b: #{ type: "bool", default_value: false },
        s: #{ pattern: "[0-9a-f]{40}" },
        c: #{ choices: ["x", "y"], default_value: "x" },
        e: #{ env: "PROP_TEST_E", default_value: "d" },
    };"#;
    let ast = rhai::Engine::new().compile(src).unwrap();
    let resolver = runbook::engine::Resolver::new(std::path::Path::new("pb.rhai"));
    let decl = runbook::params::declaration(&ast, src, &resolver).unwrap();
    let words = prop::collection::vec(
        prop_oneof![
            "--[a-z]{1,3}(=[ -~\\n]{0,12})?",
            "--(n|b|s|c|e)",
            "[ -~\\n\\r]{0,20}",
            any::<String>(),
        ],
        0..8,
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(512),
    ));
    runner
        .run(&words, |args| {
            let _ = runbook::params::parse_args_with_env(&decl, &args, &|_| None);
            Ok(())
        })
        .unwrap();
}
