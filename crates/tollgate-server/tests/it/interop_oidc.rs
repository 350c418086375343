//! Federation with a real OpenID Connect provider: panva's certified `oidc-provider`
//! (`interop/oidc_provider.mjs`) runs on loopback and issues RFC 9068 JWT access tokens by
//! `client_credentials`; tollgate finds its keys through discovery, verifies and exchanges
//! them, and the tokens it issues in return verify with Node's `jose` and Python's PyJWT.
//!
//! Unlike `federation.rs`, nothing here is minted by the test: token shape, headers, key
//! ids and JWKS are the provider's own. The Node and Python packages are installed by
//! `bash interop/setup.sh`; without them these tests print `SKIP` and pass locally, and
//! fail when `CI=true`.

use crate::test_app::TestApp;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tollgate_client::TokenExchange;
use tollgate_core::JwsAlg;
use tollgate_core::upstream::{GrantSpec, IssuerSpec, Preset};
use tollgate_proto::admin::VerifyResponse;
use tollgate_proto::oauth::TokenResponse;

/// The confidential client `oidc_provider.mjs` registers (fixed in the script).
const CLIENT_ID: &str = "tollgate-interop";
const CLIENT_SECRET: &str = "interop-secret-not-for-production";
/// Resource indicators the provider issues JWT access tokens for, by signing algorithm.
const RS256_RESOURCE: &str = "https://api.example.com";
const ES256_RESOURCE: &str = "https://api-es256.example.com";
/// The audience of the tokens tollgate issues in exchange (the issuer's grant).
const EXCHANGED_AUDIENCE: &str = "https://tollgate-api.example.com";
const ISSUER_NAME: &str = "node-oidc";

/// The repository root if node, `oidc-provider`, `jose` and PyJWT are installed. Otherwise
/// panics under `CI=true`, and prints `SKIP` and returns `None` elsewhere.
async fn interop_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut missing = Vec::new();
    let node = Command::new("node").arg("--version").output().await;
    if !node.is_ok_and(|o| o.status.success()) {
        missing.push("node");
    }
    for package in ["oidc-provider", "jose"] {
        if !root
            .join(format!("interop/node_modules/{package}/package.json"))
            .is_file()
        {
            missing.push(package);
        }
    }
    let python = Command::new("python3").args(["-c", "import jwt"]).output().await;
    if !python.is_ok_and(|o| o.status.success()) {
        missing.push("PyJWT (`python3 -c 'import jwt'` fails)");
    }
    if missing.is_empty() {
        return Some(root);
    }
    crate::test_app::skip_unless_ci(&format!("OIDC interop tools missing: {}", missing.join(", ")));
    None
}

/// A running `oidc_provider.mjs`, killed when dropped.
struct OidcProvider {
    /// `http://127.0.0.1:PORT`, as the provider reports it and puts in `iss`.
    issuer: String,
    /// Found through discovery, as any relying party would.
    token_endpoint: String,
    http: reqwest::Client,
    /// Holds the process (and its stdin: the script exits when that closes, so even a test
    /// binary that dies without running destructors leaves no provider behind).
    _process: Child,
}

impl OidcProvider {
    async fn start(root: &Path) -> Self {
        let mut process = Command::new("node")
            .arg(root.join("interop/oidc_provider.mjs"))
            .arg("--exit-with-stdin")
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdout = process.stdout.take().unwrap();
        let issuer = tokio::time::timeout(Duration::from_secs(30), ready_line(stdout))
            .await
            .expect("oidc_provider.mjs ready within 30 s");
        let http = reqwest::Client::new();
        let discovery: Value = http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(discovery["issuer"], issuer.as_str(), "{discovery}");
        let token_endpoint = discovery["token_endpoint"].as_str().unwrap().to_owned();
        Self {
            issuer,
            token_endpoint,
            http,
            _process: process,
        }
    }

    /// A JWT access token for `resource` with scope `read`, by `client_credentials`.
    async fn access_token(&self, resource: &str) -> String {
        let resp = self
            .http
            .post(&self.token_endpoint)
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", "read"),
            ])
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "provider token endpoint: {status} {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// How tollgate is told to trust this provider: the generic OIDC preset, keys through
    /// discovery, tokens for `audience` signed with one of `algorithms`.
    fn issuer_spec(&self, audience: &str, algorithms: &[JwsAlg]) -> IssuerSpec {
        IssuerSpec {
            name: ISSUER_NAME.into(),
            issuer: self.issuer.clone(),
            preset: Preset::Oidc,
            audiences: vec![audience.into()],
            algorithms: algorithms.to_vec(),
            grant: Some(GrantSpec {
                scopes: vec!["read".into()],
                audiences: vec![EXCHANGED_AUDIENCE.into()],
                ..GrantSpec::default()
            }),
            enabled: true,
            ..IssuerSpec::default()
        }
    }
}

