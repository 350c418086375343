//! Schemathesis, a property-based API fuzzer, generates requests from the served
//! `/openapi.json` and checks that no input causes a 5xx and that status codes, content
//! types and bodies match the document. Installed by `bash interop/setup.sh`; skipped
//! without it, except under `CI=true`.

use crate::test_app::TestApp;
use secrecy::ExposeSecret as _;
use tokio::process::Command;

async fn schemathesis_available() -> bool {
    let ok = Command::new("schemathesis")
        .arg("--version")
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !ok {
        crate::test_app::skip_unless_ci("schemathesis is missing");
    }
    ok
}

#[tokio::test]
async fn no_generated_request_gets_a_5xx_or_an_undocumented_answer() {
    if !schemathesis_available().await {
        return;
    }
    let app = TestApp::new().await;
    app.service_account("fuzz-target", &["read"], &["api"]).await;
    // Schemathesis keeps a cache of found failures in its working directory.
    let workdir = tempfile::tempdir().unwrap();
    let out = Command::new("schemathesis")
        .args(["run", &app.url("/openapi.json")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "25", "--workers", "1", "--seed", "1"])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", app.admin_token.expose_secret()),
        ])
        .args(["--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(workdir.path())
        .kill_on_drop(true)
        .output()
        .await
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
