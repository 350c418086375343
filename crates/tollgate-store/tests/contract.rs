//! The storage contract: every backend must pass every test here.
//!
//! Each `async fn` below is one rule; `contract!` runs it against SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use tollgate_store::{
    AdminTokenRecord, AuditQuery, AuditRecord, ChainInput, ClientRecord, KeyRecord, KeyRotation, KeyState,
    SecretHash, ServerSecretRecord, Store, StoreError,
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
        org_id: None,
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

fn audit_event(id: &str, at: i64) -> AuditRecord {
    AuditRecord {
        id: id.into(),
        at,
        actor: "system".into(),
        action: "key.rotate".into(),
        target: None,
        outcome: "success".into(),
        reason: None,
        detail: "{}".into(),
        org_id: None,
        credential_id: None,
        request_id: None,
    }
}

/// Stands in for the server's keyed hash: any deterministic function of the whole input.
fn test_link(i: &ChainInput<'_>) -> [u8; 32] {
    let mut out = *i.prev_hash;
    let facts = format!("{}|{}|{}|{}", i.seq, i.event.id, i.event.action, i.event.detail);
    for (n, b) in facts.bytes().enumerate() {
        out[n % 32] = out[n % 32].wrapping_mul(31).wrapping_add(b);
    }
    out
}

fn audit_query(limit: u32) -> AuditQuery {
    AuditQuery {
        limit,
        ..AuditQuery::default()
    }
}

async fn audit_lists_newest_first(s: Arc<dyn Store>) {
    for i in 0..3 {
        s.append_audit(&audit_event(&format!("e{i}"), i), &test_link)
            .await
            .unwrap();
    }
    let ids: Vec<_> = s
        .query_audit(&audit_query(2))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.id)
        .collect();
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
        email_verified_at: None,
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
        org_id: None,
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

/// Checks the chain link by link from the start; returns how many links there are.
async fn assert_chain_unbroken(s: &Arc<dyn Store>) -> usize {
    let chain = s.audit_chain(0, 10_000).await.unwrap();
    let mut prev = [0u8; 32];
    for (n, e) in chain.iter().enumerate() {
        let seq = e.chain_seq.unwrap();
        assert_eq!(
            seq,
            i64::try_from(n).unwrap() + 1,
            "chain sequence numbers have no gaps"
        );
        assert_eq!(
            e.prev_hash.as_deref(),
            Some(&prev[..]),
            "link {seq} names its predecessor"
        );
        let hash = test_link(&ChainInput {
            seq,
            prev_hash: &prev,
            event: &e.event,
        });
        assert_eq!(
            e.hash.as_deref(),
            Some(&hash[..]),
            "link {seq} hashes what was stored"
        );
        prev = hash;
    }
    let head = s.audit_head().await.unwrap();
    assert_eq!((head.seq, head.hash), (i64::try_from(chain.len()).unwrap(), prev));
    chain.len()
}

async fn audit_chain_stays_unbroken_under_concurrent_appends(s: Arc<dyn Store>) {
    let head = s.audit_head().await.unwrap();
    assert_eq!(
        (head.seq, head.hash),
        (0, [0u8; 32]),
        "an empty chain starts at zero"
    );
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..50 {
        let s = s.clone();
        tasks.spawn(async move {
            s.append_audit(&audit_event(&format!("e{n}"), n), &test_link)
                .await
                .unwrap()
        });
    }
    let mut seqs = Vec::new();
    while let Some(pos) = tasks.join_next().await {
        seqs.push(pos.unwrap().seq);
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=50).collect::<Vec<i64>>(),
        "every append got its own place"
    );
    assert_eq!(assert_chain_unbroken(&s).await, 50);
    // The table order is the chain order, so cursors and the chain agree.
    let listed = s.query_audit(&audit_query(100)).await.unwrap();
    let chain_order: Vec<_> = listed.iter().rev().map(|e| e.chain_seq.unwrap()).collect();
    assert_eq!(chain_order, (1..=50).collect::<Vec<i64>>());
    // Pages of the chain continue where the last one ended.
    let page = s.audit_chain(48, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.chain_seq.unwrap()).collect::<Vec<_>>(),
        [49, 50]
    );
}

async fn audit_batches_chain_like_single_appends_and_are_all_or_nothing(s: Arc<dyn Store>) {
    s.append_audit(&audit_event("first", 1), &test_link)
        .await
        .unwrap();
    let batch: Vec<_> = (2..=5).map(|n| audit_event(&format!("e{n}"), n)).collect();
    let positions = s.append_audit_batch(&batch, &test_link).await.unwrap();
    assert_eq!(positions.iter().map(|p| p.seq).collect::<Vec<_>>(), [2, 3, 4, 5]);
    assert_eq!(s.audit_head().await.unwrap(), positions[3]);
    assert!(s.append_audit_batch(&[], &test_link).await.unwrap().is_empty());
    // A duplicate id fails the whole batch: nothing of it is written, the head stays.
    let bad = vec![audit_event("e6", 6), audit_event("e2", 7)];
    assert!(s.append_audit_batch(&bad, &test_link).await.is_err());
    assert_eq!(s.audit_head().await.unwrap(), positions[3]);
    s.append_audit(&audit_event("e6", 6), &test_link).await.unwrap();
    assert_eq!(assert_chain_unbroken(&s).await, 6);
}

