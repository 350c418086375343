//! User sessions: a family of refresh tokens, rotated on every use.
//!
//! A refresh token is spent when used; its successor is stored in the same transaction,
//! conditioned on the token being unspent, so of concurrent refreshes with one token exactly
//! one succeeds. Presenting a spent token again is treated as theft: the whole session is
//! revoked (the thief's and the owner's newest token alike) and the event audited. A session
//! also ends at its absolute lifetime, after `refresh_idle_ttl` unused, when its user's
//! `user_ver` moves on (logout everywhere, disable), or when revoked.

use crate::audit::AuditEvent;
use crate::clients;
use crate::error::ApiError;
use crate::extract::client_auth::presented_client;
use crate::extract::form::Form;
use crate::state::AppState;
use crate::tokens::{self, Subject};
use axum::http::HeaderMap;
use serde_json::json;
use tollgate_core::claims::UpstreamSubject;
use tollgate_core::client_grant::Grant;
use tollgate_core::secret_token::{self, SecretKind};
use tollgate_core::{Audience, Reason, Scope, UnixTime};
use tollgate_proto::oauth::TokenResponse;
use tollgate_store::{RefreshRecord, SecretHash, SessionRecord, StoreError, UserRecord};

fn refused(reason: Reason, message: impl Into<String>) -> ApiError {
    ApiError::new(reason, message).as_invalid_grant()
}

fn mint(state: &AppState) -> (String, SecretHash) {
    let token = secret_token::mint(SecretKind::RefreshToken, tollgate_crypto::random_byte_source());
    let (version, hash) = state.hashing.hasher().hash(&token);
    (token, SecretHash { version, hash })
}

/// Starts a session for `user` with what the first access token carried; returns its
/// first refresh token (shown once, stored only as a keyed hash).
/// Signs a local user's access token for `client_id`, acting in `active` (the org and the
/// user's roles there), and, with `with_session`, starts a session with a rotating refresh
/// token: how a device approval and a device key hand a user their tokens.
pub async fn sign_in_user(
    state: &AppState,
    user: &UserRecord,
    client_id: &str,
    upstream: Option<UpstreamSubject>,
    active: Option<crate::orgs::ActiveOrg>,
    grant: &Grant,
    with_session: bool,
) -> Result<(tokens::IssuedToken, Option<String>), ApiError> {
    let subject = Subject {
        sub: user.id.clone(),
        client_id: client_id.to_owned(),
        upstream: upstream.clone(),
        act: None,
        user_ver: Some(user.user_ver),
        org: active.as_ref().map(|a| a.org.id.clone()),
        roles: active.map(|a| a.roles).unwrap_or_default(),
        ci: None,
    };
    let issued = tokens::issue(state, subject, grant)?;
    let refresh_token = if with_session {
        let org = issued.claims.org.as_deref();
        Some(start(state, user, client_id, grant, upstream.as_ref(), org).await?)
    } else {
        None
    };
    Ok((issued, refresh_token))
}

/// The token endpoint's answer for `issued` under `grant`.
#[must_use]
pub fn token_response(
    issued: tokens::IssuedToken,
    grant: &Grant,
    refresh_token: Option<String>,
) -> TokenResponse {
    TokenResponse {
        access_token: issued.token,
        token_type: "Bearer".to_owned(),
        expires_in: grant.ttl.as_secs(),
        scope: (!grant.scope.is_empty()).then(|| grant.scope.to_string()),
        refresh_token,
        issued_token_type: None,
    }
}

pub async fn start(
    state: &AppState,
    user: &UserRecord,
    client_id: &str,
    grant: &Grant,
    upstream: Option<&UpstreamSubject>,
    org_id: Option<&str>,
) -> Result<String, ApiError> {
    let now = state.clock.now();
    let session = SessionRecord {
        id: secret_token::mint_id("ses_", tollgate_crypto::random_byte_source()),
        user_id: user.id.clone(),
        user_ver: user.user_ver,
        client_id: client_id.to_owned(),
        scope: grant.scope.to_string(),
        audience: grant.audience.to_string(),
        upstream: serde_json::to_string(&upstream).unwrap_or_else(|_| "null".into()),
        created_at: now.0,
        expires_at: now.plus(state.config.tokens.refresh_ttl).0,
        last_used_at: now.0,
        revoked_at: None,
        revoked_reason: None,
        org_id: org_id.map(str::to_owned),
    };
    let (token, hash) = mint(state);
    state.store.create_session(&session, &hash).await?;
    Ok(token)
}

