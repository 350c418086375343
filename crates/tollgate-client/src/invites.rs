//! Invites into orgs (`/v1/orgs/{org}/invites`, `POST /v1/invites/redeem`).
//!
//! Creating, listing and revoking authenticate like the other org calls (the user token if
//! set, else the admin token); redeeming is authenticated by the invite token and the
//! upstream identity token in the body.

use crate::{Client, Result, decode, form_encode};
use tollgate_proto::invites::{
    CreateInviteRequest, CreatedInvite, InviteInfo, RedeemInviteRequest, RedeemedInvite,
};

impl Client {
    /// `POST /v1/orgs/{org}/invites`: the answer carries the link (the only time it is shown).
    pub async fn create_invite(&self, org: &str, req: &CreateInviteRequest) -> Result<CreatedInvite> {
        decode(
            self.member(self.http.post(self.org_url(org, "/invites")))?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    /// `GET /v1/orgs/{org}/invites`, newest first.
    pub async fn list_invites(&self, org: &str) -> Result<Vec<InviteInfo>> {
        decode(
            self.member(self.http.get(self.org_url(org, "/invites")))?
                .send()
                .await?,
        )
        .await
    }

    /// `POST /v1/orgs/{org}/invites/{id}/revoke`.
    pub async fn revoke_invite(&self, org: &str, id: &str) -> Result<InviteInfo> {
        let rest = format!("/invites/{}/revoke", form_encode(id));
        decode(
            self.member(self.http.post(self.org_url(org, &rest)))?
                .send()
                .await?,
        )
        .await
    }

    /// `POST /v1/invites/redeem` with the invite token (`tg_inv_…`) and an upstream token
    /// whose email is the invite's.
    pub async fn redeem_invite(&self, token: &str, id_token: &str) -> Result<RedeemedInvite> {
        let req = RedeemInviteRequest {
            token: token.to_owned(),
            id_token: id_token.to_owned(),
        };
        decode(
            self.http
                .post(self.url("/v1/invites/redeem"))
                .json(&req)
                .send()
                .await?,
        )
        .await
    }
}
