//! Local users behind exchanged tokens: registration on first exchange, several identities
//! per user (dual-auth migrations), logout everywhere, disable, invite-only registration.

use crate::mock_idp::{MockIdp, MockIssuer};
use crate::test_app::TestApp;
use serde_json::json;
use tollgate_client::{TokenExchange, UserAction};
use tollgate_core::JwsAlg;
use tollgate_core::time::Clock as _;
use tollgate_proto::admin::{CreateUserRequest, IdentityInfo};

struct World {
    app: TestApp,
    _idp: MockIdp,
    legacy: MockIssuer,
    clerk: MockIssuer,
}

async fn world(invite_only: bool) -> World {
    let idp = MockIdp::start().await;
    let legacy = idp.issuer("legacy", JwsAlg::RS256);
    let clerk = idp.issuer("clerk", JwsAlg::RS256);
    let app = TestApp::with_config(move |c| {
        if invite_only {
            c.users.registration_mode = tollgate_server::config::RegistrationMode::InviteOnly;
        }
    })
    .await;
    for (name, up) in [("legacy", &legacy), ("clerk", &clerk)] {
        let spec = json!({"name": name, "issuer": up.url(), "preset": "clerk"});
        app.client.create_issuer(&spec).await.unwrap();
    }
    World {
        app,
        _idp: idp,
        legacy,
        clerk,
    }
}

impl World {
    fn token(&self, up: &MockIssuer, sub: &str) -> String {
        let mut c = up.claims(self.app.clock.now(), sub);
        c["sid"] = json!("s");
        c["email"] = json!(format!("{sub}@example.com"));
        up.mint(c)
    }

    async fn exchange(&self, token: &str) -> Result<String, tollgate_client::Error> {
        Ok(self
            .app
            .client
            .token_exchange(&TokenExchange::jwt(token))
            .await?
            .access_token)
    }

    async fn user_of(&self, access_token: &str) -> String {
        self.app.client.auth_status(access_token).await.unwrap().sub
    }
}

#[tokio::test]
async fn first_exchange_registers_a_user_and_later_ones_find_it() {
    let w = world(false).await;
    let a = w.exchange(&w.token(&w.clerk, "user_1")).await.unwrap();
    let b = w.exchange(&w.token(&w.clerk, "user_1")).await.unwrap();
    let user = w.user_of(&a).await;
    assert_eq!(user, w.user_of(&b).await);
    let info = w.app.client.get_user(&user).await.unwrap();
    assert_eq!(info.email.as_deref(), Some("user_1@example.com"));
    assert_eq!(
        info.identities,
        vec![IdentityInfo {
            iss: w.clerk.url().into(),
            sub: "user_1".into()
        }]
    );
    assert_eq!(w.app.client.list_users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_first_exchanges_register_one_user() {
    let w = world(false).await;
    let token = w.token(&w.clerk, "user_1");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = w.app.client.clone();
        let token = token.clone();
        tasks.spawn(async move {
            client
                .token_exchange(&TokenExchange::jwt(&token))
                .await
                .unwrap()
                .access_token
        });
    }
    let mut subs = std::collections::HashSet::new();
    while let Some(t) = tasks.join_next().await {
        subs.insert(w.user_of(&t.unwrap()).await);
    }
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(w.app.client.list_users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_linked_identity_from_another_issuer_is_the_same_user() {
    let w = world(false).await;
    let legacy = w.exchange(&w.token(&w.legacy, "alice")).await.unwrap();
    let user = w.user_of(&legacy).await;
    let identity = IdentityInfo {
        iss: w.clerk.url().into(),
        sub: "user_2abc".into(),
    };
    let info = w.app.client.link_identity(&user, &identity).await.unwrap();
    assert_eq!(info.identities.len(), 2);
    let clerk = w.exchange(&w.token(&w.clerk, "user_2abc")).await.unwrap();
    assert_eq!(w.user_of(&clerk).await, user);
    let err = w.app.client.link_identity(&user, &identity).await.unwrap_err();
    assert_eq!(err.reason(), Some("conflict"));
}

#[tokio::test]
async fn logout_everywhere_refuses_earlier_tokens_only() {
    let w = world(false).await;
    let old = w.exchange(&w.token(&w.clerk, "user_1")).await.unwrap();
    let user = w.user_of(&old).await;
    let info = w
        .app
        .client
        .user_action(&user, UserAction::LogoutEverywhere)
        .await
        .unwrap();
    assert_eq!(info.user_ver, 2);
    assert_eq!(
        w.app.client.auth_status(&old).await.unwrap_err().reason(),
        Some("user-version-stale")
    );
    let rs = w.app.service_account("rs", &[], &[]).await;
    assert!(!w.app.client.introspect(&rs, &old).await.unwrap().active);
    let fresh = w.exchange(&w.token(&w.clerk, "user_1")).await.unwrap();
    assert_eq!(w.user_of(&fresh).await, user);
}

#[tokio::test]
async fn disabled_users_cannot_exchange_and_their_tokens_die() {
    let w = world(false).await;
    let token = w.exchange(&w.token(&w.clerk, "user_1")).await.unwrap();
    let user = w.user_of(&token).await;
    w.app
        .client
        .user_action(&user, UserAction::Disable)
        .await
        .unwrap();
    assert_eq!(
        w.app.client.auth_status(&token).await.unwrap_err().reason(),
        Some("user-disabled")
    );
    let err = w.exchange(&w.token(&w.clerk, "user_1")).await.unwrap_err();
    assert_eq!(err.reason(), Some("user-disabled"));
    let info = w.app.client.user_action(&user, UserAction::Enable).await.unwrap();
    assert!(!info.disabled);
    assert_eq!(
        w.app.client.auth_status(&token).await.unwrap_err().reason(),
        Some("user-version-stale"),
        "enabling does not revive tokens from before the disable"
    );
    w.exchange(&w.token(&w.clerk, "user_1")).await.unwrap();
}

#[tokio::test]
async fn invite_only_registration_accepts_only_known_identities() {
    let w = world(true).await;
    let err = w.exchange(&w.token(&w.clerk, "stranger")).await.unwrap_err();
    assert_eq!(err.reason(), Some("registration-closed"));
    assert!(w.app.client.list_users().await.unwrap().is_empty());
    let req = CreateUserRequest {
        email: Some("bob@example.com".into()),
        identities: vec![IdentityInfo {
            iss: w.clerk.url().into(),
            sub: "bob".into(),
        }],
    };
    let bob = w.app.client.create_user(&req).await.unwrap();
    let token = w.exchange(&w.token(&w.clerk, "bob")).await.unwrap();
    assert_eq!(w.user_of(&token).await, bob.id);
    assert_eq!(
        w.app.client.create_user(&req).await.unwrap_err().reason(),
        Some("conflict")
    );
}

#[tokio::test]
async fn creating_a_user_with_a_taken_identity_leaves_nothing_behind() {
    let w = world(false).await;
    w.exchange(&w.token(&w.clerk, "taken")).await.unwrap();
    let req = CreateUserRequest {
        email: None,
        identities: vec![
            IdentityInfo {
                iss: w.legacy.url().into(),
                sub: "fresh".into(),
            },
            IdentityInfo {
                iss: w.clerk.url().into(),
                sub: "taken".into(),
            },
        ],
    };
    assert_eq!(
        w.app.client.create_user(&req).await.unwrap_err().reason(),
        Some("conflict")
    );
    assert_eq!(
        w.app.client.list_users().await.unwrap().len(),
        1,
        "no half-linked user"
    );
}
