use super::config::{RawNotificationTarget, RawRetry, check_template};
use super::*;
use crate::store::EventOutcome;
use chrono::{TimeZone, Utc};

fn event(event_type: EventType, correlation_id: &str, details: Value) -> Event {
    Event {
        seq: 7,
        event_id: "e-7".into(),
        correlation_id: correlation_id.into(),
        intent_id: Some("vpn-6.2.1-finance".into()),
        event_type,
        timestamp: Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(),
        actor: "ringmaster".into(),
        actor_role: "control-plane".into(),
        execution_plane: Some("intune".into()),
        ring: Some("ring-1-canary".into()),
        outcome: EventOutcome::Info,
        details,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

fn check(event_type: EventType, correlation_id: &str, details: Value, expected: Option<Trigger>) {
    let found = Trigger::of(&event(event_type, correlation_id, details.clone()));
    assert_eq!(found, expected, "{event_type:?} {details}");
}

#[test]
fn which_events_notify() {
    use EventType::*;
    check(
        PolicyEvaluated,
        "c",
        json!({"kind": "verdict", "decision": "ALLOW"}),
        Some(Trigger::IntentDecided),
    );
    check(PolicyEvaluated, "c", json!({"kind": "risk_assessed"}), None);
    check(
        PublishBlocked,
        "c",
        json!({"kind": "awaiting_approval"}),
        Some(Trigger::AwaitingCab),
    );
    check(
        PublishBlocked,
        "evidence:push",
        json!({"reason": "x"}),
        Some(Trigger::EvidencePushFailing),
    );
    check(
        PublishBlocked,
        "c",
        json!({"kind": "evidence_not_pushed"}),
        None,
    );
    check(
        RingCompleted,
        "c",
        json!({"gate": {"verdict": "pass"}}),
        Some(Trigger::RingPromoted),
    );
    check(
        GateEvaluated,
        "c",
        json!({"gate": {"verdict": "fail"}}),
        Some(Trigger::GateFailed),
    );
    check(
        GateEvaluated,
        "c",
        json!({"gate": {"verdict": "inconclusive"}}),
        None,
    );
    check(
        RollbackExecuted,
        "c",
        json!({"kind": "rolled_back"}),
        Some(Trigger::RolledBack),
    );
    check(
        RollbackExecuted,
        "c",
        json!({"kind": "rollback_started"}),
        None,
    );
    check(
        DriftDetected,
        "c",
        json!({"drift_type": "version_mismatch"}),
        Some(Trigger::DriftFound),
    );
    check(
        EvidenceCommitted,
        "c",
        json!({"rules": ["builtin.governance_change_unauthorised"]}),
        Some(Trigger::GovernanceChangeUnauthorised),
    );
    check(EvidenceCommitted, "c", json!({"rules": []}), None);
    check(CommitProcessed, "c", json!({}), None);
}

#[test]
fn templates_fill_known_placeholders_and_escape_values() {
    let hostile = event(
        EventType::DriftDetected,
        "c",
        json!({"drift_type": "<!channel> & *bold*", "detail": "d"}),
    );
    let facts = Facts::of(Trigger::DriftFound, &hostile);
    let slack = fill("{title} on {plane} #{seq}", &facts, escape_slack);
    assert_eq!(
        slack,
        "vpn-6.2.1-finance: drift (&lt;!channel&gt; &amp; *bold*) on intune #7"
    );
    let teams = fill("{title}", &facts, escape_teams);
    assert!(teams.contains("\\<!channel\\> & \\*bold\\*"), "{teams}");
    assert!(
        check_template("{title} {nope}")
            .unwrap_err()
            .contains("{nope}")
    );
    assert!(check_template("{title").is_err());
    assert!(check_template("{title} {ring} {summary}").is_ok());
}

fn raw(kind: TargetKind, secret: bool, events: &[&str]) -> RawNotificationTarget {
    RawNotificationTarget {
        name: "team".into(),
        kind,
        url_file: None,
        url_env: Some("HOOK_URL".into()),
        secret_file: None,
        secret_env: secret.then(|| "HOOK_SECRET".into()),
        events: events.iter().map(|e| e.to_string()).collect(),
        template: None,
        retry: RawRetry::default(),
    }
}

fn environment(name: &str) -> Option<String> {
    match name {
        "HOOK_URL" => Some("https://hooks.example.invalid/T000/B000/XXXX".into()),
        "HOOK_SECRET" => Some("s3cret".into()),
        _ => None,
    }
}

#[test]
fn targets_are_validated_and_secrets_never_print() {
    let target = raw(TargetKind::Slack, false, &["gate_failed"])
        .validate(&environment)
        .unwrap();
    assert!(!format!("{target:?}").contains("XXXX"), "{target:?}");
    let error = raw(TargetKind::Webhook, false, &["gate_failed"])
        .validate(&environment)
        .unwrap_err();
    assert!(error.contains("secret_file or secret_env"), "{error}");
    let error = raw(TargetKind::Slack, false, &["gate_fail"])
        .validate(&environment)
        .unwrap_err();
    assert!(error.contains("unknown event \"gate_fail\""), "{error}");
    let error = raw(TargetKind::Slack, false, &[])
        .validate(&environment)
        .unwrap_err();
    assert!(error.contains("at least one"), "{error}");
    let mut missing = raw(TargetKind::Teams, false, &["drift_found"]);
    missing.url_env = Some("UNSET".into());
    assert!(
        missing
            .validate(&environment)
            .unwrap_err()
            .contains("UNSET is not set")
    );
    let webhook = raw(TargetKind::Webhook, true, &["drift_found"])
        .validate(&environment)
        .unwrap();
    assert!(!format!("{webhook:?}").contains("s3cret"));
}

#[test]
fn retries_back_off_exponentially_then_give_up() {
    let target = raw(TargetKind::Slack, false, &["gate_failed"])
        .validate(&environment)
        .unwrap();
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let delays: Vec<Option<i64>> = (1..=8)
        .map(|failed| {
            crate::orchestrator::backoff::next_attempt(now, failed, None, 0.0, &target.retry)
                .map(|at| (at - now).num_seconds())
        })
        .collect();
    assert_eq!(
        delays,
        [
            Some(30),
            Some(60),
            Some(120),
            Some(240),
            Some(480),
            Some(960),
            Some(1920),
            None
        ]
    );
}
