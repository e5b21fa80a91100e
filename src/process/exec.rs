//! Running an allow-listed program for a run: resolve it on runbook's own
//! PATH, keep secrets out of its environment, keep its working directory
//! inside the run's, capture its output (head and tail), and show it in the
//! log without letting it issue workflow commands. `exec`, the Helm and
//! Akash CLIs and `discover_port`'s command source all run through here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::context::Ctx;
use crate::logging::LogFormat;

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
pub fn check_allowed(ctx: &Ctx, program: &str) -> Result<(), String> {
    crate::process::check_allowed(&ctx.settings.allow, program)
}

/// The child's working directory: relative to the run's, and inside it
/// unless the run was started with `--allow-cwd-outside`.
fn child_cwd(ctx: &Ctx, cwd: Option<&std::path::Path>) -> Result<PathBuf, String> {
    let Some(cwd) = cwd else {
        return Ok(ctx.settings.workdir.clone());
    };
    let full = ctx.path(&cwd.to_string_lossy());
    if !full.is_dir() {
        return Err(format!(
            "exec: cwd '{}' is not a folder; give a folder inside the working directory",
            cwd.display()
        ));
    }
    if !ctx.settings.allow_cwd_outside
        && !crate::process::inside(&ctx.settings.workdir, &full)
            .map_err(|e| format!("exec: cwd: {e}"))?
    {
        return Err(format!(
            "exec: cwd '{}' is outside the working directory {}; give a folder inside it, or run with --allow-cwd-outside",
            cwd.display(),
            ctx.settings.workdir.display()
        ));
    }
    Ok(full)
}

/// Run `argv` (allow-listed, resolved on runbook's own PATH) and capture
/// its output (head and tail, see [`crate::process::CAPTURE_CAP`]). The
/// caller bounds it in time; dropping the future kills the process group.
pub async fn run(ctx: &Arc<Ctx>, argv: &[String], opts: &ExecOpts) -> Result<ExecOutput, String> {
    let Some(program) = argv.first() else {
        return Err("exec: the argv is empty; give the program and its arguments, e.g. [\"terraform\", \"output\", \"-json\"]".into());
    };
    check_allowed(ctx, program)?;
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
        cwd: child_cwd(ctx, opts.cwd.as_deref())?,
        stdin: opts.stdin.clone(),
        cap: crate::process::CAPTURE_CAP,
    };
    let started = Instant::now();
    let out = crate::process::run(&spec, &ctx.children).await?;
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
        echo(ctx, program, &output);
    }
    Ok(output)
}

/// Show a child's output in the log. Under GitHub Actions it is wrapped in
/// `::stop-commands::` so the child cannot issue workflow commands.
fn echo(ctx: &Ctx, program: &str, out: &ExecOutput) {
    let text = format!("{}{}", out.stdout, out.stderr);
    if text.trim().is_empty() {
        return;
    }
    if ctx.settings.format == LogFormat::Github {
        let token = crate::github::random_token("runbook-");
        let mut s = format!("::group::{program} output\n::stop-commands::{token}\n");
        for line in text.lines() {
            s.push_str(line);
            s.push('\n');
        }
        s.push_str(&format!("::{token}::\n::endgroup::\n"));
        ctx.sink.write_str(&s);
    } else {
        for line in text.lines() {
            tracing::info!("{program} │ {line}");
        }
    }
}
