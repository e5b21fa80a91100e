//! One way to declare a primitive: a [`Spec`] holds its name, positional
//! parameters, return type, prose doc and one options table. The table
//! drives option parsing (unknown keys refused with a did-you-mean), the
//! "Options:" section `runbook doc`, `docs/primitives.md` and the `.d.rhai`
//! definitions show, and the registration: [`Spec::register0`] to
//! [`Spec::register2`] register both arities (with and without the options
//! map), open a `tracing` span per call with the primitive's name and
//! elapsed time, and put the primitive's name in front of its errors.
//!
//! ```ignore
//! static SPEC: Spec = Spec {
//!     name: "http_check",
//!     params: &["url: String"],
//!     returns: "Map",
//!     doc: include_str!("docs/http_check.md"),
//!     opts: &[Opt { key: "expect", ty: "int or [int]", default: "200", help: "the healthy status(es)" }],
//! };
//! SPEC.register1(engine, move |url: ImmutableString, o: &Opts| check(&c, &url, o));
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rhai::{Dynamic, Engine, EvalAltResult, FuncRegistration, Map, Variant};

use crate::context::RhaiResult;
use crate::opts::Opts;

/// Whether registrations carry their doc comments. A playbook run never
/// shows them, so `run` turns them off: rendering every table is most of
/// what registering costs at start-up.
static DOCS: AtomicBool = AtomicBool::new(true);

/// Register without doc comments from now on (the run path).
pub fn skip_docs() {
    DOCS.store(false, Ordering::Relaxed);
}

/// One option of a primitive: the row of its table.
#[derive(Clone, Copy, Debug)]
pub struct Opt {
    /// The key in the options map.
    pub key: &'static str,
    /// What it takes, for people ("duration", "string", "\[string\]").
    pub ty: &'static str,
    /// The default, as the reader would write it ("" when required or none).
    pub default: &'static str,
    /// One line on what it does.
    pub help: &'static str,
}

/// A primitive's declaration.
#[derive(Debug)]
pub struct Spec {
    /// The name a playbook calls.
    pub name: &'static str,
    /// Positional parameters as `name: Type` (e.g. `url: String`).
    pub params: &'static [&'static str],
    /// The return type (`Map`, `String`, `bool`, `()`...).
    pub returns: &'static str,
    /// The prose doc in markdown (a small file beside the binding), without
    /// the options list: the table renders that.
    pub doc: &'static str,
    /// The options map's keys; empty when the primitive takes none.
    pub opts: &'static [Opt],
}

/// Primitives whose error is the playbook's own message, shown as given
/// (no name in front).
const OWN_MESSAGE: &[&str] = &["fail", "fail_usage"];

/// A row of an options table, for tables written one row a line.
pub const fn opt(
    key: &'static str,
    ty: &'static str,
    default: &'static str,
    help: &'static str,
) -> Opt {
    Opt {
        key,
        ty,
        default,
        help,
    }
}

