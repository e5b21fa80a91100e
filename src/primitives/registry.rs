//! `ghcr_has_tag`, `ghcr_has_tags` and `image_digest`: the bindings of the
//! OCI client in [`crate::oci`]. Options are read here; references, auth,
//! retries and bounded reads live in the library.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, ImmutableString, Map};

use crate::context::{error, Ctx, RhaiResult};
use crate::declare::{Opt, Spec};
use crate::error::fmt_secs;
pub use crate::oci::client::{DEFAULT_TIMEOUT, SMALL_LIMIT};
pub use crate::oci::reference::{
    sha256_digest, validate_digest, validate_reference, MANIFEST_ACCEPT,
};
pub use crate::oci::{Client, ImageRef};
use crate::opts::{string_array, Opts};

/// Most concurrent checks of one `ghcr_has_tags` call, by default.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Most tags one `ghcr_has_tags` call takes.
const MAX_TAGS: usize = 1000;

/// Run `fut` on the runtime, bounded by `timeout` with a message that names
/// the primitive and the subject.
pub fn block<T>(
    ctx: &Ctx,
    client: &Client,
    prim: &'static str,
    subject: &str,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, String>>,
) -> RhaiResult<T> {
    let subject = subject.to_string();
    let client = client.clone();
    ctx.block_on(prim, timeout + Duration::from_secs(2), async move {
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{prim}: {subject}: no answer from the registry within {} (the call's `timeout` option){}; the registry may be down or unreachable — try again, or raise `timeout`",
                fmt_secs(timeout),
                client.last_failure().map(|f| format!(", last attempt: {f}")).unwrap_or_default()
            )),
        }
    })
}

struct Call {
    image: ImageRef,
    timeout: Duration,
    concurrency: usize,
}

fn call(prim: &'static str, image: &str, o: &Opts) -> RhaiResult<Call> {
    let timeout = o.duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        return Err(error(format!(
            "{prim}: option 'timeout' must be above zero"
        )));
    }
    let concurrency = match o.int("concurrency")? {
        None => DEFAULT_CONCURRENCY,
        Some(n) if (1..=64).contains(&n) => n as usize,
        Some(n) => {
            return Err(error(format!(
                "{prim}: option 'concurrency' must be 1-64, got {n}"
            )))
        }
    };
    let image = ImageRef::parse(image).map_err(|e| error(format!("{prim}: {e}")))?;
    Ok(Call {
        image,
        timeout,
        concurrency,
    })
}

/// Whether `tag` exists: `Some(digest)` or `None`.
pub async fn check_tag(client: &Client, tag: &str) -> Result<Option<String>, String> {
    client.head_manifest(tag).await
}

fn has_tag(ctx: &Ctx, image: &str, tag: &str, opts: &Opts) -> RhaiResult<bool> {
    let started = Instant::now();
    let c = call("ghcr_has_tag", image, opts)?;
    validate_reference(tag).map_err(|e| error(format!("ghcr_has_tag: {}: {e}", c.image)))?;
    let client = Client::new(&ctx.http, &ctx.registry_auth, c.image.clone(), c.timeout);
    let subject = format!("{}:{tag}", c.image);
    let cl = client.clone();
    let t = tag.to_string();
    let s2 = subject.clone();
    let found = block(
        ctx,
        &client,
        "ghcr_has_tag",
        &subject,
        c.timeout,
        async move {
            check_tag(&cl, &t).await.map_err(|e| {
                format!("ghcr_has_tag: {s2}: could not tell whether the tag exists: {e}")
            })
        },
    )?;
    tracing::info!(
        primitive = "ghcr_has_tag", image = %c.image, tag, exists = found.is_some(),
        digest = found.as_deref().unwrap_or(""), requests = client.requests(),
        token_requests = client.token_requests(), elapsed_ms = started.elapsed().as_millis() as u64,
        "{subject}: {}", if found.is_some() { "present" } else { "absent" }
    );
    Ok(found.is_some())
}

