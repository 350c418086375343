//! Certificate issuance rules, without I/O: which DNS names a pattern allows (IDNA, label
//! boundaries, explicit wildcard depth), what a CSR may ask for per profile (client or
//! server), the key types accepted, and the lifetime by context.

pub mod names;
pub mod policy;

pub use names::{DnsName, DnsPattern, NameError};
pub use policy::{
    CertRefusal, CsrRequest, KeyKind, ServerRules, TtlContext, TtlLimits, check_client, check_key,
    check_server, clamp_ttl,
};
