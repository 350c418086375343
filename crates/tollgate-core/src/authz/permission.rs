//! Permission names and grants (which may end in a wildcard).

use std::fmt;

/// The longest permission name accepted.
const MAX_LEN: usize = 128;
/// The most colon-separated segments a name may have.
const MAX_SEGMENTS: usize = 8;

/// A permission name was not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a permission: use lowercase segments of letters, digits, `-` and `_`, separated by `:` (e.g. `registry:pull`), optionally ending in `:*`"
)]
pub struct InvalidPermission(pub String);

/// One concrete permission, e.g. `certificate:sign:client`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(String);

fn valid_segment(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn valid_name(s: &str) -> bool {
    s.len() <= MAX_LEN && s.split(':').count() <= MAX_SEGMENTS && s.split(':').all(valid_segment)
}

impl Permission {
    pub fn parse(s: &str) -> Result<Self, InvalidPermission> {
        if valid_name(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidPermission(s.to_owned()))
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a role grants: one permission, every permission below a prefix, or everything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grant {
    /// `*`
    All,
    /// `certificate:sign:*`: permissions strictly below `certificate:sign` (not itself).
    Below(Permission),
    /// `registry:pull`
    Exact(Permission),
}

impl Grant {
    pub fn parse(s: &str) -> Result<Self, InvalidPermission> {
        if s == "*" {
            return Ok(Grant::All);
        }
        match s.strip_suffix(":*") {
            Some(prefix) => Permission::parse(prefix)
                .map(Grant::Below)
                .map_err(|_| InvalidPermission(s.to_owned())),
            None => Permission::parse(s).map(Grant::Exact),
        }
    }

    /// Whether this grant allows `p`.
    #[must_use]
    pub fn allows(&self, p: &Permission) -> bool {
        match self {
            Grant::All => true,
            Grant::Exact(q) => q == p,
            Grant::Below(prefix) => {
                p.0.strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with(':'))
            }
        }
    }

    /// Whether everything `other` allows, this allows too.
    #[must_use]
    pub fn covers(&self, other: &Grant) -> bool {
        match (self, other) {
            (Grant::All, _) => true,
            (_, Grant::All) => false,
            (g, Grant::Exact(p)) => g.allows(p),
            (Grant::Exact(_), Grant::Below(_)) => false,
            (Grant::Below(a), Grant::Below(b)) => a == b || Grant::Below(a.clone()).allows(b),
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::All => f.write_str("*"),
            Grant::Below(p) => write!(f, "{p}:*"),
            Grant::Exact(p) => write!(f, "{p}"),
        }
    }
}

/// The grants a caller holds (the union of their roles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet(Vec<Grant>);

impl PermissionSet {
    pub fn parse<'a>(grants: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidPermission> {
        let mut set = Self::default();
        for g in grants {
            set.insert(Grant::parse(g)?);
        }
        Ok(set)
    }

    pub fn insert(&mut self, grant: Grant) {
        if !self.0.contains(&grant) {
            self.0.push(grant);
            self.0.sort();
        }
    }

    pub fn extend(&mut self, other: &PermissionSet) {
        for g in &other.0 {
            self.insert(g.clone());
        }
    }

    #[must_use]
    pub fn allows(&self, p: &Permission) -> bool {
        self.0.iter().any(|g| g.allows(p))
    }

    /// Whether every grant of `other` is covered by one of ours: a caller may hand out
    /// only what they hold themselves.
    #[must_use]
    pub fn covers(&self, other: &PermissionSet) -> bool {
        other.0.iter().all(|g| self.0.iter().any(|mine| mine.covers(g)))
    }

    /// The grants of `other` that no grant of ours covers.
    #[must_use]
    pub fn uncovered<'o>(&self, other: &'o PermissionSet) -> Vec<&'o Grant> {
        other
            .0
            .iter()
            .filter(|g| !self.0.iter().any(|mine| mine.covers(g)))
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.0.iter()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The permissions tollgate itself checks, with what each allows. Custom roles may also
/// name other permissions (for services behind tollgate); these are the ones with meaning here.
#[must_use]
pub fn catalog() -> &'static [(&'static str, &'static str)] {
    &[
        ("org:read", "See the org and its settings."),
        ("org:admin", "Change the org's settings."),
        (
            "org:issuers",
            "Choose which upstream issuers may sign in to the org.",
        ),
        ("members:read", "List members and their roles."),
        ("members:write", "Add and remove members and change their roles."),
        ("roles:read", "List the org's roles and their permissions."),
        ("roles:write", "Create, change and delete custom roles."),
        ("service-accounts:read", "List the org's service accounts."),
        (
            "service-accounts:write",
            "Create, disable and revoke the org's service accounts.",
        ),
        ("sessions:read", "List the sessions of the org's members."),
        ("sessions:revoke", "End the sessions of the org's members."),
        ("audit:read", "Read the org's audit trail."),
        (
            "tokens:exchange",
            "Exchange an upstream token for a token in this org.",
        ),
        ("registry:pull", "Pull from the org's container repositories."),
        ("registry:push", "Push to the org's container repositories."),
        ("registry:delete", "Delete from the org's container repositories."),
        ("registry:catalog", "List the registry's repositories."),
        ("certificate:sign:client", "Get client certificates."),
        ("certificate:sign:server", "Get server certificates."),
        (
            "trust-policies:read",
            "See which CI workloads may get which credentials.",
        ),
        (
            "trust-policies:write",
            "Create, change and delete the org's trust policies for CI workloads.",
        ),
        (
            "packages:publish",
            "Start combined publish sessions (user + CI runner) for the org's packages.",
        ),
        ("builds:read", "List the org's build sessions."),
        ("builds:write", "Close any of the org's build sessions."),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Permission {
        Permission::parse(s).expect("valid")
    }

    #[test]
    fn names_are_checked() {
        for ok in ["registry:pull", "certificate:sign:client", "a", "x-y_z:1"] {
            assert!(Permission::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ":", "a:", ":a", "A:b", "a b", "a:*", "*", "a::b", "-a", "é"] {
            assert!(Permission::parse(bad).is_err(), "{bad}");
        }
        assert!(Permission::parse("a:".repeat(MAX_SEGMENTS).trim_end_matches(':')).is_ok());
        assert!(Permission::parse("a:".repeat(MAX_SEGMENTS + 1).trim_end_matches(':')).is_err());
    }

    #[test]
    fn wildcard_respects_segment_boundaries() {
        let g = Grant::parse("registry:*").expect("valid");
        assert!(g.allows(&p("registry:pull")));
        assert!(g.allows(&p("registry:push:force")));
        assert!(!g.allows(&p("registry")));
        assert!(!g.allows(&p("registryx:pull")));
        assert!(Grant::parse("registry*").is_err());
        assert!(Grant::parse("*:pull").is_err());
    }

    #[test]
    fn coverage() {
        let g = |s| Grant::parse(s).expect("valid");
        assert!(g("*").covers(&g("*")));
        assert!(!g("a:*").covers(&g("*")));
        assert!(g("a:*").covers(&g("a:b:*")));
        assert!(g("a:*").covers(&g("a:*")));
        assert!(!g("a:b:*").covers(&g("a:*")));
        assert!(!g("a:b").covers(&g("a:b:*")));
        assert!(g("a:b").covers(&g("a:b")));
    }

    fn grant_strategy() -> impl Strategy<Value = Grant> {
        let name =
            prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4).prop_map(|v| v.join(":"));
        prop_oneof![
            Just(Grant::All),
            name.clone().prop_map(|n| Grant::Below(Permission(n))),
            name.prop_map(|n| Grant::Exact(Permission(n))),
        ]
    }

    proptest! {
        /// `covers` is sound: whatever the covered grant allows, the covering one allows.
        #[test]
        fn covers_is_sound(a in grant_strategy(), b in grant_strategy(),
                           probe in prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..5)) {
            let probe = Permission(probe.join(":"));
            if a.covers(&b) && b.allows(&probe) {
                prop_assert!(a.allows(&probe), "{a} covers {b} but not {probe}");
            }
        }

        /// Display and parse round-trip.
        #[test]
        fn grants_round_trip(a in grant_strategy()) {
            prop_assert_eq!(Grant::parse(&a.to_string()).expect("valid"), a);
        }
    }
}
