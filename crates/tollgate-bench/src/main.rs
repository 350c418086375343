//! `loadgen`: a loopback load benchmark of tollgate's OAuth endpoints.
//!
//! The server runs in a child process (this binary re-executed with `--serve-on-loopback`),
//! so its CPU time can be told apart from the load generator's. The parent also serves an
//! upstream OpenID issuer (discovery and JWKS, an RS256 key) on 127.0.0.1, which the server
//! is configured to trust. It creates a service account, then drives three phases over
//! keep-alive connections to 127.0.0.1, each ending after `--seconds` or `--max-requests`,
//! whichever comes first: `client_credentials` token requests, introspection of one token,
//! and RFC 8693 token exchange of one upstream token (replayed: exchange does not refuse
//! a replayed upstream token).
//!
//! Each phase's throughput is set against the crypto a request cannot avoid, timed
//! single-threaded in this process before the server starts.

#![allow(clippy::print_stdout)] // A command-line tool: its report goes to stdout.

mod cpu;
mod idp;
mod load;
mod raw_crypto;
mod report;
mod server;

use anyhow::Context as _;
use clap::Parser as _;
use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tollgate_client::ClientCredentials;
use tollgate_core::SigningAlg;
use tollgate_core::time::Clock as _;
use tollgate_proto::admin::CreateClientRequest;
use tollgate_server::clock::SystemClock;

use crate::cpu::CpuUsage;
use crate::idp::UpstreamIdp;
use crate::load::{Limits, PhaseResult, Target};
use crate::raw_crypto::RawCrypto;
use crate::server::{ServeOptions, ServerProcess};

/// Time and count bounds of the raw crypto measurements (per operation).
const RAW_BUDGET: Duration = Duration::from_secs(1);
/// Longest warm-up before each phase; its requests are not counted in the results.
const WARM_UP: Duration = Duration::from_secs(1);
/// How much longer than the phases need the upstream token stays valid.
const UPSTREAM_MARGIN: Duration = Duration::from_secs(120);

#[derive(Debug, clap::Parser)]
#[command(about = "Loopback load benchmark of tollgate's token, token-exchange and introspection endpoints")]
struct Args {
    /// Seconds per phase. At most 300, so that the token introspected in the second phase,
    /// fetched before the first, is still within the server's 15-minute access-token life.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    seconds: u64,
    /// Requests in flight at once (tokio tasks sharing one keep-alive HTTP client).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    connections: u16,
    /// Most requests per phase.
    #[arg(long, default_value_t = 10_000_000)]
    max_requests: u64,
    /// Algorithm the server signs access tokens with.
    #[arg(long, default_value_t = SigningAlg::EdDSA)]
    alg: SigningAlg,
    /// An empty database for the server (e.g. postgres://...); SQLite in a temporary
    /// directory by default.
    #[arg(long)]
    database_url: Option<String>,
    /// Internal: serve on 127.0.0.1 and announce the port on stdout.
    #[arg(long, hide = true)]
    serve_on_loopback: bool,
    /// Internal: the server's data directory.
    #[arg(long, hide = true)]
    data_dir: Option<PathBuf>,
    /// Internal: the URL of the upstream issuer the server trusts for token exchange.
    #[arg(long, hide = true)]
    upstream_issuer: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve_on_loopback {
        let data_dir = args.data_dir.context("--serve-on-loopback needs --data-dir")?;
        let options = ServeOptions {
            alg: args.alg,
            data_dir,
            database_url: args.database_url,
            upstream_issuer: args.upstream_issuer,
        };
        return server::serve_on_loopback(&options).await;
    }
    run(&args).await
}

/// Starts the upstream issuer, measures raw crypto, starts the server, runs the phases and
/// always stops the server.
async fn run(args: &Args) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    // Idle until the server's first exchange fetches its keys.
    let idp = UpstreamIdp::start().await?;
    // Timed before the server starts, on a machine as quiet as it gets; nothing else runs on
    // this runtime yet, so blocking its thread is harmless.
    let raw = RawCrypto::measure(args.alg, RAW_BUDGET, &idp)?;
    let data_dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
    let options = ServeOptions {
        alg: args.alg,
        data_dir: data_dir.path().to_owned(),
        database_url: args.database_url.clone(),
        upstream_issuer: Some(idp.issuer_url().to_owned()),
    };
    let server = ServerProcess::spawn(&options).await?;
    report::header(args, &server, &options, cores, &raw);
    let outcome = benchmark(args, &server, &idp, &raw, cores).await;
    server.stop().await;
    outcome
}

