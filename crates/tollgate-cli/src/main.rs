//! The `tollgate` binary: runs the server and administers it through the SDK.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod admin;
mod audit;
mod cert;
mod debug;
mod device_key;
mod login;
mod org;
mod publish;
mod registry;
mod serve;
mod token_store;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// A failure the command has already explained on its output: exit 1 without an `error:`
/// line.
#[derive(Debug)]
pub struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the command failed")
    }
}

impl std::error::Error for Failed {}

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Security token service and credential broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where a running server is and how to act as its administrator.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// Base URL of the tollgate server.
    #[arg(
        long,
        env = "TOLLGATE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// Admin token (printed once at first start, or set in config).
    #[arg(long, env = "TOLLGATE_ADMIN_TOKEN", hide_env_values = true, global = true)]
    admin_token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (zero configuration: 127.0.0.1:8080, SQLite in ./tollgate-data).
    Serve(serve::ServeArgs),
    /// Check or print configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage signing keys of a running server.
    Keys {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: admin::KeysCommand,
    },
    /// Verify the audit trail's hash chain offline (database and master key).
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Diagnose tokens.
    Debug {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: DebugCommand,
    },
    /// Container registry token server: the registry's configuration, API keys, pull credentials.
    Registry {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: registry::RegistryCommand,
    },
    /// Administer a running server: service accounts, secrets, audit, admin tokens.
    Admin {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Publish together with a CI job: start a session as yourself, follow it, end it; and
    /// the CI job's side (`publish runner …`).
    Publish(publish::PublishArgs),
    /// Sign in as yourself by the device flow (a code to approve in a browser); keeps the
    /// refresh token in an encrypted file.
    Login(login::LoginArgs),
    /// Who the stored sign-in is (refreshes it).
    Whoami(login::StoreArgs),
    /// Print a fresh access token of the stored sign-in, for scripts.
    Token(login::StoreArgs),
    /// End the stored sign-in at the server and forget it.
    Logout(login::StoreArgs),
    /// This device's key: enroll one (`add`) to sign in later with `login --key-file`.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// X.509 certificates from tollgate's CA.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Generate a key here and get a client (`--client`) or server (`--server`) certificate
    /// for it; writes the key (mode 0600), the certificate and the CA chain.
    Request(Box<cert::CertRequestArgs>),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Enroll a new Ed25519 key for this device as the signed-in user (proof of
    /// possession); the private key stays in a sealed file of mode 0600.
    Add(device_key::KeyAddArgs),
}

#[derive(Debug, Subcommand)]
enum DebugCommand {
    /// Decode a token and show, step by step, whether and why tollgate accepts it.
    Token(debug::DebugTokenArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file together with TOLLGATE_* environment variables.
    Check {
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print a documented configuration with every key and its default.
    Example,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Config {
            command: ConfigCommand::Example,
        } => {
            print!("{}", tollgate_server::config::EXAMPLE);
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Check { config },
        } => tollgate_server::Config::load(config.as_deref(), std::env::vars())
            .map(|_| println!("configuration is valid"))
            .map_err(anyhow::Error::from),
        Command::Keys { remote, command } => admin::keys(&remote, command).await,
        Command::Admin { remote, command } => admin::admin(&remote, command).await,
        Command::Publish(args) => publish::run(args).await,
        Command::Login(args) => login::login(args).await,
        Command::Whoami(store) => login::whoami(&store).await,
        Command::Token(store) => login::token(&store).await,
        Command::Logout(store) => login::logout(&store).await,
        Command::Key {
            command: KeyCommand::Add(args),
        } => device_key::add(args).await,
        Command::Cert {
            command: CertCommand::Request(args),
        } => cert::request(*args).await,
        Command::Registry { remote, command } => match admin::client(&remote) {
            Ok(c) => registry::run(&c, command).await,
            Err(e) => Err(e),
        },
        Command::Audit { command } => match audit::run(command).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
        Command::Debug {
            remote,
            command: DebugCommand::Token(args),
        } => match debug::run(&remote, args).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Failed>() => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
