//! `exec(argv, opts)`: run an allow-listed program with an argv vector —
//! never a shell string — in its own process group, with env, timeout and
//! captured output. The group is killed on timeout, cancel or drop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, Map};

use crate::context::{error, Ctx, RhaiResult};
use crate::declare::{Opt, Spec};
use crate::logging::LogFormat;
use crate::opts::{string_array, Opts};

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
    /// As the map `exec` returns.
    pub fn to_map(&self, planned: bool) -> Map {
        let mut m = Map::new();
        m.insert("code".into(), Dynamic::from(i64::from(self.code)));
        m.insert("ok".into(), Dynamic::from(self.code == 0));
        m.insert("stdout".into(), Dynamic::from(self.stdout.clone()));
        m.insert("stderr".into(), Dynamic::from(self.stderr.clone()));
        m.insert("dropped".into(), Dynamic::from(self.dropped as i64));
        m.insert("planned".into(), Dynamic::from(planned));
        m
    }

    /// The last lines of stderr (or stdout when stderr is empty), for errors.
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = text.trim_end().lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
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

static SPEC: Spec = Spec {
    name: "exec",
    params: &["argv: Array"],
    returns: "Map",
    doc: include_str!("docs/exec.md"),
    opts: &[
        Opt { key: "env", ty: "map", default: "", help: "more variables for the child; it inherits the run's environment minus every variable read with `secret()`, so pass a secret here on purpose" },
        Opt { key: "cwd", ty: "string", default: "the working directory", help: "a folder inside the working directory (outside it only with `--allow-cwd-outside`)" },
        Opt { key: "timeout", ty: "duration", default: "the run's call timeout", help: "bound on the child; its process group is killed after it" },
        Opt { key: "stdin", ty: "string", default: "", help: "text written to the child's stdin" },
        Opt { key: "echo", ty: "bool", default: "false", help: "show its output in the log" },
        Opt { key: "read_only", ty: "bool", default: "false", help: "runs in `--dry-run` too (otherwise a dry run only logs the command)" },
        Opt { key: "allow_failure", ty: "bool", default: "false", help: "return a non-zero exit instead of throwing" },
    ],
};

/// Read `exec`'s options.
fn read_opts(o: &Opts) -> RhaiResult<(ExecOpts, Option<Duration>, bool, bool)> {
    let mut opts = ExecOpts {
        cwd: o.str("cwd")?.map(PathBuf::from),
        stdin: o.str("stdin")?,
        echo: o.bool("echo")?.unwrap_or(false),
        ..ExecOpts::default()
    };
    if let Some(env) = o.map("env")? {
        for (k, v) in env {
            opts.env.push((k.to_string(), v.to_string()));
        }
    }
    Ok((
        opts,
        o.duration("timeout")?,
        o.bool("read_only")?.unwrap_or(false),
        o.bool("allow_failure")?.unwrap_or(false),
    ))
}

/// Register `exec`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    SPEC.register1(engine, move |argv: Array, o: &Opts| -> RhaiResult<Map> {
        let argv = string_array("exec", "argv", &argv)?;
        let (eo, timeout, read_only, allow_failure) = read_opts(o)?;
        if let Some(p) = argv.first() {
            check_allowed(&c, p).map_err(error)?;
        }
        if c.dry_run() && !read_only {
            tracing::info!(primitive = "exec", argv = %argv.join(" "), planned = true, "dry run: would run {}", argv.join(" "));
            let planned = ExecOutput {
                code: 0,
                stdout: String::new(),
                stderr: String::new(),
                dropped: 0,
            };
            return Ok(planned.to_map(true));
        }
        if !read_only {
            c.guard_mutation("exec")?;
        }
        let timeout = timeout.unwrap_or(c.settings.call_timeout);
        let what = format!("exec {}", argv.first().map_or("", String::as_str));
        let cc = c.clone();
        let out = c.block_on(&what, timeout, async move {
            run(&cc, &argv, &eo).await.map(|o| (o, argv))
        })?;
        let (out, argv) = out;
        if out.code != 0 && !allow_failure {
            return Err(error(format!(
                "exec: `{}` exited with {}:\n{}",
                argv.join(" "),
                out.code,
                out.tail()
            )));
        }
        Ok(out.to_map(false))
    });
}
