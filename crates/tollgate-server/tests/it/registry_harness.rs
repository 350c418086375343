//! A real CNCF distribution registry (Debian `docker-registry`, distribution 2.8) and the
//! `skopeo` client, for tests of tollgate as a registry's token server. No Docker daemon and
//! no network: the registry runs on a free loopback port with its storage in a temporary
//! directory, and the image pushed is a tiny OCI layout written by the test ([`oci_layout`]).
//!
//! Both tools are installed by `bash interop/setup.sh`; tests start with
//! `if !registry_tools_present() { return; }`, which prints `SKIP` locally and fails under
//! `CI=true` when either is missing.
//!
//! Token auth is configured with a YAML snippet ([`RegistryAuth`]), so the `auth:` section
//! `tollgate registry config` prints can be used verbatim; [`TokenAuth`] builds one by hand.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian package's binary (`serve <config.yml>`).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// The tag [`oci_layout`] gives its image: `oci:<dir>:latest`.
pub const OCI_TAG: &str = "latest";
/// How long one `skopeo` run may take.
const SKOPEO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the registry may take to answer `GET /v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `docker-registry` and `skopeo` are installed. Otherwise panics under `CI=true`,
/// and prints `SKIP` and returns `false` elsewhere.
pub fn registry_tools_present() -> bool {
    let mut missing = Vec::new();
    if !Path::new(REGISTRY_BIN).is_file() {
        missing.push(REGISTRY_BIN);
    }
    let skopeo = Command::new("skopeo").arg("--version").output();
    if !skopeo.is_ok_and(|o| o.status.success()) {
        missing.push("skopeo");
    }
    if missing.is_empty() {
        return true;
    }
    crate::test_app::skip_unless_ci(&format!("registry tools missing: {}", missing.join(", ")));
    false
}

/// The `auth:` section of the registry's config.yml, and the files it refers to.
#[derive(Debug, Clone, Default)]
pub struct RegistryAuth {
    /// Either the section's body (`token:\n  realm: …`), placed under `auth:` with two more
    /// spaces of indentation, or a whole block starting with a top-level `auth:` line, used
    /// as is. `{dir}` is replaced by the absolute directory holding config.yml and `files`
    /// (the registry also runs there, so relative paths work too).
    pub yaml: String,
    /// Written next to config.yml before the registry starts: (file name, contents).
    pub files: Vec<(String, Vec<u8>)>,
}

/// Token auth by hand: the registry trusts tokens from `realm` signed by a key of
/// `rootcertbundle_pem` (written as `rootcertbundle.pem`), with `iss` = `issuer` and `aud` =
/// `service`.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub rootcertbundle_pem: String,
}

impl From<TokenAuth> for RegistryAuth {
    fn from(t: TokenAuth) -> Self {
        let yaml = format!(
            "token:\n  realm: {}\n  service: {}\n  issuer: {}\n  rootcertbundle: {}\n",
            yaml_str(&t.realm),
            yaml_str(&t.service),
            yaml_str(&t.issuer),
            yaml_str("{dir}/rootcertbundle.pem"),
        );
        RegistryAuth {
            yaml,
            files: vec![("rootcertbundle.pem".to_owned(), t.rootcertbundle_pem.into_bytes())],
        }
    }
}

/// A YAML double-quoted scalar (JSON's string syntax is a subset of it).
fn yaml_str(s: &str) -> String {
    Value::from(s).to_string()
}

/// A running `docker-registry serve`, killed when dropped.
#[derive(Debug)]
pub struct RegistryProcess {
    addr: SocketAddr,
    log: PathBuf,
    child: Child,
    http: reqwest::Client,
    /// Config, auth files, storage and the log; removed after the process is killed.
    _dir: tempfile::TempDir,
}

impl RegistryProcess {
    /// Writes a config.yml (filesystem storage in a temporary directory, plain HTTP on a free
    /// loopback port, `auth` if given), starts the registry and waits until `GET /v2/`
    /// answers: 200 without auth, 401 with. Panics with the registry's log if it does not.
    pub async fn start(auth: Option<RegistryAuth>) -> RegistryProcess {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(auth.as_ref()).await {
                Ok(registry) => return registry,
                // Another process took the free port between our probe and the registry's bind.
                Err(logs) if attempt < 3 && logs.contains("address already in use") => continue,
                Err(logs) => panic!("docker-registry did not start:\n{logs}"),
            }
        }
    }

    async fn try_start(auth: Option<&RegistryAuth>) -> Result<RegistryProcess, String> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().expect("UTF-8 temp dir").to_owned();
        let addr = free_port();
        let mut auth_section = String::new();
        if let Some(auth) = auth {
            for (name, contents) in &auth.files {
                std::fs::write(dir.path().join(name), contents).unwrap();
            }
            let yaml = auth.yaml.replace("{dir}", &root);
            if yaml.lines().any(|l| l.starts_with("auth:")) {
                auth_section = yaml;
            } else {
                auth_section.push_str("auth:\n");
                for line in yaml.lines() {
                    auth_section.push_str(&format!("  {line}\n"));
                }
            }
        }
        let mut secret = [0u8; 16];
        tollgate_crypto::random_bytes(&mut secret);
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {addr}\n  secret: {secret}\n\
             health:\n  storagedriver:\n    enabled: false\n\
             {auth_section}",
            storage = yaml_str(&format!("{root}/storage")),
            secret = hex::encode(secret),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, &config).unwrap();
        let log = dir.path().join("registry.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{REGISTRY_BIN} starts: {e}"));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut registry = RegistryProcess {
            addr,
            log,
            child,
            http,
            _dir: dir,
        };
        let expected = if auth.is_some() { 401 } else { 200 };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = registry.child.try_wait().unwrap() {
                return Err(format!(
                    "exited with {status}; config.yml:\n{config}\nlog:\n{}",
                    registry.logs()
                ));
            }
            let probe = registry
                .http
                .get(registry.url("/v2/"))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            match probe {
                Ok(resp) if resp.status().as_u16() == expected => return Ok(registry),
                Ok(resp) => {
                    return Err(format!(
                        "GET /v2/ answered {} (expected {expected}); config.yml:\n{config}\nlog:\n{}",
                        resp.status(),
                        registry.logs()
                    ));
                }
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => {
                    return Err(format!(
                        "GET /v2/ not answered within {START_TIMEOUT:?}: {e}; log:\n{}",
                        registry.logs()
                    ));
                }
            }
        }
    }

    /// `127.0.0.1:PORT`, as in `docker://127.0.0.1:PORT/acme/app:1`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// `docker://127.0.0.1:PORT/{repo_and_tag}`, a skopeo image reference.
    pub fn image(&self, repo_and_tag: &str) -> String {
        format!("docker://{}/{repo_and_tag}", self.addr())
    }

    /// Everything the registry printed so far (for assertion messages).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// `GET path`, following a `WWW-Authenticate: Bearer` challenge (see
    /// [`get_following_challenge`]).
    pub async fn get(&self, path: &str, creds: Option<(&str, &str)>) -> Result<reqwest::Response, String> {
        get_following_challenge(&self.http, &self.url(path), creds).await
    }

    /// The repositories `GET /v2/_catalog` lists, with a bearer token obtained with `creds`
    /// when the registry asks for one. `Err` carries the status and body of a refusal.
    pub async fn catalog(&self, creds: Option<(&str, &str)>) -> Result<Vec<String>, String> {
        let resp = self.get("/v2/_catalog", creds).await?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("GET /v2/_catalog: {status} {body}"));
        }
        let body: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        let repos = body["repositories"]
            .as_array()
            .ok_or(format!("no repositories: {body}"))?;
        Ok(repos
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect())
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address nothing listens on right now.
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The parameters of a `Bearer` challenge (`realm`, `service`, `scope`, `error`, …), or
/// `None` for another scheme. Quoted values may contain commas.
pub fn parse_bearer_challenge(header: &str) -> Option<BTreeMap<String, String>> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_at(after.find(',').unwrap_or(after.len()))
        };
        params.insert(key.trim().to_ascii_lowercase(), value.to_owned());
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    Some(params)
}

