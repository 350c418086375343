//! JWKS and server metadata.

use crate::test_app::TestApp;

#[tokio::test]
async fn jwks_has_strong_etag_cache_control_and_answers_304() {
    let app = TestApp::new().await;
    let first = app.client.jwks(None).await.unwrap();
    let etag = first.etag.clone().unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag, got {etag}"
    );
    assert_eq!(first.cache_control.as_deref(), Some("public, max-age=300"));
    let keys = first.jwks.unwrap()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2, "active key and the published next key");
    for k in &keys {
        assert_eq!(k["kty"], "OKP");
        assert_eq!(k["alg"], "EdDSA");
        assert_eq!(k["use"], "sig");
        assert!(k.get("d").is_none(), "no private material");
    }
    let again = app.client.jwks(Some(&etag)).await.unwrap();
    assert!(again.jwks.is_none(), "304 Not Modified");
    assert_eq!(again.etag.as_deref(), Some(etag.as_str()));
    let other = app.client.jwks(Some("\"nope\"")).await.unwrap();
    assert!(other.jwks.is_some());
}

#[tokio::test]
async fn jwks_content_type() {
    let app = TestApp::new().await;
    let resp = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/jwk-set+json");
}

#[tokio::test]
async fn metadata_names_this_issuer_and_its_endpoints() {
    let app = TestApp::new().await;
    let m = app.client.metadata().await.unwrap();
    assert_eq!(m.issuer, app.url);
    assert_eq!(m.jwks_uri, app.url("/.well-known/jwks.json"));
    assert_eq!(m.token_endpoint, app.url("/oauth/token"));
    assert_eq!(m.introspection_endpoint, app.url("/oauth/introspect"));
    assert_eq!(m.revocation_endpoint, app.url("/oauth/revoke"));
    assert_eq!(
        m.device_authorization_endpoint,
        app.url("/oauth/device_authorization")
    );
    // Every grant the token endpoint takes is advertised.
    for grant in [
        "client_credentials",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        assert!(m.grant_types_supported.iter().any(|g| g == grant), "{grant}");
    }
    let oidc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(oidc["issuer"], app.url);
    let redacted = serde_json::to_string_pretty(&m)
        .unwrap()
        .replace(&app.url, "[issuer]");
    insta::assert_snapshot!(redacted);
}
