//! The engine a `*.test.rhai` file runs in: `playbook(path, params)` and
//! its `t.stub`/`t.env`/`t.secret`/`t.file`/`t.dry_run`/`t.replay`/`t.run`,
//! the assertions, and `assert_snapshot`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};

use rhai::{Array, Dynamic, Engine, FnPtr, Map, NativeCallContext, AST};

use super::sandbox::{self, Caller, Spec, Stub};
use crate::context::{error, RhaiResult};

/// What the assertions and `playbook()` need from the runner.
pub struct FileEnv {
    /// The test file (paths in it are relative to its folder).
    pub file: PathBuf,
    /// `--update-snapshots`.
    pub update_snapshots: bool,
    /// The runtime primitives would run on.
    pub rt: tokio::runtime::Handle,
    /// Primitive names, for stub-name checks.
    pub primitives: Vec<String>,
    /// stdout holds a report (JUnit XML): a test's `print` goes to stderr.
    pub print_to_stderr: bool,
}

impl FileEnv {
    fn dir(&self) -> PathBuf {
        self.file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

/// A playbook under test (`let t = playbook(...)`).
#[derive(Clone)]
pub struct Playbook(pub Spec);

/// A value for a failure message: strings quoted, maps and arrays as JSON.
pub fn show(v: &Dynamic) -> String {
    if v.is_unit() {
        return "()".into();
    }
    if v.is_string() || v.is_map() || v.is_array() {
        if let Ok(j) = crate::value::to_json(v) {
            return j.to_string();
        }
    }
    v.to_string()
}

/// Equality the way a test means it: the same JSON value (maps compare
/// key by key), else the same type and text.
pub fn same(a: &Dynamic, b: &Dynamic) -> bool {
    if a.is_int() && b.is_int() || a.is_string() && b.is_string() || a.is_bool() && b.is_bool() {
        return a.to_string() == b.to_string();
    }
    match (crate::value::to_json(a), crate::value::to_json(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.type_name() == b.type_name() && a.to_string() == b.to_string(),
    }
}

/// The tag of an assertion's failure, so one inside a stub's closure is
/// told from a `throw` (which acts as the primitive's error).
const ASSERT_TAG: i32 = 0x4153;

fn fail(msg: String) -> Box<rhai::EvalAltResult> {
    let mut v: Dynamic = msg.into();
    v.set_tag(ASSERT_TAG);
    rhai::EvalAltResult::ErrorRuntime(v, rhai::Position::NONE).into()
}

/// An error of a stub's closure `f`, as the playbook's primitive call
/// receives it: a `throw` stays the primitive's error; anything else (a
/// mistake in the closure, a failed assertion) is located in the test file.
fn stub_error(
    err: Box<rhai::EvalAltResult>,
    f: &FnPtr,
    file: &Path,
    source: &str,
) -> Box<rhai::EvalAltResult> {
    // The sandbox retries with fewer arguments on this one.
    if matches!(&*err, rhai::EvalAltResult::ErrorFunctionNotFound(sig, _) if sig.starts_with(f.fn_name()))
    {
        return err;
    }
    if crate::error::thrown_value(&err).is_some_and(|v| v.tag() != ASSERT_TAG) {
        return err;
    }
    let failure = crate::report::stub_failure(&err, file, source);
    rhai::EvalAltResult::ErrorRuntime(Dynamic::from(failure), rhai::Position::NONE).into()
}

/// A value as plain text (`()` as nothing).
fn text(v: &Dynamic) -> String {
    if v.is_unit() {
        String::new()
    } else {
        v.to_string()
    }
}

/// ` (msg)` after an assertion's name; the message can be long (a report).
fn with_msg(msg: &Dynamic) -> String {
    let msg = text(msg);
    if msg.is_empty() {
        String::new()
    } else if msg.contains('\n') {
        format!(":\n{}", msg.trim_end())
    } else {
        format!(": {msg}")
    }
}

fn snapshot_path(env: &FileEnv, name: &str) -> RhaiResult<PathBuf> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        || name.starts_with('.')
    {
        return Err(error(format!(
            "assert_snapshot: '{name}' is not a snapshot name (letters, digits, '_', '-', '.')"
        )));
    }
    let stem = env
        .file
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("test")
        .trim_end_matches(".rhai")
        .trim_end_matches(".test");
    Ok(env
        .dir()
        .join("snapshots")
        .join(format!("{stem}.{name}.json")))
}

fn assert_snapshot(env: &FileEnv, name: &str, value: &Dynamic) -> RhaiResult<()> {
    let path = snapshot_path(env, name)?;
    let json = crate::value::to_json(value).map_err(|e| {
        error(format!(
            "assert_snapshot {name}: the value cannot be JSON: {e}"
        ))
    })?;
    let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
    if env.update_snapshots {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                error(format!(
                    "assert_snapshot: cannot create {}: {e}",
                    dir.display()
                ))
            })?;
        }
        return crate::fsread::write_atomic(&path, &text).map_err(|e| {
            error(format!(
                "assert_snapshot: cannot write {}: {e}",
                path.display()
            ))
        });
    }
    let stored = crate::fsread::read_text(&path, crate::fsread::FILE_CAP).map_err(|e| match e {
        crate::fsread::ReadError::Missing => fail(format!(
            "snapshot '{name}' does not exist yet ({}); run `runbook test --update-snapshots` to write it, then review and commit it",
            path.display()
        )),
        e => fail(format!("snapshot {}: cannot read it: {e}", path.display())),
    })?;
    let stored_json: serde_json::Value = serde_json::from_str(&stored).map_err(|e| {
        fail(format!(
            "snapshot {} is not valid JSON: {e}",
            path.display()
        ))
    })?;
    if stored_json != json {
        let mut diff = String::new();
        let stored_pretty = serde_json::to_string_pretty(&stored_json).unwrap_or(stored);
        for d in diff_lines(&stored_pretty, &text) {
            diff.push_str(&d);
            diff.push('\n');
        }
        return Err(fail(format!(
            "snapshot '{name}' differs from {} (- stored, + now; `runbook test --update-snapshots` accepts the new value):\n{diff}",
            path.display()
        )));
    }
    Ok(())
}

