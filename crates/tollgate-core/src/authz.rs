//! Authorization: permissions, roles, and the one decision every guarded handler asks for.
//!
//! A [`Permission`] is a colon-separated name (`certificate:sign:client`); a grant may end
//! in `*` to cover every permission below a prefix (`certificate:sign:*`), and `*` alone
//! covers all. Roles are named sets of grants: four built in ([`BuiltinRole`]), any number
//! of custom ones per org. A [`Requirement`] is what an operation needs: all of a list
//! (the default) or any of a list (only where written so); [`decide`] answers it.

mod permission;
mod role;

pub use permission::{Grant, InvalidPermission, Permission, PermissionSet, catalog};
pub use role::{BuiltinRole, RoleName, validate_role_name};

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Every one of these (the default; an empty list is refused as a programming error).
    All(&'static [&'static str]),
    /// At least one of these; written out explicitly where an operation accepts alternatives.
    Any(&'static [&'static str]),
}

impl Requirement {
    /// The permission names this requirement mentions.
    #[must_use]
    pub fn permissions(&self) -> &'static [&'static str] {
        match self {
            Requirement::All(p) | Requirement::Any(p) => p,
        }
    }
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requirement::All(p) => write!(f, "all of [{}]", p.join(", ")),
            Requirement::Any(p) => write!(f, "any of [{}]", p.join(", ")),
        }
    }
}

/// Why [`decide`] refused: the permissions that were missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub missing: Vec<&'static str>,
    pub requirement: Requirement,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this needs {}; missing: {}",
            self.requirement,
            self.missing.join(", ")
        )
    }
}

/// Whether `granted` satisfies `requirement`. Fails closed: an empty requirement, or a
/// requirement naming something that is not a valid permission, is refused.
pub fn decide(requirement: Requirement, granted: &PermissionSet) -> Result<(), Denied> {
    let names = requirement.permissions();
    let held = |name: &&'static str| Permission::parse(name).is_ok_and(|p| granted.allows(&p));
    let missing: Vec<&'static str> = names.iter().filter(|n| !held(n)).copied().collect();
    let ok = match requirement {
        Requirement::All(_) => !names.is_empty() && missing.is_empty(),
        Requirement::Any(_) => missing.len() < names.len(),
    };
    if ok {
        Ok(())
    } else {
        Err(Denied { missing, requirement })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(grants: &[&str]) -> PermissionSet {
        PermissionSet::parse(grants.iter().copied()).expect("valid grants")
    }

    #[test]
    fn all_needs_every_permission() {
        let s = set(&["org:read", "members:read"]);
        assert_eq!(
            decide(Requirement::All(&["org:read", "members:read"]), &s),
            Ok(())
        );
        let denied = decide(Requirement::All(&["org:read", "members:write"]), &s).expect_err("refused");
        assert_eq!(denied.missing, vec!["members:write"]);
    }

    #[test]
    fn any_needs_one() {
        let s = set(&["sessions:read"]);
        assert_eq!(
            decide(Requirement::Any(&["org:admin", "sessions:read"]), &s),
            Ok(())
        );
        assert!(decide(Requirement::Any(&["org:admin", "audit:read"]), &s).is_err());
    }

    #[test]
    fn empty_and_invalid_requirements_fail_closed() {
        let s = set(&["*"]);
        assert!(decide(Requirement::All(&[]), &s).is_err());
        assert!(decide(Requirement::Any(&[]), &s).is_err());
        assert!(decide(Requirement::All(&["Not A Permission"]), &s).is_err());
    }

    #[test]
    fn wildcards_cover_below_their_prefix_only() {
        let s = set(&["certificate:sign:*"]);
        assert_eq!(decide(Requirement::All(&["certificate:sign:client"]), &s), Ok(()));
        assert_eq!(decide(Requirement::All(&["certificate:sign:server"]), &s), Ok(()));
        assert!(decide(Requirement::All(&["certificate:revoke"]), &s).is_err());
        assert!(decide(Requirement::All(&["certificate:sign"]), &s).is_err());
    }
}
