//! `MockIdp`: an OpenID provider on a loopback port hosting several issuers, for tests that
//! need real discovery, real JWKS and really signed tokens (the JWKS cache, federation).
//!
//! Issuer `name` lives under its own path:
//! - issuer URL `http://127.0.0.1:PORT/<name>`;
//! - `<issuer>/.well-known/openid-configuration`: `{issuer, jwks_uri}`;
//! - `<issuer>/.well-known/jwks.json`: the public keys, with `Cache-Control: public,
//!   max-age=300` and a strong `ETag`, answering `304` to a matching `If-None-Match`.
//!
//! - `<issuer>/authorize` and `<issuer>/token`: an OpenID Connect authorization code flow
//!   with PKCE (`S256` checked) for the user set by [`MockIssuer::sign_in_as`]: `authorize`
//!   redirects straight back with a code, `token` answers an ID token with the `nonce`.
//!
//! Tests rotate keys, take an issuer down (`500`, or hanging), replace what an endpoint
//! answers, count the fetches each endpoint served, and mint tokens signed with the
//! issuer's keys: RS256, PS256, ES256 and EdDSA, with the key's RFC 7638 thumbprint or an
//! explicit `kid` (Clerk's look like `ins_…`) as `kid`.
//!
//! ```ignore
//! let idp = MockIdp::start().await;
//! let clerk = idp.issuer("clerk", JwsAlg::RS256);
//! let token = clerk.mint(clerk.claims(now, "user_1"));
//! clerk.rotate(false);
//! assert_eq!(clerk.jwks_fetches().requests, 0);
//! ```

// A toolkit for later tests too: not every helper is used by every test module.
#![allow(dead_code)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tollgate_core::{JwsAlg, SigningAlg, UnixTime};
use tollgate_crypto::{Jwk, SigningKey};
use tollgate_server::upstream::jwks_cache::JwksSource;

/// A running mock IdP; the server stops when this is dropped.
pub struct MockIdp {
    base_url: String,
    issuers: Issuers,
    server: tokio::task::JoinHandle<()>,
}

type Issuers = Arc<RwLock<HashMap<String, Arc<IssuerState>>>>;

impl MockIdp {
    /// Starts an IdP with no issuers on `127.0.0.1` and a free port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let issuers = Issuers::default();
        let router = Router::new()
            .route("/{name}/.well-known/openid-configuration", get(discovery))
            .route("/{name}/.well-known/jwks.json", get(jwks))
            .route("/{name}/authorize", get(authorize))
            .route("/{name}/token", axum::routing::post(token))
            .with_state(issuers.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            base_url,
            issuers,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Adds issuer `name` (replacing one of that name) with one signing key for `alg`.
    pub fn issuer(&self, name: &str, alg: JwsAlg) -> MockIssuer {
        let issuer = self.empty_issuer(name);
        issuer.add_key(alg, None);
        issuer
    }

    /// Adds issuer `name` without keys; publish some with [`MockIssuer::add_key`].
    pub fn empty_issuer(&self, name: &str) -> MockIssuer {
        let state = Arc::new(IssuerState::new(format!("{}/{name}", self.base_url)));
        self.issuers
            .write()
            .unwrap()
            .insert(name.to_owned(), state.clone());
        MockIssuer { state }
    }
}

impl Drop for MockIdp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// How an issuer's endpoints fail while it is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Answer with this status (and a short text body).
    Status(u16),
    /// Accept the request and never answer, so the client's timeout fires.
    Hang,
}

/// A response served verbatim instead of the real JWKS.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Canned {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What one endpoint of one issuer served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fetches {
    /// Every request, however it was answered.
    pub requests: u64,
    pub ok: u64,
    pub not_modified: u64,
    /// Error statuses, and requests left hanging.
    pub failed: u64,
}