/// Finds the refresh token under any server-secret version.
async fn find(
    state: &AppState,
    token: &str,
) -> Result<Option<(SecretHash, RefreshRecord, SessionRecord)>, ApiError> {
    let hasher = state.hashing.hasher();
    for (version, hash) in hasher.all_hashes(token) {
        let h = SecretHash { version, hash };
        if let Some((r, s)) = state.store.find_refresh(&h).await? {
            return Ok(Some((h, r, s)));
        }
    }
    Ok(None)
}

/// Revokes a session as a reaction to `reason`, with an audit record.
async fn end(state: &AppState, session: &SessionRecord, reason: Reason) -> Result<(), ApiError> {
    if state
        .store
        .revoke_session(&session.id, reason.code(), state.clock.now().0)
        .await?
    {
        let detail = json!({"user": session.user_id, "client_id": session.client_id});
        crate::audit::record(
            state,
            "system",
            "session.revoke",
            Some(&session.id),
            Some(reason),
            detail,
        )
        .await?;
    }
    Ok(())
}

/// Handles `grant_type=refresh_token`.
pub async fn refresh(state: &AppState, headers: &HeaderMap, form: &Form) -> Result<TokenResponse, ApiError> {
    let token = form.required("refresh_token")?;
    // Credentials that are presented must be right, whatever the session.
    let client = match presented_client(headers, form)? {
        Some(p) => Some(clients::authenticate(state, &p).await?),
        None => None,
    };
    if secret_token::check(SecretKind::RefreshToken, token).is_err() {
        return Err(refused(
            Reason::RefreshTokenUnknown,
            "not a tollgate refresh token (tg_rt_…); it may be mistyped or truncated",
        ));
    }
    let Some((hash, record, session)) = find(state, token).await? else {
        return Err(refused(Reason::RefreshTokenUnknown, "unknown refresh token"));
    };
    // Counted before anything is spent or judged: a limited request changes nothing.
    crate::rate_limit::check_identity(state, &format!("session:{}", session.id)).await?;
    // A session started by an authenticated client stays bound to it (RFC 6749 §6).
    if !tokens::is_public_client(&session.client_id) {
        match &client {
            None => {
                return Err(ApiError::new(
                    Reason::ClientAuthMissing,
                    "this session belongs to a client; authenticate as it",
                ));
            }
            Some(c) if c.client_id != session.client_id => {
                return Err(refused(
                    Reason::RefreshTokenUnknown,
                    "the refresh token was issued to another client",
                ));
            }
            Some(_) => {}
        }
    }
    let now = state.clock.now();
    if session.revoked_at.is_some() {
        return Err(refused(
            Reason::SessionRevoked,
            "this session has been revoked; sign in again",
        ));
    }
    if record.used_at.is_some() {
        end(state, &session, Reason::RefreshTokenReused).await?;
        return Err(refused(
            Reason::RefreshTokenReused,
            "this refresh token was already used; the session has been revoked",
        ));
    }
    if lapsed(state, &session, now) {
        end(state, &session, Reason::SessionExpired).await?;
        return Err(refused(
            Reason::SessionExpired,
            "the session has expired; sign in again",
        ));
    }
    check_user(state, &session).await?;
    if let Some(reason) = crate::device_keys::session_refusal(state, &session).await? {
        end(state, &session, reason).await?;
        return Err(refused(
            reason,
            "the device key that started this session has been revoked",
        ));
    }
    let upstream: Option<UpstreamSubject> = serde_json::from_str(&session.upstream)
        .map_err(|e| ApiError::unavailable(&StoreError::Corrupt(format!("session {}: {e}", session.id))))?;
    let issuer_grant = check_issuer(state, &session, upstream.as_ref()).await?;
    let grant = narrowed_grant(state, &session, form, issuer_grant.as_ref(), now)?;
    // Roles are looked up again: a role change since the last refresh shows in this token.
    let issuer_name = upstream.as_ref().map(|u| u.name.as_str());
    let active = match crate::orgs::resolve_for_session(
        state,
        session.org_id.as_deref(),
        &session.user_id,
        issuer_name,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            end(state, &session, e.reason).await?;
            return Err(e.as_invalid_grant());
        }
    };
    // Sign before spending the token: once it is spent, a failure would leave the client
    // with nothing but a token whose reuse revokes its session.
    let subject = Subject {
        sub: session.user_id.clone(),
        client_id: session.client_id.clone(),
        upstream,
        act: None,
        user_ver: Some(session.user_ver),
        org: active.as_ref().map(|a| a.org.id.clone()),
        roles: active.map(|a| a.roles).unwrap_or_default(),
        ci: None,
    };
    let issued = tokens::issue(state, subject, &grant)?;
    let (next, next_hash) = mint(state);
    if !state
        .store
        .rotate_refresh(&session.id, session.user_ver, &hash, &next_hash, now.0)
        .await?
    {
        // Spent, revoked or moved to a new user version between our read and our write.
        let current = state.store.get_session(&session.id).await?;
        if current.as_ref().is_none_or(|s| s.revoked_at.is_some()) {
            return Err(refused(
                Reason::SessionRevoked,
                "this session has been revoked; sign in again",
            ));
        }
        if current.is_some_and(|s| s.user_ver != session.user_ver) {
            // A role change carried the session to a new version; the token is unspent.
            return Err(ApiError::new(
                Reason::Conflict,
                "the session changed while refreshing (a role change); retry with the same refresh token",
            ));
        }
        end(state, &session, Reason::RefreshTokenReused).await?;
        return Err(refused(
            Reason::RefreshTokenReused,
            "this refresh token was already used; the session has been revoked",
        ));
    }
    let c = &issued.claims;
    let detail = json!({"session": session.id, "aud": c.aud, "scope": c.scope, "roles": c.roles});
    let mut event = AuditEvent::new(format!("user:{}", session.user_id), "token.refresh")
        .target(&session.id)
        .credential(&c.jti)
        .detail(detail);
    event.org_id.clone_from(&c.org);
    crate::audit::record_event(state, event).await?;
    Ok(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer".to_owned(),
        expires_in: grant.ttl.as_secs(),
        scope: (!grant.scope.is_empty()).then(|| grant.scope.to_string()),
        refresh_token: Some(next),
        issued_token_type: None,
    })
}