/// A small line diff: lines only in `a` with `-`, only in `b` with `+`.
fn diff_lines(a: &str, b: &str) -> Vec<String> {
    let al: Vec<&str> = a.lines().collect();
    let bl: Vec<&str> = b.lines().collect();
    let mut out = Vec::new();
    for l in &al {
        if !bl.contains(l) {
            out.push(format!("- {l}"));
        }
    }
    for l in &bl {
        if !al.contains(l) {
            out.push(format!("+ {l}"));
        }
    }
    out
}

/// The calls of one primitive in a run result.
fn calls_named(r: &Map, name: &str) -> Array {
    r.get("calls")
        .and_then(|c| c.read_lock::<Array>().map(|a| a.clone()))
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            c.read_lock::<Map>()
                .and_then(|m| m.get("name").map(|n| n.to_string() == name))
                .unwrap_or(false)
        })
        .collect()
}

/// Build the engine for one test of the file described by `env`. `me`
/// receives the engine and AST once they exist, for calling the test's
/// closures from stubs.
pub fn engine(env: Arc<FileEnv>, me: Arc<OnceLock<(Weak<Engine>, Arc<AST>)>>) -> Engine {
    let mut engine = crate::engine::new_engine();
    crate::memory::limit(&mut engine);
    engine.set_max_operations(crate::engine::Limits::from_env().max_operations);
    if env.print_to_stderr {
        engine.on_print(|s| crate::out::eprintln(&format!("     | {s}")));
    } else {
        engine.on_print(|s| crate::out::println(&format!("     | {s}")));
    }
    engine.disable_symbol("eval");
    engine.register_type_with_name::<Playbook>("Playbook");

    register_playbooks(&mut engine, &env, me);
    register_asserts(&mut engine, env);
    engine
}