/// What a Docker client does with a challenge: `GET realm?service=…&scope=…` with Basic
/// `creds`, and the `token` (or `access_token`) of the answer. `Err` carries the refusal.
pub async fn bearer_token(
    http: &reqwest::Client,
    challenge: &str,
    creds: Option<(&str, &str)>,
) -> Result<String, String> {
    let params = parse_bearer_challenge(challenge).ok_or(format!("not a Bearer challenge: {challenge}"))?;
    let realm = params.get("realm").ok_or(format!("no realm: {challenge}"))?;
    let mut query = Vec::new();
    if let Some(service) = params.get("service") {
        query.push(("service", service.as_str()));
    }
    if let Some(scope) = params.get("scope") {
        // Several scopes are space-separated in one challenge, one `scope` each on the wire.
        query.extend(scope.split(' ').map(|s| ("scope", s)));
    }
    let mut req = http.get(realm).query(&query);
    if let Some((user, password)) = creds {
        req = req.basic_auth(user, Some(password));
    }
    let resp = req.send().await.map_err(|e| format!("GET {realm}: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("GET {realm} {query:?}: {status} {body}"));
    }
    let body: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    body["token"]
        .as_str()
        .or(body["access_token"].as_str())
        .map(str::to_owned)
        .ok_or(format!("no token in {body}"))
}

/// `GET url`; on a 401 with a `Bearer` challenge, obtains a token with `creds`
/// ([`bearer_token`]) and repeats the request with it. The response may still be a refusal.
pub async fn get_following_challenge(
    http: &reqwest::Client,
    url: &str,
    creds: Option<(&str, &str)>,
) -> Result<reqwest::Response, String> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Ok(resp);
    }
    let Some(challenge) = resp.headers().get("www-authenticate") else {
        return Ok(resp);
    };
    let challenge = challenge.to_str().map_err(|e| e.to_string())?.to_owned();
    let token = bearer_token(http, &challenge, creds).await?;
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("GET {url} with token: {e}"))
}

