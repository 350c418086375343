//! CI workloads through the SDK: GitHub- and GitLab-shaped OIDC tokens from a local issuer,
//! trust policies that admit or explain, job tokens with clamped lifetimes, the replay
//! cache, the combined publish flow (on the database and on Redis) with its races and
//! expiry, build sessions, and the metrics and audit events of every decision.

use crate::mock_idp::{MockIdp, MockIssuer};
use crate::orgs::{World, world_with};
use base64::Engine as _;
use serde_json::{Value, json};
use std::time::Duration;
use tollgate_client::proto::audit::AuditFilter;
use tollgate_client::proto::ci::{
    OpenBuildSessionRequest, PolicyCondition, PolicyGrant, PublishAttestRequest, PublishFinalizeRequest,
    PublishInitRequest, PublishStatusRequest, TrustPolicySpec,
};
use tollgate_client::{Client, TokenExchange};
use tollgate_core::JwsAlg;
use tollgate_core::time::Clock as _;

const CI_AUD: &str = "tollgate-ci";
const OWNER_ID: &str = "4242";
const RELEASE_WORKFLOW: &str = "acme/workflows/.github/workflows/release.yml@refs/tags/v1";

struct Ci {
    world: World,
    _idp: MockIdp,
    github: MockIssuer,
    gitlab: MockIssuer,
    org_id: String,
    /// An owner of `acme`, signed in with a token for the org.
    owner: Client,
    owner_token: String,
}

fn cond(claim: &str, equals: &str) -> PolicyCondition {
    PolicyCondition {
        claim: claim.into(),
        equals: Some(equals.into()),
        ..PolicyCondition::default()
    }
}

fn glob(claim: &str, pattern: &str) -> PolicyCondition {
    PolicyCondition {
        claim: claim.into(),
        glob: Some(pattern.into()),
        ..PolicyCondition::default()
    }
}

/// The release policy: acme's `app` repository (by owner id and name), protected tag refs,
/// run through acme's reusable release workflow.
fn release_policy() -> TrustPolicySpec {
    TrustPolicySpec {
        issuer: "github-actions".into(),
        description: "releases of acme/app".into(),
        conditions: vec![
            cond("owner_id", OWNER_ID),
            cond("repository", "acme/app"),
            cond("ref_protected", "true"),
            glob("ref", "refs/tags/v*"),
            cond("job_workflow_ref", RELEASE_WORKFLOW),
        ],
        grant: PolicyGrant {
            scopes: vec!["deploy".into()],
            audiences: vec!["tollgate".into(), "https://deploy.example.com".into()],
            publish: vec!["acme-*".into()],
            ..PolicyGrant::default()
        },
        max_ttl: Some("10m".into()),
        enabled: true,
    }
}

async fn ci_with(tweak: impl FnOnce(&mut tollgate_server::Config)) -> Ci {
    let world = world_with(tweak).await;
    let idp = MockIdp::start().await;
    let github = idp.issuer("github", JwsAlg::RS256);
    let gitlab = idp.issuer("gitlab", JwsAlg::RS256);
    let app = &world.app;
    for (name, issuer, preset) in [
        ("github-actions", &github, "github-actions"),
        ("gitlab", &gitlab, "gitlab"),
    ] {
        let spec = json!({"name": name, "issuer": issuer.url(), "preset": preset, "audiences": [CI_AUD]});
        app.client.create_issuer(&spec).await.unwrap();
    }
    let alice = world.user("alice").await;
    let org_id = world.org("acme", &alice).await;
    let session = world.sign_in("alice", Some("acme")).await;
    let owner = app.client.clone().with_user_token(session.access.clone());
    owner
        .put_trust_policy("acme", "release", &release_policy())
        .await
        .unwrap();
    Ci {
        world,
        _idp: idp,
        github,
        gitlab,
        org_id,
        owner,
        owner_token: session.access,
    }
}

async fn ci() -> Ci {
    ci_with(|_| {}).await
}

impl Ci {
    fn now(&self) -> i64 {
        self.world.app.clock.now().0
    }

