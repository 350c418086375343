//! Authorization server metadata (RFC 8414) and OpenID discovery.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// RFC 8414 metadata; also served as `/.well-known/openid-configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    /// RFC 8628 §4.
    pub device_authorization_endpoint: String,
    pub grant_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// For `private_key_jwt` (device keys): the algorithms of client assertions.
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Required by RFC 8414; empty because tollgate has no authorization endpoint.
    pub response_types_supported: Vec<String>,
    pub service_documentation: String,
}
