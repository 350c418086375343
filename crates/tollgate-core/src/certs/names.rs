//! DNS names in certificates and the patterns that allow them.
//!
//! Names and patterns are compared as sequences of labels after IDNA (UTS #46) mapping to
//! their ASCII (A-label) form, so `bücher.example` and `xn--bcher-kva.example` are one
//! name, case never matters, and a trailing dot is dropped. Matching is by whole labels:
//! `*.build.example.com` is a pattern for `a.build.example.com`, never for
//! `evilbuild.example.com` nor `a.b.build.example.com`.
//!
//! Pattern syntax (explicit depth):
//! - `host.example.com` — that name only;
//! - `*.zone` — exactly one label below `zone`, and the wildcard name `*.zone` itself;
//! - `**.zone` — one or more labels below `zone`, and wildcard names at any depth below it.
//!
//! A requested name may be a wildcard only as a whole left-most `*` label over at least two
//! labels (`*.example.com`, never `*.com`, `a*.example.com` or `*.*.example.com`).

use std::fmt;

/// Longest DNS name in presentation form (RFC 1035 §2.3.4, without the root dot).
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Why a name or pattern is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("`{0}` is not a valid DNS name: {1}")]
    Invalid(String, &'static str),
    /// A wildcard in the wrong place, or over too few labels.
    #[error("`{0}`: {1}")]
    Wildcard(String, &'static str),
}

/// A DNS name as a certificate carries it: A-labels, lowercase, no trailing dot; possibly a
/// wildcard (`*.` followed by at least two labels).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

/// Maps `input` (without any `*` label) to lowercase A-labels and checks LDH syntax.
fn to_ascii(whole: &str, input: &str) -> Result<String, NameError> {
    let invalid = |why| NameError::Invalid(whole.to_owned(), why);
    let trimmed = input.strip_suffix('.').unwrap_or(input);
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    let ascii = idna::domain_to_ascii_strict(trimmed).map_err(|_| invalid("IDNA processing failed"))?;
    if ascii.len() > MAX_NAME {
        return Err(invalid("it is longer than 253 characters"));
    }
    for label in ascii.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(invalid("a label is empty or longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(invalid(
                "a label has characters other than letters, digits and inner hyphens",
            ));
        }
    }
    Ok(ascii)
}

impl DnsName {
    /// Parses a requested name (Unicode or punycode, any case, optional trailing dot).
    ///
    /// # Errors
    /// [`NameError::Invalid`] for a malformed name, [`NameError::Wildcard`] for a wildcard
    /// anywhere but as the whole left-most label, or over fewer than two labels.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let wildcard = |why| NameError::Wildcard(input.to_owned(), why);
        let (star, rest) = match input.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        if rest.contains('*') {
            return Err(wildcard(
                "a wildcard may only be the whole left-most label (`*.example.com`)",
            ));
        }
        let ascii = to_ascii(input, rest)?;
        if star && ascii.split('.').count() < 2 {
            return Err(wildcard(
                "a wildcard must cover at least two labels (`*.example.com`, not `*.com`)",
            ));
        }
        Ok(Self(if star { format!("*.{ascii}") } else { ascii }))
    }

    /// Whether this is a wildcard name (`*.zone`).
    #[must_use]
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The name without its wildcard label (the name itself if it has none).
    fn base(&self) -> &str {
        self.0.strip_prefix("*.").unwrap_or(&self.0)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How far below its zone a pattern reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// The zone name itself.
    Exact,
    /// Exactly one label below (`*.zone`).
    One,
    /// One or more labels below (`**.zone`).
    Any,
}

/// A pattern of allowed DNS names (see the module docs for the syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPattern {
    depth: Depth,
    /// The zone's labels, left to right.
    zone: Vec<String>,
    text: String,
}

/// `true` if `name` (labels, left to right) lies `depth` below `zone` or deeper, as `d` says.
fn below(name: &[&str], zone: &[String], depth: Depth) -> bool {
    if name.len() < zone.len() {
        return false;
    }
    let extra = name.len() - zone.len();
    let suffix_matches = name[extra..].iter().zip(zone).all(|(a, b)| *a == b.as_str());
    suffix_matches
        && match depth {
            Depth::Exact => extra == 0,
            Depth::One => extra == 1,
            Depth::Any => extra >= 1,
        }
}

