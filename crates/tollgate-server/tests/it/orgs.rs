//! Orgs, members, roles and permissions, through the SDK: the active org in exchanged
//! tokens, the one guard on every org operation (cross-org access, missing permissions,
//! escalation), roles that follow the user through `user_ver` and refresh, org-wide
//! revocation, self-service sessions, and the dual-auth issuer switch per org.

use crate::mock_idp::{MockIdp, MockIssuer};
use crate::test_app::TestApp;
use serde_json::json;
use tollgate_client::proto::audit::AuditFilter;
use tollgate_client::proto::orgs::{CreateOrgRequest, ExternalOrgId, PutRoleRequest};
use tollgate_client::{Client, TokenExchange};
use tollgate_core::JwsAlg;
use tollgate_core::time::Clock as _;
use tollgate_proto::admin::CreateClientRequest;

pub(crate) struct World {
    pub(crate) app: TestApp,
    _idp: MockIdp,
    clerk: MockIssuer,
    legacy: MockIssuer,
}

/// A signed-in user: their tokens and an SDK client acting as them.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) access: String,
    pub(crate) refresh: String,
    as_user: Client,
}

pub(crate) async fn world() -> World {
    world_with(|_| {}).await
}

/// A world whose server config is adjusted by `tweak`.
pub(crate) async fn world_with(tweak: impl FnOnce(&mut tollgate_server::Config)) -> World {
    let idp = MockIdp::start().await;
    let clerk = idp.issuer("clerk", JwsAlg::RS256);
    let legacy = idp.issuer("legacy", JwsAlg::RS256);
    let app = TestApp::with_config(tweak).await;
    for (name, issuer) in [("clerk", &clerk), ("legacy", &legacy)] {
        let spec = json!({
            "name": name, "issuer": issuer.url(), "preset": "clerk",
            "grant": {"scopes": ["read"], "audiences": ["tollgate", "https://api.example.com"], "refresh_tokens": true}
        });
        app.client.create_issuer(&spec).await.unwrap();
    }
    World {
        app,
        _idp: idp,
        clerk,
        legacy,
    }
}

impl World {
    /// Claims of a Clerk session token for `sub`.
    pub(crate) fn clerk_claims(&self, now: tollgate_core::UnixTime, sub: &str) -> serde_json::Value {
        self.clerk.claims(now, sub)
    }

    /// A Clerk session token of `claims`.
    pub(crate) fn clerk_mint(&self, claims: serde_json::Value) -> String {
        self.clerk.mint(claims)
    }

    fn upstream(&self, issuer: &MockIssuer, sub: &str, upstream_org: Option<&str>) -> String {
        let mut c = issuer.claims(self.app.clock.now(), sub);
        c["sid"] = json!("s");
        if let Some(o) = upstream_org {
            c["org_id"] = json!(o);
        }
        issuer.mint(c)
    }

    /// Exchanges an upstream token for a token for tollgate's API.
    async fn try_sign_in(
        &self,
        issuer: &MockIssuer,
        sub: &str,
        org: Option<&str>,
        upstream_org: Option<&str>,
    ) -> Result<Session, tollgate_client::Error> {
        let token = self.upstream(issuer, sub, upstream_org);
        let resp = self
            .app
            .client
            .token_exchange(&TokenExchange {
                audience: Some("tollgate"),
                org,
                ..TokenExchange::jwt(&token)
            })
            .await?;
        Ok(Session {
            as_user: self.app.client.clone().with_user_token(resp.access_token.clone()),
            access: resp.access_token,
            refresh: resp.refresh_token.expect("sessions are on"),
        })
    }

    pub(crate) async fn sign_in(&self, sub: &str, org: Option<&str>) -> Session {
        self.try_sign_in(&self.clerk, sub, org, None).await.unwrap()
    }

    async fn refresh(&self, s: &Session) -> Result<Session, tollgate_client::Error> {
        let resp = self.app.client.refresh(&s.refresh, None, None).await?;
        Ok(Session {
            as_user: self.app.client.clone().with_user_token(resp.access_token.clone()),
            access: resp.access_token,
            refresh: resp.refresh_token.expect("rotated"),
        })
    }

