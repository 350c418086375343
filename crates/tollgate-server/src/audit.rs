//! Writing and reading audit events. Callers pass facts, never secrets, tokens or PEMs.
//!
//! Every event is appended to the hash chain (`audit_chain`) with the request id of the
//! HTTP request it was written in (a task-local set by a middleware in `app.rs`).

use crate::error::ApiError;
use crate::state::AppState;
use std::future::Future;
use tollgate_core::Reason;
use tollgate_proto::audit::{AuditEvent as WireEvent, AuditFilter, AuditPage};
use tollgate_store::{AuditQuery, AuditRecord, StoredAudit};

tokio::task_local! {
    static REQUEST_ID: Option<String>;
}

/// Runs `f` so that every audit event written inside it carries `request_id`.
pub async fn with_request_id<F: Future>(request_id: Option<String>, f: F) -> F::Output {
    REQUEST_ID.scope(request_id, f).await
}

/// The request id of the request being served, if any.
#[must_use]
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok().flatten()
}

/// An event to audit. Build with [`AuditEvent::new`] and the setters.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Who acted: `admin:<id>`, `client:<id>`, `system`, …
    pub actor: String,
    /// What was done, e.g. `token.issue`.
    pub action: String,
    /// What it was done to.
    pub target: Option<String>,
    /// The org it concerns.
    pub org_id: Option<String>,
    /// The credential acted with or on: a `jti` or a certificate serial.
    pub credential_id: Option<String>,
    /// The reason of a refusal; `None` for a success.
    pub denied: Option<Reason>,
    /// Further facts, a JSON object (`null` is stored as `{}`).
    pub detail: serde_json::Value,
}

impl AuditEvent {
    #[must_use]
    pub fn new(actor: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            target: None,
            org_id: None,
            credential_id: None,
            denied: None,
            detail: serde_json::Value::Null,
        }
    }

    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    #[must_use]
    pub fn org(mut self, org_id: impl Into<String>) -> Self {
        self.org_id = Some(org_id.into());
        self
    }

    #[must_use]
    pub fn credential(mut self, credential_id: impl Into<String>) -> Self {
        self.credential_id = Some(credential_id.into());
        self
    }

    #[must_use]
    pub fn denied(mut self, reason: Reason) -> Self {
        self.denied = Some(reason);
        self
    }

    #[must_use]
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

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
    record_event(
        state,
        AuditEvent {
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.map(str::to_owned),
            org_id: None,
            credential_id: None,
            denied,
            detail,
        },
    )
    .await
}

/// Appends `event` to the hash-chained audit trail, with the current request id. Fails
/// closed like [`record`].
pub async fn record_event(state: &AppState, event: AuditEvent) -> Result<(), ApiError> {
    let detail = if event.detail.is_null() {
        "{}".to_owned()
    } else {
        event.detail.to_string()
    };
    let record = AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: state.clock.now().0,
        actor: event.actor,
        action: event.action,
        target: event.target,
        outcome: if event.denied.is_some() {
            "denied"
        } else {
            "success"
        }
        .to_owned(),
        reason: event.denied.map(|r| r.code().to_owned()),
        detail,
        org_id: event.org_id,
        credential_id: event.credential_id,
        request_id: current_request_id(),
    };
    if state.audit_writer.append(record).await {
        Ok(())
    } else {
        // The writer logged the cause.
        Err(ApiError::new(
            Reason::ServiceUnavailable,
            "the audit trail could not be written; retry later",
        ))
    }
}

/// Events written per transaction at most.
const MAX_BATCH: usize = 256;

/// One task appends audit events for the whole process, as many per transaction as are
/// waiting (group commit): the chain serializes appends anyway, and one transaction per
/// event would cap throughput at one transaction's round trips. Each caller still waits
/// for the commit of its own event, so nothing is returned before it is audited.
#[derive(Debug)]
pub struct AuditWriter {
    queue: tokio::sync::mpsc::Sender<(AuditRecord, tokio::sync::oneshot::Sender<bool>)>,
}

