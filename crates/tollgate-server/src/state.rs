//! The state every handler sees.

use crate::clock::SharedClock;
use crate::config::Config;
use crate::hashing::SecretHashing;
use crate::keyring::KeyRing;
use crate::metrics::Metrics;
use crate::upstream::verifier::UpstreamVerifier;
use std::sync::Arc;
use tollgate_store::Store;

/// Shared, cheaply clonable application state.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyRing>,
    pub hashing: Arc<SecretHashing>,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    /// Trusted upstream issuers, their keys and the verifier of their tokens.
    pub upstream: Arc<UpstreamVerifier>,
    /// The key that hash-chains audit events.
    pub audit_chain: Arc<crate::audit_chain::AuditChain>,
    /// The task that appends audit events, in batches.
    pub audit_writer: Arc<crate::audit::AuditWriter>,
    /// Short-lived shared state (replay caches, publish sessions): Redis when configured,
    /// else the database.
    pub ephemeral: Arc<dyn tollgate_store::Ephemeral>,
    /// Rate-limit counters: Redis when configured (shared by replicas), else this process.
    pub rate_limits: Arc<dyn tollgate_store::RateLimits>,
    /// The configured limits and trusted proxies.
    pub limits: Arc<crate::rate_limit::Limits>,
    /// Redis, when configured (for readiness checks).
    pub redis: Option<tollgate_store::RedisEphemeral>,
    /// The registry key's certificate for `x5c` headers, made once per key.
    pub registry_certs: Arc<crate::registry::CertCache>,
    /// The certificate authority (`None` with `certs.enabled = false`).
    pub ca: Option<Arc<dyn crate::certs::CertificateAuthority>>,
    /// Browser sign-in to tollgate's pages (OpenID Connect relying party).
    pub web_login: Arc<crate::web_login::WebLogin>,
}

impl AppState {
    /// The server-wide limits every grant is decided under.
    pub fn grant_limits(&self) -> Result<tollgate_core::client_grant::GrantLimits, crate::error::ApiError> {
        // Validated when the configuration was loaded; a failure here is a bug.
        let default_audience = tollgate_core::Audience::parse(self.config.default_audience())
            .map_err(|e| crate::error::ApiError::internal(&e))?;
        Ok(tollgate_core::client_grant::GrantLimits {
            default_audience,
            access_ttl: self.config.tokens.access_ttl,
        })
    }
}