/// How [`MockIssuer::mint_with`] signs.
#[derive(Debug, Clone, Default)]
pub struct MintOptions {
    /// Sign with the newest key of this algorithm (default: the newest key).
    pub alg: Option<JwsAlg>,
    /// Sign with the key whose `kid` is this (e.g. the old one after a rotation).
    pub key: Option<String>,
    /// Send this `kid` header instead of the signing key's (e.g. an unknown one).
    pub kid: Option<String>,
    /// Header members merged last; `null` removes one (e.g. `{"typ": null}`).
    pub header: Map<String, Value>,
}

/// A handle on one issuer of a [`MockIdp`]; clones share it.
#[derive(Clone)]
pub struct MockIssuer {
    state: Arc<IssuerState>,
}

impl MockIssuer {
    /// The issuer URL (`iss`).
    pub fn url(&self) -> &str {
        &self.state.url
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks.json", self.state.url)
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.state.url)
    }

    /// The source naming the JWKS URI directly.
    pub fn jwks_source(&self) -> JwksSource {
        JwksSource::Uri(self.jwks_uri())
    }

    /// The source going through discovery.
    pub fn discovery_source(&self) -> JwksSource {
        JwksSource::Discovery {
            issuer: self.url().to_owned(),
        }
    }

    /// Publishes a new key for `alg` with `kid` (default: its RFC 7638 thumbprint); it
    /// becomes the newest key, the one tokens are signed with by default. Returns its kid.
    pub fn add_key(&self, alg: JwsAlg, kid: Option<&str>) -> String {
        let key = MockKey::generate(alg, kid);
        let kid = key.kid.clone();
        self.state.lock().keys.push(key);
        kid
    }

    /// Publishes a new key of the newest key's algorithm; with `drop_old`, unpublishes all
    /// others. Returns the new kid.
    pub fn rotate(&self, drop_old: bool) -> String {
        let alg = self.state.lock().keys.last().map_or(JwsAlg::RS256, |k| k.alg);
        let kid = self.add_key(alg, None);
        if drop_old {
            self.state.lock().keys.retain(|k| k.kid == kid);
        }
        kid
    }

    /// Unpublishes the key with `kid`.
    pub fn remove_key(&self, kid: &str) {
        self.state.lock().keys.retain(|k| k.kid != kid);
    }

    /// The newest key's kid.
    pub fn kid(&self) -> String {
        self.state
            .lock()
            .keys
            .last()
            .expect("the issuer has no keys")
            .kid
            .clone()
    }

    /// Every published key's kid, oldest first.
    pub fn kids(&self) -> Vec<String> {
        self.state.lock().keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// Adds a raw member to the published `keys` array (an encryption key, garbage …).
    pub fn publish_raw_jwk(&self, member: Value) {
        self.state.lock().raw_jwks.push(member);
    }

    /// Sends `Cache-Control: public, max-age=<secs>` with the JWKS.
    pub fn set_max_age(&self, secs: u64) {
        self.set_cache_control(Some(&format!("public, max-age={secs}")));
    }

    /// Sends this `Cache-Control` with the JWKS, or none.
    pub fn set_cache_control(&self, value: Option<&str>) {
        self.state.lock().cache_control = value.map(str::to_owned);
    }

    /// Discovery and JWKS answer `500` while down.
    pub fn set_down(&self, down: bool) {
        self.set_outage(down.then_some(Outage::Status(500)));
    }

    pub fn set_outage(&self, outage: Option<Outage>) {
        self.state.lock().outage = outage;
    }

    /// Serves `canned` for the JWKS instead of the keys (until called with `None`).
    pub fn respond_jwks_with(&self, canned: Option<Canned>) {
        self.state.lock().canned_jwks = canned;
    }

    /// Makes the discovery document name another `issuer` (or the real one again).
    pub fn set_discovery_issuer(&self, issuer: Option<&str>) {
        self.state.lock().discovery_issuer = issuer.map(str::to_owned);
    }

    pub fn jwks_fetches(&self) -> Fetches {
        self.state.jwks_hits.snapshot()
    }

    pub fn discovery_fetches(&self) -> Fetches {
        self.state.discovery_hits.snapshot()
    }

    /// Typical claims: this issuer, `sub`, issued at `now`, valid for 60 s (Clerk's lifetime).
    pub fn claims(&self, now: UnixTime, sub: &str) -> Value {
        json!({
            "iss": self.url(),
            "sub": sub,
            "iat": now.0,
            "nbf": now.0,
            "exp": now.0 + 60,
        })
    }

    /// Makes `authorize` sign the browser in as `sub` with a verified `email` (or, with
    /// `None`, answer that nobody is signed in).
    pub fn sign_in_as(&self, login: Option<(&str, &str)>) {
        self.state.lock().login = login.map(|(s, e)| (s.to_owned(), e.to_owned()));
    }

    /// A JWT of `claims` signed with the newest key (header `alg`, `kid`, `typ: JWT`).
    pub fn mint(&self, claims: Value) -> String {
        self.mint_with(&MintOptions::default(), claims)
    }

    /// A JWT of `claims` signed as `options` say.
    pub fn mint_with(&self, options: &MintOptions, claims: Value) -> String {
        let state = self.state.lock();
        let key = state
            .keys
            .iter()
            .rev()
            .find(|k| {
                options.alg.is_none_or(|a| a == k.alg) && options.key.as_ref().is_none_or(|kid| *kid == k.kid)
            })
            .unwrap_or_else(|| panic!("no key fits {options:?}"));
        let mut header = json!({
            "alg": key.alg.as_str(),
            "typ": "JWT",
            "kid": options.kid.as_deref().unwrap_or(&key.kid),
        });
        let members = header.as_object_mut().unwrap();
        for (name, value) in &options.header {
            if value.is_null() {
                members.remove(name);
            } else {
                members.insert(name.clone(), value.clone());
            }
        }
        let input = format!("{}.{}", b64_json(&header), b64_json(&claims));
        let signature = key.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature))
    }
}

