//! Keyless `cosign_soft_verify` end to end: real public-good signatures
//! (a 2026 Sigstore bundle v0.3 through the referrers tag, a 2021 cosign
//! `.sig` with its Rekor bundle annotation) and forgeries pushed to a real
//! registry on 127.0.0.1, checked offline against the embedded trust root
//! or one given by option or environment.

use crate::support;

use support::cosign::key_from;
use support::registry::{cosign_data, Registry};
use support::{pb, Output, Project};

const KW_DIGEST: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const KW_ID: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const KW_WORKFLOW: &str =
    "kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const KW_SHA: &str = "2a6b879b7a5ef59d7fb348d0b5d14314538ac0a6";
const FLAVIO_DIGEST: &str =
    "sha256:5f481572d088dc4023afb35fced9530ced3d9b03bf7299c6f492163cb9f0452e";
const FORGED_DIGEST: &str =
    "sha256:abababababababababababababababababababababababababababababababab";
const GH: &str = "https://token.actions.githubusercontent.com";
const SELF_SIGNED_SAN: &str =
    "https://github.com/mconstant/pay2slay/.github/workflows/build-api.yml@refs/heads/main";

fn events(out: &Output) -> Vec<serde_json::Value> {
    out.all()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["primitive"] == "cosign_soft_verify")
        .collect()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(cosign_data(rel)).unwrap()
}

/// The embedded trust root, edited, as JSON text.
fn trust_root_with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/oci/sigstore/trusted_root.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    v.to_string()
}

/// A registry holding the real signatures and the self-signed forgery.
fn signed_registry() -> Registry {
    let reg = Registry::open();
    reg.cosign_v3_push_bundle(
        "owner/app",
        KW_DIGEST,
        read("bundle-format/sigstore-rs-0.15.0_tests_data_bundle_v03.json").as_bytes(),
    );
    reg.cosign_push_signature(
        "owner/app",
        FLAVIO_DIGEST,
        read("sigstore-rs-0.15.0-keyless/payload.json").as_bytes(),
        read("sigstore-rs-0.15.0-keyless/signature.b64").trim(),
        &read("sigstore-rs-0.15.0-keyless/cert.pem"),
        Some(&read("sigstore-rs-0.15.0-keyless/rekor-bundle.json")),
    );
    // A forger's certificate: self-signed, with the right SAN, both issuer
    // extensions and code signing; the signature made here with its key.
    reg.cosign_sign(
        "owner/app",
        FORGED_DIGEST,
        FORGED_DIGEST,
        &key_from(&cosign_data("generated/TEST-ONLY-keyless-signer.key")),
        Some(&read("generated/keyless-signer-cert.pem")),
    );
    reg
}

fn script(img: &str, calls: &[(&str, &str, String)]) -> Project {
    let mut src = String::from(
        "fn show(name, r) { print(`${name}=${r.status} step=${r.step} signer=${r.signer} reason=${r.reason}`); }\n",
    );
    for (name, digest, opts) in calls {
        src.push_str(&format!(
            "show(\"{name}\", cosign_soft_verify(\"{img}\", \"{digest}\", {opts}));\n"
        ));
    }
    pb(&src)
}