/// Runs `skopeo --insecure-policy <args>` with a timeout, isolated from the user's
/// credentials (an empty auth file and Docker config). Stdout on success, else stderr.
pub async fn skopeo(args: &[String]) -> Result<String, String> {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new("skopeo");
    cmd.arg("--insecure-policy")
        .args(args)
        .env("REGISTRY_AUTH_FILE", home.path().join("auth.json"))
        .env("DOCKER_CONFIG", home.path())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(SKOPEO_TIMEOUT, cmd.output()).await {
        Ok(output) => output.map_err(|e| format!("skopeo: {e}"))?,
        Err(_) => return Err(format!("skopeo {args:?}: no answer within {SKOPEO_TIMEOUT:?}")),
    };
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "skopeo {args:?}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn creds_arg(flag: &str, creds: Option<(&str, &str)>) -> Vec<String> {
    creds.map_or_else(Vec::new, |(u, p)| vec![format!("{flag}={u}:{p}")])
}

/// `skopeo copy` between any two transports (`oci:DIR:TAG`, `dir:DIR`,
/// `docker://HOST:PORT/REPO:TAG`), without TLS. `Err` carries skopeo's stderr.
pub async fn skopeo_copy(
    src: &str,
    dest: &str,
    src_creds: Option<(&str, &str)>,
    dest_creds: Option<(&str, &str)>,
) -> Result<(), String> {
    let mut args = vec!["copy".to_owned(), "--src-tls-verify=false".to_owned()];
    args.push("--dest-tls-verify=false".to_owned());
    args.extend(creds_arg("--src-creds", src_creds));
    args.extend(creds_arg("--dest-creds", dest_creds));
    args.extend([src.to_owned(), dest.to_owned()]);
    skopeo(&args).await.map(drop)
}

