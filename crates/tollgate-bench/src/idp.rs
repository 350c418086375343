//! The upstream issuer of the token-exchange phase, served by the load generator itself.
//!
//! It holds an RS256 key, serves OpenID Connect discovery and its JWKS on 127.0.0.1, and
//! mints Clerk-shaped session tokens. The server child trusts it through the hidden
//! `--upstream-issuer` flag and finds its keys by discovery, as it would a real IdP's.

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

/// The issuer's name in the server's configuration.
const ISSUER_NAME: &str = "loadgen-idp";
/// The path under which the issuer lives on its port.
const ISSUER_PATH: &str = "/clerk";

/// How the server trusts the issuer at `issuer_url`: Clerk's preset (no `aud`, `sid`
/// required), keys by discovery, and a grant for the tokens exchanged from it.
pub fn issuer_spec(issuer_url: &str) -> IssuerSpec {
    IssuerSpec {
        name: ISSUER_NAME.to_owned(),
        issuer: issuer_url.to_owned(),
        preset: Preset::Clerk,
        authorized_parties: vec!["https://app.example.com".to_owned()],
        grant: Some(GrantSpec {
            scopes: vec!["orders:read".to_owned(), "orders:write".to_owned()],
            audiences: vec!["https://api.example.com/orders".to_owned()],
            ..GrantSpec::default()
        }),
        enabled: true,
        ..IssuerSpec::default()
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

/// Requests each endpoint has served.
#[derive(Debug, Default)]
struct Fetches {
    discovery: AtomicU64,
    jwks: AtomicU64,
}

impl UpstreamIdp {
    /// Generates the RS256 key and serves discovery and the JWKS on 127.0.0.1, a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let (key, _pkcs8) =
            SigningKey::generate(SigningAlg::RS256).context("cannot generate the upstream RSA key")?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot listen on 127.0.0.1 for the upstream issuer")?;
        let issuer_url = format!("http://{}{ISSUER_PATH}", listener.local_addr()?);
        let fetches = Arc::new(Fetches::default());
        let discovery = json!({
            "issuer": issuer_url,
            "jwks_uri": format!("{issuer_url}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let jwks = json!({ "keys": [key.public_jwk()] });
        let (on_discovery, on_jwks) = (fetches.clone(), fetches.clone());
        let router = Router::new()
            .route(
                &format!("{ISSUER_PATH}/.well-known/openid-configuration"),
                get(move || async move {
                    on_discovery.discovery.fetch_add(1, Ordering::Relaxed);
                    axum::Json(discovery)
                }),
            )
            .route(
                &format!("{ISSUER_PATH}/.well-known/jwks.json"),
                get(move || async move {
                    on_jwks.jwks.fetch_add(1, Ordering::Relaxed);
                    (
                        [(header::CACHE_CONTROL, "public, max-age=3600")],
                        axum::Json(jwks),
                    )
                }),
            );
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

    /// The issuer URL (`iss`), on 127.0.0.1.
    pub fn issuer_url(&self) -> &str {
        &self.issuer_url
    }

    /// The verifier the server builds from the published JWK.
    pub fn verifying_key(&self) -> anyhow::Result<VerifyingKey> {
        VerifyingKey::for_signing_key(&self.key).context("cannot build the upstream verifying key")
    }

    /// A Clerk v2 session token issued at `now` that stays valid for `lifetime`.
    pub fn mint(&self, now: UnixTime, lifetime: Duration) -> anyhow::Result<String> {
        let claims = session_claims(&self.issuer_url, now, lifetime);
        jws::sign(&self.key, "JWT", &claims).context("cannot sign the upstream token")
    }

    /// Discovery documents and JWKS served so far.
    pub fn fetches(&self) -> (u64, u64) {
        (
            self.fetches.discovery.load(Ordering::Relaxed),
            self.fetches.jwks.load(Ordering::Relaxed),
        )
    }
}

impl Drop for UpstreamIdp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Claims of a Clerk v2 session token, ids of Clerk's length.
fn session_claims(issuer_url: &str, now: UnixTime, lifetime: Duration) -> Value {
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
        "sub": "user_2mXn4R9pQ7sT1vW8yZ3bC5dF0gH",
        "v": 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_spec_resolves_for_a_loopback_url() {
        let issuer = issuer_spec("http://127.0.0.1:40123/clerk")
            .resolve()
            .expect("valid spec");
        assert_eq!(issuer.name, ISSUER_NAME);
        assert!(!issuer.audience.required, "Clerk session tokens carry no aud");
    }
}
