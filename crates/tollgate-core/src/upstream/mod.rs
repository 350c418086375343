//! Upstream OIDC issuers: how each is trusted (`issuer`), which claims a verified token must
//! carry and what they mean (`claims`), and the trace of a verification (`trace`).
//!
//! Nothing here reads a claim before its token's signature has been verified, except the
//! one field the verifier needs to choose the issuer: [`claims::UnverifiedIss`].

pub mod claims;
pub mod issuer;
pub mod trace;

pub use claims::{Claims, UnverifiedIss, UpstreamIdentity};
pub use issuer::{
    AudienceRule, ClaimMapping, GrantSpec, Issuer, IssuerError, IssuerKind, IssuerSpec, JwksLocation, Preset,
};
pub use trace::{Check, NoTrace, Refusal, Report, Trace};
