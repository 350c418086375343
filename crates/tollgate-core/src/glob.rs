//! Glob patterns for claim conditions: `*` matches any run of characters (including none),
//! everything else matches itself. No other metacharacters, so a pattern without `*` is an
//! exact match and nothing in a claim value can change a pattern's meaning.

/// Whether `value` matches `pattern`.
#[must_use]
pub fn matches(pattern: &str, value: &str) -> bool {
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    // Iterative wildcard matching with one backtrack point: O(len(p) * len(v)) worst case.
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert!(matches("org:admin", "org:admin"));
        assert!(!matches("org:admin", "org:admin2"));
        assert!(matches("org_*", "org_2abc"));
        assert!(!matches("org_*", "xorg_2abc"));
        assert!(matches(
            "repo:acme/*:ref:refs/heads/main",
            "repo:acme/api:ref:refs/heads/main"
        ));
        assert!(!matches(
            "repo:acme/*:ref:refs/heads/main",
            "repo:acme/api:ref:refs/heads/dev"
        ));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(!matches("", "x"));
    }

    proptest! {
        #[test]
        fn a_pattern_without_star_is_equality(p in "[a-z:/_.-]{0,12}", v in "[a-z:/_.-]{0,12}") {
            prop_assert_eq!(matches(&p, &v), p == v);
        }

        #[test]
        fn prefix_star_matches_exactly_the_strings_with_that_prefix(p in "[a-z]{0,6}", v in "[a-z]{0,10}") {
            prop_assert_eq!(matches(&format!("{p}*"), &v), v.starts_with(&p));
        }

        #[test]
        fn every_string_matches_itself_with_stars_inserted(v in "[a-z]{1,10}", at in 0usize..10) {
            let at = at % (v.len() + 1);
            let pattern = format!("{}*{}", &v[..at], &v[at..]);
            prop_assert!(matches(&pattern, &v));
        }
    }
}
