//! The format of secrets tollgate hands out: `<prefix><body><checksum>`.
//!
//! A recognizable prefix lets secret scanners find leaked tollgate secrets; the CRC-32
//! checksum lets the server reject a mistyped or truncated secret before any database
//! lookup. The checksum is not a security measure: the secret's strength is its 190-bit
//! random body, and the server stores only a keyed hash of the whole string.

use std::fmt;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random characters in a secret body (~190 bits of entropy).
pub const BODY_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;

/// What a secret is for; each kind has its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// A service account's client secret.
    ClientSecret,
    /// An administrator's bearer token for the admin API.
    AdminToken,
    /// A user session's refresh token (rotated on every use).
    RefreshToken,
    /// A short-lived registry pull credential's password (minted by the internal endpoint).
    PullCredential,
    /// An internal service's API key (`X-API-Key`).
    ApiKey,
    /// A CI runner's secret for one publish session (given at attestation).
    PublishRunner,
    /// A device's code in the device authorization grant (RFC 8628), polled for tokens.
    DeviceCode,
    /// A short-lived key-enrollment token: lets a device register its public key for the
    /// user who asked for it (`POST /v1/keys/bootstrap`), once.
    KeyEnrollment,
    /// An invite into an org (`GET /verify?token=…`), redeemed once.
    Invite,
}

impl SecretKind {
    #[must_use]
    pub fn prefix(self) -> &'static str {
        match self {
            SecretKind::ClientSecret => "tg_sa_",
            SecretKind::AdminToken => "tg_adm_",
            SecretKind::RefreshToken => "tg_rt_",
            SecretKind::PullCredential => "tg_pc_",
            SecretKind::ApiKey => "tg_ak_",
            SecretKind::PublishRunner => "tg_pr_",
            SecretKind::DeviceCode => "tg_dc_",
            SecretKind::KeyEnrollment => "tg_ket_",
            SecretKind::Invite => "tg_inv_",
        }
    }
}

/// Why a string is not a well-formed secret of the expected kind.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretFormatError {
    #[error("secret does not start with `{0}`")]
    WrongPrefix(&'static str),
    #[error("secret has the wrong length")]
    WrongLength,
    #[error("secret contains characters outside [0-9A-Za-z]")]
    BadCharacter,
    #[error("secret checksum does not match; it was probably mistyped or truncated")]
    BadChecksum,
}

/// Mints a new secret of `kind`, drawing bytes from `next_byte` (a CSPRNG in production).
///
/// Bytes ≥ 248 are discarded so every character is uniformly distributed.
pub fn mint(kind: SecretKind, mut next_byte: impl FnMut() -> u8) -> String {
    let mut out = String::with_capacity(kind.prefix().len() + BODY_LEN + CHECKSUM_LEN);
    out.push_str(kind.prefix());
    while out.len() < kind.prefix().len() + BODY_LEN {
        let b = next_byte();
        if b < 248 {
            out.push(ALPHABET[usize::from(b % 62)] as char);
        }
    }
    let sum = checksum(&out);
    out.push_str(&sum);
    out
}

/// Checks prefix, length, alphabet and checksum of a presented secret.
pub fn check(kind: SecretKind, presented: &str) -> Result<(), SecretFormatError> {
    let body = presented
        .strip_prefix(kind.prefix())
        .ok_or(SecretFormatError::WrongPrefix(kind.prefix()))?;
    if body.len() != BODY_LEN + CHECKSUM_LEN {
        return Err(SecretFormatError::WrongLength);
    }
    if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SecretFormatError::BadCharacter);
    }
    let (head, sum) = presented.split_at(presented.len() - CHECKSUM_LEN);
    if checksum(head) != sum {
        return Err(SecretFormatError::BadChecksum);
    }
    Ok(())
}

/// Mints a public identifier (no checksum, not secret) such as a client id: `prefix` + 20 characters.
pub fn mint_id(prefix: &str, mut next_byte: impl FnMut() -> u8) -> String {
    let mut out = String::from(prefix);
    while out.len() < prefix.len() + 20 {
        let b = next_byte();
        if b < 248 {
            out.push(ALPHABET[usize::from(b % 62)].to_ascii_lowercase() as char);
        }
    }
    out
}

fn checksum(s: &str) -> String {
    let mut n = crc32fast::hash(s.as_bytes());
    let mut buf = [b'0'; CHECKSUM_LEN];
    for slot in buf.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&buf).into_owned()
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counter() -> impl FnMut() -> u8 {
        let mut i = 0u8;
        move || {
            i = i.wrapping_add(37);
            i
        }
    }

    #[test]
    fn minted_secret_has_prefix_and_passes_check() {
        let s = mint(SecretKind::ClientSecret, counter());
        assert!(s.starts_with("tg_sa_"));
        assert_eq!(s.len(), 6 + BODY_LEN + CHECKSUM_LEN);
        assert_eq!(check(SecretKind::ClientSecret, &s), Ok(()));
    }

    #[test]
    fn wrong_kind_is_refused_by_prefix() {
        let s = mint(SecretKind::AdminToken, counter());
        assert_eq!(
            check(SecretKind::ClientSecret, &s),
            Err(SecretFormatError::WrongPrefix("tg_sa_"))
        );
    }

    #[test]
    fn truncated_secret_is_refused() {
        let s = mint(SecretKind::ClientSecret, counter());
        assert_eq!(
            check(SecretKind::ClientSecret, &s[..s.len() - 1]),
            Err(SecretFormatError::WrongLength)
        );
    }

    proptest! {
        #[test]
        fn any_single_character_typo_is_caught(seed in any::<u8>(), pos in 0usize..BODY_LEN, repl in 0usize..62) {
            let mut i = seed;
            let s = mint(SecretKind::ClientSecret, move || { i = i.wrapping_mul(31).wrapping_add(7); i });
            let mut bytes = s.clone().into_bytes();
            let at = 6 + pos;
            prop_assume!(bytes[at] != ALPHABET[repl]);
            bytes[at] = ALPHABET[repl];
            let typo = String::from_utf8(bytes).expect("ascii");
            prop_assert_eq!(check(SecretKind::ClientSecret, &typo), Err(SecretFormatError::BadChecksum));
        }
    }
}
