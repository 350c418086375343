//! Signing key lifecycle: rotation, publication windows, retirement, restarts, algorithms.

use crate::oauth_flow::decode_unverified;
use crate::test_app::TestApp;
use std::time::Duration;
use tollgate_core::SigningAlg;
use tollgate_proto::admin::{RetireKeyRequest, RotateKeysRequest};

fn rotate(force: bool) -> RotateKeysRequest {
    RotateKeysRequest { purpose: None, force }
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks = app.client.jwks(None).await.unwrap().jwks.unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn rotation_waits_until_the_next_key_has_been_published_for_jwks_max_age() {
    let app = TestApp::new().await;
    let err = app.client.rotate_keys(&rotate(false)).await.unwrap_err();
    assert_eq!(err.reason(), Some("invalid-key-state"));
    app.advance(Duration::from_secs(300));
    app.client.rotate_keys(&rotate(false)).await.unwrap();
}

#[tokio::test]
async fn rotation_publishes_before_signing_and_keeps_old_tokens_valid_until_expiry() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let old_token = app.token(&creds).await;
    let old_kid = decode_unverified(&old_token).0["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let published_before = jwks_kids(&app).await;

    app.advance(Duration::from_secs(300));
    let r = app.client.rotate_keys(&rotate(false)).await.unwrap();
    assert_eq!(r.retired.as_deref(), Some(old_kid.as_str()));
    assert!(
        published_before.contains(&r.activated),
        "the key that now signs was already in JWKS"
    );

    let new_token = app.token(&creds).await;
    assert_eq!(decode_unverified(&new_token).0["kid"], r.activated.as_str());
    let now_published = jwks_kids(&app).await;
    assert!(
        now_published.contains(&old_kid)
            && now_published.contains(&r.activated)
            && now_published.contains(&r.next)
    );
    assert!(
        app.client.introspect(&creds, &old_token).await.unwrap().active,
        "old token still verifies"
    );

    // The old token was issued 300 s before rotation; it lives 900 s. The retired key stays
    // published for a full token lifetime after retirement, then disappears.
    app.advance(Duration::from_secs(900 + 5));
    app.upkeep().await;
    assert!(
        !jwks_kids(&app).await.contains(&old_kid),
        "retired key leaves JWKS after its tokens expired"
    );
    let fresh = app.token(&creds).await;
    assert_eq!(decode_unverified(&fresh).0["kid"], r.activated.as_str());
    assert!(app.client.introspect(&creds, &fresh).await.unwrap().active);
}

#[tokio::test]
async fn retiring_the_active_key_is_refused_and_a_next_key_is_replaced() {
    let app = TestApp::new().await;
    let keys = app.client.list_keys().await.unwrap();
    let active = keys.iter().find(|k| k.state == "active").unwrap();
    let next = keys.iter().find(|k| k.state == "next").unwrap();
    let err = app
        .client
        .retire_key(&active.kid, &RetireKeyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("invalid-key-state"));
    app.client
        .retire_key(&next.kid, &RetireKeyRequest::default())
        .await
        .unwrap();
    let kids = jwks_kids(&app).await;
    assert!(!kids.contains(&next.kid));
    assert_eq!(kids.len(), 2, "a fresh next key took its place");
    let err = app
        .client
        .retire_key("no-such-kid", &RetireKeyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("not-found"));
}

#[tokio::test]
async fn a_compromised_retired_key_can_be_unpublished_immediately() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let token = app.token(&creds).await;
    let r = app.client.rotate_keys(&rotate(true)).await.unwrap();
    let old = r.retired.unwrap();
    let err = app
        .client
        .retire_key(&old, &RetireKeyRequest { immediately: false })
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("invalid-key-state"));
    app.client
        .retire_key(&old, &RetireKeyRequest { immediately: true })
        .await
        .unwrap();
    assert!(!jwks_kids(&app).await.contains(&old));
    assert_eq!(
        app.client.auth_status(&token).await.unwrap_err().reason(),
        Some("kid-not-found")
    );
}

#[tokio::test]
async fn keys_clients_and_tokens_survive_restart() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let token = app.token(&creds).await;
    let kids = jwks_kids(&app).await;
    let app = app.restart().await;
    assert_eq!(jwks_kids(&app).await, kids, "no new keys on restart");
    assert!(app.client.introspect(&creds, &token).await.unwrap().active);
    app.client.client_credentials(&creds, None, None).await.unwrap();
}

#[tokio::test]
async fn each_algorithm_signs_verifiable_tokens() {
    for alg in SigningAlg::ALL {
        let app = TestApp::with_config(|c| c.tokens.signing_alg = alg).await;
        let creds = app.service_account("svc", &["read"], &[]).await;
        let token = app.token(&creds).await;
        assert_eq!(decode_unverified(&token).0["alg"], alg.as_str());
        assert!(
            app.client.introspect(&creds, &token).await.unwrap().active,
            "{alg}"
        );
    }
}

#[tokio::test]
async fn changing_signing_alg_publishes_a_next_key_of_the_new_alg_and_rotates_after_max_age() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let ed_token = app.token(&creds).await;
    let mut config = (*app.state.config).clone();
    config.tokens.signing_alg = SigningAlg::ES256;
    let app = app.restart_with(config).await;
    let keys = app.client.list_keys().await.unwrap();
    let access = |state: &str| {
        keys.iter()
            .find(|k| k.purpose == "access" && k.state == state)
            .unwrap()
    };
    assert_eq!(access("next").alg, "ES256");
    assert_eq!(access("active").alg, "EdDSA", "not switched before publication");

    app.advance(Duration::from_secs(301));
    app.upkeep().await;
    let token = app.token(&creds).await;
    assert_eq!(decode_unverified(&token).0["alg"], "ES256");
    assert!(
        app.client.introspect(&creds, &ed_token).await.unwrap().active,
        "EdDSA tokens still verify"
    );
}

#[tokio::test]
async fn automatic_rotation_after_rotate_after() {
    let app = TestApp::with_config(|c| c.keys.rotate_after = Duration::from_secs(3600)).await;
    let before = app.client.list_keys().await.unwrap();
    let active = before.iter().find(|k| k.state == "active").unwrap().kid.clone();
    app.advance(Duration::from_secs(3600));
    app.upkeep().await;
    let after = app.client.list_keys().await.unwrap();
    assert_eq!(after.iter().find(|k| k.kid == active).unwrap().state, "retired");
}
