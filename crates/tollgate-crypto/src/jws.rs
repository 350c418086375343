//! Compact JWS (RFC 7515): signing, and verification that refuses before it trusts.
//!
//! Parsing yields an [`UnverifiedJws`]; its header can be read to pick a key, its payload
//! only comes out of [`UnverifiedJws::verify`]. `jku`, `x5u` and `jwk` headers are never
//! used to find keys; `crit` is refused because tollgate understands no extensions.

use crate::{CryptoError, Jwk, SigningKey, b64, b64_decode};
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use serde::{Deserialize, Serialize};
#[cfg(test)]
use tollgate_core::SigningAlg;
use tollgate_core::upstream::{Refusal, UnverifiedIss};
use tollgate_core::{JwsAlg, Reason};

/// The protected header tollgate writes and reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwsHeader {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Present only to be refused (RFC 7515 §4.1.11).
    #[serde(default, skip_serializing)]
    pub crit: Option<serde_json::Value>,
}

/// Why a compact JWS was refused; each maps to one [`Reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("token is larger than {0} bytes")]
    TooLarge(usize),
    #[error("token is not a compact JWS: {0}")]
    Malformed(&'static str),
    #[error("algorithm `{0}` is not allowed")]
    AlgNotAllowed(String),
    #[error("no key with kid `{0}`")]
    KidNotFound(String),
    #[error("signature does not verify")]
    InvalidSignature,
}

impl JwsError {
    #[must_use]
    pub fn reason(&self) -> Reason {
        match self {
            JwsError::TooLarge(_) => Reason::TokenTooLarge,
            JwsError::Malformed(_) => Reason::Malformed,
            JwsError::AlgNotAllowed(_) => Reason::AlgNotAllowed,
            JwsError::KidNotFound(_) => Reason::KidNotFound,
            JwsError::InvalidSignature => Reason::InvalidSignature,
        }
    }
}

/// Signs `claims` as a compact JWS with header `{alg, typ, kid}` (the key's RFC 7638 kid).
pub fn sign<C: Serialize>(key: &SigningKey, typ: &str, claims: &C) -> Result<String, CryptoError> {
    sign_with_kid(key, typ, key.kid(), claims)
}

/// Like [`sign`], with another key id in the header (e.g. the libtrust id CNCF
/// distribution looks keys up by).
pub fn sign_with_kid<C: Serialize>(
    key: &SigningKey,
    typ: &str,
    kid: &str,
    claims: &C,
) -> Result<String, CryptoError> {
    sign_with_header(key, typ, Some(kid), None, claims)
}

/// The header tollgate writes; `x5c` (RFC 7515 §4.1.6) is written for verifiers that find
/// the key by certificate chain, and never read.
#[derive(Serialize)]
struct SignHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x5c: Option<&'a [String]>,
}

/// Signs `claims` with a header of `alg`, `typ`, and the given `kid` and `x5c` chain
/// (standard base64 DER certificates, leaf first).
pub fn sign_with_header<C: Serialize>(
    key: &SigningKey,
    typ: &str,
    kid: Option<&str>,
    x5c: Option<&[String]>,
    claims: &C,
) -> Result<String, CryptoError> {
    let header = SignHeader {
        alg: key.alg().as_str(),
        typ,
        kid,
        x5c,
    };
    let header = serde_json::to_vec(&header).map_err(|_| CryptoError::Signing)?;
    let payload = serde_json::to_vec(claims).map_err(|_| CryptoError::Signing)?;
    let mut out = String::with_capacity(512);
    out.push_str(&b64(&header));
    out.push('.');
    out.push_str(&b64(&payload));
    let sig = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&b64(&sig));
    Ok(out)
}

/// A compact JWS whose header has been parsed but whose signature has not been checked.
#[derive(Debug)]
pub struct UnverifiedJws<'a> {
    header: JwsHeader,
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Vec<u8>,
}

