//! The registry token endpoint (`GET`/`POST /v2/token`, distribution token authentication
//! and its OAuth2 variant), the internal pull-credential endpoint, and their administration
//! (API keys, the registry's configuration).

use crate::audit::AuditEvent;
use crate::authz::{Decision, DecisionSlot};
use crate::error::ApiError;
use crate::extract::admin::Admin;
use crate::extract::form::{Form, FormRequest};
use crate::extract::json::JsonBody;
use crate::registry::{self, Principal};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tollgate_core::Reason;
use tollgate_core::registry::{ResourceScope, parse_scopes};
use tollgate_core::secret_token::{self, SecretKind};
use tollgate_proto::ErrorBody;
use tollgate_proto::registry::{
    ApiKeyInfo, CreateApiKeyRequest, PullCredential, PullCredentialRequest, RegistryConfigResponse,
    RegistryTokenForm, RegistryTokenResponse,
};
use tollgate_store::{ApiKeyRecord, PullCredentialRecord, SecretHash, StoreError};

/// The `service` asked for: the configured one (absent means it too).
fn service<'a>(state: &'a AppState, asked: Option<&'a str>) -> Result<&'a str, ApiError> {
    let configured = state.config.registry.service.as_str();
    match asked {
        None => Ok(configured),
        Some(s) if s == configured => Ok(configured),
        Some(s) => Err(ApiError::new(
            Reason::InvalidParameter,
            format!("unknown service `{s}`; this token server serves `{configured}`"),
        )),
    }
}

fn scopes(params: &[&str]) -> Result<Vec<ResourceScope>, ApiError> {
    parse_scopes(params).map_err(|e| ApiError::new(Reason::InvalidParameter, format!("scope: {e}")))
}

