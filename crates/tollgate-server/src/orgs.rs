//! Orgs as the token paths see them: which org a token acts in, with which roles and
//! permissions, and whether the org accepts the upstream issuer.
//!
//! The active org of an exchange is, in order: the `org` parameter; the org bound to the
//! upstream token's org claim (Clerk `org_id`); the user's only membership. An org named by
//! the request or the claim must have the user as a member, must accept the issuer, and the
//! user's roles there must grant `tokens:exchange`. Without any, the token has no org.

use crate::error::ApiError;
use crate::state::AppState;
use tollgate_core::Reason;
use tollgate_core::authz::{self, BuiltinRole, PermissionSet, Requirement};
use tollgate_core::upstream::UpstreamIdentity;
use tollgate_store::{OrgRecord, UserRecord};

/// An org a user acts in, with their roles and what those grant.
#[derive(Debug, Clone)]
pub struct ActiveOrg {
    pub org: OrgRecord,
    pub roles: Vec<String>,
    pub permissions: PermissionSet,
}

/// What `roles` grant in `org`: built-in roles by definition, custom roles as stored.
/// Unknown role names (a custom role deleted meanwhile cannot be held, but stay defensive)
/// grant nothing.
pub async fn permissions_of(
    state: &AppState,
    org_id: &str,
    roles: &[String],
) -> Result<PermissionSet, ApiError> {
    let mut set = PermissionSet::default();
    let mut custom = Vec::new();
    for role in roles {
        match BuiltinRole::from_name(role) {
            Some(b) => set.extend(&b.permissions()),
            None => custom.push(role.as_str()),
        }
    }
    if !custom.is_empty() {
        for r in state.store.list_roles(org_id).await? {
            if custom.contains(&r.name.as_str()) {
                // Stored grants were validated on write; a corrupt one grants nothing.
                for g in &r.permissions {
                    if let Ok(g) = authz::Grant::parse(g) {
                        set.insert(g);
                    }
                }
            }
        }
    }
    Ok(set)
}

/// The user's membership of `org`, or `None`.
pub async fn membership(
    state: &AppState,
    org: &OrgRecord,
    user_id: &str,
) -> Result<Option<ActiveOrg>, ApiError> {
    let Some(m) = state.store.get_membership(&org.id, user_id).await? else {
        return Ok(None);
    };
    let permissions = permissions_of(state, &org.id, &m.roles).await?;
    Ok(Some(ActiveOrg {
        org: org.clone(),
        roles: m.roles,
        permissions,
    }))
}

/// Whether the org accepts sign-ins from the issuer named `issuer`.
#[must_use]
pub fn accepts_issuer(org: &OrgRecord, issuer: &str) -> bool {
    org.issuers
        .as_ref()
        .is_none_or(|list| list.iter().any(|i| i == issuer))
}

/// Why an org was chosen; refusals say which.
#[derive(Debug, Clone, Copy)]
enum Source {
    Parameter,
    UpstreamClaim,
    OnlyMembership,
}

/// The org an exchange acts in (see the module docs), checked for membership, issuer and
/// `tokens:exchange`.
pub async fn resolve_for_exchange(
    state: &AppState,
    user: &UserRecord,
    identity: &UpstreamIdentity,
    requested: Option<&str>,
) -> Result<Option<ActiveOrg>, ApiError> {
    let chosen = match requested {
        Some(r) => match state.store.find_org(r).await? {
            Some(o) => Some((o, Source::Parameter)),
            // Do not tell non-members which orgs exist.
            None => return Err(not_member(r)),
        },
        None => match &identity.org_id {
            Some(ext) => state
                .store
                .org_by_external(&identity.issuer, ext)
                .await?
                .map(|o| (o, Source::UpstreamClaim)),
            None => None,
        },
    };
    let (active, source) = match chosen {
        Some((org, source)) => match membership(state, &org, &user.id).await? {
            Some(a) => (a, source),
            None => return Err(not_member(&org.name)),
        },
        None => {
            let mut all = state.store.memberships_of(&user.id).await?;
            if all.len() != 1 {
                return Ok(None);
            }
            let m = all.remove(0);
            let Some(org) = state.store.find_org(&m.org_id).await? else {
                return Ok(None);
            };
            let permissions = permissions_of(state, &org.id, &m.roles).await?;
            (
                ActiveOrg {
                    org,
                    roles: m.roles,
                    permissions,
                },
                Source::OnlyMembership,
            )
        }
    };
    check_can_exchange(&active, &identity.issuer_name)
        .map_err(|e| ApiError::new(e.reason, format!("{} (org chosen by {source:?})", e.message)))?;
    Ok(Some(active))
}

/// The org a refresh of a session acts in: the session's, re-checked as at exchange.
pub async fn resolve_for_session(
    state: &AppState,
    org_id: Option<&str>,
    user_id: &str,
    issuer: Option<&str>,
) -> Result<Option<ActiveOrg>, ApiError> {
    let Some(org_id) = org_id else { return Ok(None) };
    let Some(org) = state.store.find_org(org_id).await? else {
        return Err(not_member(org_id));
    };
    let Some(active) = membership(state, &org, user_id).await? else {
        return Err(not_member(&org.name));
    };
    if let Some(issuer) = issuer {
        check_can_exchange(&active, issuer)?;
    }
    Ok(Some(active))
}

fn check_can_exchange(active: &ActiveOrg, issuer: &str) -> Result<(), ApiError> {
    if !accepts_issuer(&active.org, issuer) {
        return Err(ApiError::new(
            Reason::IssuerNotEnabledForOrg,
            format!(
                "org `{}` does not accept sign-ins from issuer `{issuer}`",
                active.org.name
            ),
        ));
    }
    authz::decide(Requirement::All(&["tokens:exchange"]), &active.permissions).map_err(|d| {
        ApiError::new(
            Reason::PermissionDenied,
            format!("in org `{}`: {d}", active.org.name),
        )
    })
}

fn not_member(org: &str) -> ApiError {
    ApiError::new(
        Reason::OrgNotMember,
        format!("not a member of org `{org}` (or no such org)"),
    )
}
