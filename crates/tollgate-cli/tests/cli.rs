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
    // An active and a next key for access tokens, and the same for registry tokens.
    let keys = server.cli(&token, &["keys", "list"]);
    let purposes: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(purposes.iter().filter(|p| **p == "access").count(), 2, "{keys}");
    assert_eq!(purposes.iter().filter(|p| **p == "registry").count(), 2, "{keys}");
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

/// `tollgate admin audit` reads the trail through the API; `tollgate audit verify` checks
/// its hash chain offline, and after an event is edited in the database exits 1 naming it.
#[test]
fn audit_verify_passes_then_names_the_tampered_event() {
    if Command::new("sqlite3").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "sqlite3 is not installed (CI=true: this test may not skip)"
        );
        #[allow(clippy::print_stderr)]
        {
            eprintln!("SKIP: sqlite3 is not installed");
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = server.admin_token.clone().unwrap();
    for name in ["svc1", "svc2"] {
        server.cli(&token, &["admin", "client", "create", "--name", name]);
    }
    let page = server.cli(&token, &["admin", "audit", "--action", "client.", "--limit", "1"]);
    assert_eq!(page["events"][0]["action"], "client.create");
    assert_eq!(page["events"][0]["detail"]["name"], "svc2");
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = server.cli(
        &token,
        &["admin", "audit", "--action", "client.", "--cursor", cursor],
    );
    assert_eq!(next["events"][0]["detail"]["name"], "svc1");
    assert!(next["next_cursor"].is_null());
    let jsonl = Command::new(BIN)
        .args(["admin", "audit", "--jsonl", "--action", "client.create"])
        .env("TOLLGATE_URL", &server.url)
        .env("TOLLGATE_ADMIN_TOKEN", &token)
        .output()
        .unwrap();
    assert!(jsonl.status.success());
    let names: Vec<String> = String::from_utf8(jsonl.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["detail"]["name"].to_string())
        .collect();
    assert_eq!(names, [r#""svc1""#, r#""svc2""#], "oldest first");
    server.terminate();

    let verify = || {
        Command::new(BIN)
            .args(["audit", "verify"])
            .current_dir(dir.path())
            .env_remove("TOLLGATE_MASTER_KEY")
            .output()
            .unwrap()
    };
    let ok = verify();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["checked"], 3, "the bootstrap token and two clients");

    let db = dir.path().join("tollgate-data").join("tollgate.db");
    let edit = Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE audit_events SET actor = 'admin:someone-else' WHERE chain_seq = 2")
        .output()
        .unwrap();
    assert!(edit.status.success(), "{}", String::from_utf8_lossy(&edit.stderr));
    let broken = verify();
    assert_eq!(broken.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(
        (report["ok"].clone(), report["first_broken_seq"].clone()),
        (false.into(), 2.into())
    );
    assert!(String::from_utf8_lossy(&broken.stderr).contains("BROKEN at seq 2"));

    let elsewhere = tempfile::tempdir().unwrap();
    let missing = Command::new(BIN)
        .args(["audit", "verify"])
        .current_dir(elsewhere.path())
        .env_remove("TOLLGATE_MASTER_KEY")
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        !elsewhere.path().join("tollgate-data").exists(),
        "verification creates nothing"
    );
}

/// `tollgate admin org …`: an org with an owner, a custom role, a second member, and a
/// refusal (removing the last owner) that exits non-zero naming its reason.
#[test]
fn admin_org_members_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = server.admin_token.clone().unwrap();
    let user = |sub: &str| {
        let identity = format!("https://idp.example.com={sub}");
        let created = server.cli(&token, &["admin", "user", "create", "--identity", &identity]);
        created["id"].as_str().unwrap().to_owned()
    };
    let (alice, bob) = (user("alice"), user("bob"));

    let org = server.cli(
        &token,
        &[
            "admin",
            "org",
            "create",
            "acme",
            "--display-name",
            "Acme",
            "--owner",
            &alice,
        ],
    );
    assert_eq!(
        (org["name"].as_str(), org["issuers"].is_null()),
        (Some("acme"), true)
    );
    assert_eq!(org["display_name"], "Acme");

    let role = server.cli(
        &token,
        &[
            "admin",
            "org",
            "role-put",
            "acme",
            "release",
            "registry:push",
            "certificate:sign:*",
        ],
    );
    assert_eq!(
        role["permissions"],
        serde_json::json!(["certificate:sign:*", "registry:push"]),
        "stored sorted"
    );
    let roles = server.cli(&token, &["admin", "org", "roles", "acme"]);
    let roles = roles.as_array().unwrap();
    let release = roles.iter().find(|r| r["name"] == "release").unwrap();
    assert_eq!(release["builtin"], false);
    assert!(
        roles.iter().any(|r| r["name"] == "owner" && r["builtin"] == true),
        "{roles:?}"
    );

    let member = server.cli(
        &token,
        &["admin", "org", "member-set", "acme", &bob, "release", "viewer"],
    );
    assert_eq!(member["roles"], serde_json::json!(["release", "viewer"]));
    let members = server.cli(&token, &["admin", "org", "members", "acme"]);
    assert_eq!(members.as_array().unwrap().len(), 2);

    let refused = Command::new(BIN)
        .args(["admin", "org", "member-remove", "acme", &alice])
        .env("TOLLGATE_URL", &server.url)
        .env("TOLLGATE_ADMIN_TOKEN", &token)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("last-owner"), "{stderr}");

    let orgs = server.cli(&token, &["admin", "org", "list"]);
    assert_eq!(orgs[0]["id"], org["id"]);
    assert_eq!(orgs.as_array().unwrap().len(), 1);
    server.terminate();
}