    /// Registers `sub` (first sign-in) and returns their user id.
    pub(crate) async fn user(&self, sub: &str) -> String {
        let s = self.sign_in(sub, None).await;
        self.app.client.auth_status(&s.access).await.unwrap().sub
    }

    pub(crate) async fn org(&self, name: &str, owner: &str) -> String {
        let req = CreateOrgRequest {
            name: name.into(),
            owner: Some(owner.into()),
            ..CreateOrgRequest::default()
        };
        self.app.client.create_org(&req).await.unwrap().id
    }

    async fn org_of(&self, s: Session) -> Option<String> {
        self.app.client.auth_status(&s.access).await.unwrap().org
    }

    async fn legacy_in(&self) -> Result<Session, tollgate_client::Error> {
        self.try_sign_in(&self.legacy, "alice-legacy", Some("acme"), None)
            .await
    }

    /// The audit events of `org` with `action`.
    async fn audit(&self, org: &str, action: &str) -> Vec<tollgate_client::proto::audit::AuditEvent> {
        let filter = AuditFilter {
            action: Some(action.into()),
            ..AuditFilter::default()
        };
        self.app.client.org_audit(org, &filter).await.unwrap().events
    }
}

fn reason(r: Result<impl std::fmt::Debug, tollgate_client::Error>) -> String {
    r.expect_err("refused")
        .reason()
        .unwrap_or("(no reason)")
        .to_owned()
}

#[tokio::test]
async fn roles_follow_the_user_from_exchange_through_refresh_to_logout() {
    let w = world().await;
    let alice = w.user("alice").await;
    let bob = w.user("bob").await;
    let acme = w.org("acme", &alice).await;

    // The owner's only membership becomes the active org of her next sign-in.
    let owner = w.sign_in("alice", None).await;
    let status = w.app.client.auth_status(&owner.access).await.unwrap();
    assert_eq!(
        (status.org.as_deref(), status.roles.clone()),
        (Some(acme.as_str()), vec!["owner".to_owned()])
    );
    owner.as_user.set_member("acme", &bob, &["viewer"]).await.unwrap();

    let first = w.sign_in("bob", None).await;
    // A refresh rotates the refresh token and keeps the org and roles.
    let viewer = w.refresh(&first).await.unwrap();
    assert_ne!(viewer.refresh, first.refresh);
    assert_eq!(
        w.app.client.auth_status(&viewer.access).await.unwrap().roles,
        ["viewer"]
    );
    assert_eq!(viewer.as_user.org_members("acme").await.unwrap().len(), 2);
    // A privileged operation without the role: refused, naming what is missing, and audited.
    let err = viewer
        .as_user
        .set_member("acme", &bob, &["admin"])
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("permission-denied"));
    assert!(err.to_string().contains("members:write"), "{err}");
    let denials = w.audit(&acme, "org.access").await;
    assert_eq!(denials.len(), 1);
    assert_eq!(
        (denials[0].actor.as_str(), denials[0].reason.as_deref()),
        (format!("user:{bob}").as_str(), Some("permission-denied"))
    );

    // A role change ends the access tokens issued before it…
    owner.as_user.set_member("acme", &bob, &["admin"]).await.unwrap();
    assert_eq!(reason(viewer.as_user.me().await), "user-version-stale");
    let sa = w.app.service_account("rs", &[], &[]).await;
    assert!(!w.app.client.introspect(&sa, &viewer.access).await.unwrap().active);
    // …but not the session: the next refresh carries the new role.
    let promoted = w.refresh(&viewer).await.unwrap();
    assert_eq!(
        w.app.client.auth_status(&promoted.access).await.unwrap().roles,
        ["admin"]
    );
    // Sessions acting in the org: the owner's and this one (first sign-ins had no org).
    assert_eq!(promoted.as_user.org_sessions("acme").await.unwrap().len(), 2);

    // Logout everywhere ends this token, other tokens and every session.
    promoted.as_user.logout_everywhere().await.unwrap();
    assert_eq!(reason(promoted.as_user.me().await), "user-version-stale");
    assert!(matches!(
        reason(w.refresh(&promoted).await).as_str(),
        "user-version-stale" | "session-revoked"
    ));
}

