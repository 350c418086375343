//! Device keys (`crate::device_keys`): a signed-in user starts an enrollment
//! (`/v1/keys/bootstrap`), the device registers its public key with proof of possession
//! (`/v1/keys/register`, authenticated by the key-enrollment token), users list and revoke
//! their keys (`/v1/me/keys`), operators any user's (`/v1/admin/…`). The device gets tokens
//! at `POST /oauth/token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`.

use crate::authz::Me;
use crate::device_keys::{self, KetCaller};
use crate::error::ApiError;
use crate::extract::admin::Admin;
use crate::extract::json::JsonBody;
use crate::routes::oauth::no_store;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tollgate_core::Reason;
use tollgate_proto::ErrorBody;
use tollgate_proto::keys::{KeyBootstrapRequest, KeyBootstrapResponse, KeyRegisterRequest, UserKeyInfo};

/// Start enrolling a key for a device: a key-enrollment token (`tg_ket_…`, single use,
/// `device_keys.enrollment_ttl`) and the nonce the device's proof of possession signs.
/// Tokens a device key obtained cannot enroll further keys (403).
#[utoipa::path(post, path = "/v1/keys/bootstrap", tag = "keys", security(("bearer" = [])),
    request_body = KeyBootstrapRequest,
    responses((status = 201, body = KeyBootstrapResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, description = "Key limit reached (`key-limit`)", body = ErrorBody)))]
pub async fn bootstrap(
    State(state): State<AppState>,
    me: Me,
    JsonBody(req): JsonBody<KeyBootstrapRequest>,
) -> Result<Response, ApiError> {
    let resp = device_keys::bootstrap(&state, &me, &req.device_name).await?;
    Ok(no_store((StatusCode::CREATED, Json(resp))))
}

/// Register the device's public key (Ed25519 or P-256 JWK) with a proof of possession,
/// authenticated by the key-enrollment token as bearer (no user session needed). Once per
/// token (409 `key-enrollment-token-used`).
#[utoipa::path(post, path = "/v1/keys/register", tag = "keys", security(("ket" = [])),
    request_body = KeyRegisterRequest,
    responses((status = 201, body = UserKeyInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, description = "Token used, key registered already, or key limit", body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    KetCaller(enrollment): KetCaller,
    JsonBody(req): JsonBody<KeyRegisterRequest>,
) -> Result<Response, ApiError> {
    let key = device_keys::register(&state, &enrollment, &req).await?;
    Ok(no_store((StatusCode::CREATED, Json(device_keys::info(key)))))
}

/// The caller's device keys, newest first (revoked ones included).
#[utoipa::path(get, path = "/v1/me/keys", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = [UserKeyInfo]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn mine(State(state): State<AppState>, me: Me) -> Result<Json<Vec<UserKeyInfo>>, ApiError> {
    let keys = state.store.user_keys_of(&me.user.id).await?;
    Ok(Json(keys.into_iter().map(device_keys::info).collect()))
}

/// Revoke one of the caller's device keys: it gets no more tokens, and the sessions and
/// access tokens it obtained end. Keys of others are 404.
#[utoipa::path(post, path = "/v1/me/keys/{id}/revoke", tag = "me", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_mine(
    State(state): State<AppState>,
    me: Me,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = find(&state, &id)
        .await?
        .filter(|k| k.user_id == me.user.id)
        .ok_or_else(|| ApiError::new(Reason::NotFound, format!("you have no device key `{id}`")))?;
    device_keys::revoke(&state, &key, &format!("user:{}", me.user.id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's device keys, newest first.
#[utoipa::path(get, path = "/v1/admin/users/{id}/keys", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = [UserKeyInfo]), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn of_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Vec<UserKeyInfo>>, ApiError> {
    crate::users::find(&state, &id).await?;
    let keys = state.store.user_keys_of(&id).await?;
    Ok(Json(keys.into_iter().map(device_keys::info).collect()))
}

/// Revoke any user's device key, with the sessions and tokens it obtained.
#[utoipa::path(post, path = "/v1/admin/user-keys/{id}/revoke", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_any(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = find(&state, &id)
        .await?
        .ok_or_else(|| ApiError::new(Reason::NotFound, format!("no device key `{id}`")))?;
    device_keys::revoke(&state, &key, &admin.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A key by id; ids that cannot be stored (NUL) name no key.
async fn find(state: &AppState, id: &str) -> Result<Option<tollgate_store::UserKeyRecord>, ApiError> {
    match state.store.get_user_key(id).await {
        Ok(k) => Ok(k),
        Err(tollgate_store::StoreError::InvalidInput(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
