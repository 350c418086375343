//! Keyed hashes (HMAC-SHA256) of the secrets users hold, under versioned server secrets.
//!
//! A stored hash records the version of the secret that made it. Rotation adds a new
//! version used for every new hash; old versions keep verifying until the hashes made with
//! them have been re-made (on next successful use) or have expired.

use aws_lc_rs::{constant_time, hmac};
use std::collections::BTreeMap;

/// The set of HMAC secrets, by version; the highest version is current.
pub struct KeyedHasher {
    keys: BTreeMap<i32, hmac::Key>,
}

impl std::fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedHasher")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyedHasher {
    /// Builds the hasher from `(version, secret bytes)` pairs. Returns `None` without any.
    #[must_use]
    pub fn new<'a>(secrets: impl IntoIterator<Item = (i32, &'a [u8])>) -> Option<Self> {
        let keys: BTreeMap<_, _> = secrets
            .into_iter()
            .map(|(v, s)| (v, hmac::Key::new(hmac::HMAC_SHA256, s)))
            .collect();
        if keys.is_empty() {
            None
        } else {
            Some(Self { keys })
        }
    }

    /// The version new hashes are made with.
    #[must_use]
    pub fn current_version(&self) -> i32 {
        self.keys.keys().next_back().copied().unwrap_or_default()
    }

    /// Hashes `secret` with the current version: `(version, hash)`.
    #[must_use]
    pub fn hash(&self, secret: &str) -> (i32, Vec<u8>) {
        let v = self.current_version();
        (v, self.hash_with(v, secret).unwrap_or_default())
    }

    /// Hashes with a given version; `None` if that version is unknown.
    #[must_use]
    pub fn hash_with(&self, version: i32, secret: &str) -> Option<Vec<u8>> {
        self.keys
            .get(&version)
            .map(|k| hmac::sign(k, secret.as_bytes()).as_ref().to_vec())
    }

    /// Hashes under every known version, newest first (to look a secret up by hash).
    pub fn all_hashes<'s>(&'s self, secret: &'s str) -> impl Iterator<Item = (i32, Vec<u8>)> + 's {
        self.keys
            .iter()
            .rev()
            .map(move |(v, k)| (*v, hmac::sign(k, secret.as_bytes()).as_ref().to_vec()))
    }

    /// Constant-time comparison of `secret` against a stored `(version, hash)`.
    #[must_use]
    pub fn verify(&self, version: i32, stored: &[u8], secret: &str) -> bool {
        self.hash_with(version, secret)
            .is_some_and(|h| constant_time::verify_slices_are_equal(&h, stored).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_under_their_version_after_rotation() {
        let old = KeyedHasher::new([(1, b"one".as_slice())]).expect("non-empty");
        let (v, h) = old.hash("tg_sa_x");
        assert_eq!(v, 1);
        let rotated = KeyedHasher::new([(1, b"one".as_slice()), (2, b"two".as_slice())]).expect("non-empty");
        assert_eq!(rotated.current_version(), 2);
        assert!(rotated.verify(1, &h, "tg_sa_x"));
        assert!(!rotated.verify(2, &h, "tg_sa_x"));
        assert!(!rotated.verify(1, &h, "tg_sa_y"));
        assert!(!rotated.verify(9, &h, "tg_sa_x"));
    }
}
