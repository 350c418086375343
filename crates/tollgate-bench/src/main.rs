//! `loadgen`: a loopback load benchmark of tollgate's OAuth endpoints.
//!
//! The server runs in a child process (this binary re-executed with `--serve-on-loopback`),
//! so its CPU time can be told apart from the load generator's, on SQLite in a temporary
//! directory or on a schema of its own in a PostgreSQL database (`--database`). The parent
//! also serves three upstream OpenID issuers (discovery and JWKS, one RS256 key) on 127.0.0.1,
//! which the server is configured to trust, one of them with sessions and one a GitHub
//! Actions-shaped CI issuer. It creates a service
//! account, then drives the phases chosen with `--phases` over keep-alive connections to
//! 127.0.0.1, each after a warm-up and ending after `--seconds` or `--max-requests`,
//! whichever comes first: `client_credentials` token requests, introspection of one token,
//! RFC 8693 token exchange of one upstream token (replayed: exchange does not refuse a
//! replayed upstream token), and refresh-token rotation (each connection a chain: one
//! exchange starts a session, then every refresh spends the current refresh token and
//! continues with the one it returns), registry tokens, and CI exchange (each request a fresh
//! CI token, minted before the phase, admitted by a trust policy and recorded in the replay
//! cache).
//!
//! Each phase's throughput is set against the crypto a request cannot avoid, timed
//! single-threaded in this process before the server starts.

#![allow(clippy::print_stdout)] // A command-line tool: its report goes to stdout.

mod cpu;
mod database;
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
use crate::database::{Database, DatabaseArg};
use crate::idp::{Upstream, UpstreamIdp};
use crate::load::{Limits, PhaseResult, RefreshChains, SingleUse, Target, Workload};
use crate::raw_crypto::RawCrypto;
use crate::server::{ServeOptions, ServerProcess};

/// Time and count bounds of the raw crypto measurements (per operation).
const RAW_BUDGET: Duration = Duration::from_secs(1);
/// How much longer than the phases need the upstream token stays valid.
const UPSTREAM_MARGIN: Duration = Duration::from_secs(120);

/// A phase: one kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    /// `POST /oauth/token`, `grant_type=client_credentials`.
    #[value(name = "client_credentials")]
    ClientCredentials,
    /// `POST /oauth/introspect` of one token.
    #[value(name = "introspect")]
    Introspect,
    /// `POST /oauth/token`, RFC 8693 exchange of one upstream token.
    #[value(name = "token_exchange")]
    TokenExchange,
    /// `POST /oauth/token`, `grant_type=refresh_token`, one rotating chain per connection.
    #[value(name = "refresh")]
    Refresh,
    /// `GET /v2/token` for pull and push on an org's repository, as a service account.
    #[value(name = "registry_token")]
    RegistryToken,
    /// `POST /oauth/token`, RFC 8693 exchange of GitHub Actions OIDC tokens (each once)
    /// through an org's trust policy for job tokens.
    #[value(name = "ci_exchange")]
    CiExchange,
    /// `POST /v1/certificates/server`: one CSR (P-256, two DNS names), a certificate from
    /// the internal CA each time, as a service account.
    #[value(name = "server_cert")]
    ServerCert,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::ClientCredentials => "client_credentials",
            Phase::Introspect => "introspect",
            Phase::TokenExchange => "token_exchange",
            Phase::Refresh => "refresh",
            Phase::RegistryToken => "registry_token",
            Phase::CiExchange => "ci_exchange",
            Phase::ServerCert => "server_cert",
        }
    }
}