impl Spec {
    /// A primitive without options.
    pub const fn plain(
        name: &'static str,
        params: &'static [&'static str],
        returns: &'static str,
        doc: &'static str,
    ) -> Spec {
        Spec {
            name,
            params,
            returns,
            doc,
            opts: &[],
        }
    }

    /// The option keys, in table order.
    pub fn keys(&self) -> Vec<&'static str> {
        self.opts.iter().map(|o| o.key).collect()
    }

    /// Typed access to a call's options; unknown keys are refused.
    pub fn read<'a>(&self, map: &'a Map) -> RhaiResult<Opts<'a>> {
        Opts::new(self.name, map, &self.keys())
    }

    /// The doc comment the engine's metadata carries: the prose, then the
    /// options table rendered as a list.
    pub fn comments(&self) -> String {
        let mut s = String::new();
        for line in self.doc.trim_end().lines() {
            s.push_str("///");
            if !line.is_empty() {
                s.push(' ');
                s.push_str(line);
            }
            s.push('\n');
        }
        if !self.opts.is_empty() {
            s.push_str("///\n/// Options:\n");
            for o in self.opts {
                let default = if o.default.is_empty() {
                    String::new()
                } else {
                    format!(", default {}", o.default)
                };
                s.push_str(&format!(
                    "/// - `{}` ({}{default}): {}\n",
                    o.key, o.ty, o.help
                ));
            }
        }
        s.trim_end().to_string()
    }

    fn info(&self, with_opts: bool) -> Vec<String> {
        let mut v: Vec<String> = self.params.iter().map(|p| p.to_string()).collect();
        if with_opts {
            v.push("opts: Map".into());
        }
        v.push(self.returns.to_string());
        v
    }

    fn short(&self) -> String {
        format!(
            "/// `{}`: `{}` with the default options.",
            self.signature(),
            self.name
        )
    }

    fn signature(&self) -> String {
        let names: Vec<&str> = self
            .params
            .iter()
            .map(|p| p.split(':').next().unwrap_or(p).trim())
            .collect();
        format!("{}({})", self.name, names.join(", "))
    }

    /// Run one call: a span with the name, the elapsed time logged at
    /// debug, errors prefixed with the name.
    fn call<R>(&'static self, body: impl FnOnce() -> RhaiResult<R>) -> RhaiResult<R> {
        let _span = tracing::debug_span!("primitive", name = self.name).entered();
        let start = Instant::now();
        let r = body();
        tracing::debug!(
            primitive = self.name,
            elapsed_ms = start.elapsed().as_millis() as u64,
            ok = r.is_ok(),
            "{} returned",
            self.name
        );
        if OWN_MESSAGE.contains(&self.name) {
            return r;
        }
        r.map_err(|e| prefix(self.name, *e))
    }

    fn register<const N: usize, const M: usize, A: 'static, B: 'static, R>(
        &'static self,
        engine: &mut Engine,
        with: impl rhai::RhaiNativeFunc<A, N, false, R, true> + Send + Sync + 'static,
        without: impl rhai::RhaiNativeFunc<B, M, false, R, true> + Send + Sync + 'static,
    ) where
        R: Variant + Clone,
    {
        if !self.opts.is_empty() {
            self.registration(true, true)
                .register_into_engine(engine, with);
        }
        // The full doc goes on one overload; the other gets the summary.
        self.registration(false, self.opts.is_empty())
            .register_into_engine(engine, without);
    }

    /// The registration of one overload (with or without the options
    /// map), its doc comment the full doc or the summary; no comment at
    /// all on a playbook run, which never shows them.
    fn registration(&self, with_opts: bool, full_doc: bool) -> FuncRegistration {
        let r = FuncRegistration::new(self.name).with_params_info(self.info(with_opts));
        match (DOCS.load(Ordering::Relaxed), full_doc) {
            (false, _) => r,
            (true, true) => r.with_comments([self.comments()]),
            (true, false) => r.with_comments([self.short()]),
        }
    }

    /// Register `name(opts)` alone: its options hold what is required.
    pub fn register_opts<R, F>(&'static self, engine: &mut Engine, f: F)
    where
        R: Variant + Clone,
        F: Fn(&Opts) -> RhaiResult<R> + Send + Sync + 'static,
    {
        self.register_opts_with_context(engine, move |_, o| f(o));
    }

    /// Register `name(opts)` alone (its options hold what is required),
    /// the body given the call's context: for a primitive that calls back
    /// into the script (a closure source).
    pub fn register_opts_with_context<R, F>(&'static self, engine: &mut Engine, f: F)
    where
        R: Variant + Clone,
        F: Fn(&rhai::NativeCallContext, &Opts) -> RhaiResult<R> + Send + Sync + 'static,
    {
        let r = self.registration(true, true);
        r.register_into_engine(engine, move |ncc: rhai::NativeCallContext, opts: Map| {
            self.call(|| f(&ncc, &self.read(&opts)?))
        });
    }

    /// Register `name(a, b, opts)` alone: its options hold what is required.
    pub fn register2_opts<A, B, R, F>(&'static self, engine: &mut Engine, f: F)
    where
        A: Variant + Clone,
        B: Variant + Clone,
        R: Variant + Clone,
        F: Fn(A, B, &Opts) -> RhaiResult<R> + Send + Sync + 'static,
    {
        let r = self.registration(true, true);
        r.register_into_engine(engine, move |a: A, b: B, opts: Map| {
            self.call(|| f(a, b, &self.read(&opts)?))
        });
    }

    /// Register `name()` and, when the table has options, `name(opts)`.
    pub fn register0<R, F>(&'static self, engine: &mut Engine, f: F)
    where
        R: Variant + Clone,
        F: Fn(&Opts) -> RhaiResult<R> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let g = f.clone();
        self.register(
            engine,
            move |opts: Map| self.call(|| f(&self.read(&opts)?)),
            move || self.call(|| g(&self.read(&Map::new())?)),
        );
    }

    /// Register `name(a)` and, when the table has options, `name(a, opts)`.
    pub fn register1<A, R, F>(&'static self, engine: &mut Engine, f: F)
    where
        A: Variant + Clone,
        R: Variant + Clone,
        F: Fn(A, &Opts) -> RhaiResult<R> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let g = f.clone();
        self.register(
            engine,
            move |a: A, opts: Map| self.call(|| f(a, &self.read(&opts)?)),
            move |a: A| self.call(|| g(a, &self.read(&Map::new())?)),
        );
    }

    /// [`Spec::register1`] with the call's context: for a primitive that
    /// calls back into the script (closures, other primitives by name).
    pub fn register1_with_context<A, R, F>(&'static self, engine: &mut Engine, f: F)
    where
        A: Variant + Clone,
        R: Variant + Clone,
        F: Fn(&rhai::NativeCallContext, A, &Opts) -> RhaiResult<R> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let g = f.clone();
        self.registration(true, true).register_into_engine(
            engine,
            move |ncc: rhai::NativeCallContext, a: A, opts: Map| {
                self.call(|| f(&ncc, a, &self.read(&opts)?))
            },
        );
        self.registration(false, false).register_into_engine(
            engine,
            move |ncc: rhai::NativeCallContext, a: A| {
                self.call(|| g(&ncc, a, &self.read(&Map::new())?))
            },
        );
    }

    /// Register `name(a, b)` and, when the table has options,
    /// `name(a, b, opts)`.
    pub fn register2<A, B, R, F>(&'static self, engine: &mut Engine, f: F)
    where
        A: Variant + Clone,
        B: Variant + Clone,
        R: Variant + Clone,
        F: Fn(A, B, &Opts) -> RhaiResult<R> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let g = f.clone();
        self.register(
            engine,
            move |a: A, b: B, opts: Map| self.call(|| f(a, b, &self.read(&opts)?)),
            move |a: A, b: B| self.call(|| g(a, b, &self.read(&Map::new())?)),
        );
    }

    /// Register `name(a, b, c)` and, when the table has options,
    /// `name(a, b, c, opts)`.
    pub fn register3<A, B, C, R, F>(&'static self, engine: &mut Engine, f: F)
    where
        A: Variant + Clone,
        B: Variant + Clone,
        C: Variant + Clone,
        R: Variant + Clone,
        F: Fn(A, B, C, &Opts) -> RhaiResult<R> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let g = f.clone();
        self.register(
            engine,
            move |a: A, b: B, c: C, opts: Map| self.call(|| f(a, b, c, &self.read(&opts)?)),
            move |a: A, b: B, c: C| self.call(|| g(a, b, c, &self.read(&Map::new())?)),
        );
    }

    /// Register `name(a, b, c, d)` and, when the table has options,
    /// `name(a, b, c, d, opts)`.
    pub fn register4<A, B, C, D, R, F>(&'static self, engine: &mut Engine, f: F)
    where
        A: Variant + Clone,
        B: Variant + Clone,
        C: Variant + Clone,
        D: Variant + Clone,
        R: Variant + Clone,
        F: Fn(A, B, C, D, &Opts) -> RhaiResult<R> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let g = f.clone();
        self.register(
            engine,
            move |a: A, b: B, c: C, d: D, opts: Map| {
                self.call(|| f(a, b, c, d, &self.read(&opts)?))
            },
            move |a: A, b: B, c: C, d: D| self.call(|| g(a, b, c, d, &self.read(&Map::new())?)),
        );
    }
}

/// Put `name: ` in front of a primitive's error message unless it is
/// there already; stops (deadline, signal) pass unchanged.
fn prefix(name: &str, e: EvalAltResult) -> Box<EvalAltResult> {
    let named = |m: &str| m.starts_with(name) && m[name.len()..].starts_with(':');
    match e {
        EvalAltResult::ErrorRuntime(v, pos) if v.is_string() => {
            let tag = v.tag();
            let msg = v.to_string();
            let msg = if named(&msg) {
                msg
            } else {
                format!("{name}: {msg}")
            };
            let mut v: Dynamic = msg.into();
            v.set_tag(tag); // a usage error stays one
            EvalAltResult::ErrorRuntime(v, pos).into()
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::ImmutableString;

    static ECHO: Spec = Spec {
        name: "echo",
        params: &["text: String"],
        returns: "String",
        doc: "Say `text` back.\n\nA test primitive.",
        opts: &[
            Opt {
                key: "times",
                ty: "int",
                default: "1",
                help: "how often",
            },
            Opt {
                key: "sep",
                ty: "string",
                default: "\" \"",
                help: "between the copies",
            },
        ],
    };

    fn engine() -> Engine {
        let mut e = crate::engine::new_engine();
        ECHO.register1(&mut e, |t: ImmutableString, o: &Opts| {
            let n = o.int("times")?.unwrap_or(1);
            if n < 0 {
                // A tagged usage error, as `fail_usage` throws.
                let v = crate::error::usage_value("times must be 0 or more".into());
                return Err(EvalAltResult::ErrorRuntime(v, rhai::Position::NONE).into());
            }
            if n > 3 {
                return Err(crate::context::error("too many"));
            }
            let sep = o.str("sep")?.unwrap_or_else(|| " ".into());
            Ok(vec![t.to_string(); n as usize].join(&sep))
        });
        e
    }

    #[test]
    fn both_arities_share_one_body() {
        let e = engine();
        assert_eq!(e.eval::<String>(r#"echo("a")"#).unwrap(), "a");
        assert_eq!(
            e.eval::<String>(r#"echo("a", #{ times: 3, sep: "-" })"#)
                .unwrap(),
            "a-a-a"
        );
    }

    #[test]
    fn unknown_options_are_refused_from_the_table() {
        let err = engine()
            .eval::<String>(r#"echo("a", #{ tims: 2 })"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("echo: unknown option 'tims'"), "{err}");
        assert!(err.contains("did you mean 'times'"), "{err}");
        assert!(err.contains("times, sep"), "{err}");
    }

    #[test]
    fn errors_carry_the_name_once_and_keep_their_kind() {
        let e = engine();
        let err = e.eval::<String>(r#"echo("a", #{ times: 5 })"#).unwrap_err();
        assert!(err.to_string().contains("echo: too many"), "{err}");
        let err = e
            .eval::<String>(r#"echo("a", #{ times: -1 })"#)
            .unwrap_err();
        assert!(crate::report::is_usage(&err), "{err}");
        let msg = match *err {
            EvalAltResult::ErrorRuntime(v, _) => crate::error::usage_message(&v),
            _ => None,
        };
        assert_eq!(msg.as_deref(), Some("echo: times must be 0 or more"));
    }

    #[test]
    fn the_table_renders_the_options_section() {
        let c = ECHO.comments();
        assert!(
            c.starts_with("/// Say `text` back.\n///\n/// A test primitive."),
            "{c}"
        );
        assert!(
            c.contains("/// Options:\n/// - `times` (int, default 1): how often"),
            "{c}"
        );
        assert!(
            c.contains("/// - `sep` (string, default \" \"): between the copies"),
            "{c}"
        );
        let sigs = engine().gen_fn_signatures(false);
        assert!(
            sigs.iter()
                .any(|s| s.starts_with("echo(text: String, opts: ")),
            "{sigs:?}"
        );
        assert_eq!(sigs.len(), 2, "only the primitive's two arities: {sigs:?}");
        assert!(
            sigs.iter()
                .any(|s| s.starts_with("echo(text: String) -> String")),
            "{sigs:?}"
        );
    }
}
