//! The intake's pure parts against Alertmanager's documented webhook
//! payload (`notify/webhook`, version 4) and the generic webhook's format.

use super::*;
use chrono::TimeZone as _;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
}

/// A grouped notification as Alertmanager 0.25 sends it: two firing alerts
/// of one group, one resolved, one without ringmaster labels.
fn notification() -> Value {
    json!({
        "receiver": "ringmaster",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "ChromeCrashRate", "ringmaster_app": "google-chrome",
                           "ringmaster_ring": "ring-1-canary", "business_unit": "bu-finance",
                           "severity": "critical"},
                "annotations": {"summary": "Chrome crashes on start on 4% of canary devices"},
                "startsAt": "2026-12-01T09:55:00.123Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example:9090/graph?g0.expr=crash_rate",
                "fingerprint": "c8d1e0c6f0a5b3e2"
            },
            {
                "status": "firing",
                "labels": {"alertname": "ChromeCrashRate", "ringmaster_app": "google-chrome",
                           "severity": "warning"},
                "annotations": {},
                "startsAt": "2026-12-01T09:56:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "aa11bb22cc33dd44"
            },
            {
                "status": "resolved",
                "labels": {"alertname": "VpnDown", "ringmaster_app": "vpn-client",
                           "ringmaster_business_unit": "bu-hr"},
                "annotations": {"description": "VPN back"},
                "startsAt": "2026-12-01T08:00:00Z",
                "endsAt": "2026-12-01T09:00:00Z",
                "generatorURL": "",
                "fingerprint": "0f0f0f0f0f0f0f0f"
            },
            {
                "status": "firing",
                "labels": {"alertname": "DiskFull", "instance": "db-1"},
                "annotations": {},
                "startsAt": "2026-12-01T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "1234"
            }
        ],
        "groupLabels": {"alertname": "ChromeCrashRate"},
        "commonLabels": {"alertname": "ChromeCrashRate"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": "{}:{alertname=\"ChromeCrashRate\"}",
        "truncatedAlerts": 0
    })
}

#[test]
fn a_grouped_notification_maps_each_alert_by_its_labels() {
    let body = serde_json::to_vec(&notification()).unwrap();
    let parsed = alertmanager_reports(&body, now()).unwrap();
    assert_eq!(parsed.ignored, 1, "the alert without ringmaster_app");
    let [canary, any_ring, vpn] = parsed.reports.as_slice() else {
        panic!("{:#?}", parsed.reports)
    };
    assert_eq!(canary.source, "alertmanager");
    assert_eq!(canary.external_id, "c8d1e0c6f0a5b3e2");
    assert_eq!(canary.application_id, "google-chrome");
    assert_eq!(canary.ring.as_deref(), Some("ring-1-canary"));
    assert_eq!(canary.business_unit.as_deref(), Some("bu-finance"));
    assert_eq!(canary.severity, "critical");
    assert_eq!(canary.status, IncidentStatus::Open);
    assert_eq!(
        canary.summary,
        "Chrome crashes on start on 4% of canary devices"
    );
    assert_eq!(
        canary.started_at,
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 55, 0).unwrap() + chrono::Duration::milliseconds(123)
    );
    assert_eq!(any_ring.ring, None, "no ring label: every ring");
    assert_eq!(any_ring.business_unit, None);
    assert_eq!(any_ring.summary, "ChromeCrashRate");
    assert_eq!(vpn.status, IncidentStatus::Resolved);
    assert_eq!(vpn.business_unit.as_deref(), Some("bu-hr"));
    assert_eq!(vpn.summary, "VPN back");
    assert_eq!(vpn.severity, "unknown");
}