/// Decides, signs, audits and answers.
async fn answer(
    state: &AppState,
    principal: &Principal,
    service: &str,
    scopes: &[ResourceScope],
    refresh_token: Option<String>,
) -> Result<Response, ApiError> {
    let access = registry::decide(state, principal, scopes).await?;
    for scope in scopes {
        let granted = access
            .iter()
            .find(|a| a.resource_type == scope.resource_type && a.name == scope.name)
            .map(|a| a.actions.clone())
            .unwrap_or_default();
        for action in &scope.actions {
            let labels = crate::metrics::RegistryLabels::new(action, granted.contains(action));
            state.metrics.registry_grants.get_or_create(&labels).inc();
        }
        // Anonymous refusals are counted, not audited: anyone could fill the trail.
        let complete = scope.actions.iter().all(|a| granted.contains(a));
        if matches!(principal, Principal::Anonymous) && !complete {
            continue;
        }
        let mut event = AuditEvent::new(format!("registry:{}", principal.subject()), "registry.token")
            .target(format!("{}:{}", scope.resource_type, scope.name))
            .detail(json!({"requested": scope.actions, "granted": granted, "service": service}));
        if !complete {
            event = event.denied(Reason::PermissionDenied);
        }
        if scope.resource_type == "repository"
            && let Some(org) = registry::repository_org(state, &scope.name).await?
        {
            event = event.org(org.id);
        }
        crate::audit::record_event(state, event).await?;
    }
    let (token, claims) = registry::issue(state, principal, service, access)?;
    let body = RegistryTokenResponse {
        access_token: token.clone(),
        token,
        expires_in: u64::try_from(claims.exp.0 - claims.iat.0).unwrap_or(0),
        issued_at: crate::rfc3339(claims.iat.0),
        refresh_token,
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// A registry token (distribution token authentication): `service`, any number of `scope`
/// parameters, HTTP Basic credentials (a pull credential, a service account, or a user's
/// tollgate access or refresh token as password; none for anonymous). Actions not permitted
/// are left out of `access`; bad credentials are 401 with a challenge.
#[utoipa::path(get, path = "/v2/token", tag = "registry",
    params(
        ("service" = Option<String>, Query, description = "the registry's service name"),
        ("scope" = Option<Vec<String>>, Query, description = "e.g. repository:acme/app:pull,push; repeatable"),
        ("account" = Option<String>, Query),
        ("offline_token" = Option<bool>, Query),
        ("client_id" = Option<String>, Query),
    ),
    responses((status = 200, body = RegistryTokenResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn token_get(
    State(state): State<AppState>,
    decision: DecisionSlot,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let principal = registry::authenticate(&state, &headers).await;
    decision.decide(match &principal {
        // Anyone may ask; anonymous callers get only what `anonymous_pull` grants.
        Ok(Principal::Anonymous) => Decision::Public,
        Ok(_) => Decision::Granted,
        Err(_) => Decision::Denied,
    });
    let principal = principal?;
    let query = Form::parse(query.unwrap_or_default().as_bytes())?;
    let service = service(&state, query.one("service")?)?;
    let scopes = scopes(&query.all("scope"))?;
    let offline = query.one("offline_token")? == Some("true");
    let refresh = offline
        .then(|| registry::presented_refresh_token(&headers))
        .flatten();
    answer(&state, &principal, service, &scopes, refresh).await
}

/// The OAuth2 variant: `grant_type=password` (`username`, `password` as for `GET`) or
/// `refresh_token` (a tollgate refresh token, not spent), `service`, `client_id`,
/// space-separated `scope`; `access_type=offline` returns the refresh token to use next.
#[utoipa::path(post, path = "/v2/token", tag = "registry",
    request_body(content = RegistryTokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = RegistryTokenResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn token_post(State(state): State<AppState>, req: FormRequest) -> Result<Response, ApiError> {
    let form = &req.form;
    let (user, password) = match form.required("grant_type")? {
        "password" => (form.required("username")?, form.required("password")?),
        "refresh_token" => ("", form.required("refresh_token")?),
        other => {
            return Err(ApiError::new(
                Reason::UnsupportedGrantType,
                format!("grant_type `{other}` is not supported here; use password or refresh_token"),
            ));
        }
    };
    form.required("client_id")?;
    let mut headers = HeaderMap::new();
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{user}:{password}"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("Basic {basic}")) {
        headers.insert(header::AUTHORIZATION, v);
    }
    let principal = registry::authenticate(&state, &headers).await?;
    let service = service(&state, form.one("service")?)?;
    let scope = form.one("scope")?.unwrap_or_default();
    let scopes = scopes(&[scope])?;
    let offline = form.one("access_type")? == Some("offline");
    let refresh =
        (offline && password.starts_with(SecretKind::RefreshToken.prefix())).then(|| password.to_owned());
    answer(&state, &principal, service, &scopes, refresh).await
}

/// The internal service an API key belongs to.
async fn api_key(state: &AppState, headers: &HeaderMap) -> Result<ApiKeyRecord, ApiError> {
    let challenge = |reason, message: &str| ApiError::new(reason, message).with_challenge("ApiKey");
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            challenge(
                Reason::ClientAuthMissing,
                "send the service's API key as X-API-Key",
            )
        })?;
    secret_token::check(SecretKind::ApiKey, key)
        .map_err(|e| challenge(Reason::SecretMalformed, &format!("API key: {e}")))?;
    let hasher = state.hashing.hasher();
    for (version, hash) in hasher.all_hashes(key) {
        if let Some(k) = state.store.find_api_key(&SecretHash { version, hash }).await? {
            if k.revoked_at.is_some() {
                return Err(challenge(Reason::Revoked, "this API key has been revoked"));
            }
            return Ok(k);
        }
    }
    Err(challenge(Reason::ClientAuthFailed, "unknown API key"))
}

/// A short-lived credential that may only pull one repository (seed 002's internal
/// endpoint), for an internal service with an API key (`X-API-Key`).
#[utoipa::path(post, path = "/internal/registry/pull-credentials", tag = "registry",
    security(("api_key" = [])), request_body = PullCredentialRequest,
    responses((status = 200, body = PullCredential), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn pull_credentials(
    State(state): State<AppState>,
    decision: DecisionSlot,
    headers: HeaderMap,
    JsonBody(req): JsonBody<PullCredentialRequest>,
) -> Result<Json<PullCredential>, ApiError> {
    let key = api_key(&state, &headers).await;
    decision.decide(if key.is_ok() {
        Decision::Granted
    } else {
        Decision::Denied
    });
    let key = key?;
    let repository = match (req.repository, req.workspace, req.app) {
        (Some(r), None, None) => r,
        (None, Some(w), Some(a)) => format!("{w}/{a}"),
        _ => {
            return Err(ApiError::new(
                Reason::MissingParameter,
                "give `repository`, or `workspace` and `app`",
            ));
        }
    };
    let parsed = scopes(&[&format!("repository:{repository}:pull")])?;
    let repository = parsed.first().map(|s| s.name.clone()).unwrap_or(repository);
    let Some(org) = registry::repository_org(&state, &repository).await? else {
        return Err(ApiError::new(
            Reason::NotFound,
            format!("no org owns repository `{repository}`"),
        ));
    };
    let secret = secret_token::mint(SecretKind::PullCredential, tollgate_crypto::random_byte_source());
    let (version, hash) = state.hashing.hasher().hash(&secret);
    let now = state.clock.now();
    let record = PullCredentialRecord {
        id: secret_token::mint_id("tgpc_", tollgate_crypto::random_byte_source()),
        secret: SecretHash { version, hash },
        repository: repository.clone(),
        org_id: org.id.clone(),
        created_by: format!("apikey:{}", key.id),
        created_at: now.0,
        expires_at: now.plus(state.config.registry.pull_credential_ttl).0,
        revoked_at: None,
    };
    state.store.insert_pull_credential(&record).await?;
    let event = AuditEvent::new(format!("apikey:{}", key.id), "registry.pull_credential.create")
        .org(&org.id)
        .target(&repository)
        .credential(&record.id)
        .detail(json!({"expires_at": record.expires_at}));
    crate::audit::record_event(&state, event).await?;
    Ok(Json(PullCredential {
        username: record.id,
        password: secret,
        registry: state.config.registry.host.clone(),
        repository,
        expires_at: crate::rfc3339(record.expires_at),
    }))
}

/// Revoke a pull credential before it expires.
#[utoipa::path(post, path = "/v1/admin/registry/pull-credentials/{id}/revoke", tag = "registry",
    security(("admin" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_pull_credential(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let Some(cred) = state.store.get_pull_credential(&id).await? else {
        return Err(ApiError::new(
            Reason::NotFound,
            format!("no pull credential `{id}`"),
        ));
    };
    if state
        .store
        .revoke_pull_credential(&id, state.clock.now().0)
        .await?
    {
        let event = AuditEvent::new(admin.actor(), "registry.pull_credential.revoke")
            .org(&cred.org_id)
            .target(&cred.repository)
            .credential(&id);
        crate::audit::record_event(&state, event).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

fn api_key_info(k: ApiKeyRecord, key: Option<String>) -> ApiKeyInfo {
    ApiKeyInfo {
        id: k.id,
        name: k.name,
        created_at: crate::rfc3339(k.created_at),
        revoked: k.revoked_at.is_some(),
        key,
    }
}

/// Create an API key for an internal service (shown once).
#[utoipa::path(post, path = "/v1/admin/api-keys", tag = "registry", security(("admin" = [])),
    request_body = CreateApiKeyRequest,
    responses((status = 201, body = ApiKeyInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_api_key(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(req): JsonBody<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyInfo>), ApiError> {
    let ok = (1..=64).contains(&req.name.len())
        && req
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            "name must be 1–64 characters of A–Z a–z 0–9 . _ -",
        ));
    }
    let secret = secret_token::mint(SecretKind::ApiKey, tollgate_crypto::random_byte_source());
    let (version, hash) = state.hashing.hasher().hash(&secret);
    let record = ApiKeyRecord {
        id: secret_token::mint_id("tgak_", tollgate_crypto::random_byte_source()),
        name: req.name.clone(),
        secret: SecretHash { version, hash },
        created_at: state.clock.now().0,
        revoked_at: None,
    };
    match state.store.insert_api_key(&record).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                Reason::Conflict,
                format!("an API key named `{}` exists", req.name),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    crate::audit::record_event(
        &state,
        AuditEvent::new(admin.actor(), "api_key.create")
            .target(&record.id)
            .detail(json!({"name": req.name})),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(api_key_info(record, Some(secret)))))
}

/// API keys (without their secrets).
#[utoipa::path(get, path = "/v1/admin/api-keys", tag = "registry", security(("admin" = [])),
    responses((status = 200, body = [ApiKeyInfo]), (status = 401, body = ErrorBody)))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<ApiKeyInfo>>, ApiError> {
    let keys = state.store.list_api_keys().await?;
    Ok(Json(keys.into_iter().map(|k| api_key_info(k, None)).collect()))
}

/// Revoke an API key.
#[utoipa::path(post, path = "/v1/admin/api-keys/{id}/revoke", tag = "registry", security(("admin" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.revoke_api_key(&id, state.clock.now().0).await? {
        return Err(ApiError::new(Reason::NotFound, format!("no live API key `{id}`")));
    }
    crate::audit::record_event(
        &state,
        AuditEvent::new(admin.actor(), "api_key.revoke").target(&id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RegistryConfigQuery {
    /// The token endpoint URL as the registry's clients reach it; default `<public_url>/v2/token`.
    pub realm: Option<String>,
    /// Default `registry.service`.
    pub service: Option<String>,
}

/// What a CNCF distribution registry needs in its `auth.token` section, with the PEM
/// certificates of the registry signing keys (active and next) for its `rootcertbundle`.
#[utoipa::path(get, path = "/v1/admin/registry/config", tag = "registry", security(("admin" = [])),
    params(RegistryConfigQuery),
    responses((status = 200, body = RegistryConfigResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn config(
    State(state): State<AppState>,
    _admin: Admin,
    query: Result<Query<RegistryConfigQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RegistryConfigResponse>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(Reason::InvalidParameter, e.body_text()))?;
    let service = service(&state, q.service.as_deref())?.to_owned();
    let public_url = &state.config.server.public_url;
    let realm = q.realm.unwrap_or_else(|| format!("{public_url}/v2/token"));
    if !(realm.starts_with("http://") || realm.starts_with("https://")) || realm.chars().any(char::is_control)
    {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            "realm must be an http(s) URL",
        ));
    }
    let now = state.clock.now().0;
    let mut bundle = String::new();
    for key in state.keys.published_signing_keys(crate::keyring::REGISTRY)? {
        // Valid from a day back (clock skew).
        let pem = tollgate_crypto::self_signed_certificate(
            &key,
            registry::CERT_NAME,
            now - 86_400,
            now + registry::CERT_LIFE,
        )
        .map_err(|e| ApiError::internal(&e))?;
        bundle.push_str(&pem);
    }
    Ok(Json(RegistryConfigResponse {
        realm,
        service,
        issuer: public_url.clone(),
        rootcertbundle: bundle,
    }))
}
