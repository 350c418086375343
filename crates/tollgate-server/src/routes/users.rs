//! Users in the admin API (`/v1/admin/users`): list, create ahead of sign-in, link
//! identities, logout everywhere, disable.

use crate::error::ApiError;
use crate::extract::admin::Admin;
use crate::extract::json::JsonBody;
use crate::state::AppState;
use crate::users;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;
use tollgate_core::Reason;
use tollgate_proto::ErrorBody;
use tollgate_proto::admin::{CreateUserRequest, IdentityInfo, SessionInfo, UserInfo};
use tollgate_store::UserRecord;

pub(crate) async fn info(state: &AppState, u: UserRecord) -> Result<UserInfo, ApiError> {
    let identities = state.store.identities_of(&u.id).await?;
    Ok(UserInfo {
        id: u.id,
        email: u.email,
        user_ver: u.user_ver,
        created_at: crate::rfc3339(u.created_at),
        disabled: u.disabled_at.is_some(),
        email_verified_at: u.email_verified_at.map(crate::rfc3339),
        identities: identities
            .into_iter()
            .map(|i| IdentityInfo {
                iss: i.iss,
                sub: i.sub,
            })
            .collect(),
    })
}

fn valid_identity(i: &IdentityInfo) -> Result<(), ApiError> {
    let ok = |v: &str| !v.is_empty() && v.len() <= 512 && !v.chars().any(char::is_control);
    if !ok(&i.iss) || !ok(&i.sub) {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            "identities need an iss and a sub of 1–512 characters, without control characters",
        ));
    }
    Ok(())
}

/// Every user with their identities.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = [UserInfo]), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<UserInfo>>, ApiError> {
    let mut out = Vec::new();
    for u in state.store.list_users().await? {
        out.push(info(&state, u).await?);
    }
    Ok(Json(out))
}

/// Create a user ahead of their first sign-in, linked to upstream identities.
#[utoipa::path(post, path = "/v1/admin/users", tag = "admin", security(("admin" = [])),
    request_body = CreateUserRequest,
    responses((status = 201, body = UserInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(req): JsonBody<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    req.identities.iter().try_for_each(valid_identity)?;
    if req
        .email
        .as_deref()
        .is_some_and(|e| e.len() > 320 || e.chars().any(char::is_control))
    {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            "email must be at most 320 characters, without control characters",
        ));
    }
    let pairs: Vec<(String, String)> = req
        .identities
        .iter()
        .map(|i| (i.iss.clone(), i.sub.clone()))
        .collect();
    let user = users::create(&state, req.email.clone(), &pairs).await?;
    crate::audit::record(
        &state,
        &admin.actor(),
        "user.create",
        Some(&user.id),
        None,
        json!({"identities": pairs.len()}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(info(&state, user).await?)))
}

/// One user.
#[utoipa::path(get, path = "/v1/admin/users/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = UserInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<UserInfo>, ApiError> {
    let user = users::find(&state, &id).await?;
    Ok(Json(info(&state, user).await?))
}

/// Link another upstream identity to a user (e.g. the same person at a new IdP).
#[utoipa::path(post, path = "/v1/admin/users/{id}/identities", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path)), request_body = IdentityInfo,
    responses((status = 200, body = UserInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn link(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    JsonBody(identity): JsonBody<IdentityInfo>,
) -> Result<Json<UserInfo>, ApiError> {
    valid_identity(&identity)?;
    users::link(&state, &id, &identity.iss, &identity.sub).await?;
    crate::audit::record(
        &state,
        &admin.actor(),
        "user.identity.link",
        Some(&id),
        None,
        json!({"iss": identity.iss}),
    )
    .await?;
    Ok(Json(info(&state, users::find(&state, &id).await?).await?))
}

/// Log the user out everywhere: every token issued to them so far is refused.
#[utoipa::path(post, path = "/v1/admin/users/{id}/logout", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = UserInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<UserInfo>, ApiError> {
    let Some(ver) = state.store.bump_user_ver(&id).await? else {
        return Err(ApiError::new(Reason::NotFound, format!("no user with id `{id}`")));
    };
    crate::audit::record(
        &state,
        &admin.actor(),
        "user.logout_everywhere",
        Some(&id),
        None,
        json!({"user_ver": ver}),
    )
    .await?;
    Ok(Json(info(&state, users::find(&state, &id).await?).await?))
}

async fn set_disabled(
    state: &AppState,
    admin: &Admin,
    id: &str,
    disabled: bool,
) -> Result<Json<UserInfo>, ApiError> {
    if !state
        .store
        .set_user_disabled(id, disabled.then(|| state.clock.now().0))
        .await?
    {
        return Err(ApiError::new(Reason::NotFound, format!("no user with id `{id}`")));
    }
    let action = if disabled { "user.disable" } else { "user.enable" };
    crate::audit::record(state, &admin.actor(), action, Some(id), None, json!({})).await?;
    Ok(Json(info(state, users::find(state, id).await?).await?))
}

/// Disable a user: their tokens are refused and they cannot exchange.
#[utoipa::path(post, path = "/v1/admin/users/{id}/disable", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = UserInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<UserInfo>, ApiError> {
    set_disabled(&state, &admin, &id, true).await
}

/// Enable a disabled user (their old tokens stay refused: enabling bumps `user_ver` too).
#[utoipa::path(post, path = "/v1/admin/users/{id}/enable", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = UserInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<UserInfo>, ApiError> {
    set_disabled(&state, &admin, &id, false).await
}

/// A user's sessions (refresh-token families), newest first.
#[utoipa::path(get, path = "/v1/admin/users/{id}/sessions", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = [SessionInfo]), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn sessions(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    users::find(&state, &id).await?;
    let list = state.store.sessions_of(&id).await?;
    Ok(Json(list.into_iter().map(crate::sessions::info).collect()))
}

/// End a session: its refresh tokens stop working.
#[utoipa::path(post, path = "/v1/admin/sessions/{id}/revoke", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let Some(session) = state.store.get_session(&id).await? else {
        return Err(ApiError::new(
            Reason::NotFound,
            format!("no session with id `{id}`"),
        ));
    };
    crate::sessions::revoke(&state, &session, &admin.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
