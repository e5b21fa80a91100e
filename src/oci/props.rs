//! Property tests of the parsers that read outside text on the network
//! side: the `WWW-Authenticate` challenge, image references, registry auth
//! files (in `oci`, which sits above `net`: the tests import both downward). Zero panics on any input, and well-formed input round-trips.
//! `PROPTEST_CASES=100000 cargo test --lib oci::props` runs a longer
//! session by hand; CI runs the default 512 cases each, in seconds.

use base64::Engine as _;
use proptest::prelude::*;

use crate::net::creds::{entry_in_config, normalize_key, ConfigEntry};
use crate::oci::auth::parse_challenge;
use crate::oci::reference::{validate_tag, ImageRef};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A quoted-string value as a server would write it.
fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn challenges_never_panic(h in any::<String>()) {
        let _ = parse_challenge(&h);
    }

    #[test]
    fn challenges_of_odd_shapes_never_panic(h in "[A-Za-z]{0,8}[ ,=\"\\\\a-z]{0,40}") {
        let _ = parse_challenge(&h);
    }

    #[test]
    fn quoted_challenge_params_round_trip(
        realm in "[ -~]{0,60}",
        service in "[ -~]{0,30}",
        scope in "[a-z0-9/:,_-]{0,40}",
    ) {
        let h = format!("Bearer realm={},service={},scope={}", quote(&realm), quote(&service), quote(&scope));
        let c = parse_challenge(&h).expect("a challenge");
        prop_assert_eq!(c.scheme.as_str(), "bearer");
        prop_assert_eq!(c.params.get("realm"), Some(&realm));
        prop_assert_eq!(c.params.get("service"), Some(&service));
        prop_assert_eq!(c.params.get("scope"), Some(&scope));
    }

    #[test]
    fn image_references_never_panic(s in any::<String>()) {
        let _ = ImageRef::parse(&s);
        let _ = validate_tag(&s);
    }

    #[test]
    fn image_references_of_registry_shapes_never_panic(s in "[a-zA-Z0-9.:\\[\\]/@_-]{0,60}") {
        let _ = ImageRef::parse(&s);
    }

    #[test]
    fn well_formed_images_parse_to_their_parts(
        host in "[a-z][a-z0-9-]{0,10}\\.[a-z]{2,5}",
        port in proptest::option::of(1u16..),
        owner in "[a-z0-9]{1,10}",
        name in "[a-z0-9]{1,10}([._-][a-z0-9]{1,5})?",
    ) {
        let registry = match port { Some(p) => format!("{host}:{p}"), None => host.clone() };
        let r = ImageRef::parse(&format!("{registry}/{owner}/{name}")).expect("valid");
        prop_assert_eq!(r.registry, registry);
        prop_assert_eq!(r.repository, format!("{owner}/{name}"));
    }

    #[test]
    fn auth_files_never_panic(text in any::<String>(), host in any::<String>()) {
        let _ = entry_in_config(&text, &host);
        let _ = normalize_key(&host);
    }

    #[test]
    fn auth_file_shapes_never_panic(
        auth in any::<String>(),
        token in proptest::option::of(any::<String>()),
        key in "[a-z:/.0-9]{0,20}",
    ) {
        let v = serde_json::json!({"auths": {key.clone(): {"auth": auth, "identitytoken": token}}, "credHelpers": {key.clone(): 1}});
        let _ = entry_in_config(&v.to_string(), &normalize_key(&key));
    }

    #[test]
    fn auths_entries_are_found_for_their_host_only(
        user in "[^:]{0,20}",
        pass in any::<String>(),
        host in "[a-z]{1,10}\\.[a-z]{2,4}(:[0-9]{2,5})?",
        other in "[a-z]{1,10}\\.[a-z]{2,4}(:[0-9]{2,5})?",
        scheme in proptest::sample::select(vec!["", "https://", "http://"]),
        path in proptest::sample::select(vec!["", "/", "/v1/"]),
    ) {
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        let text = serde_json::json!({"auths": {format!("{scheme}{host}{path}"): {"auth": enc}}}).to_string();
        prop_assert_eq!(
            entry_in_config(&text, &normalize_key(&host)).expect("valid"),
            Some(ConfigEntry::User(user, pass))
        );
        if normalize_key(&other) != normalize_key(&host) {
            prop_assert_eq!(entry_in_config(&text, &normalize_key(&other)).expect("valid"), None);
        }
    }
}
