//! `ghcr_has_tag`, `ghcr_has_tags` and `image_digest`: the bindings of the
//! OCI client in [`crate::oci`]. Options are read here; references, auth,
//! retries and bounded reads live in the library.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, ImmutableString, Map};

use crate::context::{Ctx, RhaiResult};
use crate::declare::{Opt, Spec};
use crate::error::PrimError;
use crate::oci::client::DEFAULT_TIMEOUT;
use crate::oci::reference::validate_reference;
use crate::oci::{Client, ImageRef};
use crate::opts::{string_array, Opts};

/// Most concurrent checks of one `ghcr_has_tags` call, by default.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Most tags one `ghcr_has_tags` call takes.
const MAX_TAGS: usize = 1000;

/// Run `fut` on the runtime, bounded by `timeout` with a message that names
/// the primitive and the subject (and the last transient failure seen).
fn block<T>(
    ctx: &Ctx,
    client: &Client,
    prim: &'static str,
    subject: &str,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, PrimError>>,
) -> RhaiResult<T> {
    let subject = subject.to_string();
    let client = client.clone();
    ctx.block_on(prim, timeout + Duration::from_secs(2), async move {
        match client.within(timeout, fut).await {
            Ok(r) => r,
            Err(e) => Err(PrimError {
                msg: format!(
                    "{prim}: {subject}: {}; the registry may be down or unreachable — try again, or raise `timeout`",
                    e.msg
                ),
                ..e
            }),
        }
    })
}

/// One call's image and bounds, read from its arguments and options.
struct Call {
    image: ImageRef,
    timeout: Duration,
    concurrency: usize,
}

/// A bad image, tag or option, with the primitive's name (and what it
/// was checking) in front; its kind is kept.
fn failed(prim: &str, what: impl std::fmt::Display, e: PrimError) -> PrimError {
    PrimError {
        msg: format!("{prim}: {what}{}", e.msg),
        ..e
    }
}

fn call(prim: &'static str, image: &str, o: &Opts) -> RhaiResult<Call> {
    let timeout = o.duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        return Err(
            PrimError::fatal(format!("{prim}: option 'timeout' must be above zero")).into(),
        );
    }
    let concurrency = match o.int("concurrency")? {
        None => DEFAULT_CONCURRENCY,
        Some(n) if (1..=64).contains(&n) => n as usize,
        Some(n) => {
            return Err(PrimError::fatal(format!(
                "{prim}: option 'concurrency' must be 1-64, got {n}"
            ))
            .into())
        }
    };
    let image = ImageRef::parse(image).map_err(|e| failed(prim, "", e))?;
    Ok(Call {
        image,
        timeout,
        concurrency,
    })
}

impl Call {
    /// Check `reference` (a tag or digest) and make the client.
    fn client(&self, ctx: &Ctx, prim: &str, reference: &str) -> RhaiResult<Client> {
        validate_reference(reference).map_err(|e| failed(prim, format!("{}: ", self.image), e))?;
        Ok(self.client_unchecked(ctx))
    }

    fn client_unchecked(&self, ctx: &Ctx) -> Client {
        Client::new(
            &ctx.http,
            &ctx.registry_auth,
            self.image.clone(),
            self.timeout,
        )
    }
}

/// A reference `HOST:PORT/NAME:TAG` split at its first ':' gives the host
/// as the image and `PORT/NAME:TAG` as the tag: say how to split it.
fn split_at_the_port(image: &str, tag: &str) -> Option<String> {
    if image.contains('/') || !tag.contains('/') {
        return None;
    }
    let whole = format!("{image}:{tag}");
    let (repo, t) = whole.rsplit_once(':')?;
    Some(format!(
        "ghcr_has_tag: the image '{image}' and the tag '{tag}' look like the reference '{whole}' split at the port's ':'; split it at its last ':' instead: `let parts = reference.split_rev(\":\", 2);` gives [\"{t}\", \"{repo}\"], so `ghcr_has_tag(parts[1], parts[0])`"
    ))
}

