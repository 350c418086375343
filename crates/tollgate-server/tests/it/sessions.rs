//! User sessions: refresh tokens from exchanges, rotation on every use, reuse detection,
//! exactly one winner among concurrent refreshes, idle and absolute lifetimes, logout
//! everywhere, revocation by the RFC 7009 endpoint and by administrators.

use crate::mock_idp::{MockIdp, MockIssuer};
use crate::test_app::TestApp;
use serde_json::json;
use std::time::Duration;
use tollgate_client::{TokenExchange, UserAction};
use tollgate_core::JwsAlg;
use tollgate_core::time::Clock as _;

struct World {
    app: TestApp,
    _idp: MockIdp,
    clerk: MockIssuer,
}

async fn world() -> World {
    let idp = MockIdp::start().await;
    let clerk = idp.issuer("clerk", JwsAlg::RS256);
    let app = TestApp::new().await;
    let spec = json!({
        "name": "clerk", "issuer": clerk.url(), "preset": "clerk",
        "grant": {"scopes": ["read", "write"], "audiences": ["https://api.example.com"], "refresh_tokens": true}
    });
    app.client.create_issuer(&spec).await.unwrap();
    World {
        app,
        _idp: idp,
        clerk,
    }
}

impl World {
    /// Signs in: exchanges a fresh Clerk token; returns (access token, refresh token).
    async fn sign_in(&self) -> (String, String) {
        let mut c = self.clerk.claims(self.app.clock.now(), "user_1");
        c["sid"] = json!("s");
        let resp = self
            .app
            .client
            .token_exchange(&TokenExchange::jwt(&self.clerk.mint(c)))
            .await
            .unwrap();
        (
            resp.access_token,
            resp.refresh_token.expect("a session was started"),
        )
    }

    async fn refresh(&self, rt: &str) -> Result<(String, String), tollgate_client::Error> {
        let resp = self.app.client.refresh(rt, None, None).await?;
        Ok((resp.access_token, resp.refresh_token.expect("rotated")))
    }
}

#[tokio::test]
async fn refresh_rotates_and_outlives_the_upstream_token() {
    let w = world().await;
    let (access, rt) = w.sign_in().await;
    assert!(rt.starts_with("tg_rt_"));
    let user = w.app.client.auth_status(&access).await.unwrap().sub;
    w.app.advance(Duration::from_secs(3600)); // the Clerk token and the access token expired
    let (access2, rt2) = w.refresh(&rt).await.unwrap();
    assert_ne!(rt, rt2);
    let status = w.app.client.auth_status(&access2).await.unwrap();
    assert_eq!(status.sub, user);
    assert_eq!(status.scope, "read write");
    assert_eq!(
        status.upstream.unwrap().sub,
        "user_1",
        "the session keeps the upstream identity"
    );
    let narrowed = w.app.client.refresh(&rt2, None, Some("read")).await.unwrap();
    assert_eq!(narrowed.scope.as_deref(), Some("read"));
    let err = w
        .app
        .client
        .refresh(narrowed.refresh_token.as_deref().unwrap(), None, Some("admin"))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("scope-not-allowed"));
}

#[tokio::test]
async fn reuse_of_a_spent_refresh_token_revokes_the_whole_session() {
    let w = world().await;
    let (_, rt) = w.sign_in().await;
    let (_, rt2) = w.refresh(&rt).await.unwrap();
    assert_eq!(
        w.refresh(&rt).await.unwrap_err().reason(),
        Some("refresh-token-reused")
    );
    assert_eq!(
        w.refresh(&rt2).await.unwrap_err().reason(),
        Some("session-revoked"),
        "the thief's replay ends the owner's session too"
    );
    let audit = w.app.client.audit(5).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "session.revoke" && e.reason.as_deref() == Some("refresh-token-reused"))
    );
}