#[tokio::test]
async fn other_orgs_are_invisible_and_attempts_are_audited() {
    let w = world().await;
    let alice = w.user("alice").await;
    let carol = w.user("carol").await;
    let acme = w.org("acme", &alice).await;
    let globex = w.org("globex", &carol).await;
    let alice_s = w.sign_in("alice", None).await;

    // Not a member: the org looks like it does not exist, for reads and writes alike.
    assert_eq!(reason(alice_s.as_user.org("globex").await), "not-found");
    assert_eq!(reason(alice_s.as_user.org(&globex).await), "not-found");
    assert_eq!(
        reason(alice_s.as_user.set_member("globex", &alice, &["owner"]).await),
        "not-found"
    );
    assert_eq!(
        reason(alice_s.as_user.org_audit("globex", &AuditFilter::default()).await),
        "not-found"
    );
    assert_eq!(reason(alice_s.as_user.org("no-such-org").await), "not-found");
    let attempts = w.audit(&globex, "org.access").await;
    assert_eq!(
        attempts.len(),
        4,
        "each attempt on an existing org is audited: {attempts:?}"
    );
    assert!(
        attempts
            .iter()
            .all(|e| e.reason.as_deref() == Some("org-not-member") && e.actor == format!("user:{alice}"))
    );

    // A member of both orgs with a token for one cannot act in the other.
    w.app
        .client
        .set_member("globex", &alice, &["admin"])
        .await
        .unwrap();
    let alice_acme = w.sign_in("alice", Some("acme")).await;
    assert_eq!(
        reason(alice_acme.as_user.org_members("globex").await),
        "org-mismatch"
    );
    let alice_globex = w.sign_in("alice", Some("globex")).await;
    assert_eq!(alice_globex.as_user.org_members("globex").await.unwrap().len(), 2);
    // With two memberships and no choice, the token acts in no org.
    let none = w.sign_in("alice", None).await;
    assert_eq!(w.app.client.auth_status(&none.access).await.unwrap().org, None);
    assert_eq!(reason(none.as_user.org("acme").await), "org-mismatch");

    // Tokens for other audiences and service-account tokens do not open the org API.
    let other = w
        .app
        .client
        .token_exchange(&TokenExchange {
            audience: Some("https://api.example.com"),
            org: Some("acme"),
            ..TokenExchange::jwt(&w.upstream(&w.clerk, "alice", None))
        })
        .await
        .unwrap();
    let as_other = w.app.client.clone().with_user_token(other.access_token);
    assert_eq!(reason(as_other.org("acme").await), "aud-mismatch");
    let sa = w.app.service_account("svc", &[], &["tollgate"]).await;
    let sa_token = w.app.token(&sa).await;
    assert_eq!(
        reason(w.app.client.clone().with_user_token(sa_token).org("acme").await),
        "permission-denied"
    );
    let _ = acme;
}

