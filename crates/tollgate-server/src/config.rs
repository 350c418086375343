//! Configuration: one TOML file plus `TOLLGATE_*` environment overrides.
//!
//! The documented example (`config.example.toml`, printed by `tollgate config example`) is
//! also the list of known keys: environment variables are mapped onto it, and every key
//! it shows must deserialize (a test checks). Unknown keys are errors naming the key.

use crate::upstream::jwks_cache::CacheSettings;
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tollgate_core::SigningAlg;
use tollgate_core::upstream::IssuerSpec;
use tollgate_core::upstream::issuer::IssuerSet;

/// The full, commented example configuration with every default.
pub const EXAMPLE: &str = include_str!("config.example.toml");

/// Environment variables read by the CLI rather than the server; allowed alongside config.
const CLIENT_ENV: &[&str] = &[
    "TOLLGATE_TOKEN_FILE",
    "TOLLGATE_TOKEN_PASSPHRASE",
    "TOLLGATE_URL",
    "TOLLGATE_ADMIN_TOKEN",
    "TOLLGATE_CONFIG",
    "TOLLGATE_LOG",
    "TOLLGATE_MASTER_KEY",
    "TOLLGATE_TOKEN",
    "TOLLGATE_RUNNER_SECRET",
    "TOLLGATE_ID_TOKEN",
    "TOLLGATE_CLIENT_ID",
    "TOLLGATE_CLIENT_SECRET",
];
/// Short forms for the most used keys.
const SHORT_ENV: &[(&str, &str, &str)] = &[
    ("TOLLGATE_LISTEN", "server", "listen"),
    ("TOLLGATE_PUBLIC_URL", "server", "public_url"),
    ("TOLLGATE_DATA_DIR", "server", "data_dir"),
    ("TOLLGATE_DATABASE_URL", "database", "url"),
    ("TOLLGATE_REDIS_URL", "redis", "url"),
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub tokens: TokensConfig,
    pub keys: KeysConfig,
    pub admin: AdminConfig,
    pub upstream: UpstreamConfig,
    pub users: UsersConfig,
    pub registry: RegistryConfig,
    pub redis: RedisConfig,
    pub rate_limits: RateLimitsConfig,
    pub ci: CiConfig,
    pub publish: PublishConfig,
    pub device: DeviceConfig,
    pub device_keys: DeviceKeysConfig,
    pub mail: MailConfig,
    pub invites: InvitesConfig,
    pub web_login: WebLoginConfig,
    pub certs: CertsConfig,
    pub gateway: GatewayConfig,
    /// Upstream issuers defined in the file (`[[issuers]]`); the admin API adds more.
    pub issuers: Vec<IssuerSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_url: String,
    pub data_dir: PathBuf,
    pub max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Proxies (CIDRs) whose `X-Forwarded-For` is believed for the client address.
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    /// Absolute lifetime of a user session (its refresh tokens).
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// A session unused this long ends.
    #[serde(with = "humantime_serde")]
    pub refresh_idle_ttl: Duration,
    pub signing_alg: SigningAlg,
    pub default_audience: String,
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    pub max_token_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    #[serde(with = "humantime_serde")]
    pub jwks_max_age: Duration,
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub rotate_after: Duration,
}

/// The container registry token server (`/v2/token`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// The registry's `service` name: the `aud` of registry tokens.
    pub service: String,
    /// The registry's host as clients address it (returned with pull credentials).
    pub host: String,
    /// `ES256` or `RS256`: what CNCF distribution verifies (it cannot verify EdDSA).
    pub signing_alg: SigningAlg,
    /// Lifetime of a registry token.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Lifetime of a pull credential from the internal endpoint.
    #[serde(with = "humantime_serde")]
    pub pull_credential_ttl: Duration,
    /// How the registry finds the signing key: `kid` (libtrust key id, matched against the
    /// certificates in its `rootcertbundle`) or `x5c` (a certificate of the key in the
    /// header, issued by the bundle's certificate of the same key).
    pub key_reference: KeyReference,
    /// Whether permission to push also grants pull.
    pub push_implies_pull: bool,
    /// Repository patterns (`public/*`) anyone may pull without credentials.
    pub anonymous_pull: Vec<String>,
    /// Which org a repository belongs to: the first pattern that matches names it
    /// (`{org}/*`: the first path component; `team-{org}/*`, `apps/{org}/*` …).
    pub repository_patterns: Vec<String>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            service: "registry".to_owned(),
            host: "127.0.0.1:5000".to_owned(),
            signing_alg: SigningAlg::ES256,
            token_ttl: Duration::from_secs(300),
            pull_credential_ttl: Duration::from_secs(3600),
            key_reference: KeyReference::Kid,
            push_implies_pull: true,
            anonymous_pull: Vec::new(),
            repository_patterns: vec![tollgate_core::registry::DEFAULT_REPOSITORY_PATTERN.to_owned()],
        }
    }
}

