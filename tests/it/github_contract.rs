//! The GitHub stand-in answers only what GitHub's published description
//! says: every route, error and knob of tests/standins/github_api.py is
//! driven here and each answer validated against
//! tests/data/github/rest-api-subset.json (the operations' schemas, cut
//! from github/rest-api-description). Its atomicity is GitHub's: one of
//! many racing creates wins, a PATCH that is not a fast-forward is refused.

use crate::support;

use serde_json::{json, Value};
use support::github::{conforms, schema, GithubApi, REPO, TOKEN};
use support::http::request;

const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

fn call(api: &GithubApi, method: &str, tail: &str, body: Option<Value>) -> (u16, Value) {
    call_as(api, TOKEN, method, tail, body)
}

fn call_as(
    api: &GithubApi,
    token: &str,
    method: &str,
    tail: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let r = request(
        method,
        &format!("{}/repos/{REPO}{tail}", api.url),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        text.as_bytes(),
    );
    let v = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{method} {tail}: not JSON ({e}): {}", r.text()));
    (r.status, v)
}

fn commit(api: &GithubApi, message: &str, parents: &[&str]) -> String {
    let (s, c) = call(
        api,
        "POST",
        "/git/commits",
        Some(json!({"message": message, "tree": EMPTY_TREE, "parents": parents})),
    );
    assert_eq!(s, 201, "{c}");
    c["sha"].as_str().unwrap().to_string()
}

#[test]
fn every_answer_of_the_stand_in_is_in_githubs_schema() {
    let api = GithubApi::start();
    let lock = "/git/refs/runbook/locks/demo";
    assert_eq!(
        call(&api, "GET", "/git/ref/runbook/locks/demo", None).0,
        404
    );
    let c1 = commit(&api, "one", &[]);
    let create = json!({"ref": "refs/runbook/locks/demo", "sha": c1});
    assert_eq!(call(&api, "POST", "/git/refs", Some(create.clone())).0, 201);
    let (s, e) = call(&api, "POST", "/git/refs", Some(create));
    assert_eq!(
        (s, e["message"].as_str()),
        (422, Some("Reference already exists"))
    );
    assert_eq!(
        call(&api, "GET", "/git/ref/runbook/locks/demo", None).0,
        200
    );
    assert_eq!(
        call(&api, "GET", &format!("/git/commits/{c1}"), None).0,
        200
    );
    let c2 = commit(&api, "two", &[&c1]);
    assert_eq!(
        call(
            &api,
            "PATCH",
            lock,
            Some(json!({"sha": c2, "force": false}))
        )
        .0,
        200
    );
    // Not a descendant of the ref's commit: refused without force.
    let side = commit(&api, "side", &[&c1]);
    let (s, e) = call(
        &api,
        "PATCH",
        lock,
        Some(json!({"sha": side, "force": false})),
    );
    assert_eq!(
        (s, e["message"].as_str()),
        (422, Some("Update is not a fast forward"))
    );
    assert_eq!(
        call(
            &api,
            "PATCH",
            lock,
            Some(json!({"sha": side, "force": true}))
        )
        .0,
        200
    );
    for (body, what) in [
        (
            json!({"message": "x", "tree": "0".repeat(40)}),
            "an unknown tree",
        ),
        (
            json!({"message": "x", "tree": EMPTY_TREE, "parents": ["1".repeat(40)]}),
            "an unknown parent",
        ),
        (json!({"tree": EMPTY_TREE}), "no message"),
    ] {
        assert_eq!(
            call(&api, "POST", "/git/commits", Some(body)).0,
            422,
            "{what}"
        );
    }
    assert_eq!(
        call(
            &api,
            "POST",
            "/git/refs",
            Some(json!({"ref": "x", "sha": c1}))
        )
        .0,
        422
    );
    assert_eq!(
        call(
            &api,
            "GET",
            &format!("/git/commits/{}", "2".repeat(40)),
            None
        )
        .0,
        404
    );
    assert_eq!(
        call(
            &api,
            "PATCH",
            "/git/refs/runbook/locks/none",
            Some(json!({"sha": c1}))
        )
        .0,
        422
    );

    let dep = json!({"ref": "a".repeat(40), "environment": "app", "payload": {"event": "run"},
                     "auto_merge": false, "required_contexts": [], "transient_environment": false,
                     "description": "runbook"});
    let (s, d) = call(&api, "POST", "/deployments", Some(dep.clone()));
    assert_eq!(s, 201, "{d}");
    call(&api, "POST", "/deployments", Some(dep));
    let (s, _) = call(
        &api,
        "POST",
        "/deployments",
        Some(json!({"ref": "nope", "environment": "app"})),
    );
    assert_eq!(s, 422, "an unknown ref");
    let id = d["id"].as_i64().unwrap();
    let st = format!("/deployments/{id}/statuses");
    assert_eq!(
        call(
            &api,
            "POST",
            &st,
            Some(json!({"state": "success", "log_url": "https://x"}))
        )
        .0,
        201
    );
    assert_eq!(
        call(&api, "POST", &st, Some(json!({"state": "done"}))).0,
        422
    );
    assert_eq!(
        call(
            &api,
            "POST",
            "/deployments/999/statuses",
            Some(json!({"state": "success"}))
        )
        .0,
        404
    );
    let (s, list) = call(&api, "GET", &st, None);
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)));
    let (s, page) = call(
        &api,
        "GET",
        "/deployments?environment=app&per_page=1&page=2",
        None,
    );
    assert_eq!((s, page[0]["id"].as_i64()), (200, Some(id)), "newest first");
    assert_eq!(call(&api, "GET", "/deployments/999/statuses", None).0, 404);

    // Refusals and knobs: a wrong token, a forbidden route, rate limits, a 500.
    assert_eq!(
        call_as(&api, "ghs_wrong_token", "GET", "/deployments", None).0,
        401
    );
    api.knobs(json!({"forbid": [{"method": "GET", "path": "/deployments"}]}));
    assert_eq!(call(&api, "GET", "/deployments", None).0, 403);
    api.knobs(json!({"rate_limit": {"count": 1, "retry_after": 3}}));
    assert_eq!(
        call(&api, "GET", "/git/ref/runbook/locks/demo", None).0,
        403
    );
    api.knobs(json!({"rate_limit": {"count": 2, "status": 429}}));
    assert_eq!(call(&api, "GET", "/deployments", None).0, 429);
    api.knobs(json!({"fail_500": {"count": 1}}));
    assert_eq!(call(&api, "GET", "/deployments", None).0, 500);
    assert_eq!(call(&api, "GET", "/deployments", None).0, 200);

    api.assert_contract();
}

