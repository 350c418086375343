//! The device authorization grant (RFC 8628): `POST /oauth/device_authorization` for
//! devices (public, like the token endpoint), and the approval API for a signed-in user
//! who enters the user code (`/v1/device…`, a user token for tollgate's API). Polling is
//! `POST /oauth/token` with `grant_type=urn:ietf:params:oauth:grant-type:device_code`
//! (`crate::device::token`).

use crate::authz::Me;
use crate::device::{self, Loaded};
use crate::error::ApiError;
use crate::extract::form::FormRequest;
use crate::extract::json::JsonBody;
use crate::routes::oauth::{no_store, requested_audiences, requested_scope};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::json;
use tollgate_core::authz::{self, Requirement};
use tollgate_core::claims::UpstreamSubject;
use tollgate_core::client_grant::{self, ClientPolicy, ClientRequest, GrantLimits};
use tollgate_core::device::{DeviceApproval, DeviceAuthorization, DeviceState, normalize_user_code};
use tollgate_core::secret_token::{self, SecretKind};
use tollgate_core::{Audience, Reason, Scope};
use tollgate_proto::ErrorBody;
use tollgate_proto::device::{
    DeviceAuthorizationRequest, DeviceAuthorizationResponse, DeviceDecisionRequest, DeviceGrantInfo,
    DeviceInfo, DeviceLookupQuery,
};
use tollgate_store::UserRecord;

/// Start a device authorization (RFC 8628 §3.1): a device without a browser asks for a
/// device code to poll with and a user code for its user to enter at `verification_uri`
/// (where a signed-in user approves with `POST /v1/device/approve`). Public clients only:
/// `client_id` is a name (`[A-Za-z0-9._:-]{1,64}`), recorded and required again when polling.
#[utoipa::path(
    post, path = "/oauth/device_authorization", tag = "oauth",
    request_body(content = DeviceAuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Codes issued", body = DeviceAuthorizationResponse),
        (status = 400, description = "Invalid request, scope or audience", body = ErrorBody),
        (status = 409, description = "No free user code found (retry)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not a form body", body = ErrorBody),
    )
)]
pub async fn authorize(State(state): State<AppState>, req: FormRequest) -> Result<Response, ApiError> {
    let form = &req.form;
    let client_id = form.required("client_id")?;
    if !device::valid_client_id(client_id) {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            "client_id must be 1–64 characters of [A-Za-z0-9._:-]",
        ));
    }
    let scope = requested_scope(form)?;
    let audience = match requested_audiences(form)?.as_slice() {
        [] => None,
        [one] => Some(one.to_string()),
        [_, _, ..] => {
            return Err(ApiError::new(
                Reason::AudienceNotAllowed,
                "ask for one audience per token",
            ));
        }
    };
    let now = state.clock.now();
    let config = &state.config.device;
    let auth = DeviceAuthorization {
        id: secret_token::mint_id("dev_", tollgate_crypto::random_byte_source()),
        client_id: client_id.to_owned(),
        scope: scope.filter(|s| !s.is_empty()).map(|s| s.to_string()),
        audience,
        created_at: now,
        expires_at: now.plus(config.code_ttl),
        interval: config.interval.as_secs(),
        last_poll: None,
        state: DeviceState::Pending,
        decided_by: None,
        decided_at: None,
        approval: None,
        consumed_at: None,
    };
    let device_code = secret_token::mint(SecretKind::DeviceCode, tollgate_crypto::random_byte_source());
    let user_code = device::create(&state, &device_code, &auth).await?;
    // Anyone may ask, so asking is counted, not audited (anonymous callers must not be able
    // to fill the audit trail); the approval, denial and tokens are audited.
    state
        .metrics
        .device_authorizations
        .get_or_create(&crate::metrics::KindLabel { kind: "device" })
        .inc();
    let verification_uri = format!("{}{}", state.config.server.public_url, config.verification_path);
    Ok(no_store(Json(DeviceAuthorizationResponse {
        device_code,
        verification_uri_complete: format!("{verification_uri}?user_code={user_code}"),
        verification_uri,
        user_code,
        expires_in: now.seconds_until(auth.expires_at),
        interval: auth.interval,
    })))
}

/// The canonical user code, or a refusal that says what a user code looks like.
pub fn user_code(input: &str) -> Result<String, ApiError> {
    normalize_user_code(input).ok_or_else(|| {
        ApiError::new(
            Reason::InvalidParameter,
            "a user code is eight letters like BCDF-GHJK (any case, with or without the dash)",
        )
    })
}

pub async fn load(state: &AppState, code: &str) -> Result<Loaded, ApiError> {
    device::by_user_code(state, code).await?.ok_or_else(|| {
        ApiError::new(
            Reason::UserCodeUnknown,
            format!("no device is waiting for code {code}; check the code the device shows"),
        )
    })
}

