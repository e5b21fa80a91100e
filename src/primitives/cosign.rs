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
use crate::oci::cosign::{load_key_pem, Keyless, Policy, Status, Verdict};
use crate::oci::cosign_cert::{Identity, San};
use crate::oci::cosign_find::find_and_verify;
use crate::oci::reference::validate_digest;
use crate::oci::sigstore::trust_root;
use crate::oci::{Client, ImageRef};
use crate::opts::Opts;

/// The policy the options give: a key file, and/or a keyless identity
/// (`identity` or `identity_regexp` with `issuer`, or `github_workflow`)
/// checked against the trust root. Its errors become status `error`, not a
/// throw.
fn policy_from(ctx: &Ctx, o: &Opts) -> Result<Policy, PrimError> {
    let opt = |k: &str| o.str(k).map_err(|e| PrimError::usage(e.to_string()));
    let mut policy = Policy::default();
    if let Some(path) = opt("key")? {
        let text =
            crate::fsread::read_text(&ctx.path(&path), crate::fsread::FILE_CAP).map_err(|e| {
                PrimError::usage(format!("cannot read the public key file '{path}': {e}"))
            })?;
        policy.key = Some(
            load_key_pem(&text)
                .map_err(|e| e.map_msg(|m| format!("the key file '{path}' is {m}")))?,
        );
    }
    policy.keyless = match identity_from(o)? {
        None => None,
        Some(identity) => {
            let file = opt("trusted_root")?.map(|p| ctx.path(&p));
            let trust = trust_root::load(file.as_deref()).map_err(PrimError::usage)?;
            Some(Keyless { identity, trust })
        }
    };
    if policy.key.is_none() && policy.keyless.is_none() {
        return Err(PrimError::usage("nothing to verify against: give `key` (a PEM public key path), or `identity` and `issuer` (or `github_workflow`)"));
    }
    Ok(policy)
}

/// The keyless identity the options ask for, if any.
fn identity_from(o: &Opts) -> Result<Option<Identity>, PrimError> {
    let opt = |k: &str| o.str(k).map_err(|e| PrimError::usage(e.to_string()));
    let (identity, regexp, workflow) = (
        opt("identity")?,
        opt("identity_regexp")?,
        opt("github_workflow")?,
    );
    let issuer = opt("issuer")?;
    let github = [
        opt("github_repository")?,
        opt("github_ref")?,
        opt("github_sha")?,
    ];
    let given = [&identity, &regexp, &workflow]
        .iter()
        .filter(|x| x.is_some())
        .count();
    if given > 1 {
        return Err(PrimError::usage(
            "give one of `identity`, `identity_regexp` and `github_workflow`",
        ));
    }
    let san = match (identity, regexp) {
        (Some(s), _) => Some(San::Exact(s)),
        (_, Some(re)) => Some(San::regexp(&re).map_err(PrimError::usage)?),
        (None, None) => None,
    };
    let mut id = if let Some(w) = workflow {
        let mut id = Identity::github_workflow(&w).map_err(PrimError::usage)?;
        if let Some(i) = issuer {
            id.issuer = i;
        }
        id
    } else if let Some(san) = san {
        let issuer = issuer.ok_or_else(|| {
            PrimError::usage(
                "`identity` needs `issuer` too (e.g. https://token.actions.githubusercontent.com)",
            )
        })?;
        Identity::new(san, issuer)
    } else if issuer.is_some() {
        return Err(PrimError::usage(
            "`issuer` needs `identity` too (the certificate's SAN: an email or a URI)",
        ));
    } else if github.iter().any(Option::is_some) {
        return Err(PrimError::usage("`github_repository`, `github_ref` and `github_sha` need `github_workflow` (or `identity` and `issuer`)"));
    } else {
        return Ok(None);
    };
    let [repository, git_ref, sha] = github;
    id.github_repository = repository;
    id.github_ref = git_ref;
    id.github_sha = sha;
    Ok(Some(id))
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
        let step = verdict.step.map_or("", |s| s.as_str());
        tracing::warn!(
            primitive = "cosign_soft_verify", image, digest, status, step, reason = %verdict.reason, source = verdict.source,
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
    m.insert(
        "step".into(),
        verdict
            .step
            .map_or(Dynamic::UNIT, |s| Dynamic::from(s.as_str().to_string())),
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
        Opt { key: "identity", ty: "string", default: "", help: "keyless: the certificate's SAN, exactly (an email or a URI); needs `issuer`" },
        Opt { key: "identity_regexp", ty: "string", default: "", help: "keyless: a regular expression the whole SAN must match; needs `issuer`" },
        Opt { key: "issuer", ty: "string", default: "", help: "keyless: the certificate's OIDC issuer, exactly" },
        Opt { key: "github_workflow", ty: "string", default: "", help: "keyless: OWNER/REPO/.github/workflows/FILE@REF; SAN https://github.com/… and GitHub's issuer" },
        Opt { key: "github_repository", ty: "string", default: "", help: "keyless: the certificate's GitHub repository OWNER/REPO (extension .1.5 or .1.12)" },
        Opt { key: "github_ref", ty: "string", default: "", help: "keyless: the certificate's GitHub ref, e.g. refs/heads/main (extension .1.6 or .1.14)" },
        Opt { key: "github_sha", ty: "string", default: "", help: "keyless: the certificate's GitHub commit SHA (extension .1.3 or .1.13)" },
        Opt { key: "trusted_root", ty: "string", default: "", help: "keyless: a Sigstore trusted_root.json to use instead of the embedded public-good one (or SIGSTORE_TRUSTED_ROOT)" },
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
