//! Orgs, members, roles (`/v1/admin/orgs`, `/v1/orgs/{org}/…`) and the self-service API (`/v1/me`).

use crate::admin::{SessionInfo, UserInfo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Create an org (operators only).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    /// Unique, 2–63 characters of `[a-z0-9-]`, starting with a letter; usable in place of the id.
    #[schema(pattern = "^[a-z][a-z0-9-]{1,62}$")]
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// A user id to make the first owner.
    #[serde(default)]
    pub owner: Option<String>,
    /// Issuer names that may sign in to the org; absent = every enabled issuer.
    #[serde(default)]
    pub issuers: Option<Vec<String>>,
}

/// An upstream org (e.g. a Clerk `org_id`) that selects this org at exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalOrgId {
    /// The upstream issuer's exact `iss`.
    pub iss: String,
    /// The org id in the upstream token's org claim.
    pub external_id: String,
}

/// An org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrgInfo {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Issuer names that may sign in; `null` = every enabled issuer.
    pub issuers: Option<Vec<String>>,
    pub external_ids: Vec<ExternalOrgId>,
    pub created_at: String,
}

/// Which issuers may sign in to an org.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetIssuersRequest {
    /// Issuer names; `null` = every enabled issuer; `[]` = none (nobody can exchange into the org).
    pub issuers: Option<Vec<String>>,
}

/// A member and their roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberInfo {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Add a member or replace their roles.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMemberRequest {
    /// Built-in (`owner`, `admin`, `member`, `viewer`) or the org's custom roles; at least one.
    pub roles: Vec<String>,
}

/// A role: built in or custom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Permissions, `prefix:*` wildcards, or `*`.
    pub permissions: Vec<String>,
    pub builtin: bool,
}

/// Create or replace a custom role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRoleRequest {
    #[serde(default)]
    pub description: Option<String>,
    /// Permissions (`registry:push`), wildcards (`certificate:sign:*`) or `*`; at least one.
    pub permissions: Vec<String>,
}

/// The service accounts an org-wide revocation disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokedServiceAccounts {
    pub disabled: Vec<String>,
}

/// One of the caller's memberships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MembershipInfo {
    pub org_id: String,
    pub org_name: String,
    pub roles: Vec<String>,
}

/// The calling user, as their token and tollgate see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MeInfo {
    pub user: UserInfo,
    /// The org the calling token acts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The roles the calling token carries.
    pub roles: Vec<String>,
    pub memberships: Vec<MembershipInfo>,
}

/// An access token to revoke.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokenRequest {
    pub token: String,
}

/// A user's own sessions.
pub type MySessions = Vec<SessionInfo>;
