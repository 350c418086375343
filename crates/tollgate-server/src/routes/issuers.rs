//! Upstream issuers in the admin API (`/v1/issuers`), and `POST /v1/verify`, which explains
//! step by step what tollgate makes of an upstream token.

use crate::error::ApiError;
use crate::extract::admin::Admin;
use crate::extract::json::JsonBody;
use crate::state::AppState;
use crate::upstream::registry::{IssuerView, RegistryError, Source};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::json;
use tollgate_core::Reason;
use tollgate_core::client_grant::{self, ClientRequest};
use tollgate_core::upstream::claims::check_policy;
use tollgate_core::upstream::{IssuerSpec, Report};
use tollgate_proto::ErrorBody;
use tollgate_proto::admin::{IssuerInfo, VerifyRequest, VerifyResponse, VerifyStep};

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(e) => ApiError::new(Reason::InvalidParameter, e.to_string()),
            e @ (RegistryError::FileManaged(_) | RegistryError::NameTaken(_)) => {
                ApiError::new(Reason::Conflict, e.to_string())
            }
            e @ RegistryError::NotFound(_) => ApiError::new(Reason::NotFound, e.to_string()),
            RegistryError::Store(s) => s.into(),
        }
    }
}

fn info(state: &AppState, view: &IssuerView, name: &str) -> Option<IssuerInfo> {
    let (source, spec) = view.entries.get(name)?;
    let keys = state
        .upstream
        .jwks()
        .status_of(name)
        .and_then(|s| serde_json::to_value(s).ok());
    Some(IssuerInfo {
        name: name.to_owned(),
        source: match source {
            Source::File => "file",
            Source::Api => "api",
        }
        .to_owned(),
        issuer: spec.issuer.clone(),
        enabled: spec.enabled,
        spec: serde_json::to_value(spec).unwrap_or_default(),
        keys,
    })
}

fn parse_spec(body: serde_json::Value) -> Result<IssuerSpec, ApiError> {
    serde_json::from_value(body)
        .map_err(|e| ApiError::new(Reason::MalformedRequest, format!("invalid issuer: {e}")))
}

/// The trusted issuers (file and API), with their key cache state.
#[utoipa::path(get, path = "/v1/issuers", tag = "issuers", security(("admin" = [])),
    responses((status = 200, body = [IssuerInfo]), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, _admin: Admin) -> Json<Vec<IssuerInfo>> {
    let view = state.upstream.registry().current();
    Json(
        view.entries
            .keys()
            .filter_map(|n| info(&state, &view, n))
            .collect(),
    )
}

/// Trust a new issuer. The body is an issuer specification as in the `[[issuers]]` section
/// of the configuration (JSON, durations as strings like `"30s"`).
#[utoipa::path(post, path = "/v1/issuers", tag = "issuers", security(("admin" = [])),
    request_body(content = Object, description = "An issuer specification"),
    responses((status = 201, body = IssuerInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<(StatusCode, Json<IssuerInfo>), ApiError> {
    let spec = parse_spec(body)?;
    state
        .upstream
        .registry()
        .create(&spec, state.clock.now().0)
        .await?;
    crate::audit::record(
        &state,
        &admin.actor(),
        "issuer.create",
        Some(&spec.name),
        None,
        json!({"spec": spec}),
    )
    .await?;
    let view = state.upstream.registry().current();
    let created =
        info(&state, &view, &spec.name).ok_or_else(|| ApiError::new(Reason::NotFound, "issuer vanished"))?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Replace an API issuer's specification; e.g. `"enabled": false` to roll back at once.
#[utoipa::path(put, path = "/v1/issuers/{name}", tag = "issuers", security(("admin" = [])),
    params(("name" = String, Path)), request_body(content = Object, description = "An issuer specification"),
    responses((status = 200, body = IssuerInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Json<IssuerInfo>, ApiError> {
    let spec = parse_spec(body)?;
    if spec.name != name {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            "the name in the body must match the path",
        ));
    }
    state
        .upstream
        .registry()
        .update(&spec, state.clock.now().0)
        .await?;
    crate::audit::record(
        &state,
        &admin.actor(),
        "issuer.update",
        Some(&name),
        None,
        json!({"spec": spec}),
    )
    .await?;
    let view = state.upstream.registry().current();
    info(&state, &view, &name)
        .map(Json)
        .ok_or_else(|| ApiError::new(Reason::NotFound, "issuer vanished"))
}

/// Stop trusting an API issuer.
#[utoipa::path(delete, path = "/v1/issuers/{name}", tag = "issuers", security(("admin" = [])),
    params(("name" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.upstream.registry().delete(&name).await?;
    state.upstream.jwks().forget(&name);
    crate::audit::record(
        &state,
        &admin.actor(),
        "issuer.delete",
        Some(&name),
        None,
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Explain what tollgate makes of an upstream token: each check in order, the identity it
/// maps to, and what an exchange would grant. Always 200; `valid` and `reason` say the verdict.
#[utoipa::path(post, path = "/v1/verify", tag = "issuers", security(("admin" = [])),
    request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let mut report = Report::default();
    let result = state.upstream.verify(req.token.trim(), &mut report).await;
    // What an exchange would add on top of a valid token: the issuer's grant conditions.
    let policy = result
        .as_ref()
        .ok()
        .map(|v| check_policy(&v.issuer, &v.claims, &mut report));
    let steps = report
        .steps
        .into_iter()
        .map(|s| VerifyStep {
            check: serde_json::to_value(s.check)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            passed: s.passed,
            detail: s.detail,
        })
        .collect();
    let header = unverified_header(&req.token);
    // CI tokens: the trust policies decide; show how each judges the workload (no replay
    // check: this is a dry run).
    let policies = match &result {
        Ok(v) if v.issuer.kind == tollgate_core::upstream::IssuerKind::Workloads => {
            Some(crate::workloads::judge(&state, v, None, None).await?.explained())
        }
        _ => None,
    };
    let response = match result {
        Ok(v) => {
            let limits = state.grant_limits()?;
            let decision = match policy {
                Some(Err(refusal)) => Err((refusal.reason, refusal.message)),
                _ => client_grant::decide(&v.issuer.grant, &ClientRequest::default(), &limits)
                    .map_err(|d| (d.reason, d.message)),
            };
            let exchange = match decision {
                Ok(g) => {
                    json!({"scope": g.scope.to_string(), "audience": g.audience, "expires_in": g.ttl.as_secs()})
                }
                Err((reason, message)) => json!({"refused": reason.code(), "error_description": message}),
            };
            VerifyResponse {
                valid: true,
                reason: None,
                error_description: None,
                issuer_name: Some(v.issuer.name.clone()),
                kid: v.kid,
                steps,
                header,
                identity: serde_json::to_value(&v.identity).ok(),
                exchange: Some(exchange),
                policies,
            }
        }
        Err(r) => {
            let view = state.upstream.registry().current();
            VerifyResponse {
                valid: false,
                reason: Some(r.reason.code().to_owned()),
                error_description: Some(r.message),
                issuer_name: r
                    .issuer
                    .as_deref()
                    .and_then(|i| view.set.get(i))
                    .map(|i| i.name.clone()),
                kid: r.kid,
                steps,
                header,
                identity: None,
                exchange: None,
                policies: None,
            }
        }
    };
    Ok(Json(response))
}

/// The JOSE header as sent, for display only.
fn unverified_header(token: &str) -> Option<serde_json::Value> {
    let first = token.trim().split('.').next()?;
    if first.len() > 4096 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