/// The session's user must exist, be enabled and still have the session's `user_ver`.
async fn check_user(state: &AppState, session: &SessionRecord) -> Result<(), ApiError> {
    match state.store.get_user(&session.user_id).await? {
        Some(u) if u.disabled_at.is_some() => {
            end(state, session, Reason::UserDisabled).await?;
            Err(refused(Reason::UserDisabled, "the user has been disabled"))
        }
        Some(u) if u.user_ver != session.user_ver => {
            end(state, session, Reason::UserVersionStale).await?;
            Err(refused(
                Reason::UserVersionStale,
                "the user logged out everywhere since this session began",
            ))
        }
        Some(_) => Ok(()),
        None => Err(refused(
            Reason::SessionRevoked,
            "the session's user has been deleted",
        )),
    }
}

/// For sessions started by an exchange: the issuer must still be trusted under the same
/// `iss`, enabled, and still allow sessions; its current grant bounds the refreshed token.
async fn check_issuer(
    state: &AppState,
    session: &SessionRecord,
    upstream: Option<&UpstreamSubject>,
) -> Result<Option<tollgate_core::client_grant::ClientPolicy>, ApiError> {
    let Some(up) = upstream else { return Ok(None) };
    let view = state.upstream.registry().current();
    let issuer = view.set.iter().find(|i| i.name == up.name && i.issuer == up.iss);
    let refusal = match issuer {
        None => Some((
            Reason::UnknownIssuer,
            format!("issuer `{}` is no longer trusted", up.name),
        )),
        Some(i) if !i.enabled => Some((
            Reason::IssuerDisabled,
            format!("issuer `{}` has been disabled", up.name),
        )),
        Some(i) if !i.refresh_tokens => Some((
            Reason::PolicyDenied,
            format!("issuer `{}` no longer allows sessions", up.name),
        )),
        Some(_) => None,
    };
    if let Some((reason, message)) = refusal {
        end(state, session, reason).await?;
        return Err(refused(reason, message));
    }
    Ok(issuer.map(|i| i.grant.clone()))
}

/// The session's grant, narrowed to a requested subset of its scope (RFC 6749 §6) and to
/// what the issuer grants today, living no longer than the session.
fn narrowed_grant(
    state: &AppState,
    session: &SessionRecord,
    form: &Form,
    issuer_grant: Option<&tollgate_core::client_grant::ClientPolicy>,
    now: UnixTime,
) -> Result<Grant, ApiError> {
    let corrupt =
        |what: &str| ApiError::unavailable(&StoreError::Corrupt(format!("session {}: {what}", session.id)));
    let mut allowed = Scope::parse(&session.scope).map_err(|_| corrupt("scope"))?;
    if let Some(g) = issuer_grant {
        allowed = allowed.intersect(&g.allowed_scope);
    }
    let scope = match crate::routes::oauth::requested_scope(form)? {
        Some(asked) if !asked.is_empty() => {
            let extra = asked.difference(&allowed);
            if !extra.is_empty() {
                return Err(ApiError::new(
                    Reason::ScopeNotAllowed,
                    format!("a refresh cannot widen the scope; not allowed for this session: {extra}"),
                ));
            }
            asked
        }
        _ => allowed,
    };
    let left = std::time::Duration::from_secs(now.seconds_until(UnixTime(session.expires_at)));
    Ok(Grant {
        scope,
        audience: Audience::parse(&session.audience).map_err(|_| corrupt("audience"))?,
        ttl: state.config.tokens.access_ttl.min(left),
    })
}

