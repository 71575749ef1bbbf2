use super::families::{ALL, Kind, SEED_SEVEN};
use super::*;
use crate::store::EventCount;
use chrono::TimeZone;

fn observation(rows: TelemetryRows) -> Observation {
    Observation {
        now: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
        intents: Vec::new(),
        rows,
        evidence_head: None,
        approvals: vec![ApprovalTiming {
            decision: "approved",
            seconds: 3600.0,
        }],
        previous_collect_seconds: 0.0,
    }
}

fn event(
    event_type: &str,
    application: &str,
    class: &str,
    outcome: &str,
    count: u64,
) -> EventCount {
    EventCount {
        event_type: event_type.into(),
        application_id: application.into(),
        ring: "ring-1-canary".into(),
        plane: "intune".into(),
        outcome: outcome.into(),
        class: class.into(),
        count,
    }
}

#[test]
fn every_family_is_documented_in_docs_observability() {
    let docs = include_str!("../../docs/observability.md");
    for family in ALL {
        assert!(
            docs.contains(&format!("`{}`", family.name)),
            "{} is not in docs/observability.md",
            family.name
        );
    }
}

#[test]
fn names_follow_the_prometheus_conventions() {
    for family in ALL {
        assert!(family.name.starts_with("ringmaster_"), "{}", family.name);
        assert_eq!(
            family.kind == Kind::Counter,
            family.name.ends_with("_total"),
            "{}: counters and only counters end in _total",
            family.name
        );
        for label in family.labels {
            assert!(
                !label.contains("intent")
                    && !label.contains("device")
                    && *label != "correlation_id",
                "{}: unbounded label {label}",
                family.name
            );
        }
    }
}

#[test]
fn counts_from_the_event_log_reach_their_families() {
    let rows = TelemetryRows {
        events: vec![
            event("rollback_executed", "zoom", "rolled_back", "success", 2),
            event(
                "rollback_executed",
                "zoom",
                "rollback_started",
                "pending",
                5,
            ),
            event("drift_detected", "chrome", "version_mismatch", "failure", 3),
            event("remediation_result", "chrome", "success", "success", 3),
            event("remediation_result", "chrome", "failed", "failure", 1),
            event("gate_evaluated", "zoom", "fail", "failure", 1),
        ],
        ..TelemetryRows::default()
    };
    let text = render(&observation(rows));
    assert!(
        text.contains("ringmaster_rollbacks_executed_total{application=\"zoom\"} 2\n"),
        "{text}"
    );
    assert!(text.contains(
        "ringmaster_drift_events_total{application=\"chrome\",drift_type=\"version_mismatch\"} 3\n"
    ));
    assert!(
        text.contains("ringmaster_remediation_success_rate 0.75\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "ringmaster_gate_verdicts_total{ring=\"ring-1-canary\",verdict=\"fail\"} 1\n"
        )
    );
    assert!(text.contains("ringmaster_cab_approval_seconds_count{decision=\"approved\"} 1\n"));
    assert!(text.contains("ringmaster_last_processed_commit_age_seconds -1\n"));
}

#[test]
fn hostile_label_values_are_escaped() {
    let rows = TelemetryRows {
        events: vec![event(
            "drift_detected",
            "evil\"} 1\nfake_metric 9",
            "x",
            "failure",
            1,
        )],
        ..TelemetryRows::default()
    };
    let text = render(&observation(rows));
    assert!(
        !text.lines().any(|line| line.starts_with("fake_metric")),
        "{text}"
    );
    assert!(
        text.contains(r#"application="evil\"} 1\nfake_metric 9""#),
        "{text}"
    );
}

#[test]
fn the_seed_seven_are_declared() {
    let names: Vec<&str> = SEED_SEVEN.iter().map(|family| family.name).collect();
    assert_eq!(names.len(), 7);
    for name in names {
        assert!(ALL.iter().any(|family| family.name == name));
    }
}