#[test]
fn real_keyless_signatures_verify_offline_and_forgeries_name_the_step() {
    let reg = signed_registry();
    let img = reg.image("owner/app");
    let p = script(
        &img,
        &[
            (
                "bundle",
                KW_DIGEST,
                format!(r#"#{{ identity: "{KW_ID}", issuer: "{GH}" }}"#),
            ),
            (
                "workflow",
                KW_DIGEST,
                format!(
                    r#"#{{ github_workflow: "{KW_WORKFLOW}", github_sha: "{KW_SHA}", github_ref: "refs/tags/v1.34.0", github_repository: "kubewarden/kubewarden-controller" }}"#
                ),
            ),
            (
                "regexp",
                KW_DIGEST,
                format!(
                    r#"#{{ identity_regexp: "https://github\\.com/kubewarden/.*", issuer: "{GH}" }}"#
                ),
            ),
            (
                "othersha",
                KW_DIGEST,
                format!(
                    r#"#{{ github_workflow: "{KW_WORKFLOW}", github_sha: "{}" }}"#,
                    "0".repeat(40)
                ),
            ),
            (
                "otherid",
                KW_DIGEST,
                r#"#{ github_workflow: "evil/fork/.github/workflows/release.yml@refs/heads/main" }"#.to_string(),
            ),
            (
                "classic2021",
                FLAVIO_DIGEST,
                r#"#{ identity: "flavio@castelli.me", issuer: "https://github.com/login/oauth" }"#
                    .to_string(),
            ),
            (
                "selfsigned",
                FORGED_DIGEST,
                format!(r#"#{{ identity: "{SELF_SIGNED_SAN}", issuer: "{GH}" }}"#),
            ),
            // A genuine chain, then each part of the identity wrong on
            // its own: the identity step, not the chain, must refuse.
            (
                "wrongissuer",
                KW_DIGEST,
                format!(r#"#{{ identity: "{KW_ID}", issuer: "https://accounts.google.com" }}"#),
            ),
            (
                "wrongid",
                KW_DIGEST,
                format!(
                    r#"#{{ identity: "https://github.com/evil/fork/.github/workflows/release.yml@refs/tags/v1.34.0", issuer: "{GH}" }}"#
                ),
            ),
            (
                "wrongregexp",
                KW_DIGEST,
                format!(r#"#{{ identity_regexp: "^https://github\\.com/evil/", issuer: "{GH}" }}"#),
            ),
            (
                "otherref",
                KW_DIGEST,
                format!(r#"#{{ github_workflow: "{KW_WORKFLOW}", github_ref: "refs/heads/main" }}"#),
            ),
            (
                "otherrepo",
                KW_DIGEST,
                format!(r#"#{{ github_workflow: "{KW_WORKFLOW}", github_repository: "evil/fork" }}"#),
            ),
        ],
    );
    let out = p.run(&["pb.rhai", "--log-format", "json"]);
    out.code(0)
        .has(&format!("bundle=verified step= signer={KW_ID} reason=\n"))
        .has(&format!("workflow=verified step= signer={KW_ID} reason=\n"))
        .has(&format!("regexp=verified step= signer={KW_ID} reason=\n"))
        .has(&format!("othersha=invalid step=identity signer= reason=identity: the certificate's GitHub workflow commit SHA is {KW_SHA}, not {}\n", "0".repeat(40)))
        .has("otherid=invalid step=identity signer= reason=identity: the certificate's identity is https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0, not https://github.com/evil/fork/.github/workflows/release.yml@refs/heads/main\n")
        .has("classic2021=invalid step=chain signer= reason=chain: the certificate has no embedded SCT (extension 1.3.6.1.4.1.11129.2.4.2), so no CT log of the trust root (embedded) vouches that it was logged\n")
        .has("selfsigned=invalid step=chain signer= reason=chain: the certificate is self-signed (issuer 'O=runbook-test-fulcio'), not issued by a Fulcio CA of the trust root (embedded)\n");
    let kw = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
    out.has(&format!("wrongissuer=invalid step=identity signer= reason=identity: the certificate's issuer is {GH}, not https://accounts.google.com\n"))
        .has(&format!("wrongid=invalid step=identity signer= reason=identity: the certificate's identity is {kw}, not https://github.com/evil/fork/.github/workflows/release.yml@refs/tags/v1.34.0\n"))
        .has(&format!("wrongregexp=invalid step=identity signer= reason=identity: the certificate's identity is {kw}, not an identity matching ^(?:^https://github\\.com/evil/)$\n"))
        .has("otherref=invalid step=identity signer= reason=identity: the certificate's GitHub workflow ref is refs/tags/v1.34.0, not refs/heads/main\n")
        .has("otherrepo=invalid step=identity signer= reason=identity: the certificate's GitHub workflow repository is kubewarden/kubewarden-controller, not evil/fork\n");
    let ev = events(&out);
    assert_eq!(ev.len(), 12);
    // Offline: the bundle's check is registry reads only (.sig tag 404,
    // referrers API 404, index tag, bundle manifest, bundle blob).
    assert_eq!(ev[0]["requests"], 5, "{}", ev[0]);
    assert_eq!(ev[6]["step"], "chain", "{}", ev[6]);
}

#[test]
fn the_trust_root_comes_from_the_option_or_the_environment() {
    let reg = signed_registry();
    let img = reg.image("owner/app");
    let ended = trust_root_with(|v| {
        v["certificateAuthorities"][1]["validFor"]["end"] = "2025-01-01T00:00:00Z".into()
    });
    // The CT log's key ended before the certificate's SCT was signed.
    let ct_ended = trust_root_with(|v| {
        v["ctlogs"][1]["publicKey"]["validFor"]["end"] = "2026-01-01T00:00:00Z".into()
    });
    let opts = |extra: &str| format!(r#"#{{ identity: "{KW_ID}", issuer: "{GH}"{extra} }}"#);
    let mut p = script(
        &img,
        &[
            ("ended", KW_DIGEST, opts(r#", trusted_root: "ended.json""#)),
            (
                "ctended",
                KW_DIGEST,
                opts(r#", trusted_root: "ct-ended.json""#),
            ),
            ("env", KW_DIGEST, opts("")),
            (
                "missing",
                KW_DIGEST,
                opts(r#", trusted_root: "missing.json""#),
            ),
        ],
    );
    p.file("ended.json", &ended)
        .file("ct-ended.json", &ct_ended)
        .file("broken.json", "{}");
    p.env("SIGSTORE_TRUSTED_ROOT", "broken.json");
    p.run(&["pb.rhai"])
        .code(0)
        .has("ended=invalid step=chain signer= reason=chain: the CA https://fulcio.sigstore.dev is trusted from 2022-04-13T20:06:15Z to 2025-01-01T00:00:00Z by the trust root, not at the signing time 2026-04-09T07:23:29Z\n")
        .has("ctended=invalid step=chain signer= reason=chain: no embedded SCT of the certificate verifies with a CT log of the trust root: SCT 0: the key of https://ctfe.sigstore.dev/2022 is trusted 2022-10-20T00:00:00Z to 2026-01-01T00:00:00Z, not at the SCT's time 2026-04-09T07:23:29Z\n")
        .has("env=error step= signer= reason=the trust root 'broken.json' is not a Sigstore trusted root")
        .has("missing=error step= signer= reason=cannot read the trust root '");
}

#[test]
fn strict_fails_the_run_on_a_forgery_naming_the_step() {
    let reg = signed_registry();
    let img = reg.image("owner/app");
    let p = pb(&format!(
        r#"
let ok = cosign_soft_verify("{img}", "{KW_DIGEST}", #{{ github_workflow: "{KW_WORKFLOW}", strict: true }});
print(`strict-real=${{ok.status}}`);
cosign_soft_verify("{img}", "{FORGED_DIGEST}", #{{ identity: "{SELF_SIGNED_SAN}", issuer: "{GH}", strict: true }});
print("not reached");
"#
    ));
    p.run(&["pb.rhai"])
        .code(1)
        .has("strict-real=verified")
        .has(&format!("cosign_soft_verify: {img}@{FORGED_DIGEST}: signature invalid (strict: true): chain: the certificate is self-signed"))
        .lacks("not reached");
}

#[test]
fn bad_keyless_options_are_errors_that_say_which() {
    let reg = signed_registry();
    let img = reg.image("owner/app");
    let p = script(
        &img,
        &[
            (
                "both",
                KW_DIGEST,
                format!(r#"#{{ identity: "{KW_ID}", github_workflow: "{KW_WORKFLOW}" }}"#),
            ),
            (
                "noissuer",
                KW_DIGEST,
                r#"#{ identity_regexp: ".*" }"#.to_string(),
            ),
            (
                "badre",
                KW_DIGEST,
                format!(r#"#{{ identity_regexp: "(", issuer: "{GH}" }}"#),
            ),
            (
                "badwf",
                KW_DIGEST,
                r#"#{ github_workflow: "owner/repo" }"#.to_string(),
            ),
            (
                "shaonly",
                KW_DIGEST,
                format!(r#"#{{ github_sha: "{KW_SHA}" }}"#),
            ),
        ],
    );
    p.run(&["pb.rhai"])
        .code(0)
        .has("both=error step= signer= reason=give one of `identity`, `identity_regexp` and `github_workflow`")
        .has("noissuer=error step= signer= reason=`identity` needs `issuer` too")
        .has("badre=error step= signer= reason=`identity_regexp` is not a regular expression")
        .has("badwf=error step= signer= reason=`github_workflow` is OWNER/REPO/.github/workflows/FILE@REF")
        .has("shaonly=error step= signer= reason=`github_repository`, `github_ref` and `github_sha` need `github_workflow`");
}