    /// A GitHub Actions token for the release workflow on a protected tag, valid `ttl` s.
    fn github_claims(&self, ttl: i64) -> Value {
        let now = self.now();
        json!({
            "iss": self.github.url(), "aud": CI_AUD,
            "sub": "repo:acme/app:ref:refs/tags/v1.2.0",
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now, "nbf": now, "exp": now + ttl,
            "repository": "acme/app", "repository_id": "99", "repository_owner": "acme",
            "repository_owner_id": OWNER_ID, "repository_visibility": "private",
            "ref": "refs/tags/v1.2.0", "ref_type": "tag", "ref_protected": "true",
            "sha": "0123abcd", "workflow": "release", "event_name": "push",
            "workflow_ref": "acme/app/.github/workflows/ci.yml@refs/tags/v1.2.0",
            "job_workflow_ref": RELEASE_WORKFLOW,
            "actor": "alice", "actor_id": "7", "run_id": "1234", "run_attempt": "1",
            "runner_environment": "github-hosted",
        })
    }

    fn github_token(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut c = self.github_claims(300);
        edit(&mut c);
        self.github.mint(c)
    }

    async fn exchange(
        &self,
        token: &str,
    ) -> Result<tollgate_proto::oauth::TokenResponse, tollgate_client::Error> {
        self.world
            .app
            .client
            .token_exchange(&TokenExchange {
                audience: Some("tollgate"),
                ..TokenExchange::jwt(token)
            })
            .await
    }

    async fn metrics(&self) -> String {
        self.world
            .app
            .http
            .get(self.world.app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn audit(&self, action: &str) -> Vec<tollgate_client::proto::audit::AuditEvent> {
        let filter = AuditFilter {
            action: Some(action.into()),
            ..AuditFilter::default()
        };
        self.owner.org_audit("acme", &filter).await.unwrap().events
    }
}

/// The payload of a compact JWS, unverified (tests read what they were just given).
fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

fn refusal(r: Result<impl std::fmt::Debug, tollgate_client::Error>) -> tollgate_proto::ErrorBody {
    match r.expect_err("refused") {
        tollgate_client::Error::Refused { body, .. } => *body,
        other => panic!("not a refusal: {other}"),
    }
}

#[tokio::test]
async fn an_allowed_repository_on_a_protected_ref_gets_a_job_token_clamped_to_the_ci_token() {
    let ci = ci().await;
    // The CI token has 5 minutes left; the policy allows 10: the job token gets 5.
    let resp = ci.exchange(&ci.github_token(|_| {})).await.unwrap();
    assert!(
        resp.refresh_token.is_none(),
        "job tokens come without refresh tokens"
    );
    assert!((295..=300).contains(&resp.expires_in), "{}", resp.expires_in);
    assert_eq!(resp.scope.as_deref(), Some("deploy"));
    let claims = payload(&resp.access_token);
    assert_eq!(claims["org"], ci.org_id);
    assert_eq!(claims["ci"]["policy"], "release");
    assert_eq!(claims["ci"]["repository"], "acme/app");
    assert_eq!(claims["ci"]["job_workflow_ref"], RELEASE_WORKFLOW);
    assert_eq!(
        claims["sub"],
        "ci:github-actions:repo:acme/app:ref:refs/tags/v1.2.0"
    );
    assert!(claims.get("user_ver").is_none());
    // A CI token with an hour left: the policy's 10 minutes decide.
    let long = ci.github.mint(ci.github_claims(3600));
    assert_eq!(ci.exchange(&long).await.unwrap().expires_in, 600);
    // The job token is a live tollgate token (introspection and /auth/status agree).
    let status = ci.world.app.client.auth_status(&resp.access_token).await.unwrap();
    assert_eq!(status.org.as_deref(), Some(ci.org_id.as_str()));
    // Counted and audited with the policy.
    let m = ci.metrics().await;
    let series = format!(
        "tollgate_trust_policy_decisions_total{{issuer=\"github-actions\",policy=\"{}/release\",outcome=\"granted\"}} 2",
        ci.org_id
    );
    assert!(m.contains(&series), "{series} not in\n{m}");
    let events = ci.audit("ci.exchange").await;
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.reason.is_none() && e.detail["policy"] == "release")
    );
}

#[tokio::test]
async fn the_server_ceiling_also_clamps_job_tokens() {
    let ci = ci_with(|c| c.ci.job_token_max_ttl = Duration::from_secs(120)).await;
    let long = ci.github.mint(ci.github_claims(3600));
    assert_eq!(ci.exchange(&long).await.unwrap().expires_in, 120);
}

/// A change to a CI token's claims.
type Edit = fn(&mut Value);

