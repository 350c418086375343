//! Driving one endpoint with a fixed number of requests in flight, bounded in time and count.
//!
//! Every worker replays a clone of one prepared request on a shared keep-alive client, and
//! records the latency of each request whatever its outcome. A request counts as failed
//! unless it gets a 2xx answer of the expected shape.

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tollgate_client::ClientCredentials;
use tollgate_proto::oauth::IntrospectionResponse;

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

    fn new(builder: reqwest::RequestBuilder, expect: Expect) -> anyhow::Result<Self> {
        let request = builder.build().context("cannot build the request")?;
        // Only streaming bodies refuse to clone, and a form body is a buffer; check anyway,
        // once, so workers never meet a request they cannot replay.
        anyhow::ensure!(request.try_clone().is_some(), "the request cannot be replayed");
        Ok(Self { request, expect })
    }
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

/// Runs `target` with `limits.concurrency` workers until the deadline or the request budget.
pub async fn run(
    http: &reqwest::Client,
    target: Arc<Target>,
    limits: &Limits,
) -> anyhow::Result<PhaseResult> {
    let budget = Arc::new(Budget::new(limits));
    let started = Instant::now();
    let workers: Vec<_> = (0..limits.concurrency)
        .map(|_| tokio::spawn(worker(http.clone(), target.clone(), budget.clone())))
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
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

async fn worker(http: reqwest::Client, target: Arc<Target>, budget: Arc<Budget>) -> Tally {
    let mut tally = Tally::default();
    while budget.take() {
        let started = Instant::now();
        let outcome = send(&http, &target).await;
        tally.record(started.elapsed(), outcome);
    }
    tally
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