#[test]
fn racing_creates_and_fast_forwards_have_one_winner() {
    let api = GithubApi::start();
    let shas: Vec<String> = (0..8)
        .map(|i| commit(&api, &format!("c{i}"), &[]))
        .collect();
    let wins = std::thread::scope(|s| {
        let hs: Vec<_> = shas
            .iter()
            .map(|sha| {
                let api = &api;
                s.spawn(move || {
                    let body = json!({"ref": "refs/runbook/locks/race", "sha": sha});
                    call(api, "POST", "/git/refs", Some(body)).0
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(wins.iter().filter(|&&s| s == 201).count(), 1, "{wins:?}");
    assert_eq!(wins.iter().filter(|&&s| s == 422).count(), 7, "{wins:?}");
    // Eight children of the same commit, fast-forwarded at once: one wins.
    let base = api.state()["refs"]["refs/runbook/locks/race"]
        .as_str()
        .unwrap()
        .to_string();
    let kids: Vec<String> = (0..8)
        .map(|i| commit(&api, &format!("k{i}"), &[&base]))
        .collect();
    let moved = std::thread::scope(|s| {
        let hs: Vec<_> = kids
            .iter()
            .map(|sha| {
                let api = &api;
                s.spawn(move || {
                    let body = json!({"sha": sha, "force": false});
                    call(api, "PATCH", "/git/refs/runbook/locks/race", Some(body)).0
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(moved.iter().filter(|&&s| s == 200).count(), 1, "{moved:?}");
    api.assert_contract();
}

/// The contract can fail: an answer with a field GitHub does not describe,
/// or without one it always sends, is refused.
#[test]
fn the_contract_refuses_a_field_github_lacks() {
    let api = GithubApi::start();
    let c = commit(&api, "x", &[]);
    let (_, good) = call(&api, "GET", &format!("/git/commits/{c}"), None);
    let ptr = "/operations/git~1get-commit/responses/200";
    conforms(ptr, "the commit", &good);
    let mut invented = good.clone();
    invented["lock_state"] = json!("held");
    assert!(!schema(ptr).is_valid(&invented));
    let mut missing = good;
    missing.as_object_mut().unwrap().remove("verification");
    assert!(!schema(ptr).is_valid(&missing));
    // A 422 with `status` (basic-error's field) is not a validation-error.
    let v =
        json!({"message": "Reference already exists", "documentation_url": "x", "status": "422"});
    assert!(!schema("/errors/validation_failed").is_valid(&v));
}