/// Redis for short-lived shared state (optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://…`; empty keeps that state in the database.
    pub url: String,
    pub prefix: String,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            prefix: "tollgate:".to_owned(),
            timeout: Duration::from_secs(2),
        }
    }
}

/// Rate limits (GCRA): per client IP and per identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    pub enabled: bool,
    pub per_ip: String,
    pub per_ip_burst: u32,
    pub per_identity: String,
    pub per_identity_burst: u32,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            per_ip: "600/min".to_owned(),
            per_ip_burst: 120,
            per_identity: "120/min".to_owned(),
            per_identity_burst: 30,
        }
    }
}

/// CI workloads: job tokens and build sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CiConfig {
    #[serde(with = "humantime_serde")]
    pub job_token_max_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub build_session_ttl: Duration,
    pub max_active_per_owner: u32,
}

impl Default for CiConfig {
    fn default() -> Self {
        Self {
            job_token_max_ttl: Duration::from_secs(3600),
            build_session_ttl: Duration::from_secs(2 * 3600),
            max_active_per_owner: 5,
        }
    }
}

/// The combined publish flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    pub audience: String,
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            audience: "tollgate:publish".to_owned(),
            session_ttl: Duration::from_secs(15 * 60),
            token_ttl: Duration::from_secs(5 * 60),
        }
    }
}

/// The device authorization grant (RFC 8628).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// Lifetime of a device code and its user code.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// The polling interval a device starts with (whole seconds).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Path of the page where users enter the code; `verification_uri` is
    /// `server.public_url` followed by it.
    pub verification_path: String,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            code_ttl: Duration::from_secs(10 * 60),
            interval: Duration::from_secs(5),
            verification_path: "/device".to_owned(),
        }
    }
}

/// Device keys: key enrollment with proof of possession and RFC 7523 assertions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceKeysConfig {
    /// Lifetime of a key-enrollment token (`tg_ket_…`) and its nonce.
    #[serde(with = "humantime_serde")]
    pub enrollment_ttl: Duration,
    /// Active (unrevoked) device keys one user may have.
    pub max_keys_per_user: u32,
    /// The longest an assertion may still be valid (`exp` − now) when presented, and the
    /// oldest its `iat` may be.
    #[serde(with = "humantime_serde")]
    pub assertion_max_age: Duration,
}

impl Default for DeviceKeysConfig {
    fn default() -> Self {
        Self {
            enrollment_ttl: Duration::from_secs(10 * 60),
            max_keys_per_user: 10,
            assertion_max_age: Duration::from_secs(5 * 60),
        }
    }
}

/// Outgoing email (invites).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `smtp://user:pass@host:587` (STARTTLS required; plain only for loopback hosts) or
    /// `smtps://user:pass@host:465` (implicit TLS). Empty: write `.eml` files to the outbox.
    pub smtp_url: String,
    /// The `From` of every message.
    pub sender: String,
    /// Where messages go without SMTP; empty = `<data_dir>/outbox`.
    pub outbox_dir: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp_url: String::new(),
            sender: "tollgate <tollgate@localhost>".to_owned(),
            outbox_dir: String::new(),
        }
    }
}

/// Invites of email addresses into orgs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvitesConfig {
    /// The longest (and default) lifetime of an invite.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for InvitesConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Browser sign-in to tollgate's own pages (the device verification page, invite
