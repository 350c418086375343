//! The upstream JWKS cache against a real (mock) IdP over loopback: freshness, conditional
//! refresh, unknown-kid refetch with cooldown and single flight, stale-if-error, refusals
//! of bad documents, and metrics. Time moves on a `ManualClock`; nothing sleeps.

use crate::mock_idp::{Canned, MintOptions, MockIdp, MockIssuer, Outage};
use std::sync::Arc;
use std::time::Duration;
use tollgate_core::time::Clock as _;
use tollgate_core::{JwsAlg, UnixTime};
use tollgate_crypto::UnverifiedJws;
use tollgate_server::clock::ManualClock;
use tollgate_server::metrics::Metrics;
use tollgate_server::upstream::jwks_cache::{CacheSettings, JwksCache, JwksError, KeySet};

const START: UnixTime = UnixTime(1_700_000_000);
const KEY: &str = "acme";

/// A mock IdP with one RS256 issuer, and a cache on a manual clock.
struct Fixture {
    idp: MockIdp,
    issuer: MockIssuer,
    clock: Arc<ManualClock>,
    metrics: Arc<Metrics>,
    cache: Arc<JwksCache>,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(CacheSettings::default()).await
    }

    async fn with(settings: CacheSettings) -> Self {
        let idp = MockIdp::start().await;
        let issuer = idp.issuer(KEY, JwsAlg::RS256);
        let clock = Arc::new(ManualClock::new(START));
        let metrics = Arc::new(Metrics::new());
        let cache = JwksCache::new(settings, clock.clone(), metrics.clone()).unwrap();
        Self {
            idp,
            issuer,
            clock,
            metrics,
            cache: Arc::new(cache),
        }
    }

    async fn keys(&self) -> Result<Arc<KeySet>, JwksError> {
        self.cache.keys(KEY, &self.issuer.jwks_source()).await
    }

    async fn unknown_kid(&self, kid: &str) -> Result<Arc<KeySet>, JwksError> {
        self.cache
            .refresh_for_unknown_kid(KEY, &self.issuer.jwks_source(), kid)
            .await
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    fn at(&self, secs: i64) -> UnixTime {
        UnixTime(START.0 + secs)
    }

    /// The value of one metric series, e.g. `jwks_fetches_total{issuer="acme",outcome="ok"}`.
    fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics.render();
        let prefix = format!("tollgate_{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.parse().unwrap())
    }
}

fn unavailable(err: JwksError) -> (String, String) {
    let JwksError::Unavailable { url, cause } = err;
    (url, cause)
}

#[tokio::test]
async fn cold_lookup_fetches_once_then_answers_from_memory() {
    let f = Fixture::new().await;
    let set = f.keys().await.unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.find(&f.issuer.kid()).is_some());
    assert_eq!((set.fetched_at(), set.expires_at()), (START, f.at(300)));

    f.advance(299);
    for _ in 0..10 {
        assert!(Arc::ptr_eq(&f.keys().await.unwrap(), &set));
    }
    assert_eq!(
        f.issuer.jwks_fetches().requests,
        1,
        "a warm issuer is never fetched"
    );
}

#[tokio::test]
async fn concurrent_cold_lookups_share_one_fetch() {
    let f = Fixture::new().await;
    let source = f.issuer.jwks_source();
    let lookups: Vec<_> = (0..50)
        .map(|_| {
            let (cache, source) = (f.cache.clone(), source.clone());
            tokio::spawn(async move { cache.keys(KEY, &source).await.map(|s| s.len()) })
        })
        .collect();
    for lookup in lookups {
        assert_eq!(lookup.await.unwrap().unwrap(), 1);
    }
    assert_eq!(f.issuer.jwks_fetches().requests, 1);
}

#[tokio::test]
async fn discovery_finds_the_jwks_uri_and_remembers_it() {
    let f = Fixture::new().await;
    let source = f.issuer.discovery_source();
    let set = f.cache.keys(KEY, &source).await.unwrap();
    assert_eq!(set.jwks_uri(), f.issuer.jwks_uri());
    assert!(set.find(&f.issuer.kid()).is_some());

    f.advance(300);
    f.cache.keys(KEY, &source).await.unwrap();
    assert_eq!(f.issuer.jwks_fetches().requests, 2);
    assert_eq!(
        f.issuer.discovery_fetches().requests,
        1,
        "discovery is not repeated"
    );
    assert_eq!(
        f.cache.status_of(KEY).unwrap().jwks_uri.as_deref(),
        Some(f.issuer.jwks_uri().as_str())
    );
}

