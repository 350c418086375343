//! Every operation declares who may call it, and the declaration holds: the test walks the
//! served OpenAPI document (generated from the handlers, so a new route appears here
//! without anyone remembering to add it) and calls every operation without credentials.

use crate::test_app::TestApp;
use serde_json::Value;

/// Operations anyone may call, by design.
const PUBLIC: &[&str] = &[
    "GET /.well-known/jwks.json",
    "GET /.well-known/oauth-authorization-server",
    "GET /.well-known/openid-configuration",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /openapi.json",
];

fn security_of(op: &Value) -> Vec<String> {
    op["security"]
        .as_array()
        .map(|reqs| {
            reqs.iter()
                .flat_map(|r| r.as_object().into_iter().flat_map(|o| o.keys().cloned()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn every_operation_is_public_by_name_or_refuses_anonymous_callers() {
    let app = TestApp::new().await;
    let doc = app.get_json("/openapi.json").await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            let schemes = security_of(op);
            if PUBLIC.contains(&name.as_str()) {
                assert!(schemes.is_empty(), "{name} is public but declares {schemes:?}");
                continue;
            }
            assert!(
                !schemes.is_empty(),
                "{name} declares no security and is not on the public list"
            );
            let url = app.url(
                &path
                    .replace("{client_id}", "tgc_x")
                    .replace("{kid}", "k")
                    .replace("{name}", "n")
                    .replace("{id}", "usr_x"),
            );
            let req = match method.as_str() {
                "get" => app.http.get(url),
                "post" => app.http.post(url),
                "put" => app.http.put(url),
                "delete" => app.http.delete(url),
                other => panic!("unexpected method {other}"),
            };
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if schemes.iter().any(|s| s == "admin") && !schemes.iter().any(|s| s == "client") {
                assert_eq!(
                    (status, body["reason"].as_str()),
                    (401, Some("admin-auth-required")),
                    "{name}"
                );
            } else {
                // Client-authenticated OAuth endpoints: never a success without credentials.
                assert!(
                    matches!(status, 400 | 401 | 415),
                    "{name} answered {status} to an anonymous call"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "walked only {checked} guarded operations");
}
