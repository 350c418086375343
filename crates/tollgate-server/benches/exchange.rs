//! What an RFC 8693 token exchange costs compared with the crypto it is built on.
//!
//! An exchange verifies an upstream RS256 token and signs an EdDSA access token. Over the
//! same upstream token, three things are measured in one process:
//! - `raw`: the aws-lc-rs calls alone: RS256 verification of the upstream token's signing
//!   input, then an Ed25519 signature over an access token's signing input;
//! - `engine`: the exchange's CPU path without I/O: [`verify_upstream`] (its key resolver
//!   returns a key parsed beforehand), [`client_grant::decide`] and [`jws::sign`] of the
//!   access-token claims;
//! - `service`: the real server path, [`exchange::exchange`] on a built [`App`] (SQLite in a
//!   temporary directory, the issuer's discovery document and JWKS served over 127.0.0.1 by
//!   this process, the JWKS cache warmed before measuring). It includes everything a request
//!   does after its form is read, the audit insert into SQLite of every token included.
//!
//! Criterion measures each one. Then, in the same process, plain timed loops measure each
//! exchange path and the raw pair in alternating slices and print the path's rate as a share
//! of the raw rate, the latency distribution of single service calls, and where the service
//! path's time goes beyond the engine's.
//!
//! Async work runs on a current-thread tokio runtime: one thread does the exchange, as one
//! core of the server would. sqlx runs each SQLite connection on a thread of its own, so the
//! audit insert hands work to that thread and waits for it; the wall-clock figures include
//! that hand-off, and the CPU figures (Linux only) count every thread of this process.
//!
//! A broken fixture has no caller to report to, so setup failures `expect` loudly.

#![allow(clippy::print_stdout)] // The ratios are this benchmark's output.

#[path = "../../tollgate-crypto/benches/common/paired_timing.rs"]
mod paired_timing;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use axum::Router;
use axum::http::{HeaderMap, header};
use axum::routing::get;
use base64::Engine as _;
use criterion::Criterion;
use paired_timing::{RATIO_SLICES, RATIO_TIME, time_pair, time_per_op};
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tollgate_core::claims::UpstreamSubject;
use tollgate_core::client_grant::{self, ClientRequest, Grant, GrantLimits};
use tollgate_core::time::Clock as _;
use tollgate_core::upstream::issuer::IssuerSet;
use tollgate_core::upstream::{GrantSpec, Issuer, IssuerSpec, NoTrace, Preset};
use tollgate_core::{AccessTokenClaims, Audience, JwsAlg, SigningAlg, UnixTime};
use tollgate_crypto::upstream::{KeyLookup, verify_upstream};
use tollgate_crypto::{Jwk, MasterKey, SigningKey, VerifyingKey, jws};
use tollgate_proto::oauth::TokenResponse;
use tollgate_server::clock::SystemClock;
use tollgate_server::exchange::{self, ACCESS_TOKEN_TYPE, GRANT_TYPE};
use tollgate_server::extract::form::Form;
use tollgate_server::tokens::{self, Subject};
use tollgate_server::{App, Config};

/// The brief: an exchange keeps at least this share of the raw verify+sign rate.
const EXCHANGE_GOAL_PERCENT: f64 = 55.0;
/// The brief: p99 of an in-process exchange stays under this.
const P99_GOAL: Duration = Duration::from_millis(1);
/// Single service calls timed one by one for the latency distribution.
const LATENCY_CALLS: usize = 2000;
/// Mean time per part of the service path is taken over about this long per part.
const PART_TIME: Duration = Duration::from_millis(500);
/// The issuer's name in tollgate's configuration.
const ISSUER_NAME: &str = "clerk-bench";
/// The subject token type the exchange is asked with.
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The upstream issuer's endpoints, served on 127.0.0.1 by this process, and what they served.
struct Idp {
    issuer_url: String,
    discovery_fetches: Arc<AtomicU64>,
    jwks_fetches: Arc<AtomicU64>,
}

