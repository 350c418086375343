//! Bad input on the OAuth endpoints: always a 4xx with a reason, never a 5xx or a panic.

use crate::test_app::TestApp;
use reqwest::StatusCode;
use secrecy::ExposeSecret as _;
use tollgate_client::ClientCredentials;

struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    headers: reqwest::header::HeaderMap,
}

async fn post(
    app: &TestApp,
    path: &str,
    creds: Option<&ClientCredentials>,
    content_type: &str,
    body: Vec<u8>,
) -> Answer {
    let mut req = app
        .http
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(c) = creds {
        req = req.basic_auth(&c.client_id, Some(c.client_secret.expose_secret()));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        body,
        headers,
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

async fn token_form(app: &TestApp, creds: &ClientCredentials, body: &str) -> Answer {
    post(app, "/oauth/token", Some(creds), FORM, body.as_bytes().to_vec()).await
}

fn assert_refused(a: &Answer, status: u16, error: &str, reason: &str) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_eq!(a.body["error"], error, "{}", a.body);
    assert_eq!(a.body["reason"], reason, "{}", a.body);
    assert!(
        a.body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let a = post(
        &app,
        "/oauth/token",
        Some(&creds),
        "application/json",
        br#"{"grant_type":"client_credentials"}"#.to_vec(),
    )
    .await;
    assert_refused(&a, 415, "invalid_request", "unsupported-content-type");
}

#[tokio::test]
async fn one_megabyte_body_is_413() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let mut body = b"grant_type=client_credentials&scope=".to_vec();
    body.resize(1024 * 1024, b'a');
    let a = post(&app, "/oauth/token", Some(&creds), FORM, body).await;
    assert_refused(&a, 413, "invalid_request", "body-too-large");
}

#[tokio::test]
async fn repeated_parameters_are_refused() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let a = token_form(
        &app,
        &creds,
        "grant_type=client_credentials&scope=read&scope=read",
    )
    .await;
    assert_refused(&a, 400, "invalid_request", "duplicate-parameter");
}

#[tokio::test]
async fn invalid_utf8_is_refused() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let a = post(
        &app,
        "/oauth/token",
        Some(&creds),
        FORM,
        b"grant_type=client_credentials&scope=%C3%28".to_vec(),
    )
    .await;
    assert_refused(&a, 400, "invalid_request", "invalid-utf8");
    let a = post(
        &app,
        "/oauth/token",
        Some(&creds),
        FORM,
        b"grant_type=client_credentials&scope=\xfe\xff".to_vec(),
    )
    .await;
    assert_refused(&a, 400, "invalid_request", "invalid-utf8");
}

#[tokio::test]
async fn unknown_and_missing_grant_types_are_refused() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    assert_refused(
        &token_form(&app, &creds, "grant_type=password").await,
        400,
        "unsupported_grant_type",
        "unsupported-grant-type",
    );
    assert_refused(
        &token_form(&app, &creds, "scope=read").await,
        400,
        "invalid_request",
        "missing-parameter",
    );
}

#[tokio::test]
async fn wrong_secret_is_401_with_basic_challenge() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    // A well-formed secret (valid prefix and checksum) that belongs to another client.
    let other = app.service_account("other", &[], &[]).await;
    let wrong = ClientCredentials {
        client_id: creds.client_id.clone(),
        client_secret: other.client_secret.clone(),
    };
    let a = token_form(&app, &wrong, "grant_type=client_credentials").await;
    assert_refused(&a, 401, "invalid_client", "client-auth-failed");
    assert!(
        a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
}

#[tokio::test]
async fn mistyped_secret_is_caught_by_its_checksum() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let mut s = creds.client_secret.expose_secret().to_owned();
    let last = s.pop().unwrap();
    s.push(if last == 'a' { 'b' } else { 'a' });
    let typo = ClientCredentials {
        client_id: creds.client_id.clone(),
        client_secret: s.into(),
    };
    assert_refused(
        &token_form(&app, &typo, "grant_type=client_credentials").await,
        401,
        "invalid_client",
        "secret-malformed",
    );
}

#[tokio::test]
async fn unknown_client_gets_the_same_answer_as_a_wrong_secret() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let ghost = ClientCredentials {
        client_id: "tgc_doesnotexist".into(),
        client_secret: creds.client_secret.clone(),
    };
    assert_refused(
        &token_form(&app, &ghost, "grant_type=client_credentials").await,
        401,
        "invalid_client",
        "client-auth-failed",
    );
}

