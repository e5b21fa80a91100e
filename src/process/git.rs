//! The commit a checkout is at, from `git rev-parse HEAD`, run as every
//! child is (its own process group, capped capture, killed on cancel).

use std::path::Path;

use super::{resolve, run, Groups, Spec};

/// Bytes kept of git's output: a SHA and a line of error fit many times.
const CAP: usize = 64 * 1024;

/// The 40-hex SHA of `HEAD` in `workdir`.
pub async fn head(workdir: &Path, groups: &Groups) -> Result<String, String> {
    let path = resolve("git", std::env::var_os("PATH").as_deref())
        .map_err(|e| format!("cannot run git ({e}); set GITHUB_SHA or install git"))?;
    let spec = Spec {
        program: "git".into(),
        path,
        args: vec!["rev-parse".into(), "HEAD".into()],
        cwd: workdir.to_path_buf(),
        cap: CAP,
        ..Spec::default()
    };
    let out = run(&spec, groups).await?;
    if out.code != 0 {
        return Err(format!(
            "not in a git repository with a commit ({})",
            out.stderr.text.trim()
        ));
    }
    Ok(out.stdout.text.trim().to_string())
}

/// A full commit SHA: 40 lowercase hex digits.
pub fn is_sha(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sha_is_forty_lowercase_hex() {
        assert!(is_sha(&"a1".repeat(20)));
        for bad in [
            "",
            "A1".repeat(20).as_str(),
            &"a1".repeat(19),
            &"g1".repeat(20),
            &format!("{}\n", "a".repeat(39)),
        ] {
            assert!(!is_sha(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn head_reads_the_checkouts_commit_and_names_a_folder_that_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let groups = Groups::default();
        let err = head(dir.path(), &groups).await.unwrap_err();
        assert!(err.contains("not in a git repository"), "{err}");
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        git(&["commit", "-q", "--allow-empty", "-m", "x"]);
        let sha = head(dir.path(), &groups).await.unwrap();
        assert!(is_sha(&sha), "{sha:?}");
    }
}
