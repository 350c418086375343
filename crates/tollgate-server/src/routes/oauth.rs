//! OAuth 2.0 endpoints: token (client_credentials), introspection, revocation.

use crate::clients;
use crate::error::ApiError;
use crate::extract::bearer::bearer_token;
use crate::extract::client_auth::{presented_client, require_client};
use crate::extract::form::{Form, FormRequest};
use crate::state::AppState;
use crate::tokens;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tollgate_core::client_grant::{self, ClientRequest};
use tollgate_core::{Audience, Reason, Scope};
use tollgate_proto::ErrorBody;
use tollgate_proto::oauth::{IntrospectionResponse, TokenRequest, TokenResponse, TokenTypeHintRequest};
use tollgate_store::ClientRecord;

/// Adds `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) fn no_store(body: impl IntoResponse) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// Issue an access token.
#[utoipa::path(
    post, path = "/oauth/token", tag = "oauth",
    security(("client" = []), ()),
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Token issued", body = TokenResponse),
        (status = 400, description = "Invalid request, scope or target", body = ErrorBody),
        (status = 401, description = "Client authentication failed", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not a form body", body = ErrorBody),
    )
)]
pub async fn token(State(state): State<AppState>, req: FormRequest) -> Result<Response, ApiError> {
    match req.form.required("grant_type")? {
        // RFC 7523 §2.2: a device key authenticating with a client assertion.
        "client_credentials" if req.form.one("client_assertion_type")?.is_some() => Ok(no_store(Json(
            crate::device_keys::client_credentials(&state, &req.headers, &req.form).await?,
        ))),
        "client_credentials" => client_credentials(&state, &req.headers, &req.form).await,
        "refresh_token" => Ok(no_store(Json(
            crate::sessions::refresh(&state, &req.headers, &req.form).await?,
        ))),
        crate::exchange::GRANT_TYPE => Ok(no_store(Json(
            crate::exchange::exchange(&state, &req.headers, &req.form).await?,
        ))),
        crate::device::GRANT_TYPE => Ok(no_store(Json(crate::device::token(&state, &req.form).await?))),
        crate::device_keys::GRANT_TYPE => Ok(no_store(Json(
            crate::device_keys::token(&state, &req.form).await?,
        ))),
        other => Err(ApiError::new(
            Reason::UnsupportedGrantType,
            format!(
                "grant_type `{other}` is not supported; use client_credentials, refresh_token, {}, {} or {}",
                crate::exchange::GRANT_TYPE,
                crate::device::GRANT_TYPE,
                crate::device_keys::GRANT_TYPE
            ),
        )),
    }
}

/// The `scope` parameter, if any.
pub(crate) fn requested_scope(form: &Form) -> Result<Option<Scope>, ApiError> {
    form.one("scope")?
        .map(Scope::parse)
        .transpose()
        .map_err(|e| ApiError::new(Reason::ScopeMalformed, e.to_string()))
}

/// Every `resource` and `audience` parameter.
pub(crate) fn requested_audiences(form: &Form) -> Result<Vec<Audience>, ApiError> {
    form.all("resource")
        .into_iter()
        .chain(form.all("audience"))
        .map(|a| {
            Audience::parse(a)
                .map_err(|e| ApiError::new(Reason::InvalidParameter, format!("audience/resource: {e}")))
        })
        .collect()
}