/// Whether a session is past its absolute lifetime or idle too long at `now`.
fn lapsed(state: &AppState, session: &SessionRecord, now: UnixTime) -> bool {
    let idle_end = UnixTime(session.last_used_at).plus(state.config.tokens.refresh_idle_ttl);
    now.0 >= session.expires_at || now >= idle_end
}

/// The live session a refresh token belongs to, without spending the token: for clients
/// that present a refresh token as a password (`docker login`). `None` unless the token is
/// unspent and its session unrevoked, within its lifetimes, and of its user's version.
pub async fn peek(state: &AppState, token: &str) -> Result<Option<SessionRecord>, ApiError> {
    if secret_token::check(SecretKind::RefreshToken, token).is_err() {
        return Ok(None);
    }
    let Some((_, record, session)) = find(state, token).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    if record.used_at.is_some() || session.revoked_at.is_some() || lapsed(state, &session, now) {
        return Ok(None);
    }
    let user = state.store.get_user(&session.user_id).await?;
    Ok(user
        .filter(|u| u.disabled_at.is_none() && u.user_ver == session.user_ver)
        .map(|_| session))
}

/// A session as the API shows it.
#[must_use]
pub fn info(s: SessionRecord) -> tollgate_proto::admin::SessionInfo {
    tollgate_proto::admin::SessionInfo {
        id: s.id,
        user_id: s.user_id,
        org: s.org_id,
        client_id: s.client_id,
        scope: s.scope,
        audience: s.audience,
        created_at: crate::rfc3339(s.created_at),
        expires_at: crate::rfc3339(s.expires_at),
        last_used_at: crate::rfc3339(s.last_used_at),
        revoked_at: s.revoked_at.map(crate::rfc3339),
        revoked_reason: s.revoked_reason,
    }
}

/// Ends a session on behalf of `actor` (user, org admin or operator), audited; false if it
/// had ended already.
pub async fn revoke(state: &AppState, session: &SessionRecord, actor: &str) -> Result<bool, ApiError> {
    if !state
        .store
        .revoke_session(&session.id, "revoked", state.clock.now().0)
        .await?
    {
        return Ok(false);
    }
    let mut event = AuditEvent::new(actor, "session.revoke")
        .target(&session.id)
        .detail(json!({"user": session.user_id}));
    event.org_id.clone_from(&session.org_id);
    crate::audit::record_event(state, event).await?;
    Ok(true)
}

/// Revokes the session a refresh token belongs to (RFC 7009); unknown tokens are ignored.
/// A client may revoke only its own sessions (`caller_client`: `None` for administrators).
/// Revokes the session of a refresh token presented without client credentials: only a
/// public client's session (nothing to authenticate); others need their client.
pub async fn revoke_public_by_token(state: &AppState, token: &str) -> Result<(), ApiError> {
    if secret_token::check(SecretKind::RefreshToken, token).is_err() {
        return Ok(());
    }
    let Some((_, _, session)) = find(state, token).await? else {
        return Ok(());
    };
    if !tokens::is_public_client(&session.client_id) {
        return Err(ApiError::new(
            Reason::ClientAuthMissing,
            "this session belongs to a client; authenticate as it to revoke",
        ));
    }
    revoke(state, &session, &format!("public:{}", session.client_id)).await?;
    Ok(())
}

pub async fn revoke_by_token(
    state: &AppState,
    token: &str,
    actor: &str,
    caller_client: Option<&str>,
) -> Result<(), ApiError> {
    if secret_token::check(SecretKind::RefreshToken, token).is_err() {
        return Ok(());
    }
    let Some((_, _, session)) = find(state, token).await? else {
        return Ok(());
    };
    if let Some(caller) = caller_client
        && !tokens::is_public_client(&session.client_id)
        && session.client_id != caller
    {
        return Err(ApiError::new(
            Reason::TokenNotOwned,
            "only the client a session belongs to may revoke it",
        ));
    }
    revoke(state, &session, actor).await?;
    Ok(())
}
