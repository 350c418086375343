//! tollgate as a container registry's token server: `/v2/token` decisions through the SDK,
//! and a real CNCF distribution registry configured only from tollgate's registry
//! configuration, driven by skopeo.

use crate::registry_harness::{
    RegistryAuth, RegistryProcess, oci_layout, oci_ref, registry_tools_present, skopeo_copy,
};
use crate::test_app::TestApp;
use base64::Engine as _;
use serde_json::Value;
use std::time::Duration;
use tollgate_client::proto::registry::PullCredentialRequest;
use tollgate_client::registry_auth_yaml;
use tollgate_proto::admin::CreateClientRequest;
use tollgate_proto::orgs::CreateOrgRequest;

const SERVICE: &str = "registry";

struct World {
    app: TestApp,
    /// Service account of org acme with push (and so pull).
    acme_pusher: (String, String),
    /// Service account of org globex with push and pull.
    globex_pusher: (String, String),
    /// Platform service account that may list the catalog.
    cataloger: (String, String),
    api_key: String,
}

async fn org_account(app: &TestApp, org: &str, scope: &[&str]) -> (String, String) {
    let req = CreateClientRequest {
        name: format!("{org}-ci"),
        scope: scope.iter().map(|s| (*s).to_owned()).collect(),
        audiences: vec![],
    };
    let c = app.client.create_org_service_account(org, &req).await.unwrap();
    (c.client.client_id, c.client_secret)
}

async fn world() -> World {
    world_with(|_| {}).await
}

async fn world_with(tweak: impl FnOnce(&mut tollgate_server::Config)) -> World {
    let app = TestApp::with_config(tweak).await;
    for name in ["acme", "globex"] {
        let req = CreateOrgRequest {
            name: name.into(),
            ..CreateOrgRequest::default()
        };
        app.client.create_org(&req).await.unwrap();
    }
    let acme_pusher = org_account(&app, "acme", &["registry:push"]).await;
    let globex_pusher = org_account(&app, "globex", &["registry:push", "registry:pull"]).await;
    let cat = app.service_account("cataloger", &["registry:catalog"], &[]).await;
    let cataloger = (
        cat.client_id,
        secrecy::ExposeSecret::expose_secret(&cat.client_secret).to_owned(),
    );
    let api_key = app.client.create_api_key("builder").await.unwrap().key.unwrap();
    World {
        app,
        acme_pusher,
        globex_pusher,
        cataloger,
        api_key,
    }
}

fn creds(c: &(String, String)) -> Option<(&str, &str)> {
    Some((c.0.as_str(), c.1.as_str()))
}

/// The `access` claim of a registry token (decoded without verification: the registry
/// itself verifies in the interop test).
fn access(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["access"].clone()
}

impl World {
    async fn granted(&self, scopes: &[&str], who: Option<(&str, &str)>) -> Value {
        let resp = self
            .app
            .client
            .registry_token(SERVICE, scopes, who)
            .await
            .unwrap();
        assert_eq!(resp.token, resp.access_token);
        access(&resp.token)
    }

