//! Interop with JOSE libraries written by others: Python's PyJWT (`interop/verify_pyjwt.py`)
//! and Node's `jose` (`interop/verify_jose.mjs`) verify tollgate's access tokens against the
//! JWKS served over HTTP, for every signing algorithm; tokens forged with PyJWT are refused
//! by tollgate with the precise reason.
//!
//! The libraries are installed by `bash interop/setup.sh`. Without them these tests print
//! `SKIP` and pass locally, and fail when `CI=true`.

use crate::test_app::TestApp;
use std::path::{Path, PathBuf};
use std::process::Output;
use tokio::process::Command;
use tollgate_client::ClientCredentials;
use tollgate_core::SigningAlg;

const AUDIENCE: &str = "https://api.example.com";

/// An independent verifier: the interpreter and the script under `interop/`.
#[derive(Debug, Clone, Copy)]
enum Library {
    PyJwt,
    Jose,
}

impl Library {
    /// The script's command line up to its mode: this server's JWKS, issuer, [`AUDIENCE`], `alg`.
    fn command(self, root: &Path, app: &TestApp, alg: SigningAlg) -> Command {
        let (program, script) = match self {
            Library::PyJwt => ("python3", "interop/verify_pyjwt.py"),
            Library::Jose => ("node", "interop/verify_jose.mjs"),
        };
        let mut cmd = Command::new(program);
        cmd.arg(root.join(script)).current_dir(root).kill_on_drop(true);
        cmd.args([
            "--jwks-url",
            &app.url("/.well-known/jwks.json"),
            "--issuer",
            &app.url,
        ]);
        cmd.args(["--audience", AUDIENCE, "--alg", alg.as_str()]);
        cmd
    }
}

/// The repository root if PyJWT and `jose` are installed. Otherwise panics under `CI=true`
/// and returns `None` after a `SKIP` note elsewhere.
async fn interop_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut missing = Vec::new();
    let python = Command::new("python3").args(["-c", "import jwt"]).output().await;
    if !python.is_ok_and(|o| o.status.success()) {
        missing.push("PyJWT (`python3 -c 'import jwt'` fails)");
    }
    let node = Command::new("node").arg("--version").output().await;
    if !node.is_ok_and(|o| o.status.success()) {
        missing.push("node");
    }
    if !root.join("interop/node_modules/jose/package.json").is_file() {
        missing.push("interop/node_modules/jose");
    }
    if missing.is_empty() {
        return Some(root);
    }
    crate::test_app::skip_unless_ci(&format!("interop libraries missing: {}", missing.join(", ")));
    None
}

/// Runs `library` on `token`.
async fn verify_with(library: Library, root: &Path, app: &TestApp, alg: SigningAlg, token: &str) -> Output {
    library
        .command(root, app, alg)
        .args(["--token", token])
        .output()
        .await
        .unwrap()
}

