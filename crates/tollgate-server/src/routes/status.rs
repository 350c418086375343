//! `GET /auth/status`: what the presented access token says about its bearer.

use crate::authz::{Decision, DecisionSlot};
use crate::error::ApiError;
use crate::extract::bearer::bearer_token;
use crate::state::AppState;
use crate::tokens;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use tollgate_core::Reason;
use tollgate_proto::ErrorBody;
use tollgate_proto::ops::{AuthStatus, UpstreamInfo};

/// Who am I: subject, client, scope, audience and expiry of the bearer token.
#[utoipa::path(
    get, path = "/auth/status", tag = "tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Token is valid", body = AuthStatus),
        (status = 401, description = "Token missing or refused; `reason` says why", body = ErrorBody),
    )
)]
pub async fn auth_status(
    State(state): State<AppState>,
    decision: DecisionSlot,
    headers: HeaderMap,
) -> Result<Json<AuthStatus>, ApiError> {
    let status = check(&state, &headers).await;
    decision.decide(if status.is_ok() {
        Decision::Granted
    } else {
        Decision::Denied
    });
    status
}

async fn check(state: &AppState, headers: &HeaderMap) -> Result<Json<AuthStatus>, ApiError> {
    let token = bearer_token(headers).ok_or_else(|| {
        ApiError::new(
            Reason::TokenMissing,
            "send the access token as `Authorization: Bearer …`",
        )
        .with_challenge("Bearer realm=\"tollgate\"")
    })?;
    match tokens::verify_live(state, token).await? {
        Ok(c) => Ok(Json(AuthStatus {
            expires_in: state.clock.now().seconds_until(c.exp),
            sub: c.sub,
            client_id: c.client_id,
            scope: c.scope,
            aud: c.aud,
            exp: c.exp.0,
            upstream: c.upstream.map(|u| UpstreamInfo {
                name: u.name,
                iss: u.iss,
                sub: u.sub,
                email: u.email,
                org_id: u.org_id,
                org_role: u.org_role,
            }),
            act: c.act.and_then(|a| serde_json::to_value(a).ok()),
            org: c.org,
            roles: c.roles,
        })),
        Err(r) => {
            let challenge = format!(
                "Bearer realm=\"tollgate\", error=\"invalid_token\", error_description=\"{}\"",
                r.reason.code()
            );
            Err(ApiError::new(r.reason, r.message).with_challenge(challenge))
        }
    }
}
