//! `tollgate publish …`: the combined publish flow (docs/ci.md). The user's side — `init`,
//! `wait`, `status`, `finalize` — with their access token (`--token` / `TOLLGATE_TOKEN`),
//! and the CI job's side — `runner attest|combined|status|finalize` — with the job's OIDC
//! token and then the runner secret (`--runner-secret` / `TOLLGATE_RUNNER_SECRET`).

use crate::admin::{print_json, print_text};
use crate::org::{explain, read_input};
use anyhow::{Context as _, bail};
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant, SystemTime};
use tollgate_client::Client;
use tollgate_proto::ci::{
    PublishAttestRequest, PublishFinalizeRequest, PublishInitRequest, PublishInitResponse,
    PublishSessionInfo, PublishStatusRequest, PublishStatusUpdate,
};

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Base URL of the tollgate server.
    #[arg(
        long,
        env = "TOLLGATE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// Your access token for tollgate's API (audience `tollgate`), exchanged into the org
    /// that publishes (`org=<name>`). Not needed by `publish runner …`.
    #[arg(long, env = "TOLLGATE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: PublishCommand,
}

/// How a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The state `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Until {
    /// A CI job proved it may publish the package.
    Attested,
    /// The CI job fetched its combined token.
    TokenIssued,
    /// The session ended (exit 0 only if it succeeded).
    Finalized,
}

/// How far a session state is along `pending → attested → token-issued → finalized`.
fn rank(state: &str) -> u8 {
    match state {
        "attested" => 1,
        "token-issued" => 2,
        "finalized" => 3,
        _ => 0,
    }
}

