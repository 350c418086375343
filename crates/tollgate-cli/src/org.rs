//! `tollgate admin org …`: orgs, members, roles, service accounts, sessions and the trust
//! policies of CI workloads, as an operator (with the admin token) through the SDK.

use crate::admin::{NewClientArgs, print_created, print_json, print_text, split_iss};
use anyhow::{Context as _, bail};
use clap::Subcommand;
use std::fmt::Write as _;
use tollgate_client::Client;
use tollgate_proto::ci::{PolicyEvaluation, TrustPolicySpec};
use tollgate_proto::orgs::{CreateOrgRequest, ExternalOrgId, PutRoleRequest};

/// `ORG` is an org's id (`org_…`) or its name.
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an org, optionally with its first owner.
    Create {
        /// 2–63 characters of a–z 0–9 -, starting with a letter.
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        /// A user id to make the first owner.
        #[arg(long, value_name = "USER_ID")]
        owner: Option<String>,
        /// An issuer name that may sign in to the org; repeat. Without it: every enabled issuer.
        #[arg(long = "issuer", value_name = "NAME")]
        issuers: Vec<String>,
        /// No issuer may sign in (nobody can exchange into the org until `issuers` is set).
        #[arg(long, conflicts_with = "issuers")]
        no_issuers: bool,
    },
    List,
    Show {
        org: String,
    },
    /// Set which issuers may sign in to the org.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["names", "all", "none"]))]
    Issuers {
        org: String,
        /// Issuer names.
        names: Vec<String>,
        /// Every enabled issuer.
        #[arg(long)]
        all: bool,
        /// No issuer (nobody can exchange into the org).
        #[arg(long)]
        none: bool,
    },
    /// Bind an upstream org id (e.g. a Clerk `org_…`) of issuer ISS to the org.
    Bind {
        org: String,
        #[arg(value_name = "ISS=EXTERNAL_ID")]
        external: String,
    },
    /// Remove a binding made with `bind`.
    Unbind {
        org: String,
        #[arg(value_name = "ISS=EXTERNAL_ID")]
        external: String,
    },
    /// Members and their roles.
    Members {
        org: String,
    },
    /// Add a member or replace their roles (built-in `owner`, `admin`, `member`, `viewer`, or custom).
    MemberSet {
        org: String,
        user_id: String,
        #[arg(required = true)]
        roles: Vec<String>,
    },
    MemberRemove {
        org: String,
        user_id: String,
    },
    /// Built-in and custom roles with their permissions.
    Roles {
        org: String,
    },
    /// Create or replace a custom role.
    RolePut {
        org: String,
        name: String,
        /// Permissions (`registry:push`), wildcards (`certificate:sign:*`) or `*`.
        #[arg(required = true)]
        permissions: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    RoleDelete {
        org: String,
        name: String,
    },
    ServiceAccounts {
        org: String,
    },
    /// Create a service account of the org; prints its secret once.
    ServiceAccountCreate {
        org: String,
        #[command(flatten)]
        account: NewClientArgs,
    },
    /// Disable every service account of the org.
    RevokeServiceAccounts {
        org: String,
    },
    /// The org's sessions (refresh-token families), newest first.
    Sessions {
        org: String,
    },
    /// End one session (by its `ses_…` id).
    RevokeSession {
        org: String,
        session: String,
    },
    /// Trust policies: which CI jobs (GitHub Actions, GitLab CI) get which credentials.
    TrustPolicy {
        #[command(subcommand)]
        command: TrustPolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustPolicyCommand {
    /// The org's trust policies.
    List { org: String },
    /// One trust policy.
    Get { org: String, name: String },
    /// Create or replace a trust policy from a JSON file (the output of `get` is accepted too).
    Put {
        org: String,
        /// 1–64 characters of A–Z a–z 0–9 . _ -
        name: String,
        /// The policy as JSON: {"issuer", "conditions", "grant", "max_ttl", …}; `-` reads
        /// standard input.
        #[arg(long, short, value_name = "FILE")]
        file: String,
    },
    /// Delete a trust policy.
    Delete { org: String, name: String },
    /// Dry run: how the org's policies judge a CI job's OIDC token (the token stays usable).
    /// Exits 1 when no policy matches.
    Evaluate {
        org: String,
        /// A file holding the CI token (`-`: standard input).
        #[arg(long, value_name = "FILE")]
        token_file: String,
        /// Print the evaluation as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Reads a whole file, or standard input for `-`.
pub(crate) fn read_input(path: &str) -> anyhow::Result<String> {
    if path == "-" {
        return std::io::read_to_string(std::io::stdin()).context("cannot read standard input");
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
}

/// A policy file: a `TrustPolicySpec`, or a stored policy as `get` prints it (its `org`,
/// `name` and timestamps are dropped; the name on the command line counts).
fn read_policy(path: &str, name: &str) -> anyhow::Result<TrustPolicySpec> {
    if path.ends_with(".toml") {
        bail!("{path}: trust policies are read as JSON; TOML is not supported");
    }
    let text = read_input(path)?;
    let mut value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))?;
    if let Some(fields) = value.as_object_mut() {
        if let Some(other) = fields.get("name").and_then(|n| n.as_str()) {
            if other != name {
                bail!("{path} is the policy `{other}`, not `{name}`; remove its `name` or use that name");
            }
        }
        for stored in ["org", "name", "created_at", "updated_at"] {
            fields.remove(stored);
        }
    }
    serde_json::from_value(value).with_context(|| format!("{path} is not a trust policy"))
}

/// Left-aligned columns separated by two spaces.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// An evaluation for people: the workload as read from the token, then one row per policy
/// with the condition that failed, what it expected and what the token has.
pub(crate) fn explain(e: &PolicyEvaluation) -> String {
    let mut out = String::from("workload (as read from the token):\n");
    let width = e.workload.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in &e.workload {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
    out.push('\n');
    if e.outcomes.is_empty() {
        out.push_str("no trust policy names this token's issuer; nothing is trusted by default\n");
        return out;
    }
    let rows: Vec<Vec<String>> = e
        .outcomes
        .iter()
        .map(|o| {
            let (claim, expected, actual) = match &o.failed {
                Some(f) => (
                    f.claim.clone(),
                    f.expected.clone(),
                    f.actual.clone().unwrap_or_else(|| "(no such claim)".into()),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let matched = if o.matched { "yes" } else { "no" };
            vec![o.policy.clone(), matched.into(), claim, expected, actual]
        })
        .collect();
    out.push_str(&table(
        &["POLICY", "MATCHED", "CLAIM", "EXPECTED", "ACTUAL"],
        &rows,
    ));
    match &e.chosen {
        Some(p) => {
            let _ = writeln!(out, "\nchosen: {p}");
        }
        None if e.outcomes.iter().any(|o| o.matched) => {
            out.push_str("\nno policy chosen: policies of several orgs match\n");
        }
        None => out.push_str("\nno policy matches: the token would be refused (policy-denied)\n"),
    }
    out
}

async fn trust_policy(c: &Client, command: TrustPolicyCommand) -> anyhow::Result<()> {
    match command {
        TrustPolicyCommand::List { org } => print_json(&c.trust_policies(&org).await?),
        TrustPolicyCommand::Get { org, name } => print_json(&c.trust_policy(&org, &name).await?),
        TrustPolicyCommand::Put { org, name, file } => {
            let spec = read_policy(&file, &name)?;
            let stored = c
                .put_trust_policy(&org, &name, &spec)
                .await
                .with_context(|| format!("cannot store trust policy `{name}`"))?;
            print_json(&stored)
        }
        TrustPolicyCommand::Delete { org, name } => {
            c.delete_trust_policy(&org, &name).await?;
            println!("deleted {name}");
            Ok(())
        }
        TrustPolicyCommand::Evaluate {
            org,
            token_file,
            json,
        } => {
            if evaluate(c, &org, &token_file, json).await? {
                Ok(())
            } else {
                Err(crate::Failed.into())
            }
        }
    }
}

/// `trust-policy evaluate`: whether a policy was chosen.
async fn evaluate(c: &Client, org: &str, token_file: &str, json: bool) -> anyhow::Result<bool> {
    let token = read_input(token_file)?;
    let token = token.trim();
    if token.is_empty() {
        bail!("{token_file} holds no token");
    }
    let evaluation = c
        .evaluate_trust_policies(org, token)
        .await
        .context("cannot evaluate the trust policies")?;
    if json {
        print_json(&evaluation)?;
    } else {
        print_text(&explain(&evaluation))?;
    }
    Ok(evaluation.chosen.is_some())
}

fn external(arg: &str) -> anyhow::Result<ExternalOrgId> {
    let (iss, id) = split_iss(
        arg,
        "an upstream org is written ISS=EXTERNAL_ID, e.g. https://clerk.example.com=org_2abc",
    )?;
    Ok(ExternalOrgId {
        iss: iss.to_owned(),
        external_id: id.to_owned(),
    })
}

pub async fn run(c: &Client, command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::Create {
            name,
            display_name,
            owner,
            issuers,
            no_issuers,
        } => {
            let issuers = (no_issuers || !issuers.is_empty()).then_some(issuers);
            let req = CreateOrgRequest {
                name,
                display_name,
                owner,
                issuers,
            };
            print_json(&c.create_org(&req).await.context("cannot create org")?)
        }
        OrgCommand::List => print_json(&c.list_orgs().await?),
        OrgCommand::Show { org } => print_json(&c.org(&org).await?),
        OrgCommand::Issuers { org, names, all, .. } => {
            print_json(&c.set_org_issuers(&org, (!all).then_some(names)).await?)
        }
        OrgCommand::Bind { org, external: e } => {
            print_json(&c.bind_external_org(&org, &external(&e)?).await?)
        }
        OrgCommand::Unbind { org, external: e } => {
            c.unbind_external_org(&org, &external(&e)?).await?;
            println!("unbound {e} from {org}");
            Ok(())
        }
        OrgCommand::Members { org } => print_json(&c.org_members(&org).await?),
        OrgCommand::MemberSet { org, user_id, roles } => {
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            print_json(&c.set_member(&org, &user_id, &roles).await?)
        }
        OrgCommand::MemberRemove { org, user_id } => {
            c.remove_member(&org, &user_id).await?;
            println!("removed {user_id} from {org}");
            Ok(())
        }
        OrgCommand::Roles { org } => print_json(&c.org_roles(&org).await?),
        OrgCommand::RolePut {
            org,
            name,
            permissions,
            description,
        } => {
            let req = PutRoleRequest {
                description,
                permissions,
            };
            print_json(&c.put_role(&org, &name, &req).await?)
        }
        OrgCommand::RoleDelete { org, name } => {
            c.delete_role(&org, &name).await?;
            println!("deleted {name}");
            Ok(())
        }
        OrgCommand::ServiceAccounts { org } => print_json(&c.org_service_accounts(&org).await?),
        OrgCommand::ServiceAccountCreate { org, account } => {
            let req = account.request();
            let created = c
                .create_org_service_account(&org, &req)
                .await
                .context("cannot create service account")?;
            print_created(&created)
        }
        OrgCommand::RevokeServiceAccounts { org } => print_json(&c.revoke_org_service_accounts(&org).await?),
        OrgCommand::Sessions { org } => print_json(&c.org_sessions(&org).await?),
        OrgCommand::RevokeSession { org, session } => {
            c.revoke_org_session(&org, &session).await?;
            println!("revoked {session}");
            Ok(())
        }
        OrgCommand::TrustPolicy { command } => trust_policy(c, command).await,
    }
}