#[tokio::test]
async fn wrong_owner_unprotected_ref_and_wrong_reusable_workflow_are_denied_naming_the_condition() {
    let ci = ci().await;
    let cases: [(&str, Edit, &str); 4] = [
        // Same owner name, different (re-registered) account: ids decide.
        ("owner_id", |c| c["repository_owner_id"] = json!("666"), "666"),
        ("ref_protected", |c| c["ref_protected"] = json!("false"), "false"),
        (
            "job_workflow_ref",
            |c| c["job_workflow_ref"] = json!("evil/fork/.github/workflows/release.yml@refs/heads/main"),
            "evil/fork/.github/workflows/release.yml@refs/heads/main",
        ),
        (
            "ref",
            |c| c["ref"] = json!("refs/heads/feature"),
            "refs/heads/feature",
        ),
    ];
    for (claim, edit, actual) in cases {
        let body = refusal(ci.exchange(&ci.github_token(edit)).await);
        assert_eq!(body.reason, "policy-denied", "{claim}");
        assert_eq!(body.error, "invalid_grant");
        assert!(
            body.error_description.contains(&format!("`{claim}`")),
            "{}",
            body.error_description
        );
        let evaluation = body.policies.expect("explained");
        let outcome = &evaluation.outcomes[0];
        assert_eq!(outcome.policy, "release");
        assert!(!outcome.matched);
        let failed = outcome.failed.as_ref().expect("failed condition");
        assert_eq!(
            (failed.claim.as_str(), failed.actual.as_deref()),
            (claim, Some(actual))
        );
        assert_eq!(evaluation.workload["repository"], "acme/app");
    }
    // A claim the token lacks is named as missing.
    let body = refusal(
        ci.exchange(&ci.github_token(|c| drop(c.as_object_mut().unwrap().remove("ref_protected"))))
            .await,
    );
    assert!(
        body.error_description.contains("no such claim"),
        "{}",
        body.error_description
    );
    let denied = ci.audit("ci.exchange").await;
    assert_eq!(denied.len(), 5);
    assert!(
        denied
            .iter()
            .all(|e| e.reason.as_deref() == Some("policy-denied"))
    );
    assert_eq!(
        denied[0].detail["evaluation"]["outcomes"][0]["failed"]["claim"],
        "ref_protected"
    );
    let m = ci.metrics().await;
    assert!(
        m.contains("tollgate_trust_policy_decisions_total{issuer=\"github-actions\",policy=\"none\",outcome=\"policy-denied\"} 5"),
        "{m}"
    );
}

#[tokio::test]
async fn nothing_is_trusted_by_default_and_other_orgs_policies_do_not_apply() {
    let ci = ci().await;
    // GitLab has no policy at all.
    let now = ci.now();
    let gitlab_token = |jti: &str| {
        ci.gitlab.mint(json!({
            "iss": ci.gitlab.url(), "aud": CI_AUD, "sub": "project_path:acme/app:ref_type:branch:ref:main",
            "jti": jti, "iat": now, "exp": now + 300, "project_path": "acme/app", "project_id": "5",
            "namespace_id": "9", "namespace_path": "acme", "ref": "main", "ref_type": "branch", "ref_protected": "true",
        }))
    };
    let gl = gitlab_token("gl-1");
    let body = refusal(ci.exchange(&gl).await);
    assert_eq!(body.reason, "policy-denied");
    assert!(
        body.error_description.contains("nothing is trusted by default"),
        "{}",
        body.error_description
    );
    // A policy for GitLab in acme admits it; the same token was refused, not used up.
    let spec = TrustPolicySpec {
        issuer: "gitlab".into(),
        conditions: vec![
            cond("owner_id", "9"),
            cond("repository", "acme/app"),
            cond("ref_protected", "true"),
        ],
        grant: PolicyGrant {
            audiences: vec!["tollgate".into()],
            ..PolicyGrant::default()
        },
        ..TrustPolicySpec::default()
    };
    let created = ci
        .owner
        .put_trust_policy(
            "acme",
            "gitlab-main",
            &TrustPolicySpec {
                enabled: true,
                ..spec
            },
        )
        .await
        .unwrap();
    assert_eq!(created.org, "acme");
    let resp = ci.exchange(&gl).await.unwrap();
    assert_eq!(payload(&resp.access_token)["ci"]["repository"], "acme/app");
    // The issuer's own conditions (`grant.require`) hold as well, for exchange and attest.
    let spec = json!({"name": "gitlab", "issuer": ci.gitlab.url(), "preset": "gitlab", "audiences": [CI_AUD],
        "grant": {"require": {"namespace_path": "other"}}});
    ci.world.app.client.update_issuer("gitlab", &spec).await.unwrap();
    let body = refusal(ci.exchange(&gitlab_token("gl-2")).await);
    assert_eq!(body.reason, "policy-denied");
    assert!(
        body.error_description.contains("namespace_path"),
        "{}",
        body.error_description
    );
    // Naming another org restricts the policies to that org's.
    ci.world.org("other", &ci.world.user("olga").await).await;
    let t = ci.github_token(|_| {});
    let body = refusal(
        ci.world
            .app
            .client
            .token_exchange(&TokenExchange {
                org: Some("other"),
                ..TokenExchange::jwt(&t)
            })
            .await,
    );
    assert_eq!(body.reason, "policy-denied");
}

