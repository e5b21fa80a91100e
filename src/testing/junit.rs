//! The JUnit XML report (`runbook test --format junit`), one testsuite per
//! test file, as CI tools read it.

use std::time::Duration;

use super::Outcome;

/// Escape text for XML content: always well-formed XML 1.0 and safe on a
/// terminal. Markup characters become entities; characters XML 1.0 has no
/// place for (C0 controls but tab, LF and CR; U+FFFE, U+FFFF) are shown
/// escaped as text (`\x1b`, `\ufffe`), as the terminal writer shows them;
/// characters XML allows but a terminal would act on (CR, DEL, C1
/// controls, bidi controls, U+2028/U+2029) become character references,
/// which give a reader the same character back.
pub fn escape(s: &str) -> String {
    escape_with(s, false)
}

/// [`escape`] for an attribute value: newline and tab become character
/// references too (an XML reader turns them into spaces otherwise).
pub fn escape_attr(s: &str) -> String {
    escape_with(s, true)
}

fn escape_with(s: &str, attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' if attr => out.push_str(&format!("&#{};", c as u32)),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 && c != '\r' => out.push_str(&format!("\\x{:02x}", c as u32)),
            '\u{fffe}' | '\u{ffff}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\r'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}' => out.push_str(&format!("&#x{:x};", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A value for the report: secrets masked in the value itself, before it
/// is escaped, so redaction never meets the markup (a secret equal to a
/// word of it, `test`, would turn `<testsuites` into `<***suites`).
fn text(s: &str) -> String {
    escape(&crate::redact::redact(s))
}

fn attr(s: &str) -> String {
    escape_attr(&crate::redact::redact(s))
}

/// The report for `outcomes`: values redacted and escaped, so it is
/// written as it is ([`crate::out::document`]).
pub fn render(outcomes: &[Outcome], elapsed: Duration) -> String {
    let failures = outcomes.iter().filter(|o| o.failure.is_some()).count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!(
        "<testsuites name=\"runbook test\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">\n",
        outcomes.len(),
        elapsed.as_secs_f64()
    ));
    let mut files: Vec<&std::path::Path> = outcomes.iter().map(|o| o.file.as_path()).collect();
    files.dedup();
    for f in files {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.file == f).collect();
        let fails = mine.iter().filter(|o| o.failure.is_some()).count();
        let time: f64 = mine.iter().map(|o| o.elapsed.as_secs_f64()).sum();
        let name = attr(&f.display().to_string());
        s.push_str(&format!(
            "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{fails}\" time=\"{time:.3}\">\n",
            mine.len()
        ));
        for o in mine {
            s.push_str(&format!(
                "    <testcase classname=\"{name}\" name=\"{}\" time=\"{:.3}\"",
                attr(&o.name),
                o.elapsed.as_secs_f64()
            ));
            match &o.failure {
                None => s.push_str("/>\n"),
                Some(f) => {
                    let first = f.lines().next().unwrap_or("");
                    s.push_str(&format!(
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                        attr(first),
                        text(f)
                    ));
                }
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_well_formed_xml_that_reads_back() {
        let hostile = "a\u{0}b\u{1b}[31m\u{7}c\u{fffe}\u{ffff}d\u{9b}e\u{202e}f\u{2028}g\rh\ti\nj]]>k<!--l&m\"'";
        let o = vec![Outcome {
            file: format!("{hostile}.test.rhai").into(),
            name: hostile.into(),
            elapsed: Duration::ZERO,
            failure: Some(format!("{hostile}\nsecond line {hostile}")),
        }];
        let x = render(&o, Duration::ZERO);
        let doc = roxmltree::Document::parse(&x).unwrap_or_else(|e| panic!("{e}: {x}"));
        let case = doc
            .descendants()
            .find(|n| n.has_tag_name("testcase"))
            .unwrap();
        // What XML can hold comes back as it was; the rest shows escaped.
        let shown =
            "a\\x00b\\x1b[31m\\x07c\\ufffe\\uffffd\u{9b}e\u{202e}f\u{2028}g\rh\ti\nj]]>k<!--l&m\"'";
        assert_eq!(case.attribute("name"), Some(shown));
        let failure = case.first_element_child().unwrap();
        // The message is the failure's first line.
        assert_eq!(failure.attribute("message"), shown.split('\n').next());
        assert_eq!(
            failure.text(),
            Some(format!("{shown}\nsecond line {shown}").as_str())
        );
        // Nothing a terminal would act on is in the bytes.
        assert_eq!(crate::out::term_safe(&x), x);
    }

    #[test]
    fn failures_are_escaped() {
        let o = vec![
            Outcome {
                file: "a.test.rhai".into(),
                name: "test_ok".into(),
                elapsed: Duration::from_millis(2),
                failure: None,
            },
            Outcome {
                file: "a.test.rhai".into(),
                name: "test_bad".into(),
                elapsed: Duration::ZERO,
                failure: Some("left: \"<x>\" & y\n  --> a:1:1".into()),
            },
        ];
        let x = render(&o, Duration::from_millis(3));
        assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
        assert!(
            x.contains("<failure message=\"left: &quot;&lt;x&gt;&quot; &amp; y\">"),
            "{x}"
        );
        assert!(
            x.contains("<testcase classname=\"a.test.rhai\" name=\"test_ok\" time=\"0.002\"/>"),
            "{x}"
        );
    }
}
