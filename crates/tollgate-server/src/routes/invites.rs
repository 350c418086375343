//! Invites: org admins invite an email address with roles (`/v1/orgs/{org}/invites`); the
//! link (`GET /verify?token=tg_inv_…`) describes the invite, and `POST /v1/invites/redeem`
//! binds an upstream identity with that email to a user (created even when registration is
//! invite-only), marks the email verified and applies the roles. Only a keyed hash of the
//! token is stored.

use crate::audit::AuditEvent;
use crate::authz::{MembersRead, MembersWrite, OrgAccess};
use crate::error::ApiError;
use crate::extract::json::JsonBody;
use crate::mail::{Delivery, Mail, escape_html};
use crate::pages::{self, escape, urlencode};
use crate::routes::orgs::{event, roles_grant};
use crate::state::AppState;
use crate::web_login;
use axum::Json;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use tollgate_core::Reason;
use tollgate_core::secret_token::{self, SecretKind};
use tollgate_core::upstream::{NoTrace, UpstreamIdentity};
use tollgate_proto::ErrorBody;
use tollgate_proto::invites::{
    CreateInviteRequest, CreateOrgInviteRequest, CreatedInvite, EmailStatus, InviteInfo, RedeemInviteRequest,
    RedeemedInvite,
};
use tollgate_store::{InviteRecord, MembershipChange, MembershipRecord, OrgRecord, SecretHash, StoreError};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(Reason::InvalidParameter, message)
}

fn status_of(i: &InviteRecord, now: i64) -> &'static str {
    if i.redeemed_at.is_some() {
        "redeemed"
    } else if i.revoked_at.is_some() {
        "revoked"
    } else if i.expires_at <= now {
        "expired"
    } else {
        "pending"
    }
}

fn info(i: InviteRecord, now: i64) -> InviteInfo {
    InviteInfo {
        status: status_of(&i, now).to_owned(),
        id: i.id,
        org_id: i.org_id,
        email: i.email,
        roles: i.roles,
        created_by: i.created_by,
        created_at: crate::rfc3339(i.created_at),
        expires_at: crate::rfc3339(i.expires_at),
        redeemed_at: i.redeemed_at.map(crate::rfc3339),
        redeemed_by: i.redeemed_by,
        revoked_at: i.revoked_at.map(crate::rfc3339),
    }
}

/// A plausible single address (the mail server has the last word).
fn check_email(email: &str) -> Result<(), ApiError> {
    if email.len() > 254
        || email.chars().any(|c| c.is_control() || c.is_whitespace())
        || email.parse::<lettre::Address>().is_err()
    {
        return Err(invalid(format!(
            "email `{email}` is not an address like ann@example.com"
        )));
    }
    Ok(())
}

/// Invite an email address into the org. Needs `members:write` and every permission the
/// roles grant. The link is in the answer (once); the email goes out over SMTP or, without
/// SMTP, to the outbox directory. A failed email still leaves the invite (`email_status: failed`).
#[utoipa::path(post, path = "/v1/orgs/{org}/invites", tag = "invites", security(("bearer" = [])),
    params(("org" = String, Path)), request_body = CreateInviteRequest,
    responses((status = 201, body = CreatedInvite), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    access: OrgAccess<MembersWrite>,
    JsonBody(req): JsonBody<CreateInviteRequest>,
) -> Result<(StatusCode, Json<CreatedInvite>), ApiError> {
    create_in(state, access, req).await
}

