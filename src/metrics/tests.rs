use super::families::{ALL, Kind, SEED_SEVEN};
use super::*;
use crate::store::{ComplianceObservation, EventCount, LatestRing, RolloutStateCount};
use chrono::TimeZone;

fn observation(rows: TelemetryRows) -> Observation {
    Observation {
        now: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
        rollouts: RolloutRows::default(),
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

fn ring(application: &str, unit: &str, ring: &str, counts: [u64; 4]) -> LatestRing {
    LatestRing {
        application_id: application.into(),
        business_unit: unit.into(),
        plane: "intune".into(),
        ring: ring.into(),
        targeted: counts[0],
        installed: counts[1],
        failed: counts[2],
        pending: counts[3],
    }
}

/// The value of the one series of `text` that starts with `prefix`.
fn value(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("{series} missing:\n{text}"));
    line[series.len() + 1..].parse().expect("a number")
}

#[test]
fn per_ring_devices_are_summed_by_application_and_by_business_unit_never_both() {
    let mut observation = observation(TelemetryRows::default());
    observation.rollouts = RolloutRows {
        states: vec![
            RolloutStateCount {
                phase: "ring_in_progress".into(),
                requirement: None,
                count: 3,
            },
            RolloutStateCount {
                phase: "awaiting_approval".into(),
                requirement: Some("cab_approval".into()),
                count: 2,
            },
            RolloutStateCount {
                phase: "awaiting_approval".into(),
                requirement: Some("active_change".into()),
                count: 1,
            },
        ],
        rings: vec![
            ring("zoom", "bu-finance", "ring-1-canary", [10, 8, 1, 1]),
            ring("zoom", "bu-sales", "ring-1-canary", [30, 30, 0, 0]),
            ring("chrome", "bu-finance", "ring-1-canary", [60, 50, 10, 0]),
        ],
    };
    let text = render(&observation);
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        if line.starts_with("ringmaster_ring_") {
            assert!(!line.contains("business_unit="), "{line}");
        }
        if line.starts_with("ringmaster_business_unit_devices") {
            assert!(!line.contains("application="), "{line}");
        }
    }
    let zoom = |status: &str| {
        value(
            &text,
            &format!(
                "ringmaster_ring_devices{{application=\"zoom\",plane=\"intune\",ring=\"ring-1-canary\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(zoom("targeted"), 40.0);
    assert_eq!(zoom("succeeded"), 38.0);
    assert_eq!(zoom("failed"), 1.0);
    assert_eq!(zoom("pending"), 1.0);
    let finance = value(
        &text,
        "ringmaster_business_unit_devices{business_unit=\"bu-finance\",ring=\"ring-1-canary\",status=\"targeted\"}",
    );
    assert_eq!(finance, 70.0);
    // 88 of 100 targeted devices installed, 11 failed.
    let rate = value(
        &text,
        "ringmaster_ring_success_rate{plane=\"intune\",ring=\"ring-1-canary\"}",
    );
    assert!((rate - 0.88).abs() < 1e-9, "{rate}");
    let rate = value(
        &text,
        "ringmaster_ring_failure_rate{plane=\"intune\",ring=\"ring-1-canary\"}",
    );
    assert!((rate - 0.11).abs() < 1e-9, "{rate}");
    assert_eq!(
        value(&text, "ringmaster_rollouts{state=\"ring_in_progress\"}"),
        3.0
    );
    assert_eq!(value(&text, "ringmaster_rollouts{state=\"blocked\"}"), 1.0);
    assert_eq!(
        value(
            &text,
            "ringmaster_approvals_pending{requirement=\"cab_approval\"}"
        ),
        2.0
    );
    assert!(!text.contains("requirement=\"active_change\""), "{text}");
}

#[test]
fn time_to_compliance_is_labelled_by_a_bounded_set_of_site_classes() {
    let sample = |class: &str, hours: f64| ComplianceObservation {
        ring: "ring-1-canary".into(),
        site_class: class.into(),
        hours,
    };
    let mut compliance = vec![
        sample("online", 1.0),
        sample("online", 2.0),
        sample("", 3.0),
    ];
    // Twenty more classes, each seen once: only the most seen become labels.
    for index in 0..20 {
        compliance.push(sample(&format!("class-{index:02}"), 4.0));
    }
    let text = render(&observation(TelemetryRows {
        compliance,
        ..TelemetryRows::default()
    }));
    let count = |class: &str| {
        value(
            &text,
            &format!(
                "ringmaster_ring_time_to_compliance_seconds_count{{ring=\"ring-1-canary\",site_class=\"{class}\"}}"
            ),
        )
    };
    assert_eq!(count("online"), 2.0);
    assert_eq!(count("unspecified"), 1.0);
    let classes: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|line| line.starts_with("ringmaster_ring_time_to_compliance_seconds_count"))
        .filter_map(|line| line.split("site_class=\"").nth(1)?.split('"').next())
        .collect();
    // online, the seven first of the rest by name, other, unspecified.
    assert_eq!(classes.len(), families::MAX_SITE_CLASSES + 2, "{classes:?}");
    assert!(
        classes.contains("class-00") && !classes.contains("class-07"),
        "{classes:?}"
    );
    assert_eq!(count("other"), 13.0);
    assert_eq!(
        value(
            &text,
            "ringmaster_ring_time_to_compliance_seconds_sum{ring=\"ring-1-canary\",site_class=\"online\"}"
        ),
        3.0 * 3600.0
    );
}

#[test]
fn every_family_is_stored_or_measured_in_the_process_once() {
    let mut names: Vec<&str> = families::STORED
        .iter()
        .chain(families::PROCESS)
        .map(|family| family.name)
        .collect();
    names.sort();
    let mut all: Vec<&str> = ALL.iter().map(|family| family.name).collect();
    all.sort();
    assert_eq!(names, all);
}

#[test]
fn the_docs_give_every_family_its_label_set() {
    let docs = include_str!("../../docs/observability.md");
    for family in ALL {
        let row = docs
            .lines()
            .find(|line| line.starts_with(&format!("| `{}` |", family.name)))
            .unwrap_or_else(|| {
                panic!(
                    "{}: no row in the table of docs/observability.md",
                    family.name
                )
            });
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let labels = if family.labels.is_empty() {
            "—".to_owned()
        } else {
            family.labels.join(", ")
        };
        assert_eq!(cells[3], labels, "{}: label set in the docs", family.name);
        assert!(
            !cells[4].is_empty(),
            "{}: no bound in the docs",
            family.name
        );
    }
}

#[tokio::test]
async fn plane_calls_are_timed_and_classed_and_throttling_counted() {
    use crate::planes::{ConnectorError, ErrorCode};
    // A plane name of this test only: the process registry is shared.
    let plane = "test-plane-calls";
    let ok: Result<u32, ConnectorError> = runtime::plane_call(plane, "publish", async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Ok(1)
    })
    .await;
    assert!(ok.is_ok());
    for _ in 0..2 {
        let throttled = runtime::plane_call(plane, "query_status", async {
            Err::<(), _>(ConnectorError::new(ErrorCode::RateLimit, "429"))
        })
        .await;
        assert!(throttled.is_err());
    }
    let refused = runtime::plane_call(plane, "publish", async {
        Err::<(), _>(ConnectorError::new(ErrorCode::ScopeViolation, "no"))
    })
    .await;
    assert!(refused.is_err());
    runtime::plane_call_refused(plane, "publish");
    let text = render(&observation(TelemetryRows::default()));
    let calls = |operation: &str, outcome: &str| {
        value(
            &text,
            &format!(
                "ringmaster_plane_calls_total{{operation=\"{operation}\",outcome=\"{outcome}\",plane=\"{plane}\"}}"
            ),
        )
    };
    assert_eq!(calls("publish", "success"), 1.0);
    assert_eq!(calls("query_status", "transient"), 2.0);
    assert_eq!(calls("publish", "policy_violation"), 1.0);
    assert_eq!(calls("publish", "circuit_open"), 1.0);
    assert_eq!(
        value(
            &text,
            &format!("ringmaster_plane_throttled_total{{plane=\"{plane}\"}}")
        ),
        2.0
    );
    // Two publishes sent (the refused one was not): the slow one is over 10 ms.
    let publish = format!("operation=\"publish\",plane=\"{plane}\"");
    assert_eq!(
        value(
            &text,
            &format!("ringmaster_plane_call_seconds_count{{{publish}}}")
        ),
        2.0
    );
    assert!(
        value(
            &text,
            &format!("ringmaster_plane_call_seconds_sum{{{publish}}}")
        ) >= 0.02
    );
    assert_eq!(
        value(
            &text,
            &format!("ringmaster_plane_call_seconds_bucket{{{publish},le=\"0.01\"}}")
        ),
        1.0
    );
}

#[test]
fn breaker_states_and_openings_are_reported() {
    use crate::orchestrator::{BreakerPolicy, CircuitBreaker};
    let dependency = "test-breaker";
    let start = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    let mut breaker = CircuitBreaker::new("test", BreakerPolicy::default());
    let state = |text: &str| {
        value(
            text,
            &format!("ringmaster_circuit_breaker_state{{dependency=\"{dependency}\"}}"),
        )
    };
    let openings = |text: &str| {
        value(
            text,
            &format!("ringmaster_circuit_breaker_openings_total{{dependency=\"{dependency}\"}}"),
        )
    };
    runtime::breaker(dependency, &breaker);
    let text = render(&observation(TelemetryRows::default()));
    assert_eq!((state(&text), openings(&text)), (0.0, 0.0));
    for _ in 0..3 {
        breaker.record_failure(start, "503", None, 0.0);
        runtime::breaker(dependency, &breaker);
    }
    // Reported again while open: still one opening.
    runtime::breaker(dependency, &breaker);
    let text = render(&observation(TelemetryRows::default()));
    assert_eq!((state(&text), openings(&text)), (2.0, 1.0));
    let until = breaker.retry_at().expect("open");
    assert!(breaker.admit(until).is_ok());
    runtime::breaker(dependency, &breaker);
    let text = render(&observation(TelemetryRows::default()));
    assert_eq!(state(&text), 1.0);
    breaker.record_failure(until, "503 again", None, 0.0);
    runtime::breaker(dependency, &breaker);
    let text = render(&observation(TelemetryRows::default()));
    assert_eq!((state(&text), openings(&text)), (2.0, 2.0));
    breaker.record_success();
    runtime::breaker(dependency, &breaker);
    let text = render(&observation(TelemetryRows::default()));
    assert_eq!((state(&text), openings(&text)), (0.0, 2.0));
}

#[test]
fn a_tally_kept_between_scrapes_counts_what_a_full_read_counts() {
    use crate::store::{EventOutcome, EventType, NewEvent};
    let mut store = Store::open_in_memory().expect("store");
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    let append = |store: &mut Store, event_type: EventType, details: serde_json::Value| {
        store
            .append_event(NewEvent {
                correlation_id: "c".into(),
                intent_id: None,
                event_type,
                timestamp: now,
                actor: "ringmaster".into(),
                actor_role: "control-plane".into(),
                execution_plane: Some("intune".into()),
                ring: Some("ring-1-canary".into()),
                outcome: EventOutcome::Success,
                details,
            })
            .expect("append");
    };
    let completed = serde_json::json!({"gate": {"verdict": "pass", "time_to_compliance_hours": 2.0},
                                       "site_class": "online"});
    let drift = serde_json::json!({"drift_type": "version_mismatch"});
    append(&mut store, EventType::RingCompleted, completed.clone());
    let mut tally = Tally::default();
    let first = Observation::read_with(&store, &mut tally, Vec::new(), now).expect("read");
    assert_eq!(first.rows.compliance.len(), 1);
    append(&mut store, EventType::RingCompleted, completed);
    append(&mut store, EventType::DriftDetected, drift.clone());
    append(&mut store, EventType::DriftDetected, drift);
    let kept = Observation::read_with(&store, &mut tally, Vec::new(), now).expect("read");
    let full = Observation::read(&store, Vec::new(), now).expect("read");
    let mut kept_events = kept.rows.events.clone();
    let mut full_events = full.rows.events.clone();
    kept_events.sort_by(|a, b| a.event_type.cmp(&b.event_type));
    full_events.sort_by(|a, b| a.event_type.cmp(&b.event_type));
    assert_eq!(kept_events, full_events);
    assert_eq!(kept.rows.compliance, full.rows.compliance);
    assert_eq!(kept.rows.compliance.len(), 2);
    assert!(
        kept_events
            .iter()
            .any(|e| e.event_type == "drift_detected" && e.count == 2),
        "{kept_events:?}"
    );
    // Another, shorter log: the tally starts again instead of adding up.
    let mut other = Store::open_in_memory().expect("store");
    append(
        &mut other,
        EventType::DriftDetected,
        serde_json::json!({"drift_type": "missing"}),
    );
    let fresh = Observation::read_with(&other, &mut tally, Vec::new(), now).expect("read");
    assert_eq!(fresh.rows.events.len(), 1, "{:?}", fresh.rows.events);
    assert!(fresh.rows.compliance.is_empty());
}
