//! Browser sign-in to tollgate's own pages (the device verification page, invite
//! acceptance): tollgate is an OpenID Connect relying party of the one upstream issuer named
//! by `web_login.issuer`, with the authorization code flow and PKCE (RFC 7636, `S256`).
//!
//! - `begin` stores a login attempt (PKCE verifier, nonce, where to return) under a keyed
//!   hash of a random `state`, sets that `state` as a cookie, and sends the browser to the
//!   issuer. The cookie binds the callback to the browser that started it (no login CSRF).
//! - `complete` takes the attempt once, redeems the code at the issuer's token endpoint,
//!   verifies the ID token with the same verifier as token exchange (signature, `iss`,
//!   `aud` = our client id, expiry) and its `nonce`, and starts a browser session.
//! - A browser session is a short-lived document keyed by the hash of the session cookie;
//!   it holds the verified upstream identity (not a local user: an invitee has none yet)
//!   and the session's anti-forgery token, which every form posts back.
//!
//! Cookies are `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` when `public_url` is
//! https. Documents live in the ephemeral store, so every replica sees them.

use crate::config::WebLoginConfig;
use crate::documents;
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;
use tollgate_core::Reason;
use tollgate_core::upstream::{IssuerKind, NoTrace, UpstreamIdentity};

const ATTEMPT_KIND: &str = "web_login";
const SESSION_KIND: &str = "web_session";
/// How long a browser may take at the issuer before the callback.
const ATTEMPT_TTL_SECS: i64 = 600;
/// Discovery documents are fetched again after this long.
const DISCOVERY_TTL_SECS: i64 = 3600;
pub const SESSION_COOKIE: &str = "tg_session";
const STATE_COOKIE: &str = "tg_login";

/// The issuer's endpoints, from its discovery document.
#[derive(Debug, Clone, Deserialize)]
struct Endpoints {
    authorization_endpoint: String,
    token_endpoint: String,
}

/// The relying party: an HTTP client and the cached discovery document.
#[derive(Debug)]
pub struct WebLogin {
    http: reqwest::Client,
    /// (issuer URL, endpoints, fetched at): refetched when stale or the issuer changed.
    endpoints: Mutex<Option<(String, Endpoints, i64)>>,
}

impl WebLogin {
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            endpoints: Mutex::new(None),
        })
    }
}

/// A sign-in in progress, between `begin` and the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attempt {
    verifier: String,
    nonce: String,
    return_to: String,
    used: bool,
}

/// A browser signed in to tollgate's pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebSession {
    /// The document id (keyed hash of the cookie), to end the session.
    #[serde(skip)]
    id: String,
    /// The verified upstream identity the browser signed in as.
    pub identity: UpstreamIdentity,
    /// The anti-forgery token forms carry.
    pub csrf: String,
    pub expires_at: i64,
    ended: bool,
}

fn config(state: &AppState) -> Result<&WebLoginConfig, ApiError> {
    let c = &state.config.web_login;
    if c.issuer.is_empty() {
        return Err(ApiError::new(
            Reason::WebLoginDisabled,
            "browser sign-in is not configured on this server (web_login.issuer)",
        ));
    }
    Ok(c)
}

/// Whether browser sign-in is configured.
#[must_use]
pub fn enabled(state: &AppState) -> bool {
    !state.config.web_login.issuer.is_empty()
}

/// The issuer URL of the configured, enabled issuer of users.
fn issuer_url(state: &AppState, name: &str) -> Result<String, ApiError> {
    let view = state.upstream.registry().current();
    view.set
        .iter()
        .find(|i| i.name == name && i.enabled && i.kind == IssuerKind::Users)
        .map(|i| i.issuer.clone())
        .ok_or_else(|| {
            ApiError::new(
                Reason::WebLoginDisabled,
                format!("web_login.issuer `{name}` is not an enabled issuer of users here"),
            )
        })
}

fn random_token() -> String {
    let mut buf = [0u8; 32];
    tollgate_crypto::random_bytes(&mut buf);
    base64_url(&buf)
}

fn base64_url(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// The document id for a secret cookie value (current server-secret version).
fn doc_id(state: &AppState, secret: &str) -> String {
    let (version, hash) = state.hashing.hasher().hash(secret);
    documents::keyed_id(version, &hash)
}

/// Every document id the secret may be stored under (across server-secret rotations).
fn doc_ids(state: &AppState, secret: &str) -> Vec<String> {
    state
        .hashing
        .hasher()
        .all_hashes(secret)
        .map(|(v, h)| documents::keyed_id(v, &h))
        .collect()
}

/// A same-site path to return to: absolute path only, never another origin.
#[must_use]
pub fn safe_return_to(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= 1024
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/device".to_owned(),
    }
}

