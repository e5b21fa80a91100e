//! Running an allow-listed program for a run: resolve it on runbook's own
//! PATH, keep secrets out of its environment, keep its working directory
//! inside the run's, capture its output (head and tail), and show it in the
//! log without letting it issue workflow commands. `exec`, the Helm and
//! Akash CLIs and `discover_port`'s command source all run through here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::logging::{LogFormat, Sink};

/// What running a program needs from the run: the allow-list, the working
/// directory and its rule, the process groups killed on cancel, and where
/// echoed output goes. The run's context builds one (`Ctx::exec_env`).
#[derive(Clone)]
pub struct Env {
    /// Programs that may run.
    pub allow: Vec<String>,
    /// The run's working directory; a child's `cwd` is relative to it.
    pub workdir: PathBuf,
    /// A `cwd` may lie outside `workdir` (`--allow-cwd-outside`).
    pub allow_cwd_outside: bool,
    /// Process groups of running children, killed on cancel.
    pub children: Arc<crate::process::Groups>,
    /// The log format (GitHub's wraps echoed output).
    pub format: LogFormat,
    /// Where echoed output goes.
    pub sink: Sink,
}

/// How to run one program.
#[derive(Clone, Debug, Default)]
pub struct ExecOpts {
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory (relative to the run's).
    pub cwd: Option<PathBuf>,
    /// Text to feed on stdin.
    pub stdin: Option<String>,
    /// Echo the program's output into the log.
    pub echo: bool,
}

/// What a program did.
#[derive(Clone, Debug)]
pub struct ExecOutput {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
    /// Bytes dropped from the middle of the output (over the capture cap).
    pub dropped: u64,
}

impl ExecOutput {
    /// The last lines of stderr (or stdout when stderr is empty), for errors.
    pub fn tail(&self) -> String {
        tail_of(&self.stdout, &self.stderr)
    }
}

/// The last 20 lines of stderr (or of stdout when stderr is empty): what
/// an error message quotes of a failed program.
pub fn tail_of(stdout: &str, stderr: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Refuse a program that is not a bare name on the allow-list.
pub fn check_allowed(env: &Env, program: &str) -> Result<(), String> {
    crate::process::check_allowed(&env.allow, program)
}

/// The child's working directory: relative to the run's, and inside it
/// unless the run was started with `--allow-cwd-outside`.
fn child_cwd(env: &Env, cwd: Option<&Path>) -> Result<PathBuf, String> {
    let Some(cwd) = cwd else {
        return Ok(env.workdir.clone());
    };
    let full = if cwd.is_absolute() {
        cwd.to_path_buf()
    } else {
        env.workdir.join(cwd)
    };
    if !full.is_dir() {
        return Err(format!(
            "exec: cwd '{}' is not a folder; give a folder inside the working directory",
            cwd.display()
        ));
    }
    if !env.allow_cwd_outside
        && !crate::process::inside(&env.workdir, &full).map_err(|e| format!("exec: cwd: {e}"))?
    {
        return Err(format!(
            "exec: cwd '{}' is outside the working directory {}; give a folder inside it, or run with --allow-cwd-outside",
            cwd.display(),
            env.workdir.display()
        ));
    }
    Ok(full)
}

/// Run `argv` (allow-listed, resolved on runbook's own PATH) and capture
/// its output (head and tail, see [`crate::process::CAPTURE_CAP`]). The
/// caller bounds it in time; dropping the future kills the process group.
pub async fn run(env: &Env, argv: &[String], opts: &ExecOpts) -> Result<ExecOutput, String> {
    let Some(program) = argv.first() else {
        return Err("exec: the argv is empty; give the program and its arguments, e.g. [\"terraform\", \"output\", \"-json\"]".into());
    };
    check_allowed(env, program)?;
    // Runbook's PATH, not the child's: see process::resolve.
    let path = crate::process::resolve(program, std::env::var_os("PATH").as_deref())?;
    // A child gets no secret it was not handed: variables whose value was
    // read with secret() are dropped from the inherited environment (pass
    // one on purpose with the `env` option).
    let env_remove = std::env::vars_os()
        .filter(|(_, v)| v.to_str().is_some_and(crate::redact::is_secret))
        .map(|(k, _)| k)
        .collect();
    let spec = crate::process::Spec {
        program: program.clone(),
        path,
        args: argv[1..].to_vec(),
        env: opts.env.clone(),
        env_remove,
        cwd: child_cwd(env, opts.cwd.as_deref())?,
        stdin: opts.stdin.clone(),
        cap: crate::process::CAPTURE_CAP,
    };
    let started = Instant::now();
    let out = crate::process::run(&spec, &env.children).await?;
    let output = ExecOutput {
        code: out.code,
        stdout: out.stdout.text,
        stderr: out.stderr.text,
        dropped: out.stdout.dropped + out.stderr.dropped,
    };
    tracing::info!(
        primitive = "exec",
        argv = %argv.join(" "),
        program_path = %spec.path.display(),
        code = output.code,
        dropped_bytes = output.dropped,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "ran {} ({}): exit {}",
        argv.join(" "),
        spec.path.display(),
        output.code
    );
    if opts.echo {
        echo(env, program, &output);
    }
    Ok(output)
}

/// Show a child's output in the log. Under GitHub Actions it is wrapped in
/// `::stop-commands::` so the child cannot issue workflow commands.
fn echo(env: &Env, program: &str, out: &ExecOutput) {
    let text = format!("{}{}", out.stdout, out.stderr);
    if text.trim().is_empty() {
        return;
    }
    if env.format == LogFormat::Github {
        let token = crate::github::random_token("runbook-");
        let mut s = format!("::group::{program} output\n::stop-commands::{token}\n");
        for line in text.lines() {
            s.push_str(line);
            s.push('\n');
        }
        s.push_str(&format!("::{token}::\n::endgroup::\n"));
        env.sink.write_str(&s);
    } else {
        for line in text.lines() {
            tracing::info!("{program} │ {line}");
        }
    }
}
