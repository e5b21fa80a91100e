//! `sigstore-peer IMAGE@DIGEST KEY.pub`: verify the cosign signature of an
//! image with the `sigstore` crate (`trusted_signature_layers`, which
//! triangulates the `.sig` tag itself, then `verify_constraints` with a
//! `PublicKeyVerifier`). Prints `verified` and exits 0, or prints why not
//! and exits 1. Plain HTTP (the bench registry is on 127.0.0.1), anonymous
//! pull through the registry's token challenge.

use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{verify_constraints, ClientBuilder, CosignCapabilities};
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: sigstore-peer IMAGE@DIGEST KEY.pub");
        std::process::exit(2);
    }
    match verify(&args[1], &args[2]).await {
        Ok(()) => println!("verified"),
        Err(e) => {
            println!("not verified: {e}");
            std::process::exit(1);
        }
    }
}

async fn verify(image: &str, key_path: &str) -> Result<(), String> {
    let key = std::fs::read(key_path).map_err(|e| format!("{key_path}: {e}"))?;
    let image: OciReference = image.parse().map_err(|e| format!("{image}: {e:?}"))?;
    let mut client = ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
        .build()
        .map_err(|e| format!("client: {e}"))?;
    let auth = Auth::Anonymous;
    // Resolves the digest, finds the `.sig` tag, pulls its manifest and
    // simple-signing layers (and the OCI referrers where the crate's
    // features include them).
    let layers = client
        .trusted_signature_layers(&auth, &image)
        .await
        .map_err(|e| format!("signature layers: {e}"))?;
    let verifier =
        PublicKeyVerifier::new(&key, &SigningScheme::default()).map_err(|e| format!("key: {e}"))?;
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    verify_constraints(&layers, constraints.iter()).map_err(|e| format!("constraints: {e:?}"))
}