/// Longest header accepted; real headers are under 200 bytes.
const MAX_HEADER_B64: usize = 1024;

impl<'a> UnverifiedJws<'a> {
    /// Splits and decodes a compact JWS, refusing oversized tokens before any decoding.
    pub fn parse(token: &'a str, max_len: usize) -> Result<Self, JwsError> {
        if token.len() > max_len {
            return Err(JwsError::TooLarge(max_len));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed("expected three dot-separated parts"));
        };
        // An empty signature is not refused here: `alg: none` tokens have one, and they
        // deserve the precise `alg-not-allowed` from `verify`.
        if h.is_empty() {
            return Err(JwsError::Malformed("empty header"));
        }
        if h.len() > MAX_HEADER_B64 {
            return Err(JwsError::Malformed("header too large"));
        }
        let header_json = b64_decode(h).ok_or(JwsError::Malformed("header is not base64url"))?;
        let header: JwsHeader = serde_json::from_slice(&header_json)
            .map_err(|_| JwsError::Malformed("header is not a JSON object with alg"))?;
        if header.crit.is_some() {
            return Err(JwsError::Malformed(
                "crit header names extensions tollgate does not understand",
            ));
        }
        let signature = b64_decode(s).ok_or(JwsError::Malformed("signature is not base64url"))?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        Ok(Self {
            header,
            signing_input,
            payload_b64: p,
            signature,
        })
    }

    #[must_use]
    pub fn header(&self) -> &JwsHeader {
        &self.header
    }

    /// The `iss` claim before verification, only to choose whose keys to verify with.
    pub fn unverified_iss(&self) -> Result<UnverifiedIss, Refusal> {
        let payload = b64_decode(self.payload_b64)
            .ok_or_else(|| Refusal::new(Reason::Malformed, "payload is not base64url"))?;
        UnverifiedIss::read(&payload)
    }

    /// Checks the signature with `key` and returns the decoded payload.
    ///
    /// The header's `alg` must be exactly the key's algorithm: a key is bound to one
    /// algorithm, so `none`, HMAC and algorithm substitution all fail here.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Vec<u8>, JwsError> {
        if self.header.alg != key.alg.as_str() {
            return Err(JwsError::AlgNotAllowed(self.header.alg.clone()));
        }
        key.parsed
            .verify_sig(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| JwsError::InvalidSignature)?;
        b64_decode(self.payload_b64).ok_or(JwsError::Malformed("payload is not base64url"))
    }
}

/// A public key ready for repeated verification (parsed once).
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    alg: JwsAlg,
    parsed: ParsedPublicKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

