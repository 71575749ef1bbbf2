//! Unit tests of the module as a whole: storage round trip, names, passes.
//! The transition tables are in `tests/orchestrator_table.rs`.

use super::testing::{config, intent};
use super::*;
use crate::policy::Decision;
use chrono::TimeZone;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 2, 9, 0, 0).unwrap()
}

fn run(intent_id: &str, version: &str) -> IntentRun {
    let mut intent = intent(&["ring-0-lab", "ring-1-canary"]);
    intent.intent_id = intent_id.into();
    intent.version = version.into();
    let plan = RolloutPlan::resolve(&intent, &config(), &[]).unwrap();
    IntentRun::new(&intent, plan)
}

fn allow() -> Event {
    Event::Evaluated {
        decision: Decision::Allow,
        risk_score: 20,
        counted_approvals: Vec::new(),
        conditions: Vec::new(),
        emergency_override: false,
        waits_on: Vec::new(),
    }
}

#[test]
fn a_run_survives_storage_as_json_in_any_phase() {
    let mut current = run("a", "1.0.0");
    let events = [
        allow(),
        Event::RingClaimed {
            ring: "ring-0-lab".into(),
        },
        Event::OperatorHold {
            reason: "look".into(),
            actor: "bob".into(),
        },
    ];
    for event in &events {
        current = step(&current, event, now()).0;
        let json = serde_json::to_string(&current).unwrap();
        let back: IntentRun = serde_json::from_str(&json).unwrap();
        assert_eq!(back, current);
        let value = serde_json::to_value(&current).unwrap();
        assert_eq!(value["phase"]["phase"], current.phase.name());
    }
    assert!(matches!(&current.phase, Phase::Held { resume_to, .. }
        if matches!(resume_to.as_ref(), Phase::RingStarting { stage: StartStage::RecordingEvidence, .. })));
    assert_eq!(serde_json::to_value(&current).unwrap()["decision"], "ALLOW");
}

#[test]
fn events_and_effects_serialise_with_their_names() {
    let event = allow();
    let value = serde_json::to_value(&event).unwrap();
    assert_eq!(value["event"], event.name());
    assert_eq!(value["decision"], "ALLOW");
    let back: Event = serde_json::from_value(value).unwrap();
    assert_eq!(back, event);
    let effect = Effect::Remediate {
        strategy: "intune-supersedence".into(),
        rings: vec!["ring-0-lab".into()],
        action: RemediationAction::Rollback {
            to_version: "2.0.5".into(),
        },
    };
    let value = serde_json::to_value(&effect).unwrap();
    assert_eq!(value["effect"], effect.name());
    assert_eq!(value["action"]["action"], "rollback");
}

#[test]
fn pass_blocks_and_clears_a_version_across_runs() {
    let mut bad = run("bad", "2.1.0");
    bad.phase = Phase::RolledBack {
        reason: "gate failed".into(),
    };
    bad.blocks_version = true;
    let mut same_version = run("same", "2.1.0");
    same_version = step(&same_version, &allow(), now()).0;
    let other_version = step(&run("other", "2.2.0"), &allow(), now()).0;
    let mut runs = vec![bad, same_version, other_version];
    assert_eq!(
        is_blocked_version(&runs, "vpn-client", "2.1.0"),
        Some("bad")
    );
    assert_eq!(is_blocked_version(&runs, "vpn-client", "2.2.0"), None);

    pass(&mut runs, now());
    assert_eq!(runs[1].version_blocked_by(), Some("bad"));
    assert_eq!(runs[2].version_blocked_by(), None);

    runs[0] = step(
        &runs[0],
        &Event::Superseded {
            by_intent: "fix".into(),
        },
        now(),
    )
    .0;
    assert_eq!(is_blocked_version(&runs, "vpn-client", "2.1.0"), None);
    pass(&mut runs, now());
    assert_eq!(runs[1].version_blocked_by(), None);
}

#[test]
fn pass_ticks_every_active_run_and_tags_effects() {
    let mut runs: Vec<IntentRun> = (0..3)
        .map(|index| {
            let mut current = run(&format!("intent-{index}"), "1.0.0");
            current.phase = Phase::RingInProgress {
                ring: "ring-0-lab".into(),
            };
            current
        })
        .collect();
    runs[2].phase = Phase::Completed;
    let effects = pass(&mut runs, now());
    let tagged: Vec<(&str, &str)> = effects
        .iter()
        .map(|(intent_id, effect)| (intent_id.as_str(), effect.name()))
        .collect();
    assert_eq!(
        tagged,
        [("intent-0", "query_status"), ("intent-1", "query_status")]
    );
}

