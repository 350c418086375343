//! Upstream OIDC issuers: fetching and caching their keys.

pub mod jwks_cache;
