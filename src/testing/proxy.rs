//! The proxy engine: the sandboxed engine with every primitive replaced by
//! a stand-in of the same name and arity that records the call, then lets a
//! handler answer it (a stub, a replayed result, a refusal) or forwards it
//! to the real primitive. `runbook test` and `--record` both run on it.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rhai::{Dynamic, Engine, Position, Scope, AST};

use crate::context::{Ctx, RhaiResult};

/// One primitive call and what it returned.
#[derive(Clone, Debug)]
pub struct Call {
    /// The primitive.
    pub name: String,
    /// Its arguments.
    pub args: Vec<Dynamic>,
    /// Its value, or its error message.
    pub result: Result<Dynamic, String>,
    /// Whether it changes the world (see `primitives::effects`).
    pub mutation: bool,
}

/// Answers a call before the real primitive would: `Some` is the answer,
/// `None` forwards the call to the real primitive.
pub type Handler = dyn Fn(&str, &[Dynamic]) -> Option<RhaiResult<Dynamic>> + Send + Sync;

/// Every primitive the engine registers, as (name, its parameters as the
/// metadata writes them: `image: String`, …, then the return type), read
/// once from the metadata of the engine of `ctx`. The stand-ins carry them
/// so a message under `runbook test` shows the real signature.
pub fn signatures(ctx: &Arc<Ctx>) -> &'static [(String, Vec<String>)] {
    static SIGS: OnceLock<Vec<(String, Vec<String>)>> = OnceLock::new();
    SIGS.get_or_init(|| {
        let real = crate::primitives::engine(ctx);
        let json = real.gen_fn_metadata_to_json(false).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        let mut out: Vec<(String, Vec<String>)> = v
            .get("functions")
            .and_then(|f| f.as_array())
            .map(|fs| fs.iter().filter_map(signature_of).collect())
            .unwrap_or_default();
        out.sort();
        out.dedup();
        out
    })
}

/// One function's name and parameter texts from its JSON metadata.
fn signature_of(f: &serde_json::Value) -> Option<(String, Vec<String>)> {
    let name = f.get("name")?.as_str()?.to_string();
    let mut info: Vec<String> = f
        .get("params")
        .and_then(|p| p.as_array())
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let n = p.get("name").and_then(|n| n.as_str()).unwrap_or("_");
                    // Always `name: type`: the stand-in's arity counts them.
                    let t = p.get("type").and_then(|t| t.as_str()).unwrap_or("Dynamic");
                    format!("{n}: {t}")
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(r) = f.get("returnType").and_then(|r| r.as_str()) {
        info.push(r.to_string());
    }
    Some((name, info))
}

/// The stand-ins' shared state.
pub struct Proxy {
    ctx: Arc<Ctx>,
    // Built on first forward: many test runs stub everything they call.
    real: OnceLock<Engine>,
    calls_ast: Mutex<HashMap<String, Arc<AST>>>,
    /// Every call so far, in order.
    pub calls: Mutex<Vec<Call>>,
    handler: Box<Handler>,
}

impl Proxy {
    /// A proxy in front of the real primitives of `ctx`'s run.
    pub fn new(ctx: &Arc<Ctx>, handler: Box<Handler>) -> Arc<Proxy> {
        Arc::new(Proxy {
            ctx: ctx.clone(),
            real: OnceLock::new(),
            calls_ast: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            handler,
        })
    }

    /// The calls recorded so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().clone()
    }

    fn real(&self) -> &Engine {
        self.real
            .get_or_init(|| crate::primitives::engine(&self.ctx))
    }

    /// Call the real primitive `name` with `args`.
    pub fn forward(&self, name: &str, args: &[Dynamic]) -> RhaiResult<Dynamic> {
        let key = format!("{name}/{}", args.len());
        let ast = {
            let mut cache = self.calls_ast.lock();
            match cache.get(&key) {
                Some(a) => a.clone(),
                None => {
                    let params: Vec<String> = (0..args.len()).map(|i| format!("a{i}")).collect();
                    let text = format!("{name}({})", params.join(", "));
                    let ast =
                        Arc::new(self.real().compile(&text).map_err(|e| {
                            crate::context::error(format!("cannot call {name}: {e}"))
                        })?);
                    cache.insert(key, ast.clone());
                    ast
                }
            }
        };
        let mut scope = Scope::new();
        for (i, a) in args.iter().enumerate() {
            scope.push_dynamic(format!("a{i}"), a.clone());
        }
        self.real()
            .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
            .map_err(|mut e| {
                // The position is inside the one-line call above; the
                // playbook's engine puts the caller's position instead.
                e.set_position(Position::NONE);
                e
            })
    }

    fn dispatch(&self, name: &str, args: Vec<Dynamic>) -> RhaiResult<Dynamic> {
        let result = match (self.handler)(name, &args) {
            Some(r) => r,
            None => self.forward(name, &args),
        };
        let mutation = crate::primitives::effects::is_mutation(name, &args);
        let recorded = match &result {
            Ok(v) => Ok(v.clone()),
            Err(e) => Err(crate::report::error_text(e)),
        };
        self.calls.lock().push(Call {
            name: name.to_string(),
            args,
            result: recorded,
            mutation,
        });
        result
    }
}

