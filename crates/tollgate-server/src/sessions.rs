//! User sessions: a family of refresh tokens, rotated on every use.
//!
//! A refresh token is spent when used; its successor is stored in the same transaction,
//! conditioned on the token being unspent, so of concurrent refreshes with one token exactly
//! one succeeds. Presenting a spent token again is treated as theft: the whole session is
//! revoked (the thief's and the owner's newest token alike) and the event audited. A session
//! also ends at its absolute lifetime, after `refresh_idle_ttl` unused, when its user's
//! `user_ver` moves on (logout everywhere, disable), or when revoked.

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
pub async fn start(
    state: &AppState,
    user: &UserRecord,
    client_id: &str,
    grant: &Grant,
    upstream: Option<&UpstreamSubject>,
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
    if secret_token::check(SecretKind::RefreshToken, token).is_err() {
        return Err(refused(
            Reason::RefreshTokenUnknown,
            "not a tollgate refresh token (tg_rt_…); it may be mistyped or truncated",
        ));
    }
    let Some((hash, record, session)) = find(state, token).await? else {
        return Err(refused(Reason::RefreshTokenUnknown, "unknown refresh token"));
    };
    // A session started by an authenticated client stays bound to it (RFC 6749 §6).
    if !session.client_id.starts_with("upstream:") {
        let presented = presented_client(headers, form)?;
        let client = match presented {
            Some(p) => clients::authenticate(state, &p).await?,
            None => {
                return Err(ApiError::new(
                    Reason::ClientAuthMissing,
                    "this session belongs to a client; authenticate as it",
                ));
            }
        };
        if client.client_id != session.client_id {
            return Err(refused(
                Reason::RefreshTokenUnknown,
                "the refresh token was issued to another client",
            ));
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
    let idle_end = UnixTime(session.last_used_at).plus(state.config.tokens.refresh_idle_ttl);
    if now.0 >= session.expires_at || now >= idle_end {
        end(state, &session, Reason::SessionExpired).await?;
        return Err(refused(
            Reason::SessionExpired,
            "the session has expired; sign in again",
        ));
    }
    let user = state.store.get_user(&session.user_id).await?;
    match &user {
        Some(u) if u.disabled_at.is_some() => {
            end(state, &session, Reason::UserDisabled).await?;
            return Err(refused(Reason::UserDisabled, "the user has been disabled"));
        }
        Some(u) if u.user_ver != session.user_ver => {
            end(state, &session, Reason::UserVersionStale).await?;
            return Err(refused(
                Reason::UserVersionStale,
                "the user logged out everywhere since this session began",
            ));
        }
        Some(_) => {}
        None => {
            return Err(refused(
                Reason::SessionRevoked,
                "the session's user has been deleted",
            ));
        }
    }
    let grant = narrowed_grant(state, &session, form)?;
    let (next, next_hash) = mint(state);
    if !state
        .store
        .rotate_refresh(&session.id, &hash, &next_hash, now.0)
        .await?
    {
        // Another request spent this token between our read and our write: reuse.
        end(state, &session, Reason::RefreshTokenReused).await?;
        return Err(refused(
            Reason::RefreshTokenReused,
            "this refresh token was already used; the session has been revoked",
        ));
    }
    let upstream: Option<UpstreamSubject> = serde_json::from_str(&session.upstream)
        .map_err(|e| ApiError::unavailable(&StoreError::Corrupt(e.to_string())))?;
    let subject = Subject {
        sub: session.user_id.clone(),
        client_id: session.client_id.clone(),
        upstream,
        act: None,
        user_ver: Some(session.user_ver),
    };
    let issued = tokens::issue(state, subject, &grant)?;
    let detail = json!({"session": session.id, "aud": issued.claims.aud, "scope": issued.claims.scope});
    crate::audit::record(
        state,
        &format!("user:{}", session.user_id),
        "token.refresh",
        Some(&issued.claims.jti),
        None,
        detail,
    )
    .await?;
    Ok(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer".to_owned(),
        expires_in: grant.ttl.as_secs(),
        scope: (!grant.scope.is_empty()).then(|| grant.scope.to_string()),
        refresh_token: Some(next),
        issued_token_type: None,
    })
}

/// The session's grant, narrowed to a requested subset of its scope (RFC 6749 §6).
fn narrowed_grant(state: &AppState, session: &SessionRecord, form: &Form) -> Result<Grant, ApiError> {
    let corrupt =
        |what: &str| ApiError::unavailable(&StoreError::Corrupt(format!("session {}: {what}", session.id)));
    let allowed = Scope::parse(&session.scope).map_err(|_| corrupt("scope"))?;
    let scope = match crate::routes::oauth::requested_scope(form)? {
        Some(asked) if !asked.is_empty() => {
            let extra = asked.difference(&allowed);
            if !extra.is_empty() {
                return Err(ApiError::new(
                    Reason::ScopeNotAllowed,
                    format!("a refresh cannot widen the scope; not in the session: {extra}"),
                ));
            }
            asked
        }
        _ => allowed,
    };
    Ok(Grant {
        scope,
        audience: Audience::parse(&session.audience).map_err(|_| corrupt("audience"))?,
        ttl: state.config.tokens.access_ttl,
    })
}

/// Revokes the session a refresh token belongs to (RFC 7009); unknown tokens are ignored.
pub async fn revoke_by_token(state: &AppState, token: &str, actor: &str) -> Result<(), ApiError> {
    if secret_token::check(SecretKind::RefreshToken, token).is_err() {
        return Ok(());
    }
    if let Some((_, _, session)) = find(state, token).await?
        && state
            .store
            .revoke_session(&session.id, "revoked", state.clock.now().0)
            .await?
    {
        crate::audit::record(
            state,
            actor,
            "session.revoke",
            Some(&session.id),
            None,
            json!({"user": session.user_id}),
        )
        .await?;
    }
    Ok(())
}
