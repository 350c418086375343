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
}
