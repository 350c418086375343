//! What a tollgate access token costs compared with the signature it is built on.
//!
//! For every [`SigningAlg`], four operations over the same bytes:
//! - `raw_sign` / `raw_verify`: the aws-lc-rs calls alone, on the token's signing input;
//! - `token_sign`: [`jws::sign`] of realistic [`AccessTokenClaims`] (JSON, base64url, signature);
//! - `token_verify`: parse, signature check, claims decoding and time check, as the server does.
//!
//! Criterion measures each one. Then, in the same process, plain timed loops measure each
//! token/raw pair in alternating slices and print the token's rate as a share of the raw rate.
//!
//! A broken fixture has no caller to report to, so setup failures `expect` loudly.

#![allow(clippy::print_stdout)] // The ratios are this benchmark's output.

#[path = "common/paired_timing.rs"]
mod paired_timing;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use criterion::Criterion;
use paired_timing::{RATIO_SLICES, RATIO_TIME, time_pair};
use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tollgate_core::{AccessTokenClaims, SigningAlg, UnixTime};
use tollgate_crypto::{Jwk, SigningKey, UnverifiedJws, VerifyingKey, jws};

/// The server's default `tokens.max_token_bytes`.
const MAX_TOKEN_BYTES: usize = 8192;
/// The server's default `tokens.leeway`, in seconds.
const LEEWAY_SECS: u64 = 5;
/// The brief: verifying a token keeps at least this share of the raw verification rate.
const VERIFY_GOAL_PERCENT: f64 = 60.0;

/// One algorithm's key, a signed token and everything the measured operations need.
struct Fixture {
    alg: SigningAlg,
    key: SigningKey,
    raw_public: ParsedPublicKey,
    verifier: VerifyingKey,
    claims: AccessTokenClaims,
    token: String,
    /// `header.payload` of `token`: what both the raw and the token signature cover.
    signing_input: Vec<u8>,
    raw_signature: Vec<u8>,
    now: UnixTime,
}

impl Fixture {
    fn new(alg: SigningAlg) -> Self {
        let (key, _pkcs8) = SigningKey::generate(alg).expect("key generation");
        let raw_public = parsed_public_key(alg, key.public_jwk());
        let verifier = VerifyingKey::for_signing_key(&key).expect("verifying key");
        let now = unix_now();
        let claims = realistic_claims(now);
        let token = jws::sign(&key, "at+jwt", &claims).expect("token signing");
        let (signing_input, _signature) = token.rsplit_once('.').expect("compact JWS");
        let signing_input = signing_input.as_bytes().to_vec();
        let raw_signature = key.sign(&signing_input).expect("raw signing");
        let fixture = Self {
            alg,
            key,
            raw_public,
            verifier,
            claims,
            token,
            signing_input,
            raw_signature,
            now,
        };
        fixture.raw_verify();
        assert_eq!(fixture.token_verify(), fixture.claims, "token must round-trip");
        fixture
    }

    fn raw_sign(&self) -> Vec<u8> {
        self.key
            .sign(black_box(&self.signing_input))
            .expect("raw signing")
    }

    fn raw_verify(&self) {
        self.raw_public
            .verify_sig(black_box(&self.signing_input), black_box(&self.raw_signature))
            .expect("raw signature verifies");
    }

    fn token_sign(&self) -> String {
        jws::sign(&self.key, "at+jwt", black_box(&self.claims)).expect("token signing")
    }

    fn token_verify(&self) -> AccessTokenClaims {
        let jws = UnverifiedJws::parse(black_box(&self.token), MAX_TOKEN_BYTES).expect("parse");
        let payload = jws.verify(&self.verifier).expect("token signature verifies");
        let claims: AccessTokenClaims = serde_json::from_slice(&payload).expect("access-token claims");
        claims.check_times(self.now, LEEWAY_SECS).expect("token is live");
        claims
    }
}