#[tokio::test]
async fn a_ci_token_is_accepted_once() {
    let ci = ci().await;
    let token = ci.github_token(|_| {});
    ci.exchange(&token).await.unwrap();
    let body = refusal(ci.exchange(&token).await);
    assert_eq!(body.reason, "token-replayed");
    // Concurrent presentations of a fresh token: exactly one gets through.
    let token = ci.github_token(|_| {});
    let attempts = (0..8).map(|_| ci.exchange(&token));
    let results = futures_util::future::join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.reason() == Some("token-replayed"))
    );
    let replays = ci
        .audit("ci.exchange")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("token-replayed"))
        .count();
    assert_eq!(replays, 8);
}

#[tokio::test]
async fn verify_and_the_dry_run_explain_without_using_the_token_up() {
    let ci = ci().await;
    let bad = ci.github_token(|c| c["ref_protected"] = json!("false"));
    let v = ci.world.app.client.verify_token(&bad).await.unwrap();
    assert!(v.valid);
    let policies = v.policies.expect("CI tokens are judged by the policies");
    assert_eq!(
        policies.outcomes[0].failed.as_ref().unwrap().claim,
        "ref_protected"
    );
    assert!(policies.chosen.is_none());
    let good = ci.github_token(|_| {});
    let dry = ci.owner.evaluate_trust_policies("acme", &good).await.unwrap();
    assert_eq!(dry.chosen, Some(format!("{}/release", ci.org_id)));
    ci.exchange(&good)
        .await
        .expect("the dry run did not use the token");
}

#[tokio::test]
async fn policies_are_managed_by_those_who_hold_what_they_grant() {
    let ci = ci().await;
    let mut too_broad = release_policy();
    too_broad.conditions = vec![cond("ref", "refs/heads/main")];
    let body = refusal(ci.owner.put_trust_policy("acme", "broad", &too_broad).await);
    assert!(
        body.error_description.contains("pin"),
        "{}",
        body.error_description
    );
    let mut user_issuer = release_policy();
    user_issuer.issuer = "clerk".into();
    let body = refusal(ci.owner.put_trust_policy("acme", "users", &user_issuer).await);
    assert!(
        body.error_description.contains("issuer of users"),
        "{}",
        body.error_description
    );
    // A member (no trust-policies:write) is refused; a custom role that may write policies
    // but not sign certificates cannot grant certificates.
    let bob = ci.world.user("bob").await;
    ci.owner.set_member("acme", &bob, &["member"]).await.unwrap();
    let bob_client = ci
        .world
        .app
        .client
        .clone()
        .with_user_token(ci.world.sign_in("bob", Some("acme")).await.access);
    assert_eq!(
        refusal(bob_client.put_trust_policy("acme", "x", &release_policy()).await).reason,
        "permission-denied"
    );
    assert_eq!(bob_client.trust_policies("acme").await.unwrap().policies.len(), 1);
    let role = tollgate_client::proto::orgs::PutRoleRequest {
        permissions: vec![
            "trust-policies:*".into(),
            "org:read".into(),
            "tokens:exchange".into(),
            "packages:publish".into(),
        ],
        description: None,
    };
    ci.owner.put_role("acme", "ci-admin", &role).await.unwrap();
    ci.owner.set_member("acme", &bob, &["ci-admin"]).await.unwrap();
    let bob_client = ci
        .world
        .app
        .client
        .clone()
        .with_user_token(ci.world.sign_in("bob", Some("acme")).await.access);
    let mut certs = release_policy();
    certs.grant.certificates = vec!["client".into()];
    assert_eq!(
        refusal(bob_client.put_trust_policy("acme", "certs", &certs).await).reason,
        "grant-exceeds-caller"
    );
    bob_client
        .put_trust_policy("acme", "plain", &release_policy())
        .await
        .unwrap();
    bob_client.delete_trust_policy("acme", "plain").await.unwrap();
    let puts = ci.audit("trust_policy.put").await;
    assert!(
        puts.iter()
            .any(|e| e.reason.as_deref() == Some("grant-exceeds-caller"))
    );
}

