//! Notifications from the real daemon (`ringmaster serve --once`) to real
//! HTTP receivers on 127.0.0.1, one test per target kind (Slack, Teams, the
//! generic signed webhook): the receiver answers the first message with a
//! 500, the daemon retries it at its next pass, and a restart sends nothing
//! twice. A retry also waits for its backoff.

mod support;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, KeyInit as _, Mac as _};
use ringmaster::store::Store;
use serde_json::Value;
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use support::{TestRepo, ringmaster, stderr};

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Value,
    raw: Bytes,
    status: u16,
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    /// Answer 500 to this many requests first.
    fail_first: Mutex<usize>,
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let status = {
        let mut failing = inbox.fail_first.lock().unwrap();
        if *failing > 0 {
            *failing -= 1;
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    };
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    inbox.received.lock().unwrap().push(Received {
        headers,
        body,
        raw,
        status: status.as_u16(),
    });
    status
}

struct Setup {
    repo: TestRepo,
    dir: tempfile::TempDir,
    inbox: Arc<Inbox>,
    _server: ringmaster::api::ApiServer,
}

const SECRET: &str = "notification hmac secret";

impl Setup {
    async fn new(kind: &str, fail_first: usize, base_delay_seconds: u64) -> Setup {
        let inbox = Arc::new(Inbox {
            fail_first: Mutex::new(fail_first),
            ..Inbox::default()
        });
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(inbox.clone());
        let server = ringmaster::api::ApiServer::start("127.0.0.1:0", router)
            .await
            .expect("receiver");
        let repo = TestRepo::sample();
        let dir = tempfile::tempdir().expect("dir");
        let keys = dir.path().join("keys");
        let output = ringmaster(&["keygen", "--out", path(&keys)], dir.path());
        assert!(output.status.success(), "{}", stderr(&output));
        std::fs::write(
            dir.path().join("url"),
            format!("http://{}/hook\n", server.local_addr),
        )
        .unwrap();
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        let secret_line = if kind == "webhook" {
            format!("    secret_file: {}\n", dir.path().join("secret").display())
        } else {
            String::new()
        };
        std::fs::write(
            dir.path().join("ringmaster.yaml"),
            format!(
                "planes:\n  intune: {{type: sim}}\n  jamf: {{type: sim}}\n  sccm: {{type: sim}}\n  landscape: {{type: sim}}\n  ansible: {{type: sim}}\n\
                 notifications:\n  - name: team\n    kind: {kind}\n    url_file: {}\n{secret_line}    \
                 events: [intent_decided, awaiting_cab]\n    template: \"{{title}} ({{trigger}})\"\n    \
                 retry: {{base_delay_seconds: {base_delay_seconds}, max_attempts: 5}}\n",
                dir.path().join("url").display()
            ),
        )
        .unwrap();
        Setup {
            repo,
            dir,
            inbox,
            _server: server,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `ringmaster serve --once` in a blocking thread (the receiver runs on
    /// this runtime).
    async fn serve_once(&self) {
        let args: Vec<String> = [
            "serve",
            "--once",
            "--repo",
            path(&self.repo.path),
            "--state",
            path(&self.state()),
            "--key",
            path(&self.dir.path().join("keys/ringmaster.key")),
            "--config",
            path(&self.dir.path().join("ringmaster.yaml")),
        ]
        .map(str::to_owned)
        .to_vec();
        let cwd = self.repo.path.clone();
        let output = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ringmaster(&args, &cwd)
        })
        .await
        .expect("serve");
        assert!(output.status.success(), "{}", stderr(&output));
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().unwrap().clone()
    }

    fn deliveries(&self) -> Vec<ringmaster::store::NotificationDelivery> {
        Store::open_existing(&self.state().join("ringmaster.db"))
            .expect("store")
            .notification_deliveries("team")
            .expect("deliveries")
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn delivery_id(received: &Received) -> String {
    received.headers["x-ringmaster-delivery"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The scenario every kind passes; returns the messages delivered.
async fn retried_after_a_500_and_never_repeated(kind: &str) -> Vec<Received> {
    let setup = Setup::new(kind, 1, 0).await;
    setup.serve_once().await;
    let first = setup.received();
    assert!(
        first.len() >= 8,
        "7 decisions and the approvals awaited: {first:#?}"
    );
    assert_eq!(first[0].status, 500);
    assert!(first[1..].iter().all(|r| r.status == 200));
    let ids: std::collections::BTreeSet<String> = first.iter().map(delivery_id).collect();
    assert_eq!(ids.len(), first.len(), "one message per event");
    let rows = setup.deliveries();
    assert_eq!(rows.len(), first.len());
    let pending: Vec<_> = rows.iter().filter(|row| row.state == "pending").collect();
    assert_eq!(pending.len(), 1, "{rows:#?}");
    assert_eq!(pending[0].attempts, 1);
    assert!(
        pending[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("HTTP 500")
    );

    // The next pass retries the one that failed, with the same delivery id.
    setup.serve_once().await;
    let second = setup.received();
    assert_eq!(second.len(), first.len() + 1, "{second:#?}");
    let retry = second.last().unwrap();
    assert_eq!(delivery_id(retry), delivery_id(&first[0]));
    assert_eq!(retry.raw, first[0].raw, "the same message");
    assert_eq!(retry.status, 200);
    assert!(
        setup
            .deliveries()
            .iter()
            .all(|row| row.state == "delivered")
    );

    // A restart sends nothing again.
    setup.serve_once().await;
    assert_eq!(
        setup.received().len(),
        second.len(),
        "no duplicate after a restart"
    );
    setup
        .received()
        .into_iter()
        .filter(|r| r.status == 200)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_messages_are_retried_after_a_500_and_never_repeated() {
    let delivered = retried_after_a_500_and_never_repeated("slack").await;
    let texts: Vec<&str> = delivered
        .iter()
        .map(|r| r.body["text"].as_str().expect("Slack's text"))
        .collect();
    assert!(
        texts.contains(&"osquery-6.0.0-it: REQUIRE_APPROVAL (intent_decided)"),
        "{texts:#?}"
    );
    assert!(
        texts.contains(&"build-agent-2.8.0-engineering awaits exception (awaiting_cab)"),
        "{texts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn teams_cards_are_retried_after_a_500_and_never_repeated() {
    let delivered = retried_after_a_500_and_never_repeated("teams").await;
    for message in &delivered {
        assert_eq!(message.body["type"], "message");
        let attachment = &message.body["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(attachment["content"]["type"], "AdaptiveCard");
    }
    assert!(delivered.iter().any(|m| {
        m.body["attachments"][0]["content"]["body"][0]["text"]
            == "osquery-6.0.0-it: REQUIRE\\_APPROVAL"
    }));
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_webhooks_are_retried_after_a_500_and_never_repeated() {
    let delivered = retried_after_a_500_and_never_repeated("webhook").await;
    for message in &delivered {
        let timestamp = message.headers["x-ringmaster-timestamp"].to_str().unwrap();
        let signature = message.headers["x-ringmaster-signature"].to_str().unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(&message.raw);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(signature, expected, "HMAC-SHA256 over <timestamp>.<body>");
        assert!(message.body["event"]["seq"].as_u64().is_some());
        assert_eq!(
            message.headers["x-ringmaster-event"].to_str().unwrap(),
            message.body["trigger"].as_str().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_waits_for_its_backoff() {
    let setup = Setup::new("slack", 1, 3600).await;
    setup.serve_once().await;
    let first = setup.received().len();
    setup.serve_once().await;
    assert_eq!(
        setup.received().len(),
        first,
        "not retried before its backoff"
    );
    let rows = setup.deliveries();
    let pending: Vec<_> = rows.iter().filter(|row| row.state == "pending").collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 1);
}