#[test]
fn other_versions_and_shapes_are_refused_with_the_reason() {
    let mut old = notification();
    old["version"] = json!("3");
    let error = alertmanager_reports(&serde_json::to_vec(&old).unwrap(), now()).unwrap_err();
    assert!(error.contains("version \"3\""), "{error}");
    let error = alertmanager_reports(b"{\"version\": \"4\"}", now()).unwrap_err();
    assert!(error.contains("alerts"), "{error}");
    let error = alertmanager_reports(b"not json", now()).unwrap_err();
    assert!(error.contains("not an Alertmanager"), "{error}");
    let mut odd = notification();
    odd["alerts"][0]["status"] = json!("pending");
    let error = alertmanager_reports(&serde_json::to_vec(&odd).unwrap(), now()).unwrap_err();
    assert!(error.contains("pending"), "{error}");
}

#[test]
fn repeated_notifications_are_deduplicated_by_fingerprint_and_resolution_closes() {
    let state = IncidentIntake {
        alertmanager: None,
        webhook_secret: None,
        store: Mutex::new(Store::open_in_memory().unwrap()),
        clock: Arc::new(now),
        on_recorded: Box::new(|| {}),
    };
    let body = serde_json::to_vec(&notification()).unwrap();
    let first = record(
        &state,
        alertmanager_reports(&body, now()).unwrap().reports,
        now(),
        None,
    )
    .unwrap();
    assert_eq!(first, json!({"opened": 2, "resolved": 1}));
    // Alertmanager repeats the notification every repeat_interval.
    let again = record(
        &state,
        alertmanager_reports(&body, now()).unwrap().reports,
        now(),
        None,
    )
    .unwrap();
    assert_eq!(again, json!({"unchanged": 3}));
    let store = state.store.lock().unwrap();
    let open = store
        .open_incidents_matching("google-chrome", "ring-1-canary", "bu-finance", now())
        .unwrap();
    assert_eq!(open.len(), 2);
    assert!(
        store
            .open_incidents_matching("google-chrome", "ring-2-pilot", "bu-hr", now())
            .unwrap()
            .iter()
            .all(|incident| incident.external_id == "aa11bb22cc33dd44"),
        "the canary alert is about the canary ring only"
    );
    let events = store.events(&crate::store::EventFilter::default()).unwrap();
    assert_eq!(events.len(), 3, "one event per change, none for repeats");
    drop(store);

    let mut resolved = notification();
    resolved["alerts"][0]["status"] = json!("resolved");
    resolved["alerts"][0]["endsAt"] = json!("2026-12-01T10:05:00Z");
    let body = serde_json::to_vec(&resolved).unwrap();
    let change = record(
        &state,
        alertmanager_reports(&body, now()).unwrap().reports,
        now(),
        None,
    )
    .unwrap();
    assert_eq!(change, json!({"resolved": 1, "unchanged": 2}));
    let store = state.store.lock().unwrap();
    let open = store
        .open_incidents_matching("google-chrome", "ring-1-canary", "bu-finance", now())
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].external_id, "aa11bb22cc33dd44");
}

#[test]
fn alertmanager_credentials_are_checked_as_its_http_config_sends_them() {
    let header = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", value.parse().unwrap());
        headers
    };
    let bearer = AlertmanagerAuth::Bearer(IntakeSecret::new("s3cret"));
    assert!(alertmanager_authorized(&bearer, &header("Bearer s3cret")));
    assert!(!alertmanager_authorized(&bearer, &header("Bearer s3cre")));
    assert!(!alertmanager_authorized(&bearer, &header("Bearer s3cret2")));
    assert!(!alertmanager_authorized(&bearer, &header("Basic s3cret")));
    assert!(!alertmanager_authorized(&bearer, &HeaderMap::new()));
    let basic = AlertmanagerAuth::Basic {
        username: "alertmanager".into(),
        password: IntakeSecret::new("pw"),
    };
    // base64("alertmanager:pw")
    assert!(alertmanager_authorized(
        &basic,
        &header("Basic YWxlcnRtYW5hZ2VyOnB3")
    ));
    assert!(!alertmanager_authorized(
        &basic,
        &header("Basic YWxlcnRtYW5hZ2VyOnB4")
    ));
    assert!(!format!("{bearer:?}{basic:?}").contains("s3cret"));
    assert!(!format!("{basic:?}").contains("pw\""));
}