impl VerifyingKey {
    /// Builds a verifier for `alg` from a public JWK. The JWK's key type (and curve, and
    /// `alg` when present) must fit `alg`; RSA keys must have at least 2048 bits.
    pub fn from_jwk(alg: JwsAlg, jwk: &Jwk) -> Result<Self, CryptoError> {
        use signature::{
            ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256,
            RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512, RSA_PSS_2048_8192_SHA256,
            RSA_PSS_2048_8192_SHA384, RSA_PSS_2048_8192_SHA512,
        };
        if jwk.alg.as_deref().is_some_and(|a| a != alg.as_str()) {
            return Err(CryptoError::BadJwk("the JWK's alg differs from the token's"));
        }
        let field = |v: &Option<String>, name: &'static str| {
            v.as_deref().and_then(b64_decode).ok_or(CryptoError::BadJwk(name))
        };
        let ec_point = |len: usize| -> Result<Vec<u8>, CryptoError> {
            let (x, y) = (field(&jwk.x, "x")?, field(&jwk.y, "y")?);
            if x.len() != len || y.len() != len {
                return Err(CryptoError::BadJwk("EC coordinates have the wrong length"));
            }
            Ok([&[4u8][..], &x, &y].concat())
        };
        let rsa = |params: &'static signature::RsaParameters| -> Result<ParsedPublicKey, CryptoError> {
            let (n, e) = (field(&jwk.n, "n")?, field(&jwk.e, "e")?);
            if n.len() < 256 {
                return Err(CryptoError::BadJwk("RSA keys must have at least 2048 bits"));
            }
            RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .to_parsed_public_key(params)
            .map_err(|_| CryptoError::KeyRejected(alg.as_str()))
        };
        let crv = jwk.crv.as_deref();
        let parsed = match (alg, jwk.kty.as_str(), crv) {
            (JwsAlg::EdDSA, "OKP", Some("Ed25519")) => ParsedPublicKey::new(&ED25519, field(&jwk.x, "x")?),
            (JwsAlg::ES256, "EC", Some("P-256")) => {
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, ec_point(32)?)
            }
            (JwsAlg::ES384, "EC", Some("P-384")) => {
                ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, ec_point(48)?)
            }
            (JwsAlg::RS256, "RSA", _) => Ok(rsa(&RSA_PKCS1_2048_8192_SHA256)?),
            (JwsAlg::RS384, "RSA", _) => Ok(rsa(&RSA_PKCS1_2048_8192_SHA384)?),
            (JwsAlg::RS512, "RSA", _) => Ok(rsa(&RSA_PKCS1_2048_8192_SHA512)?),
            (JwsAlg::PS256, "RSA", _) => Ok(rsa(&RSA_PSS_2048_8192_SHA256)?),
            (JwsAlg::PS384, "RSA", _) => Ok(rsa(&RSA_PSS_2048_8192_SHA384)?),
            (JwsAlg::PS512, "RSA", _) => Ok(rsa(&RSA_PSS_2048_8192_SHA512)?),
            _ => return Err(CryptoError::BadJwk("key type does not match the algorithm")),
        }
        .map_err(|_| CryptoError::KeyRejected(alg.as_str()))?;
        let kid = match &jwk.kid {
            Some(kid) => kid.clone(),
            None => jwk.thumbprint()?,
        };
        Ok(Self { kid, alg, parsed })
    }

    /// The verifier for a key we hold privately.
    pub fn for_signing_key(key: &SigningKey) -> Result<Self, CryptoError> {
        Self::from_jwk(key.alg().into(), key.public_jwk())
    }

    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    #[must_use]
    pub fn alg(&self) -> JwsAlg {
        self.alg
    }

    /// The public key as a DER `SubjectPublicKeyInfo` (RFC 5280 §4.1).
    pub fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        use aws_lc_rs::encoding::AsDer as _;
        self.parsed
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| CryptoError::KeyRejected(self.alg.as_str()))
    }

    /// The libtrust key id of the public key (see [`crate::libtrust_key_id`]).
    pub fn libtrust_key_id(&self) -> Result<String, CryptoError> {
        self.public_key_der().map(|der| crate::libtrust_key_id(&der))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(alg: SigningAlg) -> (SigningKey, VerifyingKey) {
        let (k, _) = SigningKey::generate(alg).expect("generate");
        let v = VerifyingKey::for_signing_key(&k).expect("verifier");
        (k, v)
    }

    #[test]
    fn signed_tokens_verify_for_every_alg() {
        for alg in SigningAlg::ALL {
            let (k, v) = key(alg);
            let token = sign(&k, "at+jwt", &json!({"sub": "x"})).expect("sign");
            let parsed = UnverifiedJws::parse(&token, 8192).expect("parse");
            assert_eq!(parsed.header().kid.as_deref(), Some(k.kid()));
            assert_eq!(parsed.header().typ.as_deref(), Some("at+jwt"));
            let payload = parsed.verify(&v).expect("verify");
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&payload).expect("json"),
                json!({"sub": "x"})
            );
        }
    }

    /// JWS ECDSA signatures are raw `r‖s` (RFC 7518 §3.4), which libtrust (Docker registry)
    /// insists on too; a DER signature would be 70–72 bytes.
    #[test]
    fn es256_signatures_are_raw_r_s() {
        let (k, v) = key(SigningAlg::ES256);
        for _ in 0..16 {
            let token = sign(&k, "JWT", &json!({"sub": "x"})).expect("sign");
            let sig = b64_decode(token.rsplit('.').next().expect("signature")).expect("base64url");
            assert_eq!(sig.len(), 64);
            UnverifiedJws::parse(&token, 8192)
                .expect("parse")
                .verify(&v)
                .expect("verify");
        }
    }

    #[test]
    fn verifying_keys_know_their_spki_and_libtrust_id() {
        for alg in SigningAlg::ALL {
            let (k, v) = key(alg);
            assert_eq!(v.public_key_der().expect("der"), k.public_key_der(), "{alg}");
            assert_eq!(v.libtrust_key_id().expect("id"), k.libtrust_key_id(), "{alg}");
        }
    }

    #[test]
    fn empty_signature_fails_verification_not_parsing() {
        let (k, v) = key(SigningAlg::EdDSA);
        let token = sign(&k, "at+jwt", &json!({})).expect("sign");
        let unsigned = &token[..token.rfind('.').expect("dot") + 1];
        let err = UnverifiedJws::parse(unsigned, 8192)
            .expect("parses")
            .verify(&v)
            .expect_err("refused");
        assert_eq!(err, JwsError::InvalidSignature);
    }

    #[test]
    fn tampered_payload_fails_signature() {
        let (k, v) = key(SigningAlg::EdDSA);
        let token = sign(&k, "at+jwt", &json!({"sub": "x"})).expect("sign");
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(br#"{"sub":"admin"}"#);
        parts[1] = &forged;
        let forged = parts.join(".");
        let err = UnverifiedJws::parse(&forged, 8192)
            .expect("parse")
            .verify(&v)
            .expect_err("must fail");
        assert_eq!(err, JwsError::InvalidSignature);
    }

    #[test]
    fn alg_none_and_hmac_are_refused_even_with_a_valid_kid() {
        let (k, v) = key(SigningAlg::EdDSA);
        for alg in ["none", "HS256", "ES256"] {
            let header = b64(format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, k.kid()).as_bytes());
            let token = format!("{header}.{}.c2ln", b64(b"{}"));
            let err = UnverifiedJws::parse(&token, 8192)
                .expect("parse")
                .verify(&v)
                .expect_err("refused");
            assert_eq!(err.reason(), Reason::AlgNotAllowed, "{alg}");
        }
    }

    #[test]
    fn malformed_inputs_are_refused_not_panicked_on() {
        for bad in [
            "",
            ".",
            "..",
            "a.b",
            "a.b.c.d",
            "!!.e30.c2ln",
            "e30.e30.c2ln",
            "eyJhbGciOiJFZERTQSIsImNyaXQiOlsiYiJdfQ.e30.c2ln",
        ] {
            assert!(UnverifiedJws::parse(bad, 8192).is_err(), "{bad:?}");
        }
        assert_eq!(
            UnverifiedJws::parse(&"a".repeat(9000), 8192).expect_err("too large"),
            JwsError::TooLarge(8192)
        );
    }

    #[test]
    fn jwk_of_wrong_type_is_rejected() {
        let (k, _) = key(SigningAlg::EdDSA);
        assert!(VerifyingKey::from_jwk(JwsAlg::ES256, k.public_jwk()).is_err());
    }
}