/// acceptance): tollgate is an OpenID Connect relying party of one upstream issuer
/// (authorization code flow with PKCE). Off while `issuer` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebLoginConfig {
    /// The name of a configured upstream issuer of users whose ID tokens sign users in.
    pub issuer: String,
    /// tollgate's client id at that issuer; the issuer must accept it as an audience.
    pub client_id: String,
    /// The client secret (`client_secret_post`); empty for a public client (PKCE only).
    pub client_secret: Option<SecretString>,
    /// Scopes asked of the issuer.
    pub scopes: String,
    /// How long a browser stays signed in to tollgate's pages.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl Default for WebLoginConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: None,
            scopes: "openid email profile".to_owned(),
            session_ttl: Duration::from_secs(3600),
        }
    }
}

/// Certificates from tollgate's own CA.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertsConfig {
    /// Serve `POST /v1/certificates/sign` and `GET /v1/ca/chain` (the CA is made on first use).
    pub enabled: bool,
    /// The CA's names: `<ca_name> Root CA` and `<ca_name> Issuing CA`.
    pub ca_name: String,
    /// Longest client certificate for a person's sign-in.
    #[serde(with = "humantime_serde")]
    pub developer_ttl: Duration,
    /// Longest client certificate for a CI job (never past its job token's expiry).
    #[serde(with = "humantime_serde")]
    pub ci_job_ttl: Duration,
    /// Longest server certificate.
    #[serde(with = "humantime_serde")]
    pub server_ttl: Duration,
    /// Certificates one identity may get per hour (0 = unlimited).
    pub issuance_rate_hourly: u32,
    /// Where certificates are signed: `internal` (tollgate's own CA) or `external`.
    pub ca: CaKind,
    /// The external CA's base URL (`POST <url>/sign`, `GET <url>/chain`).
    pub external_url: String,
    /// A bearer token for the external CA, if it needs one.
    pub external_token: Option<SecretString>,
    /// An existing CA to use instead of making one on the first start: the root and the
    /// issuing CA certificates (PEM) and the issuing CA's P-256 key (PKCS #8 PEM). Read once,
    /// when no CA is stored yet.
    pub import_root: String,
    pub import_issuing: String,
    pub import_issuing_key: String,
}

/// Which CA signs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaKind {
    #[default]
    Internal,
    External,
}

impl Default for CertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ca_name: "tollgate".to_owned(),
            developer_ttl: Duration::from_secs(90 * 60),
            ci_job_ttl: Duration::from_secs(120 * 60),
            server_ttl: Duration::from_secs(6 * 24 * 3600),
            issuance_rate_hourly: 60,
            ca: CaKind::Internal,
            external_url: String::new(),
            external_token: None,
            import_root: String::new(),
            import_issuing: String::new(),
            import_issuing_key: String::new(),
        }
    }
}

/// `POST /v1/gateway/authorize`: an Envoy HTTP ext_authz service deciding from the client
/// certificate Envoy forwards (`x-forwarded-client-cert`) and the route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    pub enabled: bool,
    /// The first route whose prefix matches the request's path decides; none: denied.
    pub routes: Vec<GatewayRoute>,
}

/// Who may call the paths under `prefix`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayRoute {
    /// A path prefix matched at segment boundaries (`/deploy` matches `/deploy/x`, not
    /// `/deployer`); `/` matches everything.
    pub prefix: String,
    /// Holder kinds allowed: `user`, `ci`, `service` (the certificate's OU).
    pub allow: Vec<String>,
    /// Orgs (by name, the certificate's O) allowed; empty = any.
    #[serde(default)]
    pub orgs: Vec<String>,
}

/// How a registry token names its key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyReference {
    /// `kid` in libtrust form.
    #[default]
    Kid,
    /// `x5c`: a certificate of the key, issued by the key's root certificate in the bundle.
    X5c,
}

/// Local users.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersConfig {
    pub registration_mode: RegistrationMode,
    /// The audience a user's access token must carry to call tollgate's own API
    /// (`/v1/me`, `/v1/orgs/…`): tokens minted for other services are not accepted there.
    pub api_audience: String,
}

impl Default for UsersConfig {
    fn default() -> Self {
        Self {
            registration_mode: RegistrationMode::default(),
            api_audience: "tollgate".to_owned(),
        }
    }
}

/// Whether a new upstream identity becomes a user on its first exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationMode {
    /// Any identity a trusted issuer vouches for becomes a user.
    #[default]
    Open,
    /// Only identities an administrator linked to a user beforehand.
    InviteOnly,
}

