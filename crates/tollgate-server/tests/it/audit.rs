//! The audit trail: filters and cursors, the JSON-lines export, request ids, and the hash
//! chain catching events edited, deleted or reordered directly in the database.

use crate::test_app::TestApp;
use secrecy::ExposeSecret as _;
use std::time::Duration;
use tollgate_core::time::Clock as _;
use tollgate_proto::audit::{AuditEvent, AuditFilter};

fn filter() -> AuditFilter {
    AuditFilter::default()
}

/// Runs SQL against the app's database behind the server's back, as an attacker with
/// database access would.
async fn tamper(app: &TestApp, sql: &str) {
    use sqlx::Connection as _;
    let url = app.state.config.database_url();
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    }
}

/// Every event matching `f`, newest first, page by page.
async fn all_pages(app: &TestApp, mut f: AuditFilter, page: u32) -> (Vec<AuditEvent>, usize) {
    f.limit = Some(page);
    let mut events = Vec::new();
    let mut pages = 0;
    loop {
        let p = app.client.audit_page(&f).await.unwrap();
        assert!(p.events.len() <= page as usize);
        pages += 1;
        events.extend(p.events);
        match p.next_cursor {
            Some(c) => f.cursor = Some(c),
            None => return (events, pages),
        }
    }
}

async fn record(app: &TestApp, actor: &str, action: &str) {
    tollgate_server::audit::record(&app.state, actor, action, None, None, serde_json::json!({}))
        .await
        .unwrap();
}

#[tokio::test]
async fn events_are_filtered_and_paged_with_cursors() {
    let app = TestApp::new().await;
    let start = app.clock.now().0;
    let creds = app.service_account("svc", &["read"], &[]).await;
    app.advance(Duration::from_secs(3600));
    let t = app.token(&creds).await;
    app.client.revoke(&creds, &t).await.unwrap();
    let client_actor = format!("client:{}", creds.client_id);

    let everything = app
        .client
        .audit_page(&AuditFilter {
            limit: Some(1000),
            ..filter()
        })
        .await
        .unwrap();
    assert!(everything.next_cursor.is_none());
    let actions: Vec<_> = everything.events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "token.revoke",
            "token.issue",
            "client.create",
            "admin_token.create"
        ]
    );
    let seqs: Vec<_> = everything.events.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {seqs:?}");
    let issue = &everything.events[1];
    assert_eq!(issue.actor, client_actor);
    assert_eq!(issue.outcome, "success");
    assert!(issue.chain_seq.is_some());
    assert!(time::OffsetDateTime::parse(&issue.time, &time::format_description::well_known::Rfc3339).is_ok());
    assert!(issue.detail.is_object());

    // Pages of one follow each other without gaps or repeats.
    let (paged, pages) = all_pages(&app, filter(), 1).await;
    assert_eq!(pages, 4);
    assert_eq!(paged, everything.events);

    let by_actor = app
        .client
        .audit_page(&AuditFilter {
            actor: Some(client_actor.clone()),
            ..filter()
        })
        .await
        .unwrap();
    assert!(by_actor.events.iter().all(|e| e.actor == client_actor));
    assert_eq!(by_actor.events.len(), 2);

    let actions_of = |f: AuditFilter| {
        let client = app.client.clone();
        async move {
            client
                .audit_page(&f)
                .await
                .unwrap()
                .events
                .into_iter()
                .map(|e| e.action)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        actions_of(AuditFilter {
            action: Some("token.".into()),
            ..filter()
        })
        .await,
        ["token.revoke", "token.issue"]
    );
    assert_eq!(
        actions_of(AuditFilter {
            action: Some("token.issue".into()),
            ..filter()
        })
        .await,
        ["token.issue"]
    );
    assert!(
        actions_of(AuditFilter {
            action: Some("token".into()),
            ..filter()
        })
        .await
        .is_empty(),
        "without a trailing dot the action is exact"
    );
    assert!(
        actions_of(AuditFilter {
            org: Some("org_nobody".into()),
            ..filter()
        })
        .await
        .is_empty()
    );

    // Time ranges, in RFC 3339 or Unix seconds: the client was created an hour before the rest.
    let half_way = start + 1800;
    assert_eq!(
        actions_of(AuditFilter {
            until: Some(tollgate_server::rfc3339(half_way)),
            action: Some("client.create".into()),
            ..filter()
        })
        .await,
        ["client.create"]
    );
    assert_eq!(
        actions_of(AuditFilter {
            since: Some(half_way.to_string()),
            ..filter()
        })
        .await,
        ["token.revoke", "token.issue"]
    );
}

