//! The `ringmaster` binary end to end: `serve --listen ... --oidc-issuer`
//! serves `/api/v1` next to the webhooks; `status --server URL
//! --token-file F` prints the same table as local `status`; `hold
//! --server` queues as the token's principal (or is refused); the signed
//! incident webhook keeps working on the same listener.

use crate::harness::{CHROME, Tenant, oid};
use crate::issuer::{AUDIENCE, Issuer, rsa_key};
use ringmaster::api::incidents::{IntakeSecret, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_generic};
use serde_json::json;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const HOOK_SECRET: &str = "hook-secret-api-tests-0001";
/// The `/metrics` scrape token `serve` is given (--metrics-token-file).
const SCRAPE_TOKEN: &str = "scrape-token-for-prometheus-0123456789abcdef";

struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(tenant: &Tenant, issuer: &Issuer) -> Served {
    let config = tenant.root.join("ringmaster-daemon.yaml");
    std::fs::write(
        &config,
        "planes:\n  intune: {type: sim}\n  jamf: {type: sim}\n  sccm: {type: sim}\n  landscape: {type: sim}\n  ansible: {type: sim}\n",
    )
    .expect("write the daemon config");
    let scrape_token = tenant.root.join("metrics.token");
    std::fs::write(&scrape_token, format!("{SCRAPE_TOKEN}\n")).expect("write the scrape token");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(["serve", "--repo"])
        .arg(tenant.governed())
        .arg("--state")
        .arg(tenant.state())
        .arg("--key")
        .arg(tenant.root.join("keys/ringmaster.key"))
        .arg("--config")
        .arg(&config)
        .arg("--metrics-token-file")
        .arg(&scrape_token)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--oidc-issuer",
            &issuer.url,
            "--oidc-audience",
            AUDIENCE,
        ])
        .env("RINGMASTER_INCIDENT_WEBHOOK_SECRET", HOOK_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("ringmaster: listening on ") {
                let _ = sender.send(Ok(address.trim().to_owned()));
            }
            seen.push(line);
        }
        // serve ended before (or after) listening: say why.
        let _ = sender.send(Err(seen.join("\n")));
    });
    let url = receiver
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("serve prints its address")
        .unwrap_or_else(|stderr| panic!("serve stopped before listening:\n{stderr}"));
    Served { child, url }
}