#[tokio::test]
async fn nobody_grants_more_than_they_hold_and_the_last_owner_stays() {
    let w = world().await;
    let alice = w.user("alice").await;
    let dave = w.user("dave").await;
    let erin = w.user("erin").await;
    let acme = w.org("acme", &alice).await;
    let owner = w.sign_in("alice", None).await;
    owner.as_user.set_member("acme", &dave, &["admin"]).await.unwrap();
    let admin = w.sign_in("dave", None).await;

    let role = |perms: &[&str]| PutRoleRequest {
        description: Some("ships releases".into()),
        permissions: perms.iter().map(|p| (*p).to_owned()).collect(),
    };
    // An admin can define roles within what admins hold…
    let r = admin
        .as_user
        .put_role("acme", "release", &role(&["registry:push", "certificate:sign:*"]))
        .await
        .unwrap();
    assert_eq!(r.permissions, ["certificate:sign:*", "registry:push"]);
    admin
        .as_user
        .set_member("acme", &erin, &["member", "release"])
        .await
        .unwrap();
    // …but not beyond, nor hand out owner, nor touch the owner.
    assert_eq!(
        reason(admin.as_user.put_role("acme", "god", &role(&["*"])).await),
        "grant-exceeds-caller"
    );
    assert_eq!(
        reason(
            admin
                .as_user
                .put_role("acme", "issuers", &role(&["org:issuers"]))
                .await
        ),
        "grant-exceeds-caller"
    );
    assert_eq!(
        reason(admin.as_user.set_member("acme", &erin, &["owner"]).await),
        "grant-exceeds-caller"
    );
    assert_eq!(
        reason(admin.as_user.set_member("acme", &alice, &["viewer"]).await),
        "grant-exceeds-caller"
    );
    assert_eq!(
        reason(admin.as_user.remove_member("acme", &alice).await),
        "grant-exceeds-caller"
    );
    // Choosing issuers needs org:admin and org:issuers: admins have only the first.
    assert_eq!(
        reason(admin.as_user.set_org_issuers("acme", None).await),
        "permission-denied"
    );
    // Bad input is 400 with a reason.
    assert_eq!(
        reason(
            admin
                .as_user
                .put_role("acme", "owner", &role(&["registry:pull"]))
                .await
        ),
        "invalid-parameter"
    );
    assert_eq!(
        reason(
            admin
                .as_user
                .put_role("acme", "x", &role(&["Registry Pull"]))
                .await
        ),
        "invalid-parameter"
    );
    assert_eq!(
        reason(admin.as_user.set_member("acme", &erin, &["no-such-role"]).await),
        "invalid-parameter"
    );
    assert_eq!(
        reason(admin.as_user.set_member("acme", "usr_nobody", &["member"]).await),
        "not-found"
    );
    // A held role cannot be deleted.
    assert_eq!(
        reason(admin.as_user.delete_role("acme", "release").await),
        "conflict"
    );

    // The last owner can neither leave nor step down.
    assert_eq!(
        reason(owner.as_user.set_member("acme", &alice, &["admin"]).await),
        "last-owner"
    );
    let owner = w.sign_in("alice", None).await; // a refused change leaves tokens alone, but re-sign anyway
    assert_eq!(
        reason(owner.as_user.remove_member("acme", &alice).await),
        "last-owner"
    );
    assert!(
        owner.as_user.me().await.is_ok(),
        "a refused change bumps no user_ver"
    );
    // Refused privileged actions are in the org's audit trail with their reason.
    let refusals: Vec<String> = w
        .audit(&acme, "member.")
        .await
        .into_iter()
        .filter(|e| e.outcome == "denied")
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        refusals.iter().any(|r| r == "grant-exceeds-caller") && refusals.iter().any(|r| r == "last-owner"),
        "{refusals:?}"
    );
}

#[tokio::test]
async fn the_exchange_picks_the_org_by_parameter_upstream_claim_or_only_membership() {
    let w = world().await;
    let alice = w.user("alice").await;
    let bob = w.user("bob").await;
    let acme = w.org("acme", &alice).await;
    let globex = w.org("globex", &alice).await;
    w.app
        .client
        .bind_external_org(
            "globex",
            &ExternalOrgId {
                iss: w.clerk.url().to_owned(),
                external_id: "org_2clerk".into(),
            },
        )
        .await
        .unwrap();

    assert_eq!(
        w.org_of(w.sign_in("alice", Some("acme")).await).await.as_deref(),
        Some(acme.as_str())
    );
    assert_eq!(
        w.org_of(w.sign_in("alice", Some(&globex)).await).await.as_deref(),
        Some(globex.as_str())
    );
    let by_claim = w
        .try_sign_in(&w.clerk, "alice", None, Some("org_2clerk"))
        .await
        .unwrap();
    assert_eq!(w.org_of(by_claim).await.as_deref(), Some(globex.as_str()));
    // An unbound upstream org selects nothing; the parameter wins over the claim.
    let unbound = w
        .try_sign_in(&w.clerk, "alice", None, Some("org_other"))
        .await
        .unwrap();
    assert_eq!(w.org_of(unbound).await, None);
    let both = w
        .try_sign_in(&w.clerk, "alice", Some("acme"), Some("org_2clerk"))
        .await
        .unwrap();
    assert_eq!(w.org_of(both).await.as_deref(), Some(acme.as_str()));

    // Not a member (of an org named by parameter or by claim) is refused, as is a role
    // without tokens:exchange.
    assert_eq!(
        reason(w.try_sign_in(&w.clerk, "bob", Some("acme"), None).await),
        "org-not-member"
    );
    assert_eq!(
        reason(w.try_sign_in(&w.clerk, "bob", Some("nope"), None).await),
        "org-not-member"
    );
    assert_eq!(
        reason(w.try_sign_in(&w.clerk, "bob", None, Some("org_2clerk")).await),
        "org-not-member"
    );
    // A custom role without tokens:exchange cannot sign in to the org.
    let auditor = PutRoleRequest {
        description: None,
        permissions: vec!["audit:read".into()],
    };
    w.app.client.put_role("acme", "auditor", &auditor).await.unwrap();
    w.app.client.set_member("acme", &bob, &["auditor"]).await.unwrap();
    let err = w.try_sign_in(&w.clerk, "bob", None, None).await.err().unwrap();
    assert_eq!(err.reason(), Some("permission-denied"));
    assert!(err.to_string().contains("tokens:exchange"), "{err}");
    // Exchanges into the org are in its audit trail, each with the token's jti.
    let exchanges = w.audit(&acme, "token.exchange").await;
    assert_eq!(exchanges.len(), 2, "{exchanges:?}");
    assert!(
        exchanges
            .iter()
            .all(|e| e.outcome == "success" && e.credential_id.is_some())
    );
}