#[test]
fn registry_config_prints_the_auth_section_and_writes_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = server.admin_token.clone().unwrap();
    let bundle = dir.path().join("bundle.pem");
    let out = Command::new(BIN)
        .args([
            "registry",
            "config",
            "--service",
            "registry",
            "--realm",
            "https://auth.example.com/v2/token",
        ])
        .arg("--bundle")
        .arg(&bundle)
        .env("TOLLGATE_URL", &server.url)
        .env("TOLLGATE_ADMIN_TOKEN", &token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.starts_with("auth:\n  token:\n"), "{yaml}");
    assert!(
        yaml.contains("realm: \"https://auth.example.com/v2/token\""),
        "{yaml}"
    );
    // The issuer is the server's public_url (its default here).
    assert!(yaml.contains("issuer: \"http://127.0.0.1:8080\""), "{yaml}");
    assert!(
        yaml.contains(&format!("rootcertbundle: \"{}\"", bundle.display())),
        "{yaml}"
    );
    // The active and the next registry key, so a rotation needs no registry restart first.
    let pem = std::fs::read_to_string(&bundle).unwrap();
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2, "{pem}");
    let api_key = server.cli(&token, &["admin", "api-key", "create", "builder"]);
    assert!(api_key["key"].as_str().unwrap().starts_with("tg_ak_"));
}

/// An upstream IdP for the tests below: one Ed25519 key, its JWKS answered on every path of
/// a loopback port, and tokens for two issuers: `<url>/users` (people) and `<url>/gha` (CI
/// jobs, with GitHub Actions' claims).
struct Idp {
    url: String,
    key: tollgate_crypto::SigningKey,
}

impl Idp {
    fn start() -> Self {
        use std::io::{Read as _, Write as _};
        let (key, _) = tollgate_crypto::SigningKey::generate(tollgate_core::SigningAlg::EdDSA).unwrap();
        let jwks = serde_json::json!({ "keys": [key.public_jwk()] }).to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     cache-control: public, max-age=300\r\nconnection: close\r\n\r\n{jwks}",
                    jwks.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Self { url, key }
    }

    fn mint(&self, mut claims: serde_json::Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        claims["iat"] = now.into();
        claims["nbf"] = now.into();
        claims["exp"] = (now + 300).into();
        tollgate_crypto::jws::sign(&self.key, "JWT", &claims).unwrap()
    }

    /// The `[[issuers]]` trusting both issuers.
    fn config(&self) -> String {
        let url = &self.url;
        format!(
            "[[issuers]]\nname = \"idp\"\nissuer = \"{url}/users\"\njwks_uri = \"{url}/jwks\"\n\
             audiences = [\"tollgate-cli-test\"]\nalgorithms = [\"EdDSA\"]\n\
             [issuers.grant]\naudiences = [\"tollgate\"]\nrefresh_tokens = true\n\n\
             [[issuers]]\nname = \"gha\"\nissuer = \"{url}/gha\"\npreset = \"github-actions\"\n\
             jwks_uri = \"{url}/jwks\"\naudiences = [\"tollgate\"]\nalgorithms = [\"EdDSA\"]\n"
        )
    }

    fn user_token(&self, sub: &str) -> String {
        self.mint(serde_json::json!({
            "iss": format!("{}/users", self.url), "sub": sub, "aud": "tollgate-cli-test",
        }))
    }