fn ringmaster(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RINGMASTER_TOKEN")
        .output()
        .expect("ringmaster runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn status_through_the_api_prints_the_local_table_and_writes_are_authorised() {
    let key = rsa_key("cli");
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let served = serve(&tenant, &issuer);
    let root = tenant.root.clone();
    let state = tenant.state();
    let state = state.to_str().expect("utf-8");
    let token_file = |principal: &str| {
        let path = root.join(format!("{principal}.token"));
        std::fs::write(&path, issuer.token(&key, &oid(principal))).expect("token file");
        path
    };
    let auditor = token_file("ivan");
    let auditor = auditor.to_str().expect("utf-8");
    let url = served.url.clone();

    // The OpenAPI document is served without credentials.
    let openapi: serde_json::Value = reqwest::get(format!("{url}/api/v1/openapi.json"))
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert_eq!(openapi["openapi"], "3.1.0");

    // The same table, local and remote (the daemon may step between two
    // reads: compare only when two local reads around the remote one agree).
    let (matched, rows) = tokio::task::spawn_blocking({
        let root = root.clone();
        let state = state.to_owned();
        let auditor = auditor.to_owned();
        let url = url.clone();
        move || {
            for _ in 0..20 {
                let before = ringmaster(&["status", "--state", &state], &root);
                let remote = ringmaster(
                    &["status", "--server", &url, "--token-file", &auditor],
                    &root,
                );
                let after = ringmaster(&["status", "--state", &state], &root);
                assert!(remote.status.success(), "{}", text(&remote));
                if before.stdout == after.stdout {
                    assert_eq!(
                        String::from_utf8_lossy(&remote.stdout),
                        String::from_utf8_lossy(&before.stdout)
                    );
                    return (
                        true,
                        String::from_utf8_lossy(&before.stdout).lines().count(),
                    );
                }
            }
            (false, 0)
        }
    })
    .await
    .expect("status");
    assert!(matched, "local status never held still");
    assert!(rows > 7, "the table lists the sample's intents");

    let (held, refused, anonymous, events) = tokio::task::spawn_blocking({
        let root = root.clone();
        let url = url.clone();
        let alice = token_file("alice");
        let bob = token_file("bob");
        move || {
            let held = ringmaster(
                &[
                    "hold",
                    CHROME,
                    "--reason",
                    "finance freeze",
                    "--server",
                    &url,
                    "--token-file",
                    alice.to_str().expect("utf-8"),
                ],
                &root,
            );
            let refused = ringmaster(
                &[
                    "hold",
                    CHROME,
                    "--reason",
                    "not mine",
                    "--server",
                    &url,
                    "--token-file",
                    bob.to_str().expect("utf-8"),
                ],
                &root,
            );
            let anonymous = ringmaster(&["status", "--server", &url], &root);
            let events = ringmaster(
                &[
                    "events",
                    "--intent",
                    CHROME,
                    "--format",
                    "json",
                    "--server",
                    &url,
                    "--token-file",
                    alice.to_str().expect("utf-8"),
                ],
                &root,
            );
            (held, refused, anonymous, events)
        }
    })
    .await
    .expect("cli");
    assert!(held.status.success(), "{}", text(&held));
    assert!(text(&held).contains("queued"), "{}", text(&held));
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("403"), "{}", text(&refused));
    assert!(
        text(&refused).contains("bob may not hold"),
        "{}",
        text(&refused)
    );
    assert_eq!(anonymous.status.code(), Some(2));
    assert!(
        text(&anonymous).contains("--token-file"),
        "{}",
        text(&anonymous)
    );
    assert!(events.status.success(), "{}", text(&events));
    let events: Vec<serde_json::Value> =
        serde_json::from_slice(&events.stdout).expect("events json");
    assert!(events.iter().any(|e| e["event_type"] == "operator_action"
        && e["actor"] == "alice"
        && e["details"]["reason"] == "finance freeze"));

    // The signed incident webhook still works on the same listener.
    let body = serde_json::to_vec(&json!({"id": "INC-7", "app": "google-chrome", "ring": "ring-1-canary",
        "business_unit": "bu-finance", "severity": "sev1", "status": "open", "summary": "crash loop"}))
    .expect("json");
    let now = chrono::Utc::now().timestamp();
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{url}/webhooks/incidents"))
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(
            SIGNATURE_HEADER,
            sign_generic(&IntakeSecret::new(HOOK_SECRET), now, &body),
        )
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("webhook");
    assert_eq!(response.status().as_u16(), 200);
    let forged = client
        .post(format!("{url}/webhooks/incidents"))
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(
            SIGNATURE_HEADER,
            sign_generic(&IntakeSecret::new("guess"), now, &body),
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(forged.status().as_u16(), 401);
    let health = reqwest::get(format!("{url}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    // After its first step the daemon says it runs alone (a SQLite store:
    // no lease, no epoch); "starting" only until then.
    let mut role = serde_json::Value::Null;
    for _ in 0..300 {
        let body: serde_json::Value = reqwest::get(format!("{url}/healthz"))
            .await
            .expect("healthz")
            .json()
            .await
            .expect("healthz json");
        role = body["role"].clone();
        if role != "starting" {
            assert!(body.get("epoch").is_none(), "{body}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(role, "single");
}

/// A view's answer: status, content type, body.
async fn view(url: &str, token: Option<&str>) -> (u16, String, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the view answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_api_configured_the_status_page_and_metrics_need_a_reader_or_the_scrape_token() {
    let key = rsa_key("views");
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let served = serve(&tenant, &issuer);
    let url = served.url.clone();
    let auditor = issuer.token(&key, &oid("ivan"));
    let unknown = issuer.token(&key, "oid-of-nobody-in-principals");
    let other_key = rsa_key("views");
    let forged = issuer.token(&other_key, &oid("olivia"));
    // Anything of the page or the exposition that must not leak.
    let leaked = |body: &str| {
        body.contains("ringmaster_") || body.contains(CHROME) || body.contains("<html")
    };
    for path in ["/", "/metrics"] {
        let target = format!("{url}{path}");
        for (token, status, reason) in [
            (None, 401, "no credentials"),
            (Some("not-a-jwt"), 401, ""),
            (Some(forged.as_str()), 401, ""),
            (Some(unknown.as_str()), 403, "no principal in principals/"),
        ] {
            let (answer, content_type, body) = view(&target, token).await;
            assert_eq!(answer, status, "{path} with {token:?}: {body}");
            assert!(
                content_type.contains("json"),
                "{path}: a problem, {content_type}"
            );
            let problem: serde_json::Value = serde_json::from_str(&body).expect("problem json");
            assert!(
                problem["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains(reason)),
                "{path}: {body}"
            );
            assert!(!leaked(&body), "{path} leaked: {body}");
        }
        // A principal with a reading role sees the view.
        let (answer, _, body) = view(&target, Some(&auditor)).await;
        assert_eq!(answer, 200, "{path} as the auditor: {body}");
        assert!(leaked(&body), "{path} is the real view: {body}");
    }
    // The scrape token opens /metrics, and only /metrics.
    let (answer, content_type, body) = view(&format!("{url}/metrics"), Some(SCRAPE_TOKEN)).await;
    assert_eq!(answer, 200, "{body}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(body.contains("ringmaster_"), "{body}");
    let (answer, _, body) = view(&format!("{url}/"), Some(SCRAPE_TOKEN)).await;
    assert_eq!(answer, 401, "{body}");
    assert!(!leaked(&body), "{body}");
    let (answer, _, body) =
        view(&format!("{url}/metrics"), Some(&format!("{SCRAPE_TOKEN}x"))).await;
    assert_eq!(answer, 401, "{body}");
    // /healthz stays open (load balancers probe it).
    let (answer, _, _) = view(&format!("{url}/healthz"), None).await;
    assert_eq!(answer, 200);
}
