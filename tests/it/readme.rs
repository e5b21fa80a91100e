//! The README as a newcomer reads it: the first playbook and its test are
//! the files in `examples/first/`, and its commands run as written; the
//! README carries no measured figure that could go stale.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{self, http::free_port, Project};

fn readme() -> String {
    std::fs::read_to_string(support::repo().join("README.md")).expect("README.md")
}

/// The fenced block of `lang` whose text starts with `start`, whole.
fn block(readme: &str, lang: &str, start: &str) -> String {
    readme
        .split(&format!("```{lang}\n"))
        .skip(1)
        .find(|b| b.starts_with(start))
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("the README has a ```{lang} block starting {start:?}"))
        .to_string()
}

#[test]
fn the_first_playbook_in_the_readme_is_the_example_and_runs_as_written() {
    let readme = readme();
    for file in [
        "examples/first/health.rhai",
        "examples/first/health.test.rhai",
    ] {
        let title = format!("// {file}\n");
        let shown = block(&readme, "rhai", &title).replacen(&title, "", 1);
        let real = std::fs::read_to_string(support::repo().join(file)).unwrap();
        assert_eq!(shown, real, "the README shows {file} as it is");
    }
    // The commands, exactly as written, but on a free port: 8000 may be
    // taken on this machine. `runbook` is this build's.
    let script = block(&readme, "sh", "cp -r examples/first my-first");
    let port = free_port().to_string();
    let script = script.replace("8000", &port);
    let mut p = Project::new();
    p.copy_from_repo("examples/first");
    p.path_prepend(support::bin().parent().unwrap().to_path_buf());
    let out_path = p.path().join("out.txt");
    let out = std::fs::File::create(&out_path).unwrap();
    // The environment a run gets (PATH first of all), for bash instead.
    let cmd: Command = p.command(&[]);
    let mut bash = Command::new("bash");
    bash.args(["-e", "-c", &script])
        .current_dir(p.path())
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_OUTPUT")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        // Its own process group: the background server goes with it.
        .process_group(0);
    let mut child = bash.spawn().expect("bash");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(60) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever happened, nothing the script started outlives the test.
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("the README's commands took over 60 s:\n{text}"));
    assert!(status.success(), "{status}:\n{text}");
    for want in [
        "status=200",
        "\"healthy\": true",
        "2 passed, 0 failed",
        "released lock 'check-web'",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(p.read("my-first/health-web.json").is_some());
}

/// Timings, counts of tests and speed-up ratios change with every commit
/// and machine: they live in bench/RESULTS.md with their dates, not here.
/// (Limits such as "4 MiB" or "60 s" are the contract, and are tested.)
#[test]
fn the_readme_carries_no_figure_that_could_go_stale() {
    let rx = regex::Regex::new(
        r"\d(\.\d+)? ?(ms|µs|ns)\b|\b\d+ tests\b|\d(\.\d+)? ?×|\d M instructions",
    )
    .unwrap();
    let stale: Vec<String> = readme()
        .lines()
        .enumerate()
        .filter(|(_, l)| rx.is_match(l))
        .map(|(i, l)| format!("README.md:{}: {l}", i + 1))
        .collect();
    assert!(
        stale.is_empty(),
        "measured figures in the README go stale; put them in bench/RESULTS.md with their date:\n{}",
        stale.join("\n")
    );
}
