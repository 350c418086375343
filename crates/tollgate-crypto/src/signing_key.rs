//! Private signing keys: generation, (de)serialization as PKCS#8, signing, public JWK.

use crate::{CryptoError, Jwk, b64};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use tollgate_core::SigningAlg;

/// A private key that signs tollgate's tokens. Its `Debug` never shows key material.
pub struct SigningKey {
    alg: SigningAlg,
    inner: Inner,
    kid: String,
    jwk: Jwk,
}

enum Inner {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair, SystemRandom),
    Rs256(Box<signature::RsaKeyPair>, SystemRandom),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key and returns it with its PKCS#8 encoding (to be sealed and stored).
    pub fn generate(alg: SigningAlg) -> Result<(Self, Vec<u8>), CryptoError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| CryptoError::KeyGeneration)?
                .as_ref()
                .to_vec(),
            SigningAlg::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| CryptoError::KeyGeneration)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::RS256 => {
                let kp = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| CryptoError::KeyGeneration)?;
                kp.as_der()
                    .map_err(|_| CryptoError::KeyGeneration)?
                    .as_ref()
                    .to_vec()
            }
        };
        let key = Self::from_pkcs8(alg, &pkcs8)?;
        Ok((key, pkcs8))
    }

    /// Loads a key from its PKCS#8 DER encoding.
    pub fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<Self, CryptoError> {
        let (inner, jwk) = match alg {
            SigningAlg::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8(der).map_err(|_| CryptoError::KeyRejected("Ed25519"))?;
                let jwk = Jwk {
                    kty: "OKP".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(b64(kp.public_key().as_ref())),
                    ..empty_jwk()
                };
                (Inner::Ed25519(kp), jwk)
            }
            SigningAlg::ES256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| CryptoError::KeyRejected("P-256"))?;
                // Uncompressed SEC1 point: 0x04 ‖ X ‖ Y, 32 bytes each.
                let point = kp.public_key().as_ref();
                if point.len() != 65 {
                    return Err(CryptoError::KeyRejected("P-256"));
                }
                let jwk = Jwk {
                    kty: "EC".into(),
                    crv: Some("P-256".into()),
                    x: Some(b64(&point[1..33])),
                    y: Some(b64(&point[33..65])),
                    ..empty_jwk()
                };
                (Inner::Es256(kp, SystemRandom::new()), jwk)
            }
            SigningAlg::RS256 => {
                let kp =
                    signature::RsaKeyPair::from_pkcs8(der).map_err(|_| CryptoError::KeyRejected("RSA"))?;
                let public = kp.public_key();
                let jwk = Jwk {
                    kty: "RSA".into(),
                    n: Some(b64(public.modulus().big_endian_without_leading_zero())),
                    e: Some(b64(public.exponent().big_endian_without_leading_zero())),
                    ..empty_jwk()
                };
                (Inner::Rs256(Box::new(kp), SystemRandom::new()), jwk)
            }
        };
        let kid = jwk.thumbprint()?;
        let jwk = Jwk {
            kid: Some(kid.clone()),
            alg: Some(alg.as_str().into()),
            use_: Some("sig".into()),
            ..jwk
        };
        Ok(Self { alg, inner, kid, jwk })
    }

    #[must_use]
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The RFC 7638 thumbprint of the public key.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK with `kid`, `alg` and `use: sig`.
    #[must_use]
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Signs `msg` with the JWS encoding of the signature (raw `r‖s` for ECDSA).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Inner::Ed25519(kp) => Ok(kp.sign(msg).as_ref().to_vec()),
            Inner::Es256(kp, rng) => Ok(kp
                .sign(rng, msg)
                .map_err(|_| CryptoError::Signing)?
                .as_ref()
                .to_vec()),
            Inner::Rs256(kp, rng) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, rng, msg, &mut sig)
                    .map_err(|_| CryptoError::Signing)?;
                Ok(sig)
            }
        }
    }
}

fn empty_jwk() -> Jwk {
    Jwk {
        kty: String::new(),
        crv: None,
        x: None,
        y: None,
        n: None,
        e: None,
        kid: None,
        alg: None,
        use_: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alg_round_trips_through_pkcs8_with_a_stable_kid() {
        for alg in SigningAlg::ALL {
            let (key, der) = SigningKey::generate(alg).expect("generate");
            let again = SigningKey::from_pkcs8(alg, &der).expect("reload");
            assert_eq!(key.kid(), again.kid(), "{alg}");
            assert_eq!(key.public_jwk(), again.public_jwk());
            assert_eq!(key.public_jwk().kid.as_deref(), Some(key.kid()));
        }
    }

    #[test]
    fn key_of_one_alg_does_not_load_as_another() {
        let (_, der) = SigningKey::generate(SigningAlg::EdDSA).expect("generate");
        assert!(SigningKey::from_pkcs8(SigningAlg::ES256, &der).is_err());
    }
}