fn info(state: &AppState, user_id: &str, code: String, auth: &DeviceAuthorization) -> DeviceInfo {
    let granted = auth
        .approval
        .as_ref()
        .filter(|a| a.user_id == user_id)
        .map(|a| DeviceGrantInfo {
            scope: a.scope.clone(),
            audience: a.audience.clone(),
            org: a.org_id.clone(),
            refresh_token: a.refresh,
        });
    DeviceInfo {
        id: auth.id.clone(),
        user_code: code,
        client_id: auth.client_id.clone(),
        scope: auth.scope.clone(),
        audience: auth.audience.clone(),
        expires_at: crate::rfc3339(auth.expires_at.0),
        state: auth.state.as_str().to_owned(),
        expired: auth.state != DeviceState::Consumed && auth.expired(state.clock.now()),
        granted,
    }
}

/// What a device that shows `user_code` asks for, for the signed-in user to confirm before
/// approving: the client, scope and audience, until when, and its state.
#[utoipa::path(get, path = "/v1/device", tag = "device", security(("bearer" = [])),
    params(DeviceLookupQuery),
    responses((status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn lookup(
    State(state): State<AppState>,
    me: Me,
    query: Result<Query<DeviceLookupQuery>, QueryRejection>,
) -> Result<Json<DeviceInfo>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(Reason::MissingParameter, e.body_text()))?;
    let code = user_code(&q.user_code)?;
    let loaded = load(&state, &code).await?;
    Ok(Json(info(&state, &me.user.id, code, &loaded.auth)))
}

/// What the device gets if `me` approves: the org (the request's, else the approving
/// token's), which the user must be a member of with `tokens:exchange`; scope and audience
/// as the device asked within what the user's sign-in (their issuer's grant) allows, and
/// tollgate's API audience by default; a refresh token when the issuer allows sessions.
async fn approval(
    state: &AppState,
    me: &Approver<'_>,
    auth: &DeviceAuthorization,
    org: Option<&str>,
) -> Result<DeviceApproval, ApiError> {
    // A stolen device key must not be able to sign in further devices that outlive it.
    if me.via_device_key {
        return Err(ApiError::new(
            Reason::PermissionDenied,
            "a device key's token cannot approve devices; approve from a sign-in of the user",
        ));
    }
    let upstream = me.upstream.clone();
    let org_id = match org.or(me.default_org) {
        None => None,
        Some(name) => {
            let not_member = || {
                ApiError::new(
                    Reason::OrgNotMember,
                    format!("not a member of org `{name}` (or no such org)"),
                )
            };
            let found = state.store.find_org(name).await?.ok_or_else(not_member)?;
            let active = crate::orgs::membership(state, &found, &me.user.id)
                .await?
                .ok_or_else(not_member)?;
            if let Some(up) = &upstream
                && !crate::orgs::accepts_issuer(&active.org, &up.name)
            {
                return Err(ApiError::new(
                    Reason::IssuerNotEnabledForOrg,
                    format!(
                        "org `{}` does not accept sign-ins from issuer `{}`",
                        active.org.name, up.name
                    ),
                ));
            }
            authz::decide(Requirement::All(&["tokens:exchange"]), &active.permissions).map_err(|d| {
                ApiError::new(
                    Reason::PermissionDenied,
                    format!("in org `{}`: {d}", active.org.name),
                )
            })?;
            Some(active.org.id)
        }
    };
    let api = Audience::parse(&state.config.users.api_audience).map_err(|e| ApiError::internal(&e))?;
    let (mut policy, refresh) = match &upstream {
        Some(up) => {
            let view = state.upstream.registry().current();
            let issuer = view
                .set
                .iter()
                .find(|i| i.name == up.name && i.issuer == up.iss && i.enabled)
                .ok_or_else(|| {
                    ApiError::new(
                        Reason::IssuerDisabled,
                        format!("issuer `{}` no longer signs users in", up.name),
                    )
                })?;
            (issuer.grant.clone(), issuer.refresh_tokens)
        }
        // A user token without an upstream sign-in: at most what it carries itself.
        None => (
            ClientPolicy {
                allowed_scope: Scope::parse(me.own_scope).unwrap_or_default(),
                allowed_audiences: Vec::new(),
            },
            true,
        ),
    };
    // The approving user holds a token for tollgate's API; the device may have one too,
    // and gets one unless it asked for another audience.
    policy.allowed_audiences.retain(|a| *a != api);
    policy.allowed_audiences.insert(0, api.clone());
    let corrupt = |e: String| ApiError::internal(&std::io::Error::other(e));
    let request = ClientRequest {
        scope: auth
            .scope
            .as_deref()
            .map(Scope::parse)
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?,
        audiences: auth
            .audience
            .as_deref()
            .map(Audience::parse)
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?
            .into_iter()
            .collect(),
    };
    let limits = GrantLimits {
        default_audience: api,
        access_ttl: state.config.tokens.access_ttl,
    };
    let grant = client_grant::decide(&policy, &request, &limits)
        .map_err(|d| ApiError::new(d.reason, format!("{} (what your sign-in allows)", d.message)))?;
    Ok(DeviceApproval {
        user_id: me.user.id.clone(),
        user_ver: me.user.user_ver,
        org_id,
        scope: grant.scope.to_string(),
        audience: grant.audience.to_string(),
        upstream,
        refresh,
    })
}

