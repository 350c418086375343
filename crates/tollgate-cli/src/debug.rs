//! `tollgate debug token`: what a token says (decoded locally, nothing trusted), and what
//! tollgate makes of it, step by step — from a running server (`/v1/verify`), or straight
//! from the issuer's published keys (`--issuer-url`) when no server is at hand.

use crate::Remote;
use anyhow::{Context as _, bail};
use base64::Engine as _;
use secrecy::SecretString;
use serde_json::Value;
use std::io::Read as _;
use tollgate_client::Client;
use tollgate_proto::admin::VerifyResponse;

#[derive(Debug, clap::Args)]
pub struct DebugTokenArgs {
    /// The JWT, or `-` to read it from standard input.
    token: String,
    /// Only decode; contact nothing.
    #[arg(long)]
    offline: bool,
    /// Check the signature against this issuer's keys (OIDC discovery) instead of a server.
    #[arg(long, conflicts_with = "offline")]
    issuer_url: Option<String>,
    /// Print the server's verdict as JSON.
    #[arg(long)]
    json: bool,
}

fn read_token(arg: &str) -> anyhow::Result<String> {
    if arg != "-" {
        return Ok(arg.trim().to_owned());
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("cannot read the token from standard input")?;
    Ok(s.trim().to_owned())
}

fn decode_part(part: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn relative(t: i64) -> String {
    let d = t - now();
    match d {
        0 => "now".into(),
        d if d > 0 => format!("in {d}s"),
        d => format!("{}s ago", -d),
    }
}

/// Prints the unverified header and claims, with times made readable. Returns the header.
fn show_decoded(token: &str) -> anyhow::Result<(Value, Value)> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!(
            "not a compact JWS: expected three dot-separated parts, found {}",
            token.split('.').count()
        );
    };
    let header = decode_part(h).context("the header is not base64url JSON")?;
    let claims = decode_part(p).context("the payload is not base64url JSON")?;
    println!("header   {header}");
    println!(
        "claims   (not verified) {}",
        serde_json::to_string_pretty(&claims)?.replace('\n', "\n         ")
    );
    let times: Vec<String> = ["iat", "nbf", "exp"]
        .iter()
        .filter_map(|c| {
            claims
                .get(*c)
                .and_then(Value::as_i64)
                .map(|t| format!("{c} {} ({})", tollgate_server::rfc3339(t), relative(t)))
        })
        .collect();
    if !times.is_empty() {
        println!("times    {}", times.join("  "));
    }
    match header.get("alg").and_then(Value::as_str) {
        Some("none") => println!("warning  alg is `none`: an unsigned token; tollgate refuses it everywhere"),
        Some(a) if a.starts_with("HS") => {
            println!("warning  alg {a} is HMAC; tollgate never accepts HMAC-signed upstream tokens")
        }
        _ => {}
    }
    if claims.get("aud").is_none() {
        println!(
            "note     no aud claim: accepted only from issuers with audience_required = false (e.g. Clerk session tokens)"
        );
    }
    Ok((header, claims))
}

pub async fn run(remote: &Remote, args: DebugTokenArgs) -> anyhow::Result<bool> {
    let token = read_token(&args.token)?;
    let (header, claims) = show_decoded(&token)?;
    if args.offline {
        return Ok(true);
    }
    if let Some(issuer) = &args.issuer_url {
        return check_against_issuer(issuer, &token, &header, &claims).await;
    }
    let mut client = Client::new(&remote.url)?;
    let Some(admin) = &remote.admin_token else {
        bail!(
            "checking against a server needs an admin token (TOLLGATE_ADMIN_TOKEN); or use --issuer-url or --offline"
        );
    };
    client = client.with_admin_token(SecretString::from(admin.clone()));
    let report = client
        .verify_token(&token)
        .await
        .with_context(|| format!("cannot ask {} to verify", remote.url))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&remote.url, &report);
    }
    Ok(report.valid)
}

fn print_report(url: &str, r: &VerifyResponse) {
    println!("server   {url}");
    for s in &r.steps {
        println!(
            "  {} {:<16} {}",
            if s.passed { "✓" } else { "✗" },
            s.check,
            s.detail
        );
    }
    if r.valid {
        println!(
            "verdict  VALID (issuer `{}`)",
            r.issuer_name.as_deref().unwrap_or("?")
        );
        if let Some(id) = &r.identity {
            println!("identity {id}");
        }
        if let Some(x) = &r.exchange {
            println!("exchange {x}");
        }
    } else {
        println!(
            "verdict  REFUSED: {} — {}",
            r.reason.as_deref().unwrap_or("?"),
            r.error_description.as_deref().unwrap_or("")
        );
    }
}

/// Verifies only the signature, against the keys the issuer publishes (discovery + JWKS),
/// so a token can be checked before any tollgate is configured for its issuer.
async fn check_against_issuer(
    issuer: &str,
    token: &str,
    header: &Value,
    claims: &Value,
) -> anyhow::Result<bool> {
    let issuer = issuer.trim_end_matches('/');
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        println!(
            "✗ issuer   the token's iss is {}, not {issuer}",
            claims.get("iss").unwrap_or(&Value::Null)
        );
        return Ok(false);
    }
    let http = reqwest_client()?;
    let discovery: Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("discovery document is not JSON")?;
    let jwks_uri = discovery
        .get("jwks_uri")
        .and_then(Value::as_str)
        .context("discovery has no jwks_uri")?;
    let jwks: tollgate_crypto::JwkSet = http
        .get(jwks_uri)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("JWKS is not a JWK Set")?;
    println!("jwks     {jwks_uri}: {} keys", jwks.keys.len());
    let alg: tollgate_core::JwsAlg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or("")
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let kid = header.get("kid").and_then(Value::as_str);
    let Some(jwk) = jwks
        .keys
        .iter()
        .find(|k| kid.is_none() || k.kid.as_deref() == kid)
    else {
        println!("✗ key      no key with kid {kid:?} is published");
        return Ok(false);
    };
    let key = tollgate_crypto::VerifyingKey::from_jwk(alg, jwk)?;
    let jws = tollgate_crypto::UnverifiedJws::parse(token, 64 * 1024)?;
    match jws.verify(&key) {
        Ok(_) => println!("✓ signature verifies with {} key {}", alg, key.kid()),
        Err(e) => {
            println!("✗ signature {e}");
            return Ok(false);
        }
    }
    println!(
        "note     only the signature was checked; audience and policy are the server's (omit --issuer-url)"
    );
    Ok(true)
}

fn reqwest_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?)
}
