//! The JWS algorithms tollgate signs with.

use std::fmt;
use std::str::FromStr;

/// An algorithm tollgate can sign its own tokens with (RFC 7518 / RFC 8037 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum SigningAlg {
    /// Ed25519 (RFC 8037): small, fast, the default.
    EdDSA,
    /// ECDSA P-256 with SHA-256, signature as raw `r‖s`.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit key.
    RS256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of `EdDSA`, `ES256`, `RS256`.
#[derive(Debug, thiserror::Error)]
#[error("unsupported signing algorithm `{0}`; use one of EdDSA, ES256, RS256")]
pub struct UnknownAlg(pub String);

impl FromStr for SigningAlg {
    type Err = UnknownAlg;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigningAlg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAlg(s.to_owned()))
    }
}