#[test]
fn the_generic_webhook_needs_a_fresh_signature_over_timestamp_and_body() {
    let secret = IntakeSecret::new("hook-secret");
    let body = br#"{"id":"INC-7","app":"google-chrome","ring":"ring-1-canary","severity":"sev1","status":"open"}"#;
    let headers = |timestamp: i64, signature: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(TIMESTAMP_HEADER, timestamp.to_string().parse().unwrap());
        headers.insert(SIGNATURE_HEADER, signature.parse().unwrap());
        headers
    };
    let at = now().timestamp();
    let good = sign_generic(&secret, at, body);
    assert_eq!(
        verify_generic(&secret, &headers(at, &good), body, now()).unwrap(),
        now()
    );
    // Another body, another timestamp, another secret: refused.
    assert!(verify_generic(&secret, &headers(at, &good), b"{}", now()).is_err());
    assert!(verify_generic(&secret, &headers(at + 1, &good), body, now()).is_err());
    let other = sign_generic(&IntakeSecret::new("other"), at, body);
    assert!(verify_generic(&secret, &headers(at, &other), body, now()).is_err());
    // A captured request replayed ten minutes later: refused.
    let error = verify_generic(
        &secret,
        &headers(at, &good),
        body,
        now() + chrono::Duration::minutes(10),
    )
    .unwrap_err();
    assert!(error.contains("replay"), "{error}");
    assert!(verify_generic(&secret, &HeaderMap::new(), body, now()).is_err());

    let report = generic_report(body, now()).unwrap();
    assert_eq!(report.source, "webhook");
    assert_eq!(report.external_id, "INC-7");
    assert_eq!(report.ring.as_deref(), Some("ring-1-canary"));
    assert_eq!(report.status, IncidentStatus::Open);
    let scoped = generic_report(
        br#"{"id":"INC-8","app":"zoom","scope":{"business_unit":"bu-hr"},"severity":"sev2","status":"resolved"}"#,
        now(),
    )
    .unwrap();
    assert_eq!(scoped.business_unit.as_deref(), Some("bu-hr"));
    assert_eq!(scoped.status, IncidentStatus::Resolved);
    for bad in [
        &br#"{"id":"","app":"zoom","severity":"s","status":"open"}"#[..],
        br#"{"id":"1","app":"zoom","severity":"s","status":"maybe"}"#,
        br#"{"id":"1","app":"zoom","severity":"s","status":"open","extra":1}"#,
        br#"{"id":"1","severity":"s","status":"open"}"#,
    ] {
        assert!(
            generic_report(bad, now()).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn an_older_generic_report_does_not_undo_a_newer_one() {
    let state = IncidentIntake {
        alertmanager: None,
        webhook_secret: None,
        store: Mutex::new(Store::open_in_memory().unwrap()),
        clock: Arc::new(now),
        on_recorded: Box::new(|| {}),
    };
    let open = br#"{"id":"INC-9","app":"zoom","severity":"sev1","status":"open"}"#;
    let resolved = br#"{"id":"INC-9","app":"zoom","severity":"sev1","status":"resolved"}"#;
    let early = now() - chrono::Duration::seconds(60);
    let report = |body: &[u8], at| generic_report(body, at).unwrap();
    record(&state, vec![report(open, early)], now(), Some(early)).unwrap();
    record(&state, vec![report(resolved, now())], now(), Some(now())).unwrap();
    // The "open" replayed within the skew window is older than the resolution.
    let replayed = record(&state, vec![report(open, early)], now(), Some(early)).unwrap();
    assert_eq!(replayed, json!({"stale": 1}));
    let store = state.store.lock().unwrap();
    assert!(
        store
            .open_incidents_matching("zoom", "ring-1-canary", "bu-hr", now())
            .unwrap()
            .is_empty()
    );
}
