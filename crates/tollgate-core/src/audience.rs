//! Audience values (`aud`, RFC 8707 `resource`, RFC 8693 `audience`).

use std::fmt;

/// A validated audience: 1–512 visible ASCII characters, no whitespace.
///
/// Audiences are compared byte for byte, as RFC 7519 §4.1.3 requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Audience(String);

/// Why a string is not an audience.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AudienceError {
    #[error("audience is empty")]
    Empty,
    #[error("audience is longer than 512 characters")]
    TooLong,
    #[error("audience contains whitespace or a non-printable character")]
    BadCharacter,
}

impl Audience {
    pub fn parse(s: &str) -> Result<Self, AudienceError> {
        if s.is_empty() {
            return Err(AudienceError::Empty);
        }
        if s.len() > 512 {
            return Err(AudienceError::TooLong);
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AudienceError::BadCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Audience::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_urls_and_names() {
        assert!(Audience::parse("https://api.example.com").is_ok());
        assert!(Audience::parse("billing").is_ok());
    }

    #[test]
    fn refuses_whitespace_control_and_empty() {
        assert_eq!(Audience::parse(""), Err(AudienceError::Empty));
        assert_eq!(Audience::parse("a b"), Err(AudienceError::BadCharacter));
        assert_eq!(Audience::parse("a\u{7f}"), Err(AudienceError::BadCharacter));
        assert_eq!(Audience::parse("ä"), Err(AudienceError::BadCharacter));
        assert_eq!(Audience::parse(&"a".repeat(513)), Err(AudienceError::TooLong));
    }
}
