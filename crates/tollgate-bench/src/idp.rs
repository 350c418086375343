//! The upstream issuers of the token-exchange and refresh phases, served by the load
//! generator itself.
//!
//! One RS256 key, two issuers on 127.0.0.1 that both publish it: `…/clerk`, whose exchanges
//! issue access tokens only (the token-exchange phase), and `…/clerk/sessions`, whose
//! exchanges also start a session with a rotating refresh token (the refresh phase). Two
//! issuers, so that the token-exchange phase does not pay for a session per request. Each
//! serves OpenID Connect discovery and its JWKS and mints Clerk-shaped session tokens. The
//! server child trusts both through the hidden `--upstream-issuer` flag (the first one's
//! URL) and finds their keys by discovery, as it would a real IdP's. A third issuer,
//! `…/clerk/ci`, has GitHub Actions' preset and mints GitHub-shaped CI tokens, each with its
//! own `jti` (the CI-exchange phase: each is accepted once).

use anyhow::Context as _;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tollgate_core::upstream::{GrantSpec, IssuerSpec, Preset};
use tollgate_core::{SigningAlg, UnixTime};
use tollgate_crypto::{SigningKey, VerifyingKey, jws};

/// The issuers' names in the server's configuration: without and with sessions.
const ISSUER_NAME: &str = "loadgen-idp";
const SESSIONS_ISSUER_NAME: &str = "loadgen-idp-sessions";
/// The CI issuer's name and the audience its tokens carry.
pub const CI_ISSUER_NAME: &str = "loadgen-ci";
const CI_AUDIENCE: &str = "loadgen-ci";
/// Appended to the first issuer's URL: the CI issuer.
const CI_SUFFIX: &str = "/ci";
/// The path under which the issuer without sessions lives on its port.
const ISSUER_PATH: &str = "/clerk";
/// Appended to that issuer's URL: the issuer whose exchanges start sessions.
const SESSIONS_SUFFIX: &str = "/sessions";

/// The URL of the issuer with sessions, given the one of the issuer without.
fn sessions_issuer_url(issuer_url: &str) -> String {
    format!("{issuer_url}{SESSIONS_SUFFIX}")
}

fn ci_issuer_url(issuer_url: &str) -> String {
    format!("{issuer_url}{CI_SUFFIX}")
}

/// How the server trusts the issuers, given the URL of the first: Clerk's preset (no `aud`,
/// `sid` required), keys by discovery, and a grant for the tokens exchanged from them; the
/// second one's grant also starts sessions (`refresh_tokens = true`); the third is a GitHub
/// Actions issuer (its tokens are judged by trust policies).
pub fn issuer_specs(issuer_url: &str) -> [IssuerSpec; 3] {
    let spec = |name: &str, issuer: String, refresh_tokens: bool| IssuerSpec {
        name: name.to_owned(),
        issuer,
        preset: Preset::Clerk,
        authorized_parties: vec!["https://app.example.com".to_owned()],
        grant: Some(GrantSpec {
            scopes: vec!["orders:read".to_owned(), "orders:write".to_owned()],
            audiences: vec!["https://api.example.com/orders".to_owned()],
            refresh_tokens,
            ..GrantSpec::default()
        }),
        enabled: true,
        ..IssuerSpec::default()
    };
    let ci = IssuerSpec {
        name: CI_ISSUER_NAME.to_owned(),
        issuer: ci_issuer_url(issuer_url),
        preset: Preset::GithubActions,
        audiences: vec![CI_AUDIENCE.to_owned()],
        enabled: true,
        ..IssuerSpec::default()
    };
    [
        spec(ISSUER_NAME, issuer_url.to_owned(), false),
        spec(SESSIONS_ISSUER_NAME, sessions_issuer_url(issuer_url), true),
        ci,
    ]
}

/// Which of the two issuers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// Exchanges issue an access token only.
    Plain,
    /// Exchanges also start a session and return a refresh token.
    Sessions,
    /// GitHub Actions-shaped CI tokens.
    Ci,
}

impl Upstream {
    fn index(self) -> usize {
        match self {
            Upstream::Plain => 0,
            Upstream::Sessions => 1,
            Upstream::Ci => 2,
        }
    }
}

