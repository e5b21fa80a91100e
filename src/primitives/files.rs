//! Files and data: `write_json` (atomic, inside the working directory only),
//! `remove_artifact`, `read_json`, `read_yaml`, `parse_json`, `to_json`,
//! `file_exists`.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rhai::{Dynamic, Engine, ImmutableString};

use crate::context::{error, Ctx, RhaiResult};
use crate::declare::{Opt, Spec};
use crate::opts::Opts;
use crate::value::{to_dynamic, to_json};

/// Resolve a path the playbook wants to write, refusing anything outside
/// the working directory (absolute paths, `..`, symlinks that lead out).
pub fn writable_path(ctx: &Ctx, prim: &str, p: &str) -> Result<PathBuf, String> {
    let rel = Path::new(p);
    if p.is_empty() {
        return Err(format!("{prim}: the path is empty"));
    }
    if rel.is_absolute() {
        return Err(format!(
            "{prim}: '{p}' is an absolute path; artifacts are written inside the working directory, give a relative path"
        ));
    }
    if rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "{prim}: '{p}' uses '..' to leave the working directory; give a path inside it"
        ));
    }
    let full = ctx.settings.workdir.join(rel);
    let parent = full.parent().unwrap_or(&ctx.settings.workdir);
    let root = ctx
        .settings
        .workdir
        .canonicalize()
        .map_err(|e| format!("{prim}: the working directory is not readable: {e}"))?;
    // The nearest existing ancestor must resolve inside the working directory.
    let mut probe = parent.to_path_buf();
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p.to_path_buf(),
            None => break,
        }
    }
    let real = probe
        .canonicalize()
        .map_err(|e| format!("{prim}: cannot resolve '{}': {e}", probe.display()))?;
    if !real.starts_with(&root) {
        return Err(format!(
            "{prim}: '{p}' leads outside the working directory (through a symlink)"
        ));
    }
    if full.is_dir() {
        return Err(format!("{prim}: '{p}' is a directory"));
    }
    Ok(full)
}

pub use crate::fsread::write_atomic;

/// The message for a failed write or removal beneath the working directory.
fn beneath_error(prim: &str, verb: &str, path: &str, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(nix::libc::EXDEV) | Some(nix::libc::ELOOP) => format!(
            "{prim}: '{path}' leads outside the working directory (through a symlink); give a path inside it"
        ),
        Some(nix::libc::EISDIR) => format!("{prim}: '{path}' is a directory"),
        _ => format!("{prim}: cannot {verb} '{path}': {e}"),
    }
}

/// Read a data file a playbook names: a regular file of at most
/// [`crate::fsread::FILE_CAP`] bytes (devices, FIFOs and huge files are
/// refused before reading).
fn read_text(ctx: &Ctx, prim: &str, p: &str) -> RhaiResult<String> {
    crate::fsread::read_text(&ctx.path(p), crate::fsread::FILE_CAP)
        .map_err(|e| error(format!("{prim}: cannot read '{p}': {e}")))
}

/// Parse JSON text for a playbook, naming where it broke.
pub fn parse_json_text(prim: &str, what: &str, text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| {
        format!(
            "{prim}: {what} is not valid JSON (line {}, column {}: {e})",
            e.line(),
            e.column()
        )
    })
}

/// `write_json`: atomic, inside the working directory, never a secret;
/// taken back if the run fails unless `keep`.
fn write_json(c: &Ctx, path: &str, value: &Dynamic, keep: bool) -> RhaiResult<()> {
    // A file name is printed everywhere (logs, `ls`, artifacts).
    if crate::redact::contains_secret(path) {
        return Err(error(
            "write_json: the path contains a secret; refusing to use it as a file name",
        ));
    }
    let full = writable_path(c, "write_json", path).map_err(error)?;
    let json =
        to_json(value).map_err(|e| error(format!("write_json: the value cannot be JSON: {e}")))?;
    let mut text =
        serde_json::to_string_pretty(&json).map_err(|e| error(format!("write_json: {e}")))?;
    text.push('\n');
    if crate::redact::contains_secret(&text) {
        return Err(error(format!(
            "write_json: the value for '{path}' contains a secret; refusing to write it to a file"
        )));
    }
    if c.dry_run() {
        tracing::info!(
            primitive = "write_json",
            path,
            planned = true,
            "dry run: would write {path}:\n{text}"
        );
        return Ok(());
    }
    c.guard_mutation("write_json")?;
    // The check above names the usual mistakes; the write itself resolves
    // beneath the working directory, so a folder swapped for a symlink
    // since the check cannot take it outside.
    crate::fsread::write_beneath(&c.settings.workdir, Path::new(path), text.as_bytes())
        .map_err(|e| error(beneath_error("write_json", "write", path, &e)))?;
    // Only artifacts the run may take back are registered there.
    if !keep {
        c.artifacts.lock().push(PathBuf::from(path));
    }
    c.written.lock().push(full);
    tracing::info!(
        primitive = "write_json",
        path,
        bytes = text.len(),
        keep_on_failure = keep,
        "wrote {path}"
    );
    Ok(())
}

