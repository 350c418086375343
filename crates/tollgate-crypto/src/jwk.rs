//! JSON Web Keys (RFC 7517) and their thumbprints (RFC 7638).

use serde::{Deserialize, Serialize};

/// A public JWK as tollgate publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

/// A JWK Set document (`{"keys": [...]}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// The RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order,
    /// base64url-encoded. Stable across serializations, so it makes a good `kid`.
    pub fn thumbprint(&self) -> Result<String, crate::CryptoError> {
        let missing = crate::CryptoError::BadJwk("missing a required member");
        // serde_json escapes strings correctly; members are written in the order RFC 7638 fixes.
        let q = |v: &Option<String>| serde_json::to_string(v.as_deref().unwrap_or_default());
        let canonical = match self.kty.as_str() {
            "EC" if self.crv.is_some() && self.x.is_some() && self.y.is_some() => format!(
                r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
                q(&self.crv).map_err(|_| crate::CryptoError::BadJwk("crv"))?,
                q(&self.x).map_err(|_| crate::CryptoError::BadJwk("x"))?,
                q(&self.y).map_err(|_| crate::CryptoError::BadJwk("y"))?
            ),
            "OKP" if self.crv.is_some() && self.x.is_some() => format!(
                r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
                q(&self.crv).map_err(|_| crate::CryptoError::BadJwk("crv"))?,
                q(&self.x).map_err(|_| crate::CryptoError::BadJwk("x"))?
            ),
            "RSA" if self.n.is_some() && self.e.is_some() => format!(
                r#"{{"e":{},"kty":"RSA","n":{}}}"#,
                q(&self.e).map_err(|_| crate::CryptoError::BadJwk("e"))?,
                q(&self.n).map_err(|_| crate::CryptoError::BadJwk("n"))?
            ),
            _ => return Err(missing),
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        Ok(crate::b64(digest.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of RFC 7638 §3.1.
    #[test]
    fn rfc7638_example_thumbprint() {
        let jwk = Jwk {
            kty: "RSA".into(),
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            crv: None, x: None, y: None, kid: None,
            alg: Some("RS256".into()),
            use_: None,
        };
        assert_eq!(
            jwk.thumbprint().expect("thumbprint"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn incomplete_jwk_has_no_thumbprint() {
        let jwk = Jwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some("AA".into()),
            y: None,
            n: None,
            e: None,
            kid: None,
            alg: None,
            use_: None,
        };
        assert!(jwk.thumbprint().is_err());
    }
}
