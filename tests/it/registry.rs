//! Registry and supply-chain primitives, end to end through the binary:
//! `ghcr_has_tag`, `ghcr_has_tags`, `image_digest` and `cosign_soft_verify`
//! against a real CNCF distribution registry (Debian `docker-registry`) on
//! 127.0.0.1 — open, behind a Bearer-token issuer of the harness, and behind
//! htpasswd — and against a fault-injecting server for 429, 5xx, resets and
//! silence.

use crate::support;

use std::time::{Duration, Instant};

use support::cosign::{key_from, new_key};
use support::faults::{Fault, FaultServer, FAULT_DIGEST};
use support::issuer::IssuerMode;
use support::registry::{cosign_data, Registry, BASIC_PASS, BASIC_USER};
use support::{pb, Output, Project, CANARY};

/// The structured events a primitive logged (`--log-format json`).
fn events(out: &Output, primitive: &str) -> Vec<serde_json::Value> {
    out.all()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["primitive"] == primitive)
        .collect()
}

fn run_json(p: &Project) -> Output {
    p.run(&["pb.rhai", "--log-format", "json"])
}

// ---------------------------------------------------------------------------
// Open registry

#[test]
fn present_absent_and_oci_manifests_on_an_open_registry() {
    let reg = Registry::open();
    let oci = reg.push_image("owner/app", "v1", "a", true);
    let docker = reg.push_image("owner/app", "v2", "b", false);
    let img = reg.image("owner/app");
    let p = pb(&format!(
        r#"
let img = "{img}";
print(`v1=${{ghcr_has_tag(img, "v1")}}`);
print(`v2=${{ghcr_has_tag(img, "v2")}}`);
print(`nope=${{ghcr_has_tag(img, "nope")}}`);
print(`norepo=${{ghcr_has_tag("{host}/owner/never-pushed", "v1")}}`);
print(`digest1=${{image_digest(img, "v1")}}`);
print(`digest2=${{image_digest(img, "v2", #{{ timeout: 5 }})}}`);
print(`by-digest=${{ghcr_has_tag(img, "{oci}")}}`);
let all = ghcr_has_tags(img, ["v1", "v2", "nope", "v1"]);
print(`batch=${{all.v1}},${{all.v2}},${{all.nope}},${{all.len()}}`);
"#,
        host = reg.host()
    ));
    let out = run_json(&p);
    out.code(0)
        // The OCI manifest is found: every manifest type is in Accept.
        .has("v1=true")
        .has("v2=true")
        .has("nope=false")
        .has("norepo=false")
        .has(&format!("digest1={oci}"))
        .has(&format!("digest2={docker}"))
        .has("by-digest=true")
        .has("batch=true,true,false,3");
    // One request per check on an open registry, and one event per call.
    for e in events(&out, "ghcr_has_tag") {
        assert_eq!(e["requests"], 1, "{e}");
        assert_eq!(e["token_requests"], 0, "{e}");
    }
    let batch = events(&out, "ghcr_has_tags");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0]["requests"], 3, "{}", batch[0]);
    assert_eq!(batch[0]["present"], 2);

    let p = pb(&format!(r#"image_digest("{img}", "gone");"#));
    p.run(&["pb.rhai"])
        .code(1)
        .has(&format!("image_digest: {img}:gone: no such tag"));
}

#[test]
fn bad_images_and_tags_are_refused_before_any_request() {
    let cases = [
        (
            r#"ghcr_has_tag("ghcr.io/owner/app", "bad tag")"#,
            "the tag 'bad tag' has the character ' '",
        ),
        (
            r#"ghcr_has_tag("ghcr.io/owner/app", ".x")"#,
            "starts with '.'",
        ),
        (
            r#"ghcr_has_tag("ghcr.io/owner/app:v1", "v1")"#,
            "carries a tag",
        ),
        (r#"ghcr_has_tag("ghcr.io/Owner/app", "v1")"#, "lowercase"),
        (
            r#"ghcr_has_tags("owner/app", ["ok", "no/slash"])"#,
            "the tag 'no/slash'",
        ),
        (
            r#"image_digest("https://ghcr.io/owner/app", "v1")"#,
            "URL scheme",
        ),
        (
            r#"ghcr_has_tag("owner/app", "v1", #{ timout: 3 })"#,
            "did you mean 'timeout'",
        ),
        (
            r#"ghcr_has_tags("owner/app", ["v1"], #{ concurrency: 0 })"#,
            "'concurrency' must be 1-64",
        ),
    ];
    for (call, want) in cases {
        let p = pb(&format!("{call};"));
        p.run(&["pb.rhai"]).code(1).has(want);
    }
}

// ---------------------------------------------------------------------------
// Bearer-token registry

#[test]
fn one_token_per_repository_for_a_batch_of_20() {
    let reg = Registry::with_tokens();
    let issuer = reg.issuer.as_ref().unwrap();
    let mut tags = Vec::new();
    for i in 0..10 {
        reg.push_image("owner/app", &format!("t{i}"), "x", true);
        tags.push(format!("\"t{i}\""));
        tags.push(format!("\"missing{i}\""));
    }
    reg.push_image("owner/other", "v1", "y", true);
    issuer.reset();
    let img = reg.image("owner/app");
    let p = pb(&format!(
        r#"
let seen = ghcr_has_tags("{img}", [{tags}]);
let present = 0;
for t in seen.keys() {{ if seen[t] {{ present += 1; }} }}
print(`present=${{present}} of ${{seen.len()}}`);
print(`again=${{ghcr_has_tag("{img}", "t3")}}`);
print(`digest=${{image_digest("{img}", "t4")}}`);
print(`other=${{ghcr_has_tags("{other}", ["v1", "v2"])}}`);
"#,
        tags = tags.join(", "),
        other = reg.image("owner/other")
    ));
    let out = run_json(&p);
    out.code(0)
        .has("present=10 of 20")
        .has("again=true")
        .has("digest=sha256:");
    assert_eq!(
        issuer.requests(),
        vec![
            "repository:owner/app:pull".to_string(),
            "repository:owner/other:pull".to_string()
        ],
        "exactly one token request per repository"
    );
    let batch = &events(&out, "ghcr_has_tags")[0];
    // 20 HEADs plus the one anonymous probe that learned the challenge.
    assert_eq!(batch["requests"], 21, "{batch}");
    assert_eq!(batch["token_requests"], 1, "{batch}");
    let again = &events(&out, "ghcr_has_tag")[0];
    assert_eq!(again["requests"], 1, "{again}");
    assert_eq!(again["token_requests"], 0, "{again}");
    // The second repository on the same registry skips the probe.
    let other = &events(&out, "ghcr_has_tags")[1];
    assert_eq!(other["requests"], 2, "{other}");
}

#[test]
fn a_token_for_another_repository_is_a_clear_error() {
    let reg = Registry::with_tokens();
    reg.push_image("owner/app", "v1", "x", true);
    let issuer = reg.issuer.as_ref().unwrap();
    issuer.set_mode(IssuerMode {
        grant_other_repo: Some("owner/other".into()),
        ..IssuerMode::default()
    });
    let p = pb(&format!(
        r#"print(ghcr_has_tag("{}", "v1"));"#,
        reg.image("owner/app")
    ));
    p.run(&["pb.rhai"])
        .code(1)
        .has("could not tell whether the tag exists")
        .has("the registry refused access (401 Unauthorized, insufficient_scope)")
        .has("a token obtained with no credentials (anonymous)")
        .has("the scope repository:owner/app:pull is missing")
        .has("set GHCR_TOKEN");
}

#[test]
fn credentials_go_to_the_token_endpoint_and_never_to_output() {
    let reg = Registry::with_tokens();
    reg.push_image("owner/private", "v1", "x", true);
    let issuer = reg.issuer.as_ref().unwrap();
    issuer.set_mode(IssuerMode {
        basic: Some(("x-access-token".into(), CANARY.into())),
        ..IssuerMode::default()
    });
    let img = reg.image("owner/private");
    let basic_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{CANARY}"))
    };

    // Anonymous: the token endpoint refuses.
    let p = pb(&format!(r#"print(ghcr_has_tag("{img}", "v1"));"#));
    p.run(&["pb.rhai"])
        .code(1)
        .has("refused no credentials (anonymous)");

    // A GitHub token is for ghcr.io only: this registry's token endpoint
    // never sees it (the request is anonymous, and refused).
    let mut p = pb(&format!(r#"print(ghcr_has_tag("{img}", "v1"));"#));
    p.env("GHCR_TOKEN", CANARY).env("GITHUB_TOKEN", CANARY);
    p.run(&["pb.rhai"])
        .code(1)
        .has("refused no credentials (anonymous)")
        .lacks(CANARY);

    // The right credential, as an auths entry for this registry's host in
    // REGISTRY_AUTH_FILE (what `podman login` writes): works, appears nowhere.
    let mut p = pb(&format!(
        r#"print(`has=${{ghcr_has_tag("{img}", "v1")}}`); print(`d=${{image_digest("{img}", "v1")}}`);"#
    ));
    p.file(
        "auth.json",
        &serde_json::json!({"auths": {reg.host(): {"auth": basic_b64}}}).to_string(),
    );
    let auth_file = p.path().join("auth.json");
    p.env("REGISTRY_AUTH_FILE", auth_file.to_str().unwrap());
    for fmt in ["json", "pretty"] {
        p.run(&["pb.rhai", "--log-format", fmt])
            .code(0)
            .has("has=true")
            .lacks(CANARY)
            .lacks(&basic_b64);
    }
    // Under GitHub Actions the values are only ever handed to the runner's mask.
    let out = p.run(&["pb.rhai", "--log-format", "github"]);
    out.code(0)
        .has("has=true")
        .has(&format!("::add-mask::{basic_b64}"));
    for line in out
        .all()
        .lines()
        .filter(|l| l.contains(CANARY) || l.contains(&basic_b64))
    {
        assert!(
            line.starts_with("::add-mask::"),
            "secret outside a mask command: {line}"
        );
    }

    // A wrong password, in a Docker config.json: a clear error naming where
    // the credential came from, never its value.
    let wrong = format!("{CANARY}-wrong");
    let mut p = pb(&format!(r#"print(ghcr_has_tag("{img}", "v1"));"#));
    let wrong_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{wrong}"))
    };
    p.file(
        "docker/config.json",
        &serde_json::json!({"auths": {format!("http://{}", reg.host()): {"auth": wrong_b64}}})
            .to_string(),
    );
    let docker_config = p.path().join("docker");
    p.env("DOCKER_CONFIG", docker_config.to_str().unwrap());
    p.run(&["pb.rhai"])
        .code(1)
        .has("the token endpoint http://127.0.0.1:")
        .has(&format!(
            "refused user 'x-access-token' from the auths entry for {} in",
            reg.host()
        ))
        .has("(401 Unauthorized)")
        .has("check the credential is valid")
        .lacks(CANARY);
}

#[test]
fn basic_auth_registries_use_credentials_bound_to_their_host() {
    let reg = Registry::with_basic();
    reg.push_image("team/app", "v1", "x", true);
    let src = format!(
        r#"print(`has=${{ghcr_has_tag("{}", "v1")}}`);"#,
        reg.image("team/app")
    );
    pb(&src)
        .run(&["pb.rhai"])
        .code(1)
        .has("wants HTTP Basic credentials")
        .has("REGISTRY_USERNAME and REGISTRY_PASSWORD");
    // Without REGISTRY_HOST the pair goes nowhere, and a warning says so.
    let mut p = pb(&src);
    p.env("REGISTRY_USERNAME", BASIC_USER)
        .env("REGISTRY_PASSWORD", BASIC_PASS);
    p.run(&["pb.rhai"])
        .code(1)
        .has("set without REGISTRY_HOST")
        .has("wants HTTP Basic credentials")
        .lacks(BASIC_PASS);
    // Bound to another host: not sent here either.
    p.env("REGISTRY_HOST", "registry.example.com");
    p.run(&["pb.rhai"])
        .code(1)
        .has("wants HTTP Basic credentials");
    p.env("REGISTRY_HOST", &reg.host());
    p.run(&["pb.rhai"])
        .code(0)
        .has("has=true")
        .lacks(BASIC_PASS);
    let mut p = pb(&src);
    p.env("REGISTRY_USERNAME", BASIC_USER)
        .env("REGISTRY_PASSWORD", "not-the-password")
        .env("REGISTRY_HOST", &reg.host());
    p.run(&["pb.rhai"])
        .code(1)
        .has("the registry refused access (401 Unauthorized")
        .has("REGISTRY_USERNAME 'runbook-user'")
        .lacks("not-the-password");
}

// ---------------------------------------------------------------------------
// cosign

#[test]
fn cosign_verdicts_on_a_token_registry() {
    let reg = Registry::with_tokens();
    let (key, key_pem) = new_key();
    let (_, wrong_pem) = new_key();
    let signed = reg.push_image("owner/app", "signed", "s", true);
    let unsigned = reg.push_image("owner/app", "unsigned", "u", true);
    let other = reg.push_image("owner/app", "other", "o", true);
    reg.cosign_sign("owner/app", &signed, &signed, &key, None);
    // A signature manifest for `other` whose payload names another digest.
    reg.cosign_sign("owner/app", &other, &signed, &key, None);
    // Keyless: a Fulcio-shaped certificate with identity and issuer.
    let keyless = reg.push_image("owner/app", "keyless", "k", true);
    let cert = std::fs::read_to_string(cosign_data("generated/keyless-signer-cert.pem")).unwrap();
    reg.cosign_sign(
        "owner/app",
        &keyless,
        &keyless,
        &key_from(&cosign_data("generated/TEST-ONLY-keyless-signer.key")),
        Some(&cert),
    );
    let issuer = reg.issuer.as_ref().unwrap();
    issuer.reset();

    let img = reg.image("owner/app");
    let identity =
        "https://github.com/mconstant/pay2slay/.github/workflows/build-api.yml@refs/heads/main";
    let p = pb(&format!(
        r#"
let img = "{img}";
fn show(name, r) {{ print(`${{name}}=${{r.status}} sigs=${{r.signatures}} source=${{r.source}} reason=${{r.reason}}`); }}
show("signed", cosign_soft_verify(img, "{signed}", #{{ key: "cosign.pub" }}));
show("wrongkey", cosign_soft_verify(img, "{signed}", #{{ key: "wrong.pub" }}));
show("unsigned", cosign_soft_verify(img, "{unsigned}", #{{ key: "cosign.pub" }}));
show("otherdigest", cosign_soft_verify(img, "{other}", #{{ key: "cosign.pub" }}));
show("keyless", cosign_soft_verify(img, "{keyless}", #{{ identity: "{identity}", issuer: "https://token.actions.githubusercontent.com" }}));
show("keyless-wrong-id", cosign_soft_verify(img, "{keyless}", #{{ identity: "someone@example.com", issuer: "https://token.actions.githubusercontent.com" }}));
show("keyless-wrong-iss", cosign_soft_verify(img, "{keyless}", #{{ identity: "{identity}", issuer: "https://accounts.google.com" }}));
show("nokeyfile", cosign_soft_verify(img, "{signed}", #{{ key: "missing.pub" }}));
show("nothing", cosign_soft_verify(img, "{signed}", #{{}}));
show("baddigest", cosign_soft_verify(img, "sha256:abc", #{{ key: "cosign.pub" }}));
"#
    ));
    p.file("cosign.pub", &key_pem).file("wrong.pub", &wrong_pem);
    let out = run_json(&p);
    out.code(0)
        .has("signed=verified sigs=1 source=sig-tag")
        .has("wrongkey=invalid sigs=1 source=sig-tag reason=signature: the signature does not verify with the given key")
        .has("unsigned=unsigned sigs=0 source=none reason=no signature: no tag sha256-")
        .has(&format!("otherdigest=invalid sigs=1 source=sig-tag reason=digest: the signed payload is for {signed}, not {other}"))
        // A self-signed certificate with the right SAN and issuer is no
        // Fulcio certificate: refused at the chain, whatever identity is asked.
        .has("keyless=invalid sigs=1 source=sig-tag reason=chain: the certificate is self-signed")
        .has("keyless-wrong-id=invalid sigs=1 source=sig-tag reason=chain: the certificate is self-signed")
        .has("keyless-wrong-iss=invalid sigs=1 source=sig-tag reason=chain: the certificate is self-signed")
        .has("nokeyfile=error sigs=0 source=none reason=cannot read the public key file 'missing.pub'")
        .has("nothing=error sigs=0 source=none reason=nothing to verify against")
        .has("baddigest=error sigs=0 source=none reason='sha256:abc' is not a digest");
    // One token for the repository for the whole run; after it, a verified
    // check is the signature manifest and the payload blob.
    assert_eq!(
        issuer.requests(),
        vec!["repository:owner/app:pull".to_string()]
    );
    let ev = events(&out, "cosign_soft_verify");
    assert_eq!(ev.len(), 10, "one event per verification");
    assert_eq!(ev[0]["status"], "verified");
    assert_eq!(ev[0]["requests"], 3, "probe + manifest + blob: {}", ev[0]);
    assert_eq!(
        ev[1]["requests"], 2,
        "manifest + blob after the token: {}",
        ev[1]
    );
    // Unsigned on distribution 2.8: .sig tag, referrers API (404), referrers tag.
    assert_eq!(ev[2]["requests"], 3, "{}", ev[2]);
    assert_eq!(ev[2]["status"], "unsigned");
}

#[test]
fn sigstore_rs_signature_pushed_as_is_verifies() {
    // The lab signature made by sigstore-rs 0.15 (PrivateKeySigner +
    // push_signature), pushed byte for byte.
    let reg = Registry::open();
    let lab = |f: &str| {
        std::fs::read(cosign_data(&format!(
            "lab-generated-distribution-2.8.2/{f}"
        )))
        .unwrap()
    };
    reg.push_blob("owner/app", &lab("sig-payload.json"));
    reg.push_blob("owner/app", b"{}");
    let digest = "sha256:bcc94b61198df26d2e0de628be72a43f9c3270ce5e913d3616b21a9ba03d117d";
    assert_eq!(
        support::registry::digest(&lab("image-manifest.json")),
        digest
    );
    reg.push_manifest(
        "owner/app",
        "sha256-bcc94b61198df26d2e0de628be72a43f9c3270ce5e913d3616b21a9ba03d117d.sig",
        "application/vnd.oci.image.manifest.v1+json",
        &lab("sig-manifest.json"),
    );
    let p = pb(&format!(
        r#"
print(`good=${{cosign_soft_verify("{img}", "{digest}", #{{ key: "signer.pub" }}).status}}`);
print(`wrong=${{cosign_soft_verify("{img}", "{digest}", #{{ key: "wrong.pub" }}).status}}`);
"#,
        img = reg.image("owner/app")
    ));
    p.file(
        "signer.pub",
        &String::from_utf8(lab("test-signer.pub")).unwrap(),
    )
    .file(
        "wrong.pub",
        &String::from_utf8(lab("wrong-key.pub")).unwrap(),
    );
    p.run(&["pb.rhai"])
        .code(0)
        .has("good=verified")
        .has("wrong=invalid");
}

#[test]
fn cosign_v3_bundles_are_found_through_the_referrers_tag() {
    let reg = Registry::open();
    let (key, key_pem) = new_key();
    let (_, wrong_pem) = new_key();
    let good = reg.push_image("owner/app", "good", "g", true);
    let other = reg.push_image("owner/app", "other", "o", true);
    reg.cosign_v3_sign("owner/app", &good, &good, &key);
    reg.cosign_v3_sign("owner/app", &other, &good, &key);
    let img = reg.image("owner/app");
    let p = pb(&format!(
        r#"
fn show(name, r) {{ print(`${{name}}=${{r.status}} source=${{r.source}} reason=${{r.reason}}`); }}
show("good", cosign_soft_verify("{img}", "{good}", #{{ key: "cosign.pub" }}));
show("wrongkey", cosign_soft_verify("{img}", "{good}", #{{ key: "wrong.pub" }}));
show("other", cosign_soft_verify("{img}", "{other}", #{{ key: "cosign.pub" }}));
"#
    ));
    p.file("cosign.pub", &key_pem).file("wrong.pub", &wrong_pem);
    let out = run_json(&p);
    out.code(0)
        .has("good=verified source=referrers-tag")
        .has("wrongkey=invalid source=referrers-tag reason=signature: the signature does not verify with the given key")
        .has(&format!("other=invalid source=referrers-tag reason=digest: the bundle's statement is for {good}, not {other}"));
    // .sig tag (404), referrers API (404 on 2.8), index tag, bundle manifest, bundle blob.
    let ev = events(&out, "cosign_soft_verify");
    assert_eq!(ev[0]["requests"], 5, "{}", ev[0]);
}

#[test]
fn strict_makes_anything_but_verified_fail() {
    let reg = Registry::open();
    let (key, key_pem) = new_key();
    let signed = reg.push_image("owner/app", "signed", "s", true);
    let unsigned = reg.push_image("owner/app", "unsigned", "u", true);
    reg.cosign_sign("owner/app", &signed, &signed, &key, None);
    let img = reg.image("owner/app");
    let p = pb(&format!(
        r#"
let ok = cosign_soft_verify("{img}", "{signed}", #{{ key: "cosign.pub", strict: true }});
print(`strict-signed=${{ok.status}}`);
cosign_soft_verify("{img}", "{unsigned}", #{{ key: "cosign.pub", strict: true }});
print("not reached");
"#
    ));
    p.file("cosign.pub", &key_pem);
    p.run(&["pb.rhai"])
        .code(1)
        .has("strict-signed=verified")
        .has(&format!(
            "cosign_soft_verify: {img}@{unsigned}: signature unsigned (strict: true)"
        ))
        .lacks("not reached");
}

// ---------------------------------------------------------------------------
// Faults

fn fault_check(script: Vec<Fault>, call: &str) -> (FaultServer, Output) {
    let srv = FaultServer::start(script);
    let p = pb(&call.replace("IMG", &srv.image("owner/app")));
    let out = run_json(&p);
    (srv, out)
}

#[test]
fn retry_after_is_honoured_then_the_answer_counts() {
    let (srv, out) = fault_check(
        vec![
            Fault::Status(429, vec![("Retry-After".into(), "1".into())]),
            Fault::Present,
        ],
        r#"print(`has=${ghcr_has_tag("IMG", "v1")}`);"#,
    );
    out.code(0).has("has=true");
    assert_eq!(srv.hits(), 2);
    let seen = srv.seen();
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "waited only {gap:?} after Retry-After: 1"
    );
    assert_eq!(seen[1].method, "HEAD");
    let accept = &seen[1].headers["accept"];
    for t in [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ] {
        assert!(accept.contains(t), "Accept lacks {t}: {accept}");
    }
}

#[test]
fn server_errors_and_resets_are_retried() {
    let (srv, out) = fault_check(
        vec![Fault::Status(500, vec![]), Fault::Present],
        r#"print(`has=${ghcr_has_tag("IMG", "v1")}`);"#,
    );
    out.code(0).has("has=true");
    assert_eq!(srv.hits(), 2);

    let (srv, out) = fault_check(
        vec![Fault::Reset, Fault::Absent],
        r#"print(`has=${ghcr_has_tag("IMG", "v1")}`);"#,
    );
    out.code(0).has("has=false");
    assert_eq!(srv.hits(), 2);

    let (srv, out) = fault_check(
        vec![Fault::Status(502, vec![]), Fault::Reset, Fault::Present],
        r#"print(`d=${image_digest("IMG", "v1")}`);"#,
    );
    out.code(0).has(&format!("d={FAULT_DIGEST}"));
    assert_eq!(srv.hits(), 3);
}

#[test]
fn persistent_failures_are_errors_never_false() {
    let (srv, out) = fault_check(
        vec![Fault::Status(503, vec![])],
        r#"print(`has=${ghcr_has_tag("IMG", "v1")}`);"#,
    );
    out.code(1)
        .has("could not tell whether the tag exists")
        .has("the registry answered 503 Service Unavailable")
        .has("gave up after 5 attempts");
    assert!(!out.stdout.contains("has="), "{}", out.stdout);
    assert_eq!(srv.hits(), 5, "bounded: 1 try + 4 retries");

    let (_srv, out) = fault_check(
        vec![Fault::Reset],
        r#"print(ghcr_has_tags("IMG", ["a", "b", "c"]));"#,
    );
    out.code(1)
        .has("could not tell for 3 of 3 tags (a, b, c)")
        .has("gave up after 5 attempts");

    // A 403 is not retried and says what to do.
    let (srv, out) = fault_check(
        vec![Fault::Status(403, vec![])],
        r#"print(ghcr_has_tag("IMG", "v1"));"#,
    );
    out.code(1)
        .has("refused access (403 Forbidden)")
        .has("repository:owner/app:pull");
    assert_eq!(srv.hits(), 1);

    // The soft check turns the same failure into status "error" and goes on.
    let srv = FaultServer::start(vec![Fault::Status(500, vec![])]);
    let p = pb(&format!(
        r#"let r = cosign_soft_verify("{}", "{FAULT_DIGEST}", #{{ key: "k.pub" }}); print(`status=${{r.status}} reason=${{r.reason}}`);"#,
        srv.image("owner/app")
    ));
    p.file("k.pub", &new_key().1);
    p.run(&["pb.rhai"])
        .code(0)
        .has("status=error reason=GET http://127.0.0.1:")
        .has("the registry answered 500");
    assert_eq!(srv.hits(), 5);
}

#[test]
fn a_silent_registry_is_bounded_by_the_timeout_option() {
    let started = Instant::now();
    let (_srv, out) = fault_check(
        vec![Fault::Hang],
        r#"print(ghcr_has_tag("IMG", "v1", #{ timeout: "1500ms" }));"#,
    );
    out.code(1)
        .has("ghcr_has_tag: 127.0.0.1:")
        .has("no answer from the registry within 1.5s (the call's `timeout` option)");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );

    let (_srv, out) = fault_check(
        vec![Fault::Hang],
        r#"print(ghcr_has_tags("IMG", ["a", "b"], #{ timeout: 1 }));"#,
    );
    out.code(1).has("no answer from the registry within 1s");

    // Soft verification: status "error", the script goes on.
    let srv = FaultServer::start(vec![Fault::Hang]);
    let p = pb(&format!(
        r#"let r = cosign_soft_verify("{}", "{FAULT_DIGEST}", #{{ key: "k.pub", timeout: 1 }}); print(`status=${{r.status}} reason=${{r.reason}}`);"#,
        srv.image("owner/app")
    ));
    let (_, pem) = new_key();
    p.file("k.pub", &pem);
    let started = Instant::now();
    p.run(&["pb.rhai"])
        .code(0)
        .has("status=error reason=no answer from the registry within 1s");
    assert!(started.elapsed() < Duration::from_secs(8));
}
