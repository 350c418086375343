//! Operational endpoints and `/auth/status`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// For `/readyz`: the database backend and whether it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// `GET /auth/status`: who the presented access token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthStatus {
    pub sub: String,
    pub client_id: String,
    pub scope: String,
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    pub expires_in: u64,
}
