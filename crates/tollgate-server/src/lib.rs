//! tollgate's HTTP server: the only crate that knows HTTP.
//!
//! `routes` hold the handlers, `extract` turns raw requests into typed input, `error` maps
//! every failure to a response in one place. The modules between (`clients`, `tokens`,
//! `keyring`, `hashing`, `admin_tokens`, `audit`) are the services handlers call; they
//! combine the pure domain (`tollgate-core`), crypto and the store.

pub mod admin_tokens;
pub mod app;
pub mod audit;
pub mod audit_chain;
pub mod authz;
pub mod certs;
pub mod clients;
pub mod clock;
pub mod config;
pub mod data_dir;
pub mod device;
pub mod device_keys;
pub mod documents;
pub mod error;
pub mod exchange;
pub mod extract;
pub mod hashing;
pub mod keyring;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod orgs;
pub mod pages;
pub mod publish;
pub mod rate_limit;
pub mod registry;
pub mod routes;
pub mod sessions;
pub mod snapshot;
pub mod state;
pub mod tokens;
pub mod upstream;
pub mod users;
pub mod web_login;
pub mod workloads;

pub use app::{App, StartError, serve};
pub use config::Config;

/// Formats Unix seconds as RFC 3339 (UTC).
#[must_use]
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}