/// Invite an email address into the org named in the body (the same rules and answer as
/// `POST /v1/orgs/{org}/invites`).
#[utoipa::path(post, path = "/v1/invites", tag = "invites", security(("bearer" = [])),
    request_body = CreateOrgInviteRequest,
    responses((status = 201, body = CreatedInvite), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_by_body(
    State(state): State<AppState>,
    mut parts: Parts,
    body: Result<JsonBody<CreateOrgInviteRequest>, ApiError>,
) -> Result<(StatusCode, Json<CreatedInvite>), ApiError> {
    let req = match body {
        Ok(JsonBody(req)) => req,
        Err(e) => return Err(crate::authz::refused_unparsed(&parts, &state, e).await),
    };
    let access = OrgAccess::<MembersWrite>::for_org(&mut parts, &state, &req.org).await?;
    create_in(state, access, req.invite()).await
}

async fn create_in(
    state: AppState,
    access: OrgAccess<MembersWrite>,
    req: CreateInviteRequest,
) -> Result<(StatusCode, Json<CreatedInvite>), ApiError> {
    let email = req.email.trim().to_owned();
    check_email(&email)?;
    let mut roles = req.roles.clone();
    roles.sort();
    roles.dedup();
    let grants = roles_grant(&state, &access.org.id, &roles).await?;
    access
        .check_covers(
            &state,
            &grants,
            "inviting with these roles",
            ("invite.create", &email),
        )
        .await?;
    let max = state.config.invites.ttl;
    let ttl = match &req.ttl {
        None => max,
        Some(t) => {
            let ttl = humantime::parse_duration(t).map_err(|e| invalid(format!("ttl `{t}`: {e}")))?;
            if ttl > max {
                return Err(invalid(format!(
                    "ttl `{t}` is longer than invites.ttl ({})",
                    humantime::format_duration(max)
                )));
            }
            ttl
        }
    };
    if ttl < Duration::from_secs(60) {
        return Err(invalid("ttl must be at least 1m"));
    }
    let now = state.clock.now();
    let token = secret_token::mint(SecretKind::Invite, tollgate_crypto::random_byte_source());
    let (version, hash) = state.hashing.hasher().hash(&token);
    let record = InviteRecord {
        id: secret_token::mint_id("inv_", tollgate_crypto::random_byte_source()),
        org_id: access.org.id.clone(),
        email: email.clone(),
        roles,
        secret: SecretHash { version, hash },
        created_by: access.caller.actor(),
        created_at: now.0,
        expires_at: now.plus(ttl).0,
        redeemed_at: None,
        redeemed_by: None,
        revoked_at: None,
    };
    state.store.create_invite(&record).await?;
    let detail = json!({"email": email, "roles": record.roles, "expires_at": record.expires_at});
    crate::audit::record_event(
        &state,
        event(&access, "invite.create").target(&record.id).detail(detail),
    )
    .await?;
    let link = format!("{}/verify?token={token}", state.config.server.public_url);
    let inviter = match &access.caller {
        crate::authz::Caller::User { user, .. } => user.email.clone().unwrap_or_else(|| user.id.clone()),
        crate::authz::Caller::Operator { .. } => "an administrator".to_owned(),
    };
    let mail = invite_mail(&access.org, &inviter, &record, &link);
    // After the invite is stored, a failed email no longer fails the request.
    let email_status = match crate::mail::from_config(&state.config) {
        Ok(mailer) => match mailer.send(&mail).await {
            Ok(Delivery::Sent) => EmailStatus::Sent,
            Ok(Delivery::Outbox) => EmailStatus::Outbox,
            Err(e) => {
                tracing::warn!(invite = %record.id, error = %e, "cannot send the invite email");
                EmailStatus::Failed
            }
        },
        Err(e) => {
            tracing::warn!(invite = %record.id, error = %e, "cannot send the invite email");
            EmailStatus::Failed
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvite {
            id: record.id,
            org_id: record.org_id,
            email: record.email,
            roles: record.roles,
            expires_at: crate::rfc3339(record.expires_at),
            link,
            email_status,
        }),
    ))
}

fn org_label(org: &OrgRecord) -> &str {
    org.display_name.as_deref().unwrap_or(&org.name)
}

