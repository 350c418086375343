//! Verifying upstream tokens at run time: the registry's current issuers, their keys from
//! the JWKS cache, and the engine of `tollgate_crypto::upstream`.
//!
//! Keys are looked up before the engine runs, so the engine stays synchronous: a warm
//! issuer costs no I/O, a cold one one fetch, and an unknown `kid` one refetch (rate
//! limited by the cache). A failed fetch is reported as `jwks-unavailable`, never as a bad
//! signature.

use super::jwks_cache::{JwksCache, JwksSource, KeySet};
use super::registry::IssuerRegistry;
use crate::clock::SharedClock;
use crate::metrics::{Metrics, UpstreamLabels};
use std::sync::Arc;
use tollgate_core::upstream::issuer::IssuerSet;
use tollgate_core::upstream::{Claims, Issuer, JwksLocation, Refusal, Trace, UpstreamIdentity};
use tollgate_core::{JwsAlg, UnixTime};
use tollgate_crypto::UnverifiedJws;
use tollgate_crypto::upstream::{KeyLookup, verify_upstream};

/// A verified upstream token, owned (independent of the registry snapshot).
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub issuer: Issuer,
    pub identity: UpstreamIdentity,
    pub claims: Claims,
    pub kid: Option<String>,
    pub alg: JwsAlg,
}

impl VerifiedToken {
    /// `exp` of the upstream token.
    #[must_use]
    pub fn expires_at(&self) -> Option<UnixTime> {
        self.claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .map(UnixTime)
    }
}

#[derive(Debug)]
pub struct UpstreamVerifier {
    registry: Arc<IssuerRegistry>,
    jwks: Arc<JwksCache>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    max_token_bytes: usize,
}

/// The keys the engine will see.
enum Keys {
    /// The token is refused before keys matter (unknown issuer, bad alg, garbage).
    NotNeeded,
    Ready(Arc<KeySet>),
    Unavailable(String),
}

/// Where the cache finds an issuer's keys.
#[must_use]
pub fn jwks_source(issuer: &Issuer) -> JwksSource {
    match &issuer.jwks {
        JwksLocation::Discovery => JwksSource::Discovery {
            issuer: issuer.issuer.clone(),
        },
        JwksLocation::Uri(uri) => JwksSource::Uri(uri.clone()),
    }
}

impl UpstreamVerifier {
    #[must_use]
    pub fn new(
        registry: Arc<IssuerRegistry>,
        jwks: Arc<JwksCache>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        max_token_bytes: usize,
    ) -> Self {
        Self {
            registry,
            jwks,
            clock,
            metrics,
            max_token_bytes,
        }
    }

    #[must_use]
    pub fn registry(&self) -> &Arc<IssuerRegistry> {
        &self.registry
    }

    #[must_use]
    pub fn jwks(&self) -> &Arc<JwksCache> {
        &self.jwks
    }

    /// Verifies `token`, reporting every step to `trace`.
    pub async fn verify(&self, token: &str, trace: &mut impl Trace) -> Result<VerifiedToken, Refusal> {
        let view = self.registry.current();
        let keys = self.keys_for(token, &view.set).await;
        let mut resolve = |_: &Issuer, kid: Option<&str>, alg: JwsAlg| match &keys {
            Keys::Ready(set) => {
                let found = match kid {
                    Some(kid) => set.verifier(kid, alg),
                    None => set.sole_verifier(alg),
                };
                found.map_or(KeyLookup::NotFound, KeyLookup::Found)
            }
            Keys::Unavailable(why) => KeyLookup::Unavailable(why.clone()),
            Keys::NotNeeded => KeyLookup::NotFound,
        };
        let result = verify_upstream(
            token,
            self.max_token_bytes,
            &view.set,
            self.clock.now(),
            &mut resolve,
            trace,
        )
        .map(|v| VerifiedToken {
            issuer: v.issuer.clone(),
            identity: v.identity,
            claims: v.claims,
            kid: v.kid,
            alg: v.alg,
        });
        self.count(&view.set, &result);
        result
    }

    /// Fetches (or reuses) the keys of the issuer the token names, when it matters.
    async fn keys_for(&self, token: &str, set: &IssuerSet) -> Keys {
        let Ok(jws) = UnverifiedJws::parse(token, self.max_token_bytes) else {
            return Keys::NotNeeded;
        };
        let Ok(iss) = jws.unverified_iss() else {
            return Keys::NotNeeded;
        };
        let Some(issuer) = set.get(&iss.0) else {
            return Keys::NotNeeded;
        };
        let header = jws.header();
        let Some(alg) = issuer.allowed_alg(&header.alg) else {
            return Keys::NotNeeded;
        };
        if !issuer.enabled {
            return Keys::NotNeeded;
        }
        let source = jwks_source(issuer);
        let set = match self.jwks.keys(&issuer.name, &source).await {
            Ok(set) => set,
            Err(e) => return Keys::Unavailable(e.to_string()),
        };
        let kid = header.kid.as_deref();
        let known = match kid {
            Some(k) => set.verifier(k, alg).is_some(),
            None => set.sole_verifier(alg).is_some(),
        };
        match kid {
            Some(k) if !known => match self.jwks.refresh_for_unknown_kid(&issuer.name, &source, k).await {
                Ok(fresh) => Keys::Ready(fresh),
                Err(e) => Keys::Unavailable(e.to_string()),
            },
            _ => Keys::Ready(set),
        }
    }

    fn count(&self, set: &IssuerSet, result: &Result<VerifiedToken, Refusal>) {
        // Label by configured issuer name only: `iss` values from tokens are attacker-chosen.
        let (issuer, outcome) = match result {
            Ok(v) => (v.issuer.name.clone(), "ok"),
            Err(r) => {
                let name = r
                    .issuer
                    .as_deref()
                    .and_then(|iss| set.get(iss))
                    .map_or("(unknown)", |i| i.name.as_str());
                (name.to_owned(), r.reason.code())
            }
        };
        self.metrics
            .upstream_verifications
            .get_or_create(&UpstreamLabels { issuer, outcome })
            .inc();
    }
}
