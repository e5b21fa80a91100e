//! In-process figures: the cost of the primitives themselves, without
//! process start-up. `cargo bench --bench primitives`.

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use runbook::akash::shapes;
use runbook::context::{Ctx, Settings};
use runbook::logging::LogFormat;
use runbook::primitives::validate_endpoint;

fn ctx(rt: &tokio::runtime::Runtime, dir: &Path) -> Arc<Ctx> {
    let mut s = Settings::new(&dir.join("bench.rhai"), LogFormat::Json);
    s.workdir = dir.to_path_buf();
    Ctx::new(s, rt.handle().clone())
}

fn benches(c: &mut Criterion) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    c.bench_function("validate_endpoint", |b| {
        b.iter(|| validate_endpoint::validate(std::hint::black_box("provider.europlots.com:31877")))
    });

    let lease: serde_json::Value =
        serde_json::from_str(include_str!("../tests/data/akash/lease-status.json")).unwrap();
    c.bench_function("shapes::find lease status", |b| {
        b.iter(|| shapes::find(std::hint::black_box(&lease), 7072, None, None))
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lease.json"),
        include_str!("../tests/data/akash/lease-status.json"),
    )
    .unwrap();

    c.bench_function("engine build + compile + run validate playbook", |b| {
        b.iter(|| {
            let ctx = ctx(&rt, dir.path());
            let engine = runbook::primitives::engine(&ctx);
            engine
                .run("validate_endpoint(\"provider.europlots.com:31877\");")
                .unwrap();
        })
    });

    // One discover_port call whose source answers at once: the per-attempt
    // overhead of the loop (read, parse, find, validate, log).
    let ctx = ctx(&rt, dir.path());
    let engine = runbook::primitives::engine(&ctx);
    let ast = engine
        .compile("discover_port(#{ internal_port: 7072, source: #{ file: \"lease.json\" } })")
        .unwrap();
    c.bench_function("discover_port, instant file source (1 attempt)", |b| {
        b.iter(|| engine.eval_ast::<String>(&ast).unwrap())
    });
    let ast = engine
        .compile(
            "discover_port(#{ internal_port: 7072, source: || \"provider.europlots.com:31877\" })",
        )
        .unwrap();
    c.bench_function("discover_port, instant closure source (1 attempt)", |b| {
        b.iter(|| engine.eval_ast::<String>(&ast).unwrap())
    });
}

criterion_group!(primitives, benches);
criterion_main!(primitives);