impl DnsPattern {
    /// Parses `host.example.com`, `*.example.com` or `**.example.com` (IDNA as for names).
    ///
    /// # Errors
    /// When the zone is not a valid name, a `*` appears elsewhere, or a wildcard pattern's
    /// zone has fewer than two labels.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let (depth, rest) = if let Some(rest) = input.strip_prefix("**.") {
            (Depth::Any, rest)
        } else if let Some(rest) = input.strip_prefix("*.") {
            (Depth::One, rest)
        } else {
            (Depth::Exact, input)
        };
        if rest.contains('*') {
            return Err(NameError::Wildcard(
                input.to_owned(),
                "a pattern's wildcard is a whole left-most `*` or `**` label",
            ));
        }
        let ascii = to_ascii(input, rest)?;
        let zone: Vec<String> = ascii.split('.').map(str::to_owned).collect();
        if depth != Depth::Exact && zone.len() < 2 {
            return Err(NameError::Wildcard(
                input.to_owned(),
                "a wildcard pattern needs a zone of at least two labels",
            ));
        }
        let text = match depth {
            Depth::Exact => ascii,
            Depth::One => format!("*.{ascii}"),
            Depth::Any => format!("**.{ascii}"),
        };
        Ok(Self { depth, zone, text })
    }

    /// Whether the pattern allows `name` in a certificate.
    #[must_use]
    pub fn allows(&self, name: &DnsName) -> bool {
        let labels: Vec<&str> = name.base().split('.').collect();
        if name.is_wildcard() {
            // `*.S` stands for every name one label below S: allowed when all of them are.
            match self.depth {
                Depth::Exact => false,
                Depth::One => below(&labels, &self.zone, Depth::Exact),
                Depth::Any => {
                    below(&labels, &self.zone, Depth::Exact) || below(&labels, &self.zone, Depth::Any)
                }
            }
        } else {
            below(&labels, &self.zone, self.depth)
        }
    }

    /// Whether the pattern allows some name one label below `wildcard`'s zone (whether or
    /// not it allows the wildcard itself): a refused wildcard is then refused for its depth.
    #[must_use]
    pub fn allows_children_of(&self, wildcard: &DnsName) -> bool {
        let base: Vec<&str> = wildcard.base().split('.').collect();
        let zone: Vec<&str> = self.zone.iter().map(String::as_str).collect();
        match self.depth {
            // The pattern's one name is itself a child of the wildcard's zone.
            Depth::Exact => below(
                &zone,
                &base.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>(),
                Depth::One,
            ),
            Depth::One => base == zone,
            Depth::Any => base == zone || below(&base, &self.zone, Depth::Any),
        }
    }
}

