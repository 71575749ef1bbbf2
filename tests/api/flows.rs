//! What an API write causes, end to end: the request is queued, the real
//! daemon's performer carries it out at its next step (evidence first),
//! and the event log, the evidence branch and the SIEM sink name the
//! authenticated principal, its role, address, user agent and the request
//! id. Evidence reads give the signed bytes `minisign` verifies.

use crate::harness::{ApiOptions, CHROME, Tenant, oid, serve};
use crate::issuer::{Issuer, rsa_key};
use ringmaster::daemon::rollout::IntentState;
use ringmaster::orchestrator::Phase;
use ringmaster::store::{EventFilter, EventType};
use serde_json::json;
use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn an_api_hold_is_carried_out_by_the_daemon_with_the_request_id_and_principal_in_events_and_evidence()
 {
    let key = rsa_key("flow");
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let api = serve(&tenant, ApiOptions::for_issuer(&issuer)).await;
    let token = issuer.token(&key, &oid("alice"));
    let response = api
        .http
        .post(api.url(&format!("/api/v1/intents/{CHROME}/hold")))
        .bearer_auth(&token)
        .header("x-request-id", "chg-2026-4411")
        .header("user-agent", "pipeline/1.0")
        .json(&json!({"reason": "Finance quarter close freeze"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(response.headers()["x-request-id"], "chg-2026-4411");

    // The daemon carries it out.
    let mut daemon = tenant.daemon();
    daemon.step(tenant.now).await.expect("step");
    let record = daemon
        .store()
        .get_intent(CHROME)
        .expect("store")
        .expect("intent");
    let phase = IntentState::from_record(&record).run.map(|run| run.phase);
    assert!(matches!(phase, Some(Phase::Held { .. })), "{phase:?}");
    let events = daemon
        .store()
        .events(&EventFilter {
            correlation_id: Some("chg-2026-4411".into()),
            ..EventFilter::default()
        })
        .expect("events");
    let stages: Vec<&str> = events
        .iter()
        .filter(|e| e.event_type == EventType::OperatorAction)
        .map(|e| e.details["stage"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(stages, ["requested", "handled"], "{events:#?}");
    for event in &events {
        assert_eq!(event.actor, "alice");
        assert_eq!(event.actor_role, "control-plane.publisher");
        assert_eq!(event.details["origin"]["source_address"], "127.0.0.1");
        assert_eq!(event.details["origin"]["user_agent"], "pipeline/1.0");
        assert_eq!(event.details["origin"]["authentication"], "oidc");
    }
    drop(daemon);
    // The hold's evidence pack names the authenticated principal and the request.
    let log = Command::new("git")
        .args(["log", "-p", "-1", "evidence"])
        .current_dir(tenant.governed())
        .output()
        .expect("git");
    let text = String::from_utf8_lossy(&log.stdout);
    assert!(
        text.contains("alice (authenticated by oidc as oid-alice"),
        "{text}"
    );
    assert!(text.contains("chg-2026-4411"), "{text}");
    let siem = tenant.siem_lines();
    assert!(siem.iter().any(|line| line["type"] == "api_write"
        && line["actor"] == "alice"
        && line["request_id"] == "chg-2026-4411"));
}

#[tokio::test]
async fn a_malformed_request_id_is_replaced_by_a_uuid() {
    let key = rsa_key("flow");
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let api = serve(&tenant, ApiOptions::for_issuer(&issuer)).await;
    let response = api
        .http
        .get(api.url("/api/v1/intents"))
        .header("x-request-id", "bad id\twith spaces; DROP TABLE")
        .send()
        .await
        .expect("answer");
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
}

#[tokio::test]
async fn evidence_bytes_from_the_api_verify_with_minisign_and_the_list_is_scoped() {
    let key = rsa_key("flow");
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let api = serve(&tenant, ApiOptions::for_issuer(&issuer)).await;
    let auditor = issuer.token(&key, &oid("ivan"));
    let list = api.get("/api/v1/evidence?limit=1000", Some(&auditor)).await;
    assert_eq!(list.status, 200);
    let items = list.body["items"].as_array().expect("items").clone();
    let record = items
        .iter()
        .find(|i| i["intent_id"] == CHROME)
        .expect("a chrome record");
    let sequence = record["sequence"].as_u64().expect("sequence");
    let pack = api
        .get(&format!("/api/v1/evidence/{sequence}"), Some(&auditor))
        .await;
    let signature = api
        .get(
            &format!("/api/v1/evidence/{sequence}/signature"),
            Some(&auditor),
        )
        .await;
    assert_eq!(pack.status, 200);
    assert_eq!(signature.status, 200);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("pack.json"), &pack.bytes).expect("write");
    std::fs::write(dir.path().join("pack.json.minisig"), &signature.bytes).expect("write");
    let minisign = Command::new("minisign")
        .args(["-V", "-q", "-m", "pack.json", "-p"])
        .arg(tenant.root.join("keys/ringmaster.pub"))
        .current_dir(dir.path())
        .output()
        .expect("minisign is installed (scripts/test.sh installs it)");
    assert!(
        minisign.status.success(),
        "{}",
        String::from_utf8_lossy(&minisign.stderr)
    );
    // A CAB approver of Fabrikam (acq-002) sees none of Contoso's records.
    let frank = issuer.token(&key, &oid("frank"));
    let scoped = api.get("/api/v1/evidence?limit=1000", Some(&frank)).await;
    assert_eq!(scoped.status, 200);
    assert!(
        scoped.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|item| item["intent_id"] != CHROME),
        "{:?}",
        scoped.body
    );
    // A publisher reads no evidence at all.
    let alice = issuer.token(&key, &oid("alice"));
    assert_eq!(api.get("/api/v1/evidence", Some(&alice)).await.status, 403);
}

#[tokio::test]
async fn a_finance_publisher_lists_finance_only_and_the_auditor_everything() {
    let key = rsa_key("flow");
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let api = serve(&tenant, ApiOptions::for_issuer(&issuer)).await;
    let all = tenant.store().list_intents().expect("intents").len();
    let auditor = api
        .get("/api/v1/intents", Some(&issuer.token(&key, &oid("ivan"))))
        .await;
    assert_eq!(auditor.body["items"].as_array().expect("items").len(), all);
    let alice = api
        .get("/api/v1/intents", Some(&issuer.token(&key, &oid("alice"))))
        .await;
    let units: Vec<&str> = alice.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["business_unit"].as_str().unwrap_or_default())
        .collect();
    assert!(!units.is_empty());
    assert!(units.iter().all(|unit| *unit == "bu-finance"), "{units:?}");
}