    async fn pull_credential(&self, repository: &str) -> tollgate_client::proto::registry::PullCredential {
        let req = PullCredentialRequest {
            repository: Some(repository.into()),
            ..PullCredentialRequest::default()
        };
        self.app
            .client
            .pull_credential(&self.api_key, &req)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn scopes_are_decided_per_resource_and_action() {
    let w = world().await;
    let pusher = creds(&w.acme_pusher);
    // Several scopes in one request; actions in either order; push implies pull.
    let a = w
        .granted(
            &["repository:acme/app:push,pull", "repository:acme/lib:pull,push"],
            pusher,
        )
        .await;
    assert_eq!(
        a,
        serde_json::json!([
            {"type": "repository", "name": "acme/app", "actions": ["pull", "push"]},
            {"type": "repository", "name": "acme/lib", "actions": ["pull", "push"]},
        ])
    );
    // Another org's repository, `*` without delete, and the catalog: left out, not an error.
    let a = w
        .granted(
            &[
                "repository:globex/app:pull",
                "repository:acme/app:*",
                "registry:catalog:*",
            ],
            pusher,
        )
        .await;
    assert_eq!(a, serde_json::json!([]));
    // Space-separated scopes in one parameter (some clients) are the same as repeated ones.
    let a = w
        .granted(&["repository:acme/app:pull repository:acme/x:push"], pusher)
        .await;
    assert_eq!(a.as_array().unwrap().len(), 2);
    // Garbage scopes are 400 with a reason; a wrong service too.
    for bad in [
        "repository",
        "repository:acme/app",
        "repository:acme/APP:pull",
        "repository:acme/app:pu ll",
        "::",
    ] {
        let err = w
            .app
            .client
            .registry_token(SERVICE, &[bad], pusher)
            .await
            .expect_err(bad);
        assert_eq!(err.reason(), Some("invalid-parameter"), "{bad}: {err}");
    }
    let err = w
        .app
        .client
        .registry_token("other", &["repository:acme/app:pull"], pusher)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("invalid-parameter"));
    // Anonymous: nothing (but a token, as the spec wants); wrong credentials: 401 + challenge.
    assert_eq!(
        w.granted(&["repository:acme/app:pull"], None).await,
        serde_json::json!([])
    );
    let resp = w
        .app
        .http
        .get(
            w.app
                .url("/v2/token?service=registry&scope=repository:acme/app:pull"),
        )
        .basic_auth(&w.acme_pusher.0, Some("tg_sa_wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    // The catalog: platform accounts with registry:catalog only.
    let a = w.granted(&["registry:catalog:*"], creds(&w.cataloger)).await;
    assert_eq!(
        a,
        serde_json::json!([{"type": "registry", "name": "catalog", "actions": ["*"]}])
    );
}

#[tokio::test]
async fn pull_credentials_pull_one_repository_until_they_expire_or_are_revoked() {
    let w = world().await;
    let cred = w.pull_credential("acme/app").await;
    assert!(cred.username.starts_with("tgpc_") && cred.password.starts_with("tg_pc_"));
    let who = Some((cred.username.as_str(), cred.password.as_str()));
    let a = w
        .granted(
            &["repository:acme/app:pull,push", "repository:acme/other:pull"],
            who,
        )
        .await;
    assert_eq!(
        a,
        serde_json::json!([{"type": "repository", "name": "acme/app", "actions": ["pull"]}])
    );

    // The internal endpoint's own refusals.
    let http = &w.app.http;
    let url = w.app.url("/internal/registry/pull-credentials");
    let no_key = http
        .post(&url)
        .json(&serde_json::json!({"repository": "acme/app"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let wrong = http
        .post(&url)
        .header("x-api-key", "tg_ak_nope")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let no_repo = http
        .post(&url)
        .header("x-api-key", &w.api_key)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_repo.status(), 400);
    let unknown = http
        .post(&url)
        .header("x-api-key", &w.api_key)
        .json(&serde_json::json!({"workspace": "initech", "app": "web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // Revoked, then expired: refused.
    w.app.client.revoke_pull_credential(&cred.username).await.unwrap();
    let err = w
        .app
        .client
        .registry_token(SERVICE, &["repository:acme/app:pull"], who)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("revoked"));
    let fresh = w.pull_credential("acme/app").await;
    w.app.advance(Duration::from_secs(3601));
    let err = w
        .app
        .client
        .registry_token(
            SERVICE,
            &["repository:acme/app:pull"],
            Some((&fresh.username, &fresh.password)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("expired"));
    // Every grant and denial is audited per repository.
    let filter = tollgate_client::proto::audit::AuditFilter {
        action: Some("registry.token".into()),
        ..Default::default()
    };
    let events = w.app.client.audit_page(&filter).await.unwrap().events;
    assert!(
        events
            .iter()
            .any(|e| e.outcome == "denied" && e.target.as_deref() == Some("repository:acme/app"))
    );
}

#[tokio::test]
async fn a_real_registry_accepts_tollgates_tokens() {
    if !registry_tools_present() {
        return;
    }
    let w = world().await;
    let (registry, dir, image) = registry_for(&w).await;
    check_registry_decisions(&w, &registry, dir.path(), &image).await;
}

/// The same with the key named by an `x5c` certificate instead of a libtrust `kid`.
#[tokio::test]
async fn a_real_registry_accepts_x5c_tokens() {
    if !registry_tools_present() {
        return;
    }
    let w = world_with(|c| c.registry.key_reference = tollgate_server::config::KeyReference::X5c).await;
    let (registry, dir, image) = registry_for(&w).await;
    check_registry_decisions(&w, &registry, dir.path(), &image).await;
}

/// A registry configured only from tollgate's registry configuration, and an image to push.
async fn registry_for(w: &World) -> (RegistryProcess, tempfile::TempDir, String) {
    let config = w
        .app
        .client
        .registry_config(Some(&w.app.url("/v2/token")), Some(SERVICE))
        .await
        .unwrap();
    let registry = RegistryProcess::start(Some(RegistryAuth {
        yaml: registry_auth_yaml(&config, "{dir}/rootcertbundle.pem"),
        files: vec![(
            "rootcertbundle.pem".into(),
            config.rootcertbundle.clone().into_bytes(),
        )],
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let image = oci_ref(&oci_layout(dir.path()));
    (registry, dir, image)
}

/// Push allowed, pull with a pull credential, push with it denied, another org denied, the
/// catalog only with registry:catalog:*, a revoked credential refused.
async fn check_registry_decisions(w: &World, registry: &RegistryProcess, dir: &std::path::Path, image: &str) {
    let image = image.to_owned();
    let fail = |what: &str, e: String| panic!("{what}: {e}\nregistry log:\n{}", registry.logs());

    // Push with a push-permitted credential.
    if let Err(e) = skopeo_copy(&image, &registry.image("acme/app:1"), None, creds(&w.acme_pusher)).await {
        fail("push with push permission", e);
    }
    // Pull with a pull credential from the internal endpoint.
    let cred = w.pull_credential("acme/app").await;
    let pull = Some((cred.username.as_str(), cred.password.as_str()));
    let out = dir.join("pulled");
    if let Err(e) = skopeo_copy(
        &registry.image("acme/app:1"),
        &format!("dir:{}", out.display()),
        pull,
        None,
    )
    .await
    {
        fail("pull with a pull credential", e);
    }
    assert!(out.join("manifest.json").is_file());
    // Push with a pull credential: denied.
    let denied = skopeo_copy(&image, &registry.image("acme/app:2"), None, pull).await;
    assert!(denied.is_err(), "a pull credential pushed");
    // Pull of another org's repository: denied.
    let other = dir.join("other");
    let denied = skopeo_copy(
        &registry.image("acme/app:1"),
        &format!("dir:{}", other.display()),
        creds(&w.globex_pusher),
        None,
    )
    .await;
    assert!(denied.is_err(), "globex pulled acme's image");
    // The catalog: only with registry:catalog:*.
    assert_eq!(
        registry.catalog(creds(&w.cataloger)).await.unwrap(),
        vec!["acme/app".to_owned()]
    );
    assert!(registry.catalog(creds(&w.acme_pusher)).await.is_err());
    // A revoked credential is refused.
    w.app.client.revoke_pull_credential(&cred.username).await.unwrap();
    let third = dir.join("third");
    let refused = skopeo_copy(
        &registry.image("acme/app:1"),
        &format!("dir:{}", third.display()),
        pull,
        None,
    )
    .await;
    assert!(refused.is_err(), "a revoked credential pulled");
}

#[tokio::test]
async fn users_log_in_with_their_tollgate_tokens() {
    let w = crate::orgs::world().await;
    let alice = w.user("alice").await;
    let bob = w.user("bob").await;
    w.org("acme", &alice).await;
    w.app.client.set_member("acme", &bob, &["viewer"]).await.unwrap();
    let bob_s = w.sign_in("bob", None).await;
    let alice_s = w.sign_in("alice", None).await;
    let app = &w.app;
    // A viewer pulls; an owner pulls and pushes (access or refresh token as password).
    let pull_only = serde_json::json!([{"type": "repository", "name": "acme/app", "actions": ["pull"]}]);
    assert_eq!(asked(app, &bob_s.access).await, pull_only);
    assert_eq!(asked(app, &bob_s.refresh).await, pull_only);
    let both = serde_json::json!([{"type": "repository", "name": "acme/app", "actions": ["pull", "push"]}]);
    assert_eq!(asked(app, &alice_s.access).await, both);
    // Logged out everywhere: the tokens no longer open the registry.
    w.app
        .client
        .user_action(&bob, tollgate_client::UserAction::LogoutEverywhere)
        .await
        .unwrap();
    for password in [&bob_s.access, &bob_s.refresh] {
        let err = w
            .app
            .client
            .registry_token(SERVICE, &["repository:acme/app:pull"], Some(("x", password)))
            .await
            .unwrap_err();
        assert!(
            matches!(err.reason(), Some("user-version-stale" | "client-auth-failed")),
            "{err}"
        );
    }
}

/// The access a user's token (as password) gets for acme/app and globex/app.
async fn asked(app: &TestApp, password: &str) -> Value {
    let scopes = ["repository:acme/app:push,pull", "repository:globex/app:pull"];
    let resp = app
        .client
        .registry_token(SERVICE, &scopes, Some(("x", password)))
        .await
        .unwrap();
    access(&resp.token)
}

#[tokio::test]
async fn the_oauth2_variant_takes_passwords_and_refresh_tokens() {
    let w = crate::orgs::world().await;
    let alice = w.user("alice").await;
    w.org("acme", &alice).await;
    let s = w.sign_in("alice", None).await;
    let post = |form: Vec<(&'static str, String)>| {
        let req = w.app.http.post(w.app.url("/v2/token")).form(&form);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let scope = ("scope", "repository:acme/app:pull,push".to_owned());
    let (status, body) = post(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", s.refresh.clone()),
        ("service", SERVICE.into()),
        ("client_id", "docker".into()),
        ("access_type", "offline".into()),
        scope.clone(),
    ])
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["refresh_token"],
        s.refresh.as_str(),
        "the same refresh token keeps working"
    );
    assert_eq!(
        access(body["token"].as_str().unwrap())[0]["actions"],
        serde_json::json!(["pull", "push"])
    );
    let (status, body) = post(vec![
        ("grant_type", "password".into()),
        ("username", "alice".into()),
        ("password", s.access.clone()),
        ("service", SERVICE.into()),
        ("client_id", "docker".into()),
        scope.clone(),
    ])
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none());
    // GET with offline_token=true hands back a refresh token presented as the password.
    let resp = w
        .app
        .http
        .get(
            w.app
                .url("/v2/token?service=registry&offline_token=true&client_id=docker"),
        )
        .basic_auth("alice", Some(&s.refresh))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["refresh_token"], s.refresh.as_str());
    // client_id is required; unknown grant types and bad passwords are refused with reasons.
    let (status, body) = post(vec![
        ("grant_type", "password".into()),
        ("username", "a".into()),
        ("password", "x".into()),
    ])
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (400, Some("missing-parameter"))
    );
    let (status, body) = post(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", "d".into()),
    ])
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (400, Some("unsupported-grant-type"))
    );
    let (status, _) = post(vec![
        ("grant_type", "password".into()),
        ("username", "alice".into()),
        ("password", "not-a-token".into()),
        ("client_id", "d".into()),
    ])
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn repositories_belong_to_orgs_by_the_configured_patterns() {
    let w =
        world_with(|c| c.registry.repository_patterns = vec!["team-{org}/*".into(), "apps/{org}/*".into()])
            .await;
    let pusher = creds(&w.acme_pusher);
    let a = w
        .granted(
            &[
                "repository:team-acme/app:push",
                "repository:apps/acme/web:pull",
                "repository:acme/app:push",
            ],
            pusher,
        )
        .await;
    assert_eq!(
        a,
        serde_json::json!([
            {"type": "repository", "name": "team-acme/app", "actions": ["push"]},
            {"type": "repository", "name": "apps/acme/web", "actions": ["pull"]},
        ])
    );
    // Pull credentials follow the same binding.
    let req = PullCredentialRequest {
        repository: Some("acme/app".into()),
        ..PullCredentialRequest::default()
    };
    let err = w.app.client.pull_credential(&w.api_key, &req).await.unwrap_err();
    assert_eq!(err.reason(), Some("not-found"));
}
