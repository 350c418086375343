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
    /// The DER `SubjectPublicKeyInfo` of the public key.
    spki: Vec<u8>,
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
        let spki = match &inner {
            Inner::Ed25519(kp) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Inner::Es256(kp, _) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Inner::Rs256(kp, _) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| CryptoError::KeyRejected(alg.as_str()))?;
        let kid = jwk.thumbprint()?;
        let jwk = Jwk {
            kid: Some(kid.clone()),
            alg: Some(alg.as_str().into()),
            use_: Some("sig".into()),
            ..jwk
        };
        Ok(Self {
            alg,
            inner,
            kid,
            jwk,
            spki,
        })
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

    /// The public key as a DER `SubjectPublicKeyInfo` (RFC 5280 §4.1; what Go's
    /// `x509.MarshalPKIXPublicKey` and `openssl pkey -pubout -outform DER` produce).
    #[must_use]
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    /// The libtrust key id of the public key, as a Docker registry matches `kid` against the
    /// keys of its `rootcertbundle` (see [`crate::libtrust_key_id`]).
    #[must_use]
    pub fn libtrust_key_id(&self) -> String {
        crate::libtrust_key_id(&self.spki)
    }

    /// The contents of the SPKI's `subjectPublicKey` BIT STRING: the uncompressed point for
    /// P-256, the PKCS#1 `RSAPublicKey` for RSA, the 32 raw bytes for Ed25519.
    pub(crate) fn subject_public_key(&self) -> &[u8] {
        match &self.inner {
            Inner::Ed25519(kp) => kp.public_key().as_ref(),
            Inner::Es256(kp, _) => kp.public_key().as_ref(),
            Inner::Rs256(kp, _) => kp.public_key().as_ref(),
        }
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

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// A P-256 key made by `openssl genpkey` + `openssl pkcs8 -topk8 -nocrypt`; its SPKI as
    /// `openssl pkey -pubout -outform DER` writes it, and its libtrust id computed with Python.
    const OPENSSL_P256_PKCS8: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b020101042037ade7e086377bbde2bf776acc60b80c5442a4d4cf77424db949c33c12a911d5a14403420004aa58d0b2fdf05b76730db4413130167ebbc3b4430c93f16f9d86274bb54df40419ef3c425577c66b714cd1a24cd79dcdfd2f986d073b99938adb1058b428b8dd";
    const OPENSSL_P256_SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d03010703420004aa58d0b2fdf05b76730db4413130167ebbc3b4430c93f16f9d86274bb54df40419ef3c425577c66b714cd1a24cd79dcdfd2f986d073b99938adb1058b428b8dd";
    const OPENSSL_P256_KEY_ID: &str = "37WG:FYZK:LP4Q:LXI2:4YJR:A23T:YZBL:5I6W:43FD:6OEU:2LTG:7RMT";

    #[test]
    fn spki_and_libtrust_id_match_openssl() {
        let key = SigningKey::from_pkcs8(SigningAlg::ES256, &unhex(OPENSSL_P256_PKCS8)).expect("load");
        assert_eq!(key.public_key_der(), unhex(OPENSSL_P256_SPKI));
        assert_eq!(key.libtrust_key_id(), OPENSSL_P256_KEY_ID);
    }

    /// For P-256 the SPKI is the fixed prefix (id-ecPublicKey, prime256v1, BIT STRING of 66
    /// bytes) followed by the uncompressed point; the BIT STRING contents are what rcgen gets.
    #[test]
    fn p256_spki_is_the_prefix_and_the_point() {
        const P256_SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
        let (key, _) = SigningKey::generate(SigningAlg::ES256).expect("generate");
        let point = key.subject_public_key();
        assert_eq!(point.len(), 65);
        assert_eq!(point[0], 4);
        assert_eq!(
            key.public_key_der(),
            [unhex(P256_SPKI_PREFIX), point.to_vec()].concat()
        );
    }

    #[test]
    fn spki_ends_with_the_subject_public_key() {
        for alg in SigningAlg::ALL {
            let (key, der) = SigningKey::generate(alg).expect("generate");
            assert!(key.public_key_der().ends_with(key.subject_public_key()), "{alg}");
            let again = SigningKey::from_pkcs8(alg, &der).expect("reload");
            assert_eq!(key.public_key_der(), again.public_key_der());
            assert_eq!(key.libtrust_key_id(), again.libtrust_key_id());
        }
    }

    /// openssl derives the same SPKI from the PKCS#8 we store, for the algorithms a Docker
    /// registry accepts (OpenSSL 3.0 cannot read the v2 PKCS#8 aws-lc writes for Ed25519).
    /// Skipped without openssl.
    #[test]
    fn openssl_derives_the_same_spki() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        if Command::new("openssl").arg("version").output().is_err() {
            return;
        }
        for alg in [SigningAlg::ES256, SigningAlg::RS256] {
            let (key, der) = SigningKey::generate(alg).expect("generate");
            let mut child = Command::new("openssl")
                .args(["pkey", "-inform", "DER", "-pubout", "-outform", "DER"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn openssl");
            child.stdin.take().expect("stdin").write_all(&der).expect("write");
            let out = child.wait_with_output().expect("openssl");
            assert!(out.status.success(), "{alg}");
            assert_eq!(out.stdout, key.public_key_der(), "{alg}");
        }
    }

    #[test]
    fn key_of_one_alg_does_not_load_as_another() {
        let (_, der) = SigningKey::generate(SigningAlg::EdDSA).expect("generate");
        assert!(SigningKey::from_pkcs8(SigningAlg::ES256, &der).is_err());
    }
}
