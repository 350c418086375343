//! Trust policies of an org (`/v1/orgs/{org}/trust-policies`): which CI workloads may get
//! which credentials, and a dry run that explains how they judge a given CI token.

use crate::authz::{OrgAccess, TrustPoliciesRead, TrustPoliciesWrite};
use crate::error::ApiError;
use crate::extract::json::JsonBody;
use crate::routes::orgs::event;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;
use tollgate_core::Reason;
use tollgate_core::authz::PermissionSet;
use tollgate_core::upstream::{IssuerKind, NoTrace};
use tollgate_proto::ErrorBody;
use tollgate_proto::admin::VerifyRequest;
use tollgate_proto::ci::{PolicyEvaluation, TrustPolicyInfo, TrustPolicyList, TrustPolicySpec};
use tollgate_store::TrustPolicyRecord;

fn info(org: &str, r: TrustPolicyRecord) -> Result<TrustPolicyInfo, ApiError> {
    let spec = serde_json::from_str(&r.spec).map_err(|e| ApiError::internal(&e))?;
    Ok(TrustPolicyInfo {
        org: org.to_owned(),
        name: r.name,
        spec,
        created_at: crate::rfc3339(r.created_at),
        updated_at: crate::rfc3339(r.updated_at),
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(Reason::NotFound, format!("no trust policy `{name}` in this org"))
}

/// The org's trust policies. Needs `trust-policies:read`.
#[utoipa::path(get, path = "/v1/orgs/{org}/trust-policies", tag = "ci", security(("bearer" = [])),
    params(("org" = String, Path)),
    responses((status = 200, body = TrustPolicyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    access: OrgAccess<TrustPoliciesRead>,
) -> Result<Json<TrustPolicyList>, ApiError> {
    let policies = state
        .store
        .trust_policies_of(&access.org.id)
        .await?
        .into_iter()
        .map(|r| info(&access.org.name, r))
        .collect::<Result<_, _>>()?;
    Ok(Json(TrustPolicyList { policies }))
}

/// One trust policy. Needs `trust-policies:read`.
#[utoipa::path(get, path = "/v1/orgs/{org}/trust-policies/{name}", tag = "ci", security(("bearer" = [])),
    params(("org" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = TrustPolicyInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    access: OrgAccess<TrustPoliciesRead>,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<TrustPolicyInfo>, ApiError> {
    let r = state
        .store
        .get_trust_policy(&access.org.id, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(Json(info(&access.org.name, r)?))
}

/// Create or replace a trust policy. Needs `trust-policies:write`, and the caller must hold
/// every permission the policy grants (certificates, registry actions, publishing): nobody
/// gives a CI job more than they have. The issuer must be a configured issuer of workloads.
#[utoipa::path(put, path = "/v1/orgs/{org}/trust-policies/{name}", tag = "ci", security(("bearer" = [])),
    params(("org" = String, Path), ("name" = String, Path)), request_body = TrustPolicySpec,
    responses((status = 200, body = TrustPolicyInfo), (status = 201, body = TrustPolicyInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    access: OrgAccess<TrustPoliciesWrite>,
    Path((_, name)): Path<(String, String)>,
    JsonBody(spec): JsonBody<TrustPolicySpec>,
) -> Result<(StatusCode, Json<TrustPolicyInfo>), ApiError> {
    if name == "evaluate" {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            "`evaluate` is reserved; choose another name",
        ));
    }
    let policy = crate::workloads::to_policy(&access.org.id, &name, &spec)?;
    if spec.description.len() > 500 || spec.description.chars().any(char::is_control) {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            "description must be at most 500 characters, without control characters",
        ));
    }
    let view = state.upstream.registry().current();
    match view.set.iter().find(|i| i.name == spec.issuer) {
        None => {
            return Err(ApiError::new(
                Reason::InvalidParameter,
                format!("no issuer named `{}`; see GET /v1/issuers", spec.issuer),
            ));
        }
        Some(i) if i.kind != IssuerKind::Workloads => {
            return Err(ApiError::new(
                Reason::InvalidParameter,
                format!(
                    "issuer `{}` is an issuer of users; trust policies apply to issuers of kind workloads",
                    spec.issuer
                ),
            ));
        }
        Some(_) => {}
    }
    let grants = PermissionSet::parse(policy.grant.permissions().iter().map(String::as_str))
        .map_err(|e| ApiError::internal(&e))?;
    access
        .check_covers(&state, &grants, "this policy", ("trust_policy.put", &name))
        .await?;
    let now = state.clock.now().0;
    let existing = state.store.get_trust_policy(&access.org.id, &name).await?;
    let record = TrustPolicyRecord {
        org_id: access.org.id.clone(),
        name: name.clone(),
        issuer: spec.issuer.clone(),
        spec: serde_json::to_string(&spec).map_err(|e| ApiError::internal(&e))?,
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        updated_at: now,
    };
    let created = state.store.put_trust_policy(&record).await? && existing.is_none();
    let before: Option<serde_json::Value> = existing.and_then(|e| serde_json::from_str(&e.spec).ok());
    let detail = json!({"before": before, "after": spec});
    crate::audit::record_event(
        &state,
        event(&access, "trust_policy.put").target(&name).detail(detail),
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info(&access.org.name, record)?)))
}

/// Delete a trust policy. Needs `trust-policies:write`.
#[utoipa::path(delete, path = "/v1/orgs/{org}/trust-policies/{name}", tag = "ci", security(("bearer" = [])),
    params(("org" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    access: OrgAccess<TrustPoliciesWrite>,
    Path((_, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_trust_policy(&access.org.id, &name).await? {
        return Err(not_found(&name));
    }
    crate::audit::record_event(&state, event(&access, "trust_policy.delete").target(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Dry run: how this org's policies judge a CI token (verified, but not used up). Needs
/// `trust-policies:read`.
#[utoipa::path(post, path = "/v1/orgs/{org}/trust-policies/evaluate", tag = "ci", security(("bearer" = [])),
    params(("org" = String, Path)), request_body = VerifyRequest,
    responses((status = 200, body = PolicyEvaluation), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn evaluate(
    State(state): State<AppState>,
    access: OrgAccess<TrustPoliciesRead>,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> Result<Json<PolicyEvaluation>, ApiError> {
    let token = state
        .upstream
        .verify(req.token.trim(), &mut NoTrace)
        .await
        .map_err(ApiError::refused_token)?;
    let judgement = crate::workloads::judge(&state, &token, Some(&access.org.id), None).await?;
    Ok(Json(judgement.explained()))
}