impl Until {
    fn rank(self) -> u8 {
        match self {
            Until::Attested => 1,
            Until::TokenIssued => 2,
            Until::Finalized => 3,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum PublishCommand {
    /// Start a publish session; prints the session id and the nonce for the CI job.
    Init {
        /// The package (or other target) to publish; a trust policy's `grant.publish` must
        /// allow it.
        #[arg(long)]
        package: String,
        /// The version to publish.
        #[arg(long = "version", value_name = "VERSION")]
        package_version: String,
        /// The workflow the hint starts (`gh workflow run <WORKFLOW>`).
        #[arg(long, default_value = "publish.yml")]
        workflow: String,
        /// The repository the hint names (`gh … -R OWNER/REPO`); default: gh's current one.
        #[arg(long, value_name = "OWNER/REPO")]
        repo: Option<String>,
        /// The branch or tag the hint runs the workflow on (`gh … --ref REF`).
        #[arg(long = "ref", value_name = "REF")]
        git_ref: Option<String>,
        /// Print the session as JSON (the hint goes to standard error).
        #[arg(long)]
        json: bool,
    },
    /// Follow a session until it is finalized (or `--until` an earlier state), printing each
    /// progress report. Exits 0 when it succeeded (or reached `--until`), 1 otherwise.
    Wait {
        #[arg(value_parser = session_id)]
        session_id: String,
        /// Give up after this long (e.g. 90s, 10m).
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[arg(long, value_enum, default_value_t = Until::Finalized)]
        until: Until,
    },
    /// Show a session: state, the CI job that attested, progress reports, outcome.
    Status {
        #[arg(value_parser = session_id)]
        session_id: String,
        #[arg(long)]
        json: bool,
    },
    /// End a session as its user (once): `succeeded` needs an attested session.
    Finalize {
        #[arg(value_parser = session_id)]
        session_id: String,
        #[arg(long, value_enum)]
        outcome: Outcome,
        #[arg(long, default_value = "")]
        message: String,
        #[arg(long)]
        json: bool,
    },
    /// The CI job's side of the flow (inside the job).
    Runner {
        #[command(subcommand)]
        command: RunnerCommand,
    },
}

/// A session id as `init` printed it (`ps_…`); surrounding blanks are dropped.
fn session_id(arg: &str) -> Result<String, String> {
    let id = arg.trim();
    if id.is_empty() {
        return Err("the session id is empty; pass the `ps_…` id `tollgate publish init` printed".into());
    }
    Ok(id.to_owned())
}

/// The secret `runner attest` printed.
#[derive(Debug, clap::Args)]
pub struct RunnerSecret {
    /// The runner secret (`tg_pr_…`) from `runner attest`.
    #[arg(long, env = "TOLLGATE_RUNNER_SECRET", hide_env_values = true)]
    runner_secret: String,
}

/// Where the job's OIDC token comes from.
#[derive(Debug, clap::Args)]
pub struct OidcToken {
    /// A file holding the job's OIDC token (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    oidc_token_file: Option<String>,
    /// The job's OIDC token; prefer the environment variable (GitLab: `id_tokens:
    /// TOLLGATE_ID_TOKEN`). `--oidc-token-file` wins over it.
    #[arg(long, env = "TOLLGATE_ID_TOKEN", hide_env_values = true)]
    oidc_token: Option<String>,
}

impl OidcToken {
    fn read(&self) -> anyhow::Result<String> {
        let token = match (&self.oidc_token_file, &self.oidc_token) {
            (Some(file), _) => read_input(file)?,
            (None, Some(token)) => token.clone(),
            (None, None) => bail!("no OIDC token: pass --oidc-token-file FILE or set TOLLGATE_ID_TOKEN"),
        };
        let token = token.trim();
        if token.is_empty() {
            bail!("the OIDC token is empty");
        }
        Ok(token.to_owned())
    }
}

#[derive(Debug, Subcommand)]
pub enum RunnerCommand {
    /// Prove this job may publish the session's package (its OIDC token must match a trust
    /// policy); prints the runner secret for the other runner steps.
    Attest {
        #[arg(value_parser = session_id)]
        session_id: String,
        /// The nonce `publish init` printed (it may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        nonce: String,
        #[command(flatten)]
        oidc: OidcToken,
        /// Print the whole answer as JSON instead of the secret alone.
        #[arg(long)]
        json: bool,
    },
    /// Fetch the combined publish token (once per session); prints the token.
    Combined {
        #[arg(value_parser = session_id)]
        session_id: String,
        #[command(flatten)]
        secret: RunnerSecret,
        /// Print the whole answer as JSON instead of the token alone.
        #[arg(long)]
        json: bool,
    },
    /// Report progress to the user (`building`, `uploading`, …).
    Status {
        #[arg(value_parser = session_id)]
        session_id: String,
        /// A short word, at most 64 characters.
        status: String,
        #[arg(long, default_value = "")]
        message: String,
        #[command(flatten)]
        secret: RunnerSecret,
    },
    /// End the session (once).
    Finalize {
        #[arg(value_parser = session_id)]
        session_id: String,
        #[arg(long, value_enum)]
        outcome: Outcome,
        #[arg(long, default_value = "")]
        message: String,
        #[command(flatten)]
        secret: RunnerSecret,
    },
}

pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    let c = Client::new(&args.url)?;
    let user = || -> anyhow::Result<Client> {
        let Some(token) = &args.token else {
            bail!(
                "no access token: pass --token or set TOLLGATE_TOKEN (a token for audience `tollgate`, \
                 exchanged with org=<name>)"
            )
        };
        Ok(c.clone().with_user_token(token.clone()))
    };
    match args.command {
        PublishCommand::Init {
            package,
            package_version,
            workflow,
            repo,
            git_ref,
            json,
        } => {
            let req = PublishInitRequest {
                package,
                version: package_version,
            };
            let started = user()?
                .publish_init(&req)
                .await
                .context("cannot start a publish session")?;
            let hint = hint(&started, &workflow, repo.as_deref(), git_ref.as_deref());
            if json {
                print_json(&started)?;
                eprint!("{hint}");
                Ok(())
            } else {
                let mut out = String::new();
                let _ = writeln!(out, "session_id  {}", started.session_id);
                let _ = writeln!(out, "nonce       {}", started.nonce);
                let _ = writeln!(out, "expires_at  {}\n", started.expires_at);
                out.push_str(&hint);
                print_text(&out)
            }
        }
        PublishCommand::Wait {
            session_id,
            timeout,
            until,
        } => wait(&user()?, &session_id, timeout, until).await,
        PublishCommand::Status { session_id, json } => {
            let s = user()?
                .publish_session(&session_id)
                .await
                .context("cannot read the publish session")?;
            if json {
                print_json(&s)
            } else {
                print_text(&describe(&s))
            }
        }
        PublishCommand::Finalize {
            session_id,
            outcome,
            message,
            json,
        } => {
            let req = PublishFinalizeRequest {
                session_id,
                outcome: outcome.as_str().to_owned(),
                message,
            };
            let s = user()?
                .publish_finalize(&req, None)
                .await
                .context("cannot finalize the publish session")?;
            if json {
                print_json(&s)
            } else {
                print_text(&describe(&s))
            }
        }
        PublishCommand::Runner { command } => runner(&c, command).await,
    }
}

/// Quotes `s` for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/@:=+,".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How to start the CI job with the session and follow it.
fn hint(started: &PublishInitResponse, workflow: &str, repo: Option<&str>, git_ref: Option<&str>) -> String {
    let mut gh = format!("gh workflow run {}", shell_quote(workflow));
    if let Some(r) = repo {
        let _ = write!(gh, " -R {}", shell_quote(r));
    }
    if let Some(r) = git_ref {
        let _ = write!(gh, " --ref {}", shell_quote(r));
    }
    let _ = write!(
        gh,
        " -f session_id={} -f nonce={}",
        shell_quote(&started.session_id),
        shell_quote(&started.nonce)
    );
    format!(
        "Start the CI job with the session (the nonce is for that job only):\n  {gh}\n\
         Then follow it:\n  tollgate publish wait {}\n",
        started.session_id
    )
}

/// Whether the session ran out of time before it was finalized (by this machine's clock).
fn expired(s: &PublishSessionInfo) -> bool {
    // The server says so by its own clock; the local clock also covers the time between polls.
    s.expired
        || (s.state != "finalized"
            && humantime::parse_rfc3339(&s.expires_at).is_ok_and(|at| SystemTime::now() >= at))
}

/// The CI job that attested, in a few words: `acme/app@refs/tags/v1 (policy release, run 42)`.
fn workload_summary(s: &PublishSessionInfo) -> String {
    let Some(w) = &s.workload else {
        return "no CI job yet".into();
    };
    let get = |k: &str| w.get(k).map(String::as_str);
    let who = match (get("repository"), get("ref")) {
        (Some(r), Some(git_ref)) => format!("{r}@{git_ref}"),
        (Some(r), None) => r.to_owned(),
        _ => get("subject").unwrap_or("?").to_owned(),
    };
    let mut details = vec![format!("policy {}", get("policy").unwrap_or("?"))];
    if let Some(run) = get("run_id") {
        details.push(format!("run {run}"));
    }
    format!("{who} ({})", details.join(", "))
}

fn update_line(u: &PublishStatusUpdate) -> String {
    if u.message.is_empty() {
        format!("{}  {}", u.at, u.status)
    } else {
        format!("{}  {}: {}", u.at, u.status, u.message)
    }
}

/// A session for people.
fn describe(s: &PublishSessionInfo) -> String {
    const W: usize = 9;
    let mut out = String::new();
    let mut row = |k: &str, v: &str| {
        let _ = writeln!(out, "{k:<W$} {v}");
    };
    row("session", &s.session_id);
    row("package", &format!("{} {}", s.package, s.version));
    row("user", &s.user);
    if let Some(org) = &s.org {
        row("org", org);
    }
    row("state", &s.state);
    let expires = if expired(s) {
        format!("{} (expired)", s.expires_at)
    } else {
        s.expires_at.clone()
    };
    row("expires", &expires);
    if let Some(o) = &s.outcome {
        let by = s.finalized_by.as_deref().unwrap_or("?");
        row("outcome", &format!("{o} (by {by})"));
    }
    match &s.workload {
        None => row("workload", "none yet (waiting for the CI job to attest)"),
        Some(w) => {
            let width = w.keys().map(String::len).max().unwrap_or(0);
            for (i, (k, v)) in w.iter().enumerate() {
                let label = if i == 0 { "workload" } else { "" };
                row(label, &format!("{k:<width$}  {v}"));
            }
        }
    }
    if s.status.is_empty() {
        row("status", "no progress reported");
    }
    for (i, u) in s.status.iter().enumerate() {
        row(if i == 0 { "status" } else { "" }, &update_line(u));
    }
    out
}

/// What `wait` has shown so far.
#[derive(Default)]
struct Shown {
    state: Option<String>,
    last_update: Option<PublishStatusUpdate>,
}

impl Shown {
    /// The lines `s` adds to what was shown: a state change, then new progress reports,
    /// then the outcome.
    fn news(&mut self, s: &PublishSessionInfo) -> Vec<String> {
        let mut lines = Vec::new();
        let changed = self.state.as_deref() != Some(s.state.as_str());
        if changed {
            match s.state.as_str() {
                "pending" => lines.push(format!(
                    "{}: {} {}, pending: waiting for the CI job (expires {})",
                    s.session_id, s.package, s.version, s.expires_at
                )),
                "finalized" => {
                    let before = self.state.as_deref().map(rank);
                    if before == Some(0) && s.workload.is_some() {
                        lines.push(format!("attested: CI job {}", workload_summary(s)));
                    }
                }
                "attested" | "token-issued" if self.state.is_none() => lines.push(format!(
                    "{}: {} {}, {}: CI job {}",
                    s.session_id,
                    s.package,
                    s.version,
                    s.state,
                    workload_summary(s)
                )),
                "attested" => lines.push(format!("attested: CI job {}", workload_summary(s))),
                "token-issued" => {
                    if rank(self.state.as_deref().unwrap_or("pending")) < 1 {
                        lines.push(format!("attested: CI job {}", workload_summary(s)));
                    }
                    lines.push("token-issued: the CI job has its combined publish token".into());
                }
                other => lines.push(format!("state: {other}")),
            }
        }
        let start = self
            .last_update
            .as_ref()
            .and_then(|last| s.status.iter().rposition(|u| u == last))
            .map_or(0, |i| i + 1);
        for u in &s.status[start..] {
            lines.push(format!("  {}", update_line(u)));
        }
        self.last_update = s.status.last().cloned().or(self.last_update.take());
        if changed && s.state == "finalized" {
            if self.state.is_none() {
                lines.insert(0, format!("{}: {} {}", s.session_id, s.package, s.version));
            }
            let outcome = s.outcome.as_deref().unwrap_or("?");
            let by = s.finalized_by.as_deref().unwrap_or("?");
            lines.push(format!("finalized: {outcome} (by {by})"));
        }
        self.state = Some(s.state.clone());
        lines
    }
}

fn spinner() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    }
    let pb = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        pb.set_style(style);
    }
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// The first poll comes at once, then after 1 s, growing ×1.5 up to 10 s.
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(10);

