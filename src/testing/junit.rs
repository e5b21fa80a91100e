//! The JUnit XML report (`runbook test --format junit`), one testsuite per
//! test file, as CI tools read it.

use std::time::Duration;

use super::Outcome;

/// Escape text for XML attributes and content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no place for other control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The report for `outcomes`.
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
        let name = escape(&f.display().to_string());
        s.push_str(&format!(
            "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{fails}\" time=\"{time:.3}\">\n",
            mine.len()
        ));
        for o in mine {
            s.push_str(&format!(
                "    <testcase classname=\"{name}\" name=\"{}\" time=\"{:.3}\"",
                escape(&o.name),
                o.elapsed.as_secs_f64()
            ));
            match &o.failure {
                None => s.push_str("/>\n"),
                Some(f) => {
                    let first = f.lines().next().unwrap_or("");
                    s.push_str(&format!(
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                        escape(first),
                        escape(f)
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
