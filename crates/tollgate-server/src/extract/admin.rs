//! The admin API caller, authenticated by an admin bearer token.

use crate::authz::Decision;
use crate::error::ApiError;
use crate::extract::bearer::bearer_token;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tollgate_core::Reason;

/// An authenticated administrator.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Admin token id (`config` for the configured bootstrap token).
    pub id: String,
}

impl Admin {
    /// The audit actor string.
    #[must_use]
    pub fn actor(&self) -> String {
        format!("admin:{}", self.id)
    }
}

const CHALLENGE: &str = "Bearer realm=\"tollgate-admin\"";

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let result = authenticate(parts, state).await;
        crate::authz::DecisionSlot::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {})
            .decide(if result.is_ok() {
                Decision::Granted
            } else {
                Decision::Denied
            });
        result
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Admin, ApiError> {
    let token = bearer_token(&parts.headers).ok_or_else(|| {
        ApiError::new(
            Reason::AdminAuthRequired,
            "send an admin token as `Authorization: Bearer tg_adm_…`",
        )
        .with_challenge(CHALLENGE)
    })?;
    match crate::admin_tokens::authenticate(state, token).await? {
        Some(id) => Ok(Admin { id }),
        None => Err(ApiError::new(Reason::AdminAuthFailed, "unknown admin token").with_challenge(CHALLENGE)),
    }
}
