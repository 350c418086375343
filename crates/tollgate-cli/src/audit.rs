//! `tollgate audit verify` (offline, against the database and the master key) and
//! `tollgate admin audit` (through the SDK).

use anyhow::Context as _;
use clap::Subcommand;
use std::path::PathBuf;
use tollgate_client::Client;
use tollgate_proto::audit::{AuditFilter, AuditVerification};
use tollgate_server::{Config, data_dir};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the audit hash chain in the database directly, without a running server.
    /// Prints the result as JSON; exits 1 if any event was altered, deleted or reordered.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Configuration file (TOML); TOLLGATE_* environment variables override it.
    #[arg(long, short, env = "TOLLGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (SQLite database, master key file). Overrides the config.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// `tollgate admin audit`: filters of `GET /v1/admin/audit`.
#[derive(Debug, clap::Args)]
pub struct AdminAuditArgs {
    /// Only events of this org.
    #[arg(long)]
    org: Option<String>,
    /// Only events of this actor (`admin:…`, `client:…`, …).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action, or every action with this prefix when it ends with `.` (`token.`).
    #[arg(long)]
    action: Option<String>,
    /// Only events at or after this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    since: Option<String>,
    /// Only events before this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    until: Option<String>,
    /// At most this many events, newest first (1–1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Continue after an earlier page (its `next_cursor`).
    #[arg(long)]
    cursor: Option<String>,
    /// Print every matching event, oldest first, one JSON object per line.
    #[arg(long, conflicts_with_all = ["limit", "cursor"])]
    jsonl: bool,
}

pub async fn admin_audit(c: &Client, args: AdminAuditArgs) -> anyhow::Result<()> {
    let mut filter = AuditFilter {
        org: args.org,
        actor: args.actor,
        action: args.action,
        since: args.since,
        until: args.until,
        cursor: None,
        limit: None,
    };
    if args.jsonl {
        print!("{}", c.audit_export(&filter).await?);
    } else {
        filter.limit = Some(args.limit);
        filter.cursor = args.cursor;
        println!("{}", serde_json::to_string_pretty(&c.audit_page(&filter).await?)?);
    }
    Ok(())
}

/// Runs `tollgate audit verify`; `Ok(false)` when the chain is broken.
pub async fn run(command: AuditCommand) -> anyhow::Result<bool> {
    let AuditCommand::Verify(args) = command;
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = args.data_dir {
        config.server.data_dir = dir;
    }
    let dir = &config.server.data_dir;
    let master_env = std::env::var("TOLLGATE_MASTER_KEY").ok();
    // Verification only reads: never create a master key or a database.
    if master_env.is_none() && !dir.join("master.key").is_file() {
        anyhow::bail!(
            "no master key: set TOLLGATE_MASTER_KEY or point --data-dir at the directory holding master.key"
        );
    }
    let master = data_dir::load_or_create_master_key(dir, master_env.as_deref())?;
    let url = config.database_url();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        anyhow::ensure!(std::path::Path::new(path).is_file(), "no database at {path}");
    }
    let v = tollgate_server::audit_chain::verify_database(&url, &master)
        .await
        .context("cannot verify the audit chain")?;
    let ok = v.ok;
    let wire = AuditVerification::from(v);
    println!("{}", serde_json::to_string_pretty(&wire)?);
    if !ok {
        eprintln!(
            "audit chain BROKEN at seq {}: {}",
            wire.first_broken_seq.unwrap_or_default(),
            wire.problem.as_deref().unwrap_or("unknown problem")
        );
    }
    Ok(ok)
}