impl Idp {
    /// Binds 127.0.0.1 on a free port and serves `{issuer}/.well-known/openid-configuration`
    /// and `{issuer}/.well-known/jwks.json` (with `key`'s public JWK) on `rt`.
    fn start(rt: &tokio::runtime::Runtime, key: &Jwk) -> Self {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let issuer_url = format!("http://{addr}/clerk");
        let discovery_fetches = Arc::new(AtomicU64::new(0));
        let jwks_fetches = Arc::new(AtomicU64::new(0));
        let discovery = json!({
            "issuer": issuer_url,
            "jwks_uri": format!("{issuer_url}/.well-known/jwks.json"),
        });
        let jwks = json!({ "keys": [key] });
        let (d, j) = (discovery_fetches.clone(), jwks_fetches.clone());
        let router = Router::new()
            .route(
                "/clerk/.well-known/openid-configuration",
                get(move || async move {
                    d.fetch_add(1, Ordering::Relaxed);
                    axum::Json(discovery)
                }),
            )
            .route(
                "/clerk/.well-known/jwks.json",
                get(move || async move {
                    j.fetch_add(1, Ordering::Relaxed);
                    (
                        [(header::CACHE_CONTROL, "public, max-age=3600")],
                        axum::Json(jwks),
                    )
                }),
            );
        rt.spawn(async move {
            axum::serve(listener, router).await.expect("the IdP serves");
        });
        Self {
            issuer_url,
            discovery_fetches,
            jwks_fetches,
        }
    }

    fn fetches(&self) -> (u64, u64) {
        (
            self.discovery_fetches.load(Ordering::Relaxed),
            self.jwks_fetches.load(Ordering::Relaxed),
        )
    }
}

/// How tollgate trusts the issuer: Clerk's preset, with a grant for exchanged tokens.
fn issuer_spec(issuer_url: &str) -> IssuerSpec {
    IssuerSpec {
        name: ISSUER_NAME.into(),
        issuer: issuer_url.into(),
        preset: Preset::Clerk,
        authorized_parties: vec!["https://app.example.com".into()],
        grant: Some(GrantSpec {
            scopes: vec!["orders:read".into(), "orders:write".into()],
            audiences: vec!["https://api.example.com/orders".into()],
            ..GrantSpec::default()
        }),
        enabled: true,
        ..IssuerSpec::default()
    }
}

/// A Clerk v2 session token's claims (ids of Clerk's length). Clerk's tokens live 60 s;
/// this one lives an hour, so a slow run does not see it expire.
fn upstream_claims(issuer_url: &str, now: UnixTime) -> Value {
    json!({
        "azp": "https://app.example.com",
        "email": "ada.lovelace@example.com",
        "exp": now.0 + 3600,
        "fva": [3, -1],
        "iat": now.0,
        "iss": issuer_url,
        "jti": "b1c4d8e2f7a90356c1e2",
        "nbf": now.0 - 10,
        "o": {
            "id": "org_2mXn5AbCdEfGhIjKlMnOpQrStUv",
            "per": "org:orders:read,org:orders:manage",
            "rol": "admin",
            "slg": "acme",
        },
        "sid": "sess_2mXn4QzK8bY1vR7tW3pL9cD6fHj",
        "sub": "user_2mXn4R9pQ7sT1vW8yZ3bC5dF0gH",
        "v": 2,
    })
}

/// Everything the measured operations need, built once.
struct Fixture {
    rt: tokio::runtime::Runtime,
    idp: Idp,
    /// The upstream token every path verifies.
    upstream_token: String,
    /// `header.payload` of `upstream_token` and its signature, for the raw verification.
    upstream_signing_input: Vec<u8>,
    upstream_signature: Vec<u8>,
    upstream_public: ParsedPublicKey,
    /// The engine's key, parsed once as the JWKS cache does.
    upstream_verifier: VerifyingKey,
    issuers: IssuerSet,
    max_upstream_bytes: usize,
    /// The engine's access-token key (the service uses its own key ring's, same algorithm).
    access_key: SigningKey,
    /// `header.payload` of an exchanged access token, for the raw signature.
    access_signing_input: Vec<u8>,
    request: ClientRequest,
    limits: GrantLimits,
    public_url: String,
    /// The running server's state; the `TempDir` holds its SQLite database.
    app: App,
    _data_dir: tempfile::TempDir,
    /// The token endpoint's form body of an exchange.
    body: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (upstream_key, _pkcs8) = SigningKey::generate(SigningAlg::RS256).expect("RSA key generation");
        let idp = Idp::start(&rt, upstream_key.public_jwk());
        let now = SystemClock.now();
        let upstream_token =
            jws::sign(&upstream_key, "JWT", &upstream_claims(&idp.issuer_url, now)).expect("upstream token");
        let (input, signature) = upstream_token.rsplit_once('.').expect("compact JWS");
        let upstream_signing_input = input.as_bytes().to_vec();
        let upstream_signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .expect("base64url signature");
        let upstream_public = rsa_public_key(upstream_key.public_jwk());
        let upstream_verifier =
            VerifyingKey::from_jwk(JwsAlg::RS256, upstream_key.public_jwk()).expect("RS256 verifier");