#[derive(Debug, clap::Parser)]
#[command(
    about = "Loopback load benchmark of tollgate's token, token-exchange, refresh and introspection endpoints"
)]
struct Args {
    /// Seconds per phase, after the warm-up. At most 300, so that the token introspected in
    /// the second phase, fetched before the first, is still within the server's 15-minute
    /// access-token life.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    seconds: u64,
    /// Seconds of warm-up before each phase; its requests are not counted in the results,
    /// and any failure among them aborts the run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=60))]
    warm_up: u64,
    /// The phases to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "client_credentials,introspect,token_exchange,refresh,registry_token,ci_exchange,server_cert"
    )]
    phases: Vec<Phase>,
    /// Requests in flight at once (tokio tasks sharing one keep-alive HTTP client); in the
    /// refresh phase, also the number of sessions, each refreshed by one task.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    connections: u16,
    /// Most requests per phase.
    #[arg(long, default_value_t = 10_000_000)]
    max_requests: u64,
    /// CI tokens minted (RS256, before the phase) for the ci_exchange phase, warm-up
    /// included; the phase ends early when they run out.
    #[arg(long, default_value_t = 15_000)]
    ci_tokens: usize,
    /// Algorithm the server signs access tokens with.
    #[arg(long, default_value_t = SigningAlg::EdDSA)]
    alg: SigningAlg,
    /// The server's database: `sqlite` (in a temporary directory) or a PostgreSQL URL such as
    /// postgres://127.0.0.1:5432/test, in which a schema `tg_bench_<random>` is created for
    /// the run and dropped after it.
    #[arg(long, default_value = "sqlite")]
    database: DatabaseArg,
    /// Internal: the database URL the server opens (its schema selected).
    #[arg(long, hide = true)]
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

/// Starts the upstream issuers, measures raw crypto, prepares the database, starts the
/// server, runs the phases, and always stops the server and drops the database schema it
/// created (also on Ctrl-C).
async fn run(args: &Args) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    // Idle until the server's first exchange fetches its keys.
    let idp = UpstreamIdp::start().await?;
    // Timed before the server starts, on a machine as quiet as it gets; nothing else runs on
    // this runtime yet, so blocking its thread is harmless.
    let raw = RawCrypto::measure(args.alg, RAW_BUDGET, &idp)?;
    let data_dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
    let database = Database::prepare(&args.database).await?;
    let options = ServeOptions {
        alg: args.alg,
        data_dir: data_dir.path().to_owned(),
        database_url: database.server_url(),
        upstream_issuer: Some(idp.issuer_url().to_owned()),
    };
    let outcome = match ServerProcess::spawn(&options).await {
        Ok(server) => {
            report::header(args, &server, &options, &database, cores, &raw);
            let outcome = tokio::select! {
                outcome = benchmark(args, &server, &idp, &raw, cores) => outcome,
                _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
            };
            server.stop().await;
            outcome
        }
        Err(e) => Err(e),
    };
    database.drop_schema().await;
    outcome
}

/// Sets up a service account and an upstream token and runs the chosen phases; fails if
/// any request failed.
async fn benchmark(
    args: &Args,
    server: &ServerProcess,
    idp: &UpstreamIdp,
    raw: &RawCrypto,
    cores: usize,
) -> anyhow::Result<()> {
    let creds = create_service_account(server).await?;
    let http = load::http_client(args.connections)?;
    let token = first_token(server, &creds).await?;
    // Minted now, valid until the last phase is over (upstream session tokens usually live a
    // minute; one that outlives the run keeps expiry out of the figures).
    let phase_time = args.seconds + args.warm_up;
    let phase_count = u64::try_from(args.phases.len()).unwrap_or(u64::MAX);
    let upstream_life = Duration::from_secs(
        phase_count
            .saturating_mul(phase_time)
            .saturating_add(UPSTREAM_MARGIN.as_secs()),
    );
    let upstream_token = idp.mint(SystemClock.now(), upstream_life)?;
    let limits = Limits {
        duration: Duration::from_secs(args.seconds),
        max_requests: args.max_requests,
        concurrency: args.connections,
    };
    let mut failed = Vec::new();
    for &phase in &args.phases {
        let url = server.url();
        let (workload, raw_crypto) = match phase {
            Phase::ClientCredentials => (Workload::Replay(Target::token(&http, &url, &creds)?), raw.issue()),
            Phase::Introspect => (
                Workload::Replay(Target::introspect(&http, &url, &creds, &token)?),
                raw.introspect(),
            ),
            Phase::TokenExchange => (
                Workload::Replay(Target::token_exchange(&http, &url, &upstream_token)?),
                raw.exchange(),
            ),
            Phase::Refresh => (
                Workload::Refresh(start_sessions(&http, &url, idp, args.connections).await?),
                raw.refresh(),
            ),
            Phase::RegistryToken => {
                let pusher = create_registry_pusher(server).await?;
                (
                    Workload::Replay(Target::registry_token(&http, &url, &pusher, REGISTRY_SCOPE)?),
                    raw.registry(),
                )
            }
            Phase::CiExchange => {
                let tokens = prepare_ci(server, idp, args.ci_tokens, upstream_life, cores).await?;
                (Workload::SingleUse(SingleUse::new(&url, tokens)), raw.exchange())
            }
            Phase::ServerCert => {
                let (token, csr) = prepare_server_cert(server).await?;
                (
                    Workload::Replay(Target::server_certificate(&http, &url, &token, &csr)?),
                    raw.certificate(),
                )
            }
        };
        let name = phase.name();
        let (result, cpu) = run_phase(&http, Arc::new(workload), &limits, args.warm_up, server).await?;
        report::phase(name, &result, &cpu, &raw_crypto, cores);
        if let Some(first) = &result.first_error {
            failed.push(format!("{name}: {} failed, first: {first}", result.errors));
        }
    }
    report::upstream_fetches(&idp.fetches());
    anyhow::ensure!(failed.is_empty(), "requests failed: {}", failed.join("; "));
    Ok(())
}

