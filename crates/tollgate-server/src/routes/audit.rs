//! The audit trail through the admin API: filtered pages, a JSON-lines export and the
//! verification of the hash chain. Reading the trail is not itself audited.

use crate::audit::{query_page, store_query, to_wire};
use crate::error::ApiError;
use crate::extract::admin::Admin;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tollgate_core::Reason;
use tollgate_proto::ErrorBody;
use tollgate_proto::audit::{AuditFilter, AuditPage, AuditVerification};

/// Events read from the store per chunk of the export.
const EXPORT_PAGE: u32 = 500;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn filter(query: Result<Query<AuditFilter>, QueryRejection>) -> Result<AuditFilter, ApiError> {
    query
        .map(|Query(f)| f)
        .map_err(|e| ApiError::new(Reason::InvalidParameter, e.body_text()))
}

/// Audit events, newest first, filtered and paged: pass `next_cursor` as `cursor` for the
/// next page.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("admin" = [])),
    params(AuditFilter),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    query: Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    Ok(Json(query_page(&state, &filter(query)?).await?))
}

/// Every matching audit event, oldest first, as JSON lines (one `AuditEvent` per line),
/// streamed. `cursor` and `limit` do not apply.
#[utoipa::path(get, path = "/v1/admin/audit/export", tag = "admin", security(("admin" = [])),
    params(AuditFilter),
    responses(
        (status = 200, description = "One AuditEvent as JSON per line, oldest first", content_type = "application/x-ndjson", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    ))]
pub async fn export(
    State(state): State<AppState>,
    _admin: Admin,
    query: Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let mut q = store_query(&filter(query)?)?;
    q.oldest_first = true;
    q.limit = EXPORT_PAGE;
    let chunks = futures_util::stream::unfold(Some(q), move |next| {
        let state = state.clone();
        async move {
            let mut q = next?;
            let rows = match state.store.query_audit(&q).await {
                Ok(rows) if rows.is_empty() => return None,
                Ok(rows) => rows,
                Err(e) => {
                    // The status line is sent; ending the body with an error makes the
                    // client see a truncated response rather than a complete-looking one.
                    tracing::error!(error = %e, "audit export failed; the response is cut short");
                    return Some((Err(BoxError::from(e)), None));
                }
            };
            let last = rows.len() < EXPORT_PAGE as usize;
            q.after = rows.last().map(|r| r.seq);
            let mut buf = Vec::with_capacity(rows.len() * 512);
            for row in rows {
                if let Err(e) = serde_json::to_writer(&mut buf, &to_wire(row)) {
                    return Some((Err(BoxError::from(e)), None));
                }
                buf.push(b'\n');
            }
            Some((Ok(Bytes::from(buf)), (!last).then_some(q)))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// Walk the audit hash chain and report the first event that was altered, deleted,
/// inserted or reordered.
#[utoipa::path(get, path = "/v1/admin/audit/verify", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = AuditVerification), (status = 401, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<AuditVerification>, ApiError> {
    let v = state.audit_chain.verify(&*state.store).await?;
    if !v.ok {
        tracing::warn!(
            first_broken_seq = ?v.first_broken_seq,
            problem = ?v.problem,
            "the audit hash chain is broken"
        );
    }
    Ok(Json(v.into()))
}
