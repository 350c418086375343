//! The storage contract: every backend must pass every test here.
//!
//! Each `async fn` below is one rule; `contract!` runs it against SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use tollgate_store::{
    AdminTokenRecord, AuditRecord, ClientRecord, KeyRecord, KeyRotation, KeyState, SecretHash,
    ServerSecretRecord, Store, StoreError,
};

fn key(kid: &str, state: KeyState) -> KeyRecord {
    KeyRecord {
        kid: kid.into(),
        purpose: "access".into(),
        alg: "EdDSA".into(),
        state,
        sealed_private_key: vec![1, 2, 3],
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        created_at: 100,
        activated_at: (state == KeyState::Active).then_some(100),
        retired_at: None,
        publish_until: None,
    }
}

fn client(id: &str, name: &str) -> ClientRecord {
    ClientRecord {
        client_id: id.into(),
        name: name.into(),
        secret: SecretHash {
            version: 1,
            hash: vec![9; 32],
        },
        scope: "read write".into(),
        audiences: vec!["https://api.example.com".into(), "billing".into()],
        created_at: 100,
        disabled_at: None,
    }
}

async fn ping_works(s: Arc<dyn Store>) {
    s.ping().await.unwrap();
}

async fn keys_round_trip(s: Arc<dyn Store>) {
    s.insert_key(&key("a", KeyState::Active)).await.unwrap();
    s.insert_key(&key("b", KeyState::Next)).await.unwrap();
    let keys = s.list_keys().await.unwrap();
    assert_eq!(keys, vec![key("a", KeyState::Active), key("b", KeyState::Next)]);
}

async fn only_one_active_and_one_next_key_per_purpose(s: Arc<dyn Store>) {
    s.insert_key(&key("a", KeyState::Active)).await.unwrap();
    assert!(matches!(
        s.insert_key(&key("b", KeyState::Active)).await,
        Err(StoreError::Conflict(_))
    ));
    s.insert_key(&key("c", KeyState::Next)).await.unwrap();
    assert!(matches!(
        s.insert_key(&key("d", KeyState::Next)).await,
        Err(StoreError::Conflict(_))
    ));
    let mut other = key("e", KeyState::Active);
    other.purpose = "registry".into();
    s.insert_key(&other).await.unwrap();
}

fn rotation(active: Option<&str>, promote: &str, new_next: &str) -> KeyRotation {
    KeyRotation {
        purpose: "access".into(),
        now: 200,
        expected_active: active.map(str::to_owned),
        promote: promote.into(),
        retired_publish_until: 1100,
        new_next: key(new_next, KeyState::Next),
    }
}

async fn rotation_retires_promotes_and_adds_next(s: Arc<dyn Store>) {
    s.insert_key(&key("a", KeyState::Active)).await.unwrap();
    s.insert_key(&key("b", KeyState::Next)).await.unwrap();
    s.rotate_keys(&rotation(Some("a"), "b", "c")).await.unwrap();
    let keys = s.list_keys().await.unwrap();
    let state = |kid: &str| keys.iter().find(|k| k.kid == kid).unwrap().clone();
    assert_eq!(state("a").state, KeyState::Retired);
    assert_eq!(state("a").publish_until, Some(1100));
    assert_eq!(state("a").retired_at, Some(200));
    assert_eq!(state("b").state, KeyState::Active);
    assert_eq!(state("b").activated_at, Some(200));
    assert_eq!(state("c").state, KeyState::Next);
}

