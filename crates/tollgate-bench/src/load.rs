//! Driving one endpoint with a fixed number of requests in flight, bounded in time and count.
//!
//! Workers share a keep-alive client and record the latency of each request whatever its
//! outcome. In most phases every worker replays a clone of one prepared request, which
//! counts as failed unless it gets a 2xx answer of the expected shape. In the refresh phase
//! each worker follows a chain of its own: it spends its current refresh token and keeps
//! the one the answer rotates in; anything but a 200 with a new refresh token is a failure,
//! and it ends the worker's chain (the token it presented may or may not be spent by then,
//! and presenting a spent one again would revoke the session), so no worker ever goes on
//! with a stale token.

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tollgate_client::ClientCredentials;
use tollgate_proto::oauth::{IntrospectionResponse, TokenResponse};

/// No single request may take longer; it bounds how long a phase can overrun its deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a failed response's body an error message quotes.
const QUOTED_BODY: usize = 200;

/// When a phase stops, and how many requests it keeps in flight.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub duration: Duration,
    pub max_requests: u64,
    pub concurrency: u16,
}

/// The HTTP client all workers share: loopback only, no proxy, connections kept alive.
pub fn http_client(concurrency: u16) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(usize::from(concurrency))
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("cannot build the HTTP client")
}

/// What a 2xx response must also satisfy.
#[derive(Debug, Clone, Copy)]
enum Expect {
    AnyBody,
    ActiveToken,
}

/// A prepared request, replayed by every worker.
#[derive(Debug)]
pub struct Target {
    request: reqwest::Request,
    expect: Expect,
}

impl Target {
    /// `POST /oauth/token` with the client_credentials grant and HTTP Basic authentication.
    pub fn token(http: &reqwest::Client, base_url: &str, creds: &ClientCredentials) -> anyhow::Result<Self> {
        let request = basic_auth(http.post(format!("{base_url}/oauth/token")), creds)
            .form(&[("grant_type", "client_credentials")]);
        Self::new(request, Expect::AnyBody)
    }

    /// `POST /oauth/introspect` of `token`, authenticated as the client it was issued to.
    pub fn introspect(
        http: &reqwest::Client,
        base_url: &str,
        creds: &ClientCredentials,
        token: &str,
    ) -> anyhow::Result<Self> {
        let request =
            basic_auth(http.post(format!("{base_url}/oauth/introspect")), creds).form(&[("token", token)]);
        Self::new(request, Expect::ActiveToken)
    }

    /// `POST /oauth/token` with the RFC 8693 token-exchange grant for `subject_token`, a JWT
    /// of a trusted upstream issuer, without client authentication.
    pub fn token_exchange(
        http: &reqwest::Client,
        base_url: &str,
        subject_token: &str,
    ) -> anyhow::Result<Self> {
        let request = http.post(format!("{base_url}/oauth/token")).form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", subject_token),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ]);
        Self::new(request, Expect::AnyBody)
    }

    /// `GET /v2/token` for push and pull on one repository, as a registry client asks,
    /// with a service account's HTTP Basic credentials.
    pub fn registry_token(
        http: &reqwest::Client,
        base_url: &str,
        creds: &ClientCredentials,
        scope: &str,
    ) -> anyhow::Result<Self> {
        let request = basic_auth(http.get(format!("{base_url}/v2/token")), creds)
            .query(&[("service", "registry"), ("scope", scope)]);
        Self::new(request, Expect::AnyBody)
    }

    /// `POST /v1/certificates/server` of `csr` with a service account's `token`.
    pub fn server_certificate(
        http: &reqwest::Client,
        base_url: &str,
        token: &str,
        csr: &str,
    ) -> anyhow::Result<Self> {
        let request = http
            .post(format!("{base_url}/v1/certificates/server"))
            .bearer_auth(token)
            .json(&serde_json::json!({"csr": csr}));
        Self::new(request, Expect::AnyBody)
    }

    fn new(builder: reqwest::RequestBuilder, expect: Expect) -> anyhow::Result<Self> {
        let request = builder.build().context("cannot build the request")?;
        // Only streaming bodies refuse to clone, and a form body is a buffer; check anyway,
        // once, so workers never meet a request they cannot replay.
        anyhow::ensure!(request.try_clone().is_some(), "the request cannot be replayed");
        Ok(Self { request, expect })
    }
}

/// The refresh phase's chains: one session per worker, and the refresh token each will
/// spend next (`None` once its chain has ended on a failure).
#[derive(Debug)]
pub struct RefreshChains {
    token_url: reqwest::Url,
    next: Vec<Mutex<Option<String>>>,
}

