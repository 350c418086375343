//! The Rust SDK for tollgate's HTTP API. The CLI and the integration tests use it, so it
//! covers every endpoint.

mod audit;
mod certs;
mod ci;
mod device;
mod invites;
mod keys;
mod orgs;
mod registry;
mod session;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tollgate_proto::ErrorBody;
use tollgate_proto::admin::{
    ClientInfo, ClientWithSecret, CreateClientRequest, CreateUserRequest, IdentityInfo, IssuerInfo, KeyInfo,
    RetireKeyRequest, RotateKeysRequest, RotateKeysResponse, SecretRotation, SessionInfo, UserInfo,
    VerifyRequest, VerifyResponse,
};
use tollgate_proto::discovery::ServerMetadata;
use tollgate_proto::oauth::{IntrospectionResponse, TokenResponse};
use tollgate_proto::ops::{AuthStatus, Health};

pub use device::DEVICE_CODE_GRANT;
pub use keys::{CLIENT_ASSERTION_TYPE, JWT_BEARER_GRANT};
pub use registry::registry_auth_yaml;
pub use session::{Persist, UserSession};
pub use tollgate_proto as proto;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached or the response could not be read.
    #[error("request to tollgate failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server refused with a documented reason.
    #[error("tollgate refused ({status}): {} [{}]", body.error_description, body.reason)]
    Refused {
        status: StatusCode,
        body: Box<ErrorBody>,
    },
    /// The server answered something that is not tollgate's error shape.
    #[error("unexpected response ({status}): {text}")]
    Unexpected { status: StatusCode, text: String },
    /// The call needs an admin token and none was configured.
    #[error("no admin token configured; set TOLLGATE_ADMIN_TOKEN")]
    NoAdminToken,
    /// The call needs a user access token and none was set.
    #[error("no user token set; see Client::with_user_token")]
    NoUserToken,
}

impl Error {
    /// The reason code of a refusal.
    #[must_use]
    pub fn reason(&self) -> Option<&str> {
        match self {
            Error::Refused { body, .. } => Some(&body.reason),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Client credentials of a service account.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// The token type URN of JWTs (RFC 8693 §3).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A token exchange request (RFC 8693).
#[derive(Debug, Clone, Copy)]
pub struct TokenExchange<'a> {
    pub subject_token: &'a str,
    /// Usually [`JWT_TOKEN_TYPE`].
    pub subject_token_type: &'a str,
    pub actor_token: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub audience: Option<&'a str>,
    /// The org the token should act in (id or name); by default the upstream token's org
    /// claim or the user's only membership decides.
    pub org: Option<&'a str>,
    /// Authenticate as this client; exchanges may also be made without.
    pub client: Option<&'a ClientCredentials>,
}

impl<'a> TokenExchange<'a> {
    /// Exchange `subject_token` (a JWT) with no other parameters.
    #[must_use]
    pub fn jwt(subject_token: &'a str) -> Self {
        Self {
            subject_token,
            subject_token_type: JWT_TOKEN_TYPE,
            actor_token: None,
            scope: None,
            audience: None,
            org: None,
            client: None,
        }
    }
}

/// What to do to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAction {
    /// Refuse every token issued to the user so far.
    LogoutEverywhere,
    Disable,
    Enable,
}

/// A JWKS fetch result with its caching headers.
#[derive(Debug, Clone)]
pub struct JwksResponse {
    /// `None` on 304 Not Modified.
    pub jwks: Option<serde_json::Value>,
    pub etag: Option<String>,
    pub cache_control: Option<String>,
}

/// A tollgate server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    admin_token: Option<SecretString>,
    /// A user access token for `/v1/me` and `/v1/orgs/…`; preferred over the admin token there.
    user_token: Option<SecretString>,
}

fn form_encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

async fn decode<T: DeserializeOwned>(resp: Response) -> Result<T> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp.json().await?);
    }
    Err(refusal(status, resp).await)
}