        let data_dir = tempfile::tempdir().expect("temporary data directory");
        let mut config = Config::default();
        config.server.data_dir = data_dir.path().to_owned();
        config.tokens.signing_alg = SigningAlg::EdDSA;
        config.issuers = vec![issuer_spec(&idp.issuer_url)];
        let issuer: Issuer = config.issuers[0].resolve().expect("issuer spec");
        let issuers = IssuerSet::new(vec![issuer]).expect("issuer set");
        let limits = GrantLimits {
            default_audience: Audience::parse(config.default_audience()).expect("default audience"),
            access_ttl: config.tokens.access_ttl,
        };
        let public_url = config.server.public_url.clone();
        let max_upstream_bytes = config.upstream.max_token_bytes;
        let app = rt
            .block_on(App::build(config, MasterKey::generate(), Arc::new(SystemClock)))
            .expect("tollgate app");
        let body = format!(
            "grant_type={GRANT_TYPE}&subject_token={upstream_token}&subject_token_type={JWT_TOKEN_TYPE}"
        )
        .into_bytes();

        let (access_key, _pkcs8) = SigningKey::generate(SigningAlg::EdDSA).expect("Ed25519 key generation");
        let mut fixture = Self {
            rt,
            idp,
            upstream_token,
            upstream_signing_input,
            upstream_signature,
            upstream_public,
            upstream_verifier,
            issuers,
            max_upstream_bytes,
            access_key,
            access_signing_input: Vec::new(),
            request: ClientRequest::default(),
            limits,
            public_url,
            app,
            _data_dir: data_dir,
            body,
        };
        let engine_token = fixture.engine();
        let (input, _signature) = engine_token.rsplit_once('.').expect("compact JWS");
        fixture.access_signing_input = input.as_bytes().to_vec();
        fixture.raw();
        // The first exchange fetches discovery and the JWKS; every later one uses the cache.
        let issued = fixture.service();
        let state = &fixture.app.state;
        let claims = tokens::verify(state, &issued.access_token).expect("the exchanged token verifies");
        assert!(
            claims.sub.starts_with("usr_"),
            "the upstream identity maps to a local user: {}",
            claims.sub
        );
        assert_eq!(
            claims.upstream.as_ref().map(|u| u.sub.as_str()),
            Some("user_2mXn4R9pQ7sT1vW8yZ3bC5dF0gH")
        );
        assert_eq!(claims.scope, "orders:read orders:write");
        assert_eq!(issued.issued_token_type.as_deref(), Some(ACCESS_TOKEN_TYPE));
        assert_eq!(
            fixture.idp.fetches(),
            (1, 1),
            "one discovery and one JWKS fetch to warm up"
        );
        fixture
    }

    /// RS256 verification of the upstream token's signing input, then an Ed25519 signature
    /// over an access token's: the aws-lc-rs calls an exchange cannot avoid.
    fn raw(&self) -> Vec<u8> {
        self.raw_verify();
        self.raw_sign()
    }

    fn raw_verify(&self) {
        self.upstream_public
            .verify_sig(
                black_box(&self.upstream_signing_input),
                black_box(&self.upstream_signature),
            )
            .expect("raw RS256 signature verifies");
    }

    fn raw_sign(&self) -> Vec<u8> {
        self.access_key
            .sign(black_box(&self.access_signing_input))
            .expect("raw Ed25519 signing")
    }

    /// The exchange's CPU path, as `exchange::exchange` and `tokens::issue` run it, minus I/O:
    /// verification with a key found beforehand, the grant decision, claims and signature.
    fn engine(&self) -> String {
        let key = &self.upstream_verifier;
        let mut resolve = |_: &Issuer, kid: Option<&str>, alg: JwsAlg| match kid {
            Some(kid) if kid == key.kid() && alg == key.alg() => KeyLookup::Found(key),
            _ => KeyLookup::NotFound,
        };
        let now = SystemClock.now();
        let verified = verify_upstream(
            black_box(&self.upstream_token),
            self.max_upstream_bytes,
            &self.issuers,
            now,
            &mut resolve,
            &mut NoTrace,
        )
        .expect("the upstream token verifies");
        let issuer = verified.issuer;
        let grant: Grant =
            client_grant::decide(&issuer.grant, &self.request, &self.limits).expect("the grant allows");
        let id = verified.identity;
        let claims = AccessTokenClaims {
            iss: self.public_url.clone(),
            // Stands in for the local user id: looking the user up is I/O, measured in `service`.
            sub: format!("{}:{}", issuer.name, id.subject),
            aud: grant.audience.to_string(),
            client_id: tokens::upstream_client_id(&issuer.name),
            scope: grant.scope.to_string(),
            iat: now,
            nbf: now,
            exp: now.plus(grant.ttl),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            upstream: Some(UpstreamSubject {
                iss: id.issuer,
                sub: id.subject,
                name: issuer.name.clone(),
                email: id.email,
                org_id: id.org_id,
                org_role: id.org_role,
            }),
            act: None,
            user_ver: None,
            org: None,
            roles: Vec::new(),
            ci: None,
        };
        jws::sign(&self.access_key, "at+jwt", &claims).expect("access-token signing")
    }

    /// One exchange through the server's code, from the parsed form to the response.
    async fn service_call(&self) -> TokenResponse {
        let form = Form::parse(black_box(&self.body)).expect("form body");
        exchange::exchange(&self.app.state, &HeaderMap::new(), &form)
            .await
            .expect("the exchange succeeds")
    }

    fn service(&self) -> TokenResponse {
        self.rt.block_on(self.service_call())
    }
}