#[tokio::test]
async fn an_org_moves_to_a_new_issuer_and_back() {
    let w = world().await;
    let alice = w.user("alice").await;
    // The same person at the legacy IdP: linked identity (dual-auth migration).
    w.app
        .client
        .link_identity(
            &alice,
            &tollgate_proto::admin::IdentityInfo {
                iss: w.legacy.url().to_owned(),
                sub: "alice-legacy".into(),
            },
        )
        .await
        .unwrap();
    let req = CreateOrgRequest {
        name: "acme".into(),
        owner: Some(alice.clone()),
        issuers: Some(vec!["legacy".into()]),
        ..CreateOrgRequest::default()
    };
    w.app.client.create_org(&req).await.unwrap();

    // Before: legacy only.
    let legacy_session = w.legacy_in().await.unwrap();
    assert_eq!(
        reason(w.try_sign_in(&w.clerk, "alice", Some("acme"), None).await),
        "issuer-not-enabled-for-org"
    );
    // Dual: both accepted while users move.
    legacy_session
        .as_user
        .set_org_issuers("acme", Some(vec!["legacy".into(), "clerk".into()]))
        .await
        .unwrap();
    let legacy_session = w.refresh(&legacy_session).await.unwrap();
    let clerk_session = w
        .try_sign_in(&w.clerk, "alice", Some("acme"), None)
        .await
        .unwrap();
    assert_eq!(
        w.app.client.auth_status(&clerk_session.access).await.unwrap().sub,
        alice,
        "both identities are one user"
    );
    // After: the new issuer only; legacy sign-ins and legacy sessions stop.
    clerk_session
        .as_user
        .set_org_issuers("acme", Some(vec!["clerk".into()]))
        .await
        .unwrap();
    assert_eq!(reason(w.legacy_in().await), "issuer-not-enabled-for-org");
    assert_eq!(
        reason(w.refresh(&legacy_session).await),
        "issuer-not-enabled-for-org"
    );
    // Rollback: legacy again.
    clerk_session
        .as_user
        .set_org_issuers("acme", Some(vec!["legacy".into(), "clerk".into()]))
        .await
        .unwrap();
    assert!(w.legacy_in().await.is_ok());
    // Unknown issuer names are refused rather than locking everyone out.
    assert_eq!(
        reason(
            clerk_session
                .as_user
                .set_org_issuers("acme", Some(vec!["clerck".into()]))
                .await
        ),
        "invalid-parameter"
    );
    let changes = w.audit(&req_org_id(&w).await, "org.issuers.set").await;
    assert_eq!(changes.len(), 3);
}

async fn req_org_id(w: &World) -> String {
    w.app.client.org("acme").await.unwrap().id
}