async fn audit_filters_and_cursors(s: Arc<dyn Store>) {
    let rows = [
        ("a1", 10, "org_a", "admin:x", "client.create"),
        ("a2", 20, "org_a", "client:c1", "token.issue"),
        ("a3", 30, "org_b", "client:c1", "token.revoke"),
        ("a4", 40, "org_a", "admin:x", "tokens.other"),
        ("a5", 50, "org_b", "admin:x", "token"),
        ("a6", 60, "org_a", "client:c1", "Token.issue"),
        ("a7", 70, "org_a", "client:c1", "token.issue"),
    ];
    for (id, at, org, actor, action) in rows {
        let mut e = audit_event(id, at);
        e.org_id = Some(org.into());
        e.actor = actor.into();
        e.action = action.into();
        e.credential_id = Some(format!("jti-{id}"));
        e.request_id = Some(format!("req-{id}"));
        e.target = Some("t".into());
        e.reason = Some("r".into());
        e.outcome = "denied".into();
        s.append_audit(&e, &test_link).await.unwrap();
    }
    let ids = |q: AuditQuery| {
        let s = s.clone();
        async move {
            s.query_audit(&q)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.event.id)
                .collect::<Vec<_>>()
        }
    };
    let all = audit_query(100);
    assert_eq!(
        ids(AuditQuery {
            org_id: Some("org_b".into()),
            ..all.clone()
        })
        .await,
        ["a5", "a3"]
    );
    assert_eq!(
        ids(AuditQuery {
            actor: Some("client:c1".into()),
            org_id: Some("org_a".into()),
            ..all.clone()
        })
        .await,
        ["a7", "a6", "a2"]
    );
    assert_eq!(
        ids(AuditQuery {
            action: Some("token.issue".into()),
            ..all.clone()
        })
        .await,
        ["a7", "a2"],
        "exact and case sensitive"
    );
    assert_eq!(
        ids(AuditQuery {
            action: Some("token.".into()),
            ..all.clone()
        })
        .await,
        ["a7", "a3", "a2"],
        "a prefix ending in `.` matches neither `token`, `tokens.other` nor `Token.issue`"
    );
    assert_eq!(
        ids(AuditQuery {
            since: Some(30),
            until: Some(60),
            ..all.clone()
        })
        .await,
        ["a5", "a4", "a3"],
        "since is inclusive, until exclusive"
    );
    // Newest-first pages of two, following the cursor.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .query_audit(&AuditQuery {
                before,
                ..audit_query(2)
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        pages.push(page.iter().map(|e| e.event.id.clone()).collect::<Vec<_>>());
    }
    assert_eq!(
        pages,
        [vec!["a7", "a6"], vec!["a5", "a4"], vec!["a3", "a2"], vec!["a1"]]
    );
    // Oldest first, after a cursor.
    let first = s
        .query_audit(&AuditQuery {
            oldest_first: true,
            ..audit_query(2)
        })
        .await
        .unwrap();
    assert_eq!(first[0].event.id, "a1");
    let next = s
        .query_audit(&AuditQuery {
            oldest_first: true,
            after: Some(first[1].seq),
            action: Some("token.".into()),
            ..audit_query(10)
        })
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|e| e.event.id.as_str()).collect::<Vec<_>>(),
        ["a3", "a7"]
    );
    // Every field comes back as written.
    let a3 = &next[0].event;
    assert_eq!(
        (
            a3.org_id.as_deref(),
            a3.credential_id.as_deref(),
            a3.request_id.as_deref(),
            a3.target.as_deref(),
            a3.reason.as_deref(),
            a3.outcome.as_str(),
            a3.at,
        ),
        (
            Some("org_b"),
            Some("jti-a3"),
            Some("req-a3"),
            Some("t"),
            Some("r"),
            "denied",
            30
        )
    );
    assert_eq!(assert_chain_unbroken(&s).await, 7);
}

/// Runs raw SQL, as an older version of tollgate (or an attacker) would write it.
async fn raw_sql(url: &str, sql: &str) {
    use sqlx::Connection as _;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    }
}

async fn unchained_legacy_rows_are_listed_but_not_chained(url: String) {
    let s = tollgate_store::open(&url).await.unwrap();
    // Rows written before the chain existed have no chain columns.
    raw_sql(
        &url,
        "INSERT INTO audit_events (id, at, actor, action, outcome, detail) \
         VALUES ('legacy1', 1, 'system', 'key.rotate', 'success', '{}'); \
         INSERT INTO audit_events (id, at, actor, action, outcome, detail) \
         VALUES ('legacy2', 2, 'system', 'key.rotate', 'success', '{}')",
    )
    .await;
    s.append_audit(&audit_event("c1", 3), &test_link).await.unwrap();
    s.append_audit(&audit_event("c2", 4), &test_link).await.unwrap();
    let listed = s.query_audit(&audit_query(10)).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|e| (e.event.id.as_str(), e.chain_seq))
            .collect::<Vec<_>>(),
        [
            ("c2", Some(2)),
            ("c1", Some(1)),
            ("legacy2", None),
            ("legacy1", None)
        ]
    );
    assert!(listed[2].hash.is_none() && listed[2].prev_hash.is_none());
    assert_eq!(assert_chain_unbroken(&s).await, 2, "legacy rows are not links");
}