#[tokio::test]
async fn discovery_naming_another_issuer_is_refused() {
    let f = Fixture::new().await;
    f.issuer.set_discovery_issuer(Some("https://evil.example"));
    let err = f.cache.keys(KEY, &f.issuer.discovery_source()).await.unwrap_err();
    let (url, cause) = unavailable(err);
    assert_eq!(url, f.issuer.discovery_url());
    assert!(cause.contains("names issuer \"https://evil.example\""), "{cause}");
    assert_eq!(
        f.issuer.jwks_fetches().requests,
        0,
        "its jwks_uri is not followed"
    );
}

#[tokio::test]
async fn max_age_is_clamped_to_the_configured_bounds() {
    let f = Fixture::new().await;
    let cases = [
        (Some("public, max-age=600"), 600),
        (Some("max-age=5"), 60),
        (Some("max-age=99999999"), 24 * 3600),
        (Some("no-store"), 60),
        (Some("max-age=600, no-cache"), 60),
        (None, 300),
    ];
    for (i, (cache_control, ttl)) in cases.into_iter().enumerate() {
        let issuer = f.idp.issuer(&format!("case{i}"), JwsAlg::ES256);
        issuer.set_cache_control(cache_control);
        let set = f
            .cache
            .keys(&format!("case{i}"), &issuer.jwks_source())
            .await
            .unwrap();
        assert_eq!(set.expires_at(), f.at(ttl), "{cache_control:?}");
    }
}

#[tokio::test]
async fn expired_set_is_revalidated_and_a_304_extends_it() {
    let f = Fixture::new().await;
    let first = f.keys().await.unwrap();
    assert!(first.etag().is_some());

    f.advance(300);
    let second = f.keys().await.unwrap();
    let fetches = f.issuer.jwks_fetches();
    assert_eq!((fetches.ok, fetches.not_modified), (1, 1), "{fetches:?}");
    assert_eq!((second.fetched_at(), second.expires_at()), (f.at(300), f.at(600)));
    assert_eq!(second.keys(), first.keys());
    assert_eq!(second.etag(), first.etag());
}

#[tokio::test]
async fn refresh_due_revalidates_before_expiry_and_not_earlier() {
    let f = Fixture::new().await;
    f.keys().await.unwrap();

    // 300 s lifetime, refreshed once less than 60 s remain.
    f.advance(239);
    f.cache.refresh_due().await;
    assert_eq!(f.issuer.jwks_fetches().requests, 1, "not due yet");

    f.advance(1);
    f.cache.refresh_due().await;
    assert_eq!(f.issuer.jwks_fetches().not_modified, 1);
    let set = f.keys().await.unwrap();
    assert_eq!(set.expires_at(), f.at(240 + 300));

    f.advance(100);
    f.keys().await.unwrap();
    assert_eq!(
        f.issuer.jwks_fetches().requests,
        2,
        "the lookup after expiry-time found it fresh"
    );
}

#[tokio::test]
async fn refresh_due_picks_up_new_keys_and_retries_failed_entries() {
    let f = Fixture::new().await;
    f.issuer.set_down(true);
    f.keys().await.unwrap_err();

    f.issuer.set_down(false);
    let new_kid = f.issuer.rotate(true);
    f.cache.refresh_due().await;
    assert_eq!(
        f.issuer.jwks_fetches().requests,
        1,
        "a failed entry waits retry_after_error"
    );

    f.advance(30);
    f.cache.refresh_due().await;
    let set = f.keys().await.unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.find(&new_kid).is_some());
    assert_eq!(f.issuer.jwks_fetches().requests, 2);
}

#[tokio::test]
async fn unknown_kid_refetch_picks_up_a_rotated_key() {
    let f = Fixture::new().await;
    let old_kid = f.issuer.kid();
    f.keys().await.unwrap();
    let new_kid = f.issuer.rotate(false);
    let token = f.issuer.mint(f.issuer.claims(START, "user_1"));
    assert!(f.keys().await.unwrap().find(&new_kid).is_none());

    f.advance(30);
    let set = f.unknown_kid(&new_kid).await.unwrap();
    assert!(set.find(&old_kid).is_some() && set.find(&new_kid).is_some());
    let verifier = set.verifier(&new_kid, JwsAlg::RS256).unwrap();
    let jws = UnverifiedJws::parse(&token, 8192).unwrap();
    assert_eq!(jws.header().kid.as_deref(), Some(new_kid.as_str()));
    jws.verify(verifier).unwrap();
    assert_eq!(f.issuer.jwks_fetches().ok, 2);
}