/// The value of cookie `name` in the request, if any.
#[must_use]
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
fn set_cookie(state: &AppState, name: &str, value: &str, path: &str, max_age: i64) -> String {
    let secure = if state.config.server.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

async fn endpoints(state: &AppState, issuer: &str) -> Result<Endpoints, ApiError> {
    let now = state.clock.now().0;
    {
        let cached = state
            .web_login
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((url, e, at)) = cached.as_ref()
            && url == issuer
            && now - at < DISCOVERY_TTL_SECS
        {
            return Ok(e.clone());
        }
    }
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let unavailable = |what: String| {
        tracing::warn!(issuer, "web login discovery failed: {what}");
        ApiError::new(
            Reason::IdpUnavailable,
            format!("the issuer's discovery document could not be read: {what}"),
        )
    };
    let response = state
        .web_login
        .http
        .get(&url)
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(unavailable(format!("{url} answered {}", response.status())));
    }
    let found: Endpoints = response
        .json()
        .await
        .map_err(|e| unavailable(format!("{url}: {e}")))?;
    *state
        .web_login
        .endpoints
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((issuer.to_owned(), found.clone(), now));
    Ok(found)
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}/login/callback", state.config.server.public_url)
}

/// Starts a sign-in: the issuer's authorization URL to send the browser to, and the
/// `Set-Cookie` binding the callback to this browser.
pub async fn begin(state: &AppState, return_to: Option<&str>) -> Result<(String, String), ApiError> {
    let c = config(state)?;
    let issuer = issuer_url(state, &c.issuer)?;
    let endpoints = endpoints(state, &issuer).await?;
    let state_param = random_token();
    let attempt = Attempt {
        verifier: random_token(),
        nonce: random_token(),
        return_to: safe_return_to(return_to),
        used: false,
    };
    let now = state.clock.now().0;
    documents::create(
        state,
        ATTEMPT_KIND,
        &doc_id(state, &state_param),
        &attempt,
        now + ATTEMPT_TTL_SECS,
    )
    .await?;
    let challenge = base64_url(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, attempt.verifier.as_bytes()).as_ref(),
    );
    let mut url = url::Url::parse(&endpoints.authorization_endpoint).map_err(|e| {
        ApiError::new(
            Reason::IdpUnavailable,
            format!("the issuer's authorization_endpoint is not a URL: {e}"),
        )
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &c.client_id)
        .append_pair("redirect_uri", &redirect_uri(state))
        .append_pair("scope", &c.scopes)
        .append_pair("state", &state_param)
        .append_pair("nonce", &attempt.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let cookie = set_cookie(state, STATE_COOKIE, &state_param, "/login", ATTEMPT_TTL_SECS);
    Ok((url.into(), cookie))
}

fn state_invalid(message: &str) -> ApiError {
    ApiError::new(Reason::LoginStateInvalid, message.to_owned())
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Finishes a sign-in at the callback: where to send the browser now, and the cookies to
/// set (the session, and the spent state cookie deleted).
pub async fn complete(
    state: &AppState,
    headers: &HeaderMap,
    code: &str,
    state_param: &str,
) -> Result<(String, Vec<String>), ApiError> {
    let c = config(state)?;
    if cookie(headers, STATE_COOKIE) != Some(state_param) {
        return Err(state_invalid(
            "this sign-in was not started in this browser (or its cookie expired); start again",
        ));
    }
    let id = doc_id(state, state_param);
    let loaded = documents::load::<Attempt>(state, ATTEMPT_KIND, &id)
        .await?
        .ok_or_else(|| state_invalid("this sign-in is unknown or expired; start again"))?;
    // Single use: of two callbacks with one state exactly one proceeds.
    let (attempt, ()) = documents::update(
        state,
        ATTEMPT_KIND,
        &id,
        loaded,
        || state_invalid("this sign-in expired; start again"),
        |a| {
            if a.used {
                return Err(state_invalid("this sign-in was completed already; start again"));
            }
            a.used = true;
            Ok(())
        },
    )
    .await?;
    let issuer = issuer_url(state, &c.issuer)?;
    let endpoints = endpoints(state, &issuer).await?;
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", redirect_uri(state)),
        ("client_id", c.client_id.clone()),
        ("code_verifier", attempt.verifier.clone()),
    ];
    if let Some(secret) = &c.client_secret {
        use secrecy::ExposeSecret as _;
        form.push(("client_secret", secret.expose_secret().to_owned()));
    }
    let response = state
        .web_login
        .http
        .post(&endpoints.token_endpoint)
        .form(&form)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(issuer, "web login token request failed: {e}");
            ApiError::new(
                Reason::IdpUnavailable,
                format!("the issuer's token endpoint could not be reached: {e}"),
            )
        })?;
    let status = response.status();
    if status.is_server_error() {
        return Err(ApiError::new(
            Reason::IdpUnavailable,
            format!("the issuer's token endpoint answered {status}"),
        ));
    }
    let answer: TokenAnswer = response.json().await.map_err(|e| {
        ApiError::new(
            Reason::LoginFailed,
            format!("the issuer's token endpoint answered {status} without a token response: {e}"),
        )
    })?;
    let id_token = match (answer.id_token, answer.error) {
        (Some(t), None) if status.is_success() => t,
        (_, error) => {
            let what = [error, answer.error_description]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
            let mut what = what.join(": ");
            what.truncate(300);
            return Err(ApiError::new(
                Reason::LoginFailed,
                format!("the issuer did not give an ID token ({status} {what})"),
            ));
        }
    };
    let verified = state
        .upstream
        .verify(&id_token, &mut NoTrace)
        .await
        .map_err(ApiError::refused_token)?;
    if verified.identity.issuer_name != c.issuer {
        return Err(ApiError::new(
            Reason::LoginFailed,
            "the ID token is from another issuer than web_login.issuer",
        ));
    }
    if verified.claims.get("nonce").and_then(|v| v.as_str()) != Some(attempt.nonce.as_str()) {
        return Err(ApiError::new(
            Reason::LoginFailed,
            "the ID token's nonce is not this sign-in's (a replayed or injected token)",
        ));
    }
    let secret = random_token();
    let ttl = i64::try_from(c.session_ttl.as_secs()).unwrap_or(3600);
    let now = state.clock.now().0;
    let session = WebSession {
        id: String::new(),
        identity: verified.identity,
        csrf: random_token(),
        expires_at: now + ttl,
        ended: false,
    };
    documents::create(state, SESSION_KIND, &doc_id(state, &secret), &session, now + ttl).await?;
    crate::audit::record(
        state,
        &format!(
            "upstream:{}:{}",
            session.identity.issuer_name, session.identity.subject
        ),
        "web.sign_in",
        None,
        None,
        serde_json::json!({"email": session.identity.email}),
    )
    .await?;
    let cookies = vec![
        set_cookie(state, SESSION_COOKIE, &secret, "/", ttl),
        set_cookie(state, STATE_COOKIE, "", "/login", 0),
    ];
    Ok((attempt.return_to, cookies))
}

