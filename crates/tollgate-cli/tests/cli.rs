//! The binary as a new user runs it: `tollgate serve` with no configuration, the admin
//! commands against it, a clean shutdown on SIGTERM, and a restart that keeps everything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// A running `tollgate serve` and what it printed at start.
struct Server {
    child: Child,
    url: String,
    admin_token: Option<String>,
    lines: mpsc::Receiver<String>,
}

// The child is moved into `Server`, whose `Drop` kills and reaps it; only a panic before
// that (the test failing anyway) can leave it, and the test process reaps it on exit.
#[allow(clippy::zombie_processes)]
fn start(dir: &Path) -> Server {
    start_with(dir, &["--listen", "127.0.0.1:0"], &[])
}

// See `start`.
#[allow(clippy::zombie_processes)]
fn start_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--log-format", "json"])
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .env_remove("TOLLGATE_MASTER_KEY")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut admin_token = None;
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("server starts within a minute");
        if let Some(rest) = line.trim().strip_prefix("TOLLGATE_ADMIN_TOKEN=") {
            admin_token = Some(rest.to_owned());
        }
        if line.contains("tollgate is serving") {
            let json: serde_json::Value = serde_json::from_str(&line).unwrap();
            let url = format!("http://{}", json["listen"].as_str().unwrap());
            return Server {
                child,
                url,
                admin_token,
                lines,
            };
        }
    }
}

impl Server {
    fn cli(&self, token: &str, args: &[&str]) -> serde_json::Value {
        let out = Command::new(BIN)
            .args(args)
            .env("TOLLGATE_URL", &self.url)
            .env("TOLLGATE_ADMIN_TOKEN", token)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit status {status}");
        let rest: Vec<String> = self.lines.try_iter().collect();
        assert!(rest.iter().any(|l| l.contains("shut down cleanly")), "{rest:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn zero_config_serve_admin_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = server
        .admin_token
        .clone()
        .expect("first start prints an admin token");
    let data = dir.path().join("tollgate-data");
    assert!(data.join("tollgate.db").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let created = server.cli(
        &token,
        &[
            "admin",
            "client",
            "create",
            "--name",
            "svc",
            "--scope",
            "read write",
        ],
    );
    assert!(created["client_secret"].as_str().unwrap().starts_with("tg_sa_"));
    assert_eq!(created["scope"], serde_json::json!(["read", "write"]));
    let keys = server.cli(&token, &["keys", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    server.terminate();

    let server = start(dir.path());
    assert!(
        server.admin_token.is_none(),
        "the admin token is printed only at first start"
    );
    assert_eq!(server.cli(&token, &["keys", "list"]), keys, "keys persist");
    let clients = server.cli(&token, &["admin", "client", "list"]);
    assert_eq!(clients[0]["name"], "svc");
    server.terminate();
}

#[test]
fn config_example_passes_config_check_and_typos_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let example = Command::new(BIN).args(["config", "example"]).output().unwrap();
    assert!(example.status.success());
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, &example.stdout).unwrap();
    let check = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    std::fs::write(&path, "[tokens]\naccess_tll = \"5m\"\n").unwrap();
    let check = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("access_tll"));

    let check = Command::new(BIN)
        .args(["config", "check"])
        .env("TOLLGATE_TOKENS_SIGNING_ALG", "HS256")
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("TOLLGATE_TOKENS_SIGNING_ALG"));
}

/// `debug token` names the real cause: here tollgate trusts itself as an upstream issuer
/// whose audience rule the token breaks; the signature is fine, the audience is not.
#[test]
fn debug_token_explains_a_refusal_step_by_step() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            "[[issuers]]\nname = \"self\"\nissuer = \"{url}\"\naudiences = [\"https://api.example.com\"]\nalgorithms = [\"EdDSA\"]\n"
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{port}");
    let server = start_with(
        dir.path(),
        &["--listen", &listen, "--config", config.to_str().unwrap()],
        &[("TOLLGATE_PUBLIC_URL", &url)],
    );
    let admin = server.admin_token.clone().unwrap();
    let created = server.cli(&admin, &["admin", "client", "create", "--name", "svc"]);
    let creds = tollgate_client::ClientCredentials {
        client_id: created["client_id"].as_str().unwrap().to_owned(),
        client_secret: created["client_secret"].as_str().unwrap().to_owned().into(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = rt
        .block_on(
            tollgate_client::Client::new(&url)
                .unwrap()
                .client_credentials(&creds, None, None),
        )
        .unwrap()
        .access_token;

    let out = Command::new(BIN)
        .args(["debug", "token", &token])
        .env("TOLLGATE_URL", &url)
        .env("TOLLGATE_ADMIN_TOKEN", &admin)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("✓ signature"), "{text}");
    assert!(text.contains("✗ audience"), "{text}");
    assert!(text.contains("REFUSED: aud-mismatch"), "{text}");

    let offline = Command::new(BIN)
        .args(["debug", "token", "--offline", &token])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&offline.stdout);
    assert!(offline.status.success());
    assert!(
        text.contains("\"alg\":\"EdDSA\"") && text.contains("(not verified)"),
        "{text}"
    );

    // SIGHUP applies a changed [[issuers]] section without a restart.
    let listed = server.cli(&admin, &["admin", "issuer", "list"]);
    assert_eq!(listed[0]["source"], "file");
    assert_eq!(listed[0]["enabled"], true);
    let text = std::fs::read_to_string(&config).unwrap() + "enabled = false\n";
    std::fs::write(&config, text).unwrap();
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let disabled = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        server.cli(&admin, &["admin", "issuer", "list"])[0]["enabled"] == false
    });
    assert!(disabled, "SIGHUP did not disable the issuer");
    let out = Command::new(BIN)
        .args(["debug", "token", &token])
        .env("TOLLGATE_URL", &url)
        .env("TOLLGATE_ADMIN_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("REFUSED: issuer-disabled"));

    let bad = Command::new(BIN)
        .args(["debug", "token", "--offline", "not-a-jwt"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("three dot-separated parts"));
    server.terminate();
}