fn has_tags(ctx: &Ctx, image: &str, tags: &Array, opts: &Opts) -> RhaiResult<Map> {
    let started = Instant::now();
    let c = call("ghcr_has_tags", image, opts)?;
    let tags = string_array("ghcr_has_tags", "the tag list", tags)?;
    if tags.len() > MAX_TAGS {
        return Err(error(format!(
            "ghcr_has_tags: {}: {} tags in one call; at most {MAX_TAGS}",
            c.image,
            tags.len()
        )));
    }
    let unique: BTreeSet<String> = tags.into_iter().collect();
    for t in &unique {
        validate_reference(t).map_err(|e| error(format!("ghcr_has_tags: {}: {e}", c.image)))?;
    }
    let client = Client::new(&ctx.http, &ctx.registry_auth, c.image.clone(), c.timeout);
    let cl = client.clone();
    let list: Vec<String> = unique.iter().cloned().collect();
    let concurrency = c.concurrency;
    let img = c.image.to_string();
    let results = block(ctx, &client, "ghcr_has_tags", &img, c.timeout, async move {
        let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut set = tokio::task::JoinSet::new();
        for tag in list {
            let (cl, sem) = (cl.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let r = check_tag(&cl, &tag).await;
                (tag, r)
            });
        }
        let mut out = Vec::new();
        while let Some(j) = set.join_next().await {
            out.push(j.map_err(|e| format!("a tag check stopped unexpectedly: {e}"))?);
        }
        Ok(out)
    })?;
    let mut map = Map::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for (tag, r) in results {
        match r {
            Ok(found) => {
                map.insert(tag.as_str().into(), Dynamic::from(found.is_some()));
            }
            Err(e) => failed.push((tag, e)),
        }
    }
    if !failed.is_empty() {
        failed.sort();
        let names: Vec<&str> = failed.iter().take(10).map(|(t, _)| t.as_str()).collect();
        return Err(error(format!(
            "ghcr_has_tags: {}: could not tell for {} of {} tags ({}{}): {}",
            c.image,
            failed.len(),
            unique.len(),
            names.join(", "),
            if failed.len() > 10 { ", …" } else { "" },
            failed[0].1
        )));
    }
    let present = map
        .values()
        .filter(|v| v.as_bool().unwrap_or(false))
        .count();
    tracing::info!(
        primitive = "ghcr_has_tags", image = %c.image, tags = unique.len(), present,
        absent = unique.len() - present, requests = client.requests(),
        token_requests = client.token_requests(), elapsed_ms = started.elapsed().as_millis() as u64,
        "{}: {present} of {} tags present", c.image, unique.len()
    );
    Ok(map)
}

/// The manifest digest of `reference`: from `Docker-Content-Digest`, or the
/// sha256 of the manifest when the registry sends no digest header.
pub async fn digest_of(client: &Client, reference: &str) -> Result<Option<String>, String> {
    match client.head_manifest(reference).await? {
        None => Ok(None),
        Some(d) if validate_digest(&d).is_ok() => Ok(Some(d)),
        Some(_) => match client.get_manifest(reference, MANIFEST_ACCEPT).await? {
            None => Ok(None),
            Some(r) => Ok(Some(sha256_digest(&r.body))),
        },
    }
}

fn image_digest(ctx: &Ctx, image: &str, tag: &str, opts: &Opts) -> RhaiResult<String> {
    let started = Instant::now();
    let c = call("image_digest", image, opts)?;
    validate_reference(tag).map_err(|e| error(format!("image_digest: {}: {e}", c.image)))?;
    let client = Client::new(&ctx.http, &ctx.registry_auth, c.image.clone(), c.timeout);
    let subject = format!("{}:{tag}", c.image);
    let (cl, t, s2) = (client.clone(), tag.to_string(), subject.clone());
    let digest = block(
        ctx,
        &client,
        "image_digest",
        &subject,
        c.timeout,
        async move {
            match digest_of(&cl, &t).await {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err(format!(
                "image_digest: {s2}: no such tag (the registry answered 404); check the tag, and that the image was pushed"
            )),
            Err(e) => Err(format!("image_digest: {s2}: could not read the digest: {e}")),
        }
        },
    )?;
    tracing::info!(
        primitive = "image_digest", image = %c.image, tag, digest = %digest,
        requests = client.requests(), token_requests = client.token_requests(),
        elapsed_ms = started.elapsed().as_millis() as u64, "{subject} is {digest}"
    );
    Ok(digest)
}

#[rustfmt::skip]
const TIMEOUT: Opt = Opt { key: "timeout", ty: "duration", default: "60s", help: "bound on the whole call" };

#[rustfmt::skip]
static HAS_TAG: Spec = Spec {
    name: "ghcr_has_tag",
    params: &["image: String", "tag: String"],
    returns: "bool",
    doc: include_str!("docs/ghcr_has_tag.md"),
    opts: &[TIMEOUT],
};

#[rustfmt::skip]
static HAS_TAGS: Spec = Spec {
    name: "ghcr_has_tags",
    params: &["image: String", "tags: Array"],
    returns: "Map",
    doc: include_str!("docs/ghcr_has_tags.md"),
    opts: &[
        Opt { key: "timeout", ty: "duration", default: "60s", help: "bound on the whole batch" },
        Opt { key: "concurrency", ty: "int", default: "16", help: "checks at once (1-64)" },
    ],
};

#[rustfmt::skip]
static IMAGE_DIGEST: Spec = Spec {
    name: "image_digest",
    params: &["image: String", "tag: String"],
    returns: "String",
    doc: include_str!("docs/image_digest.md"),
    opts: &[TIMEOUT],
};

type S = ImmutableString;

/// Register `ghcr_has_tag`, `ghcr_has_tags` and `image_digest`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    HAS_TAG.register2(engine, move |image: S, tag: S, o: &Opts| {
        has_tag(&c, &image, &tag, o)
    });
    let c = ctx.clone();
    HAS_TAGS.register2(engine, move |image: S, tags: Array, o: &Opts| {
        has_tags(&c, &image, &tags, o)
    });
    let c = ctx.clone();
    IMAGE_DIGEST.register2(engine, move |image: S, tag: S, o: &Opts| {
        image_digest(&c, &image, &tag, o)
    });
}
