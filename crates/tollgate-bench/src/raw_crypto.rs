//! The crypto a request cannot avoid, timed on one thread with the calls the server makes.
//!
//! Issuing a token needs one signature over the token and one HMAC-SHA256 of the client
//! secret; introspecting one needs a signature check and the caller's HMAC; exchanging an
//! upstream token needs the upstream RS256 signature check and one signature over the new
//! token; a refresh needs one signature over the new access token and two HMAC-SHA256 of
//! refresh tokens (the presented one, to look it up, and its successor, to store it).
//! Measured over tokens and secrets of production shape, these set the ceiling a request
//! rate is held to.

use crate::idp::UpstreamIdp;
use anyhow::Context as _;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tollgate_core::claims::UpstreamSubject;
use tollgate_core::secret_token::{self, SecretKind};
use tollgate_core::{AccessTokenClaims, SigningAlg, UnixTime};
use tollgate_crypto::{KeyedHasher, SigningKey, UnverifiedJws, VerifyingKey, jws};

/// Most operations a single measurement runs, whatever its time budget.
const MAX_OPS: u32 = 10_000_000;

/// Mean single-thread times of the crypto primitives a request needs.
#[derive(Debug, Clone, Copy)]
pub struct RawCrypto {
    pub alg: SigningAlg,
    /// Signature over a token's signing input.
    pub sign: Duration,
    /// Signature check of a parsed token (and base64url-decoding of its payload).
    pub verify: Duration,
    /// HMAC-SHA256 of a client secret and constant-time comparison with the stored hash.
    pub hmac: Duration,
    /// RS256 signature check of a parsed upstream token (and base64url-decoding of its payload).
    pub upstream_verify: Duration,
    /// Signature over an exchanged token's signing input (larger: it names the upstream subject).
    pub exchange_sign: Duration,
    /// HMAC-SHA256 of a refresh token (`tg_rt_…`), the keyed hash it is stored and found by.
    pub refresh_hmac: Duration,
    /// ES256 signature over a registry token's signing input (the registry key's default alg).
    pub registry_sign: Duration,
    /// ES256 (P-256) signature check, as of a CSR's signature.
    pub p256_verify: Duration,
}

impl RawCrypto {
    /// Times each primitive for about `budget`; the upstream token is one of `idp`'s.
    pub fn measure(alg: SigningAlg, budget: Duration, idp: &UpstreamIdp) -> anyhow::Result<Self> {
        let (key, _pkcs8) = SigningKey::generate(alg).context("cannot generate a signing key")?;
        let token = jws::sign(&key, "at+jwt", &production_shaped_claims())?;
        let (signing_input, _signature) = token.rsplit_once('.').context("a compact JWS has three parts")?;
        let parsed = UnverifiedJws::parse(&token, token.len())?;
        let verifier = VerifyingKey::for_signing_key(&key)?;
        let secret = secret_token::mint(SecretKind::ClientSecret, tollgate_crypto::random_byte_source());
        let mut server_secret = [0u8; 32];
        tollgate_crypto::random_bytes(&mut server_secret);
        let hasher = KeyedHasher::new([(1, server_secret.as_slice())]).context("one HMAC secret given")?;
        let (version, stored) = hasher.hash(&secret);
        let upstream_token = idp.mint(UnixTime(1_750_000_000), Duration::from_secs(60))?;
        let upstream = UnverifiedJws::parse(&upstream_token, upstream_token.len())?;
        let upstream_verifier = idp.verifying_key()?;
        let exchanged = jws::sign(&key, "at+jwt", &exchange_shaped_claims(idp.issuer_url()))?;
        let (exchanged_input, _signature) = exchanged
            .rsplit_once('.')
            .context("a compact JWS has three parts")?;
        let refresh_token =
            secret_token::mint(SecretKind::RefreshToken, tollgate_crypto::random_byte_source());

        let sign = time_per_op(budget, || key.sign(black_box(signing_input.as_bytes())))?;
        let verify = time_per_op(budget, || parsed.verify(black_box(&verifier)))?;
        let hmac = time_per_op(budget, || {
            hasher
                .verify(version, &stored, black_box(&secret))
                .then_some(())
                .context("HMAC mismatch")
        })?;
        let upstream_verify = time_per_op(budget, || upstream.verify(black_box(&upstream_verifier)))?;
        let exchange_sign = time_per_op(budget, || key.sign(black_box(exchanged_input.as_bytes())))?;
        let refresh_hmac = time_per_op(budget, || anyhow::Ok(hasher.hash(black_box(&refresh_token))))?;
        let (registry_key, _pkcs8) =
            SigningKey::generate(SigningAlg::ES256).context("cannot generate an ES256 key")?;
        let registry_token = jws::sign(&registry_key, "JWT", &registry_shaped_claims())?;
        let (registry_input, _signature) = registry_token
            .rsplit_once('.')
            .context("a compact JWS has three parts")?;
        let registry_sign = time_per_op(budget, || registry_key.sign(black_box(registry_input.as_bytes())))?;
        let registry_parsed = UnverifiedJws::parse(&registry_token, registry_token.len())?;
        let registry_verifier = VerifyingKey::for_signing_key(&registry_key)?;
        let p256_verify = time_per_op(budget, || registry_parsed.verify(black_box(&registry_verifier)))?;
        Ok(Self {
            alg,
            sign,
            verify,
            hmac,
            upstream_verify,
            exchange_sign,
            refresh_hmac,
            registry_sign,
            p256_verify,
        })
    }

    /// The crypto of one `client_credentials` request: a signature and an HMAC.
    pub fn issue(&self) -> RequestCrypto {
        RequestCrypto {
            label: format!("{} sign + HMAC", self.alg),
            cost: self.sign + self.hmac,
        }
    }