/// A running issuer; its HTTP server stops when this is dropped.
#[derive(Debug)]
pub struct UpstreamIdp {
    key: SigningKey,
    issuer_url: String,
    fetches: Arc<Fetches>,
    server: tokio::task::JoinHandle<()>,
}

/// Requests each issuer's endpoints have served, by [`Upstream::index`].
#[derive(Debug, Default)]
struct Fetches {
    discovery: [AtomicU64; 3],
    jwks: [AtomicU64; 3],
}

/// Discovery documents and JWKS one issuer served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuerFetches {
    pub name: &'static str,
    pub discovery: u64,
    pub jwks: u64,
}

impl UpstreamIdp {
    /// Generates the RS256 key and serves both issuers' discovery and JWKS on 127.0.0.1, a
    /// free port.
    pub async fn start() -> anyhow::Result<Self> {
        let (key, _pkcs8) =
            SigningKey::generate(SigningAlg::RS256).context("cannot generate the upstream RSA key")?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot listen on 127.0.0.1 for the upstream issuer")?;
        let issuer_url = format!("http://{}{ISSUER_PATH}", listener.local_addr()?);
        let fetches = Arc::new(Fetches::default());
        let jwks = json!({ "keys": [key.public_jwk()] });
        let mut router = Router::new();
        for (upstream, path) in [
            (Upstream::Plain, ISSUER_PATH.to_owned()),
            (Upstream::Sessions, sessions_issuer_url(ISSUER_PATH)),
            (Upstream::Ci, ci_issuer_url(ISSUER_PATH)),
        ] {
            let url = format!("http://{}{path}", listener.local_addr()?);
            let discovery = json!({
                "issuer": url,
                "jwks_uri": format!("{url}/.well-known/jwks.json"),
                "id_token_signing_alg_values_supported": ["RS256"],
            });
            let jwks = jwks.clone();
            let (on_discovery, on_jwks) = (fetches.clone(), fetches.clone());
            let i = upstream.index();
            router = router
                .route(
                    &format!("{path}/.well-known/openid-configuration"),
                    get(move || async move {
                        on_discovery.discovery[i].fetch_add(1, Ordering::Relaxed);
                        axum::Json(discovery)
                    }),
                )
                .route(
                    &format!("{path}/.well-known/jwks.json"),
                    get(move || async move {
                        on_jwks.jwks[i].fetch_add(1, Ordering::Relaxed);
                        (
                            [(header::CACHE_CONTROL, "public, max-age=3600")],
                            axum::Json(jwks),
                        )
                    }),
                );
        }
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                println!("warning: the upstream issuer stopped serving: {e}");
            }
        });
        Ok(Self {
            key,
            issuer_url,
            fetches,
            server,
        })
    }

    /// The URL (`iss`) of the issuer without sessions, on 127.0.0.1; the server child is
    /// given this one and derives the other.
    pub fn issuer_url(&self) -> &str {
        &self.issuer_url
    }

    /// The verifier the server builds from the published JWK.
    pub fn verifying_key(&self) -> anyhow::Result<VerifyingKey> {
        VerifyingKey::for_signing_key(&self.key).context("cannot build the upstream verifying key")
    }

    /// A Clerk v2 session token of the issuer without sessions, for the default user,
    /// issued at `now` that stays valid for `lifetime`.
    pub fn mint(&self, now: UnixTime, lifetime: Duration) -> anyhow::Result<String> {
        self.mint_for(Upstream::Plain, DEFAULT_SUBJECT, now, lifetime)
    }

    /// A Clerk v2 session token of `upstream` for the upstream user `subject`.
    pub fn mint_for(
        &self,
        upstream: Upstream,
        subject: &str,
        now: UnixTime,
        lifetime: Duration,
    ) -> anyhow::Result<String> {
        let claims = match upstream {
            Upstream::Plain => session_claims(&self.issuer_url, subject, now, lifetime),
            Upstream::Sessions => {
                session_claims(&sessions_issuer_url(&self.issuer_url), subject, now, lifetime)
            }
            Upstream::Ci => ci_claims(&ci_issuer_url(&self.issuer_url), subject, now, lifetime),
        };
        jws::sign(&self.key, "JWT", &claims).context("cannot sign the upstream token")
    }

    /// Discovery documents and JWKS each issuer served so far.
    pub fn fetches(&self) -> [IssuerFetches; 3] {
        [
            (Upstream::Plain, ISSUER_NAME),
            (Upstream::Sessions, SESSIONS_ISSUER_NAME),
            (Upstream::Ci, CI_ISSUER_NAME),
        ]
        .map(|(upstream, name)| IssuerFetches {
            name,
            discovery: self.fetches.discovery[upstream.index()].load(Ordering::Relaxed),
            jwks: self.fetches.jwks[upstream.index()].load(Ordering::Relaxed),
        })
    }
}

