//! Orgs (`/v1/admin/orgs`, `/v1/orgs/{org}/…`) and the self-service API (`/v1/me`).
//!
//! Org calls authenticate with the user token if one is set ([`Client::with_user_token`]),
//! else with the admin token (operators may act in every org).

use crate::{Client, Error, Result, decode, expect_empty, form_encode};
use reqwest::RequestBuilder;
use secrecy::{ExposeSecret, SecretString};
use tollgate_proto::admin::{ClientInfo, ClientWithSecret, CreateClientRequest, SessionInfo};
use tollgate_proto::audit::{AuditFilter, AuditPage};
use tollgate_proto::orgs::{
    CreateOrgRequest, ExternalOrgId, MeInfo, MemberInfo, OrgInfo, PutRoleRequest, RevokedServiceAccounts,
    RoleInfo, SetIssuersRequest, SetMemberRequest,
};

impl Client {
    /// Uses `token` (a user access token for tollgate's API audience) for `/v1/me` and org calls.
    #[must_use]
    pub fn with_user_token(mut self, token: impl Into<String>) -> Self {
        self.user_token = Some(SecretString::from(token.into()));
        self
    }

    /// Authenticates as the user if a user token is set, else as the operator.
    pub(crate) fn member(&self, req: RequestBuilder) -> Result<RequestBuilder> {
        match &self.user_token {
            Some(t) => Ok(req.bearer_auth(t.expose_secret())),
            None => self.admin(req),
        }
    }

    pub(crate) fn user(&self, req: RequestBuilder) -> Result<RequestBuilder> {
        let token = self.user_token.as_ref().ok_or(Error::NoUserToken)?;
        Ok(req.bearer_auth(token.expose_secret()))
    }

    pub(crate) fn org_url(&self, org: &str, rest: &str) -> String {
        self.url(&format!("/v1/orgs/{}{rest}", form_encode(org)))
    }

    // --- operators ---

