//! Writing audit events. Callers pass facts, never secrets, tokens or PEMs.

use crate::error::ApiError;
use crate::state::AppState;
use tollgate_core::Reason;
use tollgate_store::AuditRecord;

/// Appends an audit event. Fails closed: a request whose audit event cannot be written
/// gets a 503 instead of its result (for token issuance the event is written before the
/// token is returned, so no token leaves unaudited).
pub async fn record(
    state: &AppState,
    actor: &str,
    action: &str,
    target: Option<&str>,
    denied: Option<Reason>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let event = AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: state.clock.now().0,
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.map(str::to_owned),
        outcome: if denied.is_some() { "denied" } else { "success" }.to_owned(),
        reason: denied.map(|r| r.code().to_owned()),
        detail: detail.to_string(),
    };
    state.store.append_audit(&event).await.map_err(|e| {
        state.metrics.audit_failures.inc();
        ApiError::unavailable(&e)
    })
}
