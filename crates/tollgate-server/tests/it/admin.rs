//! The admin API: authentication, service accounts, validation.

use crate::test_app::TestApp;
use secrecy::SecretString;
use tollgate_client::Client;
use tollgate_proto::admin::CreateClientRequest;

fn create(name: &str) -> CreateClientRequest {
    CreateClientRequest {
        name: name.into(),
        scope: vec!["read".into()],
        audiences: vec![],
    }
}

#[tokio::test]
async fn admin_api_requires_a_valid_admin_token() {
    let app = TestApp::new().await;
    let anonymous = Client::new(&app.url).unwrap();
    assert!(matches!(
        anonymous.list_clients().await,
        Err(tollgate_client::Error::NoAdminToken)
    ));
    let resp = app.http.get(app.url("/v1/admin/clients")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "admin-auth-required");

    let forged = tollgate_server::admin_tokens::generate();
    let err = Client::new(&app.url)
        .unwrap()
        .with_admin_token(SecretString::from(forged))
        .list_clients()
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("admin-auth-failed"));
    let err = Client::new(&app.url)
        .unwrap()
        .with_admin_token(SecretString::from("tg_adm_short"))
        .list_clients()
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("secret-malformed"));
}

#[tokio::test]
async fn configured_bootstrap_token_replaces_the_generated_one() {
    let token = tollgate_server::admin_tokens::generate();
    let t = token.clone();
    // A configured token means no token is generated, so TestApp gets it from config.
    let app = TestApp::with_config(move |c| c.admin.bootstrap_token = Some(SecretString::from(t))).await;
    let c = Client::new(&app.url)
        .unwrap()
        .with_admin_token(SecretString::from(token));
    c.list_clients().await.unwrap();
}

#[tokio::test]
async fn clients_are_listed_shown_and_deleted_without_secrets() {
    let app = TestApp::new().await;
    let created = app.client.create_client(&create("ci-bot")).await.unwrap();
    assert!(created.client_secret.starts_with("tg_sa_"));
    assert!(created.client.client_id.starts_with("tgc_"));
    let listed = app.client.list_clients().await.unwrap();
    assert_eq!(listed, vec![created.client.clone()]);
    let raw = app
        .http
        .get(app.url("/v1/admin/clients"))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&app.admin_token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!raw.contains("tg_sa_"), "secrets are never listed");
    assert_eq!(
        app.client.get_client(&created.client.client_id).await.unwrap(),
        created.client
    );
    app.client.delete_client(&created.client.client_id).await.unwrap();
    assert_eq!(
        app.client
            .get_client(&created.client.client_id)
            .await
            .unwrap_err()
            .reason(),
        Some("not-found")
    );
    assert_eq!(
        app.client
            .delete_client(&created.client.client_id)
            .await
            .unwrap_err()
            .reason(),
        Some("not-found")
    );
}

#[tokio::test]
async fn client_names_are_unique_and_validated() {
    let app = TestApp::new().await;
    app.client.create_client(&create("ci-bot")).await.unwrap();
    assert_eq!(
        app.client
            .create_client(&create("ci-bot"))
            .await
            .unwrap_err()
            .reason(),
        Some("conflict")
    );
    assert_eq!(
        app.client
            .create_client(&create("has space"))
            .await
            .unwrap_err()
            .reason(),
        Some("invalid-parameter")
    );
    let bad_scope = CreateClientRequest {
        name: "x".into(),
        scope: vec!["a\"b".into()],
        audiences: vec![],
    };
    assert_eq!(
        app.client.create_client(&bad_scope).await.unwrap_err().reason(),
        Some("invalid-parameter")
    );
    let bad_aud = CreateClientRequest {
        name: "y".into(),
        scope: vec![],
        audiences: vec!["a b".into()],
    };
    assert_eq!(
        app.client.create_client(&bad_aud).await.unwrap_err().reason(),
        Some("invalid-parameter")
    );
}

#[tokio::test]
async fn malformed_admin_json_is_a_400_with_reason() {
    use secrecy::ExposeSecret as _;
    let app = TestApp::new().await;
    let cases: Vec<(&str, &str, u16, &str)> = vec![
        ("application/json", "{", 400, "malformed-request"),
        ("application/json", r#"{"name": 5}"#, 400, "malformed-request"),
        (
            "application/json",
            r#"{"name": "x", "unknown": 1}"#,
            400,
            "malformed-request",
        ),
        ("text/plain", r#"{"name": "x"}"#, 415, "unsupported-content-type"),
    ];
    for (ct, body, status, reason) in cases {
        let resp = app
            .http
            .post(app.url("/v1/admin/clients"))
            .bearer_auth(app.admin_token.expose_secret())
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let json: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(json["reason"], reason, "{body}");
    }
}

#[tokio::test]
async fn admin_actions_are_audited() {
    let app = TestApp::new().await;
    let created = app.client.create_client(&create("ci-bot")).await.unwrap();
    app.client
        .set_client_enabled(&created.client.client_id, false)
        .await
        .unwrap();
    let events = app.client.audit(5).await.unwrap();
    assert_eq!(events[0].action, "client.disable");
    assert_eq!(
        events[0].target.as_deref(),
        Some(created.client.client_id.as_str())
    );
    assert!(events[0].actor.starts_with("admin:adm_"));
    assert_eq!(events[1].action, "client.create");
}

/// PostgreSQL cannot store NUL in text; such input must be a 4xx on every backend, never a 503.
#[tokio::test]
async fn nul_characters_in_input_are_client_errors() {
    use secrecy::ExposeSecret as _;
    let app = TestApp::new().await;
    let token = app.admin_token.expose_secret().to_owned();
    let checks = [
        app.http
            .get(app.url("/v1/admin/clients/a%00b"))
            .bearer_auth(&token),
        app.http.delete(app.url("/v1/issuers/a%00b")).bearer_auth(&token),
        app.http
            .post(app.url("/v1/admin/users"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"email": "a\u{0}b"})),
        app.http
            .post(app.url("/v1/admin/users"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"identities": [{"iss": "https://i", "sub": "a\u{0}b"}]})),
        app.http.post(app.url("/oauth/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "a\u{0}b"),
            ("client_secret", "x"),
        ]),
    ];
    for req in checks {
        let resp = req.send().await.unwrap();
        assert!(
            resp.status().is_client_error(),
            "{} {:?}",
            resp.status(),
            resp.url()
        );
    }
}
