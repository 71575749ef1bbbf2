//! `POST /webhooks/github` on a real HTTP server with a real state store:
//! signatures checked before anything is parsed, the body cap, replays,
//! unknown events, and every recorded GitHub payload.

mod forge_support;

use forge_support::*;
use ringmaster::api::{self, ApiServer, WEBHOOK_BODY_LIMIT, WebhookState};
use ringmaster::forge::WebhookSecret;
use ringmaster::store::{GroupCommitOptions, GroupCommitter, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Receiver {
    _state: tempfile::TempDir,
    database: std::path::PathBuf,
    server: ApiServer,
    url: String,
    wakeups: Arc<AtomicUsize>,
    http: reqwest::Client,
}

impl Receiver {
    /// A receiver for `repository` with the documentation's secret.
    async fn start(repository: &str) -> Receiver {
        let state = tempfile::tempdir().expect("state");
        let database = state.path().join("ringmaster.db");
        let store = Store::open(&database).expect("store");
        let wakeups = Arc::new(AtomicUsize::new(0));
        let counter = wakeups.clone();
        let webhooks = Arc::new(WebhookState {
            secret: WebhookSecret::new(WEBHOOK_SECRET),
            repository: repository.into(),
            deliveries: GroupCommitter::start(store, GroupCommitOptions::default())
                .expect("committer"),
            clock: fixed_clock(),
            on_enqueued: Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
        });
        let server = ApiServer::start("127.0.0.1:0", api::router(Some(webhooks)))
            .await
            .expect("server");
        let url = format!("http://{}/webhooks/github", server.local_addr);
        Receiver {
            _state: state,
            database,
            server,
            url,
            wakeups,
            http: reqwest::Client::new(),
        }
    }

    async fn deliver(&self, event: &str, id: &str, body: &[u8]) -> (u16, serde_json::Value) {
        deliver(&self.http, &self.url, event, id, body, WEBHOOK_SECRET).await
    }

    /// Deliveries waiting in the store (read through a second connection,
    /// as the daemon does).
    fn queued(&self) -> Vec<ringmaster::store::WebhookDelivery> {
        Store::open(&self.database)
            .expect("store")
            .unprocessed_deliveries()
            .expect("deliveries")
    }

    async fn post_raw(&self, headers: &[(&str, &str)], body: Vec<u8>) -> u16 {
        let mut request = self.http.post(&self.url).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("sent").status().as_u16()
    }
}

const DOCUMENTED_SIGNATURE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

#[tokio::test]
async fn githubs_documented_signature_test_vector_is_accepted() {
    let receiver = Receiver::start("contoso/tenant").await;
    let status = receiver
        .post_raw(
            &[
                ("x-github-event", "ping"),
                ("x-github-delivery", "vector-1"),
                ("x-hub-signature-256", DOCUMENTED_SIGNATURE),
            ],
            b"Hello, World!".to_vec(),
        )
        .await;
    assert_eq!(status, 202);
    let status = receiver
        .post_raw(
            &[
                ("x-github-event", "ping"),
                ("x-github-delivery", "vector-2"),
                ("x-hub-signature-256", DOCUMENTED_SIGNATURE),
            ],
            b"Hello, World?".to_vec(),
        )
        .await;
    assert_eq!(status, 401, "one byte changed");
}

#[tokio::test]
async fn forged_or_missing_signature_is_rejected_before_parsing() {
    let receiver = Receiver::start("contoso/tenant").await;
    // Not JSON at all: a 401 (not a 400) shows the signature was checked first.
    let garbage = b"{ this is not json".to_vec();
    let forged = ringmaster::forge::signature::sign(&WebhookSecret::new("wrong secret"), &garbage);
    let body = serde_json::to_vec(&pull_request_payload("opened", 7, "abc", false)).unwrap();
    let forged_valid = ringmaster::forge::signature::sign(&WebhookSecret::new("wrong"), &body);
    let attempts: [(Option<&str>, &Vec<u8>); 4] = [
        (Some(&forged), &garbage),
        (None, &garbage),
        (Some("sha256=zz"), &garbage),
        // A valid payload under a forged signature is refused too.
        (Some(&forged_valid), &body),
    ];
    for (signature, body) in attempts {
        let mut headers = vec![
            ("x-github-event", "pull_request"),
            ("x-github-delivery", "forged-1"),
        ];
        if let Some(signature) = signature {
            headers.push(("x-hub-signature-256", signature));
        }
        assert_eq!(
            receiver.post_raw(&headers, body.clone()).await,
            401,
            "{signature:?}"
        );
    }
    assert!(receiver.queued().is_empty());
    assert_eq!(receiver.wakeups.load(Ordering::SeqCst), 0);
    // The same garbage correctly signed gets past the signature, then fails parsing.
    let (status, _) = receiver
        .deliver("pull_request", "garbage-2", &garbage)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn oversized_body_is_rejected() {
    let receiver = Receiver::start("contoso/tenant").await;
    let mut payload = pull_request_payload("opened", 7, "abc", false);
    payload["padding"] = "x".repeat(WEBHOOK_BODY_LIMIT).into();
    let body = serde_json::to_vec(&payload).unwrap();
    let (status, _) = receiver.deliver("pull_request", "big-1", &body).await;
    assert_eq!(status, 413);
    assert!(receiver.queued().is_empty());
}

#[tokio::test]
async fn replayed_delivery_is_processed_once() {
    let receiver = Receiver::start("contoso/tenant").await;
    let body = serde_json::to_vec(&pull_request_payload("opened", 7, "abc", false)).unwrap();
    let (status, first) = receiver.deliver("pull_request", "delivery-1", &body).await;
    assert_eq!((status, first["status"].as_str()), (202, Some("queued")));
    let (status, second) = receiver.deliver("pull_request", "delivery-1", &body).await;
    assert_eq!(
        (status, second["status"].as_str()),
        (202, Some("duplicate"))
    );
    let queued = receiver.queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].delivery_id, "delivery-1");
    assert_eq!(queued[0].payload["number"], 7);
    assert_eq!(receiver.wakeups.load(Ordering::SeqCst), 1);

    // Still a duplicate after processing, and across a restart of the server.
    Store::open(&receiver.database)
        .unwrap()
        .mark_delivery_processed("delivery-1", now())
        .unwrap();
    let database = receiver.database.clone();
    receiver.server.shutdown().await.expect("stops");
    let restarted = ApiServer::start(
        "127.0.0.1:0",
        api::router(Some(Arc::new(WebhookState {
            secret: WebhookSecret::new(WEBHOOK_SECRET),
            repository: "contoso/tenant".into(),
            deliveries: GroupCommitter::start(
                Store::open(&database).unwrap(),
                GroupCommitOptions::default(),
            )
            .unwrap(),
            clock: fixed_clock(),
            on_enqueued: Box::new(|| {}),
        }))),
    )
    .await
    .unwrap();
    let url = format!("http://{}/webhooks/github", restarted.local_addr);
    let (status, third) = deliver(
        &reqwest::Client::new(),
        &url,
        "pull_request",
        "delivery-1",
        &body,
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!((status, third["status"].as_str()), (202, Some("duplicate")));
    assert!(
        Store::open(&database)
            .unwrap()
            .unprocessed_deliveries()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_events_and_actions_are_acknowledged_and_dropped() {
    let receiver = Receiver::start("contoso/tenant").await;
    let (status, answer) = receiver
        .deliver("issues", "unknown-1", b"{\"action\":\"opened\"}")
        .await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("ignored")));
    let labeled = serde_json::to_vec(&pull_request_payload("labeled", 7, "abc", false)).unwrap();
    let (status, answer) = receiver
        .deliver("pull_request", "unknown-2", &labeled)
        .await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("ignored")));
    let other_repo = serde_json::to_vec(&{
        let mut payload = pull_request_payload("opened", 7, "abc", false);
        payload["repository"]["full_name"] = "someone/else".into();
        payload
    })
    .unwrap();
    let (status, answer) = receiver
        .deliver("pull_request", "unknown-3", &other_repo)
        .await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("ignored")));
    assert!(receiver.queued().is_empty());
    assert_eq!(receiver.wakeups.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn every_recorded_github_payload_is_accepted() {
    let receiver = Receiver::start("Codertocat/Hello-World").await;
    let expected = [
        ("ping.event.0.json", "ping", "pong"),
        ("pull_request.opened.0.json", "pull_request", "queued"),
        ("pull_request.synchronize.22.json", "pull_request", "queued"),
        ("pull_request.closed.3.json", "pull_request", "queued"),
        (
            "pull_request_review.submitted.0.json",
            "pull_request_review",
            "queued",
        ),
        (
            "pull_request_review.dismissed.1.json",
            "pull_request_review",
            "queued",
        ),
        ("push.event.0.json", "push", "queued"),
    ];
    for (index, (file, event, outcome)) in expected.iter().enumerate() {
        let body = fixture_bytes(file);
        let (status, answer) = receiver
            .deliver(event, &format!("fixture-{index}"), &body)
            .await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (202, Some(*outcome)),
            "{file}: {answer}"
        );
    }
    let queued = receiver.queued();
    assert_eq!(queued.len(), 6);
    let kinds: Vec<&str> = queued
        .iter()
        .map(|d| d.payload["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "pull_request",
            "pull_request",
            "pull_request",
            "pull_request_review",
            "pull_request_review",
            "push"
        ]
    );
    assert_eq!(
        queued[1].payload["head_sha"],
        "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    );
    assert_eq!(queued[4].payload["reviewer"], "Codertocat");
    assert_eq!(queued[5].payload["reference"], "refs/tags/simple-tag");
}

#[tokio::test]
async fn health_answers_and_webhooks_are_off_without_a_secret() {
    let server = ApiServer::start("127.0.0.1:0", api::router(None))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{}/healthz", server.local_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let webhook = http
        .post(format!("http://{}/webhooks/github", server.local_addr))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status().as_u16(), 404);
    server.shutdown().await.unwrap();
}

