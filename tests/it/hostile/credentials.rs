//! Credentials never leave their host: a redirect to another origin
//! (127.0.0.2) carries no credential header, and a registry's token
//! endpoint on another host gets no credential. Each recorder server logs
//! every header it receives; the assertions read that log.

use base64::Engine as _;

use crate::support::http::{Reply, Request, Stub};
use crate::support::pb;
use crate::support::CANARY;

/// Whether any request carried a credential header or the canary.
fn credentials_in(seen: &[Request]) -> Vec<String> {
    let mut found = Vec::new();
    for r in seen {
        if r.text().contains(CANARY) || r.target.contains(CANARY) {
            found.push(format!("{} {}: body {}", r.method, r.target, r.text()));
        }
        for (k, v) in &r.headers {
            if [
                "authorization",
                "x-api-key",
                "cookie",
                "proxy-authorization",
            ]
            .contains(&k.as_str())
                || v.contains(CANARY)
            {
                found.push(format!("{} {}: {k}: {v}", r.method, r.target));
            }
        }
    }
    found
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn the_akash_api_key_is_not_sent_to_another_origin() {
    let recorder = Stub::start_on("127.0.0.2", |_| {
        Reply::status(200)
            .header("Content-Type", "application/json")
            .body(r#"{"data":{}}"#)
    });
    let target = format!("{}/v1/deployments/1234", recorder.url());
    let console = Stub::start(move |_| Reply::status(307).header("Location", &target));
    let mut p = pb(&format!(
        r#"let d = akash_deployment(#{{ dseq: "1234", api_url: "{}", timeout: "10s" }}); print(d);"#,
        console.url()
    ));
    p.env("AKASH_CONSOLE_API_KEY", CANARY);
    p.run(&["pb.rhai"])
        .code(1)
        .has(&format!(
            "http://127.0.0.1:{} redirected to http://127.0.0.2:{}, another origin",
            console.port, recorder.port
        ))
        .has("does not send this API's credential to another host")
        .lacks(CANARY);
    assert!(
        console
            .seen()
            .iter()
            .all(|r| r.headers.get("x-api-key").map(String::as_str) == Some(CANARY)),
        "the console itself gets the key"
    );
    let leaked = credentials_in(&recorder.seen());
    assert!(leaked.is_empty(), "the second origin received: {leaked:?}");
}

/// A registry on 127.0.0.1 that wants HTTP Basic (`user:CANARY`) and
/// redirects manifest reads to `cdn` (another origin), the way registries
/// send blobs to a CDN.
fn basic_registry_redirecting_to(cdn: String) -> Stub {
    let want = format!("Basic {}", b64(&format!("robot:{CANARY}")));
    Stub::start(move |r| {
        if r.header("authorization") != Some(want.as_str()) {
            return Reply::status(401).header("WWW-Authenticate", r#"Basic realm="reg""#);
        }
        let to = format!("{cdn}/cdn{}", r.target);
        Reply::status(307).header("Location", &to)
    })
}

#[test]
fn registry_redirects_to_another_origin_are_followed_without_authorization() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let d2 = digest.clone();
    let cdn = Stub::start_on("127.0.0.2", move |_| {
        Reply::status(200)
            .header("Docker-Content-Digest", &d2)
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
    });
    let reg = basic_registry_redirecting_to(cdn.url());
    let mut p = pb(&format!(
        r#"print(`has=${{ghcr_has_tag("{}/team/app", "v1")}}`); print(`digest=${{image_digest("{}/team/app", "v1")}}`);"#,
        reg.host(),
        reg.host()
    ));
    p.file(
        "auth.json",
        &serde_json::json!({"auths": {reg.host(): {"auth": b64(&format!("robot:{CANARY}"))}}})
            .to_string(),
    );
    let auth = p.path().join("auth.json");
    p.env("REGISTRY_AUTH_FILE", auth.to_str().unwrap());
    p.run(&["pb.rhai"])
        .code(0)
        .has("has=true")
        .has(&format!("digest={digest}"))
        .lacks(CANARY);
    assert!(
        reg.seen()
            .iter()
            .any(|r| r.headers.contains_key("authorization")),
        "the registry itself got the credential"
    );
    assert!(!cdn.seen().is_empty(), "the redirect was followed");
    let leaked = credentials_in(&cdn.seen());
    assert!(leaked.is_empty(), "the CDN origin received: {leaked:?}");
}

/// A token endpoint on `ip` that records every request and grants any
/// token; and a registry on 127.0.0.1 whose Bearer challenge names it.
fn token_registry(ip: &'static str) -> (Stub, Stub) {
    let issuer = Stub::start_on(ip, |_| {
        Reply::status(200)
            .header("Content-Type", "application/json")
            .body(r#"{"token":"granted-token-5f2a","expires_in":300}"#)
    });
    let realm = format!("{}/token", issuer.url());
    let reg = Stub::start(move |r| {
        if r.header("authorization") != Some("Bearer granted-token-5f2a") {
            let ch = format!(r#"Bearer realm="{realm}",service="reg""#);
            return Reply::status(401).header("WWW-Authenticate", &ch);
        }
        Reply::status(200).header("Docker-Content-Digest", "sha256:00")
    });
    (issuer, reg)
}

#[test]
fn a_token_endpoint_on_another_host_gets_no_credential() {
    let (issuer, reg) = token_registry("127.0.0.2");
    let mut p = pb(&format!(
        r#"print(`has=${{ghcr_has_tag("{}/team/app", "v1")}}`);"#,
        reg.host()
    ));
    // Every way a credential could be given, all for this registry.
    p.file(
        "auth.json",
        &serde_json::json!({"auths": {reg.host(): {"auth": b64(&format!("robot:{CANARY}"))}}})
            .to_string(),
    );
    let auth = p.path().join("auth.json");
    p.env("REGISTRY_AUTH_FILE", auth.to_str().unwrap())
        .env("GHCR_TOKEN", CANARY)
        .env("GITHUB_TOKEN", CANARY)
        .env("REGISTRY_USERNAME", "robot")
        .env("REGISTRY_PASSWORD", CANARY)
        .env("REGISTRY_HOST", &reg.host());
    p.run(&["pb.rhai"])
        .code(0)
        .has("has=true")
        .has("not sending REGISTRY_USERNAME 'robot'")
        .has(&format!(
            "to the token endpoint http://127.0.0.2:{}/token",
            issuer.port
        ))
        .lacks(CANARY);
    assert!(!issuer.seen().is_empty(), "the token endpoint was asked");
    let leaked = credentials_in(&issuer.seen());
    assert!(
        leaked.is_empty(),
        "the token endpoint on 127.0.0.2 received: {leaked:?}"
    );
}

#[test]
fn a_github_token_goes_to_no_registry_but_ghcr() {
    // Token endpoint on the registry's own host: a GitHub token still stays home.
    let (issuer, reg) = token_registry("127.0.0.1");
    let mut p = pb(&format!(
        r#"print(`has=${{ghcr_has_tag("{}/team/app", "v1")}}`);"#,
        reg.host()
    ));
    p.env("GHCR_TOKEN", CANARY).env("GITHUB_TOKEN", CANARY);
    // Not even considered for this host (no "not sending GHCR_TOKEN" warning).
    p.run(&["pb.rhai"])
        .code(0)
        .has("has=true")
        .lacks(CANARY)
        .lacks("GHCR_TOKEN")
        .lacks("GITHUB_TOKEN");
    let leaked = credentials_in(&issuer.seen());
    assert!(
        leaked.is_empty(),
        "a non-ghcr token endpoint received: {leaked:?}"
    );
    assert!(credentials_in(&reg.seen())
        .iter()
        .all(|l| l.contains("Bearer granted-token")));
}

#[test]
fn the_right_host_gets_its_credential_from_file_env_or_helper() {
    let want = format!("Basic {}", b64(&format!("robot:{CANARY}")));
    // Same host as the registry (another port): the credential goes there.
    let (issuer, reg) = token_registry("127.0.0.1");
    let src = format!(
        r#"print(`has=${{ghcr_has_tag("{}/team/app", "v1")}}`);"#,
        reg.host()
    );

    // 1. an auths entry in a Docker config.json
    let mut p = pb(&src);
    p.file(
        "docker/config.json",
        &serde_json::json!({"auths": {reg.host(): {"auth": b64(&format!("robot:{CANARY}"))}}})
            .to_string(),
    );
    let dir = p.path().join("docker");
    p.env("DOCKER_CONFIG", dir.to_str().unwrap());
    p.run(&["pb.rhai"]).code(0).has("has=true").lacks(CANARY);
    let got: Vec<_> = issuer
        .seen()
        .iter()
        .filter_map(|r| r.headers.get("authorization").cloned())
        .collect();
    assert_eq!(
        got,
        vec![want.clone()],
        "the token endpoint on the registry's host"
    );

    // 2. REGISTRY_USERNAME/PASSWORD bound to this host
    let (issuer, reg) = token_registry("127.0.0.1");
    let mut p = pb(&format!(
        r#"print(`has=${{ghcr_has_tag("{}/team/app", "v1")}}`);"#,
        reg.host()
    ));
    p.env("REGISTRY_USERNAME", "robot")
        .env("REGISTRY_PASSWORD", CANARY)
        .env("REGISTRY_HOST", &reg.host());
    p.run(&["pb.rhai"]).code(0).has("has=true").lacks(CANARY);
    let got: Vec<_> = issuer
        .seen()
        .iter()
        .filter_map(|r| r.headers.get("authorization").cloned())
        .collect();
    assert_eq!(got, vec![want.clone()]);

    // 3. a credential helper named in credHelpers, asked with the host on stdin
    let (issuer, reg) = token_registry("127.0.0.1");
    let mut p = pb(&format!(
        r#"print(`has=${{ghcr_has_tag("{}/team/app", "v1")}}`);"#,
        reg.host()
    ));
    p.file(
        "bin/docker-credential-rbtest",
        &format!(
            "#!/bin/sh\nread host\necho \"$host\" > \"$(dirname \"$0\")/asked\"\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"robot\",\"Secret\":\"{CANARY}\"}}' \"$host\"\n"
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    let helper = p.path().join("bin/docker-credential-rbtest");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.file(
        "auth.json",
        &serde_json::json!({"credHelpers": {reg.host(): "rbtest"}}).to_string(),
    );
    let auth = p.path().join("auth.json");
    p.env("REGISTRY_AUTH_FILE", auth.to_str().unwrap());
    p.path_prepend(p.path().join("bin"));
    p.run(&["pb.rhai"]).code(0).has("has=true").lacks(CANARY);
    assert_eq!(p.read("bin/asked").unwrap().trim(), reg.host());
    let got: Vec<_> = issuer
        .seen()
        .iter()
        .filter_map(|r| r.headers.get("authorization").cloned())
        .collect();
    assert_eq!(got, vec![want]);
}

#[test]
fn an_identity_token_is_traded_on_its_host_only() {
    let auth_for = |p: &crate::support::Project, host: &str| {
        p.file(
            "auth.json",
            &serde_json::json!({"auths": {host: {"identitytoken": CANARY}}}).to_string(),
        );
        p.path().join("auth.json").to_str().unwrap().to_string()
    };
    // On the registry's host: an OAuth2 refresh-token POST.
    let (issuer, reg) = token_registry("127.0.0.1");
    let mut p = pb(&format!(
        r#"print(`has=${{ghcr_has_tag("{}/team/app", "v1")}}`);"#,
        reg.host()
    ));
    let f = auth_for(&p, &reg.host());
    p.env("REGISTRY_AUTH_FILE", &f);
    p.run(&["pb.rhai"]).code(0).has("has=true").lacks(CANARY);
    let posts: Vec<_> = issuer
        .seen()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "{:?}", issuer.seen());
    assert!(
        posts[0].text().contains("grant_type=refresh_token"),
        "{}",
        posts[0].text()
    );
    assert!(
        posts[0].text().contains(&format!("refresh_token={CANARY}")),
        "{}",
        posts[0].text()
    );
    assert!(
        posts[0]
            .text()
            .contains("scope=repository%3Ateam%2Fapp%3Apull"),
        "{}",
        posts[0].text()
    );

    // A token endpoint on another host: asked anonymously, with a GET.
    let (issuer, reg) = token_registry("127.0.0.2");
    let mut p = pb(&format!(
        r#"print(`has=${{ghcr_has_tag("{}/team/app", "v1")}}`);"#,
        reg.host()
    ));
    let f = auth_for(&p, &reg.host());
    p.env("REGISTRY_AUTH_FILE", &f);
    p.run(&["pb.rhai"])
        .code(0)
        .has("has=true")
        .has("not sending the identitytoken");
    assert!(issuer.seen().iter().all(|r| r.method == "GET"));
    let leaked = credentials_in(&issuer.seen());
    assert!(
        leaked.is_empty(),
        "the token endpoint on 127.0.0.2 received: {leaked:?}"
    );
}