/// The browser's session, if it has a live one.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<WebSession>, ApiError> {
    let Some(secret) = cookie(headers, SESSION_COOKIE).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let now = state.clock.now().0;
    for id in doc_ids(state, secret) {
        if let Some((_, mut s)) = documents::load::<WebSession>(state, SESSION_KIND, &id).await? {
            if s.ended || s.expires_at <= now {
                return Ok(None);
            }
            s.id = id;
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// The browser's session, or `not-signed-in`.
pub async fn required(state: &AppState, headers: &HeaderMap) -> Result<WebSession, ApiError> {
    current(state, headers)
        .await?
        .ok_or_else(|| ApiError::new(Reason::NotSignedIn, "sign in to tollgate in this browser first"))
}

/// Checks a posted form against the session: its anti-forgery token, and, when the
/// browser says where the form came from (`Origin`), that it is this server.
pub fn check_csrf(
    state: &AppState,
    session: &WebSession,
    headers: &HeaderMap,
    posted: Option<&str>,
) -> Result<(), ApiError> {
    let refuse = |m: &str| ApiError::new(Reason::CsrfInvalid, m.to_owned());
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        let public =
            url::Url::parse(&state.config.server.public_url).map(|u| u.origin().ascii_serialization());
        let ok = origin.to_str().ok().zip(public.ok()).is_some_and(|(o, p)| o == p);
        if !ok {
            return Err(refuse("the form was posted from another site"));
        }
    }
    let posted = posted.ok_or_else(|| refuse("the form carries no anti-forgery token"))?;
    let expected = session.csrf.as_bytes();
    if posted.len() != expected.len()
        || aws_lc_rs::constant_time::verify_slices_are_equal(posted.as_bytes(), expected).is_err()
    {
        return Err(refuse(
            "the form's anti-forgery token is not this sign-in's; reload the page",
        ));
    }
    Ok(())
}

/// Ends the browser's session; the `Set-Cookie` that deletes its cookie.
pub async fn end(state: &AppState, session: &WebSession) -> Result<String, ApiError> {
    if let Some(loaded) = documents::load::<WebSession>(state, SESSION_KIND, &session.id).await? {
        documents::update(
            state,
            SESSION_KIND,
            &session.id,
            loaded,
            || ApiError::new(Reason::NotSignedIn, "the session ended already"),
            |s| {
                s.ended = true;
                Ok(())
            },
        )
        .await?;
    }
    Ok(set_cookie(state, SESSION_COOKIE, "", "/", 0))
}
