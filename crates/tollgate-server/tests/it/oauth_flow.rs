//! The happy paths of client_credentials, introspection and revocation.

use crate::test_app::TestApp;
use std::time::Duration;
use tollgate_client::ClientCredentials;

#[tokio::test]
async fn client_credentials_issues_an_rfc9068_token() {
    let app = TestApp::new().await;
    let creds = app
        .service_account("billing", &["read", "write"], &["https://api.example.com"])
        .await;
    let resp = app
        .client
        .client_credentials(&creds, Some("read"), None)
        .await
        .unwrap();
    assert_eq!(resp.token_type, "Bearer");
    assert_eq!(resp.expires_in, 900);
    assert_eq!(resp.scope.as_deref(), Some("read"));

    let (header, claims) = decode_unverified(&resp.access_token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    assert_eq!(claims["iss"], app.url);
    assert_eq!(claims["sub"], creds.client_id.as_str());
    assert_eq!(claims["client_id"], creds.client_id.as_str());
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["scope"], "read");
    for c in ["iat", "nbf", "exp", "jti"] {
        assert!(!claims[c].is_null(), "missing {c}");
    }
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

pub fn decode_unverified(token: &str) -> (serde_json::Value, serde_json::Value) {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let mut next = || {
        let part = parts.next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    (next(), next())
}

#[tokio::test]
async fn no_scope_requested_grants_all_allowed_scopes_and_default_audience() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["b", "a"], &[]).await;
    let resp = app.client.client_credentials(&creds, None, None).await.unwrap();
    assert_eq!(resp.scope.as_deref(), Some("a b"));
    let (_, claims) = decode_unverified(&resp.access_token);
    assert_eq!(
        claims["aud"], app.url,
        "without client audiences the server's default (public_url) is used"
    );
}

#[tokio::test]
async fn requested_scope_is_intersected_with_allowed_scope() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let resp = app
        .client
        .client_credentials(&creds, Some("read admin"), None)
        .await
        .unwrap();
    assert_eq!(resp.scope.as_deref(), Some("read"));
}

#[tokio::test]
async fn introspection_reports_active_token_then_inactive_after_revocation() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &["api"]).await;
    let t = app.token(&creds).await;
    let active = app.client.introspect(&creds, &t).await.unwrap();
    assert!(active.active);
    assert_eq!(active.client_id.as_deref(), Some(creds.client_id.as_str()));
    assert_eq!(active.scope.as_deref(), Some("read"));
    assert_eq!(active.aud.as_deref(), Some("api"));
    assert_eq!(active.token_type.as_deref(), Some("Bearer"));

    app.client.revoke(&creds, &t).await.unwrap();
    let inactive = app.client.introspect(&creds, &t).await.unwrap();
    assert_eq!(
        inactive,
        Default::default(),
        "an inactive answer carries only active=false"
    );
    let err = app.client.auth_status(&t).await.unwrap_err();
    assert_eq!(err.reason(), Some("revoked"));
}

#[tokio::test]
async fn revocation_survives_restart() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let t = app.token(&creds).await;
    app.client.revoke(&creds, &t).await.unwrap();
    let app = app.restart().await;
    assert!(!app.client.introspect(&creds, &t).await.unwrap().active);
}

#[tokio::test]
async fn revoking_twice_or_revoking_garbage_answers_200() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let t = app.token(&creds).await;
    app.client.revoke(&creds, &t).await.unwrap();
    app.client.revoke(&creds, &t).await.unwrap();
    app.client.revoke(&creds, "not-a-token").await.unwrap();
}

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_token() {
    let app = TestApp::new().await;
    let a = app.service_account("a", &["read"], &[]).await;
    let b = app.service_account("b", &["read"], &[]).await;
    let t = app.token(&a).await;
    let err = app.client.revoke(&b, &t).await.unwrap_err();
    assert_eq!(err.reason(), Some("token-not-owned"));
    assert!(app.client.introspect(&a, &t).await.unwrap().active);
}

#[tokio::test]
async fn expired_tokens_introspect_inactive() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let t = app.token(&creds).await;
    app.advance(Duration::from_secs(900 + 6));
    assert!(!app.client.introspect(&creds, &t).await.unwrap().active);
    assert_eq!(
        app.client.auth_status(&t).await.unwrap_err().reason(),
        Some("expired")
    );
}

#[tokio::test]
async fn disabling_a_client_deactivates_its_tokens_and_blocks_authentication() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let resource_server = app.service_account("rs", &[], &[]).await;
    let t = app.token(&creds).await;
    app.client
        .set_client_enabled(&creds.client_id, false)
        .await
        .unwrap();
    assert!(!app.client.introspect(&resource_server, &t).await.unwrap().active);
    let err = app
        .client
        .client_credentials(&creds, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("client-disabled"));
    app.client
        .set_client_enabled(&creds.client_id, true)
        .await
        .unwrap();
    assert!(app.client.introspect(&resource_server, &t).await.unwrap().active);
}

#[tokio::test]
async fn rotated_client_secret_replaces_the_old_one() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let rotated = app.client.rotate_client_secret(&creds.client_id).await.unwrap();
    let err = app
        .client
        .client_credentials(&creds, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("client-auth-failed"));
    let new = ClientCredentials {
        client_id: creds.client_id,
        client_secret: rotated.client_secret.into(),
    };
    app.client.client_credentials(&new, None, None).await.unwrap();
}

#[tokio::test]
async fn hmac_secret_rotation_keeps_old_secrets_working_and_rehashes_them() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let v = app.client.rotate_secrets().await.unwrap();
    assert_eq!(v.version, 2);
    app.client.client_credentials(&creds, None, None).await.unwrap();
    let stored = app
        .state
        .store
        .get_client(&creds.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.secret.version, 2,
        "a successful use re-hashes under the newest secret"
    );
    app.client.client_credentials(&creds, None, None).await.unwrap();
}

#[tokio::test]
async fn client_secret_post_is_accepted() {
    use secrecy::ExposeSecret as _;
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", creds.client_secret.expose_secret()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
}

#[tokio::test]
async fn admin_token_may_introspect_and_revoke() {
    use secrecy::ExposeSecret as _;
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let t = app.token(&creds).await;
    let resp = app
        .http
        .post(app.url("/oauth/revoke"))
        .bearer_auth(app.admin_token.expose_secret())
        .form(&[("token", t.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!app.client.introspect(&creds, &t).await.unwrap().active);
}

#[tokio::test]
async fn issuance_and_revocation_are_audited_without_tokens() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let t = app.token(&creds).await;
    app.client.revoke(&creds, &t).await.unwrap();
    let events = app.client.audit(10).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions[..3], ["token.revoke", "token.issue", "client.create"]);
    let dump = serde_json::to_string(&events).unwrap();
    assert!(!dump.contains(&t), "audit must never contain a token");
    assert!(!dump.contains("tg_sa_"), "audit must never contain a secret");
}