fn has_tag(ctx: &Ctx, image: &str, tag: &str, opts: &Opts) -> RhaiResult<bool> {
    let started = Instant::now();
    if let Some(hint) = split_at_the_port(image, tag) {
        return Err(PrimError::fatal(hint).into());
    }
    let c = call("ghcr_has_tag", image, opts)?;
    let client = c.client(ctx, "ghcr_has_tag", tag)?;
    let subject = format!("{}:{tag}", c.image);
    let (cl, t, s2) = (client.clone(), tag.to_string(), subject.clone());
    let found = block(
        ctx,
        &client,
        "ghcr_has_tag",
        &subject,
        c.timeout,
        async move {
            cl.head_manifest(&t).await.map_err(|e| {
                e.map_msg(|m| {
                    format!("ghcr_has_tag: {s2}: could not tell whether the tag exists: {m}")
                })
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

/// The distinct tags of a `ghcr_has_tags` call, each checked.
fn tag_set(c: &Call, tags: &Array) -> RhaiResult<BTreeSet<String>> {
    let tags = string_array("ghcr_has_tags", "the tag list", tags)?;
    if tags.len() > MAX_TAGS {
        return Err(PrimError::fatal(format!(
            "ghcr_has_tags: {}: {} tags in one call; at most {MAX_TAGS}",
            c.image,
            tags.len()
        ))
        .into());
    }
    let unique: BTreeSet<String> = tags.into_iter().collect();
    for t in &unique {
        validate_reference(t).map_err(|e| failed("ghcr_has_tags", format!("{}: ", c.image), e))?;
    }
    Ok(unique)
}

fn has_tags(ctx: &Ctx, image: &str, tags: &Array, opts: &Opts) -> RhaiResult<Map> {
    let started = Instant::now();
    let c = call("ghcr_has_tags", image, opts)?;
    let unique = tag_set(&c, tags)?;
    let client = c.client_unchecked(ctx);
    let (cl, list) = (client.clone(), unique.iter().cloned().collect());
    let concurrency = c.concurrency;
    let img = c.image.to_string();
    let results = block(ctx, &client, "ghcr_has_tags", &img, c.timeout, async move {
        cl.head_manifests(list, concurrency).await
    })?;
    let mut map = Map::new();
    let mut failed: Vec<(String, PrimError)> = Vec::new();
    for (tag, r) in results {
        match r {
            Ok(found) => {
                map.insert(tag.as_str().into(), Dynamic::from(found.is_some()));
            }
            Err(e) => failed.push((tag, e)),
        }
    }
    if !failed.is_empty() {
        failed.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<&str> = failed.iter().take(10).map(|(t, _)| t.as_str()).collect();
        let names = names.join(", ");
        let (n, first) = (failed.len(), failed.swap_remove(0).1);
        return Err(first
            .map_msg(|m| {
                format!(
                    "ghcr_has_tags: {}: could not tell for {n} of {} tags ({}{}): {m}",
                    c.image,
                    unique.len(),
                    names,
                    if n > 10 { ", …" } else { "" },
                )
            })
            .into());
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

fn image_digest(ctx: &Ctx, image: &str, tag: &str, opts: &Opts) -> RhaiResult<String> {
    let started = Instant::now();
    let c = call("image_digest", image, opts)?;
    let client = c.client(ctx, "image_digest", tag)?;
    let subject = format!("{}:{tag}", c.image);
    let (cl, t, s2) = (client.clone(), tag.to_string(), subject.clone());
    let digest = block(
        ctx,
        &client,
        "image_digest",
        &subject,
        c.timeout,
        async move {
            match cl.digest(&t).await {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err(PrimError::fatal(format!(
                "image_digest: {s2}: no such tag (the registry answered 404); check the tag, and that the image was pushed"
            ))),
            Err(e) => Err(e.map_msg(|m| format!("image_digest: {s2}: could not read the digest: {m}"))),
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