/// The aws-lc-rs public key of an RSA JWK, built directly (as `VerifyingKey::from_jwk` does).
fn rsa_public_key(jwk: &Jwk) -> ParsedPublicKey {
    let field = |v: &Option<String>| {
        let text = v.as_deref().expect("JWK member present");
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .expect("base64url")
    };
    let (n, e) = (field(&jwk.n), field(&jwk.e));
    RsaPublicKeyComponents {
        n: n.as_slice(),
        e: e.as_slice(),
    }
    .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
    .expect("RSA public key parses")
}

fn criterion_benches(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("exchange");
    group.bench_function("raw_verify_rs256", |b| b.iter(|| f.raw_verify()));
    group.bench_function("raw_sign_eddsa", |b| b.iter(|| f.raw_sign()));
    group.bench_function("raw_verify_rs256+sign_eddsa", |b| b.iter(|| f.raw()));
    group.bench_function("engine", |b| b.iter(|| f.engine()));
    // One `block_on` per batch, so its own cost stays out of the per-call figure.
    group.bench_function("service_incl_sqlite_audit", |b| {
        b.iter_custom(|iters| {
            f.rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(f.service_call().await);
                }
                started.elapsed()
            })
        });
    });
    group.finish();
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn print_ratio(what: &str, path: Duration, raw: Duration) {
    let share = 100.0 * raw.as_secs_f64() / path.as_secs_f64();
    let goal = EXCHANGE_GOAL_PERCENT;
    let verdict = if share >= goal { "met" } else { "NOT met" };
    println!(
        "ratio exchange {what}: {} vs raw {} -> {share:.1}% of raw rate (goal >= {goal:.0}%: {verdict})",
        micros(path),
        micros(raw)
    );
}

/// What this process's threads have used so far, read from Linux's `/proc` (absent
/// elsewhere). Threads that have exited are not counted; sqlx's SQLite workers live as long
/// as their connections.
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// CPU time of all threads, from `schedstat` (nanoseconds).
    cpu: Duration,
    /// User and kernel time of the process, from `stat` (in 1/100 s ticks, so only good for
    /// a share over many calls).
    user_ticks: u64,
    kernel_ticks: u64,
    /// Voluntary and involuntary context switches of all threads.
    switches: u64,
}