/// The issuer from the script's `READY <issuer>` line.
async fn ready_line(stdout: ChildStdout) -> String {
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(issuer) = line.strip_prefix("READY ") {
            return issuer.to_owned();
        }
    }
    panic!("oidc_provider.mjs exited before READY (its stderr is above)");
}

/// A running provider and a tollgate trusting it.
struct Federation {
    root: PathBuf,
    provider: OidcProvider,
    app: TestApp,
}

/// The provider, and tollgate trusting it for tokens whose `aud` is `audience`; `None` when
/// the tools are missing (see [`interop_root`]).
async fn federation(audience: &str, algorithms: &[JwsAlg]) -> Option<Federation> {
    let root = interop_root().await?;
    let provider = OidcProvider::start(&root).await;
    let spec = provider.issuer_spec(audience, algorithms);
    let app = TestApp::with_config(move |c| c.issuers = vec![spec]).await;
    Some(Federation { root, provider, app })
}

impl Federation {
    /// Exchanges `token`; on refusal panics with tollgate's step-by-step explanation, which
    /// says which check the real provider's token failed.
    async fn exchange(&self, token: &str) -> TokenResponse {
        match self.app.client.token_exchange(&TokenExchange::jwt(token)).await {
            Ok(resp) => resp,
            Err(err) => panic!("exchange refused: {err}\n{:#?}", self.verify(token).await),
        }
    }

    async fn verify(&self, token: &str) -> VerifyResponse {
        self.app.client.verify_token(token).await.expect("verify report")
    }

    /// The refusal reason of an exchange of `token`.
    async fn refusal(&self, token: &str) -> String {
        let err = self
            .app
            .client
            .token_exchange(&TokenExchange::jwt(token))
            .await
            .expect_err("refused");
        err.reason().unwrap_or("(none)").to_owned()
    }
}

/// An independent verifier of tollgate's tokens: the interpreter and the script under `interop/`.
#[derive(Debug, Clone, Copy)]
enum Library {
    PyJwt,
    Jose,
}

