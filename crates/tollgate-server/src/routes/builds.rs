//! Build sessions (`/v1/build/sessions`): a CI job or a developer declares a build; each
//! owner (a repository for CI jobs, a user otherwise) may have `ci.max_active_per_owner`
//! active at once. Org admins list and close them under `/v1/orgs/{org}/build-sessions`.

use crate::audit::AuditEvent;
use crate::authz::{BuildsRead, BuildsWrite, OrgAccess, TokenCaller};
use crate::error::ApiError;
use crate::extract::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;
use tollgate_core::{AccessTokenClaims, Reason};
use tollgate_proto::ErrorBody;
use tollgate_proto::ci::{BuildSessionInfo, BuildSessionList, OpenBuildSessionRequest};
use tollgate_store::{BuildSessionOpen, BuildSessionRecord};

/// Whose quota a caller's sessions count against: a CI job's repository (so parallel jobs
/// of one repository share it), or the user.
fn owner(c: &AccessTokenClaims) -> String {
    match &c.ci {
        Some(job) => {
            let issuer = c.upstream.as_ref().map_or("ci", |u| u.name.as_str());
            let repo = job
                .workload
                .get("repository")
                .map_or(c.sub.as_str(), String::as_str);
            format!("ci:{issuer}:{repo}")
        }
        None => format!("user:{}", c.sub),
    }
}

fn info(r: BuildSessionRecord, now: i64) -> BuildSessionInfo {
    BuildSessionInfo {
        active: r.closed_at.is_none() && r.expires_at > now,
        id: r.id,
        owner: r.owner,
        org: r.org_id,
        created_by: r.created_by,
        description: r.description,
        created_at: crate::rfc3339(r.created_at),
        expires_at: crate::rfc3339(r.expires_at),
        closed_at: r.closed_at.map(crate::rfc3339),
        closed_reason: r.closed_reason,
    }
}

fn list_of(state: &AppState, records: Vec<BuildSessionRecord>) -> BuildSessionList {
    let now = state.clock.now().0;
    BuildSessionList {
        sessions: records.into_iter().map(|r| info(r, now)).collect(),
        max_active_per_owner: state.config.ci.max_active_per_owner,
    }
}

/// Open a build session (user or CI job token for tollgate's API). Refused with
/// `build-session-limit` when the owner has `ci.max_active_per_owner` active ones.
#[utoipa::path(post, path = "/v1/build/sessions", tag = "ci", security(("bearer" = [])),
    request_body = OpenBuildSessionRequest,
    responses((status = 201, body = BuildSessionInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn open(
    State(state): State<AppState>,
    caller: TokenCaller,
    JsonBody(req): JsonBody<OpenBuildSessionRequest>,
) -> Result<(StatusCode, Json<BuildSessionInfo>), ApiError> {
    if req.description.chars().count() > 500 || req.description.chars().any(char::is_control) {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            "description must be at most 500 characters, without control characters",
        ));
    }
    let max = state.config.ci.build_session_ttl;
    let ttl = match &req.ttl {
        None => max,
        Some(t) => humantime::parse_duration(t)
            .map_err(|e| ApiError::new(Reason::InvalidParameter, format!("ttl `{t}`: {e}")))?
            .min(max),
    };
    if ttl.as_secs() < 60 {
        return Err(ApiError::new(Reason::InvalidParameter, "ttl must be at least 1m"));
    }
    let c = &caller.claims;
    let now = state.clock.now();
    let record = BuildSessionRecord {
        id: format!("bs_{}", uuid::Uuid::new_v4().simple()),
        org_id: c.org.clone(),
        owner: owner(c),
        created_by: c.sub.clone(),
        description: req.description.clone(),
        created_at: now.0,
        expires_at: now.plus(ttl).0,
        closed_at: None,
        closed_reason: None,
    };
    let limit = state.config.ci.max_active_per_owner;
    let opened = state.store.open_build_session(&record, limit, now.0).await?;
    let mut audit = AuditEvent::new(&c.sub, "build_session.open")
        .target(&record.id)
        .credential(&c.jti)
        .detail(json!({"owner": record.owner, "expires_at": record.expires_at, "description": record.description}));
    audit.org_id.clone_from(&c.org);
    if let BuildSessionOpen::LimitReached { active } = opened {
        let e = ApiError::new(
            Reason::BuildSessionLimit,
            format!(
                "{} has {active} active build sessions (the limit is {limit}); close one first",
                record.owner
            ),
        );
        crate::audit::record_event(&state, audit.denied(e.reason)).await?;
        return Err(e);
    }
    crate::audit::record_event(&state, audit).await?;
    Ok((StatusCode::CREATED, Json(info(record, now.0))))
}