#[tokio::test]
async fn unknown_kid_right_after_a_fetch_waits_for_the_cooldown() {
    let f = Fixture::new().await;
    f.keys().await.unwrap();
    let new_kid = f.issuer.rotate(false);

    f.advance(29);
    assert!(f.unknown_kid(&new_kid).await.unwrap().find(&new_kid).is_none());
    assert_eq!(f.issuer.jwks_fetches().requests, 1);

    f.advance(1);
    assert!(f.unknown_kid(&new_kid).await.unwrap().find(&new_kid).is_some());
    assert_eq!(f.issuer.jwks_fetches().requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_kids_costs_one_fetch_per_cooldown() {
    let f = Fixture::new().await;
    f.keys().await.unwrap();

    let flood = |f: &Fixture| {
        let source = f.issuer.jwks_source();
        let lookups: Vec<_> = (0..200)
            .map(|_| {
                let (cache, source) = (f.cache.clone(), source.clone());
                let kid = uuid::Uuid::new_v4().to_string();
                tokio::spawn(async move {
                    let set = cache.refresh_for_unknown_kid(KEY, &source, &kid).await.unwrap();
                    assert!(set.find(&kid).is_none());
                })
            })
            .collect();
        async move {
            for lookup in lookups {
                lookup.await.unwrap();
            }
        }
    };

    f.advance(30);
    flood(&f).await;
    assert_eq!(
        f.issuer.jwks_fetches().requests,
        2,
        "one fetch for the whole flood"
    );
    flood(&f).await;
    assert_eq!(f.issuer.jwks_fetches().requests, 2, "none within the cooldown");

    f.advance(30);
    flood(&f).await;
    assert_eq!(f.issuer.jwks_fetches().requests, 3, "one more after the cooldown");
}

#[tokio::test]
async fn idp_down_serves_stale_keys_within_stale_if_error_then_refuses() {
    let f = Fixture::new().await;
    let cached = f.keys().await.unwrap();
    f.issuer.set_down(true);

    f.advance(300);
    let stale = f.keys().await.unwrap();
    assert!(Arc::ptr_eq(&stale, &cached));
    assert!(stale.is_stale(f.at(300)));
    let status = f.cache.status_of(KEY).unwrap();
    assert!(status.last_error.unwrap().cause.contains("500"));

    // Still usable until 6 h past expiry …
    f.advance(6 * 3600 - 1);
    assert!(f.keys().await.is_ok());
    // … and not a second later.
    f.advance(1);
    let (url, cause) = unavailable(f.keys().await.unwrap_err());
    assert_eq!(url, f.issuer.jwks_uri());
    assert!(
        cause.contains("HTTP 500") && cause.contains("expired at"),
        "{cause}"
    );

    f.issuer.set_down(false);
    f.advance(30);
    let recovered = f.keys().await.unwrap();
    assert!(!recovered.is_stale(f.clock.now()));
}

#[tokio::test]
async fn idp_down_with_nothing_cached_is_unavailable() {
    let f = Fixture::new().await;
    f.issuer.set_down(true);
    let (url, cause) = unavailable(f.keys().await.unwrap_err());
    assert_eq!(url, f.issuer.jwks_uri());
    assert_eq!(cause, "answered HTTP 500 Internal Server Error");
}

#[tokio::test]
async fn a_failed_fetch_is_not_repeated_by_lookups_until_retry_after_error() {
    let f = Fixture::new().await;
    f.issuer.set_down(true);
    for _ in 0..5 {
        f.keys().await.unwrap_err();
    }
    assert_eq!(f.issuer.jwks_fetches().requests, 1);

    f.advance(30);
    f.keys().await.unwrap_err();
    assert_eq!(f.issuer.jwks_fetches().requests, 2);
}

#[tokio::test]
async fn a_hanging_idp_times_out() {
    let f = Fixture::with(CacheSettings {
        http_timeout: Duration::from_millis(300),
        ..CacheSettings::default()
    })
    .await;
    f.issuer.set_outage(Some(Outage::Hang));
    let (_, cause) = unavailable(f.keys().await.unwrap_err());
    assert_eq!(cause, "no complete answer within 300ms");
}

#[tokio::test]
async fn oversized_jwks_is_refused() {
    let f = Fixture::with(CacheSettings {
        max_jwks_bytes: 1024,
        ..CacheSettings::default()
    })
    .await;
    let big = format!(r#"{{"keys":[],"padding":"{}"}}"#, "x".repeat(2000));
    f.issuer.respond_jwks_with(Some(Canned::new(200, big)));
    let (_, cause) = unavailable(f.keys().await.unwrap_err());
    assert_eq!(cause, "the document is larger than 1024 bytes");
}

#[tokio::test]
async fn non_json_jwks_is_refused_quoting_only_its_start() {
    let f = Fixture::new().await;
    let page = format!("<html><body>{}</body></html>", "Maintenance. ".repeat(200));
    f.issuer.respond_jwks_with(Some(Canned::new(200, page)));
    let (_, cause) = unavailable(f.keys().await.unwrap_err());
    assert!(cause.starts_with("the document is not JSON"), "{cause}");
    assert!(cause.contains("\"<html><body>Maintenance."), "{cause}");
    assert!(cause.len() < 250, "{} chars: {cause}", cause.len());
}

#[tokio::test]
async fn jwks_of_the_wrong_shape_is_refused() {
    let f = Fixture::new().await;
    f.issuer
        .respond_jwks_with(Some(Canned::new(200, r#"{"keys":{"kty":"RSA"}}"#)));
    let (_, cause) = unavailable(f.keys().await.unwrap_err());
    assert!(cause.contains("not a JWK Set"), "{cause}");
}

#[tokio::test]
async fn jwks_404_is_refused_with_its_status() {
    let f = Fixture::new().await;
    f.issuer.respond_jwks_with(Some(Canned::new(404, "no such page")));
    let (url, cause) = unavailable(f.keys().await.unwrap_err());
    assert_eq!(url, f.issuer.jwks_uri());
    assert_eq!(cause, "answered HTTP 404 Not Found");
}

#[tokio::test]
async fn redirects_are_followed_on_the_same_host_only() {
    let f = Fixture::new().await;
    let target = f.idp.issuer("target", JwsAlg::EdDSA);
    f.issuer
        .respond_jwks_with(Some(Canned::new(302, "").header("location", &target.jwks_uri())));
    let set = f.keys().await.unwrap();
    assert!(set.find(&target.kid()).is_some());

    let elsewhere = target.jwks_uri().replace("127.0.0.1", "localhost");
    let other = f.idp.issuer("other", JwsAlg::EdDSA);
    other.respond_jwks_with(Some(Canned::new(302, "").header("location", &elsewhere)));
    let err = f.cache.keys("other", &other.jwks_source()).await.unwrap_err();
    let (_, cause) = unavailable(err);
    assert!(cause.contains("to another host or port (localhost)"), "{cause}");
    assert_eq!(target.jwks_fetches().requests, 1);
}

#[tokio::test]
async fn encryption_keys_and_malformed_members_are_skipped() {
    let f = Fixture::new().await;
    let mut enc = serde_json::to_value(f.keys().await.unwrap().keys()[0].clone()).unwrap();
    enc["kid"] = "enc-1".into();
    enc["use"] = "enc".into();
    enc["alg"] = "RSA-OAEP".into();
    f.issuer.publish_raw_jwk(enc);
    f.issuer
        .publish_raw_jwk(serde_json::json!({"kty": 5, "kid": "broken"}));
    f.issuer.publish_raw_jwk(serde_json::json!("not an object"));

    f.advance(300);
    let set = f.keys().await.unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.find("enc-1").is_none() && set.find("broken").is_none());
    assert!(set.find(&f.issuer.kid()).is_some());
}

#[tokio::test]
async fn fetched_keys_verify_tokens_of_every_upstream_algorithm() {
    let f = Fixture::new().await;
    let multi = f.idp.empty_issuer("multi");
    let algs = [JwsAlg::RS256, JwsAlg::PS256, JwsAlg::ES256, JwsAlg::EdDSA];
    for alg in algs {
        multi.add_key(alg, None);
    }
    let clerk_kid = multi.add_key(JwsAlg::RS256, Some("ins_2abcDEF"));
    let set = f.cache.keys("multi", &multi.discovery_source()).await.unwrap();
    assert_eq!(set.len(), 5);

    for alg in algs {
        let options = MintOptions {
            alg: Some(alg),
            ..MintOptions::default()
        };
        let token = multi.mint_with(&options, multi.claims(START, "user_1"));
        let jws = UnverifiedJws::parse(&token, 8192).unwrap();
        let kid = jws.header().kid.clone().unwrap();
        jws.verify(set.verifier(&kid, alg).unwrap())
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
    let token = multi.mint(multi.claims(START, "user_1"));
    let jws = UnverifiedJws::parse(&token, 8192).unwrap();
    assert_eq!(jws.header().kid.as_deref(), Some(clerk_kid.as_str()));
    jws.verify(set.verifier(&clerk_kid, JwsAlg::RS256).unwrap())
        .unwrap();
    assert!(
        set.verifier(&clerk_kid, JwsAlg::PS256).is_none(),
        "a JWK with alg RS256 serves RS256 only"
    );
}

#[tokio::test]
async fn a_changed_source_starts_a_fresh_entry() {
    let f = Fixture::new().await;
    f.keys().await.unwrap();
    let moved = f.idp.issuer("moved", JwsAlg::ES256);
    let set = f.cache.keys(KEY, &moved.jwks_source()).await.unwrap();
    assert!(set.find(&moved.kid()).is_some());
    assert!(set.find(&f.issuer.kid()).is_none());
    assert_eq!(f.cache.status().len(), 1);
}

#[tokio::test]
async fn metrics_count_fetch_outcomes_lookups_and_keys() {
    let f = Fixture::new().await;
    f.keys().await.unwrap(); // miss, fetch ok
    f.keys().await.unwrap(); // hit
    f.advance(300);
    f.keys().await.unwrap(); // miss, 304
    f.issuer.set_down(true);
    f.advance(300);
    f.keys().await.unwrap(); // stale, fetch error

    let series = |s: &str| f.metric(s);
    assert_eq!(
        series(r#"jwks_fetches_total{issuer="acme",outcome="ok"}"#),
        Some(1.0)
    );
    assert_eq!(
        series(r#"jwks_fetches_total{issuer="acme",outcome="not_modified"}"#),
        Some(1.0)
    );
    assert_eq!(
        series(r#"jwks_fetches_total{issuer="acme",outcome="error"}"#),
        Some(1.0)
    );
    assert_eq!(
        series(r#"jwks_cache_lookups_total{issuer="acme",result="hit"}"#),
        Some(1.0)
    );
    assert_eq!(
        series(r#"jwks_cache_lookups_total{issuer="acme",result="miss"}"#),
        Some(2.0)
    );
    assert_eq!(
        series(r#"jwks_cache_lookups_total{issuer="acme",result="stale"}"#),
        Some(1.0)
    );
    assert_eq!(series(r#"jwks_keys{issuer="acme"}"#), Some(1.0));
    let expiry = (START.0 + 600) as f64;
    assert_eq!(
        series(r#"jwks_expiry_timestamp_seconds{issuer="acme"}"#),
        Some(expiry)
    );
}

#[tokio::test]
async fn forget_drops_the_entry_and_its_metric_series() {
    let f = Fixture::new().await;
    f.keys().await.unwrap();
    f.cache.forget(KEY);
    assert!(f.cache.status().is_empty());
    assert!(!f.metrics.render().contains(r#"issuer="acme""#));

    f.keys().await.unwrap();
    assert_eq!(
        f.issuer.jwks_fetches().requests,
        2,
        "a forgotten issuer starts cold"
    );
}

#[tokio::test]
async fn status_reports_every_entry() {
    let f = Fixture::new().await;
    f.keys().await.unwrap();
    let down = f.idp.issuer("down", JwsAlg::EdDSA);
    down.set_down(true);
    f.cache.keys("down", &down.jwks_source()).await.unwrap_err();

    let status = f.cache.status();
    let keys: Vec<&str> = status.iter().map(|s| s.cache_key.as_str()).collect();
    assert_eq!(keys, ["acme", "down"]);
    assert_eq!((status[0].keys, status[0].expires_at), (1, Some(f.at(300))));
    assert!(status[0].last_error.is_none());
    assert_eq!(status[1].keys, 0);
    let failure = status[1].last_error.clone().unwrap();
    assert_eq!((failure.at, failure.url), (START, down.jwks_uri()));
    assert_eq!(
        f.cache.status_of("acme").unwrap().jwks_uri.as_deref(),
        Some(f.issuer.jwks_uri().as_str())
    );
}
