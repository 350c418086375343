//! Operations: health, readiness, metrics and the OpenAPI document.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tollgate_proto::ops::Health;
use utoipa::OpenApi as _;

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        database: None,
        redis: None,
    })
}

/// Readiness: the database answers.
#[utoipa::path(
    get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Health), (status = 503, description = "Database unreachable", body = Health))
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let backend = state.store.backend_name();
    let database = state.store.ping().await;
    if let Err(e) = &database {
        tracing::warn!(error = %e, "readiness check failed: database");
    }
    let redis = match &state.redis {
        None => None,
        Some(r) => Some(r.ping().await.inspect_err(|e| {
            tracing::warn!(error = %e, "readiness check failed: redis");
        })),
    };
    let ready = database.is_ok() && redis.as_ref().is_none_or(Result::is_ok);
    let health = Health {
        status: if ready { "ok" } else { "unavailable" }.into(),
        database: Some(format!(
            "{backend}: {}",
            if database.is_ok() { "ok" } else { "unreachable" }
        )),
        redis: redis.map(|r| if r.is_ok() { "ok" } else { "unreachable" }.to_owned()),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health))
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Metrics", content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::ApiDoc::openapi())
}