/// The caller's build sessions (those of its owner), newest first.
#[utoipa::path(get, path = "/v1/build/sessions", tag = "ci", security(("bearer" = [])),
    responses((status = 200, body = BuildSessionList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_own(
    State(state): State<AppState>,
    caller: TokenCaller,
) -> Result<Json<BuildSessionList>, ApiError> {
    let records = state.store.build_sessions_of(&owner(&caller.claims)).await?;
    Ok(Json(list_of(&state, records)))
}

async fn close(
    state: &AppState,
    id: &str,
    actor: &str,
    reason: &str,
) -> Result<BuildSessionRecord, ApiError> {
    let now = state.clock.now().0;
    if !state.store.close_build_session(id, reason, now).await? {
        return Err(ApiError::new(
            Reason::NotFound,
            format!("no open build session `{id}`"),
        ));
    }
    let record = state
        .store
        .get_build_session(id)
        .await?
        .ok_or_else(|| ApiError::new(Reason::NotFound, format!("no build session `{id}`")))?;
    let mut audit = AuditEvent::new(actor, "build_session.close")
        .target(id)
        .detail(json!({"owner": record.owner, "reason": reason}));
    audit.org_id.clone_from(&record.org_id);
    crate::audit::record_event(state, audit).await?;
    Ok(record)
}

/// Close one of the caller's own build sessions.
#[utoipa::path(post, path = "/v1/build/sessions/{id}/close", tag = "ci", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = BuildSessionInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn close_own(
    State(state): State<AppState>,
    caller: TokenCaller,
    Path(id): Path<String>,
) -> Result<Json<BuildSessionInfo>, ApiError> {
    let owned = state
        .store
        .get_build_session(&id)
        .await?
        .is_some_and(|r| r.owner == owner(&caller.claims));
    if !owned {
        return Err(ApiError::new(
            Reason::NotFound,
            format!("no build session `{id}` of yours"),
        ));
    }
    let r = close(&state, &id, &caller.claims.sub, "closed by owner").await?;
    Ok(Json(info(r, state.clock.now().0)))
}

/// The org's build sessions. Needs `builds:read`.
#[utoipa::path(get, path = "/v1/orgs/{org}/build-sessions", tag = "ci", security(("bearer" = [])),
    params(("org" = String, Path)),
    responses((status = 200, body = BuildSessionList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_org(
    State(state): State<AppState>,
    access: OrgAccess<BuildsRead>,
) -> Result<Json<BuildSessionList>, ApiError> {
    let records = state.store.build_sessions_of_org(&access.org.id).await?;
    Ok(Json(list_of(&state, records)))
}

/// Close any of the org's build sessions. Needs `builds:write`.
#[utoipa::path(post, path = "/v1/orgs/{org}/build-sessions/{id}/close", tag = "ci", security(("bearer" = [])),
    params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = BuildSessionInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn close_org(
    State(state): State<AppState>,
    access: OrgAccess<BuildsWrite>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<BuildSessionInfo>, ApiError> {
    let in_org = state
        .store
        .get_build_session(&id)
        .await?
        .is_some_and(|r| r.org_id.as_deref() == Some(access.org.id.as_str()));
    if !in_org {
        return Err(ApiError::new(
            Reason::NotFound,
            format!("no build session `{id}` in this org"),
        ));
    }
    let r = close(&state, &id, &access.caller.actor(), "closed by org admin").await?;
    Ok(Json(info(r, state.clock.now().0)))
}
