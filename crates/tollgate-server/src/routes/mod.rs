//! HTTP routes, one module per area; `router` assembles them with the middleware stack.

pub mod admin;
pub mod discovery;
pub mod issuers;
pub mod oauth;
pub mod ops;
pub mod status;
pub mod users;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post, put};
use tollgate_core::Reason;

/// Every route of the server (without middleware).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/introspect", post(oauth::introspect))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/auth/status", get(status::auth_status))
        .route(
            "/v1/admin/clients",
            post(admin::create_client).get(admin::list_clients),
        )
        .route(
            "/v1/admin/clients/{client_id}",
            get(admin::get_client).delete(admin::delete_client),
        )
        .route(
            "/v1/admin/clients/{client_id}/secret",
            post(admin::rotate_client_secret),
        )
        .route(
            "/v1/admin/clients/{client_id}/disable",
            post(admin::disable_client),
        )
        .route("/v1/admin/clients/{client_id}/enable", post(admin::enable_client))
        .route("/v1/admin/keys", get(admin::list_keys))
        .route("/v1/admin/keys/rotate", post(admin::rotate_keys))
        .route("/v1/admin/keys/{kid}/retire", post(admin::retire_key))
        .route("/v1/admin/secrets/rotate", post(admin::rotate_secrets))
        .route("/v1/admin/audit", get(admin::list_audit))
        .route("/v1/admin/users", get(users::list).post(users::create))
        .route("/v1/admin/users/{id}", get(users::get))
        .route("/v1/admin/users/{id}/identities", post(users::link))
        .route("/v1/admin/users/{id}/sessions", get(users::sessions))
        .route("/v1/admin/sessions/{id}/revoke", post(users::revoke_session))
        .route("/v1/admin/users/{id}/logout", post(users::logout))
        .route("/v1/admin/users/{id}/disable", post(users::disable))
        .route("/v1/admin/users/{id}/enable", post(users::enable))
        .route("/v1/issuers", get(issuers::list).post(issuers::create))
        .route("/v1/issuers/{name}", put(issuers::update).delete(issuers::delete))
        .route("/v1/verify", post(issuers::verify))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(not_found)
        // axum's own 405 carries the `Allow` header; give it tollgate's body as well.
        .layer(axum::middleware::map_response(method_not_allowed))
}

async fn not_found() -> ApiError {
    ApiError::new(Reason::NotFound, "no such endpoint; see /openapi.json")
}

async fn method_not_allowed(resp: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if resp.status() != http::StatusCode::METHOD_NOT_ALLOWED
        || resp.headers().contains_key(http::header::CONTENT_TYPE)
    {
        return resp;
    }
    let allow = resp.headers().get(http::header::ALLOW).cloned();
    let mut json = ApiError::new(
        Reason::MethodNotAllowed,
        "this endpoint does not accept that method; see /openapi.json",
    )
    .into_response();
    if let Some(allow) = allow {
        json.headers_mut().insert(http::header::ALLOW, allow);
    }
    json
}
