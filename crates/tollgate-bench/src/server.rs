//! The server under test: this binary re-executed in `--serve-on-loopback` mode.
//!
//! The child binds 127.0.0.1 on a free port, starts tollgate on a fresh database (trusting
//! the load generator's upstream issuers when given them) and announces itself with one
//! stdout line, `LISTENING <port> <admin token>`. It serves until it is killed or its stdin
//! closes (so it does not outlive a parent that dies abruptly).

use crate::cpu::CpuUsage;
use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout};
use tollgate_core::SigningAlg;
use tollgate_crypto::MasterKey;
use tollgate_server::clock::SystemClock;
use tollgate_server::{App, Config};

/// The first word of the child's announcement.
const ANNOUNCEMENT: &str = "LISTENING";
/// How long the child may take to open its database and announce itself.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How the child server is set up.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub alg: SigningAlg,
    pub data_dir: PathBuf,
    /// An empty database; SQLite in `data_dir` when `None`.
    pub database_url: Option<String>,
    /// The URL of the upstream issuer to trust for token exchange; its sibling with sessions
    /// is trusted too (see [`crate::idp`]).
    pub upstream_issuer: Option<String>,
}

impl ServeOptions {
    /// The database backend's name, for the report.
    pub fn backend(&self) -> &str {
        self.database_url
            .as_deref()
            .and_then(|url| url.split_once(':'))
            .map_or("sqlite", |(scheme, _)| scheme)
    }

    fn config(&self, addr: SocketAddr) -> Config {
        let mut config = Config::default();
        config.server.listen = addr;
        config.server.public_url = format!("http://{addr}");
        config.server.data_dir.clone_from(&self.data_dir);
        config.database.url = self.database_url.clone().unwrap_or_default();
        config.tokens.signing_alg = self.alg;
        // The load comes from one address at rates no client should reach: measure the
        // server, not its limits.
        config.rate_limits.enabled = false;
        config.issuers = self
            .upstream_issuer
            .iter()
            .flat_map(|url| crate::idp::issuer_specs(url))
            .collect();
        config
    }
}

/// Child side: serves on 127.0.0.1 until killed or until stdin closes.
pub async fn serve_on_loopback(options: &ServeOptions) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let app = App::build(options.config(addr), MasterKey::generate(), Arc::new(SystemClock))
        .await
        .context("cannot start tollgate")?;
    let admin_token = app
        .new_admin_token
        .clone()
        .context("the database already has admin tokens; loadgen needs an empty database")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{ANNOUNCEMENT} {} {}",
        addr.port(),
        admin_token.expose_secret()
    )?;
    stdout.flush()?;
    drop(stdout);
    tollgate_server::serve(app, listener, stdin_closed()).await?;
    Ok(())
}

/// Completes when stdin reaches end of file: the parent closed it or is gone.
async fn stdin_closed() {
    let (closed, on_closed) = tokio::sync::oneshot::channel::<()>();
    // A plain thread: a blocking read must not hold up the runtime's shutdown.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = closed.send(());
    });
    let _ = on_closed.await;
}

/// Parent side: the running child and what it announced.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    port: u16,
    admin_token: SecretString,
    /// Held so the child never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// Starts the child and waits for its announcement. The child is killed if this fails
    /// or when the returned value is dropped.
    pub async fn spawn(options: &ServeOptions) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this program to re-run it")?;
        let mut command = tokio::process::Command::new(exe);
        command
            .arg("--serve-on-loopback")
            .arg("--data-dir")
            .arg(&options.data_dir)
            .args(["--alg", options.alg.as_str()]);
        if let Some(url) = &options.database_url {
            command.args(["--database-url", url]);
        }
        if let Some(url) = &options.upstream_issuer {
            command.args(["--upstream-issuer", url]);
        }
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().context("cannot start the server process")?;
        let stdout = child.stdout.take().context("the server's stdout is not piped")?;
        let mut stdout = BufReader::new(stdout);
        let line = tokio::time::timeout(STARTUP_TIMEOUT, read_line(&mut stdout))
            .await
            .context("the server did not announce itself in time")??;
        let (port, admin_token) = parse_announcement(&line)?;
        Ok(Self {
            child,
            port,
            admin_token,
            _stdout: stdout,
        })
    }

    /// Always loopback: the benchmark never talks to anything else.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn admin_token(&self) -> &SecretString {
        &self.admin_token
    }

    /// CPU time used so far by the server and by this process.
    pub fn cpu_usage(&self) -> CpuUsage {
        CpuUsage::now(self.pid())
    }

    /// Kills the server and waits for it to exit.
    pub async fn stop(mut self) {
        if let Err(e) = self.child.kill().await {
            println!("warning: cannot kill the server process: {e}");
        }
    }
}

async fn read_line(stdout: &mut BufReader<ChildStdout>) -> anyhow::Result<String> {
    let mut line = String::new();
    let read = stdout
        .read_line(&mut line)
        .await
        .context("cannot read from the server")?;
    anyhow::ensure!(
        read > 0,
        "the server exited before announcing itself (its errors are above)"
    );
    Ok(line)
}

/// `LISTENING <port> <admin token>` into the port and the token.
fn parse_announcement(line: &str) -> anyhow::Result<(u16, SecretString)> {
    let mut words = line.split_whitespace();
    let (Some(ANNOUNCEMENT), Some(port), Some(token), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        anyhow::bail!("the server announced something unexpected");
    };
    let port = port.parse().context("the server announced an invalid port")?;
    Ok((port, SecretString::from(token.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_round_trips() {
        let (port, token) = parse_announcement("LISTENING 40123 tg_adm_x\n").expect("well formed");
        assert_eq!(port, 40123);
        assert_eq!(token.expose_secret(), "tg_adm_x");
    }

    #[test]
    fn other_lines_are_refused() {
        for line in [
            "",
            "LISTENING",
            "LISTENING 1",
            "LISTENING x tok",
            "HELLO 1 tok",
            "LISTENING 1 tok more",
        ] {
            assert!(parse_announcement(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn backend_is_named_by_the_url_scheme() {
        let options = |url: Option<&str>| ServeOptions {
            alg: SigningAlg::EdDSA,
            data_dir: PathBuf::new(),
            database_url: url.map(str::to_owned),
            upstream_issuer: None,
        };
        assert_eq!(options(None).backend(), "sqlite");
        assert_eq!(options(Some("postgres://u@127.0.0.1/db")).backend(), "postgres");
    }
}
