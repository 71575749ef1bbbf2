//! Incident intake with the real Alertmanager (the Debian package
//! `prometheus-alertmanager`, installed by `scripts/test.sh`): an alert
//! posted to Alertmanager's API is routed to ringmaster's receiver, opens
//! an incident in the store that the gates read, and resolving it closes
//! it. Plus the generic HMAC-signed webhook over real HTTP, and refusals.

use chrono::{DateTime, Utc};
use ringmaster::api::ApiServer;
use ringmaster::api::incidents::{
    AlertmanagerAuth, IncidentIntake, IntakeSecret, SIGNATURE_HEADER, TIMESTAMP_HEADER, routes,
    sign_generic,
};
use ringmaster::store::{EventFilter, EventType, Store};
use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const TOKEN: &str = "am-token-5d41402abc4b2a76";
const HOOK_SECRET: &str = "hook-secret-7d793037a0760186";

/// ringmaster's receivers on 127.0.0.1 with their own store.
struct Receiver {
    _dir: tempfile::TempDir,
    database: PathBuf,
    server: ApiServer,
    /// Counts recorded deliveries (the signal tests wait on).
    recorded: watch::Receiver<u64>,
}

async fn receiver() -> Receiver {
    let dir = tempfile::tempdir().expect("dir");
    let database = dir.path().join("ringmaster.db");
    let (sender, recorded) = watch::channel(0u64);
    let intake = Arc::new(IncidentIntake {
        alertmanager: Some(AlertmanagerAuth::Bearer(IntakeSecret::new(TOKEN))),
        webhook_secret: Some(IntakeSecret::new(HOOK_SECRET)),
        store: Mutex::new(Store::open(&database).expect("store")),
        clock: Arc::new(Utc::now),
        on_recorded: Box::new(move || sender.send_modify(|count| *count += 1)),
    });
    let server = ApiServer::start("127.0.0.1:0", routes(intake))
        .await
        .expect("server");
    Receiver {
        _dir: dir,
        database,
        server,
        recorded,
    }
}

impl Receiver {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.local_addr)
    }

    fn store(&self) -> Store {
        Store::open(&self.database).expect("store")
    }

    /// Waits (on the receiver's signal) until `ready` holds, at most 60 s.
    async fn wait_until(&mut self, what: &str, ready: impl Fn(&Store) -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if ready(&self.store()) {
                    return;
                }
                self.recorded.changed().await.expect("receiver alive");
            }
        })
        .await;
        assert!(waited.is_ok(), "timed out waiting for {what}");
    }
}

/// The real Alertmanager, killed on drop.
struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Starts Alertmanager routing every alert to `webhook_url` with the bearer
/// token, grouping by alert name, flushing fast.
fn start_alertmanager(webhook_url: &str) -> Alertmanager {
    let binary = which("prometheus-alertmanager").unwrap_or_else(|| {
        panic!(
            "prometheus-alertmanager is not installed: scripts/test.sh installs the Debian \
             package prometheus-alertmanager"
        )
    });
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            r#"route:
  receiver: ringmaster
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: ringmaster
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {TOKEN}
"#
        ),
    )
    .expect("config");
    let port = free_port();
    let mut child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("alertmanager starts");
    // Ready once it says it listens (its log is on stderr).
    let stderr = child.stderr.take().expect("stderr");
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("Alertmanager never listened: {seen:#?}"));
        if line.contains("Listening") {
            break;
        }
        seen.push(line);
    }
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || while lines.recv().is_ok() {});
    Alertmanager {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    path.is_file()
}

fn alert(ends_at: Option<DateTime<Utc>>) -> Value {
    let mut alert = json!({
        "labels": {
            "alertname": "ChromeCrashRate",
            "ringmaster_app": "google-chrome",
            "ringmaster_ring": "ring-1-canary",
            "business_unit": "bu-finance",
            "severity": "critical",
        },
        "annotations": {"summary": "Chrome crashes on start on canary devices"},
        "startsAt": (Utc::now() - chrono::Duration::minutes(1)).to_rfc3339(),
        "generatorURL": "http://prometheus.invalid/graph",
    });
    if let Some(ends_at) = ends_at {
        alert["endsAt"] = json!(ends_at.to_rfc3339());
    }
    alert
}

