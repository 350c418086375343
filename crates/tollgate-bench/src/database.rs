//! The server's database: SQLite in the temporary data directory, or a schema of its own in
//! a PostgreSQL database, created for the run and dropped after it.
//!
//! `--database postgres://…` names a database, not a schema: the benchmark creates
//! `tg_bench_<random>` in it and points the server at it with `search_path`, so a database
//! that already holds tables (such as the test suite's `test`) is fine, and nothing is left
//! behind when the run ends, whether it succeeds, fails or is interrupted with Ctrl-C.

use anyhow::Context as _;
use sqlx::Connection as _;
use std::fmt;

/// What `--database` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseArg {
    /// SQLite in the server's temporary data directory.
    Sqlite,
    /// A PostgreSQL database, by URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl std::str::FromStr for DatabaseArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "sqlite" {
            return Ok(Self::Sqlite);
        }
        if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
            return Err("expected `sqlite` or a postgres://… URL".to_owned());
        }
        // The benchmark sets `options` itself to choose its schema.
        if s.contains("options=") {
            return Err("the URL must not set `options`: the benchmark sets search_path itself".to_owned());
        }
        Ok(Self::Postgres(s.to_owned()))
    }
}

impl fmt::Display for DatabaseArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite => f.write_str("sqlite"),
            Self::Postgres(url) => f.write_str(url),
        }
    }
}

/// The database of one run.
#[derive(Debug)]
pub enum Database {
    Sqlite,
    /// A schema created for this run in the database at `url`.
    Postgres {
        url: String,
        schema: String,
    },
}

impl Database {
    /// Creates the schema when PostgreSQL is asked for.
    pub async fn prepare(arg: &DatabaseArg) -> anyhow::Result<Self> {
        let DatabaseArg::Postgres(url) = arg else {
            return Ok(Self::Sqlite);
        };
        let mut random = [0u8; 8];
        tollgate_crypto::random_bytes(&mut random);
        let schema = format!(
            "tg_bench_{}",
            random.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
        // The name is ours: `tg_bench_` and hex digits, nothing to quote.
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create schema {schema}"))?;
        conn.close().await.ok();
        Ok(Self::Postgres {
            url: url.clone(),
            schema,
        })
    }

    /// The URL the server opens: `None` for SQLite in its data directory; for PostgreSQL the
    /// given URL with the run's schema as the connections' `search_path`.
    pub fn server_url(&self) -> Option<String> {
        let Self::Postgres { url, schema } = self else {
            return None;
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
    }

    /// What the report says about the database.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite => "SQLite in a temporary directory".to_owned(),
            Self::Postgres { url, schema } => {
                format!("PostgreSQL {url}, schema {schema} (dropped at the end)")
            }
        }
    }

    /// Drops the run's schema and everything in it; call once the server has stopped.
    pub async fn drop_schema(self) {
        let Self::Postgres { url, schema } = self else {
            return;
        };
        let dropped = async {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&mut conn)
                .await?;
            conn.close().await
        };
        match dropped.await {
            Ok(()) => println!("\ndropped schema {schema}"),
            Err(e) => println!(
                "\nwarning: cannot drop schema {schema} ({e}); drop it with: DROP SCHEMA {schema} CASCADE"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_arguments_parse() {
        assert_eq!("sqlite".parse(), Ok(DatabaseArg::Sqlite));
        assert_eq!(
            "postgres://127.0.0.1:5432/test".parse(),
            Ok(DatabaseArg::Postgres("postgres://127.0.0.1:5432/test".to_owned()))
        );
        for bad in [
            "",
            "mysql://x",
            "sqlite://x.db",
            "postgres://h/db?options=-c%20search_path%3Dx",
        ] {
            assert!(bad.parse::<DatabaseArg>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_server_url_selects_the_schema() {
        let db = |url: &str| Database::Postgres {
            url: url.to_owned(),
            schema: "tg_bench_00".to_owned(),
        };
        assert_eq!(
            db("postgres://h/test").server_url().as_deref(),
            Some("postgres://h/test?options=-c%20search_path%3Dtg_bench_00")
        );
        assert_eq!(
            db("postgres://h/test?sslmode=disable").server_url().as_deref(),
            Some("postgres://h/test?sslmode=disable&options=-c%20search_path%3Dtg_bench_00")
        );
        assert_eq!(Database::Sqlite.server_url(), None);
    }
}