/// Claims shaped like the ones tollgate issues (ids and jti have production lengths).
fn realistic_claims(now: UnixTime) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "https://auth.example.com".into(),
        sub: "tgc_k3v9x0q2m7b1n8c4z6wd".into(),
        aud: "https://api.example.com/orders".into(),
        client_id: "tgc_k3v9x0q2m7b1n8c4z6wd".into(),
        scope: "orders:read orders:write invoices:read".into(),
        iat: now,
        nbf: now,
        exp: now.plus(Duration::from_secs(15 * 60)),
        jti: "0f8c2d7e4b9a41c3a6e5d2f1b0c9e8d7".into(),
        upstream: None,
        act: None,
        user_ver: None,
        org: Some("org_k3v9x0q2m7b1n8c4z6wd".into()),
        roles: vec!["member".into()],
        ci: None,
    }
}

fn unix_now() -> UnixTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    UnixTime(i64::try_from(secs).expect("time fits i64"))
}

/// The aws-lc-rs public key for `jwk`, built directly (as `VerifyingKey::from_jwk` does).
fn parsed_public_key(alg: SigningAlg, jwk: &Jwk) -> ParsedPublicKey {
    let field = |v: &Option<String>| {
        let text = v.as_deref().expect("JWK member present");
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .expect("base64url")
    };
    match alg {
        SigningAlg::EdDSA => ParsedPublicKey::new(&signature::ED25519, field(&jwk.x)),
        SigningAlg::ES256 => {
            let point = [vec![4], field(&jwk.x), field(&jwk.y)].concat();
            ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
        }
        SigningAlg::RS256 => {
            let (n, e) = (field(&jwk.n), field(&jwk.e));
            RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
        }
    }
    .expect("public key parses")
}

fn criterion_benches(c: &mut Criterion, fixtures: &[Fixture]) {
    for f in fixtures {
        let mut group = c.benchmark_group(f.alg.as_str());
        group.bench_function("raw_sign", |b| b.iter(|| f.raw_sign()));
        group.bench_function("token_sign", |b| b.iter(|| f.token_sign()));
        group.bench_function("raw_verify", |b| b.iter(|| f.raw_verify()));
        group.bench_function("token_verify", |b| b.iter(|| f.token_verify()));
        group.finish();
    }
}

fn print_ratio(alg: SigningAlg, what: &str, token: Duration, raw: Duration, goal: Option<f64>) {
    let share = 100.0 * raw.as_secs_f64() / token.as_secs_f64();
    let goal = goal.map_or_else(String::new, |g| {
        let verdict = if share >= g { "met" } else { "NOT met" };
        format!(" (goal >= {g:.0}%: {verdict})")
    });
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "ratio {alg} {what}: token {:.1} µs vs raw {:.1} µs -> {share:.1}% of raw rate{goal}",
        micros(token),
        micros(raw)
    );
}

fn print_ratios(fixtures: &[Fixture]) {
    println!(
        "\nsame-process timed loops, one thread, {RATIO_TIME:?} per operation \
         (best of {RATIO_SLICES} alternating slices):"
    );
    for f in fixtures {
        let (token, raw) = time_pair(|| f.token_sign(), || f.raw_sign());
        print_ratio(f.alg, "sign", token, raw, None);
        let (token, raw) = time_pair(|| f.token_verify(), || f.raw_verify());
        print_ratio(f.alg, "verify", token, raw, Some(VERIFY_GOAL_PERCENT));
    }
}

/// Whether this is `cargo bench` proper (criterion runs each benchmark once under
/// `cargo test --benches`, and only lists them with `--list`; the timed loops then stay out).
fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    has("--bench") && !has("--test") && !has("--list")
}

fn main() {
    let fixtures: Vec<Fixture> = SigningAlg::ALL.into_iter().map(Fixture::new).collect();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_millis(2500))
        .sample_size(30)
        .configure_from_args();
    criterion_benches(&mut c, &fixtures);
    c.final_summary();
    if benchmarking() {
        if let Some(f) = fixtures.first() {
            println!(
                "\nmessage: {}-byte signing input of a {}-byte token",
                f.signing_input.len(),
                f.token.len()
            );
        }
        print_ratios(&fixtures);
    }
}
