//! Upstream OIDC issuers: which are trusted (`registry`), their keys (`jwks_cache`), and
//! verifying their tokens (`verifier`).

pub mod jwks_cache;
pub mod registry;
pub mod verifier;
