//! Invites into orgs (`/v1/orgs/{org}/invites`, `POST /v1/invites/redeem`, `GET /verify`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Invite an email address into an org with roles.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInviteRequest {
    pub email: String,
    /// Role names (built in or the org's custom roles) the invitee gets.
    pub roles: Vec<String>,
    /// Lifetime (`"2d"`, `"12h"`); at most, and by default, `invites.ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// `POST /v1/invites`: an invite with its org in the body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgInviteRequest {
    /// The org's id or name.
    pub org: String,
    pub email: String,
    /// Role names (built in or the org's custom roles) the invitee gets.
    pub roles: Vec<String>,
    /// Lifetime (`"2d"`, `"12h"`); at most, and by default, `invites.ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

impl CreateOrgInviteRequest {
    /// The invite without its org.
    #[must_use]
    pub fn invite(self) -> CreateInviteRequest {
        CreateInviteRequest {
            email: self.email,
            roles: self.roles,
            ttl: self.ttl,
        }
    }
}

/// How the invite email went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailStatus {
    /// Handed to the SMTP server.
    Sent,
    /// No SMTP configured: written to the outbox directory (and the link logged).
    Outbox,
    /// Sending failed (the server log says why); the invite exists, pass the link on yourself.
    Failed,
}

/// A new invite, with its link (shown once: only a hash of its token is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedInvite {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub roles: Vec<String>,
    pub expires_at: String,
    /// `{public_url}/verify?token=tg_inv_…`
    pub link: String,
    pub email_status: EmailStatus,
}

/// An invite as listed (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InviteInfo {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub roles: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
    /// `pending`, `redeemed`, `revoked` or `expired`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// Redeem an invite with an upstream identity whose email is the invite's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemInviteRequest {
    /// The invite token (`tg_inv_…`) from the link.
    pub token: String,
    /// A token from a trusted upstream issuer (as for the token exchange).
    pub id_token: String,
}

/// The outcome of a redemption: the user (created if needed) is now a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RedeemedInvite {
    pub invite_id: String,
    pub org_id: String,
    pub user_id: String,
    pub email: String,
    pub roles: Vec<String>,
    /// True if the user was created by this redemption.
    pub user_created: bool,
}