async fn stale_rotation_conflicts_and_changes_nothing(s: Arc<dyn Store>) {
    s.insert_key(&key("a", KeyState::Active)).await.unwrap();
    s.insert_key(&key("b", KeyState::Next)).await.unwrap();
    s.rotate_keys(&rotation(Some("a"), "b", "c")).await.unwrap();
    let before = s.list_keys().await.unwrap();
    // A second replica that still saw `a` active must not rotate again.
    assert!(matches!(
        s.rotate_keys(&rotation(Some("a"), "b", "d")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.rotate_keys(&rotation(Some("b"), "x", "d")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.list_keys().await.unwrap(), before);
}

async fn first_rotation_without_active_key(s: Arc<dyn Store>) {
    s.insert_key(&key("b", KeyState::Next)).await.unwrap();
    s.rotate_keys(&rotation(None, "b", "c")).await.unwrap();
    let keys = s.list_keys().await.unwrap();
    assert_eq!(keys.iter().filter(|k| k.state == KeyState::Active).count(), 1);
}

async fn retire_and_delete_expired_keys(s: Arc<dyn Store>) {
    s.insert_key(&key("a", KeyState::Active)).await.unwrap();
    s.insert_key(&key("b", KeyState::Next)).await.unwrap();
    assert!(
        !s.retire_key("a", 300, 400).await.unwrap(),
        "the active key cannot be retired directly"
    );
    assert!(s.retire_key("b", 300, 400).await.unwrap());
    assert!(!s.retire_key("nope", 300, 400).await.unwrap());
    assert_eq!(s.delete_expired_keys(399).await.unwrap(), 0);
    assert_eq!(s.delete_expired_keys(400).await.unwrap(), 1);
    assert_eq!(s.list_keys().await.unwrap().len(), 1);
}

async fn server_secrets_are_versioned(s: Arc<dyn Store>) {
    let rec = |v| ServerSecretRecord {
        purpose: "hmac".into(),
        version: v,
        sealed: vec![v as u8],
        created_at: 1,
    };
    s.insert_server_secret(&rec(1)).await.unwrap();
    s.insert_server_secret(&rec(2)).await.unwrap();
    assert!(matches!(
        s.insert_server_secret(&rec(2)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.list_server_secrets("hmac").await.unwrap(), vec![rec(1), rec(2)]);
    assert!(s.list_server_secrets("other").await.unwrap().is_empty());
}

async fn clients_round_trip_and_names_are_unique(s: Arc<dyn Store>) {
    s.create_client(&client("c1", "ci-bot")).await.unwrap();
    assert_eq!(s.get_client("c1").await.unwrap(), Some(client("c1", "ci-bot")));
    assert_eq!(s.get_client("c2").await.unwrap(), None);
    assert!(matches!(
        s.create_client(&client("c2", "ci-bot")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_client(&client("c1", "other")).await,
        Err(StoreError::Conflict(_))
    ));
    s.create_client(&client("c3", "deployer")).await.unwrap();
    assert_eq!(s.list_clients().await.unwrap().len(), 2);
}

async fn client_secret_replacement_is_conditional(s: Arc<dyn Store>) {
    s.create_client(&client("c1", "ci-bot")).await.unwrap();
    let old = SecretHash {
        version: 1,
        hash: vec![9; 32],
    };
    let new = SecretHash {
        version: 2,
        hash: vec![8; 32],
    };
    assert!(s.replace_client_secret("c1", &old, &new).await.unwrap());
    assert!(
        !s.replace_client_secret("c1", &old, &new).await.unwrap(),
        "old hash no longer matches"
    );
    assert_eq!(s.get_client("c1").await.unwrap().unwrap().secret, new);
}

async fn clients_disable_and_delete(s: Arc<dyn Store>) {
    s.create_client(&client("c1", "ci-bot")).await.unwrap();
    assert!(s.set_client_disabled("c1", Some(500)).await.unwrap());
    assert_eq!(s.get_client("c1").await.unwrap().unwrap().disabled_at, Some(500));
    assert!(s.set_client_disabled("c1", None).await.unwrap());
    assert!(!s.set_client_disabled("zz", None).await.unwrap());
    assert!(s.delete_client("c1").await.unwrap());
    assert!(!s.delete_client("c1").await.unwrap());
}

async fn admin_tokens_are_found_by_hash(s: Arc<dyn Store>) {
    assert_eq!(s.count_admin_tokens().await.unwrap(), 0);
    let t = AdminTokenRecord {
        id: "adm1".into(),
        label: "bootstrap".into(),
        secret: SecretHash {
            version: 1,
            hash: vec![5; 32],
        },
        created_at: 1,
    };
    s.insert_admin_token(&t).await.unwrap();
    assert_eq!(s.count_admin_tokens().await.unwrap(), 1);
    assert_eq!(s.find_admin_token(&t.secret).await.unwrap(), Some(t.clone()));
    assert_eq!(
        s.find_admin_token(&SecretHash {
            version: 2,
            hash: vec![5; 32]
        })
        .await
        .unwrap(),
        None
    );
}

async fn revocations_are_idempotent_and_expire(s: Arc<dyn Store>) {
    s.revoke_jti("j1", 1000, 10).await.unwrap();
    s.revoke_jti("j1", 1000, 11).await.unwrap();
    s.revoke_jti("j2", 2000, 10).await.unwrap();
    assert!(s.is_revoked("j1").await.unwrap());
    assert!(!s.is_revoked("j3").await.unwrap());
    assert_eq!(s.purge_expired_revocations(1000).await.unwrap(), 1);
    assert!(!s.is_revoked("j1").await.unwrap());
    assert!(s.is_revoked("j2").await.unwrap());
}

async fn audit_lists_newest_first(s: Arc<dyn Store>) {
    for i in 0..3 {
        s.append_audit(&AuditRecord {
            id: format!("e{i}"),
            at: i,
            actor: "system".into(),
            action: "key.rotate".into(),
            target: None,
            outcome: "success".into(),
            reason: None,
            detail: "{}".into(),
        })
        .await
        .unwrap();
    }
    let ids: Vec<_> = s.list_audit(2).await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, vec!["e2", "e1"]);
}

async fn issuers_round_trip_and_names_are_unique(s: Arc<dyn Store>) {
    let rec = |name: &str, spec: &str| tollgate_store::IssuerRecord {
        name: name.into(),
        spec: spec.into(),
        created_at: 1,
        updated_at: 1,
    };
    s.create_issuer(&rec("b", "{}")).await.unwrap();
    s.create_issuer(&rec("a", "{}")).await.unwrap();
    assert!(matches!(
        s.create_issuer(&rec("a", "{}")).await,
        Err(StoreError::Conflict(_))
    ));
    let mut changed = rec("a", r#"{"enabled":false}"#);
    changed.updated_at = 2;
    assert!(s.update_issuer(&changed).await.unwrap());
    assert!(!s.update_issuer(&rec("zz", "{}")).await.unwrap());
    let listed = s.list_issuers().await.unwrap();
    assert_eq!(listed, vec![changed, rec("b", "{}")]);
    assert!(s.delete_issuer("b").await.unwrap());
    assert!(!s.delete_issuer("b").await.unwrap());
}

fn user(id: &str) -> tollgate_store::UserRecord {
    tollgate_store::UserRecord {
        id: id.into(),
        email: Some(format!("{id}@example.com")),
        user_ver: 1,
        created_at: 1,
        disabled_at: None,
    }
}

fn identity(iss: &str, sub: &str, user_id: &str) -> tollgate_store::IdentityRecord {
    tollgate_store::IdentityRecord {
        iss: iss.into(),
        sub: sub.into(),
        user_id: user_id.into(),
        created_at: 1,
    }
}

async fn users_are_found_by_any_linked_identity(s: Arc<dyn Store>) {
    s.create_user(&user("u1"), &[identity("https://legacy", "alice", "u1")])
        .await
        .unwrap();
    s.link_identity(&identity("https://clerk", "user_2a", "u1"))
        .await
        .unwrap();
    assert_eq!(
        s.user_by_identity("https://legacy", "alice").await.unwrap(),
        Some(user("u1"))
    );
    assert_eq!(
        s.user_by_identity("https://clerk", "user_2a").await.unwrap(),
        Some(user("u1"))
    );
    assert_eq!(
        s.user_by_identity("https://clerk", "alice").await.unwrap(),
        None,
        "sub is per issuer"
    );
    assert_eq!(s.identities_of("u1").await.unwrap().len(), 2);
    assert_eq!(s.list_users().await.unwrap(), vec![user("u1")]);
}

async fn an_identity_belongs_to_one_user_and_a_failed_create_leaves_nothing(s: Arc<dyn Store>) {
    s.create_user(&user("u1"), &[identity("https://i", "x", "u1")])
        .await
        .unwrap();
    let race = s
        .create_user(
            &user("u2"),
            &[
                identity("https://other", "y", "u2"),
                identity("https://i", "x", "u2"),
            ],
        )
        .await;
    assert!(matches!(race, Err(StoreError::Conflict(_))), "{race:?}");
    assert_eq!(
        s.get_user("u2").await.unwrap(),
        None,
        "the losing user was rolled back"
    );
    assert!(matches!(
        s.link_identity(&identity("https://i", "x", "u1")).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn user_ver_bumps_on_logout_and_disable(s: Arc<dyn Store>) {
    s.create_user(&user("u1"), &[]).await.unwrap();
    assert_eq!(s.bump_user_ver("u1").await.unwrap(), Some(2));
    assert_eq!(s.bump_user_ver("nobody").await.unwrap(), None);
    assert!(s.set_user_disabled("u1", Some(5)).await.unwrap());
    let u = s.get_user("u1").await.unwrap().unwrap();
    assert_eq!((u.user_ver, u.disabled_at), (3, Some(5)));
    assert!(!s.set_user_disabled("nobody", None).await.unwrap());
}

fn session(id: &str, user_id: &str) -> tollgate_store::SessionRecord {
    tollgate_store::SessionRecord {
        id: id.into(),
        user_id: user_id.into(),
        user_ver: 1,
        client_id: "upstream:clerk".into(),
        scope: "read".into(),
        audience: "api".into(),
        upstream: "{}".into(),
        created_at: 10,
        expires_at: 1000,
        last_used_at: 10,
        revoked_at: None,
        revoked_reason: None,
    }
}

fn rt(n: u8) -> SecretHash {
    SecretHash {
        version: 1,
        hash: vec![n; 32],
    }
}

async fn refresh_tokens_rotate_once(s: Arc<dyn Store>) {
    s.create_user(&user("u1"), &[]).await.unwrap();
    s.create_session(&session("ses1", "u1"), &rt(1)).await.unwrap();
    let (r, found) = s.find_refresh(&rt(1)).await.unwrap().unwrap();
    assert_eq!((r.session_id.as_str(), r.used_at), ("ses1", None));
    assert_eq!(found, session("ses1", "u1"));
    assert!(s.rotate_refresh("ses1", 1, &rt(1), &rt(2), 20).await.unwrap());
    assert!(
        !s.rotate_refresh("ses1", 1, &rt(1), &rt(3), 21).await.unwrap(),
        "a used token does not rotate again"
    );
    assert_eq!(s.find_refresh(&rt(1)).await.unwrap().unwrap().0.used_at, Some(20));
    assert_eq!(
        s.find_refresh(&rt(3)).await.unwrap(),
        None,
        "the loser's token was never stored"
    );
    let (_, after) = s.find_refresh(&rt(2)).await.unwrap().unwrap();
    assert_eq!(after.last_used_at, 20);
    assert_eq!(
        s.find_refresh(&SecretHash {
            version: 2,
            hash: vec![2; 32]
        })
        .await
        .unwrap(),
        None
    );
}

async fn of_many_concurrent_rotations_exactly_one_wins(s: Arc<dyn Store>) {
    s.create_user(&user("u1"), &[]).await.unwrap();
    s.create_session(&session("ses1", "u1"), &rt(1)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 10..30u8 {
        let s = s.clone();
        tasks.spawn(async move { s.rotate_refresh("ses1", 1, &rt(1), &rt(n), 20).await.unwrap() });
    }
    let mut wins = 0;
    while let Some(won) = tasks.join_next().await {
        wins += usize::from(won.unwrap());
    }
    assert_eq!(wins, 1);
}

async fn revoked_or_outdated_sessions_do_not_rotate(s: Arc<dyn Store>) {
    s.create_user(&user("u1"), &[]).await.unwrap();
    s.create_session(&session("ses1", "u1"), &rt(1)).await.unwrap();
    assert!(
        !s.rotate_refresh("ses1", 2, &rt(1), &rt(2), 20).await.unwrap(),
        "user_ver moved on"
    );
    assert!(s.revoke_session("ses1", "logout", 20).await.unwrap());
    assert!(
        !s.rotate_refresh("ses1", 1, &rt(1), &rt(2), 21).await.unwrap(),
        "revoked"
    );
    assert_eq!(
        s.find_refresh(&rt(1)).await.unwrap().unwrap().0.used_at,
        None,
        "nothing was spent"
    );
}

async fn sessions_are_revoked_once_and_listed_newest_first(s: Arc<dyn Store>) {
    s.create_user(&user("u1"), &[]).await.unwrap();
    s.create_session(&session("a", "u1"), &rt(1)).await.unwrap();
    let mut newer = session("b", "u1");
    newer.created_at = 20;
    s.create_session(&newer, &rt(2)).await.unwrap();
    assert!(s.revoke_session("a", "logout", 30).await.unwrap());
    assert!(!s.revoke_session("a", "again", 31).await.unwrap());
    let listed = s.sessions_of("u1").await.unwrap();
    assert_eq!(
        listed.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(
        (listed[1].revoked_at, listed[1].revoked_reason.as_deref()),
        (Some(30), Some("logout"))
    );
}

async fn data_survives_reopening(url: String) {
    let s = tollgate_store::open(&url).await.unwrap();
    s.create_client(&client("c1", "ci-bot")).await.unwrap();
    s.revoke_jti("j1", i64::MAX, 1).await.unwrap();
    drop(s);
    let s = tollgate_store::open(&url).await.unwrap();
    assert!(s.get_client("c1").await.unwrap().is_some());
    assert!(s.is_revoked("j1").await.unwrap());
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = tollgate_store::open(&tollgate_store::testing::sqlite_url(dir.path())).await.unwrap();
                    super::$test(store).await;
                }
            )*

            #[tokio::test]
            async fn data_survives_reopening() {
                let dir = tempfile::tempdir().unwrap();
                super::data_survives_reopening(tollgate_store::testing::sqlite_url(dir.path())).await;
            }
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let Some(url) = tollgate_store::testing::fresh_postgres_url().await else { return };
                    let store = tollgate_store::open(&url).await.unwrap();
                    super::$test(store).await;
                }
            )*

            #[tokio::test]
            async fn data_survives_reopening() {
                let Some(url) = tollgate_store::testing::fresh_postgres_url().await else { return };
                super::data_survives_reopening(url).await;
            }
        }
    };
}

contract!(
    ping_works,
    keys_round_trip,
    only_one_active_and_one_next_key_per_purpose,
    rotation_retires_promotes_and_adds_next,
    stale_rotation_conflicts_and_changes_nothing,
    first_rotation_without_active_key,
    retire_and_delete_expired_keys,
    server_secrets_are_versioned,
    clients_round_trip_and_names_are_unique,
    client_secret_replacement_is_conditional,
    clients_disable_and_delete,
    admin_tokens_are_found_by_hash,
    revocations_are_idempotent_and_expire,
    audit_lists_newest_first,
    issuers_round_trip_and_names_are_unique,
    users_are_found_by_any_linked_identity,
    an_identity_belongs_to_one_user_and_a_failed_create_leaves_nothing,
    user_ver_bumps_on_logout_and_disable,
    refresh_tokens_rotate_once,
    of_many_concurrent_rotations_exactly_one_wins,
    sessions_are_revoked_once_and_listed_newest_first,
    revoked_or_outdated_sessions_do_not_rotate,
);

#[test]
fn unknown_url_scheme_is_refused_with_a_hint() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let err = rt.block_on(tollgate_store::open("mysql://x")).err().unwrap();
    assert!(err.to_string().contains("sqlite:// or postgres://"), "{err}");
}
