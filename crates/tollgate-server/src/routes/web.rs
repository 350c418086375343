//! tollgate's pages for people in a browser: sign-in (`/login`, its callback, `/logout`)
//! and the device verification page (RFC 8628 §3.3) where a signed-in user enters the
//! code a device shows, sees which client asks for what, and approves or denies. Forms
//! carry the browser session's anti-forgery token (`crate::web_login`).

use crate::error::ApiError;
use crate::pages::{self, escape, urlencode};
use crate::routes::device::{self as device_api, Approver};
use crate::state::AppState;
use crate::web_login::{self, WebSession};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use serde::Deserialize;
use tollgate_core::Reason;
use tollgate_core::claims::UpstreamSubject;
use tollgate_core::device::{DeviceAuthorization, DeviceState};
use tollgate_proto::ErrorBody;
use tollgate_store::UserRecord;

fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    for c in cookies {
        if let Ok(v) = http::HeaderValue::from_str(c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LoginQuery {
    /// The path on this server to come back to after signing in (default: the device page).
    pub return_to: Option<String>,
}

/// Start a browser sign-in: redirects to the upstream issuer named by `web_login.issuer`
/// (authorization code flow with PKCE); the callback comes back to `/login/callback`.
#[utoipa::path(get, path = "/login", tag = "web", params(LoginQuery),
    responses((status = 303, description = "To the issuer's authorization endpoint"), (status = 404, content_type = "text/html", body = String), (status = 503, content_type = "text/html", body = String)))]
pub async fn login(
    State(state): State<AppState>,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let return_to = query.ok().and_then(|Query(q)| q.return_to);
    let result = web_login::begin(&state, return_to.as_deref()).await;
    pages::or_refusal(result.map(|(url, cookie)| redirect(&url, &[cookie])))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// An error the issuer reports instead of a code (RFC 6749 §4.1.2.1).
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The issuer sends the browser back here (RFC 6749 §4.1.2): the code is redeemed, the ID
/// token verified, and the browser signed in; then back to where the sign-in started.
#[utoipa::path(get, path = "/login/callback", tag = "web", params(CallbackQuery),
    responses((status = 303, description = "Signed in; back to the page that asked"), (status = 400, content_type = "text/html", body = String), (status = 401, content_type = "text/html", body = String), (status = 503, content_type = "text/html", body = String)))]
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let result = async {
        let Query(q) = query.map_err(|e| ApiError::new(Reason::MalformedRequest, e.body_text()))?;
        if let Some(error) = q.error {
            let mut what = format!("{error}: {}", q.error_description.unwrap_or_default());
            what.truncate(300);
            return Err(ApiError::new(
                Reason::LoginFailed,
                format!("the issuer refused the sign-in ({what})"),
            ));
        }
        let (Some(code), Some(state_param)) = (q.code, q.state) else {
            return Err(ApiError::new(
                Reason::MissingParameter,
                "the callback needs code and state (open it only from the issuer's redirect)",
            ));
        };
        let (to, cookies) = web_login::complete(&state, &headers, &code, &state_param).await?;
        Ok(redirect(&to, &cookies))
    }
    .await;
    pages::or_refusal(result)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LogoutForm {
    /// The page's anti-forgery token.
    pub csrf: Option<String>,
}

/// End the browser's sign-in to tollgate's pages (not the upstream's, nor API sessions).
#[utoipa::path(post, path = "/logout", tag = "web",
    request_body(content = LogoutForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, content_type = "text/html", body = String), (status = 400, content_type = "text/html", body = String), (status = 401, content_type = "text/html", body = String), (status = 403, content_type = "text/html", body = String)))]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let result = async {
        let Form(form) = form.map_err(|e| ApiError::new(Reason::MalformedRequest, e.body_text()))?;
        let session = web_login::required(&state, &headers).await?;
        web_login::check_csrf(&state, &session, &headers, form.csrf.as_deref())?;
        let cookie = web_login::end(&state, &session).await?;
        let mut page = pages::page(
            StatusCode::OK,
            "Signed out",
            "<p>This browser is signed out of tollgate.</p>",
        );
        if let Ok(v) = http::HeaderValue::from_str(&cookie) {
            page.headers_mut().append(header::SET_COOKIE, v);
        }
        Ok(page)
    }
    .await;
    pages::or_refusal(result)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DevicePageQuery {
    /// The code the device shows (from `verification_uri_complete`, or typed in).
    pub user_code: Option<String>,
}

