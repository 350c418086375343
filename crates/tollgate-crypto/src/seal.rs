//! Sealing private keys and server secrets at rest with the master key (AES-256-GCM).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use secrecy::{ExposeSecret, SecretBox};

/// Format version written as the first byte of every sealed blob.
const SEAL_V1: u8 = 1;

/// The 32-byte key that encrypts every private key and server secret tollgate stores.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Why a sealed blob could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed data has an unknown format version")]
    UnknownVersion,
    #[error("sealed data is truncated")]
    Truncated,
    #[error("sealed data does not open with this master key (wrong key, or data tampered with)")]
    WrongKeyOrTampered,
}

impl MasterKey {
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// A new random master key.
    #[must_use]
    pub fn generate() -> Self {
        let mut b = [0u8; 32];
        crate::random_bytes(&mut b);
        Self::from_bytes(b)
    }

    /// The key's bytes, for writing the key file once.
    #[must_use]
    pub fn expose_bytes(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    fn aead(&self) -> LessSafeKey {
        // A 32-byte key is always valid for AES-256-GCM.
        #[allow(clippy::expect_used)]
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, self.0.expose_secret()).expect("32-byte AES key"))
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. the key id) so a sealed blob
    /// cannot be swapped into another row.
    #[must_use]
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::random_bytes(&mut nonce);
        let mut buf = plaintext.to_vec();
        // Sealing only fails for inputs beyond GCM's 64 GiB limit.
        #[allow(clippy::expect_used)]
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .expect("AES-GCM seal");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEAL_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out
    }

    /// Decrypts a blob made by [`MasterKey::seal`] with the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Truncated)?;
        if version != SEAL_V1 {
            return Err(SealError::UnknownVersion);
        }
        if rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Truncated);
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Truncated)?;
        let mut buf = ct.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SealError::WrongKeyOrTampered)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let mk = MasterKey::generate();
        let sealed = mk.seal("kid-1", b"secret");
        assert_eq!(mk.open("kid-1", &sealed).expect("opens"), b"secret");
        assert_eq!(mk.open("kid-2", &sealed), Err(SealError::WrongKeyOrTampered));
        assert_eq!(
            MasterKey::generate().open("kid-1", &sealed),
            Err(SealError::WrongKeyOrTampered)
        );
        assert_eq!(mk.open("kid-1", &sealed[..10]), Err(SealError::Truncated));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let mk = MasterKey::from_bytes([7; 32]);
        assert_eq!(format!("{mk:?}"), "MasterKey(<redacted>)");
    }
}
