//! `tollgate admin org …`: orgs, members, roles, service accounts and sessions, as an operator
//! (with the admin token) through the SDK.

use crate::admin::{NewClientArgs, print_created, print_json, split_iss};
use anyhow::Context as _;
use clap::Subcommand;
use tollgate_client::Client;
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
    }
}