impl Usage {
    fn now() -> Option<Self> {
        let mut cpu = 0u64;
        let mut switches = 0u64;
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let dir = task.ok()?.path();
            let schedstat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
            cpu += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            for line in status.lines() {
                if let Some(n) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    switches += n.trim().parse::<u64>().ok()?;
                }
            }
        }
        // Fields 14 and 15 of proc(5) `stat`, counted after the parenthesised command name.
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(14 - 3);
        let user_ticks = fields.next()?.parse().ok()?;
        let kernel_ticks = fields.next()?.parse().ok()?;
        Some(Self {
            cpu: Duration::from_nanos(cpu),
            user_ticks,
            kernel_ticks,
            switches,
        })
    }

    /// `CPU … µs (…% in the kernel), … context switches` per call since `earlier`.
    fn per_call(earlier: Option<Self>, calls: u32) -> String {
        let (Some(earlier), Some(now)) = (earlier, Self::now()) else {
            return "CPU n/a".to_owned();
        };
        let user = now.user_ticks.saturating_sub(earlier.user_ticks);
        let kernel = now.kernel_ticks.saturating_sub(earlier.kernel_ticks);
        let kernel_share = 100.0 * kernel as f64 / (user + kernel).max(1) as f64;
        let switches = now.switches.saturating_sub(earlier.switches) as f64 / f64::from(calls);
        format!(
            "CPU {} ({kernel_share:.0}% in the kernel), {switches:.1} context switches",
            micros(now.cpu.saturating_sub(earlier.cpu) / calls)
        )
    }
}

/// `q` (0 < q ≤ 1) by nearest rank of sorted `latencies`.
fn percentile(latencies: &[Duration], q: f64) -> Duration {
    let rank = (q * latencies.len() as f64).ceil() as usize;
    latencies.get(rank.saturating_sub(1)).copied().unwrap_or_default()
}

/// Single service calls, each timed on its own: the latency a request would see in-process.
fn print_latency(f: &Fixture) {
    let before = Usage::now();
    let (mut latencies, wall) = f.rt.block_on(async {
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(LATENCY_CALLS);
        for _ in 0..LATENCY_CALLS {
            let call = Instant::now();
            black_box(f.service_call().await);
            latencies.push(call.elapsed());
        }
        (latencies, started.elapsed())
    });
    let calls = u32::try_from(LATENCY_CALLS).unwrap_or(u32::MAX);
    let usage = Usage::per_call(before, calls);
    latencies.sort_unstable();
    let p99 = percentile(&latencies, 0.99);
    let verdict = if p99 < P99_GOAL { "met" } else { "NOT met" };
    println!(
        "latency exchange service (incl. SQLite audit write), {LATENCY_CALLS} calls one after another: \
         p50 {}, p90 {}, p99 {}, max {} (goal p99 < {P99_GOAL:?}: {verdict})",
        micros(percentile(&latencies, 0.50)),
        micros(percentile(&latencies, 0.90)),
        micros(p99),
        micros(latencies.last().copied().unwrap_or_default()),
    );
    println!(
        "  per call over those {LATENCY_CALLS}: wall {}, {usage} (all threads of this process: \
         the runtime's and sqlx's SQLite worker)",
        micros(wall / calls)
    );
}

