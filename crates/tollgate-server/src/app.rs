//! Building the application from configuration, its middleware stack, background upkeep
//! and serving with graceful shutdown.

use crate::clock::SharedClock;
use crate::config::Config;
use crate::error::ApiError;
use crate::hashing::{HashingError, SecretHashing};
use crate::keyring::{ACCESS, KeyError, KeyPolicy, KeyRing, REGISTRY};
use crate::metrics::{HttpLabels, Metrics};
use crate::state::AppState;
use crate::upstream::jwks_cache::JwksCache;
use crate::upstream::registry::{IssuerRegistry, RegistryError};
use crate::upstream::verifier::UpstreamVerifier;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tollgate_core::Reason;
use tollgate_crypto::MasterKey;
use tollgate_store::{Store, StoreError};
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Hashing(#[from] HashingError),
    #[error("{0}")]
    Bootstrap(String),
    #[error("cannot build the HTTP client for upstream issuers: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Issuers(#[from] RegistryError),
    #[error(transparent)]
    AuditChain(#[from] crate::audit_chain::AuditChainError),
}

/// A ready-to-serve application.
#[derive(Debug)]
pub struct App {
    pub state: AppState,
    /// The admin token created at this start, if this was the first start; print it once.
    pub new_admin_token: Option<SecretString>,
}

impl App {
    /// Opens the store, applies migrations, loads or creates keys and secrets.
    pub async fn build(config: Config, master: MasterKey, clock: SharedClock) -> Result<Self, StartError> {
        let store = tollgate_store::open(&config.database_url()).await?;
        Self::with_store(config, store, master, clock).await
    }

    /// Like [`App::build`] with an already opened store.
    pub async fn with_store(
        config: Config,
        store: Arc<dyn Store>,
        master: MasterKey,
        clock: SharedClock,
    ) -> Result<Self, StartError> {
        let master = Arc::new(master);
        let policy = KeyPolicy {
            algs: HashMap::from([
                (ACCESS.to_owned(), config.tokens.signing_alg),
                (REGISTRY.to_owned(), config.registry.signing_alg),
            ]),
            max_token_life: HashMap::from([
                (ACCESS.to_owned(), config.tokens.access_ttl + config.tokens.leeway),
                (
                    REGISTRY.to_owned(),
                    config.registry.token_ttl + config.tokens.leeway,
                ),
            ]),
            jwks_max_age: config.keys.jwks_max_age,
            rotate_after: config.keys.rotate_after,
        };
        let keys = KeyRing::start(store.clone(), master.clone(), clock.clone(), policy).await?;
        let ca: Option<Arc<dyn crate::certs::CertificateAuthority>> = if !config.certs.enabled {
            None
        } else if config.certs.ca == crate::config::CaKind::External {
            Some(Arc::new(crate::certs::ExternalCa::new(
                &config.certs.external_url,
                config.certs.external_token.clone(),
            )?))
        } else {
            let internal = crate::certs::InternalCa::start(&*store, &master, clock.now().0, &config.certs)
                .await
                .map_err(|e| StartError::Bootstrap(format!("the certificate authority: {e}")))?;
            Some(Arc::new(internal))
        };
        let audit_chain = Arc::new(crate::audit_chain::AuditChain::start(&*store, &master, &clock).await?);
        let hashing = SecretHashing::start(store.clone(), master, clock.clone()).await?;
        let metrics = Arc::new(Metrics::new());
        let registry = Arc::new(IssuerRegistry::start(store.clone(), config.issuers.clone()).await?);
        let jwks = Arc::new(JwksCache::new(
            config.upstream.cache_settings(),
            clock.clone(),
            metrics.clone(),
        )?);
        let upstream = Arc::new(UpstreamVerifier::new(
            registry,
            jwks,
            clock.clone(),
            metrics.clone(),
            config.upstream.max_token_bytes,
        ));
        let audit_writer = Arc::new(crate::audit::AuditWriter::start(
            store.clone(),
            audit_chain.clone(),
            metrics.clone(),
        ));
        let redis = if config.redis.url.is_empty() {
            None
        } else {
            Some(
                tollgate_store::RedisEphemeral::connect(
                    &config.redis.url,
                    &config.redis.prefix,
                    config.redis.timeout,
                )
                .await?,
            )
        };
        let ephemeral: Arc<dyn tollgate_store::Ephemeral> = match &redis {
            Some(r) => Arc::new(r.clone()),
            None => store.clone(),
        };
        let rate_limits: Arc<dyn tollgate_store::RateLimits> = match &redis {
            Some(r) => Arc::new(r.clone()),
            None => Arc::new(tollgate_store::MemoryRateLimits::default()),
        };
        // Validated with the configuration; a failure here is a bug.
        let limits =
            Arc::new(crate::rate_limit::Limits::from_config(&config).map_err(StartError::Bootstrap)?);
        let state = AppState {
            config: Arc::new(config),
            ephemeral,
            rate_limits,
            limits,
            redis,
            store,
            keys: Arc::new(keys),
            hashing: Arc::new(hashing),
            clock,
            metrics,
            upstream,
            audit_writer,
            audit_chain,
            registry_certs: Arc::default(),
            ca,
            web_login: Arc::new(
                crate::web_login::WebLogin::new()
                    .map_err(|e| StartError::Bootstrap(format!("cannot build the HTTP client: {e}")))?,
            ),
        };
        let new_admin_token = crate::admin_tokens::bootstrap(&state).await.map_err(|e| {
            StartError::Bootstrap(format!("cannot create the bootstrap admin token: {}", e.message))
        })?;
        Ok(Self {
            state,
            new_admin_token,
        })
    }

    /// The router with the full middleware stack.
    pub fn router(&self) -> Router {
        let request_id = HeaderName::from_static("x-request-id");
        crate::routes::routes(&self.state.config.device.verification_path)
            .layer(middleware::from_fn_with_state(self.state.clone(), crate::rate_limit::per_ip))
            .layer(middleware::from_fn_with_state(self.state.clone(), record_metrics))
            .layer(middleware::from_fn_with_state(self.state.clone(), deadline))
            .layer(middleware::from_fn(audit_request_id))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request| {
                        let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                    })
                    .on_request(())
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Micros)),
            )
            .layer(PropagateRequestIdLayer::new(request_id.clone()))
            .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
            .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
                tracing::error!("handler panicked");
                ApiError::new(Reason::InternalError, "internal error; it has been logged").into_response()
            }))
            .with_state(self.state.clone())
    }

    /// Runs key, secret and denylist upkeep every `reload_interval` until `shutdown` fires.
    pub fn spawn_upkeep(
        &self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.config.keys.reload_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => upkeep(&state).await,
                    _ = shutdown.changed() => break,
                }
            }
        })
    }
}