impl RefreshChains {
    /// Starts one session per upstream token (each an RFC 8693 exchange with an issuer that
    /// allows sessions) and keeps the refresh tokens they return. Fails on any refusal.
    pub async fn start(
        http: &reqwest::Client,
        base_url: &str,
        upstream_tokens: &[String],
    ) -> anyhow::Result<Self> {
        let token_url: reqwest::Url = format!("{base_url}/oauth/token")
            .parse()
            .context("invalid server URL")?;
        let mut next = Vec::with_capacity(upstream_tokens.len());
        for subject_token in upstream_tokens {
            let request = http.post(token_url.clone()).form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("subject_token", subject_token.as_str()),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ]);
            let refresh_token = expect_refresh_token(request, None)
                .await
                .map_err(|e| anyhow::anyhow!("cannot start a session: {e}"))?;
            next.push(Mutex::new(Some(refresh_token)));
        }
        Ok(Self { token_url, next })
    }
}

/// Upstream tokens that are each accepted once (CI OIDC tokens): workers take one per
/// request and exchange it; the phase ends early if they run out.
#[derive(Debug)]
pub struct SingleUse {
    base_url: String,
    tokens: Mutex<Vec<String>>,
}

impl SingleUse {
    pub fn new(base_url: &str, tokens: Vec<String>) -> Self {
        Self {
            base_url: base_url.to_owned(),
            tokens: Mutex::new(tokens),
        }
    }

    fn take(&self) -> Option<String> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }
}

/// What the workers of a phase do.
#[derive(Debug)]
pub enum Workload {
    /// Every worker replays the one request.
    Replay(Target),
    /// Worker `i` follows chain `i`; there are as many workers as chains.
    Refresh(RefreshChains),
    /// Every worker exchanges tokens of the pool, each once.
    SingleUse(SingleUse),
}

/// RFC 6749 §2.3.1 wants id and secret form-encoded first; tollgate's ids and secrets are
/// `[0-9A-Za-z_]`, which form-encoding leaves as they are.
fn basic_auth(builder: reqwest::RequestBuilder, creds: &ClientCredentials) -> reqwest::RequestBuilder {
    builder.basic_auth(&creds.client_id, Some(creds.client_secret.expose_secret()))
}

/// The outcome of one phase.
#[derive(Debug)]
pub struct PhaseResult {
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    /// Latency of every request, failed ones included, sorted ascending.
    pub latencies: Vec<Duration>,
    pub errors: u64,
    /// Set whenever `errors > 0`.
    pub first_error: Option<String>,
    /// Workers that stopped before the end because their chain broke (refresh phase).
    pub stopped_workers: u64,
}

impl PhaseResult {
    pub fn requests(&self) -> u64 {
        u64::try_from(self.latencies.len()).unwrap_or(u64::MAX)
    }

    pub fn successes(&self) -> u64 {
        self.requests().saturating_sub(self.errors)
    }

    /// Successful requests per second of wall-clock time.
    pub fn successes_per_second(&self) -> f64 {
        self.successes() as f64 / self.elapsed.as_secs_f64()
    }

    /// The nearest-rank percentile `q` (0 < q ≤ 1) of the latencies.
    pub fn percentile(&self, q: f64) -> Duration {
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        self.latencies
            .get(rank.saturating_sub(1))
            .copied()
            .unwrap_or_default()
    }
}

/// Runs `workload` until the deadline or the request budget: with `limits.concurrency`
/// workers, or one per chain.
pub async fn run(
    http: &reqwest::Client,
    workload: Arc<Workload>,
    limits: &Limits,
) -> anyhow::Result<PhaseResult> {
    let workers = match &*workload {
        Workload::Replay(_) | Workload::SingleUse(_) => usize::from(limits.concurrency),
        Workload::Refresh(chains) => chains.next.len(),
    };
    let budget = Arc::new(Budget::new(limits));
    let started = Instant::now();
    let workers: Vec<_> = (0..workers)
        .map(|i| tokio::spawn(worker(http.clone(), workload.clone(), i, budget.clone())))
        .collect();
    let mut total = Tally::default();
    for w in workers {
        total.merge(w.await.context("a load worker panicked")?);
    }
    let elapsed = started.elapsed();
    total.latencies.sort_unstable();
    Ok(PhaseResult {
        elapsed,
        latencies: total.latencies,
        errors: total.errors,
        first_error: total.first_error,
        stopped_workers: total.stopped,
    })
}

/// The shared stop condition: a deadline and a number of requests.
#[derive(Debug)]
struct Budget {
    deadline: Instant,
    max_requests: u64,
    taken: AtomicU64,
}

impl Budget {
    fn new(limits: &Limits) -> Self {
        Self {
            deadline: Instant::now() + limits.duration,
            max_requests: limits.max_requests,
            taken: AtomicU64::new(0),
        }
    }