#[tokio::test]
async fn bad_filters_are_invalid_parameters() {
    let app = TestApp::new().await;
    for f in [
        AuditFilter {
            since: Some("yesterday".into()),
            ..filter()
        },
        AuditFilter {
            until: Some("2025-13-01T00:00:00Z".into()),
            ..filter()
        },
        AuditFilter {
            cursor: Some("abc".into()),
            ..filter()
        },
        AuditFilter {
            limit: Some(0),
            ..filter()
        },
        AuditFilter {
            limit: Some(1001),
            ..filter()
        },
        AuditFilter {
            actor: Some(String::new()),
            ..filter()
        },
    ] {
        let err = app.client.audit_page(&f).await.unwrap_err();
        assert_eq!(err.reason(), Some("invalid-parameter"), "{f:?}: {err}");
    }
    let resp = app
        .http
        .get(app.url("/v1/admin/audit?limit=lots"))
        .bearer_auth(app.admin_token.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = app
        .http
        .get(app.url("/v1/admin/audit/export?since=soon"))
        .bearer_auth(app.admin_token.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn export_streams_every_match_as_json_lines_oldest_first() {
    let app = TestApp::new().await;
    // More than one internal page of the export.
    for n in 0..1100 {
        let action = if n % 2 == 0 { "test.even" } else { "test.odd" };
        record(&app, "system", action).await;
    }
    let resp = app
        .http
        .get(app.url("/v1/admin/audit/export?action=test."))
        .bearer_auth(app.admin_token.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let body = resp.text().await.unwrap();
    let events: Vec<AuditEvent> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 1100);
    assert!(body.ends_with('\n'));
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "oldest first");

    let odd = app
        .client
        .audit_export(&AuditFilter {
            action: Some("test.odd".into()),
            ..filter()
        })
        .await
        .unwrap();
    assert_eq!(odd.lines().count(), 550);
    let newest = app
        .client
        .audit_page(&AuditFilter {
            action: Some("test.odd".into()),
            limit: Some(1),
            ..filter()
        })
        .await
        .unwrap();
    let last: AuditEvent = serde_json::from_str(odd.lines().last().unwrap()).unwrap();
    assert_eq!(last, newest.events[0]);
    assert_eq!(
        app.client
            .audit_export(&AuditFilter {
                actor: Some("nobody".into()),
                ..filter()
            })
            .await
            .unwrap(),
        ""
    );
}

#[tokio::test]
async fn events_carry_the_request_id_of_their_request() {
    let app = TestApp::new().await;
    let create = |name: &str, request_id: Option<&str>| {
        let mut req = app
            .http
            .post(app.url("/v1/admin/clients"))
            .bearer_auth(app.admin_token.expose_secret())
            .json(&serde_json::json!({"name": name}));
        if let Some(id) = request_id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    let resp = create("generated", None).await.unwrap();
    assert_eq!(resp.status(), 201);
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let resp = create("given", Some("trace-4711")).await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-4711");

    let events = app
        .client
        .audit_page(&AuditFilter {
            action: Some("client.create".into()),
            ..filter()
        })
        .await
        .unwrap()
        .events;
    let ids: Vec<_> = events.iter().map(|e| e.request_id.as_deref()).collect();
    assert_eq!(ids, [Some("trace-4711"), Some(generated.as_str())]);
    let bootstrap = app
        .client
        .audit_page(&AuditFilter {
            action: Some("admin_token.create".into()),
            ..filter()
        })
        .await
        .unwrap()
        .events;
    assert_eq!(
        bootstrap[0].request_id, None,
        "written at start, outside any request"
    );
}

/// Three client creations after the bootstrap event: chain seqs 1 (bootstrap) to 4.
async fn app_with_chain() -> TestApp {
    let app = TestApp::new().await;
    for name in ["a", "b", "c"] {
        app.service_account(name, &["read"], &[]).await;
    }
    let v = app.client.audit_verify().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!((v.checked, v.first_broken_seq, v.problem), (4, None, None));
    app
}

#[tokio::test]
async fn verify_finds_an_edited_event() {
    let app = app_with_chain().await;
    tamper(
        &app,
        r#"UPDATE audit_events SET detail = '{"name":"innocent"}' WHERE chain_seq = 2"#,
    )
    .await;
    let v = app.client.audit_verify().await.unwrap();
    assert!(!v.ok);
    assert_eq!((v.first_broken_seq, v.checked), (Some(2), 1));
    assert!(v.problem.unwrap().contains("altered"));
    // New events still append; the break stays where it is.
    app.service_account("d", &["read"], &[]).await;
    assert_eq!(app.client.audit_verify().await.unwrap().first_broken_seq, Some(2));
}

#[tokio::test]
async fn verify_finds_a_deleted_event() {
    let app = app_with_chain().await;
    tamper(&app, "DELETE FROM audit_events WHERE chain_seq = 3").await;
    let v = app.client.audit_verify().await.unwrap();
    assert_eq!((v.ok, v.first_broken_seq), (false, Some(3)));
    assert!(v.problem.unwrap().contains("missing"));
}

#[tokio::test]
async fn verify_finds_the_last_event_deleted() {
    let app = app_with_chain().await;
    tamper(&app, "DELETE FROM audit_events WHERE chain_seq = 4").await;
    let v = app.client.audit_verify().await.unwrap();
    assert_eq!((v.ok, v.first_broken_seq, v.checked), (false, Some(4), 3));
}

#[tokio::test]
async fn verify_finds_reordered_events() {
    let app = app_with_chain().await;
    tamper(
        &app,
        "UPDATE audit_events SET chain_seq = -2 WHERE chain_seq = 2; \
         UPDATE audit_events SET chain_seq = 2 WHERE chain_seq = 3; \
         UPDATE audit_events SET chain_seq = 3 WHERE chain_seq = -2",
    )
    .await;
    let v = app.client.audit_verify().await.unwrap();
    assert_eq!((v.ok, v.first_broken_seq), (false, Some(2)));
}

#[tokio::test]
async fn a_forged_chain_without_the_key_does_not_verify() {
    let app = app_with_chain().await;
    // Re-linking the edited event with a key of the attacker's making is not enough.
    let forged = tollgate_server::audit_chain::AuditChain::from_secret(b"attacker");
    let chain = app.state.store.audit_chain(0, 10).await.unwrap();
    let mut edited = chain[1].event.clone();
    edited.detail = r#"{"name":"innocent"}"#.into();
    let prev: [u8; 32] = chain[1].prev_hash.clone().unwrap().try_into().unwrap();
    let hash = forged.link(&tollgate_store::ChainInput {
        seq: 2,
        prev_hash: &prev,
        event: &edited,
    });
    tamper(
        &app,
        &format!(
            "UPDATE audit_events SET detail = '{}', hash = {} WHERE chain_seq = 2",
            edited.detail,
            hex_literal(&app, &hash)
        ),
    )
    .await;
    let v = app.client.audit_verify().await.unwrap();
    assert_eq!((v.ok, v.first_broken_seq), (false, Some(2)));
}

fn hex_literal(app: &TestApp, bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if app.state.config.database_url().starts_with("sqlite:") {
        format!("X'{hex}'")
    } else {
        format!("'\\x{hex}'::bytea")
    }
}
