//! Health, readiness, metrics, OpenAPI, unknown routes.

use crate::test_app::TestApp;

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::new().await;
    let ready = app.client.ready().await.unwrap();
    assert_eq!(ready.status, "ok");
    let health = app.get_json("/healthz").await;
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_tokens_by_kind() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    app.client.client_credentials(&creds, None, None).await.unwrap();
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"tollgate_http_requests_total{method="POST",route="/oauth/token",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tollgate_tokens_issued_total{kind="access"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("tollgate_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::new().await;
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(resp.headers().contains_key("x-request-id"));
    let resp = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_reasons() {
    let app = TestApp::new().await;
    let resp = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["reason"],
        "not-found"
    );
    let resp = app.http.delete(app.url("/oauth/token")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST", "RFC 9110 §15.5.6");
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["reason"],
        "method-not-allowed"
    );
}

/// The served document must list every route the router has, and be OpenAPI 3.1.
#[tokio::test]
async fn openapi_document_is_served_and_complete() {
    let app = TestApp::new().await;
    let doc = app.get_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/oauth/token",
        "/oauth/introspect",
        "/oauth/revoke",
        "/auth/status",
        "/v1/admin/clients",
        "/v1/admin/clients/{client_id}",
        "/v1/admin/keys/rotate",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(path), "openapi lacks {path}");
    }
}

#[tokio::test]
async fn database_failure_fails_closed_with_503() {
    let app = TestApp::new().await;
    let creds = app.service_account("svc", &["read"], &[]).await;
    app.state.store.close().await;
    let err = app
        .client
        .client_credentials(&creds, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("service-unavailable"));
    let resp = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
}

/// A client that promises a body and never sends it is cut off at the deadline with a 503
/// that says why, instead of holding a connection open forever.
#[tokio::test]
async fn requests_over_the_deadline_get_503_with_a_reason() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app =
        TestApp::with_config(|c| c.server.request_timeout = std::time::Duration::from_millis(200)).await;
    let mut conn = tokio::net::TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                Content-Length: 100\r\nConnection: close\r\n\r\ngrant_type=";
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""reason":"service-unavailable""#), "{answer}");
}