/// The start record's summary is held as text (issue 17) but stored as the
/// value it was built from: the run's JSON is the same bytes as when the
/// summary was a `serde_json::Value`, and reads back to the same run.
#[test]
fn a_start_record_is_stored_as_the_summary_value_it_asked_to_record() {
    let mut current = run("a", "1.0.0");
    current = step(&current, &allow(), now()).0;
    let (current, effects) = step(
        &current,
        &Event::RingClaimed {
            ring: "ring-0-lab".into(),
        },
        now(),
    );
    let summary = effects
        .iter()
        .find_map(|effect| match effect {
            Effect::RecordEvidence { summary, .. } => Some(summary.clone()),
            _ => None,
        })
        .expect("a claimed ring asks for its start record");
    let record = current.start_record.as_ref().expect("kept on the run");
    assert!(record.summary.holds(&summary));
    assert_eq!(record.summary.to_value(), summary);

    // As the daemon stores it: through a value, then text.
    let stored = serde_json::to_value(&current).unwrap();
    assert_eq!(stored["start_record"]["summary"], summary);
    let text = serde_json::to_string(&stored).unwrap();
    let mut old_shape = stored.clone();
    old_shape["start_record"]["summary"] = summary.clone();
    assert_eq!(text, serde_json::to_string(&old_shape).unwrap());
    let back: IntentRun = serde_json::from_value(serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(back, current);
    assert_eq!(
        serde_json::to_string(&serde_json::to_value(&back).unwrap()).unwrap(),
        text
    );
}

#[test]
fn compact_json_keeps_the_value_and_its_bytes() {
    let value = serde_json::json!({
        "z": 1, "a": [0.1, 4.0, -2, 1e300, null, true],
        "text": "quote \" slash \\ é \u{1F600} \n",
        "nested": {"b": {}, "a": []},
    });
    let compact = CompactJson::of(&value);
    assert_eq!(compact.to_value(), value);
    assert!(compact.holds(&value));
    assert!(!compact.holds(&serde_json::json!({"z": 1})));
    assert_eq!(
        serde_json::to_string(&compact).unwrap(),
        serde_json::to_string(&value).unwrap()
    );
    let read: CompactJson = serde_json::from_str(&serde_json::to_string(&value).unwrap()).unwrap();
    assert_eq!(read, compact);
    let from_value: CompactJson = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(from_value, compact);
}

/// A run as the store holds it (the issue-17 tenant's, with a completed
/// ring, a non-default backoff's neighbour below, a CAB hold and a
/// schedule), in `phase`.
fn stored_run(phase: serde_json::Value) -> serde_json::Value {
    let gates = serde_json::json!({"max_incidents": 0, "min_reporting_devices": 3,
        "min_reporting_fraction": 0.5, "on_incident": "fail",
        "success_rate_threshold": 0.95, "time_to_compliance_hours": 24.0});
    let planned = |ring: &str, hours: f64| {
        serde_json::json!({"base_soak_hours": hours, "cab_hold": null, "gates": gates,
            "not_before": null, "ring": ring, "soak_hours": hours})
    };
    let fresh = |ring: &str| {
        serde_json::json!({"cab_hold_released": false, "completed_at": null,
            "external_id": null, "freeze_override": null, "gate": null, "observed": null,
            "observed_at": null, "publish_requested": false, "ring": ring,
            "start_transition_id": null, "started_at": null})
    };
    let mut pilot = planned("ring-2-pilot", 48.0);
    pilot["cab_hold"] = "hold for the CAB".into();
    pilot["not_before"] = "2026-12-02T08:00:00Z".into();
    pilot["soak_hours"] = 96.5.into();
    serde_json::json!({
        "application_id": "synthetic-app-02499",
        "backoff": {"base_delay_seconds": 30, "jitter_ratio": 0.25, "max_attempts": 6,
                    "max_delay_seconds": 3600, "reply_timeout_seconds": 900},
        "blocks_version": false,
        "claimed_rings": ["ring-1-canary"],
        "conditions": [],
        "counted_approvals": [],
        "decision": "ALLOW",
        "emergency_override": false,
        "generation": 1,
        "intent_id": "synthetic-app-02499-it",
        "phase": phase,
        "plan": {"cab_ring_index": 2,
            "change_freezes": [
                {"cron": "0 0 0 20 12 *", "duration_hours": 336.0, "name": "year-end-freeze", "timezone": "UTC"},
                {"cron": "0 0 0 28 3,6,9 *", "duration_hours": 120.0, "name": "quarterly-close", "timezone": "UTC"}],
            "rings": [planned("ring-0-lab", 4.0), planned("ring-1-canary", 24.0), pilot],
            "rollback": {"rollback_version": "1.0.0", "strategy": "intune-supersedence", "validated": true},
            "site_class": "branch"},
        "retry": {"attempts": 1, "last_attempt_at": "2026-12-01T13:30:00Z", "next_attempt_at": null},
        "rings": [
            {"cab_hold_released": true, "completed_at": "2026-12-01T13:30:00Z",
             "external_id": "sim-intune-app-14999", "freeze_override": {"name": "year-end",
             "started_at": "2026-12-20T00:00:00Z", "ends_at": "2027-01-03T00:00:00Z"},
             "gate": {"verdict": "pass", "success_rate": 0.775, "reporting_devices": 33,
                      "targeted_devices": 40, "reporting_fraction": 0.825,
                      "time_to_compliance_hours": 1.0, "soak_complete": true,
                      "reasons": ["success rate 77.5% >= 75%"]},
             "observed": {"targeted": 40, "installed": 31, "failed": 2, "pending": 7,
                          "incidents": 0, "first_install_at": "2026-12-01T10:00:00Z"},
             "observed_at": "2026-12-01T13:00:00Z", "publish_requested": true, "ring": "ring-0-lab",
             "start_transition_id": "synthetic-app-02499-it/0001-ring_start",
             "started_at": "2026-12-01T09:00:00Z"},
            {"cab_hold_released": false, "completed_at": null,
             "external_id": null, "freeze_override": null, "gate": null, "observed": null,
             "observed_at": null, "publish_requested": false, "ring": "ring-1-canary",
             "start_transition_id": "synthetic-app-02499-it/0002-ring_start", "started_at": null},
            fresh("ring-2-pilot"),
        ],
        "risk_score": 12,
        "start_record": {"committed": false, "record_type": "ring_start", "ring": "ring-1-canary",
            "summary": {"ring": "ring-1-canary", "soak_hours": 24.0, "devices": [1, 2.5, "x"]},
            "transition_id": "synthetic-app-02499-it/0002-ring_start"},
        "superseded_by": null,
        "transitions_recorded": 2,
        "version": "1.2.0",
        "version_blocked_by": null,
    })
}

/// What the store reads back it writes again byte for byte, whatever the
/// run shares in memory (its plan, backoff policy and ring names, issue 17),
/// in every stored phase.
#[test]
fn a_stored_run_reads_back_to_the_same_json_in_every_phase() {
    let phases = [
        serde_json::json!({"phase": "pending"}),
        serde_json::json!({"phase": "scope_validated"}),
        serde_json::json!({"phase": "awaiting_approval", "ring": "ring-2-pilot", "requirement": "cab_approval"}),
        serde_json::json!({"phase": "cab_approved"}),
        serde_json::json!({"phase": "ring_starting", "ring": "ring-1-canary", "stage": "recording_evidence"}),
        serde_json::json!({"phase": "ring_in_progress", "ring": "ring-0-lab"}),
        serde_json::json!({"phase": "ring_completed", "ring": "ring-0-lab"}),
        serde_json::json!({"phase": "paused", "freeze": "year-end-freeze", "ring": "ring-1-canary",
                           "until": "2027-01-03T00:00:00Z"}),
        serde_json::json!({"phase": "held", "reason": "look", "by": "bob", "cause": "operator",
                           "resume_to": {"phase": "ring_starting", "ring": "ring-1-canary", "stage": "publishing"}}),
        serde_json::json!({"phase": "rolling_back", "reason": "gate failed"}),
        serde_json::json!({"phase": "completed"}),
        serde_json::json!({"phase": "failed", "reason": "denied"}),
        serde_json::json!({"phase": "rolled_back", "reason": "gate failed"}),
        serde_json::json!({"phase": "superseded", "by_intent": "b"}),
    ];
    let mut shares = PlanShares::default();
    let mut runs = Vec::new();
    for phase in phases {
        let stored = stored_run(phase);
        let text = serde_json::to_string(&stored).unwrap();
        let mut run: IntentRun =
            serde_json::from_value(serde_json::from_str(&text).unwrap()).unwrap();
        shares.share(&mut run.plan);
        assert_eq!(
            serde_json::to_string(&serde_json::to_value(&run).unwrap()).unwrap(),
            text
        );
        // Serialized directly (not through a value), it is the same value.
        let direct: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&run).unwrap()).unwrap();
        assert_eq!(serde_json::to_string(&direct).unwrap(), text);
        let back: IntentRun = serde_json::from_str(&serde_json::to_string(&run).unwrap()).unwrap();
        assert_eq!(back, run);
        runs.push(run);
    }
    // Read back, the runs share one plan, one backoff policy, one name per ring.
    let first = &runs[0];
    for run in &runs[1..] {
        assert!(run.plan.ptr_eq(&first.plan));
        assert!(run.backoff.ptr_eq(&first.backoff));
        assert!(run.backoff.ptr_eq(&BackoffPolicy::shared_default()));
        for (ring, first_ring) in run.rings.iter().zip(&first.rings) {
            assert!(std::sync::Arc::ptr_eq(&ring.ring, &first_ring.ring));
        }
    }
}

