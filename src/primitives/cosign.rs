//! `cosign_soft_verify(image, digest, opts)`: the binding of the cosign
//! checks in [`crate::oci::cosign`] and [`crate::oci::cosign_find`]: read
//! the policy, bound the call, log one event, shape the result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, ImmutableString, Map};

use crate::context::{Ctx, RhaiResult};
use crate::declare::{Opt, Spec};
use crate::error::PrimError;
use crate::oci::client::DEFAULT_TIMEOUT;
use crate::oci::cosign::{load_key_pem, Policy, Status, Verdict};
use crate::oci::cosign_find::find_and_verify;
use crate::oci::reference::validate_digest;
use crate::oci::{Client, ImageRef};
use crate::opts::Opts;

/// The policy the options give: a key file, or a keyless identity and
/// issuer (both). Its errors become status `error`, not a throw.
fn policy_from(ctx: &Ctx, o: &Opts) -> Result<Policy, PrimError> {
    let opt = |k: &str| o.str(k).map_err(|e| PrimError::usage(e.to_string()));
    let mut policy = Policy::default();
    if let Some(path) = opt("key")? {
        let text = std::fs::read_to_string(ctx.path(&path)).map_err(|e| {
            PrimError::usage(format!("cannot read the public key file '{path}': {e}"))
        })?;
        policy.key = Some(
            load_key_pem(&text)
                .map_err(|e| e.map_msg(|m| format!("the key file '{path}' is {m}")))?,
        );
    }
    policy.identity = opt("identity")?;
    policy.issuer = opt("issuer")?;
    match (&policy.identity, &policy.issuer) {
        (Some(_), None) => {
            return Err(PrimError::usage(
                "`identity` needs `issuer` too (e.g. https://token.actions.githubusercontent.com)",
            ))
        }
        (None, Some(_)) => {
            return Err(PrimError::usage(
                "`issuer` needs `identity` too (the certificate's SAN: an email or a URI)",
            ))
        }
        _ => {}
    }
    if policy.key.is_none() && policy.identity.is_none() {
        return Err(PrimError::usage("nothing to verify against: give `key` (a PEM public key path), or `identity` and `issuer`"));
    }
    Ok(policy)
}

/// An unusable call or an unreachable registry: status `error`.
fn error_verdict(e: PrimError) -> Verdict {
    Verdict::new(Status::Error, e.msg, 0, "none")
}

/// The verdict on `image@digest` within `timeout`, and the registry
/// requests it took. Never an error but a stop (deadline, signal).
fn verdict_of(
    ctx: &Ctx,
    image: &str,
    digest: &str,
    o: &Opts,
    timeout: Duration,
) -> RhaiResult<(Verdict, u64)> {
    let (img, policy) = match (
        ImageRef::parse(image),
        validate_digest(digest),
        policy_from(ctx, o),
    ) {
        (Err(e), ..) | (_, Err(e), _) | (_, _, Err(e)) => return Ok((error_verdict(e), 0)),
        (Ok(img), Ok(_), Ok(policy)) => (img, policy),
    };
    let client = Client::new(&ctx.http, &ctx.registry_auth, img, timeout);
    let (cl, d) = (client.clone(), digest.to_string());
    let verdict = ctx.block_on(
        "cosign_soft_verify",
        timeout + Duration::from_secs(2),
        async move {
            let found = cl.within(timeout, find_and_verify(&cl, &d, &policy)).await;
            Ok::<_, PrimError>(match found {
                Ok(Ok(v)) => v,
                Ok(Err(e)) | Err(e) => error_verdict(e),
            })
        },
    )?;
    Ok((verdict, client.requests()))
}

fn soft_verify(ctx: &Arc<Ctx>, image: &str, digest: &str, o: &Opts) -> RhaiResult<Map> {
    let started = Instant::now();
    let strict = o.bool("strict")?.unwrap_or(false);
    let timeout = o
        .duration("timeout")?
        .unwrap_or(DEFAULT_TIMEOUT)
        .max(Duration::from_millis(1));
    let (verdict, requests) = verdict_of(ctx, image, digest, o, timeout)?;
    let subject = format!("{image}@{digest}");
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let status = verdict.status.as_str();
    let signer = verdict.signer.clone().unwrap_or_default();
    if verdict.status == Status::Verified {
        tracing::info!(
            primitive = "cosign_soft_verify", image, digest, status, signer = %signer, source = verdict.source,
            signatures = verdict.signatures, requests, elapsed_ms, "{subject}: signature verified ({signer})"
        );
    } else {
        tracing::warn!(
            primitive = "cosign_soft_verify", image, digest, status, reason = %verdict.reason, source = verdict.source,
            signatures = verdict.signatures, requests, elapsed_ms, "{subject}: signature {status}: {}", verdict.reason
        );
    }
    if strict && verdict.status != Status::Verified {
        return Err(PrimError::fatal(format!(
            "cosign_soft_verify: {subject}: signature {status} (strict: true): {}",
            verdict.reason
        ))
        .into());
    }
    Ok(result_map(image, digest, verdict, requests))
}

/// The map a playbook reads; the reason is redacted (it may quote a
/// registry's answer).
fn result_map(image: &str, digest: &str, verdict: Verdict, requests: u64) -> Map {
    let mut m = Map::new();
    m.insert(
        "status".into(),
        Dynamic::from(verdict.status.as_str().to_string()),
    );
    m.insert("digest".into(), Dynamic::from(digest.to_string()));
    m.insert("image".into(), Dynamic::from(image.to_string()));
    m.insert(
        "reason".into(),
        Dynamic::from(crate::redact::redact(&verdict.reason).into_owned()),
    );
    m.insert(
        "signatures".into(),
        Dynamic::from(verdict.signatures as i64),
    );
    m.insert("source".into(), Dynamic::from(verdict.source.to_string()));
    m.insert(
        "signer".into(),
        verdict.signer.map_or(Dynamic::UNIT, Dynamic::from),
    );
    m.insert("requests".into(), Dynamic::from(requests as i64));
    m
}

#[rustfmt::skip]
static SPEC: Spec = Spec {
    name: "cosign_soft_verify",
    params: &["image: String", "digest: String"],
    returns: "Map",
    doc: include_str!("docs/cosign_soft_verify.md"),
    opts: &[
        Opt { key: "key", ty: "string", default: "", help: "path of a PEM public key (e.g. cosign.pub)" },
        Opt { key: "identity", ty: "string", default: "", help: "keyless: the certificate's SAN (an email or a URI); needs `issuer`" },
        Opt { key: "issuer", ty: "string", default: "", help: "keyless: the certificate's OIDC issuer; the chain to Fulcio's root and the Rekor log are not checked" },
        Opt { key: "strict", ty: "bool", default: "false", help: "throw on anything but verified" },
        Opt { key: "timeout", ty: "duration", default: "60s", help: "bound on the whole check" },
    ],
};

/// Register `cosign_soft_verify` (its options are required: `key`, or
/// `identity` and `issuer`).
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    SPEC.register2_opts(
        engine,
        move |image: ImmutableString, digest: ImmutableString, o: &Opts| {
            soft_verify(&c, &image, &digest, o)
        },
    );
}
