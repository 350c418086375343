//! tollgate's cryptography: signing keys, JWK/JWKS, compact JWS, sealing, keyed hashes, and
//! the pieces a Docker registry needs (libtrust key ids, self-signed certificates).
//!
//! Everything here is synchronous and stateless; aws-lc-rs does the arithmetic. The crate
//! knows nothing about storage or HTTP: keys come in as bytes and leave as bytes.

pub mod ca;
pub mod certificate;
pub mod csr;
pub mod device_key;
pub mod jwk;
pub mod jws;
pub mod keyed_hash;
pub mod libtrust;
pub mod seal;
pub mod signing_key;
pub mod upstream;

pub use certificate::{certificate_issued_by_own_root, self_signed_certificate};
pub use jwk::{Jwk, JwkSet};
pub use jws::{JwsError, JwsHeader, UnverifiedJws, VerifyingKey};
pub use keyed_hash::KeyedHasher;
pub use libtrust::libtrust_key_id;
pub use seal::{MasterKey, SealError};
pub use signing_key::SigningKey;

/// A key or algorithm problem (not a token problem; those are [`JwsError`]).
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key generation failed")]
    KeyGeneration,
    #[error("stored key material is not a valid {0} key")]
    KeyRejected(&'static str),
    #[error("signing failed")]
    Signing,
    #[error("JWK is not usable: {0}")]
    BadJwk(&'static str),
    #[error("certificate cannot be made: {0}")]
    Certificate(String),
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) {
    use aws_lc_rs::rand::SecureRandom;
    // aws-lc's RNG fails only if the OS entropy source is gone; nothing sensible can continue then.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::SystemRandom::new()
        .fill(buf)
        .expect("operating system RNG failed");
}

/// A source of random bytes one at a time, for [`tollgate_core::secret_token::mint`].
pub fn random_byte_source() -> impl FnMut() -> u8 {
    let mut pool = [0u8; 64];
    let mut at = pool.len();
    move || {
        if at == pool.len() {
            random_bytes(&mut pool);
            at = 0;
        }
        at += 1;
        pool[at - 1]
    }
}

/// `der` as a PEM block labelled `label` (RFC 7468: base64 in lines of 64).
#[must_use]
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// base64url without padding (RFC 7515 §2).
pub(crate) fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

pub(crate) fn b64_decode(data: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(data).ok()
}

/// SHA-256 of `data`, lowercase hex: for fixed-size keys derived from values of any length
/// (replay-cache entries of upstream `jti`s).
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

/// A 256-bit key from a secret by PBKDF2-HMAC-SHA256 (for keys derived from passphrases).
#[must_use]
pub fn derive_key(secret: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut key = [0u8; 32];
    let iterations = std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN);
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        secret,
        &mut key,
    );
    key
}