/// A policy other than the default is the run's own, stored as it was.
#[test]
fn a_run_with_its_own_backoff_policy_keeps_it() {
    let mut stored = stored_run(serde_json::json!({"phase": "pending"}));
    stored["backoff"]["jitter_ratio"] = serde_json::json!(0.0);
    let text = serde_json::to_string(&stored).unwrap();
    let run: IntentRun = serde_json::from_str(&text).unwrap();
    assert!(!run.backoff.ptr_eq(&BackoffPolicy::shared_default()));
    assert_eq!(run.backoff.jitter_ratio, 0.0);
    assert_eq!(
        serde_json::to_string(&serde_json::to_value(&run).unwrap()).unwrap(),
        text
    );
}

/// Conditions that leave a shared plan as it is keep it shared; conditions
/// that change it give the run a plan of its own, the others keep theirs.
#[test]
fn conditions_unshare_a_plan_only_when_they_change_it() {
    let mut shares = PlanShares::default();
    let intent = intent(&["ring-0-lab", "ring-1-canary", "ring-2-pilot"]);
    let plan = RolloutPlan::resolve_sharing(&intent, &config(), &[], &mut shares).unwrap();
    let mut first = IntentRun::new(&intent, plan.clone());
    let second = IntentRun::new(&intent, plan.clone());
    first.plan.set_conditions(&[]);
    assert!(first.plan.ptr_eq(&second.plan));
    let condition: crate::model::ApprovalCondition = serde_json::from_value(serde_json::json!({
        "description": "soak the canary two days", "hold_at_ring": "ring-1-canary",
        "min_soak_hours": 48.0}))
    .unwrap();
    first.plan.set_conditions(std::slice::from_ref(&condition));
    assert!(!first.plan.ptr_eq(&second.plan));
    assert_eq!(first.plan.rings[1].soak_hours, 48.0);
    assert_eq!(second.plan.rings[1].soak_hours, 24.0);
    let alone = RolloutPlan::resolve(&intent, &config(), &[condition]).unwrap();
    assert_eq!(*first.plan, alone);
}