/// The invite email, as plain text and HTML (every user-provided value escaped).
fn invite_mail(org: &OrgRecord, inviter: &str, invite: &InviteRecord, link: &str) -> Mail {
    let org_name = org_label(org);
    let until = crate::rfc3339(invite.expires_at);
    let roles = invite.roles.join(", ");
    let text = format!(
        "{inviter} invited you to join {org_name} on tollgate (roles: {roles}).\r\n\r\n\
         Open this link and sign in with your identity provider as {email} to accept:\r\n\r\n\
         {link}\r\n\r\nThe invite is valid until {until}. If you did not expect it, ignore this message.\r\n",
        email = invite.email,
    );
    let html = format!(
        "<!DOCTYPE html>\r\n<html><body>\r\n<p>{inviter} invited you to join <strong>{org_name}</strong> on tollgate (roles: {roles}).</p>\r\n\
         <p>Open this link and sign in with your identity provider as {email} to accept:</p>\r\n\
         <p><a href=\"{link_attr}\">{link_text}</a></p>\r\n\
         <p>The invite is valid until {until}. If you did not expect it, ignore this message.</p>\r\n</body></html>\r\n",
        inviter = escape_html(inviter),
        org_name = escape_html(org_name),
        roles = escape_html(&roles),
        email = escape_html(&invite.email),
        link_attr = escape_html(link),
        link_text = escape_html(link),
    );
    Mail {
        to: invite.email.clone(),
        subject: format!("Invitation to join {org_name}"),
        text,
        html,
        link: link.to_owned(),
    }
}

