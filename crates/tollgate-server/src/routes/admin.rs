//! The admin API: service accounts, signing keys, server secrets (the audit trail is in
//! `routes::audit`).
//! Every handler takes [`Admin`], so none runs unauthenticated, and every change is audited.

use crate::clients;
use crate::error::ApiError;
use crate::extract::admin::Admin;
use crate::extract::json::JsonBody;
use crate::keyring::ACCESS;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;
use tollgate_core::Reason;
use tollgate_proto::ErrorBody;
use tollgate_proto::admin::{
    ClientInfo, ClientWithSecret, CreateClientRequest, KeyInfo, RetireKeyRequest, RotateKeysRequest,
    RotateKeysResponse, SecretRotation,
};

/// Create a service account; the response holds its secret, shown this once.
#[utoipa::path(
    post, path = "/v1/admin/clients", tag = "admin", security(("admin" = [])),
    request_body = CreateClientRequest,
    responses(
        (status = 201, body = ClientWithSecret),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
    )
)]
pub async fn create_client(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(req): JsonBody<CreateClientRequest>,
) -> Result<(StatusCode, Json<ClientWithSecret>), ApiError> {
    let created = clients::create(&state, &req, None).await?;
    let c = &created.client;
    crate::audit::record(
        &state,
        &admin.actor(),
        "client.create",
        Some(&c.client_id),
        None,
        json!({"name": c.name, "scope": c.scope, "audiences": c.audiences}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List service accounts.
#[utoipa::path(get, path = "/v1/admin/clients", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = [ClientInfo]), (status = 401, body = ErrorBody)))]
pub async fn list_clients(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<ClientInfo>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_clients()
            .await?
            .iter()
            .map(clients::info)
            .collect(),
    ))
}

/// One service account.
#[utoipa::path(get, path = "/v1/admin/clients/{client_id}", tag = "admin", security(("admin" = [])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = ClientInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_client(
    State(state): State<AppState>,
    _admin: Admin,
    Path(client_id): Path<String>,
) -> Result<Json<ClientInfo>, ApiError> {
    Ok(Json(clients::info(&clients::find(&state, &client_id).await?)))
}

/// Delete a service account; its tokens stop introspecting as active.
#[utoipa::path(delete, path = "/v1/admin/clients/{client_id}", tag = "admin", security(("admin" = [])),
    params(("client_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_client(
    State(state): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_client(&client_id).await? {
        return Err(ApiError::new(
            Reason::NotFound,
            format!("no client with id `{client_id}`"),
        ));
    }
    crate::audit::record(
        &state,
        &admin.actor(),
        "client.delete",
        Some(&client_id),
        None,
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issue a new secret; the old one stops working at once.
#[utoipa::path(post, path = "/v1/admin/clients/{client_id}/secret", tag = "admin", security(("admin" = [])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = ClientWithSecret), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "The secret changed concurrently; retry", body = ErrorBody)))]
pub async fn rotate_client_secret(
    State(state): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
) -> Result<Json<ClientWithSecret>, ApiError> {
    let rotated = clients::rotate_secret(&state, &client_id).await?;
    crate::audit::record(
        &state,
        &admin.actor(),
        "client.secret.rotate",
        Some(&client_id),
        None,
        json!({}),
    )
    .await?;
    Ok(Json(rotated))
}

async fn set_disabled(
    state: &AppState,
    admin: &Admin,
    client_id: &str,
    disabled: bool,
) -> Result<Json<ClientInfo>, ApiError> {
    let at = disabled.then(|| state.clock.now().0);
    if !state.store.set_client_disabled(client_id, at).await? {
        return Err(ApiError::new(
            Reason::NotFound,
            format!("no client with id `{client_id}`"),
        ));
    }
    let action = if disabled {
        "client.disable"
    } else {
        "client.enable"
    };
    crate::audit::record(state, &admin.actor(), action, Some(client_id), None, json!({})).await?;
    Ok(Json(clients::info(&clients::find(state, client_id).await?)))
}

/// Disable a service account: it cannot authenticate and its tokens introspect inactive.
#[utoipa::path(post, path = "/v1/admin/clients/{client_id}/disable", tag = "admin", security(("admin" = [])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = ClientInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable_client(
    State(state): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
) -> Result<Json<ClientInfo>, ApiError> {
    set_disabled(&state, &admin, &client_id, true).await
}

/// Enable a disabled service account.
#[utoipa::path(post, path = "/v1/admin/clients/{client_id}/enable", tag = "admin", security(("admin" = [])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = ClientInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable_client(
    State(state): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
) -> Result<Json<ClientInfo>, ApiError> {
    set_disabled(&state, &admin, &client_id, false).await
}

/// Signing keys of every purpose and state.
#[utoipa::path(get, path = "/v1/admin/keys", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = [KeyInfo]), (status = 401, body = ErrorBody)))]
pub async fn list_keys(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<KeyInfo>>, ApiError> {
    let keys = state.store.list_keys().await?;
    Ok(Json(
        keys.iter()
            .map(|k| KeyInfo {
                kid: k.kid.clone(),
                purpose: k.purpose.clone(),
                alg: k.alg.clone(),
                state: k.state.to_string(),
                created_at: crate::rfc3339(k.created_at),
                activated_at: k.activated_at.map(crate::rfc3339),
                retired_at: k.retired_at.map(crate::rfc3339),
                publish_until: k.publish_until.map(crate::rfc3339),
            })
            .collect(),
    ))
}

/// Rotate: the published next key starts signing, the active key is retired.
#[utoipa::path(post, path = "/v1/admin/keys/rotate", tag = "admin", security(("admin" = [])),
    request_body = RotateKeysRequest,
    responses((status = 200, body = RotateKeysResponse), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rotate_keys(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(req): JsonBody<RotateKeysRequest>,
) -> Result<Json<RotateKeysResponse>, ApiError> {
    let purpose = req.purpose.as_deref().unwrap_or(ACCESS);
    let r = state.keys.rotate(purpose, req.force).await?;
    crate::audit::record(
        &state,
        &admin.actor(),
        "key.rotate",
        Some(&r.activated),
        None,
        json!({"purpose": purpose, "retired": r.retired, "next": r.next, "force": req.force}),
    )
    .await?;
    Ok(Json(RotateKeysResponse {
        retired: r.retired,
        activated: r.activated,
        next: r.next,
    }))
}

/// Retire a key that does not sign (a next key is replaced; a retired key can be unpublished now).
#[utoipa::path(post, path = "/v1/admin/keys/{kid}/retire", tag = "admin", security(("admin" = [])),
    params(("kid" = String, Path)), request_body = RetireKeyRequest,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn retire_key(
    State(state): State<AppState>,
    admin: Admin,
    Path(kid): Path<String>,
    JsonBody(req): JsonBody<RetireKeyRequest>,
) -> Result<StatusCode, ApiError> {
    state.keys.retire(&kid, req.immediately).await?;
    crate::audit::record(
        &state,
        &admin.actor(),
        "key.retire",
        Some(&kid),
        None,
        json!({"immediately": req.immediately}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a new HMAC secret version for hashing stored secrets.
#[utoipa::path(post, path = "/v1/admin/secrets/rotate", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = SecretRotation), (status = 401, body = ErrorBody), (status = 409, description = "Another rotation won; retry", body = ErrorBody)))]
pub async fn rotate_secrets(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Json<SecretRotation>, ApiError> {
    let version = state.hashing.rotate().await?;
    crate::audit::record(
        &state,
        &admin.actor(),
        "secret.rotate",
        None,
        None,
        json!({"version": version}),
    )
    .await?;
    Ok(Json(SecretRotation { version }))
}