/// Sets up a service account and an upstream token and runs the three phases; fails if any
/// request failed.
async fn benchmark(
    args: &Args,
    server: &ServerProcess,
    idp: &UpstreamIdp,
    raw: &RawCrypto,
    cores: usize,
) -> anyhow::Result<()> {
    let creds = create_service_account(server).await?;
    let http = load::http_client(args.connections)?;
    let token_target = Target::token(&http, &server.url(), &creds)?;
    let token = first_token(server, &creds).await?;
    let introspect_target = Target::introspect(&http, &server.url(), &creds, &token)?;
    // Minted now, valid until the last phase is over (upstream session tokens usually live a
    // minute; one that outlives the run keeps expiry out of the figures).
    let phase_time = args.seconds + WARM_UP.as_secs();
    let upstream_life = Duration::from_secs(3 * phase_time + UPSTREAM_MARGIN.as_secs());
    let upstream_token = idp.mint(SystemClock.now(), upstream_life)?;
    let exchange_target = Target::token_exchange(&http, &server.url(), &upstream_token)?;
    let limits = Limits {
        duration: Duration::from_secs(args.seconds),
        max_requests: args.max_requests,
        concurrency: args.connections,
    };
    let phases = [
        ("client_credentials", token_target, raw.issue()),
        ("introspect", introspect_target, raw.introspect()),
        ("token_exchange", exchange_target, raw.exchange()),
    ];
    let mut failed = Vec::new();
    for (name, target, raw_crypto) in phases {
        let (result, cpu) = run_phase(&http, Arc::new(target), &limits, server).await?;
        report::phase(name, &result, &cpu, &raw_crypto, cores);
        if let Some(first) = &result.first_error {
            failed.push(format!("{name}: {} failed, first: {first}", result.errors));
        }
    }
    report::upstream_fetches(idp.fetches());
    anyhow::ensure!(failed.is_empty(), "requests failed: {}", failed.join("; "));
    Ok(())
}

/// A warm-up (errors abort), then the measured run and the CPU time it took.
async fn run_phase(
    http: &reqwest::Client,
    target: Arc<Target>,
    limits: &Limits,
    server: &ServerProcess,
) -> anyhow::Result<(PhaseResult, CpuUsage)> {
    let warm_up = Limits {
        duration: limits.duration.min(WARM_UP),
        ..*limits
    };
    let warmed = load::run(http, target.clone(), &warm_up).await?;
    if let Some(first) = &warmed.first_error {
        anyhow::bail!(
            "{} of {} warm-up requests failed, first: {first}",
            warmed.errors,
            warmed.requests()
        );
    }
    let cpu_before = server.cpu_usage();
    let result = load::run(http, target, limits).await?;
    Ok((result, server.cpu_usage().since(&cpu_before)))
}

async fn create_service_account(server: &ServerProcess) -> anyhow::Result<ClientCredentials> {
    let admin = tollgate_client::Client::new(&server.url())?.with_admin_token(server.admin_token().clone());
    let request = CreateClientRequest {
        name: "loadgen".to_owned(),
        scope: vec!["bench:read".to_owned()],
        audiences: Vec::new(),
    };
    let created = admin
        .create_client(&request)
        .await
        .context("cannot create the service account")?;
    Ok(ClientCredentials {
        client_id: created.client.client_id,
        client_secret: SecretString::from(created.client_secret),
    })
}

/// The token the introspection phase asks about.
async fn first_token(server: &ServerProcess, creds: &ClientCredentials) -> anyhow::Result<String> {
    let client = tollgate_client::Client::new(&server.url())?;
    let issued = client
        .client_credentials(creds, None, None)
        .await
        .context("cannot get a token")?;
    Ok(issued.access_token)
}
