//! `tollgate serve`.

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tollgate_server::clock::SystemClock;
use tollgate_server::{App, Config, data_dir};
use tracing_subscriber::EnvFilter;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); TOLLGATE_* environment variables override it.
    #[arg(long, short, env = "TOLLGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (SQLite database, master key file). Overrides the config.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Listen address. Overrides the config.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("TOLLGATE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = args.data_dir {
        config.server.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    data_dir::ensure_data_dir(&config.server.data_dir)?;
    let master_env = std::env::var("TOLLGATE_MASTER_KEY").ok();
    let master = data_dir::load_or_create_master_key(&config.server.data_dir, master_env.as_deref())?;
    let listen = config.server.listen;
    let public_url = config.server.public_url.clone();
    let app = App::build(config, master, Arc::new(SystemClock))
        .await
        .context("cannot start tollgate")?;
    tracing::info!(backend = app.state.store.backend_name(), "database ready");
    if let Some(token) = &app.new_admin_token {
        eprintln!(
            "\n  First start: created an admin token. It is shown only this once; store it safely.\n\n    \
             TOLLGATE_ADMIN_TOKEN={}\n\n  Try: tollgate admin client create --name my-service --scope read\n",
            token.expose_secret()
        );
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr().unwrap_or(listen);
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        // Registered before serving, so an early SIGHUP cannot take the default action (exit).
        Ok(hup) => drop(tokio::spawn(reload_issuers_on_sighup(
            hup,
            app.state.clone(),
            args.config.clone(),
        ))),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; issuer changes in the config file need a restart")
        }
    }
    tracing::info!(listen = %bound, issuer = %public_url, "tollgate is serving");
    tollgate_server::serve(app, listener, shutdown_signal())
        .await
        .context("server failed")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// `SIGHUP` re-reads the configuration and applies its `[[issuers]]` (other settings need a
/// restart). An invalid file is logged and the running issuers stay as they were.
#[cfg(unix)]
async fn reload_issuers_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    state: tollgate_server::state::AppState,
    config: Option<PathBuf>,
) {
    while hup.recv().await.is_some() {
        let loaded = Config::load(config.as_deref(), std::env::vars());
        let result = match loaded {
            Ok(c) => state
                .upstream
                .registry()
                .set_file_issuers(c.issuers)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(()) => {
                let names: Vec<String> = state
                    .upstream
                    .registry()
                    .current()
                    .entries
                    .keys()
                    .cloned()
                    .collect();
                tracing::info!(issuers = ?names, "SIGHUP: issuers reloaded");
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "SIGHUP: configuration not applied; issuers unchanged")
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; draining"),
        () = term => tracing::info!("SIGTERM received; draining"),
    }
}
