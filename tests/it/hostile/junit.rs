//! `runbook test --format junit` is always well-formed XML, read here by a
//! real parser: hostile file names, failure messages (controls, ESC
//! sequences, U+FFFE/U+FFFF, CDATA and comment openers, bidi) and secrets
//! equal to words of the markup (`test`, `testcase`, `failure`, `message`)
//! are redacted and escaped as values, never in the markup.

use crate::support::Project;

const TESTS: &str = r#"
fn test_hostile() {
    let t = playbook("pb.rhai");
    t.secret("API_KEY", "test");
    t.secret("B", "testcase");
    t.secret("C", "failure");
    t.secret("D", "message");
    let r = t.run();
    throw "run said: " + r.error + " \x1b]0;title\x07 \x00 \uFFFE\uFFFF \u202E ]]> <!-- <x a=\"q\"> & testcase test";
}
fn test_passes() { assert_eq(1, 1); }
"#;

#[test]
fn junit_is_well_formed_xml_whatever_the_names_messages_and_secrets() {
    let p = Project::new();
    let name = "we\u{1b}[2Jird <&'\"> \u{fffe}.test.rhai";
    p.file("pb.rhai", "fail(\"boom \\x1b[31m <failure> test\");\n")
        .file(name, TESTS);
    let out = p.run(&["test", "--format", "junit", name]);
    out.code(1);
    let xml = &out.stdout;
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("not XML ({e}):\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites", "{xml}");
    assert_eq!(root.attribute("tests"), Some("2"));
    assert_eq!(root.attribute("failures"), Some("1"));
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 2, "{xml}");
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .expect("a failure element");
    let msg = failure.text().unwrap_or("");
    // The values are redacted...
    for secret in ["test", "failure", "message"] {
        assert!(!msg.contains(secret), "{secret} in {msg:?}");
        assert!(!failure.attribute("message").unwrap_or("").contains(secret));
    }
    assert!(msg.contains("***"), "{msg:?}");
    // ...escaped, and what XML cannot hold is shown escaped as text.
    assert!(msg.contains("]]> <!-- <x a=\"q\"> &"), "{msg:?}");
    assert!(
        msg.contains("\\x1b]0;title\\x07 \\x00 \\ufffe\\uffff \u{202e}"),
        "{msg:?}"
    );
    // No byte a terminal acts on.
    assert!(
        !xml.contains('\u{1b}') && !xml.contains('\u{202e}'),
        "{xml}"
    );
}