    /// A job of acme/app's publish workflow on `git_ref`.
    fn ci_token(&self, git_ref: &str, jti: &str) -> String {
        self.mint(serde_json::json!({
            "iss": format!("{}/gha", self.url), "aud": "tollgate", "jti": jti,
            "sub": format!("repo:acme/app:ref:{git_ref}"),
            "repository": "acme/app", "repository_id": "42", "repository_owner": "acme",
            "repository_owner_id": "7", "ref": git_ref, "ref_protected": "true",
            "event_name": "workflow_dispatch", "run_id": "1001",
            "workflow_ref": format!("acme/app/.github/workflows/publish.yml@{git_ref}"),
            "job_workflow_ref": format!("acme/app/.github/workflows/publish.yml@{git_ref}"),
        }))
    }
}

impl Server {
    /// Runs the CLI against this server with `env` (and none of the caller's tokens).
    fn run(&self, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env("TOLLGATE_URL", &self.url)
            .env_remove("TOLLGATE_ADMIN_TOKEN")
            .env_remove("TOLLGATE_TOKEN")
            .env_remove("TOLLGATE_RUNNER_SECRET")
            .env_remove("TOLLGATE_ID_TOKEN")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// Like `run`, and asserts failure: returns standard output and error.
    fn refused(&self, env: &[(&str, &str)], args: &[&str]) -> (String, String) {
        let out = self.run(env, args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} should fail: {stdout}{stderr}"
        );
        (stdout, stderr)
    }