/// One issuer's keys and behaviour.
struct IssuerState {
    url: String,
    inner: Mutex<IssuerInner>,
    jwks_hits: Hits,
    discovery_hits: Hits,
}

#[derive(Default)]
struct IssuerInner {
    keys: Vec<MockKey>,
    raw_jwks: Vec<Value>,
    cache_control: Option<String>,
    outage: Option<Outage>,
    canned_jwks: Option<Canned>,
    discovery_issuer: Option<String>,
    /// The user the browser is signed in as at this IdP: `sub` and `email`.
    login: Option<(String, String)>,
    /// Authorization codes not yet redeemed.
    codes: HashMap<String, PendingCode>,
}

/// What an authorization code was issued for.
#[derive(Clone)]
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    sub: String,
    email: String,
}

impl IssuerState {
    fn new(url: String) -> Self {
        Self {
            url,
            inner: Mutex::new(IssuerInner {
                cache_control: Some("public, max-age=300".to_owned()),
                ..IssuerInner::default()
            }),
            jwks_hits: Hits::default(),
            discovery_hits: Hits::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IssuerInner> {
        self.inner.lock().unwrap()
    }
}

#[derive(Default)]
struct Hits {
    requests: AtomicU64,
    ok: AtomicU64,
    not_modified: AtomicU64,
    failed: AtomicU64,
}

impl Hits {
    fn count(&self, status: StatusCode) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let bucket = match status {
            StatusCode::OK => &self.ok,
            StatusCode::NOT_MODIFIED => &self.not_modified,
            s if s.is_client_error() || s.is_server_error() => &self.failed,
            // Redirects and the like: counted as requests only.
            _ => return,
        };
        bucket.fetch_add(1, Ordering::SeqCst);
    }

    fn count_hang(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.failed.fetch_add(1, Ordering::SeqCst);
    }

    fn snapshot(&self) -> Fetches {
        Fetches {
            requests: self.requests.load(Ordering::SeqCst),
            ok: self.ok.load(Ordering::SeqCst),
            not_modified: self.not_modified.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
        }
    }
}

/// What an endpoint does for one request, decided under the lock and done after it.
enum Plan {
    Respond(Response),
    Hang,
}

fn find(issuers: &Issuers, name: &str) -> Option<Arc<IssuerState>> {
    issuers.read().unwrap().get(name).cloned()
}

async fn discovery(State(issuers): State<Issuers>, Path(name): Path<String>) -> Response {
    let Some(issuer) = find(&issuers, &name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let plan = {
        let inner = issuer.lock();
        match inner.outage {
            Some(outage) => outage_plan(outage),
            None => {
                let iss = inner
                    .discovery_issuer
                    .clone()
                    .unwrap_or_else(|| issuer.url.clone());
                let doc = json!({
                    "issuer": iss,
                    "jwks_uri": format!("{}/.well-known/jwks.json", issuer.url),
                    "authorization_endpoint": format!("{}/authorize", issuer.url),
                    "token_endpoint": format!("{}/token", issuer.url),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
                });
                Plan::Respond(axum::Json(doc).into_response())
            }
        }
    };
    serve(plan, &issuer.discovery_hits).await
}

async fn jwks(State(issuers): State<Issuers>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(issuer) = find(&issuers, &name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let plan = {
        let inner = issuer.lock();
        match (&inner.outage, &inner.canned_jwks) {
            (Some(outage), _) => outage_plan(*outage),
            (None, Some(canned)) => Plan::Respond(canned_response(canned)),
            (None, None) => Plan::Respond(jwks_response(&inner, &headers)),
        }
    };
    serve(plan, &issuer.jwks_hits).await
}

async fn serve(plan: Plan, hits: &Hits) -> Response {
    match plan {
        Plan::Respond(response) => {
            hits.count(response.status());
            response
        }
        Plan::Hang => {
            hits.count_hang();
            std::future::pending().await
        }
    }
}

fn outage_plan(outage: Outage) -> Plan {
    match outage {
        Outage::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            Plan::Respond((status, "the mock IdP is down").into_response())
        }
        Outage::Hang => Plan::Hang,
    }
}

fn canned_response(canned: &Canned) -> Response {
    let mut response = (StatusCode::from_u16(canned.status).unwrap(), canned.body.clone()).into_response();
    for (name, value) in &canned.headers {
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

/// The keys with a strong ETag over the body, and `304` when the client has them already.
fn jwks_response(inner: &IssuerInner, request: &HeaderMap) -> Response {
    let members: Vec<Value> = inner
        .keys
        .iter()
        .map(|k| k.jwk.clone())
        .chain(inner.raw_jwks.iter().cloned())
        .collect();
    let body = serde_json::to_vec(&json!({ "keys": members })).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
    let etag = format!("\"{}\"", hex::encode(&digest.as_ref()[..16]));
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/jwk-set+json")], body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
    if let Some(cc) = &inner.cache_control {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_str(cc).unwrap());
    }
    response
}

/// A private key of the mock IdP with its published JWK.
struct MockKey {
    alg: JwsAlg,
    kid: String,
    jwk: Value,
    signer: Signer,
}

enum Signer {
    /// EdDSA, ES256, RS256: tollgate's own signing keys.
    Tollgate(Box<SigningKey>),
    /// PS256, which tollgate verifies but never signs with.
    RsaPss(RsaKeyPair),
}

impl MockKey {
    fn generate(alg: JwsAlg, kid: Option<&str>) -> Self {
        let (signer, public) = match alg {
            JwsAlg::EdDSA | JwsAlg::ES256 | JwsAlg::RS256 => {
                let signing_alg: SigningAlg = alg.as_str().parse().unwrap();
                let (key, _pkcs8) = SigningKey::generate(signing_alg).unwrap();
                let public = key.public_jwk().clone();
                (Signer::Tollgate(Box::new(key)), public)
            }
            JwsAlg::PS256 => {
                let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
                let public = rsa_public_jwk(&kp, alg);
                (Signer::RsaPss(kp), public)
            }
            other => panic!("the mock IdP does not sign with {other}"),
        };
        let kid = kid.map_or_else(|| public.thumbprint().unwrap(), str::to_owned);
        let jwk = serde_json::to_value(Jwk {
            kid: Some(kid.clone()),
            ..public
        })
        .unwrap();
        Self {
            alg,
            kid,
            jwk,
            signer,
        }
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        match &self.signer {
            Signer::Tollgate(key) => key.sign(input).unwrap(),
            Signer::RsaPss(kp) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(&signature::RSA_PSS_SHA256, &SystemRandom::new(), input, &mut sig)
                    .unwrap();
                sig
            }
        }
    }
}

fn rsa_public_jwk(kp: &RsaKeyPair, alg: JwsAlg) -> Jwk {
    let public = kp.public_key();
    Jwk {
        kty: "RSA".into(),
        n: Some(b64(public.modulus().big_endian_without_leading_zero())),
        e: Some(b64(public.exponent().big_endian_without_leading_zero())),
        crv: None,
        x: None,
        y: None,
        kid: None,
        alg: Some(alg.as_str().into()),
        use_: Some("sig".into()),
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn b64_json(value: &Value) -> String {
    b64(&serde_json::to_vec(value).unwrap())
}

/// `GET <issuer>/authorize`: signs the configured user in and redirects back with a code.
async fn authorize(
    State(issuers): State<Issuers>,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let Some(issuer) = find(&issuers, &name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (Some(redirect_uri), Some(client_id), Some(challenge)) =
        (q.get("redirect_uri"), q.get("client_id"), q.get("code_challenge"))
    else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri, client_id and code_challenge are required",
        )
            .into_response();
    };
    if q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (StatusCode::BAD_REQUEST, "only response_type=code with S256").into_response();
    }
    let mut inner = issuer.lock();
    let Some((sub, email)) = inner.login.clone() else {
        return (StatusCode::OK, "nobody is signed in at the mock IdP").into_response();
    };
    let code = format!("code-{}", inner.codes.len() + 1);
    inner.codes.insert(
        code.clone(),
        PendingCode {
            client_id: client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            challenge: challenge.clone(),
            nonce: q.get("nonce").cloned(),
            sub,
            email,
        },
    );
    let mut to = url::Url::parse(redirect_uri).unwrap();
    to.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = q.get("state") {
        to.query_pairs_mut().append_pair("state", state);
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// `POST <issuer>/token`: redeems a code once, checking the PKCE verifier and redirect URI.
async fn token(State(issuers): State<Issuers>, Path(name): Path<String>, body: String) -> Response {
    let Some(issuer) = find(&issuers, &name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let refuse = |e: &str| (StatusCode::BAD_REQUEST, axum::Json(json!({"error": e}))).into_response();
    let Some(pending) = form.get("code").and_then(|c| issuer.lock().codes.remove(c)) else {
        return refuse("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
    if challenge != pending.challenge
        || form.get("redirect_uri") != Some(&pending.redirect_uri)
        || form.get("client_id") != Some(&pending.client_id)
    {
        return refuse("invalid_grant");
    }
    let handle = MockIssuer { state: issuer };
    let now = UnixTime(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap(),
    );
    let mut claims = handle.claims(now, &pending.sub);
    claims["aud"] = json!(pending.client_id);
    claims["email"] = json!(pending.email);
    claims["email_verified"] = json!(true);
    if let Some(nonce) = pending.nonce {
        claims["nonce"] = json!(nonce);
    }
    let id_token = handle.mint(claims);
    axum::Json(json!({"access_token": "mock", "token_type": "Bearer", "id_token": id_token})).into_response()
}