#[tokio::test]
async fn of_concurrent_refreshes_with_one_token_exactly_one_succeeds() {
    let w = world().await;
    let (_, rt) = w.sign_in().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let client = w.app.client.clone();
        let rt = rt.clone();
        tasks.spawn(async move { client.refresh(&rt, None, None).await });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert!(
                matches!(e.reason(), Some("refresh-token-reused" | "session-revoked")),
                "{e}"
            ),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn sessions_end_when_idle_and_at_their_absolute_lifetime() {
    let w = world().await;
    let (_, rt) = w.sign_in().await;
    w.app.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    assert_eq!(
        w.refresh(&rt).await.unwrap_err().reason(),
        Some("session-expired")
    );

    let (_, mut rt) = w.sign_in().await;
    for _ in 0..4 {
        w.app.advance(Duration::from_secs(6 * 24 * 3600)); // used every six days: never idle
        rt = w.refresh(&rt).await.unwrap().1;
    }
    w.app.advance(Duration::from_secs(6 * 24 * 3600)); // day 30: the absolute end
    assert_eq!(
        w.refresh(&rt).await.unwrap_err().reason(),
        Some("session-expired"),
        "30 days passed"
    );
}

#[tokio::test]
async fn logout_everywhere_ends_sessions() {
    let w = world().await;
    let (access, rt) = w.sign_in().await;
    let user = w.app.client.auth_status(&access).await.unwrap().sub;
    w.app
        .client
        .user_action(&user, UserAction::LogoutEverywhere)
        .await
        .unwrap();
    assert_eq!(
        w.refresh(&rt).await.unwrap_err().reason(),
        Some("user-version-stale")
    );
    let sessions = w.app.client.user_sessions(&user).await.unwrap();
    assert_eq!(sessions[0].revoked_reason.as_deref(), Some("user-version-stale"));
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_by_admins_and_by_rfc7009() {
    use secrecy::ExposeSecret as _;
    let w = world().await;
    let (access, rt) = w.sign_in().await;
    let user = w.app.client.auth_status(&access).await.unwrap().sub;
    w.app.advance(Duration::from_secs(1)); // so "newest first" is unambiguous
    let (_, rt2) = w.sign_in().await;
    let sessions = w.app.client.user_sessions(&user).await.unwrap();
    assert_eq!(sessions.len(), 2);
    w.app.client.revoke_session(&sessions[1].id).await.unwrap();
    assert_eq!(
        w.refresh(&rt).await.unwrap_err().reason(),
        Some("session-revoked")
    );
    let resp = w
        .app
        .http
        .post(w.app.url("/oauth/revoke"))
        .bearer_auth(w.app.admin_token.expose_secret())
        .form(&[("token", rt2.as_str()), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        w.refresh(&rt2).await.unwrap_err().reason(),
        Some("session-revoked")
    );
}

#[tokio::test]
async fn unknown_and_mistyped_refresh_tokens_are_invalid_grants() {
    let w = world().await;
    let (_, rt) = w.sign_in().await;
    // One changed character (never the one already there: that would be the token itself).
    let mut typo = rt.clone();
    let last = typo.pop();
    typo.push(if last == Some('x') { 'y' } else { 'x' });
    for bad in [typo.as_str(), "tg_rt_nope", "garbage"] {
        match w.app.client.refresh(bad, None, None).await.unwrap_err() {
            tollgate_client::Error::Refused { status, body } => {
                assert_eq!(
                    (status.as_u16(), body.error.as_str(), body.reason.as_str()),
                    (400, "invalid_grant", "refresh-token-unknown")
                );
            }
            other => panic!("{other}"),
        }
    }
    let other = tollgate_core::secret_token::mint(
        tollgate_core::secret_token::SecretKind::RefreshToken,
        tollgate_crypto::random_byte_source(),
    );
    assert_eq!(
        w.refresh(&other).await.unwrap_err().reason(),
        Some("refresh-token-unknown")
    );
}

#[tokio::test]
async fn refresh_follows_the_issuers_current_state() {
    let w = world().await;
    let (_, rt) = w.sign_in().await;
    let mut spec = json!({
        "name": "clerk", "issuer": w.clerk.url(), "preset": "clerk",
        "grant": {"scopes": ["read"], "audiences": ["https://api.example.com"], "refresh_tokens": true}
    });
    w.app.client.update_issuer("clerk", &spec).await.unwrap();
    let resp = w.app.client.refresh(&rt, None, None).await.unwrap();
    assert_eq!(
        resp.scope.as_deref(),
        Some("read"),
        "narrowed to what the issuer grants now"
    );
    let rt = resp.refresh_token.unwrap();
    spec["grant"]["refresh_tokens"] = json!(false);
    w.app.client.update_issuer("clerk", &spec).await.unwrap();
    assert_eq!(w.refresh(&rt).await.unwrap_err().reason(), Some("policy-denied"));

    let (_, rt) = {
        spec["grant"]["refresh_tokens"] = json!(true);
        w.app.client.update_issuer("clerk", &spec).await.unwrap();
        w.sign_in().await
    };
    spec["enabled"] = json!(false);
    w.app.client.update_issuer("clerk", &spec).await.unwrap();
    assert_eq!(
        w.refresh(&rt).await.unwrap_err().reason(),
        Some("issuer-disabled")
    );
}

#[tokio::test]
async fn refreshed_tokens_never_outlive_their_session_and_bad_credentials_are_refused() {
    let w = world().await;
    let (_, mut rt) = w.sign_in().await;
    for _ in 0..4 {
        w.app.advance(Duration::from_secs(6 * 24 * 3600));
        rt = w.refresh(&rt).await.unwrap().1;
    }
    w.app.advance(Duration::from_secs(6 * 24 * 3600 - 60)); // one minute of the 30 days left
    let resp = w.app.client.refresh(&rt, None, None).await.unwrap();
    assert!(resp.expires_in <= 60, "expires_in {}", resp.expires_in);

    let stranger = w.app.service_account("stranger", &[], &[]).await;
    let wrong = tollgate_client::ClientCredentials {
        client_secret: "tg_sa_wrong".to_owned().into(),
        ..stranger
    };
    let err = w
        .app
        .client
        .refresh(resp.refresh_token.as_deref().unwrap(), Some(&wrong), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.reason(),
        Some("secret-malformed"),
        "presented credentials are checked"
    );
}