    /// Like `run`, and asserts success: returns standard output.
    fn ok(&self, env: &[(&str, &str)], args: &[&str]) -> String {
        let out = self.run(env, args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The value of `key` in `key  value` lines.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with(' ')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

fn jwt_part(token: &str, i: usize) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').nth(i).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `tollgate admin org trust-policy …`: an operator stores, lists, dry-runs and deletes the
/// trust policy of a GitHub Actions workflow; a policy that trusts every repository and a
/// CI token from a branch are refused with the reason and the failing condition.
#[test]
fn admin_org_trust_policies() {
    let idp = Idp::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(&config, idp.config()).unwrap();
    let server = start_with(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--config", config.to_str().unwrap()],
        &[],
    );
    let token = server.admin_token.clone().unwrap();
    let admin = [("TOLLGATE_ADMIN_TOKEN", token.as_str())];
    server.cli(&token, &["admin", "org", "create", "acme"]);
    let file = |name: &str, value: serde_json::Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let release = file(
        "release.json",
        serde_json::json!({
            "issuer": "gha",
            "description": "tagged releases of acme/app",
            "conditions": [
                {"claim": "repository_id", "equals": "42"},
                {"claim": "ref", "glob": "refs/tags/v*"},
                {"claim": "event", "one_of": ["push", "workflow_dispatch"]}
            ],
            "grant": {"publish": ["acme-*"]},
            "max_ttl": "10m"
        }),
    );
    let stored = server.cli(
        &token,
        &[
            "admin",
            "org",
            "trust-policy",
            "put",
            "acme",
            "release",
            "--file",
            &release,
        ],
    );
    assert_eq!(
        (&stored["org"], &stored["name"], &stored["issuer"]),
        (&"acme".into(), &"release".into(), &"gha".into())
    );
    assert_eq!(stored["grant"]["publish"], serde_json::json!(["acme-*"]));

    let anything = file(
        "anything.json",
        serde_json::json!({"issuer": "gha", "conditions": [{"claim": "repository", "glob": "*"}]}),
    );
    let (_, stderr) = server.refused(
        &admin,
        &[
            "admin",
            "org",
            "trust-policy",
            "put",
            "acme",
            "anything",
            "--file",
            &anything,
        ],
    );
    assert!(
        stderr.contains("matches anything") && stderr.contains("[invalid-parameter]"),
        "{stderr}"
    );
    let typo = file(
        "typo.json",
        serde_json::json!({"issuer": "gha", "conditions": [], "grants": {}}),
    );
    let (_, stderr) = server.refused(
        &admin,
        &[
            "admin",
            "org",
            "trust-policy",
            "put",
            "acme",
            "typo",
            "--file",
            &typo,
        ],
    );
    assert!(stderr.contains("unknown field `grants`"), "{stderr}");

    // The output of `get` goes back in unchanged.
    let got = server.ok(
        &admin,
        &["admin", "org", "trust-policy", "get", "acme", "release"],
    );
    let again = file("again.json", serde_json::from_str(&got).unwrap());
    server.cli(
        &token,
        &[
            "admin",
            "org",
            "trust-policy",
            "put",
            "acme",
            "release",
            "--file",
            &again,
        ],
    );
    let list = server.cli(&token, &["admin", "org", "trust-policy", "list", "acme"]);
    assert_eq!(list["policies"].as_array().unwrap().len(), 1, "{list}");

    // Dry runs: a branch build fails on `ref`, with what the token has; a tag build matches.
    let branch = dir.path().join("branch.jwt");
    std::fs::write(&branch, idp.ci_token("refs/heads/main", "jti-branch")).unwrap();
    let branch = branch.to_str().unwrap();
    let (stdout, _) = server.refused(
        &admin,
        &[
            "admin",
            "org",
            "trust-policy",
            "evaluate",
            "acme",
            "--token-file",
            branch,
        ],
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("release "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let cells: Vec<&str> = row.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(
        cells,
        [
            "release",
            "no",
            "ref",
            "matches glob \"refs/tags/v*\"",
            "refs/heads/main"
        ],
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().eq(["repository_id", "42"])),
        "{stdout}"
    );
    assert!(stdout.contains("policy-denied"), "{stdout}");
    let tag = dir.path().join("tag.jwt");
    std::fs::write(&tag, idp.ci_token("refs/tags/v1.0.0", "jti-tag")).unwrap();
    let tag = tag.to_str().unwrap();
    let stdout = server.ok(
        &admin,
        &[
            "admin",
            "org",
            "trust-policy",
            "evaluate",
            "acme",
            "--token-file",
            tag,
        ],
    );
    assert!(
        stdout.contains("chosen: org_") && stdout.contains("/release"),
        "{stdout}"
    );
    let json = server.cli(
        &token,
        &[
            "admin",
            "org",
            "trust-policy",
            "evaluate",
            "acme",
            "--token-file",
            tag,
            "--json",
        ],
    );
    assert_eq!(
        json["outcomes"][0]["matched"], true,
        "a dry run leaves the token usable"
    );

    assert_eq!(
        server.ok(
            &admin,
            &["admin", "org", "trust-policy", "delete", "acme", "release"]
        ),
        "deleted release\n"
    );
    let list = server.cli(&token, &["admin", "org", "trust-policy", "list", "acme"]);
    assert_eq!(list["policies"], serde_json::json!([]));
    let (_, stderr) = server.refused(
        &admin,
        &["admin", "org", "trust-policy", "get", "acme", "release"],
    );
    assert!(stderr.contains("[not-found]"), "{stderr}");
    server.terminate();
}

/// `tollgate publish …`: a user starts a session and follows it (`init`, `wait`, `status`);
/// a CI job attests with its OIDC token, reports, takes the combined token and finalizes
/// (`publish runner …`). A replayed CI token, a wrong nonce, a branch build, a second
/// finalization and an unknown session are refused, each naming its reason; a user
/// cancels a session; `wait` gives up at its timeout.
#[test]
fn publish_flow_user_and_runner() {
    let idp = Idp::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(&config, idp.config()).unwrap();
    let server = start_with(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--config", config.to_str().unwrap()],
        &[],
    );
    let admin = server.admin_token.clone().unwrap();
    let identity = format!("{}/users=alice", idp.url);
    let alice = server.cli(&admin, &["admin", "user", "create", "--identity", &identity]);
    let alice = alice["id"].as_str().unwrap().to_owned();
    server.cli(&admin, &["admin", "org", "create", "acme", "--owner", &alice]);
    let policy = dir.path().join("release.json");
    let spec = serde_json::json!({
        "issuer": "gha",
        "conditions": [
            {"claim": "repository", "equals": "acme/app"},
            {"claim": "ref", "glob": "refs/tags/v*"}
        ],
        "grant": {"publish": ["acme-*"]}
    });
    std::fs::write(&policy, spec.to_string()).unwrap();
    server.cli(
        &admin,
        &[
            "admin",
            "org",
            "trust-policy",
            "put",
            "acme",
            "release",
            "--file",
            policy.to_str().unwrap(),
        ],
    );

    // Alice's access token for tollgate's API, in acme.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let upstream = idp.user_token("alice");
    let exchange = tollgate_client::TokenExchange {
        audience: Some("tollgate"),
        org: Some("acme"),
        ..tollgate_client::TokenExchange::jwt(&upstream)
    };
    let token = rt
        .block_on(
            tollgate_client::Client::new(&server.url)
                .unwrap()
                .token_exchange(&exchange),
        )
        .unwrap()
        .access_token;
    let user = [("TOLLGATE_TOKEN", token.as_str())];

    let (_, stderr) = server.refused(
        &[],
        &["publish", "init", "--package", "acme-cli", "--version", "1"],
    );
    assert!(stderr.contains("TOLLGATE_TOKEN"), "{stderr}");

    let init = |version: &str| {
        let out = server.ok(
            &user,
            &["publish", "init", "--package", "acme-cli", "--version", version],
        );
        let (session, nonce) = (field(&out, "session_id"), field(&out, "nonce"));
        assert!(
            out.contains(&format!(
                "gh workflow run publish.yml -f session_id={session} -f nonce={nonce}"
            )),
            "{out}"
        );
        (session.to_owned(), nonce.to_owned())
    };
    let (session, nonce) = init("1.2.3");
    let status = server.ok(&user, &["publish", "status", &session]);
    assert_eq!(field(&status, "state"), "pending", "{status}");
    assert_eq!(field(&status, "package"), "acme-cli 1.2.3", "{status}");

    // Alice waits for the attestation while the job attests.
    let waiter = Command::new(BIN)
        .args([
            "publish",
            "wait",
            &session,
            "--until",
            "attested",
            "--timeout",
            "60s",
        ])
        .env("TOLLGATE_URL", &server.url)
        .env("TOLLGATE_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let oidc = dir.path().join("oidc.jwt");
    std::fs::write(&oidc, idp.ci_token("refs/tags/v1.2.3", "jti-1")).unwrap();
    let oidc = oidc.to_str().unwrap();
    let secret = server.ok(
        &[],
        &[
            "publish",
            "runner",
            "attest",
            &session,
            "--nonce",
            &nonce,
            "--oidc-token-file",
            oidc,
        ],
    );
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("tg_pr_"), "{secret}");
    let waited = waiter.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&waited.stdout);
    assert!(
        waited.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert!(
        text.contains("CI job acme/app@refs/tags/v1.2.3 (policy release, run 1001)"),
        "{text}"
    );

    let runner = [("TOLLGATE_RUNNER_SECRET", secret.as_str())];
    server.ok(
        &runner,
        &[
            "publish",
            "runner",
            "status",
            &session,
            "building",
            "--message",
            "compiling",
        ],
    );
    let combined = server.ok(&runner, &["publish", "runner", "combined", &session]);
    let combined = combined.trim();
    assert_eq!(jwt_part(combined, 0)["typ"], "publish+jwt");
    let claims = jwt_part(combined, 1);
    assert_eq!(claims["sub"], alice.as_str());
    assert_eq!(claims["aud"], "tollgate:publish");
    assert_eq!(claims["act"]["iss"], format!("{}/gha", idp.url));
    assert_eq!(claims["act"]["sub"], "repo:acme/app:ref:refs/tags/v1.2.3");
    assert_eq!(
        (&claims["publish"]["package"], &claims["publish"]["version"]),
        (&"acme-cli".into(), &"1.2.3".into())
    );
    assert_eq!(claims["publish"]["session"], session.as_str());
    let (_, stderr) = server.refused(&runner, &["publish", "runner", "combined", &session]);
    assert!(
        stderr.contains("[publish-session-state]"),
        "once per session: {stderr}"
    );

    let status = server.ok(&user, &["publish", "status", &session]);
    assert_eq!(field(&status, "state"), "token-issued", "{status}");
    assert!(status.contains("building: compiling"), "{status}");
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().eq(["repository", "acme/app"])),
        "{status}"
    );
    server.ok(
        &runner,
        &[
            "publish",
            "runner",
            "finalize",
            &session,
            "--outcome",
            "succeeded",
        ],
    );
    let waited = server.ok(&user, &["publish", "wait", &session]);
    assert!(waited.contains("finalized: succeeded (by runner)"), "{waited}");
    let (_, stderr) = server.refused(
        &user,
        &["publish", "finalize", &session, "--outcome", "cancelled"],
    );
    assert!(stderr.contains("[publish-session-state]"), "single use: {stderr}");

    // A second session: the used CI token, a wrong nonce and a branch build are refused;
    // the session stays pending until Alice cancels it.
    let (second, nonce) = init("1.2.4");
    let attest = |nonce: &str, token: &str| {
        std::fs::write(dir.path().join("try.jwt"), token).unwrap();
        let file = dir.path().join("try.jwt");
        server.refused(
            &[],
            &[
                "publish",
                "runner",
                "attest",
                &second,
                "--nonce",
                nonce,
                "--oidc-token-file",
                file.to_str().unwrap(),
            ],
        )
    };
    let replayed = std::fs::read_to_string(oidc).unwrap();
    assert!(attest(&nonce, &replayed).1.contains("[token-replayed]"));
    let fresh = idp.ci_token("refs/tags/v1.2.4", "jti-2");
    assert!(
        attest("not-the-nonce", &fresh)
            .1
            .contains("[publish-nonce-mismatch]")
    );
    let (_, stderr) = attest(&nonce, &idp.ci_token("refs/heads/main", "jti-3"));
    assert!(stderr.contains("[policy-denied]"), "{stderr}");
    assert!(
        stderr.contains("matches glob \"refs/tags/v*\"") && stderr.contains("refs/heads/main"),
        "the refusal shows the failed condition: {stderr}"
    );
    let cancelled = server.ok(
        &user,
        &[
            "publish",
            "finalize",
            &second,
            "--outcome",
            "cancelled",
            "--message",
            "wrong tag",
        ],
    );
    assert_eq!(field(&cancelled, "outcome"), "cancelled (by user)", "{cancelled}");
    let (stdout, _) = server.refused(&user, &["publish", "wait", &second]);
    assert!(stdout.contains("finalized: cancelled (by user)"), "{stdout}");

    // Nobody attests the third: `wait` gives up at its timeout.
    let (third, _) = init("1.2.5");
    let (_, stderr) = server.refused(&user, &["publish", "wait", &third, "--timeout", "1s"]);
    assert!(
        stderr.contains("timed out after 1s") && stderr.contains("still pending"),
        "{stderr}"
    );

    let unknown = format!("ps_{}", "0".repeat(32));
    let (_, stderr) = server.refused(&user, &["publish", "status", &unknown]);
    assert!(stderr.contains("[publish-session-unknown]"), "{stderr}");
    server.terminate();
}

/// A server whose users sign in at the test IdP, and carol signed in through the API (to
/// approve the CLI's device code as the verification page would).
struct LoginWorld {
    _idp: Idp,
    dir: tempfile::TempDir,
    server: Server,
    rt: tokio::runtime::Runtime,
    sdk: tollgate_client::Client,
    carol: String,
    carol_sub: String,
}

fn login_world() -> LoginWorld {
    let idp = Idp::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!("[device]\ninterval = \"1s\"\n\n{}", idp.config()),
    )
    .unwrap();
    let server = start_with(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--config", config.to_str().unwrap()],
        &[],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sdk = tollgate_client::Client::new(&server.url).unwrap();
    let upstream = idp.user_token("carol");
    let exchange = tollgate_client::TokenExchange {
        audience: Some("tollgate"),
        ..tollgate_client::TokenExchange::jwt(&upstream)
    };
    let carol = rt.block_on(sdk.token_exchange(&exchange)).unwrap().access_token;
    let carol_sub = rt.block_on(sdk.auth_status(&carol)).unwrap().sub;
    LoginWorld {
        _idp: idp,
        dir,
        server,
        rt,
        sdk,
        carol,
        carol_sub,
    }
}

/// Runs `tollgate login` with `store` arguments, approves the code it shows as carol, and
/// returns what it printed after the code.
fn device_login(w: &LoginWorld, store: &[&str]) -> Vec<String> {
    let mut login = Command::new(BIN)
        .args([
            "login",
            "--server",
            &w.server.url,
            "--no-browser",
            "--timeout",
            "60s",
        ])
        .args(store)
        .env_remove("TOLLGATE_TOKEN_PASSPHRASE")
        .env("XDG_CONFIG_HOME", w.dir.path().join("xdg"))
        .env_remove("TOLLGATE_TOKEN_FILE")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = login.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The code is shown on a line of its own: XXXX-XXXX.
    let code = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("login shows a code");
        let t = line.trim();
        if t.len() == 9 && t.as_bytes()[4] == b'-' && t.chars().all(|c| c == '-' || c.is_ascii_uppercase()) {
            break t.to_owned();
        }
    };
    let as_carol = w.sdk.clone().with_user_token(w.carol.clone());
    w.rt.block_on(as_carol.device_approve(&code, None)).unwrap();
    let status = login.wait().unwrap();
    // Everything it printed: the reader thread ends (and the channel closes) at its EOF.
    let rest: Vec<String> = rx.iter().collect();
    assert!(status.success(), "login failed: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("signed in as")), "{rest:?}");
    rest
}

/// `tollgate login` runs the device flow against a real server: it shows the code, a
/// signed-in user approves it (as the web page would, through the API), and the refresh
/// token lands in an encrypted file of mode 0600; `whoami` and `token` refresh through it
/// (rotating what is stored), `logout` ends the session at the server and removes the file.
#[test]
fn login_whoami_token_logout_with_the_file_store() {
    let w = login_world();
    let (dir, server, rt, sdk, carol_sub) = (&w.dir, &w.server, &w.rt, &w.sdk, &w.carol_sub);
    let creds = dir.path().join("cfg").join("credentials.json");
    let store = ["--token-file", creds.to_str().unwrap()];
    device_login(&w, &store);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let sealed = std::fs::read_to_string(&creds).unwrap();
    assert!(!sealed.contains("tg_rt_"), "the refresh token is sealed");

    let whoami: serde_json::Value =
        serde_json::from_str(&server.ok(&[], &[&["whoami"], &store[..]].concat())).unwrap();
    assert_eq!(whoami["sub"], carol_sub.as_str());
    assert_ne!(
        std::fs::read_to_string(&creds).unwrap(),
        sealed,
        "the rotated refresh token was stored"
    );
    let token = server.ok(&[], &[&["token"], &store[..]].concat());
    assert_eq!(
        &rt.block_on(sdk.auth_status(token.trim())).unwrap().sub,
        carol_sub
    );

    // A device key, enrolled from this sign-in, signs in again without a code.
    let key_file = dir.path().join("cfg").join("laptop-key.json");
    let key_args = [
        "key",
        "add",
        "--device",
        "laptop",
        "--key-file",
        key_file.to_str().unwrap(),
    ];
    server.ok(&[], &[&key_args[..], &store[..]].concat());
    let sealed_key = std::fs::read_to_string(&key_file).unwrap();
    assert!(!sealed_key.contains("PRIVATE"), "the private key is sealed");

    server.ok(&[], &[&["logout"], &store[..]].concat());
    assert!(!creds.exists(), "logout forgets the sign-in");
    let (_, err) = server.refused(&[], &[&["whoami"], &store[..]].concat());
    assert!(err.contains("tollgate login"), "{err}");

    let key_login = [
        "login",
        "--server",
        &server.url,
        "--key-file",
        key_file.to_str().unwrap(),
    ];
    server.ok(&[], &[&key_login[..], &store[..]].concat());
    let again: serde_json::Value =
        serde_json::from_str(&server.ok(&[], &[&["whoami"], &store[..]].concat())).unwrap();
    assert_eq!(again["sub"], carol_sub.as_str());
}

/// The default store (`auto`) on Linux is the sealed file in `$XDG_CONFIG_HOME` (see
/// `token_store` for why not the kernel keyring): `whoami`, `token` and `logout` find it in
/// other processes and keep the rotated token there; `logout` removes it.
#[cfg(target_os = "linux")]
#[test]
fn login_whoami_token_logout_with_the_default_store() {
    let w = login_world();
    let xdg = w.dir.path().join("xdg");
    let file = xdg.join("tollgate").join("credentials.json");
    let env = [("XDG_CONFIG_HOME", xdg.to_str().unwrap())];
    let said = device_login(&w, &[]);
    assert!(
        said.iter().any(|l| l.contains(file.to_str().unwrap())),
        "{said:?}"
    );
    let sealed = std::fs::read_to_string(&file).unwrap();
    let whoami: serde_json::Value = serde_json::from_str(&w.server.ok(&env, &["whoami"])).unwrap();
    assert_eq!(whoami["sub"], w.carol_sub.as_str());
    let token = w.server.ok(&env, &["token"]);
    assert_eq!(
        w.rt.block_on(w.sdk.auth_status(token.trim())).unwrap().sub,
        w.carol_sub
    );
    assert_ne!(
        std::fs::read_to_string(&file).unwrap(),
        sealed,
        "rotations are kept"
    );
    w.server.ok(&env, &["logout"]);
    assert!(!file.exists());
    let (_, err) = w.server.refused(&env, &["whoami"]);
    assert!(err.contains("tollgate login"), "{err}");
}

/// `openssl verify -purpose <purpose>` of `crt` against the chain file the CLI wrote (its
/// issuing CA untrusted, its root trusted).
fn openssl_verify(crt: &Path, chain: &Path, purpose: &str) {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(chain).unwrap();
    let (issuing, root) = text.split_at(text.find("-----END CERTIFICATE-----\n").unwrap() + 26);
    std::fs::write(dir.path().join("issuing.pem"), issuing).unwrap();
    std::fs::write(dir.path().join("root.pem"), root).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-purpose", purpose, "-CAfile"])
        .arg(dir.path().join("root.pem"))
        .arg("-untrusted")
        .arg(dir.path().join("issuing.pem"))
        .arg(crt)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// `tollgate cert request --server`: a key generated by the CLI (mode 0600), the server
/// certificate a service account gets for it within its patterns, and the CA chain; the
/// certificate verifies with `openssl verify` and holds the key written next to it. A name
/// outside the patterns fails with the rule's reason.
#[test]
fn cert_request_writes_a_key_a_server_certificate_and_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token.clone().unwrap();
    let created = server.cli(
        &admin,
        &[
            "admin",
            "client",
            "create",
            "--name",
            "web",
            "--scope",
            "certificate:sign:server",
            "--audience",
            "tollgate",
        ],
    );
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sdk = tollgate_client::Client::new(&server.url)
        .unwrap()
        .with_admin_token(admin.clone().into());
    let rules = tollgate_client::proto::certs::CertificateRules {
        dns: vec!["*.build.example.com".into()],
        ips: vec![],
    };
    rt.block_on(sdk.set_certificate_rules(&client_id, &rules))
        .unwrap();
    let out = dir.path().join("certs");
    let env = [("TOLLGATE_CLIENT_SECRET", secret.as_str())];
    let args = [
        "cert",
        "request",
        "--server",
        "--dns",
        "a.build.example.com",
        "--client-id",
        &client_id,
        "--out",
        out.to_str().unwrap(),
        "--name",
        "web",
        "--ttl",
        "24h",
    ];
    server.ok(&env, &args);
    let (key, crt, chain) = (
        out.join("web.key"),
        out.join("web.crt"),
        out.join("web-chain.pem"),
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    openssl_verify(&crt, &chain, "sslserver");
    let pubkey = |args: &[&str], file: &Path| {
        let o = Command::new("openssl").args(args).arg(file).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    assert_eq!(
        pubkey(&["x509", "-noout", "-pubkey", "-in"], &crt),
        pubkey(&["pkey", "-pubout", "-in"], &key),
        "the certificate holds the key written next to it"
    );
    let refused = [
        "cert",
        "request",
        "--server",
        "--dns",
        "evilbuild.example.com",
        "--client-id",
        &client_id,
        "--out",
        out.to_str().unwrap(),
        "--name",
        "evil",
    ];
    let (_, err) = server.refused(&env, &refused);
    assert!(err.contains("san-not-allowed"), "{err}");
    assert!(!out.join("evil.key").exists(), "nothing is written for a refusal");
}

/// `tollgate cert request --client --token …` (how a CI job or a script asks): the key stays
/// here, the client certificate names the token's user in its org and verifies with
/// `openssl verify -purpose sslclient`; a stale token is refused with its reason.
#[test]
fn cert_request_with_a_token_writes_a_client_certificate() {
    let w = login_world();
    let admin = tollgate_client::Client::new(&w.server.url)
        .unwrap()
        .with_admin_token(w.server.admin_token.clone().unwrap().into());
    let org = tollgate_client::proto::orgs::CreateOrgRequest {
        name: "acme".into(),
        owner: Some(w.carol_sub.clone()),
        ..Default::default()
    };
    w.rt.block_on(admin.create_org(&org)).unwrap();
    let upstream = w._idp.user_token("carol");
    let exchange = tollgate_client::TokenExchange {
        audience: Some("tollgate"),
        org: Some("acme"),
        ..tollgate_client::TokenExchange::jwt(&upstream)
    };
    let in_acme =
        w.rt.block_on(w.sdk.token_exchange(&exchange))
            .unwrap()
            .access_token;
    let out = w.dir.path().join("client-certs");
    let args = |name: &'static str| {
        vec![
            "cert".to_owned(),
            "request".into(),
            "--client".into(),
            "--key-type".into(),
            "ed25519".into(),
            "--out".into(),
            out.to_str().unwrap().to_owned(),
            "--name".into(),
            name.to_owned(),
            "--ttl".into(),
            "15m".into(),
        ]
    };
    let mut ok_args = args("me");
    ok_args.extend(["--token".to_owned(), in_acme.clone()]);
    let ok_args: Vec<&str> = ok_args.iter().map(String::as_str).collect();
    w.server.ok(&[], &ok_args);
    let crt = std::fs::read_to_string(out.join("me.crt")).unwrap();
    openssl_verify(&out.join("me.crt"), &out.join("me-chain.pem"), "sslclient");
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(out.join("me.crt"))
        .output()
        .unwrap();
    let subject = String::from_utf8_lossy(&subject.stdout).to_string();
    assert!(
        subject.contains(&format!("CN={}", w.carol_sub)) && subject.contains("O=acme"),
        "{subject} / {crt}"
    );
    // A token from before carol's roles changed (from the environment, as in a CI job):
    // refused with its reason, nothing written.
    let refused_args = args("stale");
    let refused_args: Vec<&str> = refused_args.iter().map(String::as_str).collect();
    let (_, err) = w
        .server
        .refused(&[("TOLLGATE_TOKEN", w.carol.as_str())], &refused_args);
    assert!(err.contains("user-version-stale"), "{err}");
    assert!(!out.join("stale.key").exists());
}