/// Audits the refusal `e` of a user's decision on `auth` (its `why` added to `detail`) and
/// returns it, or the audit failure (failing closed).
async fn refused(
    state: &AppState,
    auth: &DeviceAuthorization,
    actor: &str,
    action: &str,
    mut detail: serde_json::Value,
    e: ApiError,
) -> ApiError {
    detail["why"] = json!(e.message);
    let event = device::event(auth, actor, action).denied(e.reason).detail(detail);
    match crate::audit::record_event(state, event).await {
        Ok(()) => e,
        Err(audit_failure) => audit_failure,
    }
}

/// Who decides on a device: a user signed in with a token for tollgate's API, or with a
/// browser session on the verification page.
#[derive(Debug)]
pub struct Approver<'a> {
    pub user: &'a UserRecord,
    /// The upstream sign-in the decision rests on.
    pub upstream: Option<UpstreamSubject>,
    /// The org the device acts in when the decision names none.
    pub default_org: Option<&'a str>,
    /// Without an upstream sign-in: the scope of the approving token, the most a device gets.
    pub own_scope: &'a str,
    /// The approving token belongs to a device key (which may not approve devices).
    pub via_device_key: bool,
}

impl<'a> Approver<'a> {
    #[must_use]
    pub fn of_token(me: &'a Me) -> Self {
        Self {
            user: &me.user,
            upstream: me.claims.upstream.clone(),
            default_org: me.claims.org.as_deref(),
            own_scope: &me.claims.scope,
            via_device_key: crate::device_keys::key_of_client(&me.claims.client_id).is_some(),
        }
    }
}

/// Approves the device showing `code` as `me` (audited either way); the decided authorization.
pub async fn approve_as(
    state: &AppState,
    me: &Approver<'_>,
    code: &str,
    org: Option<&str>,
) -> Result<DeviceAuthorization, ApiError> {
    let loaded = load(state, code).await?;
    let actor = format!("user:{}", me.user.id);
    let decided = match approval(state, me, &loaded.auth, org).await {
        Ok(a) => {
            let now = state.clock.now();
            device::decide(state, loaded.clone(), |d| d.approve(now, a.clone())).await
        }
        Err(e) => Err(e),
    };
    let auth = match decided {
        Ok(auth) => auth,
        Err(e) => {
            let detail = json!({"client_id": loaded.auth.client_id, "org": org});
            return Err(refused(state, &loaded.auth, &actor, "device.approve", detail, e).await);
        }
    };
    let a = auth.approval.as_ref();
    let detail = json!({
        "client_id": auth.client_id, "scope": a.map(|a| &a.scope), "aud": a.map(|a| &a.audience),
        "refresh_token": a.map(|a| a.refresh),
    });
    let mut event = device::event(&auth, &actor, "device.approve").detail(detail);
    event.org_id = a.and_then(|a| a.org_id.clone());
    crate::audit::record_event(state, event).await?;
    Ok(auth)
}

/// Denies the device showing `code` as `user_id` (audited either way).
pub async fn deny_as(state: &AppState, user_id: &str, code: &str) -> Result<DeviceAuthorization, ApiError> {
    let loaded = load(state, code).await?;
    let actor = format!("user:{user_id}");
    let now = state.clock.now();
    let auth = match device::decide(state, loaded.clone(), |d| d.deny(now, user_id)).await {
        Ok(auth) => auth,
        Err(e) => {
            let detail = json!({"client_id": loaded.auth.client_id});
            return Err(refused(state, &loaded.auth, &actor, "device.deny", detail, e).await);
        }
    };
    let detail = json!({"client_id": auth.client_id});
    crate::audit::record_event(state, device::event(&auth, &actor, "device.deny").detail(detail)).await?;
    Ok(auth)
}

/// Approve the device showing `user_code`: it gets tokens for the signed-in user at its
/// next poll (once). Refused for an expired code (`device-code-expired`) or one decided
/// already (409). The tokens act in `org` (default: the approving token's org).
#[utoipa::path(post, path = "/v1/device/approve", tag = "device", security(("bearer" = [])),
    request_body = DeviceDecisionRequest,
    responses((status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    me: Me,
    JsonBody(req): JsonBody<DeviceDecisionRequest>,
) -> Result<Json<DeviceInfo>, ApiError> {
    let code = user_code(&req.user_code)?;
    let auth = approve_as(&state, &Approver::of_token(&me), &code, req.org.as_deref()).await?;
    Ok(Json(info(&state, &me.user.id, code, &auth)))
}

/// Deny the device showing `user_code`: its next poll answers `access_denied`. Refused for
/// an expired code or one decided already (409).
#[utoipa::path(post, path = "/v1/device/deny", tag = "device", security(("bearer" = [])),
    request_body = DeviceDecisionRequest,
    responses((status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn deny(
    State(state): State<AppState>,
    me: Me,
    JsonBody(req): JsonBody<DeviceDecisionRequest>,
) -> Result<Json<DeviceInfo>, ApiError> {
    let code = user_code(&req.user_code)?;
    let auth = deny_as(&state, &me.user.id, &code).await?;
    Ok(Json(info(&state, &me.user.id, code, &auth)))
}
