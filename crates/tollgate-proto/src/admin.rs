//! Admin API bodies (`/v1/admin/...`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Create a service account.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClientRequest {
    /// Unique, 1–64 characters of `[A-Za-z0-9._-]`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    /// Scopes the client may ask for.
    #[serde(default)]
    pub scope: Vec<String>,
    /// Audiences the client may ask for; the first is its default.
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// A service account (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientInfo {
    pub client_id: String,
    pub name: String,
    pub scope: Vec<String>,
    pub audiences: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    pub disabled: bool,
    /// The org the service account belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

/// A new or re-keyed service account with its secret, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientWithSecret {
    #[serde(flatten)]
    pub client: ClientInfo,
    pub client_secret: String,
}

/// A signing key, public facts only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    pub kid: String,
    /// Token kind it signs (`access`).
    pub purpose: String,
    pub alg: String,
    /// `next`, `active` or `retired`.
    pub state: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
    /// Retired keys leave JWKS at this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_until: Option<String>,
}

/// Rotate the signing key of a purpose.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeysRequest {
    /// Defaults to `access`.
    #[serde(default)]
    pub purpose: Option<String>,
    /// Rotate even if the next key was published less than `jwks_max_age` ago.
    #[serde(default)]
    pub force: bool,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RotateKeysResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<String>,
    pub activated: String,
    pub next: String,
}

/// Retire a key that is not active.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetireKeyRequest {
    /// Stop publishing a retired key now; tokens it signed stop verifying.
    #[serde(default)]
    pub immediately: bool,
}

/// The HMAC secret version now in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecretRotation {
    pub version: i32,
}

/// One audit event (defined with the other audit bodies).
pub use crate::audit::AuditEvent;

/// An upstream issuer as configured, with the state of its key cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IssuerInfo {
    pub name: String,
    /// `file` (config file; change it there and send SIGHUP) or `api`.
    pub source: String,
    pub issuer: String,
    pub enabled: bool,
    /// The specification as written (see the `[[issuers]]` section of the configuration).
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// The JWKS cache entry, once the issuer's keys have been fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub keys: Option<serde_json::Value>,
}

/// `POST /v1/verify`: a token to diagnose.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    #[schema(min_length = 1)]
    pub token: String,
}

/// One check of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyStep {
    pub check: String,
    pub passed: bool,
    pub detail: String,
}

/// What tollgate concludes about a token, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse {
    pub valid: bool,
    /// The reason code of the refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// The issuer's configured name, when the token's `iss` is trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Every check, in order, up to the one that failed.
    pub steps: Vec<VerifyStep>,
    /// The unverified JOSE header, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub header: Option<serde_json::Value>,
    /// The identity the claims map to (valid tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub identity: Option<serde_json::Value>,
    /// What a token exchange would grant by default: scope and audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub exchange: Option<serde_json::Value>,
    /// For CI tokens: how every org's trust policies for the issuer judge the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<crate::ci::PolicyEvaluation>,
}

/// An upstream identity: the issuer's exact `iss` and the `sub` it vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityInfo {
    #[schema(min_length = 1)]
    pub iss: String,
    #[schema(min_length = 1)]
    pub sub: String,
}

/// A local user with the identities linked to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Tokens carrying an older `user_ver` are refused.
    pub user_ver: i64,
    pub created_at: String,
    pub disabled: bool,
    /// When the user redeemed an invite sent to `email` (RFC 3339); absent if never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified_at: Option<String>,
    pub identities: Vec<IdentityInfo>,
}

/// Create a user before their first sign-in (needed with `registration_mode = invite_only`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[serde(default)]
    pub email: Option<String>,
    /// Upstream identities that sign in as this user.
    #[serde(default)]
    pub identities: Vec<IdentityInfo>,
}

/// A user session: one rotating refresh-token family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    pub id: String,
    pub user_id: String,
    /// The org the session's tokens act in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    pub client_id: String,
    pub scope: String,
    pub audience: String,
    pub created_at: String,
    /// Absolute end of the session.
    pub expires_at: String,
    pub last_used_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Why it was revoked (`revoked`, `refresh-token-reused`, `user-version-stale`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
}
