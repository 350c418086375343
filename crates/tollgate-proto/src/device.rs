//! The device authorization grant (RFC 8628): the device's request and answer, and the
//! approval API a signed-in user (or the verification page) calls with the user code.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /oauth/device_authorization` form fields (application/x-www-form-urlencoded).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DeviceAuthorizationRequest {
    /// The public client asking (e.g. `tollgate-cli`): 1–64 characters of `[A-Za-z0-9._:-]`.
    /// Polling must present the same value.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub client_id: String,
    /// Space-separated scopes; omitted means what the approving user's sign-in allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$")]
    pub scope: Option<String>,
    /// The audience of the tokens (one); omitted means tollgate's own API
    /// (`users.api_audience`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// RFC 8707 resource indicator; same rules as `audience`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// The answer to a device authorization request (RFC 8628 §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceAuthorizationResponse {
    /// The device's secret (`tg_dc_…`), polled with at `POST /oauth/token`. Never shown to
    /// the user.
    pub device_code: String,
    /// What the user enters at `verification_uri`: eight letters, `BCDF-GHJK`.
    pub user_code: String,
    pub verification_uri: String,
    /// `verification_uri` with the user code filled in, for a link or a QR code.
    pub verification_uri_complete: String,
    /// Seconds until both codes expire.
    pub expires_in: u64,
    /// Seconds the device waits between polls.
    pub interval: u64,
}

/// `GET /v1/device?user_code=…`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
pub struct DeviceLookupQuery {
    /// The user code as typed: any case, with or without the dash.
    pub user_code: String,
}

/// `POST /v1/device/approve` and `POST /v1/device/deny`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceDecisionRequest {
    /// The user code as typed: any case, with or without the dash.
    pub user_code: String,
    /// Approve only: the org (id or name) the device's tokens act in; by default the org of
    /// the approving token. The user must be a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

/// A device authorization as the approving user sees it: who asks for what, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceInfo {
    /// A public id of the authorization (`dev_…`), as in audit events.
    pub id: String,
    /// Canonical form, `BCDF-GHJK`.
    pub user_code: String,
    /// The client that asked.
    pub client_id: String,
    /// What the device asked for (not yet what it gets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// RFC 3339.
    pub expires_at: String,
    /// `pending`, `approved`, `denied` or `consumed` (the device has its tokens).
    pub state: String,
    /// Whether the codes expired (an expired authorization can no longer be decided).
    pub expired: bool,
    /// After an approval, for the user who approved: what the tokens carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted: Option<DeviceGrantInfo>,
}

/// What an approved device's tokens carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceGrantInfo {
    pub scope: String,
    pub audience: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Whether the device also gets a refresh token.
    pub refresh_token: bool,
}
