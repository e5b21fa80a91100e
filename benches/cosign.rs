//! In-process cost of one signature verification, keyed beside keyless
//! (chain to the embedded trust root, Rekor SET, inclusion proof and
//! checkpoint, identity), on real fixtures. `cargo bench --bench cosign`.

use criterion::{criterion_group, criterion_main, Criterion};
use runbook::oci::cosign::{load_key_pem, verify_simple_signing, Keyless, Policy};
use runbook::oci::cosign_bundle::verify_bundle;
use runbook::oci::cosign_cert::{Identity, San};
use runbook::oci::sigstore::trust_root;

const KW_ID: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";

fn benches(c: &mut Criterion) {
    let keyed = Policy {
        key: Some(
            load_key_pem(include_str!(
                "../tests/data/cosign/sigstore-rs-0.15.0-keyed/cosign.pub"
            ))
            .unwrap(),
        ),
        ..Policy::default()
    };
    let payload = include_str!("../tests/data/cosign/sigstore-rs-0.15.0-keyed/payload.json");
    let sig = include_str!("../tests/data/cosign/sigstore-rs-0.15.0-keyed/signature.b64");
    let digest = "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b";
    c.bench_function("cosign keyed simple-signing", |b| {
        b.iter(|| {
            verify_simple_signing(payload.as_bytes(), sig, None, None, digest, &keyed).unwrap()
        })
    });

    let keyless = Policy {
        keyless: Some(Keyless {
            identity: Identity::new(
                San::Exact(KW_ID.into()),
                "https://token.actions.githubusercontent.com".into(),
            ),
            trust: trust_root::embedded().unwrap(),
        }),
        ..Policy::default()
    };
    let bundle = include_bytes!(
        "../tests/data/cosign/bundle-format/sigstore-rs-0.15.0_tests_data_bundle_v03.json"
    );
    let kw = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
    c.bench_function(
        "cosign keyless bundle v0.3 (chain, SET, proof, checkpoint, identity)",
        |b| b.iter(|| verify_bundle(bundle, kw, &keyless).unwrap()),
    );
    c.bench_function("trust root: parse the embedded public-good root", |b| {
        b.iter(|| trust_root::parse(trust_root::EMBEDDED, "embedded").unwrap())
    });
}

criterion_group!(cosign, benches);
criterion_main!(cosign);