fn org(id: &str) -> tollgate_store::OrgRecord {
    tollgate_store::OrgRecord {
        id: id.into(),
        name: format!("{id}-name"),
        display_name: None,
        issuers: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn member(org_id: &str, user_id: &str, roles: &[&str]) -> tollgate_store::MembershipRecord {
    tollgate_store::MembershipRecord {
        org_id: org_id.into(),
        user_id: user_id.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        created_at: 2,
        updated_at: 2,
    }
}

async fn orgs_are_found_by_id_or_name_and_names_are_unique(s: Arc<dyn Store>) {
    let mut o = org("org_a");
    o.issuers = Some(vec!["clerk".into(), "legacy".into()]);
    s.create_org(&o, None).await.unwrap();
    assert_eq!(s.find_org("org_a").await.unwrap(), Some(o.clone()));
    assert_eq!(s.find_org("org_a-name").await.unwrap(), Some(o.clone()));
    assert_eq!(s.find_org("nope").await.unwrap(), None);
    let mut dup = org("org_b");
    dup.name = o.name.clone();
    assert!(matches!(
        s.create_org(&dup, None).await,
        Err(StoreError::Conflict(_))
    ));
    o.issuers = Some(vec![]);
    o.display_name = Some("A".into());
    assert!(s.update_org(&o).await.unwrap());
    assert_eq!(s.find_org("org_a").await.unwrap(), Some(o.clone()));
    o.issuers = None;
    assert!(s.update_org(&o).await.unwrap());
    assert_eq!(s.list_orgs().await.unwrap(), vec![o]);
}

async fn external_orgs_bind_once(s: Arc<dyn Store>) {
    s.create_org(&org("org_a"), None).await.unwrap();
    let b = tollgate_store::ExternalOrgRecord {
        iss: "https://clerk.example.com".into(),
        external_id: "org_2x".into(),
        org_id: "org_a".into(),
        created_at: 3,
    };
    s.bind_external_org(&b).await.unwrap();
    assert!(matches!(
        s.bind_external_org(&b).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.org_by_external(&b.iss, "org_2x").await.unwrap().unwrap().id,
        "org_a"
    );
    assert_eq!(s.external_orgs_of("org_a").await.unwrap(), vec![b.clone()]);
    assert!(s.unbind_external_org("org_a", &b.iss, "org_2x").await.unwrap());
    assert_eq!(s.org_by_external(&b.iss, "org_2x").await.unwrap(), None);
}

async fn membership_changes_bump_user_ver_and_keep_sessions(s: Arc<dyn Store>) {
    s.create_user(&user("u1"), &[]).await.unwrap();
    s.create_user(&user("u2"), &[]).await.unwrap();
    s.create_org(&org("org_a"), Some(&member("org_a", "u1", &["owner"])))
        .await
        .unwrap();
    assert_eq!(s.get_user("u1").await.unwrap().unwrap().user_ver, 2);
    let mut live = session("live", "u2");
    live.org_id = Some("org_a".into());
    s.create_session(&live, &rt(1)).await.unwrap();
    let change = s
        .set_membership(&member("org_a", "u2", &["member", "ci"]))
        .await
        .unwrap();
    assert_eq!(change, tollgate_store::MembershipChange::Done { user_ver: 2 });
    assert_eq!(
        s.get_membership("org_a", "u2").await.unwrap().unwrap().roles,
        vec!["member".to_owned(), "ci".to_owned()]
    );
    // The session follows the user's new version, so it can still rotate.
    assert!(s.rotate_refresh("live", 2, &rt(1), &rt(2), 20).await.unwrap());
    assert_eq!(s.sessions_of_org("org_a").await.unwrap().len(), 1);
    assert_eq!(s.members_of("org_a").await.unwrap().len(), 2);
    assert_eq!(s.memberships_of("u2").await.unwrap().len(), 1);
    assert_eq!(
        s.set_membership(&member("org_a", "ghost", &["member"]))
            .await
            .unwrap(),
        tollgate_store::MembershipChange::NotFound
    );
    assert_eq!(
        s.remove_membership("org_a", "u2", 5).await.unwrap(),
        tollgate_store::MembershipChange::Done { user_ver: 3 }
    );
    assert_eq!(
        s.remove_membership("org_a", "u2", 5).await.unwrap(),
        tollgate_store::MembershipChange::NotFound
    );
}

async fn the_last_owner_stays(s: Arc<dyn Store>) {
    use tollgate_store::MembershipChange::{Done, LastOwner};
    for u in ["u1", "u2"] {
        s.create_user(&user(u), &[]).await.unwrap();
    }
    s.create_org(&org("org_a"), Some(&member("org_a", "u1", &["owner"])))
        .await
        .unwrap();
    assert_eq!(
        s.set_membership(&member("org_a", "u1", &["admin"]))
            .await
            .unwrap(),
        LastOwner
    );
    assert_eq!(s.remove_membership("org_a", "u1", 5).await.unwrap(), LastOwner);
    assert_eq!(
        s.get_user("u1").await.unwrap().unwrap().user_ver,
        2,
        "a refused change bumps nothing"
    );
    assert!(matches!(
        s.set_membership(&member("org_a", "u2", &["owner"]))
            .await
            .unwrap(),
        Done { .. }
    ));
    // Two owners demoting each other at once: the org lock serializes them, one is refused.
    let (m1, m2) = (
        member("org_a", "u1", &["admin"]),
        member("org_a", "u2", &["admin"]),
    );
    let (a, b) = tokio::join!(s.set_membership(&m1), s.set_membership(&m2));
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(
        outcomes.iter().filter(|o| **o == LastOwner).count(),
        1,
        "{outcomes:?}"
    );
    // An org created without an owner can get members.
    s.create_org(&org("org_b"), None).await.unwrap();
    assert!(matches!(
        s.set_membership(&member("org_b", "u1", &["member"]))
            .await
            .unwrap(),
        Done { .. }
    ));
}

async fn roles_round_trip_and_held_roles_stay(s: Arc<dyn Store>) {
    s.create_user(&user("u1"), &[]).await.unwrap();
    s.create_org(&org("org_a"), None).await.unwrap();
    let role = tollgate_store::RoleRecord {
        org_id: "org_a".into(),
        name: "release_manager".into(),
        description: Some("ships".into()),
        permissions: vec!["registry:push".into(), "certificate:sign:*".into()],
        created_at: 1,
        updated_at: 1,
    };
    s.put_role(&role).await.unwrap();
    assert_eq!(
        s.get_role("org_a", "release_manager").await.unwrap(),
        Some(role.clone())
    );
    let mut changed = role.clone();
    changed.permissions = vec!["registry:pull".into()];
    changed.updated_at = 2;
    s.put_role(&changed).await.unwrap();
    assert_eq!(s.list_roles("org_a").await.unwrap(), vec![changed]);
    s.set_membership(&member("org_a", "u1", &["member", "release_manager"]))
        .await
        .unwrap();
    assert!(matches!(
        s.delete_role("org_a", "release_manager").await,
        Err(StoreError::Conflict(_))
    ));
    s.set_membership(&member("org_a", "u1", &["member"]))
        .await
        .unwrap();
    assert!(s.delete_role("org_a", "release_manager").await.unwrap());
    assert!(!s.delete_role("org_a", "release_manager").await.unwrap());
}

async fn org_service_accounts_are_disabled_together(s: Arc<dyn Store>) {
    s.create_org(&org("org_a"), None).await.unwrap();
    let mut a = client("tgc_a", "a");
    a.org_id = Some("org_a".into());
    let mut b = client("tgc_b", "b");
    b.org_id = Some("org_a".into());
    s.create_client(&a).await.unwrap();
    s.create_client(&b).await.unwrap();
    s.create_client(&client("tgc_c", "c")).await.unwrap();
    assert_eq!(s.clients_of_org("org_a").await.unwrap(), vec![a, b]);
    let mut disabled = s.disable_org_clients("org_a", 50).await.unwrap();
    disabled.sort();
    assert_eq!(disabled, vec!["tgc_a".to_owned(), "tgc_b".to_owned()]);
    assert!(s.disable_org_clients("org_a", 60).await.unwrap().is_empty());
    assert_eq!(s.get_client("tgc_c").await.unwrap().unwrap().disabled_at, None);
}

async fn pull_credentials_and_api_keys(s: Arc<dyn Store>) {
    s.create_org(&org("org_a"), None).await.unwrap();
    let cred = tollgate_store::PullCredentialRecord {
        id: "tgpc_1".into(),
        secret: rt(1),
        repository: "org_a-name/app".into(),
        org_id: "org_a".into(),
        created_by: "apikey:tgak_1".into(),
        created_at: 10,
        expires_at: 100,
        revoked_at: None,
    };
    s.insert_pull_credential(&cred).await.unwrap();
    assert_eq!(s.get_pull_credential("tgpc_1").await.unwrap(), Some(cred.clone()));
    assert!(s.revoke_pull_credential("tgpc_1", 20).await.unwrap());
    assert!(!s.revoke_pull_credential("tgpc_1", 21).await.unwrap());
    assert_eq!(
        s.get_pull_credential("tgpc_1").await.unwrap().unwrap().revoked_at,
        Some(20)
    );
    assert_eq!(s.purge_expired_pull_credentials(100).await.unwrap(), 0);
    assert_eq!(s.purge_expired_pull_credentials(101).await.unwrap(), 1);

    let key = tollgate_store::ApiKeyRecord {
        id: "tgak_1".into(),
        name: "builder".into(),
        secret: rt(2),
        created_at: 1,
        revoked_at: None,
    };
    s.insert_api_key(&key).await.unwrap();
    let mut dup = key.clone();
    dup.id = "tgak_2".into();
    dup.secret = rt(3);
    assert!(matches!(
        s.insert_api_key(&dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.find_api_key(&rt(2)).await.unwrap(), Some(key.clone()));
    assert_eq!(s.find_api_key(&rt(3)).await.unwrap(), None);
    assert!(s.revoke_api_key("tgak_1", 5).await.unwrap());
    assert_eq!(s.list_api_keys().await.unwrap()[0].revoked_at, Some(5));
}

fn invite(id: &str, org_id: &str, hash: u8, expires_at: i64) -> tollgate_store::InviteRecord {
    tollgate_store::InviteRecord {
        id: id.into(),
        org_id: org_id.into(),
        email: "Ann@Example.com".into(),
        roles: vec!["developer".into(), "viewer".into()],
        secret: SecretHash {
            version: 1,
            hash: vec![hash; 32],
        },
        created_by: "usr_admin".into(),
        created_at: 10,
        expires_at,
        redeemed_at: None,
        redeemed_by: None,
        revoked_at: None,
    }
}

async fn invites_redeem_once_and_revoke(s: Arc<dyn Store>) {
    s.create_org(&org("org_a"), None).await.unwrap();
    s.create_user(&user("u1"), &[]).await.unwrap();
    let a = invite("inv_a", "org_a", 1, 100);
    s.create_invite(&a).await.unwrap();
    assert!(
        matches!(
            s.create_invite(&invite("inv_b", "org_a", 1, 100)).await,
            Err(StoreError::Conflict(_))
        ),
        "hash is unique"
    );
    assert!(
        matches!(
            s.create_invite(&invite("inv_c", "org_nope", 3, 100)).await,
            Err(StoreError::Conflict(_))
        ),
        "org must exist"
    );
    assert_eq!(s.get_invite("inv_a").await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.find_invite(&SecretHash {
            version: 1,
            hash: vec![1; 32]
        })
        .await
        .unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        s.find_invite(&SecretHash {
            version: 2,
            hash: vec![1; 32]
        })
        .await
        .unwrap(),
        None
    );
    assert_eq!(s.email_verified_at("u1").await.unwrap(), None);

    // Expired: not redeemable.
    assert!(!s.redeem_invite("inv_a", "u1", 100).await.unwrap());
    assert!(s.redeem_invite("inv_a", "u1", 50).await.unwrap());
    assert!(!s.redeem_invite("inv_a", "u1", 51).await.unwrap(), "once");
    assert!(
        !s.revoke_invite("inv_a", 52).await.unwrap(),
        "a redeemed invite is not revoked"
    );
    let got = s.get_invite("inv_a").await.unwrap().unwrap();
    assert_eq!(
        (got.redeemed_at, got.redeemed_by.as_deref(), got.revoked_at),
        (Some(50), Some("u1"), None)
    );
    assert_eq!(s.email_verified_at("u1").await.unwrap(), Some(50));

    let mut b = invite("inv_b", "org_a", 2, 100);
    b.created_at = 20;
    s.create_invite(&b).await.unwrap();
    assert!(s.revoke_invite("inv_b", 30).await.unwrap());
    assert!(!s.revoke_invite("inv_b", 31).await.unwrap());
    assert!(
        !s.redeem_invite("inv_b", "u1", 40).await.unwrap(),
        "a revoked invite is not redeemed"
    );
    let ids: Vec<String> = s
        .invites_of("org_a")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, ["inv_b", "inv_a"]);
    assert!(s.invites_of("org_x").await.unwrap().is_empty());
}

async fn of_concurrent_invite_redemptions_exactly_one_wins(s: Arc<dyn Store>) {
    s.create_org(&org("org_a"), None).await.unwrap();
    for n in 0..10 {
        s.create_user(&user(&format!("u{n}")), &[]).await.unwrap();
    }
    s.create_invite(&invite("inv_a", "org_a", 1, 100)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..10 {
        let s = s.clone();
        tasks.spawn(async move { s.redeem_invite("inv_a", &format!("u{n}"), 20).await.unwrap() });
    }
    let mut wins = 0;
    while let Some(won) = tasks.join_next().await {
        wins += usize::from(won.unwrap());
    }
    assert_eq!(wins, 1);
}

/// CA keys are written once as a set: a second set (a replica starting at the same time)
/// is refused whole and the first one kept.
async fn ca_keys_are_stored_once_as_a_set(s: Arc<dyn Store>) {
    let key = |role: &str, name: &str| tollgate_store::CaKeyRecord {
        role: role.into(),
        common_name: name.into(),
        alg: "ES256".into(),
        sealed_key: vec![1, 2, 3],
        cert_pem: format!("-----BEGIN CERTIFICATE-----\n{name}\n-----END CERTIFICATE-----\n"),
        created_at: 10,
    };
    assert!(s.ca_keys().await.unwrap().is_empty());
    let first = [key("issuing", "first issuing"), key("root", "first root")];
    assert!(s.create_ca_keys(&first).await.unwrap());
    let second = [key("root", "second root"), key("issuing", "second issuing")];
    assert!(!s.create_ca_keys(&second).await.unwrap());
    assert_eq!(s.ca_keys().await.unwrap(), first);
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

            #[tokio::test]
            async fn unchained_legacy_rows_are_listed_but_not_chained() {
                let dir = tempfile::tempdir().unwrap();
                super::unchained_legacy_rows_are_listed_but_not_chained(tollgate_store::testing::sqlite_url(dir.path())).await;
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

            #[tokio::test]
            async fn unchained_legacy_rows_are_listed_but_not_chained() {
                let Some(url) = tollgate_store::testing::fresh_postgres_url().await else { return };
                super::unchained_legacy_rows_are_listed_but_not_chained(url).await;
            }
        }
    };
}

async fn trust_policies_round_trip_per_org_and_issuer(s: Arc<dyn Store>) {
    s.create_org(&org("o1"), None).await.unwrap();
    s.create_org(&org("o2"), None).await.unwrap();
    let p = |o: &str, n: &str, issuer: &str, at: i64| tollgate_store::TrustPolicyRecord {
        org_id: o.into(),
        name: n.into(),
        issuer: issuer.into(),
        spec: format!(r#"{{"name":"{n}"}}"#),
        created_at: at,
        updated_at: at,
    };
    assert!(s.put_trust_policy(&p("o1", "b", "github", 10)).await.unwrap());
    assert!(s.put_trust_policy(&p("o1", "a", "gitlab", 10)).await.unwrap());
    assert!(s.put_trust_policy(&p("o2", "a", "github", 10)).await.unwrap());
    // Replacing keeps created_at and says it was not created.
    assert!(!s.put_trust_policy(&p("o1", "b", "github", 20)).await.unwrap());
    let got = s.get_trust_policy("o1", "b").await.unwrap().unwrap();
    assert_eq!((got.created_at, got.updated_at), (10, 20));
    let names = |v: Vec<tollgate_store::TrustPolicyRecord>| {
        v.into_iter()
            .map(|p| format!("{}/{}", p.org_id, p.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(s.trust_policies_of("o1").await.unwrap()), ["o1/a", "o1/b"]);
    assert_eq!(
        names(s.trust_policies_for_issuer("github").await.unwrap()),
        ["o1/b", "o2/a"]
    );
    assert!(s.delete_trust_policy("o1", "b").await.unwrap());
    assert!(!s.delete_trust_policy("o1", "b").await.unwrap());
    assert!(s.get_trust_policy("o1", "b").await.unwrap().is_none());
}

fn build(id: &str, owner: &str, expires_at: i64) -> tollgate_store::BuildSessionRecord {
    tollgate_store::BuildSessionRecord {
        id: id.into(),
        org_id: None,
        owner: owner.into(),
        created_by: "sub".into(),
        description: String::new(),
        created_at: 100,
        expires_at,
        closed_at: None,
        closed_reason: None,
    }
}

async fn build_sessions_are_limited_per_owner_even_when_opened_concurrently(s: Arc<dyn Store>) {
    use tollgate_store::BuildSessionOpen;
    // An expired and a closed session do not count.
    assert_eq!(
        s.open_build_session(&build("old", "ci:x", 50), 3, 10)
            .await
            .unwrap(),
        BuildSessionOpen::Opened
    );
    assert_eq!(
        s.open_build_session(&build("closed", "ci:x", 500), 3, 100)
            .await
            .unwrap(),
        BuildSessionOpen::Opened
    );
    assert!(s.close_build_session("closed", "done", 101).await.unwrap());
    assert!(!s.close_build_session("closed", "done", 102).await.unwrap());
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.open_build_session(&build(&format!("b{i}"), "ci:x", 500), 3, 100)
                    .await
            })
        })
        .collect();
    let mut opened = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            BuildSessionOpen::Opened => opened += 1,
            BuildSessionOpen::LimitReached { active } => assert_eq!(active, 3),
        }
    }
    assert_eq!(opened, 3);
    assert_eq!(
        s.open_build_session(&build("other", "ci:y", 500), 3, 100)
            .await
            .unwrap(),
        BuildSessionOpen::Opened
    );
    assert_eq!(s.build_sessions_of("ci:x").await.unwrap().len(), 5);
    assert_eq!(
        s.get_build_session("closed")
            .await
            .unwrap()
            .unwrap()
            .closed_reason
            .as_deref(),
        Some("done")
    );
}

fn user_key(id: &str, user_id: &str, thumbprint: &str, created_at: i64) -> tollgate_store::UserKeyRecord {
    tollgate_store::UserKeyRecord {
        id: id.into(),
        user_id: user_id.into(),
        device_name: format!("laptop {id}"),
        alg: "EdDSA".into(),
        public_jwk: format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{thumbprint}"}}"#),
        thumbprint: thumbprint.into(),
        scope: "read".into(),
        upstream: "null".into(),
        created_at,
        last_used_at: None,
        revoked_at: None,
    }
}

async fn user_keys_are_unique_limited_and_revoked_with_their_sessions(s: Arc<dyn Store>) {
    use tollgate_store::UserKeyCreate;
    s.create_user(&user("u1"), &[]).await.unwrap();
    s.create_user(&user("u2"), &[]).await.unwrap();
    let k1 = user_key("uk_1", "u1", "t1", 10);
    assert_eq!(s.create_user_key(&k1, 2).await.unwrap(), UserKeyCreate::Created);
    assert_eq!(s.get_user_key("uk_1").await.unwrap(), Some(k1.clone()));
    assert_eq!(s.user_key_by_thumbprint("t1").await.unwrap(), Some(k1.clone()));
    assert_eq!(s.user_key_by_thumbprint("t9").await.unwrap(), None);
    // One thumbprint, one key: for any user.
    assert!(matches!(
        s.create_user_key(&user_key("uk_x", "u2", "t1", 11), 2).await,
        Err(StoreError::Conflict(_))
    ));
    // A user that does not exist has no keys.
    assert!(matches!(
        s.create_user_key(&user_key("uk_y", "nobody", "t8", 11), 2).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.create_user_key(&user_key("uk_2", "u1", "t2", 20), 2)
            .await
            .unwrap(),
        UserKeyCreate::Created
    );
    assert_eq!(
        s.create_user_key(&user_key("uk_3", "u1", "t3", 30), 2)
            .await
            .unwrap(),
        UserKeyCreate::LimitReached { active: 2 }
    );
    assert_eq!(s.get_user_key("uk_3").await.unwrap(), None, "nothing written");
    let ids = |v: Vec<tollgate_store::UserKeyRecord>| v.into_iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(ids(s.user_keys_of("u1").await.unwrap()), ["uk_2", "uk_1"]);
    assert!(s.user_keys_of("u2").await.unwrap().is_empty());
    s.touch_user_key("uk_1", 40).await.unwrap();
    assert_eq!(
        s.get_user_key("uk_1").await.unwrap().unwrap().last_used_at,
        Some(40)
    );

    // Revoking ends the key's live sessions (by client id) of its user, and nothing else.
    let mut by_key = session("s-key", "u1");
    by_key.client_id = "key:uk_1".into();
    s.create_session(&by_key, &rt(1)).await.unwrap();
    let mut by_key_ended = session("s-key-old", "u1");
    by_key_ended.client_id = "key:uk_1".into();
    s.create_session(&by_key_ended, &rt(2)).await.unwrap();
    assert!(s.revoke_session("s-key-old", "logout", 45).await.unwrap());
    s.create_session(&session("s-browser", "u1"), &rt(3))
        .await
        .unwrap();
    let mut other_user = session("s-other", "u2");
    other_user.client_id = "key:uk_1".into();
    s.create_session(&other_user, &rt(4)).await.unwrap();
    assert_eq!(
        s.revoke_user_key("uk_1", "key:uk_1", "key-revoked", 50)
            .await
            .unwrap(),
        Some(vec!["s-key".to_owned()])
    );
    assert_eq!(
        s.revoke_user_key("uk_1", "key:uk_1", "key-revoked", 51)
            .await
            .unwrap(),
        None,
        "revoked once"
    );
    assert_eq!(
        s.revoke_user_key("uk_nope", "key:uk_nope", "key-revoked", 51)
            .await
            .unwrap(),
        None
    );
    let ended = s.get_session("s-key").await.unwrap().unwrap();
    assert_eq!(
        (ended.revoked_at, ended.revoked_reason.as_deref()),
        (Some(50), Some("key-revoked"))
    );
    let earlier = s.get_session("s-key-old").await.unwrap().unwrap();
    assert_eq!(earlier.revoked_reason.as_deref(), Some("logout"));
    assert!(
        s.get_session("s-browser")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    assert!(
        s.get_session("s-other")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    assert_eq!(
        s.get_user_key("uk_1").await.unwrap().unwrap().revoked_at,
        Some(50)
    );
    // A revoked key frees its place but keeps its thumbprint.
    assert_eq!(
        s.create_user_key(&user_key("uk_3", "u1", "t3", 60), 2)
            .await
            .unwrap(),
        UserKeyCreate::Created
    );
    assert!(matches!(
        s.create_user_key(&user_key("uk_4", "u2", "t1", 60), 2).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn user_key_limit_holds_under_concurrent_registrations(s: Arc<dyn Store>) {
    use tollgate_store::UserKeyCreate;
    s.create_user(&user("u1"), &[]).await.unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.create_user_key(&user_key(&format!("uk_{i}"), "u1", &format!("t{i}"), 10), 3)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            UserKeyCreate::Created => created += 1,
            UserKeyCreate::LimitReached { active } => assert_eq!(active, 3),
        }
    }
    assert_eq!(created, 3);
    assert_eq!(s.user_keys_of("u1").await.unwrap().len(), 3);
}

/// The [`tollgate_store::Ephemeral`] rules, for the SQL backends and Redis alike.
pub(crate) async fn ephemeral_contract(e: Arc<dyn tollgate_store::Ephemeral>) {
    let ns = format!("t{}", uuid_like());
    // Replay: first use wins, later uses lose until the entry's time has passed.
    assert!(e.first_use(&ns, "jti-1", 1_000, 100).await.unwrap());
    assert!(!e.first_use(&ns, "jti-1", 1_000, 200).await.unwrap());
    assert!(e.first_use(&ns, "jti-2", 1_000, 200).await.unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (e, ns) = (e.clone(), ns.clone());
            tokio::spawn(async move { e.first_use(&ns, "jti-race", 1_000, 100).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one of 20 concurrent first uses wins");

    // Documents: create once, compare-and-swap by version.
    let id = format!("d{}", uuid_like());
    e.create_doc(&ns, &id, "v1", 10_000, 100).await.unwrap();
    assert!(matches!(
        e.create_doc(&ns, &id, "again", 10_000, 100).await,
        Err(StoreError::Conflict(_))
    ));
    let d = e.get_doc(&ns, &id).await.unwrap().unwrap();
    assert_eq!((d.ver, d.doc.as_str()), (1, "v1"));
    assert!(e.replace_doc(&ns, &id, 1, "v2").await.unwrap());
    assert!(!e.replace_doc(&ns, &id, 1, "v2-stale").await.unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (e, ns, id) = (e.clone(), ns.clone(), id.clone());
            tokio::spawn(async move { e.replace_doc(&ns, &id, 2, &format!("race-{i}")).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(
        wins, 1,
        "exactly one of 20 concurrent swaps from one version wins"
    );
    assert_eq!(e.get_doc(&ns, &id).await.unwrap().unwrap().ver, 3);
    assert!(e.get_doc(&ns, "nope").await.unwrap().is_none());
    assert!(!e.replace_doc(&ns, "nope", 1, "x").await.unwrap());
}

fn uuid_like() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    t ^ u128::from(std::process::id())
}

async fn ephemeral_state_follows_the_contract(s: Arc<dyn Store>) {
    ephemeral_contract(s.clone()).await;
    // SQL only: expired entries are purged, and an expired replay key can be taken again.
    assert!(s.first_use("p", "k", 150, 100).await.unwrap());
    assert!(
        s.first_use("p", "k", 400, 200).await.unwrap(),
        "expired entry is taken over"
    );
    assert!(s.purge_ephemeral(10_000_000).await.unwrap() >= 1);
}

contract!(
    ca_keys_are_stored_once_as_a_set,
    invites_redeem_once_and_revoke,
    of_concurrent_invite_redemptions_exactly_one_wins,
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
    audit_chain_stays_unbroken_under_concurrent_appends,
    audit_filters_and_cursors,
    audit_batches_chain_like_single_appends_and_are_all_or_nothing,
    orgs_are_found_by_id_or_name_and_names_are_unique,
    external_orgs_bind_once,
    membership_changes_bump_user_ver_and_keep_sessions,
    the_last_owner_stays,
    roles_round_trip_and_held_roles_stay,
    org_service_accounts_are_disabled_together,
    pull_credentials_and_api_keys,
    trust_policies_round_trip_per_org_and_issuer,
    build_sessions_are_limited_per_owner_even_when_opened_concurrently,
    ephemeral_state_follows_the_contract,
    user_keys_are_unique_limited_and_revoked_with_their_sessions,
    user_key_limit_holds_under_concurrent_registrations,
);

/// One sequence of requests, judged the same in process and in Redis: the burst, the
/// refusal with its wait, the next allowed request; keys are independent.
async fn rate_limit_contract(r: &dyn tollgate_store::RateLimits) {
    let g = tollgate_core::ratelimit::Quota::parse("1/s", 3).unwrap().gcra();
    let key = format!("k{}", uuid_like());
    let now = 1_000_000;
    for _ in 0..3 {
        assert_eq!(r.gcra(&key, g, now).await.unwrap(), None);
    }
    assert_eq!(r.gcra(&key, g, now).await.unwrap(), Some(1000));
    assert_eq!(r.gcra(&key, g, now + 400).await.unwrap(), Some(600));
    assert_eq!(r.gcra(&format!("{key}-other"), g, now).await.unwrap(), None);
    assert_eq!(r.gcra(&key, g, now + 1000).await.unwrap(), None);
    assert_eq!(r.gcra(&key, g, now + 1000).await.unwrap(), Some(1000));
}

#[tokio::test]
async fn memory_rate_limits_follow_the_contract() {
    rate_limit_contract(&tollgate_store::MemoryRateLimits::default()).await;
}

#[tokio::test]
async fn redis_rate_limits_follow_the_contract() {
    let Some(url) = tollgate_store::testing::redis_url().await else {
        return;
    };
    let e =
        tollgate_store::RedisEphemeral::connect(&url, "tollgate-test:", std::time::Duration::from_secs(2))
            .await
            .unwrap();
    rate_limit_contract(&e).await;
}

/// The same rules on Redis (127.0.0.1:6379, or `TOLLGATE_TEST_REDIS_URL`).
#[tokio::test]
async fn redis_ephemeral_follows_the_contract() {
    let Some(url) = tollgate_store::testing::redis_url().await else {
        return;
    };
    let e =
        tollgate_store::RedisEphemeral::connect(&url, "tollgate-test:", std::time::Duration::from_secs(2))
            .await
            .unwrap();
    ephemeral_contract(Arc::new(e)).await;
}

#[test]
fn unknown_url_scheme_is_refused_with_a_hint() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let err = rt.block_on(tollgate_store::open("mysql://x")).err().unwrap();
    assert!(err.to_string().contains("sqlite:// or postgres://"), "{err}");
}
