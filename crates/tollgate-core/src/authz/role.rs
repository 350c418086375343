//! Roles: the four built in, and the names custom roles may take.

use super::permission::{InvalidPermission, PermissionSet};

/// The roles every org has. Custom roles cannot take these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinRole {
    /// Everything, including choosing the org's issuers; an org keeps at least one owner.
    Owner,
    /// Runs the org: members, roles, service accounts, sessions, audit, and every credential.
    Admin,
    /// Uses the org: exchanges tokens, pulls and pushes, gets client certificates.
    Member,
    /// Looks: signs in to read the org and its members, pulls.
    Viewer,
}

impl BuiltinRole {
    pub const ALL: [BuiltinRole; 4] = [
        BuiltinRole::Owner,
        BuiltinRole::Admin,
        BuiltinRole::Member,
        BuiltinRole::Viewer,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            BuiltinRole::Owner => "owner",
            BuiltinRole::Admin => "admin",
            BuiltinRole::Member => "member",
            BuiltinRole::Viewer => "viewer",
        }
    }

    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The grants of this role, as written in the documentation.
    #[must_use]
    pub fn grants(self) -> &'static [&'static str] {
        match self {
            BuiltinRole::Owner => &["*"],
            BuiltinRole::Admin => &[
                "org:read",
                "org:admin",
                "members:*",
                "roles:*",
                "service-accounts:*",
                "sessions:*",
                "audit:read",
                "tokens:exchange",
                "registry:*",
                "certificate:sign:*",
                "trust-policies:*",
                "packages:publish",
                "builds:*",
            ],
            BuiltinRole::Member => &[
                "org:read",
                "members:read",
                "roles:read",
                "tokens:exchange",
                "registry:pull",
                "registry:push",
                "certificate:sign:client",
                "trust-policies:read",
                "packages:publish",
                "builds:read",
            ],
            BuiltinRole::Viewer => &[
                "org:read",
                "members:read",
                "roles:read",
                "tokens:exchange",
                "registry:pull",
                "trust-policies:read",
            ],
        }
    }

    #[must_use]
    pub fn permissions(self) -> PermissionSet {
        // The grants above are literals checked by a test; parsing cannot fail.
        PermissionSet::parse(self.grants().iter().copied()).unwrap_or_default()
    }
}

/// A role name: 1–63 lowercase letters, digits, `-` or `_`, starting with a letter.
pub type RoleName = String;

/// Checks a custom role's name: well formed and not a built-in role's.
pub fn validate_role_name(name: &str) -> Result<(), InvalidPermission> {
    let mut bytes = name.bytes();
    let well_formed = name.len() <= 63
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if well_formed && BuiltinRole::from_name(name).is_none() {
        Ok(())
    } else {
        Err(InvalidPermission(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{Permission, catalog};

    #[test]
    fn builtin_grants_parse_and_owner_covers_all() {
        for r in BuiltinRole::ALL {
            assert_eq!(
                PermissionSet::parse(r.grants().iter().copied()).map(|s| s.iter().count()),
                Ok(r.grants().len()),
                "{r:?}"
            );
            assert!(BuiltinRole::Owner.permissions().covers(&r.permissions()));
        }
    }

    #[test]
    fn roles_are_ordered_by_power() {
        let [owner, admin, member, viewer] = BuiltinRole::ALL.map(BuiltinRole::permissions);
        assert!(owner.covers(&admin) && admin.covers(&member) && member.covers(&viewer));
        assert!(!admin.covers(&owner) && !member.covers(&admin) && !viewer.covers(&member));
        // Only owners choose issuers (that decides who can sign in at all).
        let issuers = Permission::parse("org:issuers").expect("valid");
        assert!(owner.allows(&issuers) && !admin.allows(&issuers));
    }

    #[test]
    fn catalog_names_are_valid() {
        for (name, _) in catalog() {
            assert!(Permission::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn custom_role_names() {
        assert!(validate_role_name("release-manager").is_ok());
        for bad in ["", "owner", "Admin", "1x", "a b", &"a".repeat(64)] {
            assert!(validate_role_name(bad).is_err(), "{bad}");
        }
    }
}
