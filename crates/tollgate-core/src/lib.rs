//! tollgate's domain: what a credential may contain and why a request is refused.
//!
//! This crate does no I/O, spawns nothing and never reads the clock: time comes in as a
//! [`UnixTime`] argument, randomness as bytes. Everything here can be tested with plain
//! unit and property tests.

pub mod alg;
pub mod audience;
pub mod authz;
pub mod certs;
pub mod claims;
pub mod client_grant;
pub mod device;
pub mod glob;
pub mod ratelimit;
pub mod reason;
pub mod registry;
pub mod scope;
pub mod secret_token;
pub mod time;
pub mod trust;
pub mod upstream;

pub use alg::{JwsAlg, SigningAlg};
pub use audience::Audience;
pub use claims::AccessTokenClaims;
pub use reason::Reason;
pub use scope::Scope;
pub use time::UnixTime;
