//! OAuth scopes (RFC 6749 §3.3): a set of scope tokens.

use std::collections::BTreeSet;
use std::fmt;

/// Most scope tokens a request may name; more is refused rather than processed.
pub const MAX_SCOPE_TOKENS: usize = 64;
/// Longest single scope token accepted.
pub const MAX_SCOPE_TOKEN_LEN: usize = 128;

/// A set of scope tokens, kept sorted so that the issued `scope` claim is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scope(BTreeSet<String>);

/// Why a string is not a valid scope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error(
        "scope token `{0}` contains a character outside RFC 6749 §3.3 (visible ASCII except `\"` and `\\`)"
    )]
    BadCharacter(String),
    #[error("scope names more than {MAX_SCOPE_TOKENS} tokens")]
    TooMany,
    #[error("a scope token is longer than {MAX_SCOPE_TOKEN_LEN} characters")]
    TooLong,
}

fn is_nqchar(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

impl Scope {
    /// Parses a space-separated scope string. Runs of spaces are tolerated; anything else
    /// outside NQCHAR is refused.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            if token.len() > MAX_SCOPE_TOKEN_LEN {
                return Err(ScopeError::TooLong);
            }
            if !token.bytes().all(is_nqchar) {
                return Err(ScopeError::BadCharacter(token.escape_debug().to_string()));
            }
            set.insert(token.to_owned());
            if set.len() > MAX_SCOPE_TOKENS {
                return Err(ScopeError::TooMany);
            }
        }
        Ok(Self(set))
    }

    /// Builds a scope from tokens, validating each.
    pub fn from_tokens<I, S>(tokens: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined = tokens
            .into_iter()
            .map(|t| t.as_ref().to_owned())
            .collect::<Vec<_>>();
        for t in &joined {
            if t.contains(' ') || t.is_empty() {
                return Err(ScopeError::BadCharacter(t.escape_debug().to_string()));
            }
        }
        Self::parse(&joined.join(" "))
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[must_use]
    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    /// Tokens in both `self` and `other`.
    #[must_use]
    pub fn intersect(&self, other: &Scope) -> Scope {
        Scope(self.0.intersection(&other.0).cloned().collect())
    }

    /// Tokens of `self` that `other` lacks.
    #[must_use]
    pub fn difference(&self, other: &Scope) -> Scope {
        Scope(self.0.difference(&other.0).cloned().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
            first = false;
        }
        Ok(())
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_sorted() {
        let s = Scope::parse("write  read read").expect("valid");
        assert_eq!(s.to_string(), "read write");
    }

    #[test]
    fn refuses_quotes_backslashes_and_controls() {
        for bad in ["a\"b", "a\\b", "a\tb", "é"] {
            assert!(
                matches!(Scope::parse(bad), Err(ScopeError::BadCharacter(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_too_many_tokens() {
        let many = (0..=MAX_SCOPE_TOKENS)
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(Scope::parse(&many), Err(ScopeError::TooMany));
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(tokens in proptest::collection::btree_set("[!#-\\[\\]-~]{1,20}", 0..10)) {
            let scope = Scope::from_tokens(&tokens).expect("generated tokens are valid");
            let again = Scope::parse(&scope.to_string()).expect("printed scope parses");
            prop_assert_eq!(scope, again);
        }

        #[test]
        fn intersection_is_subset_of_both(a in "[a-d ]{0,12}", b in "[a-d ]{0,12}") {
            let (a, b) = (Scope::parse(&a).expect("valid"), Scope::parse(&b).expect("valid"));
            let i = a.intersect(&b);
            prop_assert!(i.iter().all(|t| a.contains(t) && b.contains(t)));
        }
    }
}
