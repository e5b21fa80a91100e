//! The in-process floor for bench/registry.sh: the same 100 tag checks as
//! keep-alive `HEAD /v2/<name>/manifests/<tag>` requests with reqwest in one
//! process (token fetched once, outside the timing), sequentially on one
//! connection and 16 at a time on a pool.
//!
//! Needs the bench registry: bench/registry.sh exports
//! `RUNBOOK_BENCH_IMAGE=127.0.0.1:PORT/OWNER/NAME` and
//! `RUNBOOK_BENCH_TAGS=/path/tags.json` (a JSON array) and
//! `RUNBOOK_BENCH_PRESENT=N` before `cargo bench --bench registry`;
//! without them this bench prints why and measures nothing.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use futures::StreamExt;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

struct Setup {
    http: reqwest::Client,
    urls: Vec<String>,
    auth: String,
    present: usize,
}

fn param(challenge: &str, name: &str) -> Option<String> {
    let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let len = challenge[start..].find('"')?;
    Some(challenge[start..start + len].to_string())
}

async fn setup(image: &str, tags_file: &str, present: usize) -> Setup {
    let (host, repo) = image
        .split_once('/')
        .expect("IMAGE is HOST:PORT/OWNER/NAME");
    let tags: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(tags_file).expect("tags file"))
            .expect("tags JSON");
    let urls: Vec<String> = tags
        .iter()
        .map(|t| format!("http://{host}/v2/{repo}/manifests/{t}"))
        .collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    // The challenge, then one token, as a registry client does.
    let r = http
        .head(&urls[0])
        .header("Accept", ACCEPT)
        .send()
        .await
        .unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let auth = match param(&challenge, "realm") {
        Some(realm) => {
            let service = param(&challenge, "service").unwrap_or_default();
            let scope = param(&challenge, "scope").unwrap_or_default();
            let v: serde_json::Value = http
                .get(format!("{realm}?service={service}&scope={scope}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            format!("Bearer {}", v["token"].as_str().expect("token"))
        }
        None => String::new(),
    };
    Setup {
        http,
        urls,
        auth,
        present,
    }
}

async fn head(s: &Setup, url: &str) -> bool {
    let mut req = s.http.head(url).header("Accept", ACCEPT);
    if !s.auth.is_empty() {
        req = req.header("Authorization", &s.auth);
    }
    match req.send().await.unwrap().status().as_u16() {
        200 => true,
        404 => false,
        other => panic!("HEAD {url}: {other}"),
    }
}

async fn sequential(s: &Setup) -> usize {
    let mut n = 0;
    for u in &s.urls {
        n += head(s, u).await as usize;
    }
    n
}

async fn concurrent(s: &Setup, width: usize) -> usize {
    futures::stream::iter(s.urls.iter())
        .map(|u| head(s, u))
        .buffer_unordered(width)
        .filter(|p| std::future::ready(*p))
        .count()
        .await
}

fn benches(c: &mut Criterion) {
    let (Ok(image), Ok(tags), Ok(present)) = (
        std::env::var("RUNBOOK_BENCH_IMAGE"),
        std::env::var("RUNBOOK_BENCH_TAGS"),
        std::env::var("RUNBOOK_BENCH_PRESENT"),
    ) else {
        eprintln!(
            "SKIPPED benches/registry.rs: RUNBOOK_BENCH_IMAGE, RUNBOOK_BENCH_TAGS and RUNBOOK_BENCH_PRESENT are unset; run bench/registry.sh"
        );
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup(
        &image,
        &tags,
        present.parse().expect("RUNBOOK_BENCH_PRESENT"),
    ));
    assert_eq!(rt.block_on(sequential(&s)), s.present);
    assert_eq!(rt.block_on(concurrent(&s, 16)), s.present);

    let mut g = c.benchmark_group("registry_floor");
    g.sample_size(30).measurement_time(Duration::from_secs(6));
    g.bench_function("sequential_keepalive", |b| {
        b.iter(|| assert_eq!(rt.block_on(sequential(&s)), s.present))
    });
    g.bench_function("concurrent16_keepalive", |b| {
        b.iter(|| assert_eq!(rt.block_on(concurrent(&s, 16)), s.present))
    });
    g.finish();
}

criterion_group!(registry, benches);
criterion_main!(registry);
