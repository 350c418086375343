//! CI workloads: trust policies, the combined publish flow and build sessions.
//!
//! Org calls (trust policies) authenticate like the other org calls (user token, else
//! admin token). The publish flow has two parties: the user (their access token, set with
//! [`Client::with_user_token`]) and the runner, whose calls take the runner secret from
//! [`Client::publish_attest`] explicitly.

use crate::{Client, Result, decode, expect_empty, form_encode};
use tollgate_proto::admin::VerifyRequest;
use tollgate_proto::ci::{
    BuildSessionInfo, BuildSessionList, CombinedTokenResponse, OpenBuildSessionRequest, PolicyEvaluation,
    PublishAttestRequest, PublishAttestResponse, PublishFinalizeRequest, PublishInitRequest,
    PublishInitResponse, PublishSessionInfo, PublishStatusRequest, TrustPolicyInfo, TrustPolicyList,
    TrustPolicySpec,
};

impl Client {
    /// `GET /v1/orgs/{org}/trust-policies`.
    pub async fn trust_policies(&self, org: &str) -> Result<TrustPolicyList> {
        decode(
            self.member(self.http.get(self.org_url(org, "/trust-policies")))?
                .send()
                .await?,
        )
        .await
    }

    /// `PUT /v1/orgs/{org}/trust-policies/{name}`.
    pub async fn put_trust_policy(
        &self,
        org: &str,
        name: &str,
        spec: &TrustPolicySpec,
    ) -> Result<TrustPolicyInfo> {
        let url = self.org_url(org, &format!("/trust-policies/{}", form_encode(name)));
        decode(self.member(self.http.put(url))?.json(spec).send().await?).await
    }

    /// `GET /v1/orgs/{org}/trust-policies/{name}`.
    pub async fn trust_policy(&self, org: &str, name: &str) -> Result<TrustPolicyInfo> {
        let url = self.org_url(org, &format!("/trust-policies/{}", form_encode(name)));
        decode(self.member(self.http.get(url))?.send().await?).await
    }

    /// `DELETE /v1/orgs/{org}/trust-policies/{name}`.
    pub async fn delete_trust_policy(&self, org: &str, name: &str) -> Result<()> {
        let url = self.org_url(org, &format!("/trust-policies/{}", form_encode(name)));
        expect_empty(self.member(self.http.delete(url))?.send().await?).await
    }

    /// `POST /v1/orgs/{org}/trust-policies/evaluate`: how the org's policies judge a CI
    /// token (a dry run; the token stays usable).
    pub async fn evaluate_trust_policies(&self, org: &str, token: &str) -> Result<PolicyEvaluation> {
        let body = VerifyRequest {
            token: token.to_owned(),
        };
        decode(
            self.member(self.http.post(self.org_url(org, "/trust-policies/evaluate")))?
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    /// `POST /v1/publish/init` as the user.
    pub async fn publish_init(&self, req: &PublishInitRequest) -> Result<PublishInitResponse> {
        decode(
            self.user(self.http.post(self.url("/v1/publish/init")))?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    /// `POST /v1/publish/attest` as the runner, with its CI OIDC token.
    pub async fn publish_attest(&self, req: &PublishAttestRequest) -> Result<PublishAttestResponse> {
        decode(
            self.http
                .post(self.url("/v1/publish/attest"))
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    /// `GET /v1/publish/combined` as the runner.
    pub async fn publish_combined(
        &self,
        session_id: &str,
        runner_secret: &str,
    ) -> Result<CombinedTokenResponse> {
        let resp = self
            .http
            .get(self.url("/v1/publish/combined"))
            .query(&[("session_id", session_id)])
            .bearer_auth(runner_secret)
            .send()
            .await?;
        decode(resp).await
    }

    /// `POST /v1/publish/status` as the runner.
    pub async fn publish_status(
        &self,
        req: &PublishStatusRequest,
        runner_secret: &str,
    ) -> Result<PublishSessionInfo> {
        let resp = self
            .http
            .post(self.url("/v1/publish/status"))
            .bearer_auth(runner_secret)
            .json(req)
            .send()
            .await?;
        decode(resp).await
    }

    /// `POST /v1/publish/finalize`, as the runner (`runner_secret`) or else the user.
    pub async fn publish_finalize(
        &self,
        req: &PublishFinalizeRequest,
        runner_secret: Option<&str>,
    ) -> Result<PublishSessionInfo> {
        let builder = self.http.post(self.url("/v1/publish/finalize")).json(req);
        let builder = match runner_secret {
            Some(s) => builder.bearer_auth(s),
            None => self.user(builder)?,
        };
        decode(builder.send().await?).await
    }

    /// `GET /v1/publish/sessions/{id}` as the user.
    pub async fn publish_session(&self, session_id: &str) -> Result<PublishSessionInfo> {
        let url = self.url(&format!("/v1/publish/sessions/{}", form_encode(session_id)));
        decode(self.user(self.http.get(url))?.send().await?).await
    }

    /// `POST /v1/build/sessions` with the user (or job) token set by [`Client::with_user_token`].
    pub async fn open_build_session(&self, req: &OpenBuildSessionRequest) -> Result<BuildSessionInfo> {
        decode(
            self.user(self.http.post(self.url("/v1/build/sessions")))?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    /// `GET /v1/build/sessions`: the caller's own.
    pub async fn build_sessions(&self) -> Result<BuildSessionList> {
        decode(
            self.user(self.http.get(self.url("/v1/build/sessions")))?
                .send()
                .await?,
        )
        .await
    }

    /// `POST /v1/build/sessions/{id}/close`.
    pub async fn close_build_session(&self, id: &str) -> Result<BuildSessionInfo> {
        let url = self.url(&format!("/v1/build/sessions/{}/close", form_encode(id)));
        decode(self.user(self.http.post(url))?.send().await?).await
    }

    /// `POST /v1/orgs/{org}/build-sessions/{id}/close`.
    pub async fn close_org_build_session(&self, org: &str, id: &str) -> Result<BuildSessionInfo> {
        let url = self.org_url(org, &format!("/build-sessions/{}/close", form_encode(id)));
        decode(self.member(self.http.post(url))?.send().await?).await
    }

    /// `GET /v1/orgs/{org}/build-sessions`.
    pub async fn org_build_sessions(&self, org: &str) -> Result<BuildSessionList> {
        decode(
            self.member(self.http.get(self.org_url(org, "/build-sessions")))?
                .send()
                .await?,
        )
        .await
    }
}