/// `skopeo list-tags docker://…/REPO`: the repository's tags.
pub async fn skopeo_list_tags(repo: &str, creds: Option<(&str, &str)>) -> Result<Vec<String>, String> {
    let mut args = vec!["list-tags".to_owned(), "--tls-verify=false".to_owned()];
    args.extend(creds_arg("--creds", creds));
    args.push(repo.to_owned());
    let out = skopeo(&args).await?;
    let body: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    let tags = body["Tags"].as_array().ok_or(format!("no Tags: {body}"))?;
    Ok(tags
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect())
}

/// `skopeo inspect docker://…/REPO:TAG` (reads the manifest and the config blob): its JSON.
pub async fn skopeo_inspect(image: &str, creds: Option<(&str, &str)>) -> Result<Value, String> {
    let mut args = vec!["inspect".to_owned(), "--tls-verify=false".to_owned()];
    args.extend(creds_arg("--creds", creds));
    args.push(image.to_owned());
    let out = skopeo(&args).await?;
    serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    format!("sha256:{}", hex::encode(d.as_ref()))
}

/// The file in [`oci_layout`]'s single layer.
pub const OCI_FILE: (&str, &[u8]) = ("hello.txt", b"hello from tollgate\n");

/// Writes a one-layer OCI image layout to `dir/oci-image` (tag [`OCI_TAG`]) and returns that
/// path; `oci:<path>:latest` is its skopeo reference. The layer is an uncompressed tar holding
/// [`OCI_FILE`]. Deterministic: the same bytes (and digests) every time.
pub fn oci_layout(dir: &Path) -> PathBuf {
    let root = dir.join("oci-image");
    let blobs = root.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let write_blob = |bytes: &[u8]| {
        let digest = sha256_digest(bytes);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
        (digest, bytes.len())
    };
    let layer = tar_one_file(OCI_FILE.0, OCI_FILE.1);
    let (layer_digest, layer_size) = write_blob(&layer);
    let config = json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (config_digest, config_size) = write_blob(config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer_size,
        }],
    });
    let (manifest_digest, manifest_size) = write_blob(manifest.to_string().as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": OCI_TAG},
        }],
    });
    std::fs::write(root.join("index.json"), index.to_string()).unwrap();
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    root
}

/// `oci:<path>:latest` for a layout from [`oci_layout`].
pub fn oci_ref(layout: &Path) -> String {
    format!("oci:{}:{OCI_TAG}", layout.display())
}

/// A ustar archive with one regular file (mode 0644, owner root, mtime 0).
fn tar_one_file(name: &str, contents: &[u8]) -> Vec<u8> {
    assert!(name.len() < 100);
    let mut header = [0u8; 512];
    let mut put = |offset: usize, field: &[u8]| header[offset..offset + field.len()].copy_from_slice(field);
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", contents.len()).as_bytes());
    put(136, b"00000000000\0");
    put(148, b"        "); // the checksum counts its own field as spaces
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    put(265, b"root");
    put(297, b"root");
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(contents);
    tar.resize(tar.len().next_multiple_of(512), 0);
    tar.resize(tar.len() + 1024, 0); // two zero blocks end the archive
    tar
}

/// A self-signed P-256 certificate whose private key was discarded: a syntactically valid
/// `rootcertbundle` for tests that only need a token-auth registry to start and challenge.
const UNUSED_ROOT_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIB3zCCAYWgAwIBAgIUCzKAf+ng2nY+a5JH2oSY+IjIbvYwCgYIKoZIzj0EAwIw
RDFCMEAGA1UEAww5dG9sbGdhdGUgcmVnaXN0cnkgaGFybmVzcyB0ZXN0IHJvb3Qg
KG5vIHByaXZhdGUga2V5IGtlcHQpMCAXDTI2MTEyOTEzNDIzNFoYDzIxMjYxMTA1
MTM0MjM0WjBEMUIwQAYDVQQDDDl0b2xsZ2F0ZSByZWdpc3RyeSBoYXJuZXNzIHRl
c3Qgcm9vdCAobm8gcHJpdmF0ZSBrZXkga2VwdCkwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATP0txUZbHZWpZrvzGfD0jELruz5XXcW0JTMlAUvXBf6u4Iav5I2C84
RUhwMSqcC+4vg2GkjaXCXowZlv59b38Eo1MwUTAdBgNVHQ4EFgQUu8DL77QIgyzy
ZioABEueQgTIvU0wHwYDVR0jBBgwFoAUu8DL77QIgyzyZioABEueQgTIvU0wDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEApHhpLUtF3OJ99kXMsCJe
icDL6k0stkb3rVA/yxZSr9YCIBPTa28Z7QtdAAg0lWfvnJn+d43YXeqfgaZGp9mt
4VMj
-----END CERTIFICATE-----
";

