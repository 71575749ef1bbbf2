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
    assert_eq!(runs[1].version_blocked_by.as_deref(), Some("bad"));
    assert_eq!(runs[2].version_blocked_by, None);

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
    assert_eq!(runs[1].version_blocked_by, None);
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