async fn publish_flow_end_to_end(ci: &Ci) {
    let user = ci.owner.clone();
    let init = user
        .publish_init(&PublishInitRequest {
            package: "acme-cli".into(),
            version: "1.2.0".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        user.publish_session(&init.session_id).await.unwrap().state,
        "pending"
    );
    let client = &ci.world.app.client;
    let attested = client
        .publish_attest(&PublishAttestRequest {
            session_id: init.session_id.clone(),
            nonce: init.nonce.clone(),
            token: ci.github_token(|_| {}),
        })
        .await
        .unwrap();
    assert_eq!(attested.policy, "release");
    let secret = attested.runner_secret.as_str();
    client
        .publish_status(
            &PublishStatusRequest {
                session_id: init.session_id.clone(),
                status: "building".into(),
                message: "cargo build --release".into(),
            },
            secret,
        )
        .await
        .unwrap();
    let combined = client.publish_combined(&init.session_id, secret).await.unwrap();
    assert_eq!(combined.audience, "tollgate:publish");
    assert!(combined.expires_in <= 300);
    // The combined token verifies with the JWKS and names both parties.
    let claims = verify_with_jwks(ci, &combined.token).await;
    let me = client.auth_status(&ci.owner_token).await.unwrap();
    assert_eq!(claims["sub"], me.sub);
    assert_eq!(claims["aud"], "tollgate:publish");
    assert_eq!(claims["act"]["sub"], "repo:acme/app:ref:refs/tags/v1.2.0");
    assert_eq!(claims["act"]["iss"], ci.github.url());
    assert_eq!(claims["publish"]["package"], "acme-cli");
    assert_eq!(claims["publish"]["version"], "1.2.0");
    assert_eq!(claims["publish"]["run_id"], "1234");
    assert_eq!(claims["org"], ci.org_id);
    // Once per session.
    assert_eq!(
        refusal(client.publish_combined(&init.session_id, secret).await).reason,
        "publish-session-state"
    );
    // Only the runner may ask; a user token or a wrong secret is refused.
    assert_eq!(
        refusal(client.publish_combined(&init.session_id, &ci.owner_token).await).reason,
        "publish-auth-failed"
    );
    let done = client
        .publish_finalize(
            &PublishFinalizeRequest {
                session_id: init.session_id.clone(),
                outcome: "succeeded".into(),
                message: String::new(),
            },
            Some(secret),
        )
        .await
        .unwrap();
    assert_eq!(
        (done.state.as_str(), done.outcome.as_deref()),
        ("finalized", Some("succeeded"))
    );
    assert_eq!(done.finalized_by.as_deref(), Some("runner"));
    let again = user
        .publish_finalize(
            &PublishFinalizeRequest {
                session_id: init.session_id.clone(),
                outcome: "failed".into(),
                message: String::new(),
            },
            None,
        )
        .await;
    assert_eq!(refusal(again).reason, "publish-session-state");
    let view = user.publish_session(&init.session_id).await.unwrap();
    assert_eq!(view.status[0].status, "building");
    assert_eq!(view.workload.unwrap()["repository"], "acme/app");
    for action in [
        "publish.init",
        "publish.attest",
        "publish.combined",
        "publish.finalize",
    ] {
        assert_eq!(ci.audit(action).await.len(), 1, "{action}");
    }
    let m = ci.metrics().await;
    for step in ["init", "attest", "combined", "finalize"] {
        let series = format!("tollgate_publish_steps_total{{step=\"{step}\",outcome=\"ok\"}} 1");
        assert!(m.contains(&series), "{series} not in\n{m}");
    }
}

/// Verifies the combined token with PyJWT (an independent JOSE library) against the JWKS
/// served over HTTP, as a publishing backend would, and returns its claims. Without PyJWT
/// (outside CI) the claims are read unverified.
async fn verify_with_jwks(ci: &Ci, token: &str) -> Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = tokio::process::Command::new("python3")
        .args(["-c", "import jwt"])
        .output()
        .await;
    if !python.is_ok_and(|o| o.status.success()) {
        crate::test_app::skip_unless_ci("PyJWT missing: the combined token is not verified independently");
        return payload(token);
    }
    let app = &ci.world.app;
    let out = tokio::process::Command::new("python3")
        .arg(root.join("interop/verify_pyjwt.py"))
        .args([
            "--jwks-url",
            &app.url("/.well-known/jwks.json"),
            "--issuer",
            &app.url,
        ])
        .args([
            "--audience",
            "tollgate:publish",
            "--alg",
            "EdDSA",
            "--typ",
            "publish+jwt",
            "--token",
            token,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "PyJWT refused the combined token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_publish_flow_end_to_end_in_the_database() {
    let ci = ci().await;
    assert_eq!(
        ci.world.app.state.ephemeral.ephemeral_backend(),
        crate::test_app::backend()
    );
    publish_flow_end_to_end(&ci).await;
}

async fn with_redis() -> Option<Ci> {
    let url = tollgate_store::testing::redis_url().await?;
    let prefix = format!("tollgate-test:{}:", uuid::Uuid::new_v4().simple());
    Some(
        ci_with(move |c| {
            c.redis.url = url;
            c.redis.prefix = prefix;
        })
        .await,
    )
}

#[tokio::test]
async fn the_publish_flow_end_to_end_on_redis() {
    let Some(ci) = with_redis().await else { return };
    assert_eq!(ci.world.app.state.ephemeral.ephemeral_backend(), "redis");
    publish_flow_end_to_end(&ci).await;
    // The replay cache is in Redis too.
    let t = ci.github_token(|_| {});
    ci.exchange(&t).await.unwrap();
    assert_eq!(refusal(ci.exchange(&t).await).reason, "token-replayed");
}

async fn races(ci: &Ci) {
    let init = ci
        .owner
        .publish_init(&PublishInitRequest {
            package: "acme-cli".into(),
            version: "2.0.0".into(),
        })
        .await
        .unwrap();
    // Eight runners attest at once, each with its own valid CI token: one wins.
    let client = &ci.world.app.client;
    let requests: Vec<_> = (0..8)
        .map(|_| PublishAttestRequest {
            session_id: init.session_id.clone(),
            nonce: init.nonce.clone(),
            token: ci.github_token(|_| {}),
        })
        .collect();
    let results = futures_util::future::join_all(requests.iter().map(|r| client.publish_attest(r))).await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.reason() == Some("publish-session-state")),
        "{results:?}"
    );
    let secret = winners[0].runner_secret.clone();
    // Eight finalizations at once, from runner and user: one wins.
    let finalize = |outcome: &str| PublishFinalizeRequest {
        session_id: init.session_id.clone(),
        outcome: outcome.into(),
        message: String::new(),
    };
    let (a, b) = (finalize("succeeded"), finalize("cancelled"));
    let calls = (0..8).map(|i| {
        let (req, runner) = if i % 2 == 0 {
            (&a, Some(secret.as_str()))
        } else {
            (&b, None)
        };
        ci.owner.publish_finalize(req, runner)
    });
    let results = futures_util::future::join_all(calls).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.reason() == Some("publish-session-state"))
    );
}