/// The org's invites, newest first (never their tokens). Needs `members:read`.
#[utoipa::path(get, path = "/v1/orgs/{org}/invites", tag = "invites", security(("bearer" = [])),
    params(("org" = String, Path)),
    responses((status = 200, body = [InviteInfo]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    access: OrgAccess<MembersRead>,
) -> Result<Json<Vec<InviteInfo>>, ApiError> {
    let now = state.clock.now().0;
    let invites = state.store.invites_of(&access.org.id).await?;
    Ok(Json(invites.into_iter().map(|i| info(i, now)).collect()))
}

/// Revoke a pending invite. Needs `members:write`.
#[utoipa::path(post, path = "/v1/orgs/{org}/invites/{id}/revoke", tag = "invites", security(("bearer" = [])),
    params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = InviteInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    access: OrgAccess<MembersWrite>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<InviteInfo>, ApiError> {
    let unknown = || ApiError::new(Reason::NotFound, format!("no invite `{id}` in this org"));
    let invite = state
        .store
        .get_invite(&id)
        .await?
        .filter(|i| i.org_id == access.org.id)
        .ok_or_else(unknown)?;
    let now = state.clock.now().0;
    if !state.store.revoke_invite(&id, now).await? {
        let current = state.store.get_invite(&id).await?.ok_or_else(unknown)?;
        return Err(spent(&current, now).unwrap_or_else(unknown));
    }
    crate::audit::record_event(
        &state,
        event(&access, "invite.revoke")
            .target(&id)
            .detail(json!({"email": invite.email})),
    )
    .await?;
    let revoked = state.store.get_invite(&id).await?.ok_or_else(unknown)?;
    Ok(Json(info(revoked, now)))
}

/// Why an invite can no longer be redeemed (`None` while it can).
fn spent(i: &InviteRecord, now: i64) -> Option<ApiError> {
    match status_of(i, now) {
        "redeemed" => Some(ApiError::new(
            Reason::InviteRedeemed,
            "this invite was redeemed already",
        )),
        "revoked" => Some(ApiError::new(
            Reason::InviteRevoked,
            "this invite was revoked by an org admin",
        )),
        "expired" => Some(ApiError::new(
            Reason::InviteExpired,
            format!("this invite expired at {}", crate::rfc3339(i.expires_at)),
        )),
        _ => None,
    }
}

/// The invite a presented token names (under any server-secret version).
async fn by_token(state: &AppState, token: &str) -> Result<InviteRecord, ApiError> {
    let unknown = || {
        ApiError::new(
            Reason::InviteUnknown,
            "unknown invite token; check the link, or ask the org admin for a new invite",
        )
    };
    if secret_token::check(SecretKind::Invite, token).is_err() {
        return Err(unknown());
    }
    for (version, hash) in state.hashing.hasher().all_hashes(token) {
        if let Some(i) = state.store.find_invite(&SecretHash { version, hash }).await? {
            return Ok(i);
        }
    }
    Err(unknown())
}

/// Redeem an invite: the upstream token's identity (whose `email` must be the invite's,
/// case-insensitively) becomes a user if it is not one (also when registration is
/// invite-only), its email is marked verified and it joins the org with the invite's roles
/// (added to any it holds). Public: the invite token and the upstream token authenticate.
#[utoipa::path(post, path = "/v1/invites/redeem", tag = "invites", request_body = RedeemInviteRequest,
    responses((status = 200, body = RedeemedInvite), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn redeem(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RedeemInviteRequest>,
) -> Result<Json<RedeemedInvite>, ApiError> {
    let invite = by_token(&state, req.token.trim()).await?;
    if let Some(e) = spent(&invite, state.clock.now().0) {
        return Err(e);
    }
    let verified = state
        .upstream
        .verify(req.id_token.trim(), &mut NoTrace)
        .await
        .map_err(ApiError::refused_token)?;
    redeem_as(&state, invite, &verified.identity).await.map(Json)
}

/// Redeems `invite` for the verified upstream `identity`: the identity's email must be the
/// invited address; its user is found or created, the invite spent (once), the roles added.
async fn redeem_as(
    state: &AppState,
    invite: InviteRecord,
    identity: &UpstreamIdentity,
) -> Result<RedeemedInvite, ApiError> {
    let state = state.clone();
    let now = state.clock.now().0;
    if let Some(e) = spent(&invite, now) {
        return Err(e);
    }
    let actor = format!("upstream:{}:{}", identity.issuer_name, identity.subject);
    let refuse = |e: ApiError| {
        let state = state.clone();
        let actor = actor.clone();
        let invite = invite.clone();
        async move {
            let event = AuditEvent::new(actor, "invite.redeem")
                .org(&invite.org_id)
                .target(&invite.id)
                .denied(e.reason)
                .detail(json!({"why": e.message}));
            match crate::audit::record_event(&state, event).await {
                Ok(()) => e,
                Err(audit_failure) => audit_failure,
            }
        }
    };
    let email_matches = identity
        .email
        .as_deref()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case(invite.email.trim()));
    if !email_matches {
        let e = ApiError::new(
            Reason::InviteEmailMismatch,
            format!(
                "this invite is for another email address than the one `{}` vouches for ({}); sign in as the invited address",
                identity.issuer_name,
                identity.email.as_deref().unwrap_or("none")
            ),
        );
        return Err(refuse(e).await);
    }
    let org = state
        .store
        .find_org(&invite.org_id)
        .await?
        .ok_or_else(|| ApiError::new(Reason::InviteUnknown, "the invite's org no longer exists"))?;
    if !crate::orgs::accepts_issuer(&org, &identity.issuer_name) {
        let e = ApiError::new(
            Reason::IssuerNotEnabledForOrg,
            format!("the org does not accept sign-ins from `{}`", identity.issuer_name),
        );
        return Err(refuse(e).await);
    }
    let (user, user_created) = match state
        .store
        .user_by_identity(&identity.issuer, &identity.subject)
        .await?
    {
        Some(u) => (u, false),
        None => {
            let links = [(identity.issuer.clone(), identity.subject.clone())];
            match crate::users::create(&state, Some(invite.email.clone()), &links).await {
                Ok(u) => (u, true),
                // A concurrent request linked the identity first: use that user.
                Err(e) if e.reason == Reason::Conflict => (
                    state
                        .store
                        .user_by_identity(&identity.issuer, &identity.subject)
                        .await?
                        .ok_or(e)?,
                    false,
                ),
                Err(e) => return Err(e),
            }
        }
    };
    if user.disabled_at.is_some() {
        let e = ApiError::new(
            Reason::UserDisabled,
            "this user has been disabled by an administrator",
        );
        return Err(refuse(e).await);
    }
    if user_created {
        let detail =
            json!({"issuer": identity.issuer_name, "subject": identity.subject, "invite": invite.id});
        crate::audit::record(&state, "system", "user.register", Some(&user.id), None, detail).await?;
    }
    // The one atomic step: of concurrent redemptions exactly one gets here.
    if !state.store.redeem_invite(&invite.id, &user.id, now).await? {
        let current = state
            .store
            .get_invite(&invite.id)
            .await?
            .unwrap_or(invite.clone());
        let e = spent(&current, now)
            .unwrap_or_else(|| ApiError::new(Reason::InviteRedeemed, "this invite was redeemed already"));
        return Err(refuse(e).await);
    }
    let existing = state.store.get_membership(&org.id, &user.id).await?;
    let mut roles = existing.as_ref().map(|m| m.roles.clone()).unwrap_or_default();
    roles.extend(invite.roles.iter().cloned());
    roles.sort();
    roles.dedup();
    let record = MembershipRecord {
        org_id: org.id.clone(),
        user_id: user.id.clone(),
        roles: roles.clone(),
        created_at: existing.as_ref().map_or(now, |m| m.created_at),
        updated_at: now,
    };
    // Roles are only added, so the org cannot lose an owner here.
    match state.store.set_membership(&record).await {
        Ok(MembershipChange::Done { .. }) => {}
        Ok(MembershipChange::LastOwner | MembershipChange::NotFound) => {
            return Err(ApiError::new(
                Reason::Conflict,
                "the membership changed concurrently; ask the org admin to check it",
            ));
        }
        Err(StoreError::Conflict(m)) => return Err(ApiError::new(Reason::Conflict, m)),
        Err(e) => return Err(e.into()),
    }
    let detail = json!({
        "email": invite.email,
        "roles": invite.roles,
        "issuer": identity.issuer_name,
        "subject": identity.subject,
        "user_created": user_created,
    });
    crate::audit::record_event(
        &state,
        AuditEvent::new(format!("user:{}", user.id), "invite.redeem")
            .org(&org.id)
            .target(&invite.id)
            .detail(detail),
    )
    .await?;
    Ok(RedeemedInvite {
        invite_id: invite.id,
        org_id: org.id,
        user_id: user.id,
        email: invite.email,
        roles,
        user_created,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct VerifyQuery {
    /// The invite token (`tg_inv_…`) from the link.
    pub token: Option<String>,
}

/// The invite link's page for `token`: the invite, or why it cannot be used.
async fn invite_for_page(
    state: &AppState,
    token: Option<&str>,
) -> Result<(InviteRecord, OrgRecord), ApiError> {
    let token = token.map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| {
        ApiError::new(
            Reason::MissingParameter,
            "the link has no invite token; open the whole link from the invite email",
        )
    })?;
    let invite = by_token(state, token).await?;
    if let Some(e) = spent(&invite, state.clock.now().0) {
        return Err(e);
    }
    let org = state
        .store
        .find_org(&invite.org_id)
        .await?
        .ok_or_else(|| ApiError::new(Reason::InviteUnknown, "the invite's org no longer exists"))?;
    Ok((invite, org))
}

/// The page an invite link opens: which org invites which address, until when; then a
/// button to accept as the browser's signed-in identity, or a link to sign in first (with
/// browser sign-in configured; else how to redeem through the API). Expired, redeemed,
/// revoked and unknown invites get a page that says so. HTML, no scripts.
#[utoipa::path(get, path = "/verify", tag = "invites", params(VerifyQuery),
    responses((status = 200, content_type = "text/html", body = String), (status = 400, content_type = "text/html", body = String), (status = 404, content_type = "text/html", body = String), (status = 409, content_type = "text/html", body = String), (status = 410, content_type = "text/html", body = String), (status = 503, body = ErrorBody)))]
pub async fn verify_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<VerifyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let token = query.ok().and_then(|Query(q)| q.token);
    pages::or_refusal(verify_page_inner(&state, &headers, token.as_deref()).await)
}