/// Approvals, conditions, waits and blocks live in a box only runs that
/// have them hold; stored, they are the fields they always were.
#[test]
fn a_run_with_approvals_and_blocks_reads_back_to_the_same_json() {
    let mut stored =
        stored_run(serde_json::json!({"phase": "ring_in_progress", "ring": "ring-0-lab"}));
    stored["counted_approvals"] = serde_json::json!(["cab-1", "cab-2"]);
    stored["conditions"] = serde_json::json!([{"description": "soak the canary", "hold_at_ring": "ring-1-canary",
                                               "min_soak_hours": 48.0}]);
    stored["version_blocked_by"] = "older".into();
    stored["superseded_by"] = "newer".into();
    stored["waits_on"] = serde_json::json!(["other-intent"]);
    let text = serde_json::to_string(&stored).unwrap();
    let run: IntentRun = serde_json::from_str(&text).unwrap();
    assert_eq!(run.counted_approvals(), ["cab-1", "cab-2"]);
    assert_eq!(run.conditions().len(), 1);
    assert_eq!(run.version_blocked_by(), Some("older"));
    assert_eq!(run.superseded_by(), Some("newer"));
    assert_eq!(run.waits_on(), ["other-intent"]);
    assert_eq!(
        serde_json::to_string(&serde_json::to_value(&run).unwrap()).unwrap(),
        text
    );
    // Cleared one by one, the run is the one that never had them.
    let mut cleared = run.clone();
    cleared.set_counted_approvals(Vec::new());
    cleared.set_conditions(Vec::new());
    assert_eq!(
        cleared.set_version_blocked_by(None).as_deref(),
        Some("older")
    );
    cleared.set_superseded_by(None);
    assert_ne!(cleared, run);
    cleared.set_waits_on(Vec::new());
    let plain: IntentRun = serde_json::from_value(stored_run(
        serde_json::json!({"phase": "ring_in_progress", "ring": "ring-0-lab"}),
    ))
    .unwrap();
    assert_eq!(cleared, plain);
    assert_eq!(
        serde_json::to_value(&cleared).unwrap(),
        serde_json::to_value(&plain).unwrap()
    );
    assert!(
        serde_json::to_value(&cleared)
            .unwrap()
            .get("waits_on")
            .is_none()
    );
}