impl Library {
    /// Runs the library's verifier on a token tollgate issued in exchange: tollgate's JWKS,
    /// issuer and signing algorithm, [`EXCHANGED_AUDIENCE`].
    async fn verify(self, f: &Federation, token: &str) -> Output {
        let (program, script) = match self {
            Library::PyJwt => ("python3", "interop/verify_pyjwt.py"),
            Library::Jose => ("node", "interop/verify_jose.mjs"),
        };
        let alg = f.app.state.config.tokens.signing_alg;
        Command::new(program)
            .arg(f.root.join(script))
            .current_dir(&f.root)
            .kill_on_drop(true)
            .args(["--jwks-url", &f.app.url("/.well-known/jwks.json")])
            .args(["--issuer", &f.app.url, "--audience", EXCHANGED_AUDIENCE])
            .args(["--alg", alg.as_str(), "--token", token])
            .output()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn provider_rs256_access_token_is_exchanged_for_a_token_naming_the_client() {
    let Some(f) = federation(RS256_RESOURCE, &[JwsAlg::RS256]).await else {
        return;
    };
    let upstream = f.provider.access_token(RS256_RESOURCE).await;

    let resp = f.exchange(&upstream).await;
    assert_eq!(
        resp.issued_token_type.as_deref(),
        Some("urn:ietf:params:oauth:token-type:access_token")
    );
    assert_eq!(resp.scope.as_deref(), Some("read"));
    let status = f.app.client.auth_status(&resp.access_token).await.expect("valid");
    // The upstream identity (for client_credentials tokens the client itself, RFC 9068
    // §2.2) became a local user on its first exchange.
    assert!(status.sub.starts_with("usr_"), "{}", status.sub);
    assert_eq!(status.client_id, format!("upstream:{ISSUER_NAME}"));
    assert_eq!(status.aud, EXCHANGED_AUDIENCE);
    let up = status.upstream.expect("upstream identity");
    assert_eq!(
        (up.name.as_str(), up.iss.as_str(), up.sub.as_str()),
        (ISSUER_NAME, f.provider.issuer.as_str(), CLIENT_ID)
    );
}

#[tokio::test]
async fn token_exchanged_from_the_provider_verifies_with_jose_and_pyjwt() {
    let Some(f) = federation(RS256_RESOURCE, &[JwsAlg::RS256]).await else {
        return;
    };
    let upstream = f.provider.access_token(RS256_RESOURCE).await;
    let exchanged = f.exchange(&upstream).await.access_token;

    for library in [Library::Jose, Library::PyJwt] {
        let out = library.verify(&f, &exchanged).await;
        assert!(
            out.status.success(),
            "{library:?} refused the exchanged token: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(claims["iss"], f.app.url, "{library:?}");
        assert_eq!(claims["aud"], EXCHANGED_AUDIENCE, "{library:?}");
        assert!(
            claims["sub"].as_str().is_some_and(|s| s.starts_with("usr_")),
            "{library:?}"
        );
        assert_eq!(claims["scope"], "read", "{library:?}");
    }
}

/// The provider publishes an RSA and a P-256 key side by side; an ES256 token is exchanged
/// where the issuer allows ES256 and refused as `alg-not-allowed` where it allows RS256 only.
#[tokio::test]
async fn provider_es256_access_token_is_exchanged_only_where_es256_is_allowed() {
    let Some(f) = federation(ES256_RESOURCE, &[JwsAlg::RS256, JwsAlg::ES256]).await else {
        return;
    };
    let upstream = f.provider.access_token(ES256_RESOURCE).await;
    f.exchange(&upstream).await;

    let spec = f.provider.issuer_spec(ES256_RESOURCE, &[JwsAlg::RS256]);
    let rs256_only = Federation {
        app: TestApp::with_config(move |c| c.issuers = vec![spec]).await,
        ..f
    };
    assert_eq!(rs256_only.refusal(&upstream).await, "alg-not-allowed");
}

#[tokio::test]
async fn verify_explains_a_provider_token_as_valid_with_every_step_passed() {
    let Some(f) = federation(RS256_RESOURCE, &[JwsAlg::RS256]).await else {
        return;
    };
    let upstream = f.provider.access_token(RS256_RESOURCE).await;

    let report = f.verify(&upstream).await;
    assert!(report.valid, "{report:#?}");
    assert_eq!(report.issuer_name.as_deref(), Some(ISSUER_NAME));
    let failed: Vec<_> = report.steps.iter().filter(|s| !s.passed).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    for check in ["issuer", "key", "signature", "expiry", "audience", "identity"] {
        assert!(
            report.steps.iter().any(|s| s.check == check),
            "no {check} step: {report:#?}"
        );
    }
    // The provider's own RFC 9068 header, and the kid tollgate found in its JWKS.
    let header = report.header.as_ref().unwrap();
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("RS256"), Some("at+jwt"))
    );
    assert_eq!(report.kid.as_deref(), header["kid"].as_str());
    let identity = report.identity.as_ref().unwrap();
    assert_eq!(identity["subject"], CLIENT_ID);
    assert_eq!(identity["issuer"], f.provider.issuer.as_str());
    let exchange = report.exchange.as_ref().unwrap();
    assert_eq!(exchange["scope"], "read");
    assert_eq!(exchange["audience"], EXCHANGED_AUDIENCE);
}

#[tokio::test]
async fn verify_with_the_wrong_audience_configured_reports_aud_mismatch_after_the_signature() {
    let Some(f) = federation("https://other-api.example.com", &[JwsAlg::RS256]).await else {
        return;
    };
    let upstream = f.provider.access_token(RS256_RESOURCE).await;

    let report = f.verify(&upstream).await;
    assert!(!report.valid);
    assert_eq!(report.reason.as_deref(), Some("aud-mismatch"), "{report:#?}");
    assert_eq!(report.issuer_name.as_deref(), Some(ISSUER_NAME));
    let signature = report.steps.iter().find(|s| s.check == "signature");
    assert!(signature.is_some_and(|s| s.passed), "{report:#?}");
    let last = report.steps.last().unwrap();
    assert_eq!((last.check.as_str(), last.passed), ("audience", false));
    assert_eq!(f.refusal(&upstream).await, "aud-mismatch");
}

/// The provider's tokens live 300 s; past that and the issuer's 30 s of skew, tollgate
/// refuses them as expired.
#[tokio::test]
async fn provider_token_past_its_exp_is_refused_as_expired() {
    let Some(f) = federation(RS256_RESOURCE, &[JwsAlg::RS256]).await else {
        return;
    };
    let upstream = f.provider.access_token(RS256_RESOURCE).await;
    f.exchange(&upstream).await;

    // tollgate's clock stands still at the app's start while the provider's runs on, so `iat`
    // may be a few seconds ahead: a minute of margin.
    f.app.advance(Duration::from_secs(300 + 30 + 60));
    assert_eq!(f.refusal(&upstream).await, "expired");
}
