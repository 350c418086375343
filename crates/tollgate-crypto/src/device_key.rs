//! Device keys: what a device signs with its own key, for the server to verify.
//!
//! - At enrollment, a **proof of possession**: a compact JWS with header
//!   `{"alg": "EdDSA"|"ES256", "typ": "tollgate-key-proof+jwt"}` and payload
//!   `{"nonce": <the enrollment's nonce>, "ket_hash": <base64url SHA-256 of the key-enrollment
//!   token>, "iat": <now>}`, signed by the private key of the JWK being registered. It binds
//!   the key to this one enrollment (token and nonce) without sending the token itself.
//! - Afterwards, **RFC 7523 assertions** (§2.1, `grant_type=`[`JWT_BEARER_GRANT`]): header
//!   `{"alg", "typ": "JWT", "kid": <key id uk_…>}`, claims `iss` = `sub` = the key id,
//!   `aud` = the token endpoint URL (or the issuer URL), `iat`, `exp` (short-lived) and a
//!   fresh random `jti`.
//!
//! Both are made with a [`SigningKey`] (Ed25519 or P-256), which the device keeps.

use crate::{CryptoError, SigningKey, b64};
use serde::{Deserialize, Serialize};

/// The `typ` header of a proof of possession.
pub const PROOF_TYP: &str = "tollgate-key-proof+jwt";
/// `grant_type` of RFC 7523 §2.1 (a JWT as an authorization grant).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The payload of a proof of possession.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofClaims {
    /// The enrollment's nonce, as `POST /v1/keys/bootstrap` returned it.
    pub nonce: String,
    /// [`ket_hash`] of the key-enrollment token.
    pub ket_hash: String,
    /// When the proof was made (Unix seconds).
    pub iat: i64,
}

/// The claims of an RFC 7523 assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// base64url (no padding) of the SHA-256 of a key-enrollment token.
#[must_use]
pub fn ket_hash(ket: &str) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ket.as_bytes()).as_ref())
}

/// The public JWK to register for `key`: only `kty`, `crv`, `x` (and `y`), no private members.
#[must_use]
pub fn public_jwk(key: &SigningKey) -> serde_json::Value {
    let jwk = key.public_jwk();
    let mut out = serde_json::Map::new();
    out.insert("kty".into(), jwk.kty.clone().into());
    for (name, value) in [
        ("crv", &jwk.crv),
        ("x", &jwk.x),
        ("y", &jwk.y),
        ("n", &jwk.n),
        ("e", &jwk.e),
    ] {
        if let Some(v) = value {
            out.insert(name.into(), v.clone().into());
        }
    }
    serde_json::Value::Object(out)
}

/// The proof of possession for an enrollment: `key` signs `nonce` and the hash of `ket`.
pub fn proof(key: &SigningKey, ket: &str, nonce: &str, now: i64) -> Result<String, CryptoError> {
    let claims = ProofClaims {
        nonce: nonce.to_owned(),
        ket_hash: ket_hash(ket),
        iat: now,
    };
    crate::jws::sign_with_header(key, PROOF_TYP, None, None, &claims)
}

/// An RFC 7523 assertion by the registered key `key_id`, for `audience` (the token endpoint
/// URL), valid from `now` for `lifetime_secs`, with a random `jti`.
pub fn assertion(
    key: &SigningKey,
    key_id: &str,
    audience: &str,
    now: i64,
    lifetime_secs: i64,
) -> Result<String, CryptoError> {
    let mut jti = [0u8; 16];
    crate::random_bytes(&mut jti);
    let claims = AssertionClaims {
        iss: key_id.to_owned(),
        sub: key_id.to_owned(),
        aud: audience.to_owned(),
        iat: now,
        exp: now.saturating_add(lifetime_secs),
        jti: hex::encode(jti),
    };
    crate::jws::sign_with_kid(key, "JWT", key_id, &claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Jwk, UnverifiedJws, VerifyingKey};
    use tollgate_core::{JwsAlg, SigningAlg};

    #[test]
    fn proofs_and_assertions_verify_with_the_registered_public_jwk() {
        for (alg, jws_alg) in [
            (SigningAlg::EdDSA, JwsAlg::EdDSA),
            (SigningAlg::ES256, JwsAlg::ES256),
        ] {
            let (key, _) = SigningKey::generate(alg).expect("key");
            let jwk: Jwk = serde_json::from_value(public_jwk(&key)).expect("jwk");
            assert!(jwk.kid.is_none() && jwk.alg.is_none());
            let verifier = VerifyingKey::from_jwk(jws_alg, &jwk).expect("verifier");

            let p = proof(&key, "tg_ket_x", "n0nce", 100).expect("proof");
            let parsed = UnverifiedJws::parse(&p, 4096).expect("parse");
            assert_eq!(parsed.header().typ.as_deref(), Some(PROOF_TYP));
            assert_eq!(parsed.header().kid, None);
            let claims: ProofClaims =
                serde_json::from_slice(&parsed.verify(&verifier).expect("verify")).expect("claims");
            assert_eq!(claims.nonce, "n0nce");
            assert_eq!(claims.ket_hash, ket_hash("tg_ket_x"));
            assert_eq!(claims.iat, 100);

            let a = assertion(&key, "uk_1", "https://t.example/oauth/token", 100, 60).expect("assertion");
            let parsed = UnverifiedJws::parse(&a, 4096).expect("parse");
            assert_eq!(parsed.header().kid.as_deref(), Some("uk_1"));
            let claims: AssertionClaims =
                serde_json::from_slice(&parsed.verify(&verifier).expect("verify")).expect("claims");
            assert_eq!((claims.iss.as_str(), claims.sub.as_str()), ("uk_1", "uk_1"));
            assert_eq!((claims.iat, claims.exp), (100, 160));
            assert_eq!(claims.jti.len(), 32);
            let again = assertion(&key, "uk_1", "https://t.example/oauth/token", 100, 60).expect("assertion");
            assert_ne!(a, again, "every assertion has its own jti");
        }
    }

    #[test]
    fn the_ket_hash_is_base64url_sha256() {
        // SHA-256("abc"), RFC 4634 test vector, base64url.
        assert_eq!(ket_hash("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }
}