impl AuditWriter {
    /// Starts the writer task; it ends when the writer is dropped.
    #[must_use]
    pub fn start(
        store: std::sync::Arc<dyn tollgate_store::Store>,
        chain: std::sync::Arc<crate::audit_chain::AuditChain>,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        let (queue, mut rx) =
            tokio::sync::mpsc::channel::<(AuditRecord, tokio::sync::oneshot::Sender<bool>)>(4096);
        let link = move |input: &tollgate_store::ChainInput<'_>| chain.link(input);
        tokio::spawn(async move {
            let (mut events, mut waiters) = (Vec::new(), Vec::new());
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some((event, waiter)) = next.take() {
                    events.push(event);
                    waiters.push(waiter);
                    if events.len() < MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                let written = store.append_audit_batch(&events, &link).await;
                if let Err(e) = &written {
                    tracing::error!(error = %e, events = events.len(), "audit trail write failed; refusing the requests");
                    metrics.audit_failures.inc_by(events.len() as u64);
                }
                for waiter in waiters.drain(..) {
                    let _ = waiter.send(written.is_ok());
                }
                events.clear();
            }
        });
        Self { queue }
    }

    /// Appends `event` and waits for its commit; false if it could not be written.
    pub async fn append(&self, event: AuditRecord) -> bool {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.queue.send((event, done)).await.is_err() {
            return false;
        }
        written.await.unwrap_or(false)
    }
}

/// Page size when no `limit` is given, and the largest allowed.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(Reason::InvalidParameter, message)
}

/// `value` as Unix seconds: RFC 3339 (`2025-01-31T12:00:00Z`) or Unix seconds.
fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(secs) = value.parse::<i64>() {
        return Ok(secs);
    }
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            invalid(format!(
                "`{name}` must be an RFC 3339 time (2025-01-31T12:00:00Z) or Unix seconds"
            ))
        })
}

/// The store query for `filter`'s org, actor, action and time range (without cursor or limit).
pub fn store_query(filter: &AuditFilter) -> Result<AuditQuery, ApiError> {
    let non_empty = |name: &str, v: &Option<String>| match v.as_deref() {
        Some("") => Err(invalid(format!("`{name}` must not be empty"))),
        other => Ok(other.map(str::to_owned)),
    };
    Ok(AuditQuery {
        org_id: non_empty("org", &filter.org)?,
        actor: non_empty("actor", &filter.actor)?,
        action: non_empty("action", &filter.action)?,
        since: filter
            .since
            .as_deref()
            .map(|v| parse_time("since", v))
            .transpose()?,
        until: filter
            .until
            .as_deref()
            .map(|v| parse_time("until", v))
            .transpose()?,
        ..AuditQuery::default()
    })
}

/// The wire form of a stored event.
#[must_use]
pub fn to_wire(stored: StoredAudit) -> WireEvent {
    let e = stored.event;
    WireEvent {
        seq: stored.seq,
        chain_seq: stored.chain_seq,
        id: e.id,
        time: crate::rfc3339(e.at),
        actor: e.actor,
        org: e.org_id,
        action: e.action,
        target: e.target,
        credential_id: e.credential_id,
        outcome: e.outcome,
        reason: e.reason,
        request_id: e.request_id,
        detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
    }
}

/// One page of events matching `filter`, newest first, with the cursor of the next page.
/// Org-scoped routes call this with `filter.org` set to their org.
pub async fn query_page(state: &AppState, filter: &AuditFilter) -> Result<AuditPage, ApiError> {
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid(format!("`limit` must be between 1 and {MAX_LIMIT}")));
    }
    let before = filter
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid("`cursor` must be the `next_cursor` of an earlier page"))
        })
        .transpose()?;
    let mut q = store_query(filter)?;
    q.before = before;
    // One more than asked tells whether another page follows.
    q.limit = limit + 1;
    let mut rows = state.store.query_audit(&q).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    Ok(AuditPage {
        events: rows.into_iter().map(to_wire).collect(),
        next_cursor,
    })
}