async fn refusal(status: StatusCode, resp: Response) -> Error {
    let text = resp.text().await.unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => Error::Refused {
            status,
            body: Box::new(body),
        },
        Err(_) => Error::Unexpected { status, text },
    }
}

async fn expect_empty(resp: Response) -> Result<()> {
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(refusal(status, resp).await)
    }
}

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base_url: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("tollgate-client/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            admin_token: None,
            user_token: None,
        })
    }

    /// Uses `token` for admin calls.
    #[must_use]
    pub fn with_admin_token(mut self, token: SecretString) -> Self {
        self.admin_token = Some(token);
        self
    }

    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn admin(&self, req: RequestBuilder) -> Result<RequestBuilder> {
        let token = self.admin_token.as_ref().ok_or(Error::NoAdminToken)?;
        Ok(req.bearer_auth(token.expose_secret()))
    }

    fn basic(req: RequestBuilder, creds: &ClientCredentials) -> RequestBuilder {
        // RFC 6749 §2.3.1: form-encode id and secret before Basic encoding.
        req.basic_auth(
            form_encode(&creds.client_id),
            Some(form_encode(creds.client_secret.expose_secret())),
        )
    }

    // --- discovery and operations ---

    /// `GET /.well-known/jwks.json`, optionally conditional on an ETag.
    pub async fn jwks(&self, if_none_match: Option<&str>) -> Result<JwksResponse> {
        let mut req = self.http.get(self.url("/.well-known/jwks.json"));
        if let Some(etag) = if_none_match {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let resp = req.send().await?;
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header(reqwest::header::ETAG);
        let cache_control = header(reqwest::header::CACHE_CONTROL);
        let jwks = match resp.status() {
            StatusCode::NOT_MODIFIED => None,
            s if s.is_success() => Some(resp.json().await?),
            s => return Err(refusal(s, resp).await),
        };
        Ok(JwksResponse {
            jwks,
            etag,
            cache_control,
        })
    }

    /// `GET /.well-known/oauth-authorization-server`.
    pub async fn metadata(&self) -> Result<ServerMetadata> {
        decode(
            self.http
                .get(self.url("/.well-known/oauth-authorization-server"))
                .send()
                .await?,
        )
        .await
    }

    /// `GET /readyz`.
    pub async fn ready(&self) -> Result<Health> {
        decode(self.http.get(self.url("/readyz")).send().await?).await
    }

    // --- OAuth ---

    /// `client_credentials` grant with HTTP Basic authentication. `audience` is sent as `resource`.
    pub async fn client_credentials(
        &self,
        creds: &ClientCredentials,
        scope: Option<&str>,
        audience: Option<&str>,
    ) -> Result<TokenResponse> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        if let Some(a) = audience {
            form.push(("resource", a));
        }
        let req = Self::basic(self.http.post(self.url("/oauth/token")), creds).form(&form);
        decode(req.send().await?).await
    }

    /// RFC 8693 token exchange of an upstream JWT, optionally as an authenticated client.
    pub async fn token_exchange(&self, request: &TokenExchange<'_>) -> Result<TokenResponse> {
        let mut form = vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", request.subject_token),
            ("subject_token_type", request.subject_token_type),
        ];
        if let Some(actor) = request.actor_token {
            form.push(("actor_token", actor));
            form.push(("actor_token_type", JWT_TOKEN_TYPE));
        }
        if let Some(s) = request.scope {
            form.push(("scope", s));
        }
        if let Some(a) = request.audience {
            form.push(("audience", a));
        }
        if let Some(o) = request.org {
            form.push(("org", o));
        }
        let mut req = self.http.post(self.url("/oauth/token"));
        if let Some(creds) = request.client {
            req = Self::basic(req, creds);
        }
        decode(req.form(&form).send().await?).await
    }

    /// `grant_type=refresh_token`: spends `refresh_token` for a new access token and a new
    /// refresh token. Sessions started by an authenticated client need that client.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: Option<&ClientCredentials>,
        scope: Option<&str>,
    ) -> Result<TokenResponse> {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let mut req = self.http.post(self.url("/oauth/token"));
        if let Some(c) = client {
            req = Self::basic(req, c);
        }
        decode(req.form(&form).send().await?).await
    }

    /// RFC 7662 introspection, authenticated as `creds`.
    pub async fn introspect(&self, creds: &ClientCredentials, token: &str) -> Result<IntrospectionResponse> {
        let req = Self::basic(self.http.post(self.url("/oauth/introspect")), creds).form(&[("token", token)]);
        decode(req.send().await?).await
    }

    /// RFC 7009 revocation, authenticated as `creds`.
    /// RFC 7009 revocation of a public client's refresh token (a device-flow sign-in): no
    /// client credentials; it ends the token's session.
    pub async fn revoke_refresh_token(&self, refresh_token: &str) -> Result<()> {
        let req = self
            .http
            .post(self.url("/oauth/revoke"))
            .form(&[("token", refresh_token), ("token_type_hint", "refresh_token")]);
        expect_empty(req.send().await?).await
    }

    pub async fn revoke(&self, creds: &ClientCredentials, token: &str) -> Result<()> {
        let req = Self::basic(self.http.post(self.url("/oauth/revoke")), creds)
            .form(&[("token", token), ("token_type_hint", "access_token")]);
        expect_empty(req.send().await?).await
    }

    /// `GET /auth/status` with `token` as bearer.
    pub async fn auth_status(&self, token: &str) -> Result<AuthStatus> {
        decode(
            self.http
                .get(self.url("/auth/status"))
                .bearer_auth(token)
                .send()
                .await?,
        )
        .await
    }

    // --- admin ---

    pub async fn create_client(&self, req: &CreateClientRequest) -> Result<ClientWithSecret> {
        decode(
            self.admin(self.http.post(self.url("/v1/admin/clients")))?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    pub async fn list_clients(&self) -> Result<Vec<ClientInfo>> {
        decode(
            self.admin(self.http.get(self.url("/v1/admin/clients")))?
                .send()
                .await?,
        )
        .await
    }

    pub async fn get_client(&self, client_id: &str) -> Result<ClientInfo> {
        let url = self.url(&format!("/v1/admin/clients/{}", form_encode(client_id)));
        decode(self.admin(self.http.get(url))?.send().await?).await
    }

    pub async fn delete_client(&self, client_id: &str) -> Result<()> {
        let url = self.url(&format!("/v1/admin/clients/{}", form_encode(client_id)));
        expect_empty(self.admin(self.http.delete(url))?.send().await?).await
    }

    pub async fn rotate_client_secret(&self, client_id: &str) -> Result<ClientWithSecret> {
        let url = self.url(&format!("/v1/admin/clients/{}/secret", form_encode(client_id)));
        decode(self.admin(self.http.post(url))?.send().await?).await
    }

    pub async fn set_client_enabled(&self, client_id: &str, enabled: bool) -> Result<ClientInfo> {
        let action = if enabled { "enable" } else { "disable" };
        let url = self.url(&format!("/v1/admin/clients/{}/{action}", form_encode(client_id)));
        decode(self.admin(self.http.post(url))?.send().await?).await
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        decode(
            self.admin(self.http.get(self.url("/v1/admin/keys")))?
                .send()
                .await?,
        )
        .await
    }

    pub async fn rotate_keys(&self, req: &RotateKeysRequest) -> Result<RotateKeysResponse> {
        decode(
            self.admin(self.http.post(self.url("/v1/admin/keys/rotate")))?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    pub async fn retire_key(&self, kid: &str, req: &RetireKeyRequest) -> Result<()> {
        let url = self.url(&format!("/v1/admin/keys/{}/retire", form_encode(kid)));
        expect_empty(self.admin(self.http.post(url))?.json(req).send().await?).await
    }

    pub async fn rotate_secrets(&self) -> Result<SecretRotation> {
        decode(
            self.admin(self.http.post(self.url("/v1/admin/secrets/rotate")))?
                .send()
                .await?,
        )
        .await
    }

    /// `GET /v1/admin/users`.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>> {
        decode(
            self.admin(self.http.get(self.url("/v1/admin/users")))?
                .send()
                .await?,
        )
        .await
    }

    /// `POST /v1/admin/users`: a user created ahead of their first sign-in.
    pub async fn create_user(&self, req: &CreateUserRequest) -> Result<UserInfo> {
        decode(
            self.admin(self.http.post(self.url("/v1/admin/users")))?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    /// `GET /v1/admin/users/{id}`.
    pub async fn get_user(&self, id: &str) -> Result<UserInfo> {
        let url = self.url(&format!("/v1/admin/users/{}", form_encode(id)));
        decode(self.admin(self.http.get(url))?.send().await?).await
    }

    /// `POST /v1/admin/users/{id}/identities`.
    pub async fn link_identity(&self, id: &str, identity: &IdentityInfo) -> Result<UserInfo> {
        let url = self.url(&format!("/v1/admin/users/{}/identities", form_encode(id)));
        decode(self.admin(self.http.post(url))?.json(identity).send().await?).await
    }

    /// `POST /v1/admin/users/{id}/{logout|disable|enable}`.
    pub async fn user_action(&self, id: &str, action: UserAction) -> Result<UserInfo> {
        let action = match action {
            UserAction::LogoutEverywhere => "logout",
            UserAction::Disable => "disable",
            UserAction::Enable => "enable",
        };
        let url = self.url(&format!("/v1/admin/users/{}/{action}", form_encode(id)));
        decode(self.admin(self.http.post(url))?.send().await?).await
    }

    /// `GET /v1/admin/users/{id}/sessions`.
    pub async fn user_sessions(&self, id: &str) -> Result<Vec<SessionInfo>> {
        let url = self.url(&format!("/v1/admin/users/{}/sessions", form_encode(id)));
        decode(self.admin(self.http.get(url))?.send().await?).await
    }

    /// `POST /v1/admin/sessions/{id}/revoke`.
    pub async fn revoke_session(&self, id: &str) -> Result<()> {
        let url = self.url(&format!("/v1/admin/sessions/{}/revoke", form_encode(id)));
        expect_empty(self.admin(self.http.post(url))?.send().await?).await
    }

    /// `GET /v1/issuers`.
    pub async fn list_issuers(&self) -> Result<Vec<IssuerInfo>> {
        decode(self.admin(self.http.get(self.url("/v1/issuers")))?.send().await?).await
    }

    /// `POST /v1/issuers` with an issuer specification (as in the config file, as JSON).
    pub async fn create_issuer(&self, spec: &serde_json::Value) -> Result<IssuerInfo> {
        decode(
            self.admin(self.http.post(self.url("/v1/issuers")))?
                .json(spec)
                .send()
                .await?,
        )
        .await
    }

    /// `PUT /v1/issuers/{name}`.
    pub async fn update_issuer(&self, name: &str, spec: &serde_json::Value) -> Result<IssuerInfo> {
        let url = self.url(&format!("/v1/issuers/{}", form_encode(name)));
        decode(self.admin(self.http.put(url))?.json(spec).send().await?).await
    }

    /// `DELETE /v1/issuers/{name}`.
    pub async fn delete_issuer(&self, name: &str) -> Result<()> {
        let url = self.url(&format!("/v1/issuers/{}", form_encode(name)));
        expect_empty(self.admin(self.http.delete(url))?.send().await?).await
    }

    /// `POST /v1/verify`: the step-by-step verdict on an upstream token.
    pub async fn verify_token(&self, token: &str) -> Result<VerifyResponse> {
        let body = VerifyRequest {
            token: token.to_owned(),
        };
        decode(
            self.admin(self.http.post(self.url("/v1/verify")))?
                .json(&body)
                .send()
                .await?,
        )
        .await
    }
}