/// The local user of the browser's sign-in (registered on first sight when registration is
/// open, as a token exchange would).
async fn user_of(state: &AppState, session: &WebSession) -> Result<UserRecord, ApiError> {
    crate::users::resolve_or_register(state, &session.identity).await
}

fn approver<'a>(user: &'a UserRecord, session: &WebSession) -> Approver<'a> {
    Approver {
        user,
        upstream: Some(UpstreamSubject::from(&session.identity)),
        default_org: None,
        own_scope: "",
        via_device_key: false,
    }
}

fn signed_in_as(session: &WebSession) -> String {
    format!(
        "<p><small>Signed in as {} ({}). <form method=\"post\" action=\"/logout\" style=\"display:inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" id=\"sign-out\">Sign out</button></form></small></p>",
        escape(
            session
                .identity
                .email
                .as_deref()
                .unwrap_or(&session.identity.subject)
        ),
        escape(&session.identity.issuer_name),
        escape(&session.csrf),
    )
}

fn code_form(path: &str) -> String {
    format!(
        "<form method=\"get\" action=\"{}\"><label for=\"user_code\">Code shown by the device</label><br>\
         <input id=\"user_code\" name=\"user_code\" autocomplete=\"off\" autocapitalize=\"characters\" \
         placeholder=\"BCDF-GHJK\" required> <button type=\"submit\" id=\"continue\">Continue</button></form>",
        escape(path)
    )
}

/// What the device asks for, in words.
fn describe(auth: &DeviceAuthorization) -> String {
    format!(
        "<dl><dt>Client</dt><dd id=\"client\">{client}</dd><dt>Scope</dt><dd id=\"scope\">{scope}</dd>\
         <dt>Audience</dt><dd id=\"audience\">{aud}</dd><dt>Code valid until</dt><dd>{until}</dd></dl>",
        client = escape(&auth.client_id),
        scope = escape(auth.scope.as_deref().unwrap_or("(what your sign-in allows)")),
        aud = escape(auth.audience.as_deref().unwrap_or("tollgate's API")),
        until = escape(&crate::rfc3339(auth.expires_at.0)),
    )
}

/// The device verification page (`device.verification_path`, `/device` by default): asks
/// for the code (or takes it from `verification_uri_complete`), shows which client asks for
/// which scope and audience, and offers approve and deny to the signed-in user. Without a
/// browser sign-in it links to `/login` and back.
#[utoipa::path(get, path = "/device", tag = "web", params(DevicePageQuery),
    responses((status = 200, content_type = "text/html", body = String), (status = 400, content_type = "text/html", body = String), (status = 403, content_type = "text/html", body = String), (status = 404, content_type = "text/html", body = String), (status = 503, body = ErrorBody)))]
pub async fn device_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<DevicePageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let code = query
        .ok()
        .and_then(|Query(q)| q.user_code)
        .filter(|c| !c.trim().is_empty());
    pages::or_refusal(device_page_inner(&state, &headers, code.as_deref()).await)
}

async fn device_page_inner(
    state: &AppState,
    headers: &HeaderMap,
    code: Option<&str>,
) -> Result<Response, ApiError> {
    let path = &state.config.device.verification_path;
    let Some(session) = web_login::current(state, headers).await? else {
        if !web_login::enabled(state) {
            return Err(ApiError::new(
                Reason::WebLoginDisabled,
                "approve the device with `POST /v1/device/approve` and a token for tollgate's API \
                 (browser sign-in is not configured here)",
            ));
        }
        let here = match code {
            Some(c) => format!("{path}?user_code={}", urlencode(c)),
            None => path.clone(),
        };
        let body = format!(
            "<p>A device asks to act as you. <a id=\"sign-in\" href=\"/login?return_to={}\">Sign in</a> to see what it asks for and approve or deny it.</p>",
            escape(&urlencode(&here))
        );
        return Ok(pages::page(StatusCode::OK, "Sign in to continue", &body));
    };
    let user = user_of(state, &session).await?;
    let Some(code) = code else {
        let body = format!("{}{}", code_form(path), signed_in_as(&session));
        return Ok(pages::page(StatusCode::OK, "Connect a device", &body));
    };
    let code = device_api::user_code(code)?;
    let loaded = device_api::load(state, &code).await?;
    let auth = &loaded.auth;
    let now = state.clock.now();
    let mut body = describe(auth);
    let title = match auth.state {
        _ if auth.state == DeviceState::Pending && auth.expired(now) => {
            body.push_str("<p>This code has expired. Start again on the device.</p>");
            "Code expired"
        }
        DeviceState::Pending => {
            body.insert_str(
                0,
                &format!(
                    "<p>A device showing <strong id=\"code\">{}</strong> asks for access as you. \
                     Approve only if you started this on a device you trust.</p>",
                    escape(&code)
                ),
            );
            body.push_str(&decision_form(state, &user, &session, &code).await?);
            "Approve this device?"
        }
        DeviceState::Approved | DeviceState::Consumed => {
            body.push_str("<p>This device has been approved already.</p>");
            "Device approved"
        }
        DeviceState::Denied => {
            body.push_str("<p>This device has been denied.</p>");
            "Device denied"
        }
    };
    body.push_str(&signed_in_as(&session));
    Ok(pages::page(StatusCode::OK, title, &body))
}

