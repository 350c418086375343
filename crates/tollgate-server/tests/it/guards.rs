//! Every operation declares who may call it, and the declaration holds: the tests walk the
//! served OpenAPI document (generated from the handlers, so a new route appears here
//! without anyone remembering to add it) and call every operation, without credentials and
//! as a viewer of an org. Every answer must carry the guard's decision
//! (`X-Tollgate-Decision`): a route whose handler took no guard answers `none` — and the
//! server refuses to let such a route succeed (see `authz::enforce`).

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
    // Registry clients ask anonymously first; credentials are HTTP Basic, checked inside.
    "GET /v2/token",
    "POST /v2/token",
    // A CI runner proves itself with its OIDC token and the session's nonce, in the body.
    "POST /v1/publish/attest",
    // RFC 8628: a device (a public client, nothing to authenticate) asks for codes.
    "POST /oauth/device_authorization",
    // An invite link's page: shows only what the token in the URL names (no sign-in yet).
    "GET /verify",
    // Authenticated inside by the invite token and an upstream identity token in the body.
    "POST /v1/invites/redeem",
    // Pages for people: browser sign-in through the upstream issuer, and the forms posted
    // with the browser session's cookie and anti-forgery token (checked inside).
    "GET /login",
    "GET /login/callback",
    "POST /logout",
    "GET /device",
    "POST /device",
    "POST /verify",
    // The CA chain: every verifier of issued certificates needs it.
    "GET /v1/ca/chain",
    // Envoy ext_authz: the forwarded client certificate is checked inside.
    "POST /v1/gateway/authorize/{path}",
];

/// Whether an operation is open by route and authenticates inside: OAuth clients (HTTP
/// Basic, RFC 6749), publish runners (the session's runner secret) and devices registering
/// a key (the key-enrollment token).
fn authenticates_inside(schemes: &[String]) -> bool {
    schemes
        .iter()
        .any(|s| s == "client" || s == "runner" || s == "ket")
}

fn decision(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-tollgate-decision")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(missing)")
        .to_owned()
}

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
            // OAuth endpoints are open by route and authenticate the client in the protocol.
            let expected = if authenticates_inside(&schemes) {
                "public"
            } else {
                "denied"
            };
            assert_eq!(decision(&resp), expected, "{name}: anonymous calls are decided");
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if schemes.iter().any(|s| s == "admin") && !authenticates_inside(&schemes) {
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

#[tokio::test]
async fn every_operation_decides_for_a_signed_in_viewer() {
    let w = crate::orgs::world().await;
    let owner = w.user("olga").await;
    let viewer = w.user("victor").await;
    w.org("acme", &owner).await;
    w.app
        .client
        .set_member("acme", &viewer, &["viewer"])
        .await
        .unwrap();
    let token = w.sign_in("victor", None).await.access;
    let doc = w.app.get_json("/openapi.json").await;
    let mut decided = std::collections::BTreeMap::<String, usize>::new();
    let mut ops: Vec<(&String, &String, &Value)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().iter().map(move |(m, op)| (path, m, op)))
        .collect();
    // Logging out ends the viewer's token: walk it last.
    ops.sort_by_key(|(path, _, _)| path.as_str() == "/v1/me/logout");
    for (path, method, op) in ops {
        let name = format!("{} {path}", method.to_uppercase());
        let url = w.app.url(
            &path
                .replace("{org}", "acme")
                .replace("{user_id}", &viewer)
                .replace("{client_id}", "tgc_x")
                .replace("{kid}", "k")
                .replace("{name}", "n")
                .replace("{id}", "x"),
        );
        let http = &w.app.http;
        let req = match method.as_str() {
            "get" => http.get(url),
            "post" => http.post(url),
            "put" => http.put(url),
            "delete" => http.delete(url),
            other => panic!("unexpected method {other}"),
        };
        let req = if op.get("requestBody").is_some() {
            req.json(&serde_json::json!({}))
        } else {
            req
        };
        let resp = req.bearer_auth(&token).send().await.unwrap();
        let d = decision(&resp);
        let expected: &[&str] = if PUBLIC.contains(&name.as_str()) || authenticates_inside(&security_of(op)) {
            // Open routes that check credentials inside refuse a bearer they cannot use.
            &["public", "denied"]
        } else {
            &["granted", "denied"]
        };
        assert!(
            expected.contains(&d.as_str()),
            "{name} answered {} with decision {d}",
            resp.status()
        );
        assert!(
            !resp.status().is_server_error(),
            "{name} answered {}",
            resp.status()
        );
        *decided.entry(d).or_default() += 1;
    }
    // The viewer may read the org, its members and roles, and their own profile; writes are refused.
    assert!(decided.get("granted").copied().unwrap_or(0) >= 5, "{decided:?}");
    assert!(decided.get("denied").copied().unwrap_or(0) >= 20, "{decided:?}");
}
