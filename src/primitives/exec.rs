//! `exec(argv, opts)`: run an allow-listed program with an argv vector —
//! never a shell string — in its own process group, with env, timeout and
//! captured output. The group is killed on timeout, cancel or drop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, Map};

use crate::context::{error, Ctx, RhaiResult};
use crate::declare::{Opt, Spec};
use crate::opts::{string_array, Opts};
pub use crate::process::exec::{check_allowed, run, ExecOpts, ExecOutput};

/// As the map `exec` returns.
pub fn output_map(out: &ExecOutput, planned: bool) -> Map {
    let mut m = Map::new();
    m.insert("code".into(), Dynamic::from(i64::from(out.code)));
    m.insert("ok".into(), Dynamic::from(out.code == 0));
    m.insert("stdout".into(), Dynamic::from(out.stdout.clone()));
    m.insert("stderr".into(), Dynamic::from(out.stderr.clone()));
    m.insert("dropped".into(), Dynamic::from(out.dropped as i64));
    m.insert("planned".into(), Dynamic::from(planned));
    m
}

#[rustfmt::skip]
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
            check_allowed(&c.exec_env(), p).map_err(error)?;
        }
        if c.dry_run() && !read_only {
            tracing::info!(primitive = "exec", argv = %argv.join(" "), planned = true, "dry run: would run {}", argv.join(" "));
            let planned = ExecOutput {
                code: 0,
                stdout: String::new(),
                stderr: String::new(),
                dropped: 0,
            };
            return Ok(output_map(&planned, true));
        }
        if !read_only {
            c.guard_mutation("exec")?;
        }
        let timeout = timeout.unwrap_or(c.settings.call_timeout);
        let what = format!("exec {}", argv.first().map_or("", String::as_str));
        let cc = c.clone();
        let out = c.block_on(&what, timeout, async move {
            run(&cc.exec_env(), &argv, &eo).await.map(|o| (o, argv))
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
        Ok(output_map(&out, false))
    });
}