/// Verifying upstream tokens and caching upstream keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub max_token_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub jwks_min_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub jwks_max_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub jwks_default_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub jwks_refresh_ahead: Duration,
    #[serde(with = "humantime_serde")]
    pub unknown_kid_cooldown: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_after_error: Duration,
    #[serde(with = "humantime_serde")]
    pub stale_if_error: Duration,
    #[serde(with = "humantime_serde")]
    pub http_timeout: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        let c = CacheSettings::default();
        Self {
            max_token_bytes: 16 * 1024,
            jwks_min_ttl: c.min_ttl,
            jwks_max_ttl: c.max_ttl,
            jwks_default_ttl: c.default_ttl,
            jwks_refresh_ahead: c.refresh_ahead,
            unknown_kid_cooldown: c.unknown_kid_cooldown,
            retry_after_error: c.retry_after_error,
            stale_if_error: c.stale_if_error,
            http_timeout: c.http_timeout,
        }
    }
}

impl UpstreamConfig {
    /// The JWKS cache settings these values describe.
    #[must_use]
    pub fn cache_settings(&self) -> CacheSettings {
        CacheSettings {
            min_ttl: self.jwks_min_ttl,
            max_ttl: self.jwks_max_ttl,
            default_ttl: self.jwks_default_ttl,
            refresh_ahead: self.jwks_refresh_ahead,
            unknown_kid_cooldown: self.unknown_kid_cooldown,
            retry_after_error: self.retry_after_error,
            stale_if_error: self.stale_if_error,
            http_timeout: self.http_timeout,
            ..CacheSettings::default()
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub bootstrap_token: Option<SecretString>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from("./tollgate-data"),
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_idle_ttl: Duration::from_secs(7 * 24 * 3600),
            signing_alg: SigningAlg::EdDSA,
            default_audience: String::new(),
            leeway: Duration::from_secs(5),
            max_token_bytes: 8192,
        }
    }
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            jwks_max_age: Duration::from_secs(300),
            reload_interval: Duration::from_secs(10),
            rotate_after: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// A configuration problem, naming the file, key or variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("unknown environment variable {0}: not a config key (see `tollgate config example`)")]
    UnknownEnv(String),
}

fn invalid(origin: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.into(),
        message: message.into(),
    }
}