#[tokio::test]
async fn concurrent_attestations_and_finalizations_have_exactly_one_winner() {
    let ci = ci().await;
    races(&ci).await;
}

#[tokio::test]
async fn concurrent_attestations_and_finalizations_have_exactly_one_winner_on_redis() {
    let Some(ci) = with_redis().await else { return };
    races(&ci).await;
}

#[tokio::test]
async fn expired_unknown_and_mismatched_sessions_are_refused_clearly() {
    let ci = ci().await;
    let client = &ci.world.app.client;
    let init = ci
        .owner
        .publish_init(&PublishInitRequest {
            package: "acme-cli".into(),
            version: "1.0.0".into(),
        })
        .await
        .unwrap();
    let attest = |session_id: &str, nonce: &str, token: String| PublishAttestRequest {
        session_id: session_id.into(),
        nonce: nonce.into(),
        token,
    };
    let unknown = attest(
        "ps_00000000000000000000000000000000",
        &init.nonce,
        ci.github_token(|_| {}),
    );
    assert_eq!(
        refusal(client.publish_attest(&unknown).await).reason,
        "publish-session-unknown"
    );
    let garbage = attest("../../etc", &init.nonce, ci.github_token(|_| {}));
    assert_eq!(
        refusal(client.publish_attest(&garbage).await).reason,
        "publish-session-unknown"
    );
    let wrong_nonce = attest(&init.session_id, "nope", ci.github_token(|_| {}));
    assert_eq!(
        refusal(client.publish_attest(&wrong_nonce).await).reason,
        "publish-nonce-mismatch"
    );
    // A user's token cannot attest: it is not a CI workload.
    let now = ci.now();
    let mut user_claims = ci.world_clerk_claims(now);
    user_claims["sid"] = json!("s");
    let user_token = ci.world_clerk_mint(user_claims);
    let as_user = attest(&init.session_id, &init.nonce, user_token);
    assert_eq!(
        refusal(client.publish_attest(&as_user).await).reason,
        "not-a-workload"
    );
    // A package the policy does not cover.
    let other = ci
        .owner
        .publish_init(&PublishInitRequest {
            package: "other-tool".into(),
            version: "1.0.0".into(),
        })
        .await
        .unwrap();
    let body = refusal(
        client
            .publish_attest(&attest(&other.session_id, &other.nonce, ci.github_token(|_| {})))
            .await,
    );
    assert_eq!(body.reason, "policy-denied");
    let failed = body.policies.unwrap().outcomes[0].failed.clone().unwrap();
    assert_eq!(
        (failed.claim.as_str(), failed.actual.as_deref()),
        ("package", Some("other-tool"))
    );
    // Past its lifetime the session says so and refuses every step with `expired`.
    ci.world.app.advance(Duration::from_secs(16 * 60));
    // (The owner's access token has expired too: sign in again.)
    let fresh = ci.world.sign_in("alice", Some("acme")).await.access;
    let owner = ci.world.app.client.clone().with_user_token(fresh);
    let view = owner.publish_session(&init.session_id).await.unwrap();
    assert!(view.expired && view.state == "pending");
    let late = attest(&init.session_id, &init.nonce, ci.github_token(|_| {}));
    let body = refusal(client.publish_attest(&late).await);
    assert_eq!(body.reason, "publish-session-expired");
    assert_eq!(body.error, "expired");
}