async fn wait(c: &Client, id: &str, timeout: Duration, until: Until) -> anyhow::Result<()> {
    let pb = spinner();
    let result = poll(c, id, timeout, until, &pb).await;
    pb.finish_and_clear();
    result
}

async fn poll(c: &Client, id: &str, timeout: Duration, until: Until, pb: &ProgressBar) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut delay = FIRST_DELAY;
    let mut shown = Shown::default();
    loop {
        match c.publish_session(id).await {
            Ok(s) => {
                let lines = shown.news(&s);
                if !lines.is_empty() {
                    let text = lines.join("\n") + "\n";
                    pb.suspend(|| print_text(&text))?;
                }
                if s.state == "finalized" {
                    return if s.outcome.as_deref() == Some("succeeded") {
                        Ok(())
                    } else {
                        Err(crate::Failed.into())
                    };
                }
                if rank(&s.state) >= until.rank() {
                    return Ok(());
                }
                if expired(&s) {
                    bail!(
                        "publish-session-expired: session {id} expired at {} while {}; start a new one \
                         with `tollgate publish init`",
                        s.expires_at,
                        s.state
                    );
                }
                pb.set_message(match s.state.as_str() {
                    "pending" => format!("{id}: pending, waiting for the CI job to attest"),
                    state => format!("{id}: {state}, waiting for the CI job to finish"),
                });
            }
            // The server or the network may come back: keep polling until the deadline.
            Err(e @ tollgate_client::Error::Transport(_)) => {
                pb.set_message(format!("{id}: cannot reach tollgate ({e}); retrying"));
            }
            Err(e) => return Err(e).context(format!("cannot read publish session {id}")),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let state = shown.state.as_deref().unwrap_or("unknown");
            bail!(
                "timed out after {} waiting for session {id} (still {state})",
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(delay.min(left)).await;
        delay = delay.mul_f64(1.5).min(MAX_DELAY);
    }
}

async fn runner(c: &Client, command: RunnerCommand) -> anyhow::Result<()> {
    match command {
        RunnerCommand::Attest {
            session_id,
            nonce,
            oidc,
            json,
        } => {
            let req = PublishAttestRequest {
                session_id,
                nonce,
                token: oidc.read()?,
            };
            let attested = match c.publish_attest(&req).await {
                Ok(a) => a,
                Err(e) => {
                    // policy-denied carries every policy's verdict: show it as a table.
                    if let tollgate_client::Error::Refused { body, .. } = &e {
                        if let Some(evaluation) = &body.policies {
                            eprint!("{}", explain(evaluation));
                        }
                    }
                    return Err(e).context("the attestation was refused");
                }
            };
            eprintln!("attested under trust policy {}", attested.policy);
            if json {
                print_json(&attested)
            } else {
                print_text(&format!("{}\n", attested.runner_secret))
            }
        }
        RunnerCommand::Combined {
            session_id,
            secret,
            json,
        } => {
            let combined = c
                .publish_combined(&session_id, &secret.runner_secret)
                .await
                .context("cannot get the combined publish token")?;
            if json {
                print_json(&combined)
            } else {
                eprintln!(
                    "combined token for audience {}, valid {}s",
                    combined.audience, combined.expires_in
                );
                print_text(&format!("{}\n", combined.token))
            }
        }
        RunnerCommand::Status {
            session_id,
            status,
            message,
            secret,
        } => {
            let req = PublishStatusRequest {
                session_id,
                status,
                message,
            };
            let s = c
                .publish_status(&req, &secret.runner_secret)
                .await
                .context("cannot report progress")?;
            let n = s.status.len();
            let plural = if n == 1 { "" } else { "s" };
            eprintln!("{}: {}, {n} progress report{plural}", s.session_id, s.state);
            Ok(())
        }
        RunnerCommand::Finalize {
            session_id,
            outcome,
            message,
            secret,
        } => {
            let req = PublishFinalizeRequest {
                session_id,
                outcome: outcome.as_str().to_owned(),
                message,
            };
            let s = c
                .publish_finalize(&req, Some(&secret.runner_secret))
                .await
                .context("cannot finalize the publish session")?;
            eprintln!(
                "{}: finalized, {}",
                s.session_id,
                s.outcome.as_deref().unwrap_or("?")
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(state: &str, status: &[&str]) -> PublishSessionInfo {
        PublishSessionInfo {
            session_id: "ps_1".into(),
            package: "acme-cli".into(),
            version: "1.0.0".into(),
            user: "usr_1".into(),
            org: None,
            state: state.into(),
            expired: false,
            expires_at: "2999-01-01T00:00:00Z".into(),
            workload: (rank(state) >= 1).then(|| {
                [
                    ("repository", "acme/app"),
                    ("ref", "refs/tags/v1"),
                    ("policy", "release"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
            }),
            status: status
                .iter()
                .map(|s| PublishStatusUpdate {
                    at: "2999-01-01T00:00:00Z".into(),
                    status: (*s).into(),
                    message: String::new(),
                })
                .collect(),
            outcome: (state == "finalized").then(|| "succeeded".into()),
            finalized_by: (state == "finalized").then(|| "runner".into()),
        }
    }

    #[test]
    fn wait_prints_each_change_and_report_once() {
        let mut shown = Shown::default();
        assert_eq!(shown.news(&session("pending", &[])).len(), 1);
        assert!(shown.news(&session("pending", &[])).is_empty());
        let lines = shown.news(&session("token-issued", &["building"]));
        assert!(lines[0].starts_with("attested: CI job acme/app@refs/tags/v1 (policy release)"));
        assert!(lines[1].starts_with("token-issued"));
        assert!(lines[2].ends_with("building"));
        let lines = shown.news(&session("finalized", &["building", "uploading"]));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with("uploading"));
        assert_eq!(lines[1], "finalized: succeeded (by runner)");
    }

    #[test]
    fn hints_quote_what_a_shell_would_split() {
        let started = PublishInitResponse {
            session_id: "ps_ab".into(),
            nonce: "n-_1".into(),
            expires_at: String::new(),
        };
        let h = hint(&started, "my publish.yml", Some("acme/app"), Some("v1.2"));
        assert!(
            h.contains(
                "gh workflow run 'my publish.yml' -R acme/app --ref v1.2 -f session_id=ps_ab -f nonce=n-_1"
            ),
            "{h}"
        );
    }
}
