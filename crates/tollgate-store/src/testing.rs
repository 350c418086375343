//! Test support: fresh, isolated databases for each test (feature `test-support`).
//!
//! PostgreSQL tests get their own schema in the database named by
//! `TOLLGATE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), so
//! tests run in parallel without seeing each other. When PostgreSQL is unreachable the
//! tests are skipped with a message, except under `CI=true`, where that is a failure.

use std::path::Path;

/// The PostgreSQL server tests use.
#[must_use]
pub fn postgres_base_url() -> String {
    std::env::var("TOLLGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Creates a new schema and returns a URL whose connections use it, or `None` (skip) when
/// PostgreSQL is unreachable outside CI.
///
/// # Panics
/// Under `CI=true` when PostgreSQL is unreachable: a missing service must fail CI.
pub async fn fresh_postgres_url() -> Option<String> {
    use sqlx::Connection as _;
    let base = postgres_base_url();
    let mut conn = match sqlx::PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) if !in_ci() => {
            tracing::warn!("skipping PostgreSQL test: cannot connect to {base}: {e}");
            #[allow(clippy::print_stderr)]
            {
                eprintln!("SKIP: PostgreSQL unreachable at {base} ({e}); set CI=true to make this a failure");
            }
            return None;
        }
        Err(e) => panic!("CI=true and PostgreSQL is unreachable at {base}: {e}"),
    };
    let schema = format!("tg_test_{}", uuid::Uuid::new_v4().simple());
    #[allow(clippy::expect_used)]
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .expect("create test schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// A SQLite URL for a database file inside `dir`.
#[must_use]
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("tollgate.db").display())
}

/// The Redis server tests use (`TOLLGATE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`),
/// or `None` (skip) when it does not answer outside CI.
///
/// # Panics
/// Under `CI=true` when Redis is unreachable: a missing service must fail CI.
pub async fn redis_url() -> Option<String> {
    let url =
        std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    match crate::RedisEphemeral::connect(&url, "tollgate-test:", std::time::Duration::from_secs(2)).await {
        Ok(_) => Some(url),
        Err(e) if !in_ci() => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("SKIP: Redis unreachable at {url} ({e}); set CI=true to make this a failure");
            }
            None
        }
        Err(e) => panic!("CI=true and Redis is unreachable at {url}: {e}"),
    }
}