/// One round of upkeep; failures are logged and retried next round.
pub async fn upkeep(state: &AppState) {
    if let Err(e) = state.keys.maintain().await {
        tracing::warn!(error = %e, "key upkeep failed");
    }
    if let Err(e) = state.hashing.reload().await {
        tracing::warn!(error = %e, "secret reload failed");
    }
    if let Err(e) = state.store.purge_expired_revocations(state.clock.now().0).await {
        tracing::warn!(error = %e, "revocation purge failed");
    }
    if let Err(e) = state.ephemeral.purge_ephemeral(state.clock.now().0).await {
        tracing::warn!(error = %e, "purge of short-lived state failed");
    }
    let registry = state.upstream.registry();
    if let Err(e) = registry.reload().await {
        tracing::warn!(error = %e, "issuer reload failed");
    }
    let view = registry.current();
    let jwks = state.upstream.jwks();
    for entry in jwks.status() {
        if !view.entries.contains_key(&entry.cache_key) {
            jwks.forget(&entry.cache_key);
        }
    }
    jwks.refresh_due().await;
}

/// Answers 503 with a reason when a request outlives `server.request_timeout`.
async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.config.server.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(?limit, "request exceeded server.request_timeout");
            ApiError::new(
                Reason::ServiceUnavailable,
                "the request took longer than the server allows; retry later",
            )
            .into_response()
        }
    }
}

/// Audit events written while serving a request carry its `x-request-id` (set or kept by
/// `SetRequestIdLayer`, which runs before this).
async fn audit_request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 256)
        .map(str::to_owned);
    crate::audit::with_request_id(id, next.run(req)).await
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let labels = HttpLabels {
        method,
        route,
        status: resp.status().as_u16(),
    };
    let m = &state.metrics;
    m.http_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    m.http_requests.get_or_create(&labels).inc();
    resp
}

/// Serves `app` on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let upkeep = app.spawn_upkeep(stop_rx);
    let router = app.router();
    // The peer address is what per-IP rate limits start from.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_tx.send(true);
    let _ = upkeep.await;
    result
}
