//! Rate limits through the real server: per client IP on the open endpoints (with
//! `X-Forwarded-For` believed only from trusted proxies), per identity on the token
//! endpoint, 429 with `Retry-After`, metrics, and one limit shared by two replicas through
//! Redis.

use crate::orgs::world_with;
use crate::test_app::TestApp;
use std::time::Duration;
use tollgate_core::time::Clock as _;
use tollgate_server::Config;

fn limits(c: &mut Config, per_ip: &str, burst: u32) {
    c.rate_limits.enabled = true;
    c.rate_limits.per_ip = per_ip.to_owned();
    c.rate_limits.per_ip_burst = burst;
}

/// A token request with no credentials (a 4xx, but counted like any other), optionally
/// with an `X-Forwarded-For` header; its status and `Retry-After`.
async fn token_request(app: &TestApp, forwarded_for: Option<&str>) -> (u16, Option<String>) {
    let mut req = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", "client_credentials")]);
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    let resp = req.send().await.unwrap();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), retry)
}

#[tokio::test]
async fn the_open_endpoints_are_limited_per_ip_with_retry_after() {
    let app = TestApp::with_config(|c| limits(c, "6/min", 3)).await;
    for _ in 0..3 {
        assert_eq!(token_request(&app, None).await.0, 401);
    }
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "10");
    assert_eq!(resp.headers()["x-tollgate-limit"], "ip");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        (body["reason"].as_str(), body["error"].as_str()),
        (Some("rate-limited"), Some("rate_limited"))
    );
    // The other open endpoints share the address's budget; the rest of the API does not count.
    assert_eq!(
        app.http.get(app.url("/v2/token")).send().await.unwrap().status(),
        429
    );
    assert_eq!(
        app.http.get(app.url("/healthz")).send().await.unwrap().status(),
        200
    );
    // One emission interval later, one more request.
    app.advance(Duration::from_secs(10));
    assert_eq!(token_request(&app, None).await.0, 401);
    assert_eq!(token_request(&app, None).await.0, 429);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tollgate_rate_limited_total{limit=\"ip\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = TestApp::with_config(|c| limits(c, "2/min", 2)).await;
    // Each request claims another address; the peer (127.0.0.1) is what counts.
    assert_eq!(token_request(&app, Some("198.51.100.1")).await.0, 401);
    assert_eq!(token_request(&app, Some("198.51.100.2")).await.0, 401);
    assert_eq!(token_request(&app, Some("198.51.100.3")).await.0, 429);
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let app = TestApp::with_config(|c| {
        limits(c, "2/min", 2);
        c.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    assert_eq!(token_request(&app, Some("198.51.100.1")).await.0, 401);
    assert_eq!(token_request(&app, Some("198.51.100.1")).await.0, 401);
    assert_eq!(token_request(&app, Some("198.51.100.1")).await.0, 429);
    // Another client behind the proxy has its own budget.
    assert_eq!(token_request(&app, Some("198.51.100.2")).await.0, 401);
    // A client cannot escape by prepending addresses: the proxy's entry is the right-most.
    assert_eq!(token_request(&app, Some("6.6.6.6, 198.51.100.1")).await.0, 429);
}

#[tokio::test]
async fn refresh_is_limited_per_session_and_client_credentials_per_client() {
    let w = world_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.per_identity = "2/min".into();
        c.rate_limits.per_identity_burst = 2;
    })
    .await;
    let alice = w.sign_in("alice", None).await;
    let bob = w.sign_in("bob", None).await;
    let first = w.app.client.refresh(&alice.refresh, None, None).await.unwrap();
    let second = w
        .app
        .client
        .refresh(first.refresh_token.as_deref().unwrap(), None, None)
        .await
        .unwrap();
    let third = w
        .app
        .client
        .refresh(second.refresh_token.as_deref().unwrap(), None, None)
        .await
        .expect_err("limited");
    assert_eq!(third.reason(), Some("rate-limited"));
    // Limited, not spent: after the wait the same token still rotates.
    w.app.advance(Duration::from_secs(30));
    w.app
        .client
        .refresh(second.refresh_token.as_deref().unwrap(), None, None)
        .await
        .expect("the limited token was not spent");
    // Another session is not affected.
    w.app.client.refresh(&bob.refresh, None, None).await.unwrap();
    let sa = w.app.service_account("svc", &["read"], &[]).await;
    for _ in 0..2 {
        w.app.client.client_credentials(&sa, None, None).await.unwrap();
    }
    let e = w
        .app
        .client
        .client_credentials(&sa, None, None)
        .await
        .expect_err("limited");
    assert_eq!(e.reason(), Some("rate-limited"));
}

#[tokio::test]
async fn two_replicas_share_one_limit_through_redis() {
    let Some(url) = tollgate_store::testing::redis_url().await else {
        return;
    };
    let prefix = format!("tollgate-test:{}:", uuid::Uuid::new_v4().simple());
    let replica = |url: String, prefix: String| {
        TestApp::with_config(move |c| {
            limits(c, "2/min", 2);
            c.redis.url = url;
            c.redis.prefix = prefix;
        })
    };
    let a = replica(url.clone(), prefix.clone()).await;
    let b = replica(url, prefix).await;
    // The two clocks start within a second of each other: make them agree.
    let (ta, tb) = (a.clock.now(), b.clock.now());
    let (behind, gap) = if ta < tb {
        (&a, tb.0 - ta.0)
    } else {
        (&b, ta.0 - tb.0)
    };
    behind.advance(Duration::from_secs(gap.unsigned_abs()));
    assert_eq!(token_request(&a, None).await.0, 401);
    assert_eq!(token_request(&b, None).await.0, 401);
    assert_eq!(token_request(&a, None).await.0, 429, "b's request counted at a");
    assert_eq!(token_request(&b, None).await.0, 429);
    // Without Redis each replica counts alone.
    let c = TestApp::with_config(|c| limits(c, "2/min", 2)).await;
    let d = TestApp::with_config(|c| limits(c, "2/min", 2)).await;
    for _ in 0..2 {
        assert_eq!(token_request(&c, None).await.0, 401);
    }
    assert_eq!(token_request(&c, None).await.0, 429);
    assert_eq!(token_request(&d, None).await.0, 401);
}

/// A private Redis on a free loopback port, stopped when dropped.
struct PrivateRedis {
    child: std::process::Child,
    url: String,
}

impl PrivateRedis {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else {
            crate::test_app::skip_unless_ci("redis-server is not installed");
            return None;
        };
        Some(Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        })
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.url.trim_start_matches("redis://"))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn when_redis_goes_away_requests_fail_closed_with_503() {
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    redis.wait_ready().await;
    let url = redis.url.clone();
    let app = TestApp::with_config(move |c| {
        limits(c, "600/min", 100);
        c.redis.url = url;
        c.redis.timeout = Duration::from_millis(300);
    })
    .await;
    assert_eq!(
        token_request(&app, None).await.0,
        401,
        "counted in Redis, then judged"
    );
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "no limit check, no answer");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "service-unavailable");
    let ready: serde_json::Value = app.get_json("/readyz").await;
    assert_eq!(ready["redis"], "unreachable");
}
