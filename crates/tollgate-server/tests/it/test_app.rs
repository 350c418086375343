//! `TestApp`: a running tollgate with its own database, master key and clock.

use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tollgate_client::{Client, ClientCredentials};
use tollgate_core::UnixTime;
use tollgate_core::time::Clock as _;
use tollgate_crypto::MasterKey;
use tollgate_proto::admin::CreateClientRequest;
use tollgate_server::clock::ManualClock;
use tollgate_server::state::AppState;
use tollgate_server::{App, Config};

pub struct TestApp {
    pub url: String,
    /// SDK client with the bootstrap admin token.
    pub client: Client,
    /// Plain HTTP client for wire-level tests.
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub state: AppState,
    pub admin_token: SecretString,
    db_url: String,
    master: [u8; 32],
    config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: Arc<tempfile::TempDir>,
}

fn now() -> UnixTime {
    tollgate_server::clock::SystemClock.now()
}

pub fn backend() -> String {
    std::env::var("TOLLGATE_TEST_DATABASE").unwrap_or_else(|_| "sqlite".to_owned())
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// A test app whose config is adjusted by `tweak` before start.
    pub async fn with_config(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let db_url = match backend().as_str() {
            "postgres" => tollgate_store::testing::fresh_postgres_url()
                .await
                .expect("TOLLGATE_TEST_DATABASE=postgres but PostgreSQL is unreachable"),
            _ => tollgate_store::testing::sqlite_url(dir.path()),
        };
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_owned();
        config.database.url = db_url.clone();
        // Tests send bursts from one address; the rate-limit tests turn limits on themselves.
        config.rate_limits.enabled = false;
        tweak(&mut config);
        let mut master = [0u8; 32];
        tollgate_crypto::random_bytes(&mut master);
        let clock = Arc::new(ManualClock::new(now()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start(listener, config, db_url, master, clock, dir, None).await
    }

    async fn start(
        listener: tokio::net::TcpListener,
        mut config: Config,
        db_url: String,
        master: [u8; 32],
        clock: Arc<ManualClock>,
        dir: Arc<tempfile::TempDir>,
        admin_token: Option<SecretString>,
    ) -> Self {
        let url = format!("http://{}", listener.local_addr().unwrap());
        config.server.public_url = url.clone();
        // Boxed: building the app is a large future, and tests await it through `restart`.
        let app = Box::pin(App::build(
            config.clone(),
            MasterKey::from_bytes(master),
            clock.clone(),
        ))
        .await
        .unwrap();
        let admin_token = app
            .new_admin_token
            .clone()
            .or_else(|| app.state.config.bootstrap_token().cloned())
            .or(admin_token)
            .expect("first start creates an admin token unless one is configured");
        let state = app.state.clone();
        let router = app.router();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, service)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        let client = Client::new(&url).unwrap().with_admin_token(admin_token.clone());
        Self {
            url,
            client,
            http: reqwest::Client::new(),
            clock,
            state,
            admin_token,
            db_url,
            master,
            config,
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        }
    }

    /// Stops the server and starts a new one on the same database and master key.
    pub async fn restart(self) -> Self {
        let config = self.config.clone();
        self.restart_with(config).await
    }

    /// Like [`TestApp::restart`] with a changed configuration.
    pub async fn restart_with(mut self, mut config: Config) -> Self {
        self.stop().await;
        config.database.url = self.db_url.clone();
        // Same address, so the issuer (public_url) stays the same across the restart.
        let addr = self.url.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        Self::start(
            listener,
            config,
            self.db_url.clone(),
            self.master,
            self.clock.clone(),
            self._dir.clone(),
            Some(self.admin_token.clone()),
        )
        .await
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Moves time forward for the server.
    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// Runs one round of background upkeep now (key reload, expiry, purge).
    pub async fn upkeep(&self) {
        tollgate_server::app::upkeep(&self.state).await;
    }

    /// Creates a service account and returns its credentials.
    pub async fn service_account(&self, name: &str, scope: &[&str], audiences: &[&str]) -> ClientCredentials {
        let created = self
            .client
            .create_client(&CreateClientRequest {
                name: name.to_owned(),
                scope: scope.iter().map(|s| (*s).to_owned()).collect(),
                audiences: audiences.iter().map(|s| (*s).to_owned()).collect(),
            })
            .await
            .unwrap();
        ClientCredentials {
            client_id: created.client.client_id,
            client_secret: SecretString::from(created.client_secret),
        }
    }

    /// A `client_credentials` access token for `creds` with its default scope and audience.
    pub async fn token(&self, creds: &ClientCredentials) -> String {
        self.client
            .client_credentials(creds, None, None)
            .await
            .unwrap()
            .access_token
    }

    /// `GET path` without credentials, its body as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `GET path` without credentials, its body as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A tool a test needs is missing. Under `CI=true` that fails the test (CI installs every
/// tool, so a missing one is a broken setup); elsewhere the test is skipped with a note.
pub fn skip_unless_ci(missing: &str) {
    let msg = format!("{missing}; run `bash interop/setup.sh` from the repository root");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg} (CI=true: this test may not skip)"
    );
    eprintln!("SKIP: {msg}");
}
