//! Audit trail bodies (`/v1/admin/audit…`).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// One audit event. Absent facts are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Position in the audit trail, increasing with every event; the pagination cursor.
    pub seq: i64,
    /// Position in the hash chain (`GET /v1/admin/audit/verify`); `null` for events
    /// written before the chain existed.
    #[serde(default)]
    pub chain_seq: Option<i64>,
    pub id: String,
    /// When, RFC 3339.
    pub time: String,
    /// Who acted: `admin:<id>`, `client:<id>`, `upstream:<issuer>:<sub>`, `system`, …
    pub actor: String,
    /// The org the event concerns.
    #[serde(default)]
    pub org: Option<String>,
    /// What was done, e.g. `token.issue`, `client.create`.
    pub action: String,
    /// What it was done to: a client id, a kid, a user id, …
    #[serde(default)]
    pub target: Option<String>,
    /// The credential acted with or on: a token's `jti` or a certificate serial.
    #[serde(default)]
    pub credential_id: Option<String>,
    /// The decision: `success` or `denied`.
    pub outcome: String,
    /// The reason code of a denial (docs/reasons.md).
    #[serde(default)]
    pub reason: Option<String>,
    /// The `x-request-id` of the request that caused the event.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Further facts (a JSON object).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A page of audit events, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Which audit events to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only events of this org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Only events of this actor (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Only this action (exact), or, ending with `.` (`token.`), every action with that prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only events at or after this time: RFC 3339 or Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only events before this time (exclusive): RFC 3339 or Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The `next_cursor` of the previous page (not used by the export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// At most this many events (1–1000, default 100; not used by the export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// The result of walking the audit hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditVerification {
    /// True when every chained event is present, in order and unaltered.
    pub ok: bool,
    /// Events verified (before the first broken one).
    pub checked: u64,
    /// The chain sequence number (`chain_seq`) where the chain first breaks.
    pub first_broken_seq: Option<i64>,
    /// What is wrong there.
    pub problem: Option<String>,
}