#[rustfmt::skip]
static WRITE_JSON: Spec = Spec {
    name: "write_json",
    params: &["path: String", "value: Dynamic"],
    returns: "()",
    doc: include_str!("docs/write_json.md"),
    opts: &[Opt { key: "keep_on_failure", ty: "bool", default: "false", help: "keep the file when the run fails afterwards" }],
};

const PATH: &[&str] = &["path: String"];

#[rustfmt::skip]
static REMOVE_ARTIFACT: Spec = Spec::plain(
    "remove_artifact",
    PATH,
    "bool",
    include_str!("docs/remove_artifact.md"),
);
#[rustfmt::skip]
static READ_JSON: Spec = Spec::plain(
    "read_json",
    PATH,
    "Dynamic",
    include_str!("docs/read_json.md"),
);
#[rustfmt::skip]
static READ_YAML: Spec = Spec::plain(
    "read_yaml",
    PATH,
    "Dynamic",
    include_str!("docs/read_yaml.md"),
);
#[rustfmt::skip]
static FILE_EXISTS: Spec = Spec::plain(
    "file_exists",
    PATH,
    "bool",
    include_str!("docs/file_exists.md"),
);
#[rustfmt::skip]
static PARSE_JSON: Spec = Spec::plain(
    "parse_json",
    &["text: String"],
    "Dynamic",
    include_str!("docs/parse_json.md"),
);

#[rustfmt::skip]
static TO_JSON: Spec = Spec::plain(
    "to_json",
    &["value: Dynamic"],
    "String",
    include_str!("docs/to_json.md"),
);

// Rhai's own `to_json` for maps recurses without a bound (a map that holds
// a closure capturing itself overflows the stack): shadow it.
#[rustfmt::skip]
static TO_JSON_MAP: Spec = Spec::plain(
    "to_json",
    &["value: Map"],
    "String",
    "`to_json` of a map, bounded like `to_json(value)`.",
);

fn to_json_text(value: Dynamic) -> RhaiResult<String> {
    let v = to_json(&value).map_err(|e| error(format!("to_json: {e}")))?;
    Ok(crate::redact::redact(&v.to_string()).into_owned())
}

fn remove_artifact(c: &Ctx, path: &str) -> RhaiResult<bool> {
    let full = writable_path(c, "remove_artifact", path).map_err(error)?;
    let existed = full.exists();
    if c.dry_run() {
        if existed {
            tracing::info!(
                primitive = "remove_artifact",
                path,
                planned = true,
                "dry run: would remove {path}"
            );
        }
        return Ok(existed);
    }
    if existed {
        c.guard_mutation("remove_artifact")?;
        crate::fsread::remove_beneath(&c.settings.workdir, Path::new(path))
            .map_err(|e| error(beneath_error("remove_artifact", "remove", path, &e)))?;
        tracing::info!(primitive = "remove_artifact", path, "removed stale {path}");
    }
    Ok(existed)
}

/// Register the file and data primitives.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    WRITE_JSON.register2(
        engine,
        move |path: ImmutableString, value: Dynamic, o: &Opts| {
            let keep = o.bool("keep_on_failure")?.unwrap_or(false);
            write_json(&c, &path, &value, keep)
        },
    );
    let c = ctx.clone();
    REMOVE_ARTIFACT.register1(engine, move |path: ImmutableString, _: &Opts| {
        remove_artifact(&c, &path)
    });
    let c = ctx.clone();
    READ_JSON.register1(engine, move |path: ImmutableString, _: &Opts| {
        let text = read_text(&c, "read_json", &path)?;
        let v = parse_json_text("read_json", &format!("'{path}'"), &text).map_err(error)?;
        Ok(to_dynamic(&v))
    });
    let c = ctx.clone();
    READ_YAML.register1(engine, move |path: ImmutableString, _: &Opts| {
        let text = read_text(&c, "read_yaml", &path)?;
        let v: serde_json::Value = serde_norway::from_str(&text)
            .map_err(|e| error(format!("read_yaml: '{path}' is not valid YAML: {e}")))?;
        Ok(to_dynamic(&v))
    });
    let c = ctx.clone();
    FILE_EXISTS.register1(engine, move |path: ImmutableString, _: &Opts| {
        // metadata() never opens the file: a FIFO cannot block this.
        Ok(std::fs::metadata(c.path(&path)).is_ok_and(|m| m.file_type().is_file()))
    });
    PARSE_JSON.register1(engine, |text: ImmutableString, _: &Opts| {
        let v = parse_json_text("parse_json", "the text", &text).map_err(error)?;
        Ok(to_dynamic(&v))
    });
    TO_JSON.register1(engine, |value: Dynamic, _: &Opts| to_json_text(value));
    TO_JSON_MAP.register1(engine, |m: rhai::Map, _: &Opts| {
        to_json_text(Dynamic::from(m))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/endpoint.json");
        write_atomic(&p, "{\"a\":1}\n").unwrap();
        write_atomic(&p, "{\"a\":2}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"a\":2}\n");
        let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn json_errors_say_where() {
        let err = parse_json_text("read_json", "'x.json'", "{\"a\": [1,").unwrap_err();
        assert!(err.contains("'x.json' is not valid JSON (line 1"), "{err}");
    }
}