impl Config {
    /// Loads `path` (if any), applies environment overrides from `env`, and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (mut table, origin) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                let table: toml::Table = toml::from_str(&text)
                    .map_err(|e| invalid(format!(" in {}", p.display()), e.to_string()))?;
                (table, format!(" in {}", p.display()))
            }
            None => (toml::Table::new(), String::new()),
        };
        let overridden = apply_env(&mut table, env)?;
        let origin = if overridden.is_empty() {
            origin
        } else {
            format!("{origin} (with {})", overridden.join(", "))
        };
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(origin.clone(), e.message().to_owned()))?;
        config.validate().map_err(|m| invalid(origin, m))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let url = &self.server.public_url;
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with('/') {
            return Err(format!(
                "server.public_url must be an http(s) URL without a trailing slash, got `{url}`"
            ));
        }
        if self.tokens.access_ttl < Duration::from_secs(10)
            || self.tokens.access_ttl > Duration::from_secs(24 * 3600)
        {
            return Err("tokens.access_ttl must be between 10s and 24h".into());
        }
        if self.tokens.refresh_idle_ttl > self.tokens.refresh_ttl
            || self.tokens.refresh_idle_ttl < Duration::from_secs(60)
        {
            return Err("tokens.refresh_idle_ttl must be between 1m and tokens.refresh_ttl".into());
        }
        if self.tokens.max_token_bytes < 512 {
            return Err("tokens.max_token_bytes must be at least 512".into());
        }
        if !self.tokens.default_audience.is_empty() {
            tollgate_core::Audience::parse(&self.tokens.default_audience)
                .map_err(|e| format!("tokens.default_audience: {e}"))?;
        }
        let r = &self.registry;
        if r.signing_alg == SigningAlg::EdDSA {
            return Err("registry.signing_alg = EdDSA: the CNCF distribution registry (libtrust) cannot verify EdDSA; use ES256 or RS256".into());
        }
        if r.service.is_empty() || r.service.chars().any(|c| c.is_control() || c == '"') {
            return Err(
                "registry.service must be a non-empty name without quotes or control characters".into(),
            );
        }
        for p in &r.repository_patterns {
            tollgate_core::registry::validate_repository_pattern(p).map_err(|e| format!("registry.{e}"))?;
        }
        if r.token_ttl < Duration::from_secs(10) || r.token_ttl > Duration::from_secs(3600) {
            return Err("registry.token_ttl must be between 10s and 1h".into());
        }
        if r.pull_credential_ttl < Duration::from_secs(60)
            || r.pull_credential_ttl > Duration::from_secs(7 * 24 * 3600)
        {
            return Err("registry.pull_credential_ttl must be between 1m and 7d".into());
        }
        if !(self.redis.url.is_empty()
            || self.redis.url.starts_with("redis://")
            || self.redis.url.starts_with("rediss://"))
        {
            return Err("redis.url must be empty or a redis:// (rediss://) URL".into());
        }
        if self.redis.timeout < Duration::from_millis(50) || self.redis.timeout > Duration::from_secs(30) {
            return Err("redis.timeout must be between 50ms and 30s".into());
        }
        crate::rate_limit::Limits::from_config(self)?;
        let ci = &self.ci;
        if ci.job_token_max_ttl < Duration::from_secs(10)
            || ci.job_token_max_ttl > Duration::from_secs(24 * 3600)
        {
            return Err("ci.job_token_max_ttl must be between 10s and 24h".into());
        }
        if ci.build_session_ttl < Duration::from_secs(60) || ci.max_active_per_owner == 0 {
            return Err(
                "ci.build_session_ttl must be at least 1m and ci.max_active_per_owner at least 1".into(),
            );
        }
        let p = &self.publish;
        tollgate_core::Audience::parse(&p.audience).map_err(|e| format!("publish.audience: {e}"))?;
        if p.session_ttl < Duration::from_secs(60) || p.session_ttl > Duration::from_secs(24 * 3600) {
            return Err("publish.session_ttl must be between 1m and 24h".into());
        }
        if p.token_ttl < Duration::from_secs(10) || p.token_ttl > p.session_ttl {
            return Err("publish.token_ttl must be between 10s and publish.session_ttl".into());
        }
        let d = &self.device;
        if d.code_ttl < Duration::from_secs(60) || d.code_ttl > Duration::from_secs(3600) {
            return Err("device.code_ttl must be between 1m and 1h".into());
        }
        if d.interval < Duration::from_secs(1)
            || d.interval > Duration::from_secs(60)
            || d.interval.subsec_nanos() != 0
        {
            return Err("device.interval must be whole seconds between 1s and 60s".into());
        }
        let path = &d.verification_path;
        if !path.starts_with('/')
            || path.starts_with("//")
            || path.len() > 200
            || !path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
        {
            return Err(format!(
                "device.verification_path must be a path like `/device` (letters, digits, `/-._~`), got `{path}`"
            ));
        }
        // The page is routed beside the API: it must not shadow an endpoint.
        let taken = [
            "/v1/",
            "/v2/",
            "/oauth/",
            "/.well-known/",
            "/internal/",
            "/auth/",
            "/login",
        ];
        let pages = [
            "/verify",
            "/logout",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/",
        ];
        if taken.iter().any(|p| path.starts_with(p)) || pages.contains(&path.as_str()) {
            return Err(format!(
                "device.verification_path `{path}` collides with one of tollgate's own endpoints"
            ));
        }
        let k = &self.device_keys;
        if k.enrollment_ttl < Duration::from_secs(60) || k.enrollment_ttl > Duration::from_secs(3600) {
            return Err("device_keys.enrollment_ttl must be between 1m and 1h".into());
        }
        if !(1..=1000).contains(&k.max_keys_per_user) {
            return Err("device_keys.max_keys_per_user must be between 1 and 1000".into());
        }
        if k.assertion_max_age < Duration::from_secs(10) || k.assertion_max_age > Duration::from_secs(3600) {
            return Err("device_keys.assertion_max_age must be between 10s and 1h".into());
        }
        let c = &self.certs;
        if c.ca_name.is_empty() || c.ca_name.chars().count() > 40 || c.ca_name.chars().any(char::is_control) {
            return Err("certs.ca_name must have 1 to 40 characters".into());
        }
        for (name, ttl) in [
            ("developer_ttl", c.developer_ttl),
            ("ci_job_ttl", c.ci_job_ttl),
            ("server_ttl", c.server_ttl),
        ] {
            if ttl < Duration::from_secs(60) || ttl > Duration::from_secs(397 * 24 * 3600) {
                return Err(format!("certs.{name} must be between 1m and 397d"));
            }
        }
        for r in &self.gateway.routes {
            if !r.prefix.starts_with('/') {
                return Err(format!("gateway.routes: prefix `{}` must start with /", r.prefix));
            }
            if let Some(k) = r
                .allow
                .iter()
                .find(|k| !["user", "ci", "service"].contains(&k.as_str()))
            {
                return Err(format!("gateway.routes: allow `{k}`: use user, ci or service"));
            }
        }
        let web = &self.web_login;
        if !web.issuer.is_empty() && web.client_id.is_empty() {
            return Err("web_login.client_id is required when web_login.issuer is set".into());
        }
        if web.session_ttl < Duration::from_secs(60) || web.session_ttl > Duration::from_secs(24 * 3600) {
            return Err("web_login.session_ttl must be between 1m and 24h".into());
        }
        if self.invites.ttl < Duration::from_secs(60)
            || self.invites.ttl > Duration::from_secs(90 * 24 * 3600)
        {
            return Err("invites.ttl must be between 1m and 90d".into());
        }
        if !self.mail.smtp_url.is_empty() {
            crate::mail::parse_smtp_url(&self.mail.smtp_url).map_err(|e| format!("mail.smtp_url: {e}"))?;
        }
        if self.mail.sender.parse::<lettre::message::Mailbox>().is_err() {
            return Err(format!(
                "mail.sender must be an address like `tollgate <tollgate@example.com>`, got `{}`",
                self.mail.sender
            ));
        }
        let u = &self.upstream;
        if u.jwks_min_ttl > u.jwks_max_ttl
            || u.jwks_default_ttl < u.jwks_min_ttl
            || u.jwks_default_ttl > u.jwks_max_ttl
        {
            return Err("upstream: need jwks_min_ttl <= jwks_default_ttl <= jwks_max_ttl".into());
        }
        if u.http_timeout < Duration::from_millis(100) || u.max_token_bytes < 1024 {
            return Err(
                "upstream: http_timeout must be at least 100ms and max_token_bytes at least 1024".into(),
            );
        }
        if self.keys.reload_interval >= u.jwks_refresh_ahead {
            return Err("keys.reload_interval must be shorter than upstream.jwks_refresh_ahead, or keys expire before upkeep refreshes them".into());
        }
        if self.keys.reload_interval < Duration::from_secs(1) {
            return Err("keys.reload_interval must be at least 1s".into());
        }
        if self.server.request_timeout < Duration::from_secs(1) {
            return Err("server.request_timeout must be at least 1s".into());
        }
        if self.server.max_body_bytes < 1024 {
            return Err("server.max_body_bytes must be at least 1024".into());
        }
        let resolved = self
            .issuers
            .iter()
            .map(IssuerSpec::resolve)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        IssuerSet::new(resolved).map_err(|e| e.to_string())?;
        if let Some(t) = &self.admin.bootstrap_token {
            use secrecy::ExposeSecret as _;
            let t = t.expose_secret();
            if !t.is_empty() {
                tollgate_core::secret_token::check(tollgate_core::secret_token::SecretKind::AdminToken, t)
                    .map_err(|e| {
                        format!(
                            "admin.bootstrap_token: {e}; generate one with `tollgate admin token generate`"
                        )
                    })?;
            }
        }
        Ok(())
    }

    /// The database URL, defaulting to SQLite in the data directory.
    #[must_use]
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}", self.server.data_dir.join("tollgate.db").display())
        } else {
            self.database.url.clone()
        }
    }

    /// The audience for tokens whose client names none.
    #[must_use]
    pub fn default_audience(&self) -> &str {
        if self.tokens.default_audience.is_empty() {
            &self.server.public_url
        } else {
            &self.tokens.default_audience
        }
    }

    /// The configured bootstrap admin token, if set and non-empty.
    #[must_use]
    pub fn bootstrap_token(&self) -> Option<&SecretString> {
        use secrecy::ExposeSecret as _;
        self.admin
            .bootstrap_token
            .as_ref()
            .filter(|t| !t.expose_secret().is_empty())
    }
}