/// The sandboxed engine with stand-ins for every primitive.
pub fn engine(ctx: &Arc<Ctx>, proxy: &Arc<Proxy>) -> Engine {
    let mut engine = crate::engine::base(ctx);
    // The stand-ins live in one global module: registering there (unlike
    // `register_raw_fn`) keeps each primitive's parameter names and types.
    let mut stand_ins = rhai::Module::new();
    for (name, info) in signatures(ctx) {
        if crate::primitives::gates::STRUCTURAL.contains(&name.as_str()) {
            continue;
        }
        let p = proxy.clone();
        let n = name.clone();
        let arity = info.iter().filter(|i| i.contains(": ")).count();
        let types = vec![std::any::TypeId::of::<Dynamic>(); arity];
        let func = move |_: Option<rhai::NativeCallContext>, args: &mut [&mut Dynamic]| {
            let vals: Vec<Dynamic> = args.iter().map(|a| (**a).clone()).collect();
            p.dispatch(&n, vals)
        };
        rhai::FuncRegistration::new(name.as_str())
            .in_global_namespace()
            .with_params_info(info)
            .set_into_module_raw(
                &mut stand_ins,
                types,
                rhai::RhaiFunc::Method {
                    func: Arc::new(func),
                    has_context: true,
                    is_pure: true,
                    is_volatile: true,
                },
            );
    }
    engine.register_global_module(stand_ins.into());
    // Rhai's core package has its own `sleep(int)` and `sleep(float)`, and
    // an exact-typed function wins over the Dynamic stand-in above: without
    // these, a test's (and `verify`'s) sleeps took real time.
    for t in [std::any::TypeId::of::<f64>(), std::any::TypeId::of::<i64>()] {
        let p = proxy.clone();
        engine.register_raw_fn("sleep", [t], move |_, args| {
            p.dispatch("sleep", vec![(*args[0]).clone()])
        });
    }
    // They call the script back; here those calls reach the stand-ins.
    crate::primitives::gates::register_structural(&mut engine, ctx);
    engine
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Settings;
    use crate::logging::LogFormat;

    fn ctx(rt: &tokio::runtime::Runtime) -> Arc<Ctx> {
        Ctx::new(
            Settings::new(std::path::Path::new("t.rhai"), LogFormat::Json),
            rt.handle().clone(),
        )
    }

    #[test]
    fn stand_ins_record_and_forward() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let c = ctx(&rt);
        let proxy = Proxy::new(
            &c,
            Box::new(|name, _| (name == "git_sha").then(|| Ok(Dynamic::from("abc")))),
        );
        let e = engine(&c, &proxy);
        let v: rhai::Map = e
            .eval(r#"let sha = git_sha(); let ep = validate_endpoint("node.example:30001"); ep.sha = sha; ep"#)
            .unwrap();
        assert_eq!(v["sha"].to_string(), "abc");
        assert_eq!(v["port"].as_int().unwrap(), 30001);
        let calls = proxy.calls();
        let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["git_sha", "validate_endpoint"]);
        // A real primitive's error keeps its message and gets the caller's line.
        let err = e
            .run("let a = 1;\nvalidate_endpoint(\"1.2.3.4:80\");")
            .unwrap_err();
        assert_eq!(err.position().line(), Some(2), "{err}");
        assert!(proxy.calls().last().unwrap().result.is_err());
    }

    /// Rhai's own `sleep` must not win over the stand-in: a stubbed sleep
    /// takes no time and is recorded, int or float.
    #[test]
    fn sleep_reaches_the_stand_in() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let c = ctx(&rt);
        let proxy = Proxy::new(
            &c,
            Box::new(|name, _| (name == "sleep").then(|| Ok(Dynamic::UNIT))),
        );
        let e = engine(&c, &proxy);
        let start = std::time::Instant::now();
        e.run("sleep(30); sleep(2.5);").unwrap();
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        let names: Vec<String> = proxy.calls().iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, ["sleep", "sleep"]);
    }
}