impl Drop for UpstreamIdp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The upstream user of the tokens [`UpstreamIdp::mint`] signs, an id of Clerk's length.
const DEFAULT_SUBJECT: &str = "user_2mXn4R9pQ7sT1vW8yZ3bC5dF0gH";

/// Claims of a Clerk v2 session token for `subject`, ids of Clerk's length.
fn session_claims(issuer_url: &str, subject: &str, now: UnixTime, lifetime: Duration) -> Value {
    let life = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    json!({
        "azp": "https://app.example.com",
        "email": "ada.lovelace@example.com",
        "exp": now.0.saturating_add(life),
        "fva": [3, -1],
        "iat": now.0,
        "iss": issuer_url,
        "jti": "b1c4d8e2f7a90356c1e2",
        "nbf": now.0 - 10,
        "o": {
            "id": "org_2mXn5AbCdEfGhIjKlMnOpQrStUv",
            "per": "org:orders:read,org:orders:manage",
            "rol": "admin",
            "slg": "acme",
        },
        "sid": "sess_2mXn4QzK8bY1vR7tW3pL9cD6fHj",
        "sub": subject,
        "v": 2,
    })
}

/// The repository the CI tokens come from, and its owner's id (what the trust policy pins).
pub const CI_REPOSITORY: &str = "bench/app";
pub const CI_OWNER_ID: &str = "4242";

/// Claims of a GitHub Actions OIDC token of a release on a protected tag; `jti` is the
/// token's own (each CI token is accepted once).
fn ci_claims(issuer_url: &str, jti: &str, now: UnixTime, lifetime: Duration) -> Value {
    let life = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    json!({
        "iss": issuer_url, "aud": CI_AUDIENCE, "jti": jti,
        "sub": format!("repo:{CI_REPOSITORY}:ref:refs/tags/v1.0.0"),
        "iat": now.0, "nbf": now.0 - 10, "exp": now.0.saturating_add(life),
        "repository": CI_REPOSITORY, "repository_id": "990001", "repository_owner": "bench",
        "repository_owner_id": CI_OWNER_ID, "repository_visibility": "private",
        "ref": "refs/tags/v1.0.0", "ref_type": "tag", "ref_protected": "true",
        "sha": "5f1c0ffee0ddba11c0ffee0ddba11c0ffee0ddba", "workflow": "release", "event_name": "push",
        "workflow_ref": "bench/app/.github/workflows/release.yml@refs/tags/v1.0.0",
        "job_workflow_ref": "bench/app/.github/workflows/release.yml@refs/tags/v1.0.0",
        "actor": "ada", "actor_id": "7", "run_id": "8800001", "run_attempt": "1",
        "runner_environment": "github-hosted",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_specs_resolve_for_a_loopback_url() {
        let [plain, sessions, ci] =
            issuer_specs("http://127.0.0.1:40123/clerk").map(|spec| spec.resolve().expect("valid spec"));
        assert_eq!(ci.kind, tollgate_core::upstream::IssuerKind::Workloads);
        assert_eq!(plain.name, ISSUER_NAME);
        assert!(!plain.audience.required, "Clerk session tokens carry no aud");
        assert!(
            !plain.refresh_tokens,
            "the token-exchange phase starts no sessions"
        );
        assert_eq!(sessions.issuer, "http://127.0.0.1:40123/clerk/sessions");
        assert!(sessions.refresh_tokens, "the refresh phase needs sessions");
    }
}