/// `playbook(path[, params])`, its builder methods (`stub`, `env`,
/// `secret`, `file`, `dry_run`, `param`) and `run`, and `calls`/`calls_of`.
fn register_playbooks(
    engine: &mut Engine,
    env: &Arc<FileEnv>,
    me: Arc<OnceLock<(Weak<Engine>, Arc<AST>)>>,
) {
    let e = env.clone();
    let new_playbook = move |path: &str, params: Map| -> RhaiResult<Playbook> {
        let full = e.dir().join(path);
        if !full.is_file() {
            return Err(error(format!(
                "playbook: {} does not exist (the path is relative to the test file's folder, {})",
                full.display(),
                e.dir().display()
            )));
        }
        Ok(Playbook(Spec::new(full, params)))
    };
    let np = new_playbook.clone();
    engine.register_fn("playbook", move |path: &str| np(path, Map::new()));
    engine.register_fn("playbook", new_playbook);

    let e = env.clone();
    let check_name = move |name: &str| -> RhaiResult<()> {
        if e.primitives.iter().any(|p| p == name) {
            return Ok(());
        }
        Err(error(format!(
            "t.stub: there is no primitive '{name}'{}",
            crate::suggest::hint(name, e.primitives.iter().map(String::as_str))
        )))
    };
    let cn = check_name.clone();
    engine.register_fn(
        "stub",
        move |t: &mut Playbook, name: &str, v: Dynamic| -> RhaiResult<()> {
            cn(name)?;
            t.0.stubs.insert(name.to_string(), Stub::Value(v));
            Ok(())
        },
    );
    engine.register_fn(
        "stub_seq",
        move |t: &mut Playbook, name: &str, vs: Array| -> RhaiResult<()> {
            check_name(name)?;
            if vs.is_empty() {
                return Err(error("t.stub_seq: give at least one value"));
            }
            t.0.stubs.insert(name.to_string(), Stub::Seq(vs));
            Ok(())
        },
    );
    engine.register_fn("env", |t: &mut Playbook, k: &str, v: Dynamic| {
        t.0.env.insert(k.to_string(), v.to_string());
    });
    engine.register_fn("secret", |t: &mut Playbook, k: &str, v: &str| {
        t.0.secrets.insert(k.to_string(), v.to_string());
    });
    engine.register_fn(
        "file",
        |t: &mut Playbook, p: &str, v: Dynamic| -> RhaiResult<()> {
            if !sandbox::inside(p) {
                return Err(error(format!(
                    "t.file: '{p}' must be a relative path inside the run's folder"
                )));
            }
            t.0.files.push((p.to_string(), v));
            Ok(())
        },
    );
    engine.register_fn("dry_run", |t: &mut Playbook, on: bool| t.0.dry_run = on);
    engine.register_fn("param", |t: &mut Playbook, k: &str, v: Dynamic| {
        t.0.params.insert(k.into(), v);
    });
    let e = env.clone();
    engine.register_fn(
        "replay",
        move |t: &mut Playbook, p: &str| -> RhaiResult<()> {
            let full = e.dir().join(p);
            if !full.is_file() {
                return Err(error(format!(
                    "t.replay: {} does not exist",
                    full.display()
                )));
            }
            t.0.replay = Some(full);
            Ok(())
        },
    );
    let e = env.clone();
    #[allow(deprecated)] // NativeCallContextStore: "volatile", not deprecated
    engine.register_fn(
        "run",
        move |nctx: NativeCallContext, t: &mut Playbook| -> RhaiResult<Map> {
            let me = me.clone();
            // The test's own state (its global constants, its functions), so a
            // stub's closure sees what it would see in the test itself.
            let store = Arc::new(nctx.store_data());
            let file = e.file.clone();
            // For carets in a failing closure's report; read per run, small.
            let source =
                crate::fsread::read_text(&file, crate::fsread::FILE_CAP).unwrap_or_default();
            let caller: Arc<Caller> = Arc::new(move |f: &FnPtr, args: Vec<Dynamic>| {
                let Some(engine) = me.get().and_then(|(w, _)| w.upgrade()) else {
                    return Err(error("the test's engine is gone (an internal error)"));
                };
                let ctx = store.create_context(&engine);
                f.call_within_context::<Dynamic>(&ctx, args)
                    .map_err(|err| stub_error(err, f, &file, &source))
            });
            sandbox::run(&t.0, caller, &e.rt)
        },
    );
    engine.register_fn("calls", |r: &mut Map, name: &str| calls_named(r, name));
    engine.register_fn("calls_of", |r: &mut Map, name: &str| calls_named(r, name));
}