    /// The crypto of one introspection: a signature check and the caller's HMAC.
    pub fn introspect(&self) -> RequestCrypto {
        RequestCrypto {
            label: format!("{} verify + HMAC", self.alg),
            cost: self.verify + self.hmac,
        }
    }

    /// The crypto of one token exchange without client authentication: the upstream token's
    /// RS256 signature check and a signature over the new token.
    pub fn exchange(&self) -> RequestCrypto {
        RequestCrypto {
            label: format!("RS256 verify + {} sign", self.alg),
            cost: self.upstream_verify + self.exchange_sign,
        }
    }

    /// The crypto of one refresh without client authentication: a signature over the new
    /// access token (it carries the upstream subject, like an exchanged one) and the HMACs of
    /// the presented refresh token and of its successor.
    pub fn refresh(&self) -> RequestCrypto {
        RequestCrypto {
            label: format!("{} sign + 2 × HMAC-SHA256", self.alg),
            cost: self.exchange_sign + 2 * self.refresh_hmac,
        }
    }
}

/// The crypto of one registry token for a service account: an ES256 signature and the
/// secret's HMAC.
impl RawCrypto {
    pub fn registry(&self) -> RequestCrypto {
        RequestCrypto {
            label: "ES256 sign + HMAC".to_owned(),
            cost: self.registry_sign + self.hmac,
        }
    }

    /// The crypto of one server certificate: the caller's access token checked, the CSR's
    /// P-256 signature checked, and the CA's P-256 signature.
    pub fn certificate(&self) -> RequestCrypto {
        RequestCrypto {
            label: format!("{} verify + ES256 verify + ES256 sign", self.alg),
            cost: self.verify + self.p256_verify + self.registry_sign,
        }
    }
}

/// The unavoidable crypto of one request: what it is and how long it takes on one core.
#[derive(Debug, Clone)]
pub struct RequestCrypto {
    pub label: String,
    pub cost: Duration,
}

impl RequestCrypto {
    /// Requests per second one core could serve if this crypto were all there was to do.
    pub fn per_core_rate(&self) -> f64 {
        1.0 / self.cost.as_secs_f64()
    }
}

/// Claims of the size the loopback server issues (its `iss` and `aud` are its URL).
fn production_shaped_claims() -> AccessTokenClaims {
    let now = UnixTime(1_750_000_000);
    let client_id = secret_token::mint_id("tgc_", tollgate_crypto::random_byte_source());
    AccessTokenClaims {
        iss: "http://127.0.0.1:65535".to_owned(),
        sub: client_id.clone(),
        aud: "http://127.0.0.1:65535".to_owned(),
        client_id,
        scope: "bench:read".to_owned(),
        iat: now,
        nbf: now,
        exp: now.plus(Duration::from_secs(15 * 60)),
        jti: "0f8c2d7e4b9a41c3a6e5d2f1b0c9e8d7".to_owned(),
        upstream: None,
        act: None,
        user_ver: None,
        org: None,
        roles: Vec::new(),
        ci: None,
    }
}

/// Claims of the size the loopback server issues for an exchanged token of `idp`'s.
fn exchange_shaped_claims(issuer_url: &str) -> AccessTokenClaims {
    let subject = "user_2mXn4R9pQ7sT1vW8yZ3bC5dF0gH";
    AccessTokenClaims {
        sub: format!("loadgen-idp:{subject}"),
        aud: "https://api.example.com/orders".to_owned(),
        client_id: "upstream:loadgen-idp".to_owned(),
        scope: "orders:read orders:write".to_owned(),
        upstream: Some(UpstreamSubject {
            iss: issuer_url.to_owned(),
            sub: subject.to_owned(),
            name: "loadgen-idp".to_owned(),
            email: Some("ada.lovelace@example.com".to_owned()),
            org_id: Some("org_2mXn5AbCdEfGhIjKlMnOpQrStUv".to_owned()),
            org_role: Some("admin".to_owned()),
        }),
        ..production_shaped_claims()
    }
}

/// Mean time of one `op`, run for about `budget` (and at most [`MAX_OPS`] times).
fn time_per_op<T, E>(budget: Duration, mut op: impl FnMut() -> Result<T, E>) -> anyhow::Result<Duration>
where
    E: Into<anyhow::Error>,
{
    // Reading the clock after every operation would add its own cost to the fastest ones.
    const BATCH: u32 = 16;
    let started = Instant::now();
    let mut ops = 0u32;
    while ops < MAX_OPS && (ops == 0 || started.elapsed() < budget) {
        for _ in 0..BATCH {
            black_box(op().map_err(Into::into)?);
        }
        ops += BATCH;
    }
    Ok(started.elapsed() / ops)
}

/// Claims of the size the loopback server issues for a registry token of the bench phase.
fn registry_shaped_claims() -> tollgate_core::registry::RegistryClaims {
    let now = UnixTime(1_750_000_000);
    tollgate_core::registry::RegistryClaims {
        iss: "http://127.0.0.1:65535".to_owned(),
        sub: secret_token::mint_id("tgc_", tollgate_crypto::random_byte_source()),
        aud: "registry".to_owned(),
        exp: now.plus(Duration::from_secs(300)),
        nbf: now,
        iat: now,
        jti: "0f8c2d7e4b9a41c3a6e5d2f1b0c9e8d7".to_owned(),
        access: vec![tollgate_core::registry::RegistryAccess {
            resource_type: "repository".to_owned(),
            name: "bench/app".to_owned(),
            actions: vec!["pull".to_owned(), "push".to_owned()],
        }],
    }
}
