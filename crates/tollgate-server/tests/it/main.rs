//! Integration tests: the real server on a loopback port, driven through the SDK (and raw
//! HTTP where the wire itself is under test). One binary for the crate, one module per area.
//!
//! Backend: SQLite by default; `TOLLGATE_TEST_DATABASE=postgres` runs everything against
//! PostgreSQL (each test in its own schema).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod mock_idp;
mod registry;
mod registry_harness;
mod test_app;

mod admin;
mod audit;
mod certs;
mod ci;
mod device;
mod device_keys;
mod discovery;
mod federation;
mod guards;
mod interop;
mod interop_oidc;
mod invites;
mod jwks_cache;
mod keys;
mod oauth_errors;
mod oauth_flow;
mod openapi_fuzz;
mod ops;
mod orgs;
mod rate_limits;
mod sessions;
mod users;
mod web;
