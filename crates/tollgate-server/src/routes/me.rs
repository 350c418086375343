//! The self-service API (`/v1/me`): the calling user's profile, memberships and sessions,
//! with a user access token for tollgate's API audience.

use crate::authz::Me;
use crate::error::ApiError;
use crate::extract::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;
use tollgate_core::Reason;
use tollgate_proto::ErrorBody;
use tollgate_proto::admin::SessionInfo;
use tollgate_proto::orgs::{MeInfo, MembershipInfo, RevokeTokenRequest};

/// Who the calling token belongs to, the org it acts in, and the user's memberships.
#[utoipa::path(get, path = "/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = MeInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, me: Me) -> Result<Json<MeInfo>, ApiError> {
    let mut memberships = Vec::new();
    for m in state.store.memberships_of(&me.user.id).await? {
        let Some(org) = state.store.find_org(&m.org_id).await? else {
            continue;
        };
        memberships.push(MembershipInfo {
            org_id: org.id,
            org_name: org.name,
            roles: m.roles,
        });
    }
    Ok(Json(MeInfo {
        user: crate::routes::users::info(&state, me.user).await?,
        org: me.claims.org,
        roles: me.claims.roles,
        memberships,
    }))
}

/// The caller's sessions, newest first.
#[utoipa::path(get, path = "/v1/me/sessions", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = [SessionInfo]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn sessions(State(state): State<AppState>, me: Me) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    let list = state.store.sessions_of(&me.user.id).await?;
    Ok(Json(list.into_iter().map(crate::sessions::info).collect()))
}

/// End one of the caller's sessions (e.g. a lost laptop's).
#[utoipa::path(post, path = "/v1/me/sessions/{id}/revoke", tag = "me", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    me: Me,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session = state
        .store
        .get_session(&id)
        .await?
        .filter(|s| s.user_id == me.user.id)
        .ok_or_else(|| ApiError::new(Reason::NotFound, format!("you have no session `{id}`")))?;
    crate::sessions::revoke(&state, &session, &format!("user:{}", me.user.id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Log out everywhere: every access token and session of the caller ends, this one included.
#[utoipa::path(post, path = "/v1/me/logout", tag = "me", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn logout(State(state): State<AppState>, me: Me) -> Result<StatusCode, ApiError> {
    let Some(ver) = state.store.bump_user_ver(&me.user.id).await? else {
        return Err(ApiError::new(
            Reason::Revoked,
            "the token's user has been deleted",
        ));
    };
    let actor = format!("user:{}", me.user.id);
    crate::audit::record_event(
        &state,
        crate::audit::AuditEvent::new(&actor, "user.logout_everywhere")
            .target(&me.user.id)
            .credential(&me.claims.jti)
            .detail(json!({"user_ver": ver})),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke one of the caller's access tokens (its `jti` is refused until it would have
/// expired): e.g. a token copied somewhere it should not be. Tokens of others are 404.
#[utoipa::path(post, path = "/v1/me/tokens/revoke", tag = "me", security(("bearer" = [])),
    request_body = RevokeTokenRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    me: Me,
    JsonBody(req): JsonBody<RevokeTokenRequest>,
) -> Result<StatusCode, ApiError> {
    let claims = crate::tokens::verify(&state, &req.token).map_err(|r| {
        ApiError::new(
            Reason::InvalidParameter,
            format!("not a live tollgate token: {}", r.message),
        )
    })?;
    if claims.sub != me.user.id {
        return Err(ApiError::new(Reason::NotFound, "you have no such token"));
    }
    state
        .store
        .revoke_jti(&claims.jti, claims.exp.0, state.clock.now().0)
        .await?;
    let mut event = crate::audit::AuditEvent::new(format!("user:{}", me.user.id), "token.revoke")
        .target(&me.user.id)
        .credential(&claims.jti);
    event.org_id.clone_from(&claims.org);
    crate::audit::record_event(&state, event).await?;
    Ok(StatusCode::NO_CONTENT)
}