async fn verify_page_inner(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<Response, ApiError> {
    let (invite, org) = invite_for_page(state, token).await?;
    let token = token.unwrap_or_default().trim();
    let mut body = format!(
        "<p><strong>{org}</strong> invites <strong>{email}</strong> to join, with the roles {roles}.</p>\
         <p>The invite is valid until {until}.</p>",
        org = escape(org_label(&org)),
        email = escape(&invite.email),
        roles = escape(&invite.roles.join(", ")),
        until = escape(&crate::rfc3339(invite.expires_at)),
    );
    let return_to = format!("/verify?token={}", urlencode(token));
    match web_login::current(state, headers).await? {
        Some(session) => body.push_str(&format!(
            "<p>You are signed in as <strong>{who}</strong> ({issuer}).</p>\
             <form method=\"post\" action=\"/verify\">\
             <input type=\"hidden\" name=\"token\" value=\"{token}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\" id=\"accept\">Accept the invite</button></form>",
            who = escape(
                session
                    .identity
                    .email
                    .as_deref()
                    .unwrap_or(&session.identity.subject)
            ),
            issuer = escape(&session.identity.issuer_name),
            token = escape(token),
            csrf = escape(&session.csrf),
        )),
        None if web_login::enabled(state) => body.push_str(&format!(
            "<p>To accept, <a id=\"sign-in\" href=\"/login?return_to={}\">sign in</a> as {}.</p>",
            escape(&urlencode(&return_to)),
            escape(&invite.email),
        )),
        None => body.push_str(&format!(
            "<p>To accept, sign in with your identity provider as {} and redeem the invite with \
             <code>POST /v1/invites/redeem</code> (browser sign-in is not configured here).</p>",
            escape(&invite.email)
        )),
    }
    Ok(pages::page(StatusCode::OK, "You are invited", &body))
}

/// The accept form of the invite page.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AcceptForm {
    /// The invite token from the link.
    pub token: String,
    /// The page's anti-forgery token.
    pub csrf: Option<String>,
}

