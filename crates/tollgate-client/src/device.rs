//! The device authorization grant (RFC 8628): the device's side (ask for codes, poll for
//! tokens) and the signed-in user's (look a user code up, approve or deny it, with the user
//! token set by [`Client::with_user_token`]).
//!
//! Polling answers the RFC's errors (`authorization_pending`, `slow_down`, `expired_token`,
//! `access_denied`, `invalid_grant`) as [`crate::Error::Refused`]; its `error` field is the
//! RFC code and `reason` tollgate's.

use crate::{Client, Result, decode};
use tollgate_proto::device::{DeviceAuthorizationResponse, DeviceDecisionRequest, DeviceInfo};
use tollgate_proto::oauth::TokenResponse;

/// `grant_type` of device polling.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl Client {
    /// `POST /oauth/device_authorization` as the public client `client_id`.
    pub async fn device_authorization(
        &self,
        client_id: &str,
        scope: Option<&str>,
        audience: Option<&str>,
    ) -> Result<DeviceAuthorizationResponse> {
        let mut form = vec![("client_id", client_id)];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        if let Some(a) = audience {
            form.push(("audience", a));
        }
        let req = self
            .http
            .post(self.url("/oauth/device_authorization"))
            .form(&form);
        decode(req.send().await?).await
    }

    /// One poll at `POST /oauth/token` with the device code (RFC 8628 §3.4): the tokens once
    /// the user approved, else the RFC error as [`crate::Error::Refused`].
    pub async fn device_token(&self, device_code: &str, client_id: &str) -> Result<TokenResponse> {
        let form = [
            ("grant_type", DEVICE_CODE_GRANT),
            ("device_code", device_code),
            ("client_id", client_id),
        ];
        let req = self.http.post(self.url("/oauth/token")).form(&form);
        decode(req.send().await?).await
    }

    /// `GET /v1/device?user_code=…` as the user: what the device asks for.
    pub async fn device_lookup(&self, user_code: &str) -> Result<DeviceInfo> {
        let req = self
            .user(self.http.get(self.url("/v1/device")))?
            .query(&[("user_code", user_code)]);
        decode(req.send().await?).await
    }

    /// `POST /v1/device/approve` as the user; the device's tokens act in `org` (id or
    /// name), by default the org of the user's token.
    pub async fn device_approve(&self, user_code: &str, org: Option<&str>) -> Result<DeviceInfo> {
        let body = DeviceDecisionRequest {
            user_code: user_code.to_owned(),
            org: org.map(str::to_owned),
        };
        let req = self
            .user(self.http.post(self.url("/v1/device/approve")))?
            .json(&body);
        decode(req.send().await?).await
    }

    /// `POST /v1/device/deny` as the user.
    pub async fn device_deny(&self, user_code: &str) -> Result<DeviceInfo> {
        let body = DeviceDecisionRequest {
            user_code: user_code.to_owned(),
            org: None,
        };
        let req = self
            .user(self.http.post(self.url("/v1/device/deny")))?
            .json(&body);
        decode(req.send().await?).await
    }
}