fn open_canary_incidents(store: &Store) -> usize {
    store
        .open_incidents_matching("google-chrome", "ring-1-canary", "bu-finance", Utc::now())
        .expect("query")
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_posted_to_the_real_alertmanager_opens_an_incident_and_resolving_closes_it() {
    let mut receiver = receiver().await;
    let alertmanager = start_alertmanager(&receiver.url("/webhooks/alertmanager"));
    let client = reqwest::Client::new();
    let post = |alerts: Value| {
        let client = client.clone();
        let url = format!("{}/api/v2/alerts", alertmanager.url);
        async move {
            let response = client.post(url).json(&alerts).send().await.expect("post");
            assert!(response.status().is_success(), "{:?}", response.status());
        }
    };
    post(json!([alert(None)])).await;
    receiver
        .wait_until("the incident to open", |store| {
            open_canary_incidents(store) == 1
        })
        .await;
    let store = receiver.store();
    let incident = &store.incidents().expect("incidents")[0];
    assert_eq!(incident.source, "alertmanager");
    assert_eq!(incident.severity, "critical");
    assert!(!incident.external_id.is_empty(), "keyed by the fingerprint");
    assert!(
        store
            .open_incidents_matching("google-chrome", "ring-2-pilot", "bu-finance", Utc::now())
            .expect("query")
            .is_empty(),
        "the alert names the canary ring only"
    );

    // Resolve it: Alertmanager sends the resolved notification.
    post(json!([alert(Some(
        Utc::now() - chrono::Duration::seconds(1)
    ))]))
    .await;
    receiver
        .wait_until("the incident to be resolved", |store| {
            open_canary_incidents(store) == 0
        })
        .await;
    let store = receiver.store();
    assert_eq!(
        store.incidents().expect("incidents").len(),
        1,
        "one incident, not two"
    );
    let events = store.events(&EventFilter::default()).expect("events");
    let kinds: Vec<EventType> = events.iter().map(|event| event.event_type).collect();
    assert_eq!(
        kinds,
        [EventType::IncidentOpened, EventType::IncidentResolved],
        "one event per change; repeats are deduplicated"
    );
    assert!(store.verify_event_chain().expect("chain").is_intact());
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_or_malformed_deliveries_are_refused_and_record_nothing() {
    let receiver = receiver().await;
    let client = reqwest::Client::new();
    let payload = json!({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"ringmaster_app": "google-chrome"},
        "annotations": {}, "startsAt": Utc::now().to_rfc3339(), "fingerprint": "ab12"}]});
    for authorization in [None, Some("Bearer wrong"), Some("Basic YTpi")] {
        let mut request = client
            .post(receiver.url("/webhooks/alertmanager"))
            .json(&payload);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("post");
        assert_eq!(response.status().as_u16(), 401, "{authorization:?}");
        let body = response.text().await.expect("body");
        assert!(!body.contains(TOKEN), "the secret never goes back");
    }
    let response = client
        .post(receiver.url("/webhooks/alertmanager"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body("{\"version\": \"3\", \"alerts\": []}")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 400);
    let huge = vec![b' '; 5 * 1024 * 1024];
    let response = client
        .post(receiver.url("/webhooks/alertmanager"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(huge)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 413);
    assert!(receiver.store().incidents().expect("incidents").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generic_webhook_records_signed_reports_and_refuses_replays() {
    let receiver = receiver().await;
    let client = reqwest::Client::new();
    let secret = IntakeSecret::new(HOOK_SECRET);
    let send = |body: Value, timestamp: i64, secret: &IntakeSecret| {
        let bytes = serde_json::to_vec(&body).expect("json");
        let signature = sign_generic(secret, timestamp, &bytes);
        client
            .post(receiver.url("/webhooks/incidents"))
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
    };
    let open = json!({"id": "INC-42", "app": "google-chrome", "ring": "ring-1-canary",
                      "business_unit": "bu-finance", "severity": "sev1", "status": "open",
                      "summary": "crash loop"});
    let now = Utc::now().timestamp();
    let response = send(open.clone(), now, &secret).await.expect("post");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(open_canary_incidents(&receiver.store()), 1);
    // The same report again: deduplicated.
    let response = send(open.clone(), now, &secret).await.expect("post");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["incidents"], json!({"unchanged": 1}));
    // Wrong secret, and a capture replayed an hour later: refused.
    let response = send(open.clone(), now, &IntakeSecret::new("guess"))
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 401);
    let response = send(open.clone(), now - 3600, &secret).await.expect("post");
    assert_eq!(response.status().as_u16(), 401);
    let mut resolved = open.clone();
    resolved["status"] = json!("resolved");
    let response = send(resolved, now + 1, &secret).await.expect("post");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(open_canary_incidents(&receiver.store()), 0);
    assert_eq!(receiver.store().incidents().expect("incidents").len(), 1);
}