/// The harness on its own, without tollgate: push the OCI layout to a registry without
/// auth, pull it back, and find it in the catalog.
#[tokio::test]
async fn plain_registry_push_and_pull() {
    if !registry_tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let layout = oci_layout(work.path());
    let registry = RegistryProcess::start(None).await;
    let image = registry.image("acme/app:1");

    skopeo_copy(&oci_ref(&layout), &image, None, None)
        .await
        .unwrap_or_else(|e| panic!("push: {e}\nregistry log:\n{}", registry.logs()));

    let pulled = work.path().join("pulled");
    let pulled_ref = format!("dir:{}", pulled.display());
    skopeo_copy(&image, &pulled_ref, None, None)
        .await
        .unwrap_or_else(|e| panic!("pull: {e}\nregistry log:\n{}", registry.logs()));
    // The config blob travels unchanged (skopeo may recompress the layer on push).
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(pulled.join("manifest.json")).unwrap()).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config = std::fs::read(pulled.join(config_digest.trim_start_matches("sha256:"))).unwrap();
    assert_eq!(sha256_digest(&config), config_digest);
    let config: Value = serde_json::from_slice(&config).unwrap();
    let diff_ids = &config["rootfs"]["diff_ids"];
    let our_layer = sha256_digest(&tar_one_file(OCI_FILE.0, OCI_FILE.1));
    assert_eq!(diff_ids, &json!([our_layer]), "{config}");
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(1), "{manifest}");

    let tags = skopeo_list_tags(&registry.image("acme/app"), None).await.unwrap();
    assert_eq!(tags, ["1"]);
    let inspect = skopeo_inspect(&image, None).await.unwrap();
    assert_eq!(inspect["Os"], "linux", "{inspect}");
    let catalog = registry.catalog(None).await.unwrap();
    assert!(catalog.iter().any(|r| r == "acme/app"), "{catalog:?}");
}

/// The `auth:` splice: a token-auth registry challenges with the configured realm and
/// service, and the challenge-follow reaches the realm (here: nothing listens there).
#[tokio::test]
async fn token_auth_registry_challenges_with_realm_and_service() {
    if !registry_tools_present() {
        return;
    }
    let realm = format!("http://{}/registry/token", free_port());
    let registry = RegistryProcess::start(Some(RegistryAuth::from(TokenAuth {
        realm: realm.clone(),
        service: "registry.test".to_owned(),
        issuer: "http://tollgate.test".to_owned(),
        rootcertbundle_pem: UNUSED_ROOT_CERT.to_owned(),
    })))
    .await;

    let resp = reqwest::Client::new()
        .get(registry.url("/v2/_catalog"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "{}", registry.logs());
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    let params = parse_bearer_challenge(challenge).unwrap();
    assert_eq!(params.get("realm"), Some(&realm), "{challenge}");
    assert_eq!(params.get("service").map(String::as_str), Some("registry.test"));
    assert_eq!(
        params.get("scope").map(String::as_str),
        Some("registry:catalog:*")
    );

    let err = registry.catalog(Some(("alice", "pw"))).await.unwrap_err();
    assert!(err.contains(&realm), "{err}");
    let err = skopeo_list_tags(&registry.image("acme/app"), Some(("alice", "pw")))
        .await
        .unwrap_err();
    assert!(!err.is_empty());
}