/// The service path in its parts, each timed on the same app for about [`PART_TIME`] (means,
/// not best slices): which of them makes the difference to the engine.
fn print_breakdown(f: &Fixture) {
    let state = &f.app.state;
    let token = f.upstream_token.as_str();
    let verified =
        f.rt.block_on(state.upstream.verify(token, &mut NoTrace))
            .expect("the upstream token verifies");
    let issuer = &verified.issuer;
    let grant = client_grant::decide(&issuer.grant, &f.request, &f.limits).expect("the grant allows");
    let id = &verified.identity;
    let subject = Subject {
        sub: format!("{}:{}", issuer.name, id.subject),
        client_id: tokens::upstream_client_id(&issuer.name),
        upstream: Some(UpstreamSubject {
            iss: id.issuer.clone(),
            sub: id.subject.clone(),
            name: issuer.name.clone(),
            email: id.email.clone(),
            org_id: id.org_id.clone(),
            org_role: id.org_role.clone(),
        }),
        act: None,
        user_ver: None,
        org: None,
        roles: Vec::new(),
        ci: None,
    };
    let actor = format!("upstream:{}:{}", issuer.name, verified.identity.subject);
    let detail = json!({
        "issuer": issuer.name, "subject": verified.identity.subject, "client_id": subject.client_id,
        "aud": grant.audience.to_string(), "scope": grant.scope.to_string(), "exp": 0, "actor": null,
    });

    let engine = time_per_op(PART_TIME, &mut || f.engine());
    let service = time_per_op(PART_TIME, &mut || f.service());
    let verify = time_per_op(PART_TIME, &mut || {
        f.rt.block_on(state.upstream.verify(token, &mut NoTrace))
            .expect("the upstream token verifies")
    });
    let issue = time_per_op(PART_TIME, &mut || {
        tokens::issue(state, subject.clone(), &grant).expect("token issued")
    });
    // Timed by hand rather than with `time_per_op`, to read the CPU time around the same calls.
    let jti = "0f8c2d7e4b9a41c3a6e5d2f1b0c9e8d7";
    let before = Usage::now();
    let started = Instant::now();
    let mut audits = 0u32;
    while audits == 0 || started.elapsed() < 2 * PART_TIME {
        f.rt.block_on(tollgate_server::audit::record(
            state,
            &actor,
            "token.exchange",
            Some(jti),
            None,
            detail.clone(),
        ))
        .expect("audit event written");
        audits += 1;
    }
    let audit = started.elapsed() / audits;
    let audit_usage = Usage::per_call(before, audits);
    // For scale: a read through the same pool, one round trip to sqlx's worker thread.
    let before = Usage::now();
    let started = Instant::now();
    let mut reads = 0u32;
    while reads == 0 || started.elapsed() < PART_TIME {
        let revoked = f.rt.block_on(state.store.is_revoked(jti)).expect("denylist read");
        assert!(!revoked, "nothing is revoked");
        reads += 1;
    }
    let read = started.elapsed() / reads;
    let read_usage = Usage::per_call(before, reads);
    let rest = service.saturating_sub(verify + issue + audit);
    println!("where the service path's time goes (mean per call, same app, parts timed one at a time):");
    println!(
        "  engine (no I/O, for comparison): {}; service: {} (+{})",
        micros(engine),
        micros(service),
        micros(service.saturating_sub(engine))
    );
    println!(
        "  upstream verify (JWKS cache lookup + verify_upstream): {}",
        micros(verify)
    );
    println!(
        "  tokens::issue (claims + EdDSA sign):                   {}",
        micros(issue)
    );
    println!(
        "  audit::record (SQLite INSERT, WAL, synchronous=NORMAL): {} wall; {audit_usage}",
        micros(audit)
    );
    println!(
        "  the rest (form, grant decision, audit detail JSON, metrics): {}",
        micros(rest)
    );
    println!(
        "  for scale, one SQLite read through the same pool (store.is_revoked): {} wall; {read_usage}",
        micros(read)
    );
}

fn print_results(f: &Fixture) {
    println!(
        "\nupstream token: RS256, {} bytes ({}-byte signing input); access token: EdDSA, {}-byte signing input",
        f.upstream_token.len(),
        f.upstream_signing_input.len(),
        f.access_signing_input.len()
    );
    println!(
        "same-process timed loops, one thread, {RATIO_TIME:?} per operation \
         (best of {RATIO_SLICES} alternating slices):"
    );
    let (engine, raw) = time_pair(|| f.engine(), || f.raw());
    print_ratio("engine", engine, raw);
    let (service, raw) = time_pair(|| f.service(), || f.raw());
    print_ratio("service (incl. SQLite audit write)", service, raw);
    print_latency(f);
    print_breakdown(f);
    let (discovery, jwks) = f.idp.fetches();
    let when = if (discovery, jwks) == (1, 1) {
        "both at warm-up: none on the measured request path"
    } else {
        "MORE than the warm-up's one each: fetches reached the request path"
    };
    println!("upstream IdP fetches over the whole run: {discovery} discovery, {jwks} JWKS ({when})");
}

/// Whether this is `cargo bench` proper (criterion runs each benchmark once under
/// `cargo test --benches`, and only lists them with `--list`; the timed loops then stay out).
fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    has("--bench") && !has("--test") && !has("--list")
}

fn main() {
    let fixture = Fixture::new();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_millis(2500))
        .sample_size(30)
        .configure_from_args();
    criterion_benches(&mut c, &fixture);
    c.final_summary();
    if benchmarking() {
        print_results(&fixture);
    }
}
