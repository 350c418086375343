//! JSON request bodies with tollgate's error vocabulary instead of axum's plain-text rejections.

use crate::error::ApiError;
use crate::extract::form::{read_body, require_content_type};
use crate::state::AppState;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use tollgate_core::Reason;

/// A JSON body deserialized into `T`; an empty body is read as `{}`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let has_body = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() != b"0");
        if has_body && req.headers().contains_key(http::header::CONTENT_TYPE) {
            require_content_type(req.headers(), "application/json")?;
        }
        let body = read_body(req, state.config.server.max_body_bytes).await?;
        let body: &[u8] = if body.is_empty() { b"{}" } else { &body };
        serde_json::from_slice(body)
            .map(JsonBody)
            .map_err(|e| ApiError::new(Reason::MalformedRequest, format!("invalid JSON body: {e}")))
    }
}
