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
#[error("unsupported algorithm `{0}`")]
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

/// An algorithm tollgate accepts signatures of (its own and upstream issuers' tokens).
///
/// `none` and the HMAC algorithms are deliberately absent: a verifier holding only public
/// keys must never accept them (RFC 8725 §3.1–3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum JwsAlg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl JwsAlg {
    pub const ALL: [JwsAlg; 9] = [
        JwsAlg::RS256,
        JwsAlg::RS384,
        JwsAlg::RS512,
        JwsAlg::PS256,
        JwsAlg::PS384,
        JwsAlg::PS512,
        JwsAlg::ES256,
        JwsAlg::ES384,
        JwsAlg::EdDSA,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlg::RS256 => "RS256",
            JwsAlg::RS384 => "RS384",
            JwsAlg::RS512 => "RS512",
            JwsAlg::PS256 => "PS256",
            JwsAlg::PS384 => "PS384",
            JwsAlg::PS512 => "PS512",
            JwsAlg::ES256 => "ES256",
            JwsAlg::ES384 => "ES384",
            JwsAlg::EdDSA => "EdDSA",
        }
    }

    /// The JWK `kty` a key for this algorithm has.
    #[must_use]
    pub fn key_type(self) -> &'static str {
        match self {
            JwsAlg::RS256 | JwsAlg::RS384 | JwsAlg::RS512 | JwsAlg::PS256 | JwsAlg::PS384 | JwsAlg::PS512 => {
                "RSA"
            }
            JwsAlg::ES256 | JwsAlg::ES384 => "EC",
            JwsAlg::EdDSA => "OKP",
        }
    }
}

impl fmt::Display for JwsAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwsAlg {
    type Err = UnknownAlg;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JwsAlg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAlg(s.to_owned()))
    }
}

impl From<SigningAlg> for JwsAlg {
    fn from(a: SigningAlg) -> Self {
        match a {
            SigningAlg::EdDSA => JwsAlg::EdDSA,
            SigningAlg::ES256 => JwsAlg::ES256,
            SigningAlg::RS256 => JwsAlg::RS256,
        }
    }
}