/// A token for this server's JWKS built by PyJWT (`--forge kind`).
async fn forge(root: &Path, app: &TestApp, alg: SigningAlg, kind: &str) -> String {
    let out = Library::PyJwt
        .command(root, app, alg)
        .args(["--forge", kind])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "forging {kind} ({alg}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The claims `library` printed after accepting the token; panics with its error otherwise.
fn accepted_claims(library: Library, alg: SigningAlg, out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{library:?} refused a tollgate {alg} token: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn app_with(alg: SigningAlg) -> (TestApp, ClientCredentials) {
    let app = TestApp::with_config(|c| c.tokens.signing_alg = alg).await;
    let creds = app
        .service_account("interop", &["read", "write"], &[AUDIENCE])
        .await;
    (app, creds)
}

/// For each algorithm: a token from the SDK verifies with `library`, which sees the claims
/// tollgate issued; after revocation tollgate reports it inactive.
async fn library_verifies_every_alg(library: Library) {
    let Some(root) = interop_root().await else { return };
    for alg in SigningAlg::ALL {
        let (app, creds) = app_with(alg).await;
        let token = app
            .client
            .client_credentials(&creds, Some("read"), Some(AUDIENCE))
            .await
            .unwrap()
            .access_token;

        let claims = accepted_claims(
            library,
            alg,
            &verify_with(library, &root, &app, alg, &token).await,
        );
        assert_eq!(claims["iss"], app.url, "{library:?} {alg}");
        assert_eq!(claims["sub"], creds.client_id.as_str(), "{library:?} {alg}");
        assert_eq!(claims["client_id"], creds.client_id.as_str(), "{library:?} {alg}");
        assert_eq!(claims["aud"], AUDIENCE, "{library:?} {alg}");
        assert_eq!(claims["scope"], "read", "{library:?} {alg}");

        app.client.revoke(&creds, &token).await.unwrap();
        assert!(
            !app.client.introspect(&creds, &token).await.unwrap().active,
            "{alg}"
        );
        // Offline verification cannot see revocation: the signature and claims are unchanged,
        // so the library still accepts the token. Resource servers that must honour
        // revocation before `exp` introspect instead.
        accepted_claims(
            library,
            alg,
            &verify_with(library, &root, &app, alg, &token).await,
        );
    }
}

#[tokio::test]
async fn pyjwt_verifies_tokens_of_every_alg_against_the_published_jwks() {
    library_verifies_every_alg(Library::PyJwt).await;
}

#[tokio::test]
async fn jose_verifies_tokens_of_every_alg_against_the_published_jwks() {
    library_verifies_every_alg(Library::Jose).await;
}

/// PyJWT-built forgeries naming a real kid: tollgate refuses each with its precise reason,
/// and the two libraries refuse them as well.
#[tokio::test]
async fn tokens_forged_with_pyjwt_are_refused_with_precise_reasons() {
    let Some(root) = interop_root().await else { return };
    for alg in SigningAlg::ALL {
        let (app, creds) = app_with(alg).await;
        for (kind, reason) in [
            // PyJWT writes an unsecured JWS with an empty signature (RFC 7515 §A.5).
            ("none", "alg-not-allowed"),
            ("hs256-with-public-key", "alg-not-allowed"),
            ("wrong-key", "invalid-signature"),
        ] {
            let forged = forge(&root, &app, alg, kind).await;
            let err = app.client.auth_status(&forged).await.unwrap_err();
            assert_eq!(err.reason(), Some(reason), "{kind} ({alg}): {err}");
            assert!(
                !app.client.introspect(&creds, &forged).await.unwrap().active,
                "{kind} ({alg})"
            );
            for library in [Library::PyJwt, Library::Jose] {
                let out = verify_with(library, &root, &app, alg, &forged).await;
                assert!(
                    !out.status.success(),
                    "{library:?} accepted a forged {kind} ({alg}) token"
                );
            }
        }
    }
}

/// Across a rotation both the token signed by the retired key and the one signed by the
/// newly active key verify with `jose` against the JWKS it fetches; once the retired key's
/// publication ends, `jose` refuses the old token for want of its key.
#[tokio::test]
async fn jose_verifies_tokens_from_both_sides_of_a_rotation() {
    let Some(root) = interop_root().await else { return };
    let alg = SigningAlg::EdDSA;
    let (app, creds) = app_with(alg).await;
    let before = app
        .client
        .client_credentials(&creds, None, Some(AUDIENCE))
        .await
        .unwrap()
        .access_token;
    // Forced, because the libraries check nbf against the real clock, so the test's clock
    // cannot be moved past the publication window.
    let force = tollgate_proto::admin::RotateKeysRequest {
        purpose: None,
        force: true,
    };
    let rotation = app.client.rotate_keys(&force).await.unwrap();
    let after = app
        .client
        .client_credentials(&creds, None, Some(AUDIENCE))
        .await
        .unwrap()
        .access_token;
    for token in [&before, &after] {
        accepted_claims(
            Library::Jose,
            alg,
            &verify_with(Library::Jose, &root, &app, alg, token).await,
        );
    }

    let retired = rotation.retired.unwrap();
    app.client
        .retire_key(
            &retired,
            &tollgate_proto::admin::RetireKeyRequest { immediately: true },
        )
        .await
        .unwrap();
    let out = verify_with(Library::Jose, &root, &app, alg, &before).await;
    assert!(!out.status.success(), "jose must not find the unpublished key");
    accepted_claims(
        Library::Jose,
        alg,
        &verify_with(Library::Jose, &root, &app, alg, &after).await,
    );
}