#[tokio::test]
async fn an_orgs_service_accounts_are_revoked_together() {
    let w = world().await;
    let alice = w.user("alice").await;
    let acme = w.org("acme", &alice).await;
    let owner = w.sign_in("alice", None).await;
    let mut creds = Vec::new();
    for name in ["ci", "deploy"] {
        let created = owner
            .as_user
            .create_org_service_account(
                "acme",
                &CreateClientRequest {
                    name: name.into(),
                    scope: vec![],
                    audiences: vec!["https://api.example.com".into()],
                },
            )
            .await
            .unwrap();
        assert_eq!(created.client.org.as_deref(), Some(acme.as_str()));
        creds.push(tollgate_client::ClientCredentials {
            client_id: created.client.client_id,
            client_secret: created.client_secret.into(),
        });
    }
    let platform = w.app.service_account("platform", &[], &[]).await;
    let tokens: Vec<String> = futures_tokens(&w, &creds).await;
    assert_eq!(
        w.app.client.auth_status(&tokens[0]).await.unwrap().org.as_deref(),
        Some(acme.as_str())
    );
    assert_eq!(owner.as_user.org_service_accounts("acme").await.unwrap().len(), 2);

    let revoked = owner.as_user.revoke_org_service_accounts("acme").await.unwrap();
    assert_eq!(revoked.disabled.len(), 2);
    for (c, t) in creds.iter().zip(&tokens) {
        assert_eq!(
            reason(w.app.client.client_credentials(c, None, None).await),
            "client-disabled"
        );
        assert!(!w.app.client.introspect(&platform, t).await.unwrap().active);
    }
    assert!(
        w.app
            .client
            .client_credentials(&platform, None, None)
            .await
            .is_ok(),
        "other accounts keep working"
    );
    assert_eq!(w.audit(&acme, "client.revoke_all").await.len(), 1);
}

async fn futures_tokens(w: &World, creds: &[tollgate_client::ClientCredentials]) -> Vec<String> {
    let mut out = Vec::new();
    for c in creds {
        out.push(w.app.token(c).await);
    }
    out
}

#[tokio::test]
async fn users_and_org_admins_list_and_end_sessions() {
    let w = world().await;
    let alice = w.user("alice").await;
    let bob = w.user("bob").await;
    w.org("acme", &alice).await;
    w.app.client.set_member("acme", &bob, &["member"]).await.unwrap();
    let laptop = w.sign_in("bob", None).await;
    let phone = w.sign_in("bob", None).await;

    let mine = laptop.as_user.my_sessions().await.unwrap();
    assert!(mine.len() >= 2 && mine.iter().all(|s| s.user_id == bob));
    let phone_id = w
        .app
        .client
        .user_sessions(&bob)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.revoked_at.is_none())
        .unwrap()
        .id;
    laptop.as_user.revoke_my_session(&phone_id).await.unwrap();
    // Someone else's session is not yours to see or end.
    let owner = w.sign_in("alice", None).await;
    assert_eq!(
        reason(owner.as_user.revoke_my_session(&mine[1].id).await),
        "not-found"
    );
    // One access token can be revoked by its user (jti denylist); others are not theirs.
    laptop.as_user.revoke_my_token(&phone.access).await.unwrap();
    assert_eq!(reason(phone.as_user.me().await), "revoked");
    assert!(laptop.as_user.me().await.is_ok());
    assert_eq!(
        reason(owner.as_user.revoke_my_token(&laptop.access).await),
        "not-found"
    );
    assert_eq!(
        reason(owner.as_user.revoke_my_token("garbage").await),
        "invalid-parameter"
    );
    // A member cannot list the org's sessions; the owner can, and can end them.
    assert_eq!(
        reason(laptop.as_user.org_sessions("acme").await),
        "permission-denied"
    );
    let org_sessions = owner.as_user.org_sessions("acme").await.unwrap();
    assert!(org_sessions.iter().any(|s| s.user_id == bob));
    let live: Vec<_> = org_sessions
        .iter()
        .filter(|s| s.user_id == bob && s.revoked_at.is_none())
        .collect();
    for s in &live {
        owner.as_user.revoke_org_session("acme", &s.id).await.unwrap();
    }
    assert_eq!(
        reason(owner.as_user.revoke_org_session("acme", "ses_nope").await),
        "not-found"
    );
    let ended = [w.refresh(&laptop).await.err(), w.refresh(&phone).await.err()];
    assert!(
        ended
            .iter()
            .all(|e| e.as_ref().and_then(|e| e.reason()) == Some("session-revoked")),
        "{ended:?}"
    );
    // The operator reaches every org with the admin token.
    assert!(w.app.client.org_sessions("acme").await.is_ok());
}