impl Ci {
    fn world_clerk_claims(&self, now: i64) -> Value {
        self.world.clerk_claims(tollgate_core::UnixTime(now), "alice")
    }

    fn world_clerk_mint(&self, claims: Value) -> String {
        self.world.clerk_mint(claims)
    }
}

#[tokio::test]
async fn publish_needs_the_permission_in_the_tokens_org() {
    let ci = ci().await;
    let viewer = ci.world.user("vic").await;
    ci.owner.set_member("acme", &viewer, &["viewer"]).await.unwrap();
    let as_viewer = ci
        .world
        .app
        .client
        .clone()
        .with_user_token(ci.world.sign_in("vic", Some("acme")).await.access);
    let req = PublishInitRequest {
        package: "acme-cli".into(),
        version: "1.0.0".into(),
    };
    assert_eq!(
        refusal(as_viewer.publish_init(&req).await).reason,
        "permission-denied"
    );
    let denied = ci.audit("publish.init").await;
    assert_eq!(denied[0].reason.as_deref(), Some("permission-denied"));
}

#[tokio::test]
async fn build_sessions_are_limited_per_repository() {
    let ci = ci_with(|c| c.ci.max_active_per_owner = 2).await;
    // Two jobs of one repository share its quota.
    let first = ci.exchange(&ci.github_token(|_| {})).await.unwrap().access_token;
    let second = ci.exchange(&ci.github_token(|_| {})).await.unwrap().access_token;
    let first = ci.world.app.client.clone().with_user_token(first);
    let second = ci.world.app.client.clone().with_user_token(second);
    let req = OpenBuildSessionRequest {
        description: "release build".into(),
        ttl: None,
    };
    let a = first.open_build_session(&req).await.unwrap();
    assert_eq!(a.owner, "ci:github-actions:acme/app");
    assert!(a.active);
    second.open_build_session(&req).await.unwrap();
    assert_eq!(
        refusal(second.open_build_session(&req).await).reason,
        "build-session-limit"
    );
    assert_eq!(first.build_sessions().await.unwrap().sessions.len(), 2);
    let closed = first.close_build_session(&a.id).await.unwrap();
    assert!(!closed.active);
    second.open_build_session(&req).await.unwrap();
    // Users have their own quota; the org sees everything.
    let mine = ci.owner.open_build_session(&req).await.unwrap();
    let me = ci.world.app.client.auth_status(&ci.owner_token).await.unwrap();
    assert_eq!(mine.owner, format!("user:{}", me.sub));
    assert_eq!(
        ci.owner.org_build_sessions("acme").await.unwrap().sessions.len(),
        4
    );
    assert!(
        !ci.owner
            .close_org_build_session("acme", &mine.id)
            .await
            .unwrap()
            .active
    );
    let opened = ci.audit("build_session.open").await;
    assert_eq!(opened.len(), 5);
    assert_eq!(ci.audit("build_session.close").await.len(), 2);
    assert_eq!(
        opened
            .iter()
            .filter(|e| e.reason.as_deref() == Some("build-session-limit"))
            .count(),
        1
    );
    // Job tokens live only as long as their policy.
    ci.owner.delete_trust_policy("acme", "release").await.unwrap();
    assert_eq!(refusal(first.build_sessions().await).reason, "revoked");
}