/// One session per connection, each of its own upstream user (`user_loadgen_<i>`, a local
/// user registered by its first exchange), from the issuer that allows sessions.
async fn start_sessions(
    http: &reqwest::Client,
    url: &str,
    idp: &UpstreamIdp,
    count: u16,
) -> anyhow::Result<RefreshChains> {
    let now = SystemClock.now();
    let upstream_tokens = (0..count)
        .map(|i| {
            idp.mint_for(
                Upstream::Sessions,
                &format!("user_loadgen_{i}"),
                now,
                UPSTREAM_MARGIN,
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    RefreshChains::start(http, url, &upstream_tokens).await
}

/// A warm-up of `warm_up_secs` (errors abort), then the measured run and the CPU time it
/// took. Refresh chains run on from the warm-up into the measured run.
async fn run_phase(
    http: &reqwest::Client,
    workload: Arc<Workload>,
    limits: &Limits,
    warm_up_secs: u64,
    server: &ServerProcess,
) -> anyhow::Result<(PhaseResult, CpuUsage)> {
    if warm_up_secs > 0 {
        let warm_up = Limits {
            duration: Duration::from_secs(warm_up_secs),
            ..*limits
        };
        let warmed = load::run(http, workload.clone(), &warm_up).await?;
        if let Some(first) = &warmed.first_error {
            anyhow::bail!(
                "{} of {} warm-up requests failed, first: {first}",
                warmed.errors,
                warmed.requests()
            );
        }
    }
    let cpu_before = server.cpu_usage();
    let result = load::run(http, workload, limits).await?;
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

/// The repository scope the registry phase asks for (pull and push: both granted).
const REGISTRY_SCOPE: &str = "repository:bench/app:pull,push";

/// A service account of org `bench` that may push (and so pull) its repositories; checks
/// once that a registry token for [`REGISTRY_SCOPE`] grants both actions.
async fn create_registry_pusher(server: &ServerProcess) -> anyhow::Result<ClientCredentials> {
    let admin = tollgate_client::Client::new(&server.url())?.with_admin_token(server.admin_token().clone());
    let org = tollgate_client::proto::orgs::CreateOrgRequest {
        name: "bench".to_owned(),
        ..Default::default()
    };
    admin.create_org(&org).await.context("cannot create the org")?;
    let request = CreateClientRequest {
        name: "registry-pusher".to_owned(),
        scope: vec!["registry:push".to_owned()],
        audiences: Vec::new(),
    };
    let created = admin
        .create_org_service_account("bench", &request)
        .await
        .context("cannot create the registry service account")?;
    let creds = ClientCredentials {
        client_id: created.client.client_id,
        client_secret: SecretString::from(created.client_secret),
    };
    let secret = secrecy::ExposeSecret::expose_secret(&creds.client_secret).to_owned();
    let token = admin
        .registry_token("registry", &[REGISTRY_SCOPE], Some((&creds.client_id, &secret)))
        .await
        .context("cannot get a registry token")?;
    let payload = token.token.split('.').nth(1).context("a compact JWS")?;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .context("base64url payload")?,
    )?;
    anyhow::ensure!(
        claims["access"][0]["actions"] == serde_json::json!(["pull", "push"]),
        "the registry token does not grant pull and push: {claims}"
    );
    Ok(creds)
}

/// A service account that may get server certificates for `*.bench.example.com`, its
/// access token, and a CSR for two names there; checks once that it is issued.
async fn prepare_server_cert(server: &ServerProcess) -> anyhow::Result<(String, String)> {
    let url = server.url();
    let admin = tollgate_client::Client::new(&url)?.with_admin_token(server.admin_token().clone());
    let request = CreateClientRequest {
        name: "cert-bench".to_owned(),
        scope: vec!["certificate:sign:server".to_owned()],
        audiences: vec!["tollgate".to_owned()],
    };
    let created = admin
        .create_client(&request)
        .await
        .context("cannot create the certificate service account")?;
    let rules = tollgate_client::proto::certs::CertificateRules {
        dns: vec!["*.bench.example.com".to_owned()],
        ips: Vec::new(),
    };
    admin
        .set_certificate_rules(&created.client.client_id, &rules)
        .await
        .context("cannot set the certificate rules")?;
    let creds = ClientCredentials {
        client_id: created.client.client_id,
        client_secret: SecretString::from(created.client_secret),
    };
    let client = tollgate_client::Client::new(&url)?;
    let token = client.client_credentials(&creds, None, None).await?.access_token;
    let (key, _pkcs8) = tollgate_crypto::SigningKey::generate(SigningAlg::ES256)?;
    let names = ["a.bench.example.com".to_owned(), "b.bench.example.com".to_owned()];
    let csr = tollgate_crypto::csr::request(&key, "bench", &names, &[])?;
    client
        .with_user_token(token.clone())
        .sign_server_certificate(&csr, None)
        .await
        .context("the benchmark's server certificate was refused")?;
    Ok((token, csr))
}

/// An org with a trust policy for the CI issuer's release tokens, and `count` fresh CI
/// tokens minted on `threads` threads (RS256 signing is the slow part). Checks once that a
/// token is admitted.
async fn prepare_ci(
    server: &ServerProcess,
    idp: &UpstreamIdp,
    count: usize,
    life: Duration,
    threads: usize,
) -> anyhow::Result<Vec<String>> {
    use tollgate_client::proto::ci::{PolicyCondition, PolicyGrant, TrustPolicySpec};
    let admin = tollgate_client::Client::new(&server.url())?.with_admin_token(server.admin_token().clone());
    let org = tollgate_client::proto::orgs::CreateOrgRequest {
        name: "ci-bench".to_owned(),
        ..Default::default()
    };
    admin.create_org(&org).await.context("cannot create the CI org")?;
    let equals = |claim: &str, value: &str| PolicyCondition {
        claim: claim.to_owned(),
        equals: Some(value.to_owned()),
        ..PolicyCondition::default()
    };
    let policy = TrustPolicySpec {
        issuer: idp::CI_ISSUER_NAME.to_owned(),
        conditions: vec![
            equals("owner_id", idp::CI_OWNER_ID),
            equals("repository", idp::CI_REPOSITORY),
            equals("ref_protected", "true"),
            PolicyCondition {
                claim: "ref".to_owned(),
                glob: Some("refs/tags/v*".to_owned()),
                ..PolicyCondition::default()
            },
        ],
        grant: PolicyGrant {
            scopes: vec!["deploy".to_owned()],
            audiences: vec!["https://deploy.example.com".to_owned()],
            ..PolicyGrant::default()
        },
        max_ttl: Some("10m".to_owned()),
        enabled: true,
        ..TrustPolicySpec::default()
    };
    admin
        .put_trust_policy("ci-bench", "release", &policy)
        .await
        .context("cannot create the trust policy")?;
    let now = SystemClock.now();
    let threads = threads.max(1);
    let minted = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|i| idp.mint_for(Upstream::Ci, &format!("loadgen-ci-{i}"), now, life))
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a minting thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<Vec<String>>>>()
    })?;
    let mut tokens: Vec<String> = minted.into_iter().flatten().collect();
    let probe = tokens.pop().context("--ci-tokens must be at least 1")?;
    let client = tollgate_client::Client::new(&server.url())?;
    client
        .token_exchange(&tollgate_client::TokenExchange::jwt(&probe))
        .await
        .context("the CI token is not admitted by the trust policy")?;
    Ok(tokens)
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