/// Upstream algorithms tollgate verifies but never signs with: keys made here with
/// aws-lc-rs, published as JWKs, tokens verified through the same path as upstream ones.
#[cfg(test)]
mod upstream_algs {
    use super::*;
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, RsaKeyPair};

    fn token(header: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(br#"{"sub":"u"}"#));
        let sig = sign(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    fn rsa_jwk(kp: &RsaKeyPair) -> Jwk {
        let public = kp.public_key();
        Jwk {
            kty: "RSA".into(),
            n: Some(b64(public.modulus().big_endian_without_leading_zero())),
            e: Some(b64(public.exponent().big_endian_without_leading_zero())),
            crv: None,
            x: None,
            y: None,
            kid: Some("rsa".into()),
            alg: None,
            use_: Some("sig".into()),
        }
    }

    #[test]
    fn rsa_pkcs1_and_pss_variants_verify_and_are_not_interchangeable() {
        let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
        assert!(kp.as_der().is_ok());
        let jwk = rsa_jwk(&kp);
        let rng = SystemRandom::new();
        let cases: [(JwsAlg, &'static dyn signature::RsaEncoding); 6] = [
            (JwsAlg::RS256, &signature::RSA_PKCS1_SHA256),
            (JwsAlg::RS384, &signature::RSA_PKCS1_SHA384),
            (JwsAlg::RS512, &signature::RSA_PKCS1_SHA512),
            (JwsAlg::PS256, &signature::RSA_PSS_SHA256),
            (JwsAlg::PS384, &signature::RSA_PSS_SHA384),
            (JwsAlg::PS512, &signature::RSA_PSS_SHA512),
        ];
        for (alg, encoding) in cases {
            let t = token(&format!(r#"{{"alg":"{alg}","kid":"rsa"}}"#), |m| {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(encoding, &rng, m, &mut sig).expect("sign");
                sig
            });
            let v = VerifyingKey::from_jwk(alg, &jwk).expect("verifier");
            UnverifiedJws::parse(&t, 8192)
                .expect("parse")
                .verify(&v)
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            // The same signature under a sibling algorithm's key must fail.
            let other = if alg == JwsAlg::RS256 {
                JwsAlg::PS256
            } else {
                JwsAlg::RS256
            };
            let v_other = VerifyingKey::from_jwk(other, &jwk).expect("verifier");
            let relabelled = t.replacen(
                &b64(format!(r#"{{"alg":"{alg}","kid":"rsa"}}"#).as_bytes()),
                &b64(format!(r#"{{"alg":"{other}","kid":"rsa"}}"#).as_bytes()),
                1,
            );
            assert_eq!(
                UnverifiedJws::parse(&relabelled, 8192)
                    .expect("parse")
                    .verify(&v_other)
                    .expect_err("must fail"),
                JwsError::InvalidSignature
            );
        }
    }

    #[test]
    fn es384_verifies() {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng).expect("gen");
        let kp = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref())
            .expect("load");
        let point = kp.public_key().as_ref();
        let jwk = Jwk {
            kty: "EC".into(),
            crv: Some("P-384".into()),
            x: Some(b64(&point[1..49])),
            y: Some(b64(&point[49..97])),
            n: None,
            e: None,
            kid: Some("ec".into()),
            alg: Some("ES384".into()),
            use_: None,
        };
        let t = token(r#"{"alg":"ES384","kid":"ec"}"#, |m| {
            kp.sign(&rng, m).expect("sign").as_ref().to_vec()
        });
        let v = VerifyingKey::from_jwk(JwsAlg::ES384, &jwk).expect("verifier");
        UnverifiedJws::parse(&t, 8192)
            .expect("parse")
            .verify(&v)
            .expect("ES384");
        assert!(
            VerifyingKey::from_jwk(JwsAlg::ES256, &jwk).is_err(),
            "curve and alg must match"
        );
    }

    #[test]
    fn small_rsa_keys_are_refused() {
        let jwk = Jwk {
            kty: "RSA".into(),
            n: Some(b64(&[0xC5; 128])),
            e: Some("AQAB".into()),
            crv: None,
            x: None,
            y: None,
            kid: None,
            alg: None,
            use_: None,
        };
        assert!(VerifyingKey::from_jwk(JwsAlg::RS256, &jwk).is_err());
    }
}