/// GitHub's description (`@octokit/openapi`, `x-webhooks`) of each recorded
/// payload: the fixtures fit it, and a review whose `user` is `null` (a
/// deleted account; the description marks it nullable) fits it too and is
/// queued with the reviewer `ghost`.
#[tokio::test]
async fn recorded_payloads_fit_githubs_description_and_a_null_review_user_is_handled() {
    let github = ringmaster::planes::apispec::github();
    for (file, webhook) in [
        ("ping.event.0.json", "ping"),
        ("pull_request.opened.0.json", "pull-request-opened"),
        (
            "pull_request.synchronize.22.json",
            "pull-request-synchronize",
        ),
        ("pull_request.closed.3.json", "pull-request-closed"),
        (
            "pull_request_review.submitted.0.json",
            "pull-request-review-submitted",
        ),
        (
            "pull_request_review.dismissed.1.json",
            "pull-request-review-dismissed",
        ),
        ("push.event.0.json", "push"),
    ] {
        if let Err(violation) = github.check_webhook(webhook, &fixture_bytes(file)) {
            panic!("{file} against {webhook}: {violation}");
        }
    }
    let mut payload: serde_json::Value =
        serde_json::from_slice(&fixture_bytes("pull_request_review.submitted.0.json")).unwrap();
    payload["review"]["user"] = serde_json::Value::Null;
    let body = serde_json::to_vec(&payload).unwrap();
    github
        .check_webhook("pull-request-review-submitted", &body)
        .expect("GitHub's description allows a null review user");
    let receiver = Receiver::start("Codertocat/Hello-World").await;
    let (status, answer) = receiver
        .deliver("pull_request_review", "deleted-reviewer", &body)
        .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (202, Some("queued")),
        "{answer}"
    );
    assert_eq!(receiver.queued()[0].payload["reviewer"], "ghost");
}
