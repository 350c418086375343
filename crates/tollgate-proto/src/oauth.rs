//! OAuth 2.0 endpoint bodies (RFC 6749, RFC 7662, RFC 7009).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /oauth/token` form fields (application/x-www-form-urlencoded).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `client_credentials`, `refresh_token`, `urn:ietf:params:oauth:grant-type:token-exchange`,
    /// `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628) or
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523, a device key's assertion).
    #[schema(
        pattern = "^(client_credentials|refresh_token|urn:ietf:params:oauth:grant-type:token-exchange|urn:ietf:params:oauth:grant-type:device_code|urn:ietf:params:oauth:grant-type:jwt-bearer)$"
    )]
    pub grant_type: String,
    /// Token exchange: the upstream token (from a trusted issuer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:jwt`, `…:id_token` or `…:access_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token_type: Option<String>,
    /// Token exchange: a token of the party acting for the subject; becomes the `act` claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_token_type: Option<String>,
    /// Refresh grant: the refresh token to spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Device code grant (RFC 8628): the `device_code` from `/oauth/device_authorization`,
    /// with the same `client_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_code: Option<String>,
    /// JWT bearer grant (RFC 7523 §2.1): a JWS by a registered device key (`kid` = key id;
    /// `iss` = `sub` = key id, `aud` = the token endpoint URL, short `exp`, unique `jti`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion: Option<String>,
    /// With `client_credentials`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
    /// a device key authenticating with `private_key_jwt` (RFC 7523 §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion_type: Option<String>,
    /// The device key's JWT (same rules as `assertion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion: Option<String>,
    /// Token exchange: only `urn:ietf:params:oauth:token-type:access_token` (or `…:jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_token_type: Option<String>,
    /// Space-separated scopes; omitted means every scope the client is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$")]
    pub scope: Option<String>,
    /// RFC 8707 resource indicator; one audience per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Logical audience (RFC 8693 style); same rules as `resource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Token exchange: the org (id or name) the token acts in; by default the upstream
    /// token's org claim (if bound to an org) or the user's only membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// For client_secret_post; prefer HTTP Basic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// For client_secret_post; prefer HTTP Basic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The scopes granted, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A rotating refresh token: exchanges from issuers that allow sessions, and every
    /// `refresh_token` grant (the presented one is then spent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// RFC 8693: the type of the issued token (token exchange only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

/// `POST /oauth/introspect` and `POST /oauth/revoke` form fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct TokenTypeHintRequest {
    #[schema(min_length = 1)]
    pub token: String,
    /// `access_token` (the only kind tollgate issues here); other hints are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// RFC 7662 introspection response. Inactive tokens carry only `active: false`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IntrospectionResponse {
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}