    /// Claims one request; `false` once time or count is used up.
    fn take(&self) -> bool {
        Instant::now() < self.deadline && self.taken.fetch_add(1, Ordering::Relaxed) < self.max_requests
    }
}

/// One worker's record.
#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    stopped: u64,
}

impl Tally {
    fn record(&mut self, latency: Duration, outcome: Result<(), String>) {
        self.latencies.push(latency);
        if let Err(e) = outcome {
            self.errors += 1;
            self.first_error.get_or_insert(e);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.stopped += other.stopped;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

async fn worker(http: reqwest::Client, workload: Arc<Workload>, index: usize, budget: Arc<Budget>) -> Tally {
    match &*workload {
        Workload::Replay(target) => replay(&http, target, &budget).await,
        Workload::SingleUse(pool) => spend(&http, pool, &budget).await,
        Workload::Refresh(chains) => match chains.next.get(index) {
            Some(next) => follow_chain(&http, &chains.token_url, next, &budget).await,
            None => Tally::default(),
        },
    }
}

async fn spend(http: &reqwest::Client, pool: &SingleUse, budget: &Budget) -> Tally {
    let mut tally = Tally::default();
    while budget.take() {
        let Some(token) = pool.take() else { break };
        let outcome = match Target::token_exchange(http, &pool.base_url, &token) {
            Ok(target) => {
                let started = Instant::now();
                let outcome = send(http, &target).await;
                tally.record(started.elapsed(), outcome);
                continue;
            }
            Err(e) => Err(e.to_string()),
        };
        tally.record(Duration::ZERO, outcome);
    }
    tally
}

async fn replay(http: &reqwest::Client, target: &Target, budget: &Budget) -> Tally {
    let mut tally = Tally::default();
    while budget.take() {
        let started = Instant::now();
        let outcome = send(http, target).await;
        tally.record(started.elapsed(), outcome);
    }
    tally
}

/// Spends the chain's refresh token and keeps its successor, request after request; stops
/// at the first failure and leaves the chain ended.
async fn follow_chain(
    http: &reqwest::Client,
    token_url: &reqwest::Url,
    next: &Mutex<Option<String>>,
    budget: &Budget,
) -> Tally {
    let mut tally = Tally::default();
    // Taken for the whole run; put back only if the chain is still good at the end.
    let Some(mut current) = next.lock().unwrap_or_else(PoisonError::into_inner).take() else {
        return tally;
    };
    while budget.take() {
        let started = Instant::now();
        let request = http.post(token_url.clone()).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", current.as_str()),
        ]);
        let outcome = expect_refresh_token(request, Some(&current)).await;
        let latency = started.elapsed();
        match outcome {
            Ok(successor) => {
                tally.record(latency, Ok(()));
                current = successor;
            }
            Err(e) => {
                tally.record(latency, Err(format!("{e} (this worker's chain ended here)")));
                tally.stopped += 1;
                return tally;
            }
        }
    }
    *next.lock().unwrap_or_else(PoisonError::into_inner) = Some(current);
    tally
}

/// Sends a request that must answer exactly 200 with a refresh token (other than `spent`,
/// the one it presented); returns that token.
async fn expect_refresh_token(
    request: reqwest::RequestBuilder,
    spent: Option<&str>,
) -> Result<String, String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if status != reqwest::StatusCode::OK {
        let quoted = String::from_utf8_lossy(&body[..body.len().min(QUOTED_BODY)]).into_owned();
        return Err(format!("HTTP {status}: {quoted}"));
    }
    let answer: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| format!("the token answer is not JSON of the expected shape: {e}"))?;
    match answer.refresh_token {
        Some(t) if t.starts_with("tg_rt_") && Some(t.as_str()) != spent => Ok(t),
        Some(_) => Err("the answer's refresh_token is not a new tg_rt_ token".to_owned()),
        None => Err("the answer has no refresh_token".to_owned()),
    }
}

/// Sends one request and reads the whole answer, so the connection can be reused.
async fn send(http: &reqwest::Client, target: &Target) -> Result<(), String> {
    let request = target
        .request
        .try_clone()
        .ok_or("the request cannot be replayed")?;
    let response = http.execute(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        let quoted = String::from_utf8_lossy(&body[..body.len().min(QUOTED_BODY)]).into_owned();
        return Err(format!("HTTP {status}: {quoted}"));
    }
    match target.expect {
        Expect::AnyBody => Ok(()),
        Expect::ActiveToken => match serde_json::from_slice::<IntrospectionResponse>(&body) {
            Ok(r) if r.active => Ok(()),
            Ok(_) => Err("introspection answered active: false".to_owned()),
            Err(e) => Err(format!(
                "introspection answer is not JSON of the expected shape: {e}"
            )),
        },
    }
}