/// The `(section, key)` pairs the example documents.
fn known_keys() -> Vec<(String, String)> {
    let example: toml::Table = toml::from_str(EXAMPLE).unwrap_or_default();
    example
        .iter()
        .filter_map(|(section, v)| v.as_table().map(|t| (section, t)))
        .flat_map(|(section, t)| t.keys().map(move |k| (section.clone(), k.clone())))
        .collect()
}

/// Merges `TOLLGATE_*` variables into `table`; returns the names applied.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let known = known_keys();
    let mut applied = Vec::new();
    let mut vars: Vec<_> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("TOLLGATE_"))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        if CLIENT_ENV.contains(&name.as_str()) || name.starts_with("TOLLGATE_TEST_") {
            continue;
        }
        let target = SHORT_ENV
            .iter()
            .find(|(short, _, _)| *short == name)
            .map(|(_, s, k)| ((*s).to_owned(), (*k).to_owned()))
            .or_else(|| {
                known
                    .iter()
                    .find(|(s, k)| name == format!("TOLLGATE_{}_{}", s.to_uppercase(), k.to_uppercase()))
                    .cloned()
            })
            .ok_or_else(|| ConfigError::UnknownEnv(name.clone()))?;
        let value = parse_env_value(&raw);
        let section = table
            .entry(target.0.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| invalid("", format!("`{}` must be a table", target.0)))?;
        section.insert(target.1, value);
        applied.push(name);
    }
    Ok(applied)
}

