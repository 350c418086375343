//! `tollgate keys …` and `tollgate admin …`: thin wrappers over the SDK.

use crate::Remote;
use anyhow::Context as _;
use clap::Subcommand;
use secrecy::SecretString;
use serde::Serialize;
use tollgate_client::Client;
use tollgate_proto::admin::{
    CreateClientRequest, CreateUserRequest, IdentityInfo, RetireKeyRequest, RotateKeysRequest,
};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys with their state.
    List,
    /// Promote the published next key and retire the active one.
    Rotate {
        /// Token kind whose key rotates.
        #[arg(long, default_value = "access")]
        purpose: String,
        /// Rotate even if the next key was published less than jwks_max_age ago.
        #[arg(long)]
        force: bool,
    },
    /// Retire a key that does not sign.
    Retire {
        kid: String,
        /// Stop publishing an already retired key now (its tokens stop verifying).
        #[arg(long)]
        immediately: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Service accounts.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Local users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Trusted upstream issuers.
    Issuer {
        #[command(subcommand)]
        command: IssuerCommand,
    },
    /// Rotate the HMAC secret that hashes stored secrets.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Audit events, newest first, filtered; `--jsonl` exports every match as JSON lines.
    Audit(crate::audit::AdminAuditArgs),
    /// Orgs, their members, roles, service accounts and sessions (ORG: an org's id or name).
    Org {
        #[command(subcommand)]
        command: crate::org::OrgCommand,
    },
    /// API keys of internal services (`X-API-Key` of the pull-credential endpoint).
    ApiKey {
        #[command(subcommand)]
        command: crate::registry::ApiKeyCommand,
    },
    /// Admin tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// A new service account's flags.
#[derive(Debug, clap::Args)]
pub struct NewClientArgs {
    #[arg(long)]
    pub name: String,
    /// Allowed scope; repeat or separate with spaces.
    #[arg(long)]
    pub scope: Vec<String>,
    /// Allowed audience; repeat. The first is the default.
    #[arg(long)]
    pub audience: Vec<String>,
}

impl NewClientArgs {
    /// The request (`--scope` may hold several, space-separated).
    pub fn request(self) -> CreateClientRequest {
        let scope = self
            .scope
            .iter()
            .flat_map(|s| s.split_whitespace())
            .map(str::to_owned)
            .collect();
        CreateClientRequest {
            name: self.name,
            scope,
            audiences: self.audience,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a service account; prints its secret once.
    Create(NewClientArgs),
    List,
    Show {
        client_id: String,
    },
    Delete {
        client_id: String,
    },
    /// Replace the secret; the old one stops working at once.
    RotateSecret {
        client_id: String,
    },
    Disable {
        client_id: String,
    },
    Enable {
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    List,
    Show {
        id: String,
    },
    /// Create a user ahead of sign-in, linked to upstream identities given as ISS=SUB.
    Create {
        #[arg(long)]
        email: Option<String>,
        #[arg(long = "identity", value_name = "ISS=SUB")]
        identities: Vec<String>,
    },
    /// Link another upstream identity (ISS=SUB) to a user.
    Link {
        id: String,
        identity: String,
    },
    /// Refuse every token issued to the user so far, and end their sessions.
    Logout {
        id: String,
    },
    /// The user's sessions (refresh-token families), newest first.
    Sessions {
        id: String,
    },
    /// End one session (by its `ses_…` id).
    RevokeSession {
        session: String,
    },
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum IssuerCommand {
    /// Every trusted issuer (config file and API) with its key cache state.
    List,
    /// Trust a new issuer; SPEC is a JSON file (or `-`) shaped like a `[[issuers]]` entry.
    Create { spec: String },
    /// Replace an API issuer's specification.
    Update { name: String, spec: String },
    /// Stop trusting an API issuer.
    Delete { name: String },
    /// Refuse an API issuer's tokens now (rollback), keeping its configuration.
    Disable { name: String },
    /// Accept an API issuer's tokens again.
    Enable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new admin token for `admin.bootstrap_token` (does not contact a server).
    Generate,
}

pub(crate) fn client(remote: &Remote) -> anyhow::Result<Client> {
    let mut c = Client::new(&remote.url)?;
    if let Some(t) = &remote.admin_token {
        c = c.with_admin_token(SecretString::from(t.clone()));
    }
    Ok(c)
}

/// Prints a new service account with its secret, and says it will not be shown again.
pub(crate) fn print_created(created: &tollgate_client::proto::admin::ClientWithSecret) -> anyhow::Result<()> {
    print_json(created)?;
    eprintln!("The client_secret is shown only this once.");
    Ok(())
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    print_text(&(text + "\n"))
}

/// Writes `text` as is to standard output.
pub(crate) fn print_text(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // `tollgate … | head` closed the pipe: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

pub async fn keys(remote: &Remote, command: KeysCommand) -> anyhow::Result<()> {
    let c = client(remote)?;
    match command {
        KeysCommand::List => print_json(&c.list_keys().await?),
        KeysCommand::Rotate { purpose, force } => print_json(
            &c.rotate_keys(&RotateKeysRequest {
                purpose: Some(purpose),
                force,
            })
            .await?,
        ),
        KeysCommand::Retire { kid, immediately } => {
            c.retire_key(&kid, &RetireKeyRequest { immediately }).await?;
            println!("retired {kid}");
            Ok(())
        }
    }
}

pub async fn admin(remote: &Remote, command: AdminCommand) -> anyhow::Result<()> {
    if let AdminCommand::Token {
        command: TokenCommand::Generate,
    } = command
    {
        println!("{}", tollgate_server::admin_tokens::generate());
        return Ok(());
    }
    let c = client(remote)?;
    match command {
        AdminCommand::Client { command } => match command {
            ClientCommand::Create(args) => {
                let req = args.request();
                let created = c.create_client(&req).await.context("cannot create client")?;
                print_created(&created)
            }
            ClientCommand::List => print_json(&c.list_clients().await?),
            ClientCommand::Show { client_id } => print_json(&c.get_client(&client_id).await?),
            ClientCommand::Delete { client_id } => {
                c.delete_client(&client_id).await?;
                println!("deleted {client_id}");
                Ok(())
            }
            ClientCommand::RotateSecret { client_id } => {
                print_json(&c.rotate_client_secret(&client_id).await?)
            }
            ClientCommand::Disable { client_id } => {
                print_json(&c.set_client_enabled(&client_id, false).await?)
            }
            ClientCommand::Enable { client_id } => print_json(&c.set_client_enabled(&client_id, true).await?),
        },
        AdminCommand::Issuer { command } => issuer(&c, command).await,
        AdminCommand::User { command } => user(&c, command).await,
        AdminCommand::Secrets {
            command: SecretsCommand::Rotate,
        } => print_json(&c.rotate_secrets().await?),
        AdminCommand::Audit(args) => crate::audit::admin_audit(&c, args).await,
        AdminCommand::Org { command } => crate::org::run(&c, command).await,
        AdminCommand::ApiKey { command } => crate::registry::api_keys(&c, command).await,
        AdminCommand::Token { .. } => Ok(()),
    }
}

fn read_spec(path: &str) -> anyhow::Result<serde_json::Value> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
    };
    serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))
}

async fn issuer(c: &Client, command: IssuerCommand) -> anyhow::Result<()> {
    match command {
        IssuerCommand::List => print_json(&c.list_issuers().await?),
        IssuerCommand::Create { spec } => print_json(&c.create_issuer(&read_spec(&spec)?).await?),
        IssuerCommand::Update { name, spec } => {
            print_json(&c.update_issuer(&name, &read_spec(&spec)?).await?)
        }
        IssuerCommand::Delete { name } => {
            c.delete_issuer(&name).await?;
            println!("deleted {name}");
            Ok(())
        }
        IssuerCommand::Disable { name } => set_issuer_enabled(c, &name, false).await,
        IssuerCommand::Enable { name } => set_issuer_enabled(c, &name, true).await,
    }
}

async fn set_issuer_enabled(c: &Client, name: &str, enabled: bool) -> anyhow::Result<()> {
    let current = c.list_issuers().await?.into_iter().find(|i| i.name == name);
    let Some(current) = current else {
        anyhow::bail!("no issuer named `{name}`")
    };
    let mut spec = current.spec;
    spec["enabled"] = serde_json::Value::Bool(enabled);
    print_json(&c.update_issuer(name, &spec).await?)
}

/// Splits `ISS=VALUE` (an upstream identity or org id); `usage` explains the form when it is not.
pub(crate) fn split_iss<'a>(arg: &'a str, usage: &str) -> anyhow::Result<(&'a str, &'a str)> {
    // Issuer URLs carry no `=`; subjects and upstream ids may (base64 padding), so split at the first.
    arg.split_once('=').with_context(|| usage.to_owned())
}

fn identity(arg: &str) -> anyhow::Result<IdentityInfo> {
    let (iss, sub) = split_iss(
        arg,
        "an identity is written ISS=SUB, e.g. https://clerk.example.com=user_2abc",
    )?;
    Ok(IdentityInfo {
        iss: iss.to_owned(),
        sub: sub.to_owned(),
    })
}

async fn user(c: &Client, command: UserCommand) -> anyhow::Result<()> {
    use tollgate_client::UserAction;
    match command {
        UserCommand::List => print_json(&c.list_users().await?),
        UserCommand::Show { id } => print_json(&c.get_user(&id).await?),
        UserCommand::Create { email, identities } => {
            let identities = identities
                .iter()
                .map(|i| identity(i))
                .collect::<anyhow::Result<_>>()?;
            print_json(&c.create_user(&CreateUserRequest { email, identities }).await?)
        }
        UserCommand::Link { id, identity: i } => print_json(&c.link_identity(&id, &identity(&i)?).await?),
        UserCommand::Logout { id } => print_json(&c.user_action(&id, UserAction::LogoutEverywhere).await?),
        UserCommand::Sessions { id } => print_json(&c.user_sessions(&id).await?),
        UserCommand::RevokeSession { session } => {
            c.revoke_session(&session).await?;
            println!("revoked {session}");
            Ok(())
        }
        UserCommand::Disable { id } => print_json(&c.user_action(&id, UserAction::Disable).await?),
        UserCommand::Enable { id } => print_json(&c.user_action(&id, UserAction::Enable).await?),
    }
}
