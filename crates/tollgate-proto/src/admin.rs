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

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub detail: serde_json::Value,
}