/// Approve and deny buttons, with a choice of the user's orgs for the device to act in.
async fn decision_form(
    state: &AppState,
    user: &UserRecord,
    session: &WebSession,
    code: &str,
) -> Result<String, ApiError> {
    let mut orgs = Vec::new();
    for m in state.store.memberships_of(&user.id).await? {
        if let Some(org) = state.store.find_org(&m.org_id).await? {
            orgs.push(org.name);
        }
    }
    orgs.sort();
    let mut options = String::from("<option value=\"\">no org</option>");
    for (i, name) in orgs.iter().enumerate() {
        let selected = if i == 0 { " selected" } else { "" };
        options.push_str(&format!(
            "<option value=\"{0}\"{selected}>{0}</option>",
            escape(name)
        ));
    }
    Ok(format!(
        "<form method=\"post\" action=\"{path}\">\
         <input type=\"hidden\" name=\"user_code\" value=\"{code}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <p><label for=\"org\">Act in org</label> <select id=\"org\" name=\"org\">{options}</select></p>\
         <button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">Approve</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form>",
        path = escape(&state.config.device.verification_path),
        code = escape(code),
        csrf = escape(&session.csrf),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DecisionForm {
    pub user_code: String,
    /// `approve` or `deny`.
    pub decision: String,
    /// The org the device acts in (approve only); empty for none.
    pub org: Option<String>,
    /// The page's anti-forgery token.
    pub csrf: Option<String>,
}

/// The verification page's decision: approve or deny the device as the signed-in user (the
/// same rules and audit as `POST /v1/device/approve` and `/deny`).
#[utoipa::path(post, path = "/device", tag = "web",
    request_body(content = DecisionForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, content_type = "text/html", body = String), (status = 400, content_type = "text/html", body = String), (status = 401, content_type = "text/html", body = String), (status = 403, content_type = "text/html", body = String), (status = 404, content_type = "text/html", body = String), (status = 409, content_type = "text/html", body = String), (status = 503, body = ErrorBody)))]
pub async fn device_decision(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let result = async {
        let Form(form) = form.map_err(|e| ApiError::new(Reason::MalformedRequest, e.body_text()))?;
        let session = web_login::required(&state, &headers).await?;
        web_login::check_csrf(&state, &session, &headers, form.csrf.as_deref())?;
        let user = user_of(&state, &session).await?;
        let code = device_api::user_code(&form.user_code)?;
        let (title, text, auth) = match form.decision.as_str() {
            "approve" => {
                let org = form.org.as_deref().filter(|o| !o.is_empty());
                let auth = device_api::approve_as(&state, &approver(&user, &session), &code, org).await?;
                (
                    "Device approved",
                    "The device now gets its tokens. You can close this page.",
                    auth,
                )
            }
            "deny" => {
                let auth = device_api::deny_as(&state, &user.id, &code).await?;
                (
                    "Device denied",
                    "The device has been refused. You can close this page.",
                    auth,
                )
            }
            other => {
                return Err(ApiError::new(
                    Reason::InvalidParameter,
                    format!("decision must be approve or deny, not `{other}`"),
                ));
            }
        };
        let body = format!(
            "<p id=\"result\">{}</p>{}{}",
            escape(text),
            describe(&auth),
            signed_in_as(&session)
        );
        Ok(pages::page(StatusCode::OK, title, &body))
    }
    .await;
    pages::or_refusal(result)
}