#[tokio::test]
async fn missing_client_authentication_is_401() {
    let app = TestApp::new().await;
    let a = post(
        &app,
        "/oauth/token",
        None,
        FORM,
        b"grant_type=client_credentials".to_vec(),
    )
    .await;
    assert_refused(&a, 401, "invalid_client", "client-auth-missing");
}

#[tokio::test]
async fn disallowed_scope_and_audience_are_refused() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &["api"]).await;
    assert_refused(
        &token_form(&app, &creds, "grant_type=client_credentials&scope=admin").await,
        400,
        "invalid_scope",
        "scope-not-allowed",
    );
    assert_refused(
        &token_form(&app, &creds, "grant_type=client_credentials&scope=a%22b").await,
        400,
        "invalid_scope",
        "scope-malformed",
    );
    assert_refused(
        &token_form(
            &app,
            &creds,
            "grant_type=client_credentials&resource=https%3A%2F%2Fevil",
        )
        .await,
        400,
        "invalid_target",
        "audience-not-allowed",
    );
    assert_refused(
        &token_form(
            &app,
            &creds,
            "grant_type=client_credentials&audience=api&resource=api2",
        )
        .await,
        400,
        "invalid_target",
        "audience-not-allowed",
    );
}

/// Tokens that are not ours, not tokens, or tampered with: introspection says inactive,
/// `/auth/status` says why.
#[tokio::test]
async fn bad_tokens_are_inactive_with_precise_reasons() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let good = app.token(&creds).await;
    let kid = crate::oauth_flow::decode_unverified(&good).0["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = good.split('.').collect();
    let cases: Vec<(String, &str)> = vec![
        (good[..good.len() / 2].to_owned(), "malformed"),
        ("a.b".to_owned(), "malformed"),
        (
            format!(
                "{}.{}.",
                b64(&format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}"}}"#)),
                parts[1]
            ),
            "alg-not-allowed",
        ),
        (
            format!(
                "{}.{}.{}",
                b64(&format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}"}}"#)),
                parts[1],
                parts[2]
            ),
            "alg-not-allowed",
        ),
        (
            format!(
                "{}.{}.{}",
                b64(&format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#)),
                parts[1],
                parts[2]
            ),
            "alg-not-allowed",
        ),
        (
            format!(
                "{}.{}.{}",
                b64(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"nope"}"#),
                parts[1],
                parts[2]
            ),
            "kid-not-found",
        ),
        (
            format!(
                "{}.{}.{}",
                b64(&format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#)),
                parts[1],
                parts[2]
            ),
            "wrong-token-type",
        ),
        (
            format!("{}.{}.{}", parts[0], b64(r#"{"sub":"admin"}"#), parts[2]),
            "invalid-signature",
        ),
        ("x".repeat(9000), "token-too-large"),
    ];
    for (token, reason) in cases {
        assert!(
            !app.client.introspect(&creds, &token).await.unwrap().active,
            "{reason}"
        );
        let err = app.client.auth_status(&token).await.unwrap_err();
        assert_eq!(err.reason(), Some(reason), "{token:.60}");
    }
}

#[tokio::test]
async fn introspection_requires_an_authenticated_caller() {
    let app = TestApp::new().await;
    let a = post(&app, "/oauth/introspect", None, FORM, b"token=abc".to_vec()).await;
    assert_refused(&a, 401, "invalid_client", "client-auth-missing");
}

#[tokio::test]
async fn garbage_bodies_never_cause_a_server_error() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"&&&===".to_vec(),
        b"grant_type".to_vec(),
        b"%".to_vec(),
        b"%zz=1".to_vec(),
        b"grant_type=client_credentials&scope=".to_vec(),
        vec![0u8; 100],
        "grant_type=client_credentials&scope=ü".as_bytes().to_vec(),
    ];
    for path in ["/oauth/token", "/oauth/introspect", "/oauth/revoke"] {
        for body in &bodies {
            let a = post(&app, path, Some(&creds), FORM, body.clone()).await;
            assert!(
                a.status.is_success() || a.status.is_client_error(),
                "{path} {body:?} -> {}",
                a.status
            );
            if a.status.is_client_error() {
                assert!(a.body["reason"].is_string(), "{path} {body:?} -> {}", a.body);
            }
        }
    }
}