/// Numbers, booleans and arrays are read as TOML; anything else is a string.
fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table() && !v.is_str())
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn no_file_no_env_gives_defaults() {
        let c = Config::load(None, env(&[])).expect("defaults are valid");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url(), "sqlite://./tollgate-data/tollgate.db");
        assert_eq!(c.default_audience(), "http://127.0.0.1:8080");
    }

    #[test]
    fn example_parses_to_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.toml");
        std::fs::write(&p, EXAMPLE).expect("write");
        let c = Config::load(Some(&p), env(&[])).expect("example is valid");
        let d = Config::default();
        assert_eq!(c.server.listen, d.server.listen);
        assert_eq!(c.tokens.access_ttl, d.tokens.access_ttl);
        assert_eq!(c.keys.rotate_after, d.keys.rotate_after);
        assert!(c.bootstrap_token().is_none());
    }

    #[test]
    fn registry_settings_distribution_cannot_use_are_refused_clearly() {
        let err = Config::load(None, env(&[("TOLLGATE_REGISTRY_SIGNING_ALG", "EdDSA")])).expect_err("EdDSA");
        assert!(err.to_string().contains("cannot verify EdDSA"), "{err}");
        let err = Config::load(None, env(&[("TOLLGATE_REGISTRY_KEY_REFERENCE", "x5u")])).expect_err("x5u");
        assert!(
            err.to_string().contains("KEY_REFERENCE") && err.to_string().contains("x5c"),
            "{err}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.toml");
        std::fs::write(&p, "[registry]\nrepository_patterns = [\"{org}\"]\n").expect("write");
        let err = Config::load(Some(&p), env(&[])).expect_err("pattern");
        assert!(err.to_string().contains("repository pattern"), "{err}");
        let ok = Config::load(None, env(&[("TOLLGATE_REGISTRY_SIGNING_ALG", "RS256")])).expect("RS256");
        assert_eq!(ok.registry.signing_alg, SigningAlg::RS256);
    }

    #[test]
    fn unknown_file_key_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.toml");
        std::fs::write(&p, "[server]\nlissten = \"0.0.0.0:1\"\n").expect("write");
        let err = Config::load(Some(&p), env(&[])).expect_err("typo");
        assert!(err.to_string().contains("lissten"), "{err}");
    }

    #[test]
    fn env_overrides_long_and_short_forms() {
        let c = Config::load(
            None,
            env(&[
                ("TOLLGATE_LISTEN", "127.0.0.1:9999"),
                ("TOLLGATE_TOKENS_ACCESS_TTL", "5m"),
                ("TOLLGATE_SERVER_MAX_BODY_BYTES", "4096"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.server.listen.port(), 9999);
        assert_eq!(c.tokens.access_ttl, Duration::from_secs(300));
        assert_eq!(c.server.max_body_bytes, 4096);
    }

    #[test]
    fn unknown_env_variable_is_named() {
        let err = Config::load(None, env(&[("TOLLGATE_TOKENS_ACESS_TTL", "5m")])).expect_err("typo");
        assert!(err.to_string().contains("TOLLGATE_TOKENS_ACESS_TTL"), "{err}");
    }

    #[test]
    fn bad_value_names_the_variable() {
        let err = Config::load(None, env(&[("TOLLGATE_TOKENS_SIGNING_ALG", "HS256")])).expect_err("bad alg");
        let msg = err.to_string();
        assert!(
            msg.contains("TOLLGATE_TOKENS_SIGNING_ALG") && msg.contains("HS256"),
            "{msg}"
        );
    }

    #[test]
    fn issuers_are_validated_with_their_presets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.toml");
        let clerk =
            "[[issuers]]\nname = \"clerk\"\nissuer = \"https://clerk.example.com\"\npreset = \"clerk\"\n";
        std::fs::write(&p, clerk).expect("write");
        let c = Config::load(Some(&p), env(&[])).expect("clerk needs no audience");
        assert_eq!(c.issuers.len(), 1);
        let oidc = "[[issuers]]\nname = \"idp\"\nissuer = \"https://idp.example.com\"\n";
        std::fs::write(&p, oidc).expect("write");
        let err = Config::load(Some(&p), env(&[])).expect_err("oidc needs audiences");
        assert!(err.to_string().contains("issuer `idp`"), "{err}");
        std::fs::write(&p, format!("{clerk}audence = []\n")).expect("write");
        let err = Config::load(Some(&p), env(&[])).expect_err("typo");
        assert!(err.to_string().contains("audence"), "{err}");
    }

    #[test]
    fn device_settings_are_validated() {
        let d = Config::load(None, env(&[])).expect("defaults").device;
        assert_eq!(
            (d.code_ttl, d.interval),
            (Duration::from_secs(600), Duration::from_secs(5))
        );
        assert_eq!(d.verification_path, "/device");
        for (key, value) in [
            ("CODE_TTL", "10s"),
            ("INTERVAL", "1500ms"),
            ("INTERVAL", "0s"),
            ("VERIFICATION_PATH", "device"),
            ("VERIFICATION_PATH", "//evil.example/x"),
            ("VERIFICATION_PATH", "/device?x=1"),
        ] {
            let var = format!("TOLLGATE_DEVICE_{key}");
            let err = Config::load(None, env(&[(&var, value)])).expect_err(value);
            let named = format!("device.{}", key.to_lowercase());
            assert!(err.to_string().contains(&named), "{err}");
        }
        let ok =
            Config::load(None, env(&[("TOLLGATE_DEVICE_VERIFICATION_PATH", "/activate")])).expect("path");
        assert_eq!(ok.device.verification_path, "/activate");
    }

    #[test]
    fn device_key_settings_are_validated() {
        let k = Config::load(None, env(&[])).expect("defaults").device_keys;
        assert_eq!(
            (k.enrollment_ttl, k.max_keys_per_user, k.assertion_max_age),
            (Duration::from_secs(600), 10, Duration::from_secs(300))
        );
        for (key, value) in [
            ("ENROLLMENT_TTL", "30s"),
            ("ENROLLMENT_TTL", "2h"),
            ("MAX_KEYS_PER_USER", "0"),
            ("ASSERTION_MAX_AGE", "5s"),
            ("ASSERTION_MAX_AGE", "1d"),
        ] {
            let var = format!("TOLLGATE_DEVICE_KEYS_{key}");
            let err = Config::load(None, env(&[(&var, value)])).expect_err(value);
            let named = format!("device_keys.{}", key.to_lowercase());
            assert!(err.to_string().contains(&named), "{err}");
        }
        let ok = Config::load(None, env(&[("TOLLGATE_DEVICE_KEYS_MAX_KEYS_PER_USER", "3")])).expect("3");
        assert_eq!(ok.device_keys.max_keys_per_user, 3);
    }

    #[test]
    fn bootstrap_token_must_have_the_admin_format() {
        let err =
            Config::load(None, env(&[("TOLLGATE_ADMIN_BOOTSTRAP_TOKEN", "hunter2")])).expect_err("bad token");
        assert!(err.to_string().contains("admin.bootstrap_token"), "{err}");
    }
}