/// Accept an invite from its page, as the browser's signed-in identity (see `GET /verify`):
/// the same rules as `POST /v1/invites/redeem`, with the anti-forgery token of the page.
#[utoipa::path(post, path = "/verify", tag = "invites",
    request_body(content = AcceptForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, content_type = "text/html", body = String), (status = 400, content_type = "text/html", body = String), (status = 401, content_type = "text/html", body = String), (status = 403, content_type = "text/html", body = String), (status = 404, content_type = "text/html", body = String), (status = 409, content_type = "text/html", body = String), (status = 410, content_type = "text/html", body = String), (status = 503, body = ErrorBody)))]
pub async fn accept(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<AcceptForm>, FormRejection>,
) -> Result<Response, ApiError> {
    pages::or_refusal(accept_inner(&state, &headers, form).await)
}

async fn accept_inner(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<AcceptForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let Form(form) = form.map_err(|e| ApiError::new(Reason::MalformedRequest, e.body_text()))?;
    let session = web_login::required(state, headers).await?;
    web_login::check_csrf(state, &session, headers, form.csrf.as_deref())?;
    let (invite, org) = invite_for_page(state, Some(&form.token)).await?;
    let redeemed = redeem_as(state, invite, &session.identity).await?;
    let body = format!(
        "<p>You joined <strong>{org}</strong> as {email}, with the roles {roles}.</p>\
         <p>You can now sign in to tollgate's API and CLI (<code>tollgate login</code>).</p>",
        org = escape(org_label(&org)),
        email = escape(&redeemed.email),
        roles = escape(&redeemed.roles.join(", ")),
    );
    Ok(pages::page(StatusCode::OK, "Invite accepted", &body))
}