/// `assert`, `assert_eq`, `assert_ne`, `assert_match`, `assert_snapshot`.
fn register_asserts(engine: &mut Engine, env: Arc<FileEnv>) {
    engine.register_fn("assert", |c: bool| -> RhaiResult<()> {
        if c {
            Ok(())
        } else {
            Err(fail("assertion failed".into()))
        }
    });
    engine.register_fn("assert", |c: bool, msg: Dynamic| -> RhaiResult<()> {
        if c {
            Ok(())
        } else {
            Err(fail(format!("assertion failed: {}", text(&msg))))
        }
    });
    let eq = |a: Dynamic, b: Dynamic, msg: &Dynamic| -> RhaiResult<()> {
        if same(&a, &b) {
            return Ok(());
        }
        Err(fail(format!(
            "assert_eq failed{}\n  left:  {}\n  right: {}",
            with_msg(msg),
            show(&a),
            show(&b)
        )))
    };
    engine.register_fn("assert_eq", move |a: Dynamic, b: Dynamic| {
        eq(a, b, &Dynamic::UNIT)
    });
    engine.register_fn("assert_eq", move |a: Dynamic, b: Dynamic, m: Dynamic| {
        eq(a, b, &m)
    });
    let ne = |a: Dynamic, b: Dynamic, msg: &Dynamic| -> RhaiResult<()> {
        if !same(&a, &b) {
            return Ok(());
        }
        Err(fail(format!(
            "assert_ne failed{}: both are {}",
            with_msg(msg),
            show(&a)
        )))
    };
    engine.register_fn("assert_ne", move |a: Dynamic, b: Dynamic| {
        ne(a, b, &Dynamic::UNIT)
    });
    engine.register_fn("assert_ne", move |a: Dynamic, b: Dynamic, m: Dynamic| {
        ne(a, b, &m)
    });
    let matches = |subject: Dynamic, re: &str, msg: &Dynamic| -> RhaiResult<()> {
        let rx = regex::Regex::new(re).map_err(|e| {
            error(format!(
                "assert_match: '{re}' is not a valid regular expression: {e}"
            ))
        })?;
        if rx.is_match(&text(&subject)) {
            return Ok(());
        }
        Err(fail(format!(
            "assert_match failed{}\n  text:  {}\n  regex: {re}",
            with_msg(msg),
            show(&subject)
        )))
    };
    engine.register_fn("assert_match", move |t: Dynamic, re: &str| {
        matches(t, re, &Dynamic::UNIT)
    });
    engine.register_fn("assert_match", move |t: Dynamic, re: &str, m: Dynamic| {
        matches(t, re, &m)
    });
    let e = env;
    engine.register_fn("assert_snapshot", move |name: &str, v: Dynamic| {
        assert_snapshot(&e, name, &v)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_by_value() {
        let mut a = Map::new();
        a.insert("x".into(), Dynamic::from(1_i64));
        let b = a.clone();
        assert!(same(&Dynamic::from(a.clone()), &Dynamic::from(b)));
        assert!(!same(&Dynamic::from(1_i64), &Dynamic::from("1")));
        assert!(same(&Dynamic::UNIT, &Dynamic::UNIT));
        assert!(!same(&Dynamic::from(a), &Dynamic::UNIT));
        assert_eq!(show(&Dynamic::from("a\"b")), r#""a\"b""#);
    }

    #[test]
    fn snapshot_diffs_name_lines() {
        let d = diff_lines("{\n  \"a\": 1\n}\n", "{\n  \"a\": 2\n}\n");
        assert_eq!(d, ["-   \"a\": 1", "+   \"a\": 2"]);
    }
}