async fn client_credentials(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Response, ApiError> {
    let client = clients::authenticate(state, &require_client(headers, form)?).await?;
    crate::rate_limit::check_identity(state, &format!("client:{}", client.client_id)).await?;
    let request = ClientRequest {
        scope: requested_scope(form)?,
        audiences: requested_audiences(form)?,
    };
    let limits = state.grant_limits()?;
    let actor = format!("client:{}", client.client_id);
    let grant = match client_grant::decide(&clients::policy(&client)?, &request, &limits) {
        Ok(g) => g,
        Err(denial) => {
            crate::audit::record(
                state,
                &actor,
                "token.issue",
                None,
                Some(denial.reason),
                json!({"grant_type": "client_credentials"}),
            )
            .await?;
            return Err(ApiError::new(denial.reason, denial.message));
        }
    };
    let issued = tokens::issue(state, tokens::Subject::client(&client), &grant)?;
    crate::audit::record(
        state,
        &actor,
        "token.issue",
        Some(&issued.claims.jti),
        None,
        json!({"kind": "access", "grant_type": "client_credentials", "aud": issued.claims.aud, "scope": issued.claims.scope, "exp": issued.claims.exp}),
    )
    .await?;
    let body = TokenResponse {
        access_token: issued.token,
        token_type: "Bearer".to_owned(),
        expires_in: grant.ttl.as_secs(),
        scope: (!grant.scope.is_empty()).then(|| grant.scope.to_string()),
        refresh_token: None,
        issued_token_type: None,
    };
    Ok(no_store(Json(body)))
}

/// Who calls introspection or revocation.
enum Caller {
    Client(ClientRecord),
    Admin(String),
}

impl Caller {
    fn actor(&self) -> String {
        match self {
            Caller::Client(c) => format!("client:{}", c.client_id),
            Caller::Admin(id) => format!("admin:{id}"),
        }
    }
}

async fn caller(state: &AppState, headers: &HeaderMap, form: &Form) -> Result<Caller, ApiError> {
    if presented_client(headers, form)?.is_none()
        && let Some(token) = bearer_token(headers)
    {
        return match crate::admin_tokens::authenticate(state, token).await? {
            Some(id) => Ok(Caller::Admin(id)),
            None => Err(ApiError::new(Reason::AdminAuthFailed, "unknown admin token")),
        };
    }
    Ok(Caller::Client(
        clients::authenticate(state, &require_client(headers, form)?).await?,
    ))
}

/// Introspect a token (RFC 7662). Any problem with the token answers `{"active": false}`.
#[utoipa::path(
    post, path = "/oauth/introspect", tag = "oauth",
    security(("client" = []), ("admin" = [])),
    request_body(content = TokenTypeHintRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Token state", body = IntrospectionResponse),
        (status = 401, description = "Caller not authenticated", body = ErrorBody),
    )
)]
pub async fn introspect(State(state): State<AppState>, req: FormRequest) -> Result<Response, ApiError> {
    caller(&state, &req.headers, &req.form).await?;
    let token = req.form.required("token")?;
    req.form.one("token_type_hint")?;
    let body = match tokens::verify_live(&state, token).await? {
        Ok(c) => IntrospectionResponse {
            active: true,
            scope: (!c.scope.is_empty()).then_some(c.scope),
            client_id: Some(c.client_id),
            sub: Some(c.sub),
            aud: Some(c.aud),
            iss: Some(c.iss),
            exp: Some(c.exp.0),
            iat: Some(c.iat.0),
            nbf: Some(c.nbf.0),
            jti: Some(c.jti),
            token_type: Some("Bearer".to_owned()),
        },
        Err(rejected) => {
            tracing::debug!(reason = %rejected.reason, "introspection: inactive token");
            IntrospectionResponse::default()
        }
    };
    Ok(no_store(Json(body)))
}

/// Revoke a token (RFC 7009). Unknown, invalid and expired tokens also answer 200.
#[utoipa::path(
    post, path = "/oauth/revoke", tag = "oauth",
    security(("client" = []), ("admin" = [])),
    request_body(content = TokenTypeHintRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "Token belongs to another client", body = ErrorBody),
        (status = 401, description = "Caller not authenticated", body = ErrorBody),
    )
)]
pub async fn revoke(State(state): State<AppState>, req: FormRequest) -> Result<Response, ApiError> {
    // Public clients (a CLI signed in by device flow, a browser) have no credentials: a
    // refresh token of theirs is revoked on its own say-so (RFC 7009 §2.1 asks credentials of
    // confidential clients only).
    let anonymous =
        presented_client(&req.headers, &req.form)?.is_none() && bearer_token(&req.headers).is_none();
    if anonymous
        && let Some(token) = req.form.one("token")?
        && token.starts_with(tollgate_core::secret_token::SecretKind::RefreshToken.prefix())
    {
        req.form.one("token_type_hint")?;
        crate::sessions::revoke_public_by_token(&state, token).await?;
        return Ok(no_store(()));
    }
    let caller = caller(&state, &req.headers, &req.form).await?;
    let token = req.form.required("token")?;
    req.form.one("token_type_hint")?;
    // A refresh token ends its whole session; holding it is proof enough to end it.
    if token.starts_with(tollgate_core::secret_token::SecretKind::RefreshToken.prefix()) {
        let caller_client = match &caller {
            Caller::Client(c) => Some(c.client_id.as_str()),
            Caller::Admin(_) => None,
        };
        crate::sessions::revoke_by_token(&state, token, &caller.actor(), caller_client).await?;
        return Ok(no_store(()));
    }
    // RFC 7009 §2.2: invalid tokens do not cause an error; there is nothing to revoke.
    let Ok(claims) = tokens::verify(&state, token) else {
        return Ok(no_store(()));
    };
    if let Caller::Client(c) = &caller
        && c.client_id != claims.client_id
    {
        crate::audit::record(
            &state,
            &caller.actor(),
            "token.revoke",
            Some(&claims.jti),
            Some(Reason::TokenNotOwned),
            json!({}),
        )
        .await?;
        return Err(ApiError::new(
            Reason::TokenNotOwned,
            "only the client a token was issued to may revoke it",
        ));
    }
    state
        .store
        .revoke_jti(&claims.jti, claims.exp.0, state.clock.now().0)
        .await?;
    crate::audit::record(
        &state,
        &caller.actor(),
        "token.revoke",
        Some(&claims.jti),
        None,
        json!({"client_id": claims.client_id}),
    )
    .await?;
    Ok(no_store(()))
}
