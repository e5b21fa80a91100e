//! GitHub Actions details: workflow-command escaping, `$GITHUB_OUTPUT`
//! (multiline-safe), `$GITHUB_STEP_SUMMARY`, and `::stop-commands::` around
//! child output so a child cannot inject workflow commands. The REST API
//! the `github` lock and ledger backends use is [`crate::net::github`].

use std::io::Write;
use std::path::Path;

use rand::Rng;

/// Escape a workflow command's message (`%`, CR, LF), as `@actions/core` does.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a workflow command's property value (also `:` and `,`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// A random token, for output delimiters and `::stop-commands::`.
pub fn random_token(prefix: &str) -> String {
    let mut rng = rand::rng();
    let n: u128 = rng.random();
    format!("{prefix}{n:032x}")
}

/// Whether a name may be used as a step output.
pub fn valid_output_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Render one output in the `$GITHUB_OUTPUT` heredoc form with a fresh random
/// delimiter. Refuses a value that contains the delimiter (it could end the
/// value early and inject other outputs).
pub fn render_output(name: &str, value: &str) -> Result<String, String> {
    let delim = random_token("ghadelimiter_");
    if name.contains(&delim) || value.contains(&delim) {
        return Err(format!(
            "output '{name}': the value contains the delimiter {delim}; refusing to write it"
        ));
    }
    Ok(format!("{name}<<{delim}\n{value}\n{delim}\n"))
}

/// Append text to a file named by an environment variable's path.
pub fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    match f.sync_data() {
        // A device or pipe (`/dev/null`, a FIFO) cannot be synced.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        r => r,
    }
}

/// At the end of a successful run: write the run's outputs to
/// `$GITHUB_OUTPUT` (a dry run only says how many it would write).
pub fn flush_outputs(outs: &[(String, String)], dry_run: bool) -> Result<(), String> {
    if outs.is_empty() {
        return Ok(());
    }
    let Some(path) = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    if dry_run {
        tracing::info!(
            "dry run: would write {} output(s) to $GITHUB_OUTPUT",
            outs.len()
        );
        return Ok(());
    }
    let mut text = String::new();
    for (name, value) in outs {
        text.push_str(&render_output(name, value)?);
    }
    append(std::path::Path::new(&path), &text).map_err(|e| {
        format!(
            "cannot write $GITHUB_OUTPUT ({}): {e}",
            path.to_string_lossy()
        )
    })
}

/// At the end of any run: append the run's summaries to `$GITHUB_STEP_SUMMARY`.
pub fn flush_summaries(parts: &[String]) {
    if parts.is_empty() {
        return;
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let mut text = parts.join("\n");
        text.push('\n');
        if let Err(e) = append(std::path::Path::new(&path), &text) {
            tracing::warn!("cannot write $GITHUB_STEP_SUMMARY: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_the_toolkit() {
        assert_eq!(escape_data("a%b\r\nc"), "a%25b%0D%0Ac");
        assert_eq!(escape_property("f:1,2"), "f%3A1%2C2");
    }

    #[test]
    fn output_uses_a_random_delimiter() {
        let a = render_output("x", "line1\nline2").unwrap();
        let b = render_output("x", "line1\nline2").unwrap();
        assert_ne!(a, b);
        let delim = a.lines().next().unwrap().trim_start_matches("x<<");
        assert!(delim.starts_with("ghadelimiter_"));
        assert!(a.ends_with(&format!("line2\n{delim}\n")));
    }

    #[test]
    fn output_names() {
        assert!(valid_output_name("banano_rpc_endpoint"));
        assert!(valid_output_name("a-b"));
        assert!(!valid_output_name("1a"));
        assert!(!valid_output_name("a b"));
        assert!(!valid_output_name(""));
    }
}
