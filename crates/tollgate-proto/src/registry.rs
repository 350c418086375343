//! The container registry token server (`/v2/token`), pull credentials and API keys.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A registry token (distribution token authentication).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistryTokenResponse {
    pub token: String,
    /// The same token, for OAuth2-style clients.
    pub access_token: String,
    pub expires_in: u64,
    /// RFC 3339.
    pub issued_at: String,
    /// With `access_type=offline`, when the credential presented was a refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// The OAuth2 form of `POST /v2/token` (distribution's OAuth2 token authentication).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RegistryTokenForm {
    /// `password` or `refresh_token`.
    pub grant_type: String,
    /// Required by the spec; any value.
    pub client_id: String,
    #[serde(default)]
    pub service: Option<String>,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: Option<String>,
    /// `password` grant.
    #[serde(default)]
    pub username: Option<String>,
    /// `password` grant: a service-account secret, pull credential, or tollgate token.
    #[serde(default)]
    pub password: Option<String>,
    /// `refresh_token` grant: a tollgate refresh token (not spent).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// `offline`: return the refresh token to use next.
    #[serde(default)]
    pub access_type: Option<String>,
}

/// Ask for a pull credential: a repository, or a workspace (org) and app.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullCredentialRequest {
    #[serde(default)]
    pub repository: Option<String>,
    /// With `app`: the repository `<workspace>/<app>`.
    #[serde(default)]
    pub workspace: Option<String>,
    #[serde(default)]
    pub app: Option<String>,
}

/// A short-lived credential that may only pull one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullCredential {
    pub username: String,
    pub password: String,
    /// The registry host to log in to.
    pub registry: String,
    pub repository: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// Create an API key for an internal service.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// Unique, 1–64 characters of `[A-Za-z0-9._-]`.
    pub name: String,
}

/// An API key (never with its secret, except once on creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub revoked: bool,
    /// Only in the answer to its creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The registry's `auth.token` configuration and the certificates it must trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistryConfigResponse {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    /// PEM certificates of the registry signing keys (active and next), for `rootcertbundle`.
    pub rootcertbundle: String,
}