#[tokio::test]
async fn job_tokens_get_the_registry_repositories_their_policy_grants() {
    let ci = ci().await;
    let mut images = release_policy();
    images.grant.publish = Vec::new();
    images.grant.repositories = vec![
        tollgate_client::proto::ci::RepositoryGrant {
            pattern: "acme/app".into(),
            actions: vec!["pull".into(), "push".into()],
        },
        tollgate_client::proto::ci::RepositoryGrant {
            pattern: "acme/base-*".into(),
            actions: vec!["pull".into()],
        },
    ];
    // Both policies match; the first by name decides.
    ci.owner
        .put_trust_policy("acme", "images", &images)
        .await
        .unwrap();
    let job = ci.exchange(&ci.github_token(|_| {})).await.unwrap().access_token;
    assert_eq!(payload(&job)["ci"]["policy"], "images");
    ci.world.org("other", &ci.world.user("olga").await).await;
    let access = |scope: &'static str| {
        let (app, job) = (&ci.world.app, job.clone());
        async move {
            let resp = app
                .http
                .get(app.url("/v2/token"))
                .query(&[("service", "registry"), ("scope", scope)])
                .basic_auth("ci", Some(job))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{scope}");
            let body: Value = resp.json().await.unwrap();
            payload(body["token"].as_str().unwrap())["access"].clone()
        }
    };
    assert_eq!(
        access("repository:acme/app:pull,push").await,
        json!([{"type": "repository", "name": "acme/app", "actions": ["pull", "push"]}])
    );
    assert_eq!(
        access("repository:acme/base-alpine:pull,push").await,
        json!([{"type": "repository", "name": "acme/base-alpine", "actions": ["pull"]}])
    );
    assert_eq!(access("repository:acme/secret:pull").await, json!([]));
    // Another org's repository of the same name pattern: never.
    assert_eq!(access("repository:other/app:pull").await, json!([]));
}

/// A CI job token → a client certificate (when the job's trust policy grants the `client`
/// profile) that ends no later than the job token, names the workload, and verifies with
/// `openssl verify`; with the grant taken back, the next job is refused.
#[tokio::test]
async fn a_ci_job_gets_a_client_certificate_that_ends_with_its_job_token() {
    let ci = ci().await;
    let mut policy = release_policy();
    policy.grant.certificates = vec!["client".into()];
    ci.owner
        .put_trust_policy("acme", "release", &policy)
        .await
        .unwrap();
    let job = ci.exchange(&ci.github_token(|_| {})).await.unwrap();
    let job_exp = payload(&job.access_token)["exp"].as_i64().unwrap();
    let as_job = ci
        .world
        .app
        .client
        .clone()
        .with_user_token(job.access_token.clone());
    let key = tollgate_crypto::SigningKey::generate(tollgate_core::SigningAlg::ES256)
        .unwrap()
        .0;
    let csr = tollgate_crypto::csr::request(&key, "job", &[], &[]).unwrap();
    let issued = as_job.sign_client_certificate(&csr, None).await.unwrap();
    let leaf = crate::certs::pem_blocks(&issued.certificate).remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let not_after = cert.validity().not_after.timestamp();
    assert!(not_after <= job_exp, "{not_after} > job token exp {job_exp}");
    assert_eq!(
        not_after, job_exp,
        "the job token (5 min) is shorter than the CI ceiling (2 h)"
    );
    assert_eq!(
        cert.subject().to_string(),
        "O=acme, OU=ci, CN=ci:github-actions:repo:acme/app:ref:refs/tags/v1.2.0"
    );
    crate::certs::openssl_verify(&issued.certificate, &issued.chain, "sslclient").unwrap();
    let events = ci.audit("certificate.issue").await;
    assert_eq!(events.len(), 1);
    assert!(
        events[0].actor.starts_with("job:ci:github-actions:repo:acme/app"),
        "{:?}",
        events[0]
    );

    // Taking the grant back stops the next certificate, even for a live job token.
    policy.grant.certificates.clear();
    ci.owner
        .put_trust_policy("acme", "release", &policy)
        .await
        .unwrap();
    let refused = as_job.sign_client_certificate(&csr, None).await;
    assert_eq!(refusal(refused).reason, "permission-denied");
}
