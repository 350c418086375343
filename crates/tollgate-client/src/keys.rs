//! Device keys: enrolling a device's public key with proof of possession (the signed-in
//! user starts it, with the user token set by [`Client::with_user_token`]; the device
//! finishes it with the key-enrollment token), listing and revoking keys, and the RFC 7523
//! JWT bearer grant by which the device gets tokens with an assertion signed by its key.
//!
//! The proof and the assertions are made with `tollgate_crypto::device_key::{proof,
//! assertion, public_jwk}` (the audience of an assertion is the server's token endpoint, as
//! `GET /.well-known/oauth-authorization-server` names it).

use crate::{Client, Result, decode, expect_empty, form_encode};
use tollgate_proto::keys::{KeyBootstrapRequest, KeyBootstrapResponse, KeyRegisterRequest, UserKeyInfo};
use tollgate_proto::oauth::TokenResponse;

/// `grant_type` of RFC 7523 §2.1 (a device key's assertion).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

impl Client {
    /// `POST /v1/keys/bootstrap` as the user: a key-enrollment token and nonce for a device
    /// named `device_name`.
    pub async fn key_bootstrap(&self, device_name: &str) -> Result<KeyBootstrapResponse> {
        let body = KeyBootstrapRequest {
            device_name: device_name.to_owned(),
        };
        let req = self
            .user(self.http.post(self.url("/v1/keys/bootstrap")))?
            .json(&body);
        decode(req.send().await?).await
    }

    /// `POST /v1/keys/register` as the device, with the key-enrollment token `ket`: registers
    /// `public_jwk` with its proof of possession `proof`.
    pub async fn key_register(
        &self,
        ket: &str,
        public_jwk: &serde_json::Value,
        proof: &str,
    ) -> Result<UserKeyInfo> {
        let body = KeyRegisterRequest {
            public_jwk: public_jwk.clone(),
            proof: proof.to_owned(),
        };
        let req = self
            .http
            .post(self.url("/v1/keys/register"))
            .bearer_auth(ket)
            .json(&body);
        decode(req.send().await?).await
    }

    /// `GET /v1/me/keys` as the user.
    pub async fn my_keys(&self) -> Result<Vec<UserKeyInfo>> {
        let req = self.user(self.http.get(self.url("/v1/me/keys")))?;
        decode(req.send().await?).await
    }

    /// `POST /v1/me/keys/{id}/revoke` as the user: the key and the sessions it started end.
    pub async fn revoke_my_key(&self, key_id: &str) -> Result<()> {
        let url = self.url(&format!("/v1/me/keys/{}/revoke", form_encode(key_id)));
        let req = self.user(self.http.post(url))?;
        expect_empty(req.send().await?).await
    }

    /// `GET /v1/admin/users/{id}/keys` (admin).
    pub async fn user_keys(&self, user_id: &str) -> Result<Vec<UserKeyInfo>> {
        let url = self.url(&format!("/v1/admin/users/{}/keys", form_encode(user_id)));
        let req = self.admin(self.http.get(url))?;
        decode(req.send().await?).await
    }

    /// `POST /v1/admin/user-keys/{id}/revoke` (admin).
    pub async fn revoke_user_key(&self, key_id: &str) -> Result<()> {
        let url = self.url(&format!("/v1/admin/user-keys/{}/revoke", form_encode(key_id)));
        let req = self.admin(self.http.post(url))?;
        expect_empty(req.send().await?).await
    }

    /// `POST /oauth/token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`: the
    /// key's user's tokens for `assertion`, optionally narrowed to `scope`, for `audience`,
    /// acting in `org` (id or name).
    pub async fn jwt_bearer(
        &self,
        assertion: &str,
        scope: Option<&str>,
        audience: Option<&str>,
        org: Option<&str>,
    ) -> Result<TokenResponse> {
        let mut form = vec![("grant_type", JWT_BEARER_GRANT), ("assertion", assertion)];
        for (name, value) in [("scope", scope), ("audience", audience), ("org", org)] {
            if let Some(v) = value {
                form.push((name, v));
            }
        }
        let req = self.http.post(self.url("/oauth/token")).form(&form);
        decode(req.send().await?).await
    }

    /// `POST /oauth/token` with `grant_type=client_credentials`, the device key
    /// authenticating with `private_key_jwt` (RFC 7523 §2.2): the same answer as
    /// [`Client::jwt_bearer`]. `client_id`, when given, must be the key's (`key:<id>`).
    pub async fn private_key_jwt(
        &self,
        assertion: &str,
        client_id: Option<&str>,
        scope: Option<&str>,
    ) -> Result<TokenResponse> {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", assertion),
        ];
        for (name, value) in [("client_id", client_id), ("scope", scope)] {
            if let Some(v) = value {
                form.push((name, v));
            }
        }
        let req = self.http.post(self.url("/oauth/token")).form(&form);
        decode(req.send().await?).await
    }
}

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT client assertion.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