impl fmt::Display for DnsPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str) -> DnsName {
        DnsName::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn pattern(s: &str) -> DnsPattern {
        DnsPattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn label_boundaries_and_depths() {
        let one = pattern("*.build.example.com");
        assert!(one.allows(&name("a.build.example.com")));
        assert!(one.allows(&name("*.build.example.com")));
        assert!(!one.allows(&name("evilbuild.example.com")));
        assert!(!one.allows(&name("a.evilbuild.example.com")));
        assert!(!one.allows(&name("build.example.com")));
        assert!(!one.allows(&name("a.b.build.example.com")));
        assert!(!one.allows(&name("*.b.build.example.com")));
        let any = pattern("**.build.example.com");
        assert!(any.allows(&name("a.b.build.example.com")));
        assert!(any.allows(&name("*.b.build.example.com")));
        assert!(any.allows(&name("*.build.example.com")));
        assert!(!any.allows(&name("build.example.com")));
        assert!(!any.allows(&name("a.xbuild.example.com")));
        let exact = pattern("ci.example.com");
        assert!(exact.allows(&name("CI.Example.COM.")));
        assert!(!exact.allows(&name("a.ci.example.com")));
        assert!(!exact.allows(&name("*.example.com")));
    }

    #[test]
    fn unicode_and_punycode_are_one_name() {
        let p = pattern("*.bücher.example");
        assert_eq!(p.to_string(), "*.xn--bcher-kva.example");
        assert!(p.allows(&name("shop.xn--bcher-kva.example")));
        assert!(p.allows(&name("SHOP.BÜCHER.example")));
        assert_eq!(name("BÜCHER.example"), name("xn--bcher-kva.example"));
        // Full-width dots are dots after UTS #46 mapping.
        assert_eq!(
            name("a\u{3002}bücher\u{ff0e}example"),
            name("a.xn--bcher-kva.example")
        );
    }

    #[test]
    fn malformed_names_and_wildcards_are_refused() {
        for bad in [
            "",
            ".",
            "a..b",
            "-a.example.com",
            "a-.example.com",
            "a_b.example.com",
            "a b.example",
        ] {
            assert!(
                matches!(DnsName::parse(bad), Err(NameError::Invalid(..))),
                "{bad}"
            );
        }
        for bad in [
            "*.com",
            "*",
            "a*.example.com",
            "*.*.example.com",
            "a.*.example.com",
            "**.example.com",
        ] {
            assert!(
                matches!(DnsName::parse(bad), Err(NameError::Wildcard(..))),
                "{bad}"
            );
        }
        assert!(DnsName::parse(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(DnsPattern::parse("*.com").is_err());
        assert!(DnsPattern::parse("a.*.com").is_err());
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,12}"
    }

    proptest! {
        /// Whatever the labels, a name that does not end in the zone at a label boundary
        /// is never allowed, and one label below it always is (for `*.`).
        #[test]
        fn only_whole_label_suffixes_match(prefix in label(), glued in label(), zone in proptest::collection::vec(label(), 2..4)) {
            let zone = zone.join(".");
            let p = pattern(&format!("*.{zone}"));
            let child = name(&format!("{prefix}.{zone}"));
            // `<glued><zone>` (no dot) shares the zone as a string suffix only.
            let glued_name = name(&format!("{glued}{zone}"));
            let under_glued = name(&format!("{prefix}.{glued}{zone}"));
            let grandchild = name(&format!("{prefix}.{glued}.{zone}"));
            prop_assert!(p.allows(&child));
            prop_assert!(!p.allows(&glued_name));
            prop_assert!(!p.allows(&under_glued));
            prop_assert!(!p.allows(&grandchild));
            let any = pattern(&format!("**.{zone}"));
            prop_assert!(any.allows(&grandchild));
        }

        /// Depth is exact: `*.` allows one level and the wildcard of that level, no other.
        #[test]
        fn wildcard_depth_is_explicit(labels in proptest::collection::vec(label(), 1..4), zone in proptest::collection::vec(label(), 2..3)) {
            let zone = zone.join(".");
            let host = format!("{}.{zone}", labels.join("."));
            let one = pattern(&format!("*.{zone}"));
            let any = pattern(&format!("**.{zone}"));
            let wildcard = name(&format!("*.{}", &host[host.find('.').map_or(0, |i| i + 1)..]));
            let host = name(&host);
            prop_assert_eq!(one.allows(&host), labels.len() == 1);
            prop_assert_eq!(one.allows(&wildcard), labels.len() == 1);
            prop_assert!(any.allows(&wildcard));
            prop_assert!(any.allows(&host));
        }

        /// Case and the Unicode/punycode form never change a verdict.
        #[test]
        fn case_and_idna_form_do_not_matter(prefix in label(), upper in any::<bool>()) {
            let unicode = format!("{prefix}.bücher.example");
            let shown = if upper { unicode.to_uppercase() } else { unicode };
            let shown = name(&shown);
            let puny = name(&format!("{prefix}.xn--bcher-kva.example"));
            prop_assert_eq!(&shown, &puny);
            prop_assert!(pattern("*.xn--bcher-kva.example").allows(&shown));
        }
    }
}