    /// `POST /v1/admin/orgs`.
    pub async fn create_org(&self, req: &CreateOrgRequest) -> Result<OrgInfo> {
        decode(
            self.admin(self.http.post(self.url("/v1/admin/orgs")))?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    /// `GET /v1/admin/orgs`.
    pub async fn list_orgs(&self) -> Result<Vec<OrgInfo>> {
        decode(
            self.admin(self.http.get(self.url("/v1/admin/orgs")))?
                .send()
                .await?,
        )
        .await
    }

    /// Binds an upstream org (e.g. Clerk's `org_id`) to `org`.
    pub async fn bind_external_org(&self, org: &str, ext: &ExternalOrgId) -> Result<OrgInfo> {
        let url = self.url(&format!("/v1/admin/orgs/{}/external-ids", form_encode(org)));
        decode(self.admin(self.http.post(url))?.json(ext).send().await?).await
    }

    pub async fn unbind_external_org(&self, org: &str, ext: &ExternalOrgId) -> Result<()> {
        let url = self.url(&format!("/v1/admin/orgs/{}/external-ids", form_encode(org)));
        expect_empty(self.admin(self.http.delete(url))?.json(ext).send().await?).await
    }

    // --- an org, as its members (or an operator) ---

    pub async fn org(&self, org: &str) -> Result<OrgInfo> {
        decode(self.member(self.http.get(self.org_url(org, "")))?.send().await?).await
    }

    /// Which issuers may sign in to the org (`None`: every enabled issuer).
    pub async fn set_org_issuers(&self, org: &str, issuers: Option<Vec<String>>) -> Result<OrgInfo> {
        let body = SetIssuersRequest { issuers };
        decode(
            self.member(self.http.put(self.org_url(org, "/issuers")))?
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    pub async fn org_members(&self, org: &str) -> Result<Vec<MemberInfo>> {
        decode(
            self.member(self.http.get(self.org_url(org, "/members")))?
                .send()
                .await?,
        )
        .await
    }

    /// Adds a member or replaces their roles.
    pub async fn set_member(&self, org: &str, user_id: &str, roles: &[&str]) -> Result<MemberInfo> {
        let body = SetMemberRequest {
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        };
        let url = self.org_url(org, &format!("/members/{}", form_encode(user_id)));
        decode(self.member(self.http.put(url))?.json(&body).send().await?).await
    }

    pub async fn remove_member(&self, org: &str, user_id: &str) -> Result<()> {
        let url = self.org_url(org, &format!("/members/{}", form_encode(user_id)));
        expect_empty(self.member(self.http.delete(url))?.send().await?).await
    }

    pub async fn org_roles(&self, org: &str) -> Result<Vec<RoleInfo>> {
        decode(
            self.member(self.http.get(self.org_url(org, "/roles")))?
                .send()
                .await?,
        )
        .await
    }

    /// Creates or replaces a custom role.
    pub async fn put_role(&self, org: &str, name: &str, req: &PutRoleRequest) -> Result<RoleInfo> {
        let url = self.org_url(org, &format!("/roles/{}", form_encode(name)));
        decode(self.member(self.http.put(url))?.json(req).send().await?).await
    }

    pub async fn delete_role(&self, org: &str, name: &str) -> Result<()> {
        let url = self.org_url(org, &format!("/roles/{}", form_encode(name)));
        expect_empty(self.member(self.http.delete(url))?.send().await?).await
    }

    pub async fn org_service_accounts(&self, org: &str) -> Result<Vec<ClientInfo>> {
        decode(
            self.member(self.http.get(self.org_url(org, "/service-accounts")))?
                .send()
                .await?,
        )
        .await
    }

    pub async fn create_org_service_account(
        &self,
        org: &str,
        req: &CreateClientRequest,
    ) -> Result<ClientWithSecret> {
        let url = self.org_url(org, "/service-accounts");
        decode(self.member(self.http.post(url))?.json(req).send().await?).await
    }

    /// Disables every service account of the org.
    pub async fn revoke_org_service_accounts(&self, org: &str) -> Result<RevokedServiceAccounts> {
        let url = self.org_url(org, "/service-accounts/revoke");
        decode(self.member(self.http.post(url))?.send().await?).await
    }

    pub async fn org_sessions(&self, org: &str) -> Result<Vec<SessionInfo>> {
        decode(
            self.member(self.http.get(self.org_url(org, "/sessions")))?
                .send()
                .await?,
        )
        .await
    }

    pub async fn revoke_org_session(&self, org: &str, session_id: &str) -> Result<()> {
        let url = self.org_url(org, &format!("/sessions/{}/revoke", form_encode(session_id)));
        expect_empty(self.member(self.http.post(url))?.send().await?).await
    }

    /// One page of the org's audit trail (the filter's `org` is ignored).
    pub async fn org_audit(&self, org: &str, filter: &AuditFilter) -> Result<AuditPage> {
        let req = self
            .member(self.http.get(self.org_url(org, "/audit")))?
            .query(filter);
        decode(req.send().await?).await
    }

    // --- the calling user ---

    pub async fn me(&self) -> Result<MeInfo> {
        decode(self.user(self.http.get(self.url("/v1/me")))?.send().await?).await
    }

    pub async fn my_sessions(&self) -> Result<Vec<SessionInfo>> {
        decode(
            self.user(self.http.get(self.url("/v1/me/sessions")))?
                .send()
                .await?,
        )
        .await
    }

    pub async fn revoke_my_session(&self, session_id: &str) -> Result<()> {
        let url = self.url(&format!("/v1/me/sessions/{}/revoke", form_encode(session_id)));
        expect_empty(self.user(self.http.post(url))?.send().await?).await
    }

    /// Revokes one of the calling user's access tokens.
    pub async fn revoke_my_token(&self, token: &str) -> Result<()> {
        let body = tollgate_proto::orgs::RevokeTokenRequest {
            token: token.to_owned(),
        };
        expect_empty(
            self.user(self.http.post(self.url("/v1/me/tokens/revoke")))?
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    /// Ends every access token and session of the calling user.
    pub async fn logout_everywhere(&self) -> Result<()> {
        expect_empty(
            self.user(self.http.post(self.url("/v1/me/logout")))?
                .send()
                .await?,
        )
        .await
    }
}
