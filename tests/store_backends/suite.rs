//! The bodies of the shared store suite; each takes a fresh [`Fixture`].

#![allow(clippy::result_large_err)]

use crate::{Backend, Fixture};
use chrono::{DateTime, TimeZone, Utc};
use ringmaster::store::{
    ActionState, CommitOutcome, EventFilter, EventOutcome, EventType, IncidentReport,
    IncidentStatus, IntentUpsert, LeadershipOutcome, NewAction, NewEvent, RulesState,
    SUPPORTED_SCHEMA_VERSION, Store, StoreError, correlation_id_for,
};
use serde_json::json;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 4, 10, 0, 0).unwrap() + chrono::Duration::minutes(minute.into())
}

fn vpn_intent(intent_id: &str) -> IntentUpsert {
    IntentUpsert {
        intent_id: intent_id.to_string(),
        application_id: "vpn-client".to_string(),
        acquisition_boundary: "corp".to_string(),
        business_unit: "bu-finance".to_string(),
        version: "2.1.0".to_string(),
        content_sha256: "ab".repeat(32),
        state: "pending".to_string(),
        state_json: json!({}),
        decision: None,
        risk_score: Some(42),
    }
}

fn event(intent_id: &str, minute: u32) -> NewEvent {
    NewEvent {
        correlation_id: correlation_id_for(intent_id),
        intent_id: Some(intent_id.to_string()),
        event_type: EventType::RingCompleted,
        timestamp: at(minute),
        actor: "ringmaster".to_string(),
        actor_role: "control-plane".to_string(),
        execution_plane: Some("jamf".to_string()),
        ring: Some("ring-1-canary".to_string()),
        outcome: EventOutcome::Success,
        details: json!({"gate": {"verdict": "pass", "time_to_compliance_hours": 2.5},
                        "minute": minute, "text": "é ü ?1 'quoted'"}),
    }
}

fn action(intent_id: &str, ring: &str) -> NewAction {
    NewAction {
        intent_id: intent_id.to_string(),
        plane: "jamf".to_string(),
        ring: ring.to_string(),
        action: "publish".to_string(),
        request: json!({"package": "vpn-2.1.pkg", "ring": ring}),
    }
}

fn is_fenced(error: &StoreError) -> bool {
    matches!(error, StoreError::Fenced { .. })
}

pub fn migrations_apply_once_and_reopen_cleanly(fixture: &Fixture) {
    let store = fixture.open();
    let version = store.schema_version().unwrap();
    match fixture.backend {
        Backend::Sqlite => assert_eq!(version, SUPPORTED_SCHEMA_VERSION),
        Backend::Postgres => assert!(version >= 1),
    }
    drop(store);
    // Two opens at once: one migrates, the other finds it done.
    let openers: Vec<_> = (0..2)
        .map(|_| {
            let location = fixture.location.clone();
            std::thread::spawn(move || Store::open_location(&location).map(|_| ()))
        })
        .collect();
    for opener in openers {
        opener.join().unwrap().unwrap();
    }
    let reopened = fixture.open();
    assert_eq!(reopened.schema_version().unwrap(), version);
    reopened.quick_check().unwrap();
}

pub fn open_existing_refuses_a_location_without_ringmaster_state(fixture: &Fixture) {
    let error = Store::open_existing_location(&fixture.location).unwrap_err();
    assert!(
        matches!(error, StoreError::Missing { .. } | StoreError::Empty { .. }),
        "{error}"
    );
    // Nothing was created by the refusal: a second try fails the same way.
    assert!(Store::open_existing_location(&fixture.location).is_err());
    drop(fixture.open());
    Store::open_existing_location(&fixture.location).unwrap();
}

pub fn event_chain_is_contiguous_and_verifiable_across_reopen(fixture: &Fixture) {
    let mut store = fixture.open();
    assert!(store.last_event().unwrap().is_none());
    let first = store.append_event(event("vpn-2.1", 0)).unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.prev_hash, ringmaster::store::GENESIS_PREV_HASH);
    for minute in 1..5 {
        store.append_event(event("vpn-2.1", minute)).unwrap();
    }
    drop(store);
    let mut store = fixture.open();
    let sixth = store.append_event(event("vpn-2.1", 5)).unwrap();
    assert_eq!(sixth.seq, 6);
    let report = store.verify_event_chain().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert!(report.append_only_triggers_present);
    assert_eq!(report.events_checked, 6);
    assert_eq!(
        report.last_verified_hash.as_deref(),
        Some(sixth.hash.as_str())
    );
    assert_eq!(store.event_hash(6).unwrap(), Some(sixth.hash.clone()));
    assert_eq!(store.event_hash(7).unwrap(), None);
    let events = store.events(&EventFilter::default()).unwrap();
    assert_eq!(events.len(), 6);
    assert_eq!(events[5], sixth);
    assert_eq!(events[2].details["text"], "é ü ?1 'quoted'");
    assert_eq!(events[2].timestamp, at(2));
}

pub fn two_stores_append_to_one_contiguous_chain(fixture: &Fixture) {
    drop(fixture.open());
    let writers: Vec<_> = ["vpn-2.1", "zoom-5.0"]
        .into_iter()
        .map(|intent_id| {
            let location = fixture.location.clone();
            std::thread::spawn(move || {
                let mut store = Store::open_location(&location).unwrap();
                for minute in 0..20 {
                    store.append_event(event(intent_id, minute)).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let report = fixture.open().verify_event_chain().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events_checked, 40);
}

pub fn events_refuse_update_delete_and_out_of_order_inserts(fixture: &Fixture) {
    let mut store = fixture.open();
    for minute in 0..3 {
        store.append_event(event("vpn-2.1", minute)).unwrap();
    }
    let update = fixture.raw("UPDATE events SET actor = 'mallory' WHERE seq = 2");
    assert!(update.unwrap_err().contains("events are append-only"));
    let delete = fixture.raw("DELETE FROM events WHERE seq = 3");
    assert!(delete.unwrap_err().contains("events are append-only"));
    assert!(fixture.raw("DELETE FROM events").is_err());
    if fixture.backend == Backend::Postgres {
        let truncate = fixture.raw("TRUNCATE events");
        assert!(truncate.unwrap_err().contains("events are append-only"));
    }
    let skipped = fixture.raw(
        "INSERT INTO events (seq, event_id, correlation_id, event_type, timestamp, actor,
             actor_role, outcome, details, prev_hash, hash)
         SELECT 5, 'x', correlation_id, event_type, timestamp, actor, actor_role, outcome,
             details, hash, hash FROM events WHERE seq = 3",
    );
    assert!(
        skipped
            .unwrap_err()
            .contains("appended at the end of the chain")
    );
    assert_eq!(store.events(&EventFilter::default()).unwrap().len(), 3);
    assert!(store.verify_event_chain().unwrap().is_intact());
}

pub fn tampering_behind_disabled_triggers_is_caught_by_verify(fixture: &Fixture) {
    let mut store = fixture.open();
    for minute in 0..4 {
        store.append_event(event("vpn-2.1", minute)).unwrap();
    }
    let tamper = match fixture.backend {
        Backend::Sqlite => {
            "DROP TRIGGER events_refuse_update;
             UPDATE events SET actor = 'mallory' WHERE seq = 3;"
        }
        Backend::Postgres => {
            "ALTER TABLE events DISABLE TRIGGER events_refuse_update;
             UPDATE events SET actor = 'mallory' WHERE seq = 3;"
        }
    };
    fixture.raw(tamper).unwrap();
    let store = fixture.open();
    let report = store.verify_event_chain().unwrap();
    assert!(!report.is_intact());
    assert!(!report.append_only_triggers_present, "{report:?}");
    let broken = report.first_break.expect("a break");
    assert_eq!(broken.seq, 3);
    assert!(
        matches!(
            broken.reason,
            ringmaster::store::ChainBreakReason::HashMismatch { .. }
        ),
        "{broken}"
    );
    assert_eq!(report.events_checked, 2);
}

pub fn event_filters_narrow_and_limit(fixture: &Fixture) {
    let mut store = fixture.open();
    for minute in 0..6 {
        let intent = if minute % 2 == 0 {
            "vpn-2.1"
        } else {
            "zoom-5.0"
        };
        store.append_event(event(intent, minute)).unwrap();
    }
    let vpn = EventFilter {
        intent_id: Some("vpn-2.1".to_string()),
        ..EventFilter::default()
    };
    assert_eq!(store.events(&vpn).unwrap().len(), 3);
    let tail = EventFilter {
        since_seq: Some(4),
        ..EventFilter::default()
    };
    let seqs: Vec<u64> = store
        .events(&tail)
        .unwrap()
        .iter()
        .map(|event| event.seq)
        .collect();
    assert_eq!(seqs, vec![5, 6]);
    let limited = EventFilter {
        correlation_id: Some(correlation_id_for("zoom-5.0")),
        limit: Some(2),
        ..EventFilter::default()
    };
    let seqs: Vec<u64> = store
        .events(&limited)
        .unwrap()
        .iter()
        .map(|event| event.seq)
        .collect();
    assert_eq!(seqs, vec![2, 4]);
    assert_eq!(store.last_event().unwrap().unwrap().seq, 6);
}

pub fn intents_upsert_and_keep_their_correlation_id(fixture: &Fixture) {
    let mut store = fixture.open();
    let first = store.upsert_intent(&vpn_intent("vpn-2.1"), at(0)).unwrap();
    assert_eq!(first.correlation_id, correlation_id_for("vpn-2.1"));
    let mut changed = vpn_intent("vpn-2.1");
    changed.state = "running".to_string();
    changed.state_json = json!({"run": {"phase": "ring-1"}});
    store.upsert_intent(&changed, at(1)).unwrap();
    drop(store);
    let mut store = fixture.open();
    let record = store.get_intent("vpn-2.1").unwrap().unwrap();
    assert_eq!(record.correlation_id, first.correlation_id);
    assert_eq!(record.state, "running");
    assert_eq!(record.risk_score, Some(42));
    store
        .set_intent_state("vpn-2.1", "done", &json!({"done": true}), at(2))
        .unwrap();
    let error = store
        .set_intent_state("ghost", "done", &json!({}), at(2))
        .unwrap_err();
    assert!(
        matches!(error, StoreError::IntentNotFound { .. }),
        "{error}"
    );
    store.upsert_intent(&vpn_intent("a-first"), at(3)).unwrap();
    let ids: Vec<String> = store
        .list_intents()
        .unwrap()
        .into_iter()
        .map(|intent| intent.intent_id)
        .collect();
    assert_eq!(ids, vec!["a-first".to_string(), "vpn-2.1".to_string()]);
    let after: Vec<String> = store
        .list_intents_after(Some("a-first"), 10)
        .unwrap()
        .into_iter()
        .map(|intent| intent.intent_id)
        .collect();
    assert_eq!(after, vec!["vpn-2.1".to_string()]);
}

pub fn one_active_change_per_application_boundary_unit_and_ring(fixture: &Fixture) {
    let mut store = fixture.open();
    for intent in ["vpn-2.1", "vpn-2.2"] {
        store.upsert_intent(&vpn_intent(intent), at(0)).unwrap();
    }
    let claim = |store: &mut Store, intent: &str, unit: &str, ring: &str| {
        store.claim_ring(intent, "vpn-client", "corp", unit, ring, at(1))
    };
    claim(&mut store, "vpn-2.1", "bu-finance", "ring-1").unwrap();
    claim(&mut store, "vpn-2.1", "bu-finance", "ring-1").unwrap();
    match claim(&mut store, "vpn-2.2", "bu-finance", "ring-1").unwrap_err() {
        StoreError::RingBusy {
            holder_intent_id, ..
        } => assert_eq!(holder_intent_id, "vpn-2.1"),
        other => panic!("expected RingBusy, got {other}"),
    }
    claim(&mut store, "vpn-2.2", "bu-finance", "ring-2").unwrap();
    claim(&mut store, "vpn-2.2", "bu-hr", "ring-1").unwrap();
    let error = claim(&mut store, "ghost", "bu-x", "ring-1").unwrap_err();
    assert!(
        matches!(error, StoreError::IntentNotFound { .. }),
        "{error}"
    );
    assert!(store.release_ring("vpn-2.1", "ring-1", at(2)).unwrap());
    assert!(!store.release_ring("vpn-2.1", "ring-1", at(3)).unwrap());
    claim(&mut store, "vpn-2.2", "bu-finance", "ring-1").unwrap();
    let active = store
        .active_changes_for("vpn-client", "corp", "bu-finance")
        .unwrap();
    let held: Vec<(&str, &str)> = active
        .iter()
        .map(|change| (change.intent_id.as_str(), change.ring.as_str()))
        .collect();
    assert_eq!(held, vec![("vpn-2.2", "ring-1"), ("vpn-2.2", "ring-2")]);
}

pub fn the_unique_index_refuses_a_second_active_change_written_raw(fixture: &Fixture) {
    let mut store = fixture.open();
    for intent in ["vpn-2.1", "vpn-2.2"] {
        store.upsert_intent(&vpn_intent(intent), at(0)).unwrap();
    }
    store
        .claim_ring(
            "vpn-2.1",
            "vpn-client",
            "corp",
            "bu-finance",
            "ring-1",
            at(1),
        )
        .unwrap();
    let error = fixture
        .raw(
            "INSERT INTO active_changes (intent_id, application_id, acquisition_boundary,
                 business_unit, ring, claimed_at)
             VALUES ('vpn-2.2', 'vpn-client', 'corp', 'bu-finance', 'ring-1', 'x')",
        )
        .unwrap_err();
    assert!(
        error.contains("UNIQUE") || error.contains("unique"),
        "{error}"
    );
}

pub fn idempotency_claims_are_unique_and_follow_the_state_machine(fixture: &Fixture) {
    let mut store = fixture.open();
    store.upsert_intent(&vpn_intent("vpn-2.1"), at(0)).unwrap();
    let planned = store
        .plan_action(&action("vpn-2.1", "ring-1"), at(1))
        .unwrap();
    assert_eq!(planned.state, ActionState::Planned);
    // Planning again is the same row, whatever happened since.
    store.mark_sent(&planned.key, at(2)).unwrap();
    let again = store
        .plan_action(&action("vpn-2.1", "ring-1"), at(3))
        .unwrap();
    assert_eq!(again.state, ActionState::Sent);
    assert_eq!(again.planned_at, at(1));
    let mut different = action("vpn-2.1", "ring-1");
    different.request = json!({"package": "other"});
    let error = store.plan_action(&different, at(3)).unwrap_err();
    assert!(
        matches!(error, StoreError::ActionRequestMismatch { .. }),
        "{error}"
    );
    let error = store
        .plan_action(&action("ghost", "ring-1"), at(3))
        .unwrap_err();
    assert!(
        matches!(error, StoreError::IntentNotFound { .. }),
        "{error}"
    );
    // The database refuses a second row with the key.
    let duplicate = fixture.raw(&format!(
        "INSERT INTO idempotency (key, intent_id, plane, ring, action, request, state,
             attempts, planned_at, updated_at)
         VALUES ('{}', 'vpn-2.1', 'jamf', 'ring-1', 'publish', '{{}}', 'planned', 0, 'x', 'x')",
        planned.key
    ));
    assert!(duplicate.is_err());
    let second = store
        .plan_action(&action("vpn-2.1", "ring-2"), at(4))
        .unwrap();
    drop(store);
    let mut store = fixture.open();
    let pending: Vec<String> = store
        .pending_actions()
        .unwrap()
        .into_iter()
        .map(|action| action.key)
        .collect();
    assert_eq!(pending, vec![planned.key.clone(), second.key.clone()]);
    let error = store.mark_confirmed(&second.key, None, at(5)).unwrap_err();
    assert!(
        matches!(error, StoreError::IllegalActionTransition { .. }),
        "{error}"
    );
    store
        .mark_failed(&planned.key, "503", Some(at(10)), at(6))
        .unwrap();
    assert!(store.actions_due_for_retry(at(9)).unwrap().is_empty());
    assert_eq!(store.actions_due_for_retry(at(10)).unwrap().len(), 1);
    store.mark_sent(&planned.key, at(11)).unwrap();
    let confirmed = store
        .mark_confirmed(&planned.key, Some("policy-17"), at(12))
        .unwrap();
    assert_eq!(confirmed.attempts, 2);
    assert_eq!(confirmed.external_id.as_deref(), Some("policy-17"));
    store
        .mark_not_sent(&second.key, "breaker open", Some(at(20)), at(13))
        .unwrap();
    // Marked sent with a chunk, then not sent after all (its plane's
    // breaker opened first): back to planned, the attempt given back.
    store.mark_sent(&second.key, at(21)).unwrap();
    let unsent = store
        .mark_unsent(
            &second.key,
            ActionState::Planned,
            "not sent: breaker open",
            Some(at(30)),
            at(22),
        )
        .unwrap();
    assert_eq!(unsent.state, ActionState::Planned);
    assert_eq!(unsent.attempts, 0);
    assert_eq!(unsent.next_attempt_at, Some(at(30)));
    assert_eq!(unsent.last_error.as_deref(), Some("not sent: breaker open"));
    // Only an entry that is sent, and only back to planned or failed.
    for (key, before) in [
        (&second.key, ActionState::Planned),
        (&planned.key, ActionState::Planned),
    ] {
        let error = store
            .mark_unsent(key, before, "no", None, at(23))
            .unwrap_err();
        assert!(
            matches!(error, StoreError::IllegalActionTransition { .. }),
            "{error}"
        );
    }
    store.mark_sent(&second.key, at(24)).unwrap();
    let error = store
        .mark_unsent(&second.key, ActionState::Confirmed, "no", None, at(25))
        .unwrap_err();
    assert!(
        matches!(error, StoreError::IllegalActionTransition { .. }),
        "{error}"
    );
    assert_eq!(store.actions().unwrap().len(), 2);
    let figures = store.plane_action_figures().unwrap();
    assert_eq!(figures.len(), 1);
    assert_eq!(figures[0].plane, "jamf");
}

pub fn webhook_deliveries_are_deduplicated(fixture: &Fixture) {
    let mut store = fixture.open();
    let payload = json!({"ref": "refs/heads/main"});
    assert!(
        store
            .record_delivery("d-1", "push", &payload, at(0))
            .unwrap()
    );
    assert!(
        store
            .record_delivery("d-2", "push", &payload, at(0))
            .unwrap()
    );
    drop(store);
    let mut store = fixture.open();
    assert!(
        !store
            .record_delivery("d-1", "push", &payload, at(1))
            .unwrap()
    );
    let unprocessed: Vec<String> = store
        .unprocessed_deliveries()
        .unwrap()
        .into_iter()
        .map(|delivery| delivery.delivery_id)
        .collect();
    assert_eq!(unprocessed, vec!["d-1".to_string(), "d-2".to_string()]);
    store.mark_delivery_processed("d-1", at(2)).unwrap();
    store.mark_delivery_processed("d-1", at(3)).unwrap();
    assert_eq!(store.unprocessed_deliveries().unwrap().len(), 1);
    assert!(store.mark_delivery_processed("nope", at(3)).is_err());
}

pub fn processed_commits_and_evidence_head_only_move_forward(fixture: &Fixture) {
    let mut store = fixture.open();
    store
        .record_commit("main", "c1", CommitOutcome::Ok, &json!([]), at(0))
        .unwrap();
    store
        .record_commit(
            "main",
            "c2",
            CommitOutcome::Invalid,
            &json!([{"x": 1}]),
            at(1),
        )
        .unwrap();
    assert!(store.is_commit_processed("main", "c1").unwrap());
    assert!(!store.is_commit_processed("main", "c3").unwrap());
    assert_eq!(
        store
            .last_processed_commit("main")
            .unwrap()
            .unwrap()
            .commit_sha,
        "c2"
    );
    assert_eq!(
        store.last_good_commit("main").unwrap().unwrap().commit_sha,
        "c1"
    );
    assert_eq!(store.evidence_head().unwrap(), None);
    store.set_evidence_head(1, "p1", "e1", at(1)).unwrap();
    let head = store.set_evidence_head(2, "p2", "e2", at(2)).unwrap();
    assert_eq!(store.set_evidence_head(2, "p2", "e2", at(3)).unwrap(), head);
    let error = store.set_evidence_head(1, "p1", "e1", at(4)).unwrap_err();
    assert!(
        matches!(error, StoreError::EvidenceHeadRegression { .. }),
        "{error}"
    );
    let error = store.set_evidence_head(2, "px", "e2", at(4)).unwrap_err();
    assert!(
        matches!(error, StoreError::EvidenceHeadConflict { .. }),
        "{error}"
    );
    drop(store);
    assert_eq!(fixture.open().evidence_head().unwrap(), Some(head));
}

pub fn operator_and_reconcile_requests_are_queued_in_order(fixture: &Fixture) {
    let mut store = fixture.open();
    let first = store
        .request_operator_action("vpn-2.1", "hold", "why", "alice", at(0))
        .unwrap();
    let second = store
        .request_operator_action("vpn-2.1", "resume", "ok", "alice", at(1))
        .unwrap();
    assert!(second > first);
    let pending = store.pending_operator_requests().unwrap();
    assert_eq!(pending.len(), 2);
    store.mark_operator_request_handled(first, at(2)).unwrap();
    assert_eq!(store.pending_operator_requests().unwrap().len(), 1);
    let reconcile = store
        .request_reconcile("bob", "drift", &json!({"via": "api"}), at(3))
        .unwrap();
    assert!(reconcile >= 1);
    assert_eq!(store.pending_reconcile_requests().unwrap().len(), 1);
}

pub fn incidents_notifications_rules_and_telemetry_round_trip(fixture: &Fixture) {
    let mut store = fixture.open();
    store.upsert_intent(&vpn_intent("vpn-2.1"), at(0)).unwrap();
    for minute in 0..3 {
        store.append_event(event("vpn-2.1", minute)).unwrap();
    }
    let report = IncidentReport {
        source: "alertmanager".to_string(),
        external_id: "fp-1".to_string(),
        application_id: "vpn-client".to_string(),
        ring: None,
        business_unit: None,
        severity: "critical".to_string(),
        summary: "crash loop".to_string(),
        status: IncidentStatus::Open,
        started_at: at(0),
        details: json!({"labels": {}}),
    };
    store.record_incident(&report, at(1)).unwrap();
    store.record_incident(&report, at(2)).unwrap();
    assert_eq!(store.incidents().unwrap().len(), 1);
    assert_eq!(
        store
            .open_incidents_matching("vpn-client", "ring-1", "bu-finance", at(3))
            .unwrap()
            .len(),
        1
    );
    store.start_notification_cursor("slack", 0).unwrap();
    store.start_notification_cursor("slack", 2).unwrap();
    assert_eq!(store.notification_cursor("slack").unwrap(), Some(0));
    store
        .enqueue_notifications(
            "slack",
            3,
            &[(1, "ring_completed"), (3, "ring_completed")],
            at(3),
        )
        .unwrap();
    store
        .enqueue_notifications("slack", 2, &[(1, "ring_completed")], at(3))
        .unwrap();
    assert_eq!(store.notification_cursor("slack").unwrap(), Some(3));
    assert_eq!(
        store.due_notifications("slack", at(3), 10).unwrap().len(),
        2
    );
    let rules = RulesState {
        branch: "main".to_string(),
        root_commit: "root".to_string(),
        rules_commit: "r1".to_string(),
        app_scopes: json!({"vpn-client": ["corp"]}),
        unauthorised: None,
        judged_commit: "c1".to_string(),
        rejudge_at: Some(at(30)),
        updated_at: at(3),
    };
    store.save_rules_state(&rules, at(3)).unwrap();
    assert_eq!(
        store.rules_state("main").unwrap().unwrap().rules_commit,
        "r1"
    );
    let telemetry = store.telemetry_rows().unwrap();
    let completed = telemetry
        .events
        .iter()
        .find(|count| count.event_type == "ring_completed")
        .expect("ring_completed counted");
    assert_eq!(completed.count, 3);
    assert_eq!(completed.class, "pass");
    assert_eq!(completed.application_id, "vpn-client");
    assert_eq!(telemetry.compliance.len(), 3);
    assert_eq!(telemetry.compliance[0].hours, 2.5);
    assert_eq!(telemetry.event_log_length, 3);
    store.rollout_rows().unwrap();
    assert_eq!(store.recent_events("ring_completed", 2).unwrap().len(), 2);
}

pub fn leadership_is_leased_and_a_new_leader_gets_a_new_epoch(fixture: &Fixture) {
    let mut a = fixture.open();
    let mut b = fixture.open();
    let lease = chrono::Duration::seconds(15);
    assert_eq!(a.leadership().unwrap(), None);
    let led = a.try_lead("replica-a", lease, at(0)).unwrap();
    assert!(matches!(led, LeadershipOutcome::Acquired(_)), "{led:?}");
    assert_eq!(led.leadership().epoch, 1);
    assert_eq!(a.epoch(), Some(1));
    // B waits while the lease runs; A renews.
    let standby = b.try_lead("replica-b", lease, at(0)).unwrap();
    assert!(!standby.is_leader());
    assert_eq!(standby.leadership().holder, "replica-a");
    assert_eq!(b.epoch(), None);
    let renewed = a
        .try_lead("replica-a", lease, at(0) + chrono::Duration::seconds(10))
        .unwrap();
    assert!(
        matches!(renewed, LeadershipOutcome::Renewed(_)),
        "{renewed:?}"
    );
    assert!(
        !b.try_lead("replica-b", lease, at(0) + chrono::Duration::seconds(20))
            .unwrap()
            .is_leader()
    );
    // A stops renewing: after the lease, B leads under epoch 2.
    let taken = b.try_lead("replica-b", lease, at(1)).unwrap();
    assert!(matches!(taken, LeadershipOutcome::Acquired(_)), "{taken:?}");
    assert_eq!(b.epoch(), Some(2));
    let seen = a.try_lead("replica-a", lease, at(1)).unwrap();
    assert!(!seen.is_leader());
    assert_eq!(seen.leadership().epoch, 2);
    // A clean resignation hands over at once.
    b.resign(at(1)).unwrap();
    let back = a.try_lead("replica-a", lease, at(1)).unwrap();
    assert_eq!(back.leadership().epoch, 3);
    // The epoch never goes back, even for a raw writer.
    assert!(fixture.raw("UPDATE leadership SET epoch = 1").is_err());
    assert!(fixture.raw("DELETE FROM leadership").is_err());
}

pub fn a_deposed_leader_is_fenced_on_every_write(fixture: &Fixture) {
    let mut a = fixture.open();
    let lease = chrono::Duration::seconds(15);
    a.upsert_intent(&vpn_intent("vpn-2.1"), at(0)).unwrap();
    a.try_lead("replica-a", lease, at(0)).unwrap();
    a.append_event(event("vpn-2.1", 0)).unwrap();
    let key = a
        .plan_action(&action("vpn-2.1", "ring-1"), at(0))
        .unwrap()
        .key;
    // A pauses past its lease; B takes over.
    let mut b = fixture.open();
    assert!(b.try_lead("replica-b", lease, at(1)).unwrap().is_leader());
    // Everything A tries is refused by the database.
    let attempts: Vec<(&str, StoreError)> = vec![
        (
            "append_event",
            a.append_event(event("vpn-2.1", 1)).unwrap_err(),
        ),
        (
            "plan_action",
            a.plan_action(&action("vpn-2.1", "ring-2"), at(1))
                .unwrap_err(),
        ),
        ("mark_sent", a.mark_sent(&key, at(1)).unwrap_err()),
        (
            "set_evidence_head",
            a.set_evidence_head(1, "p", "c", at(1)).unwrap_err(),
        ),
        (
            "claim_ring",
            a.claim_ring(
                "vpn-2.1",
                "vpn-client",
                "corp",
                "bu-finance",
                "ring-1",
                at(1),
            )
            .unwrap_err(),
        ),
        (
            "upsert_intent",
            a.upsert_intent(&vpn_intent("vpn-2.2"), at(1)).unwrap_err(),
        ),
        (
            "record_commit",
            a.record_commit("main", "c9", CommitOutcome::Ok, &json!([]), at(1))
                .unwrap_err(),
        ),
        (
            "release_ring",
            a.release_ring("vpn-2.1", "ring-1", at(1)).unwrap_err(),
        ),
    ];
    for (what, error) in &attempts {
        assert!(is_fenced(error), "{what}: {error}");
        assert!(error.to_string().contains("epoch 2"), "{what}: {error}");
    }
    // None of it landed; B writes.
    assert_eq!(b.events(&EventFilter::default()).unwrap().len(), 1);
    assert_eq!(b.actions().unwrap().len(), 1);
    assert_eq!(
        b.get_action(&key).unwrap().unwrap().state,
        ActionState::Planned
    );
    assert_eq!(b.evidence_head().unwrap(), None);
    assert!(b.get_intent("vpn-2.2").unwrap().is_none());
    b.append_event(event("vpn-2.1", 2)).unwrap();
    b.mark_sent(&key, at(2)).unwrap();
    // Reading stays possible for the fenced store.
    assert_eq!(a.events(&EventFilter::default()).unwrap().len(), 2);
}

pub fn a_writer_racing_an_epoch_bump_never_lands_after_it(fixture: &Fixture) {
    let lease = chrono::Duration::seconds(15);
    let mut a = fixture.open();
    a.try_lead("replica-a", lease, at(0)).unwrap();
    let (started_sender, started) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let mut written = Vec::new();
        let mut minute = 0;
        loop {
            match a.append_event(event("from-a", minute)) {
                Ok(stored) => written.push(stored.seq),
                Err(error) => {
                    assert!(is_fenced(&error), "{error}");
                    return written;
                }
            }
            if minute == 0 {
                started_sender.send(()).unwrap();
            }
            minute += 1;
            // SQLite queues no writers: one that never pauses can keep B's
            // open and `try_lead` retrying past their busy timeout on a
            // loaded machine ("database is locked"), which is not what this
            // test is about. A millisecond between writes still puts
            // hundreds of A's writes around B's epoch bump.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
    started.recv().unwrap();
    let mut b = fixture.open();
    assert!(b.try_lead("replica-b", lease, at(1)).unwrap().is_leader());
    let first_of_b = b.append_event(event("from-b", 0)).unwrap().seq;
    let written_by_a = writer.join().unwrap();
    assert!(!written_by_a.is_empty());
    assert!(
        written_by_a.iter().all(|seq| *seq < first_of_b),
        "A wrote {written_by_a:?}, B's first event is {first_of_b}"
    );
    assert!(b.verify_event_chain().unwrap().is_intact());
}

pub fn a_raw_session_under_a_stale_epoch_is_refused_by_the_database(fixture: &Fixture) {
    let lease = chrono::Duration::seconds(15);
    let mut a = fixture.open();
    a.upsert_intent(&vpn_intent("vpn-2.1"), at(0)).unwrap();
    a.try_lead("replica-a", lease, at(0)).unwrap();
    let mut b = fixture.open();
    b.try_lead("replica-b", lease, at(1)).unwrap();
    match fixture.backend {
        // PostgreSQL: the triggers fence a session that declared an old
        // epoch, even writing around ringmaster's transactions.
        Backend::Postgres => {
            let error = fixture
                .raw(
                    "SET ringmaster.epoch = '1';
                     UPDATE intents SET state = 'hijacked' WHERE intent_id = 'vpn-2.1';",
                )
                .unwrap_err();
            assert!(error.contains("ringmaster fenced"), "{error}");
            fixture
                .raw(
                    "SET ringmaster.epoch = '2';
                     UPDATE intents SET state = 'current' WHERE intent_id = 'vpn-2.1';",
                )
                .unwrap();
            assert_eq!(b.get_intent("vpn-2.1").unwrap().unwrap().state, "current");
        }
        // SQLite: a store told to write under the old epoch is refused.
        Backend::Sqlite => {
            let mut stale = fixture.open();
            stale.write_under_epoch(Some(1)).unwrap();
            let error = stale
                .set_intent_state("vpn-2.1", "hijacked", &json!({}), at(2))
                .unwrap_err();
            assert!(is_fenced(&error), "{error}");
            assert_eq!(b.get_intent("vpn-2.1").unwrap().unwrap().state, "pending");
        }
    }
}

/// A write batch (issue 17: one commit for many writes): nothing of it is
/// visible to another connection before a flush, everything after; a
/// failed write inside it (a busy ring, a missing intent: an aborted
/// statement on PostgreSQL) undoes only itself; a crash (the store dropped
/// with the batch open) or a rollback leaves exactly the last commit, with
/// the event chain intact; and a batch commits by itself once full.
pub fn a_write_batch_commits_at_flushes_and_a_crash_keeps_its_last_commit(fixture: &Fixture) {
    let events = "SELECT COUNT(*) FROM events";
    let claims = "SELECT COUNT(*) FROM active_changes";
    let mut store = fixture.open();
    for intent in ["vpn-2.1", "vpn-2.2"] {
        store.upsert_intent(&vpn_intent(intent), at(0)).unwrap();
    }
    store.begin_batch().unwrap();
    assert!(store.in_batch());
    store.append_event(event("vpn-2.1", 1)).unwrap();
    store
        .claim_ring(
            "vpn-2.1",
            "vpn-client",
            "corp",
            "bu-finance",
            "ring-1",
            at(1),
        )
        .unwrap();
    let busy = store
        .claim_ring(
            "vpn-2.2",
            "vpn-client",
            "corp",
            "bu-finance",
            "ring-1",
            at(1),
        )
        .unwrap_err();
    assert!(matches!(busy, StoreError::RingBusy { .. }), "{busy}");
    let ghost = store
        .claim_ring("ghost", "vpn-client", "corp", "bu-x", "ring-1", at(1))
        .unwrap_err();
    assert!(
        matches!(ghost, StoreError::IntentNotFound { .. }),
        "{ghost}"
    );
    store.append_event(event("vpn-2.1", 2)).unwrap();
    let planned = store
        .plan_action(&action("vpn-2.1", "ring-1"), at(2))
        .unwrap();
    store.mark_sent(&planned.key, at(2)).unwrap();
    // Reads inside the batch see its writes; other connections do not.
    assert_eq!(store.events(&EventFilter::default()).unwrap().len(), 2);
    assert_eq!(fixture.count(events), 0);
    assert_eq!(fixture.count(claims), 0);
    store.flush_batch().unwrap();
    assert!(store.in_batch(), "a flush goes on batching");
    assert_eq!(fixture.count(events), 2);
    assert_eq!(fixture.count(claims), 1);
    assert_eq!(
        store.get_action(&planned.key).unwrap().unwrap().state,
        ActionState::Sent
    );

    // A crash: the writes after the last flush are gone, nothing else.
    store.append_event(event("vpn-2.1", 3)).unwrap();
    store
        .claim_ring(
            "vpn-2.2",
            "vpn-client",
            "corp",
            "bu-finance",
            "ring-2",
            at(3),
        )
        .unwrap();
    store
        .mark_confirmed(&planned.key, Some("app-1"), at(3))
        .unwrap();
    drop(store);
    let mut store = fixture.open();
    assert!(!store.in_batch());
    assert_eq!(fixture.count(events), 2);
    assert_eq!(fixture.count(claims), 1);
    assert_eq!(
        store.get_action(&planned.key).unwrap().unwrap().state,
        ActionState::Sent
    );
    let third = store.append_event(event("vpn-2.1", 3)).unwrap();
    assert_eq!(third.seq, 3, "the chain goes on from the last commit");

    // A rollback is the same; a commit keeps everything.
    store.begin_batch().unwrap();
    store.append_event(event("vpn-2.1", 4)).unwrap();
    store.end_batch(false).unwrap();
    assert_eq!(fixture.count(events), 3);
    store.begin_batch().unwrap();
    store.append_event(event("vpn-2.1", 4)).unwrap();
    store.end_batch(true).unwrap();
    assert!(!store.in_batch());
    assert_eq!(fixture.count(events), 4);

    // Bounded: a batch commits by itself once full (or open long).
    store.begin_batch().unwrap();
    for _ in 0..ringmaster::store::BATCH_MAX_WRITES {
        store.append_event(event("vpn-2.2", 5)).unwrap();
    }
    let committed = fixture.count(events);
    assert!(
        committed > 4 && committed <= 4 + ringmaster::store::BATCH_MAX_WRITES as i64,
        "{committed}"
    );
    store.end_batch(true).unwrap();
    assert_eq!(
        fixture.count(events),
        4 + ringmaster::store::BATCH_MAX_WRITES as i64
    );

    // Between a flush and the next write nothing holds the writer lock:
    // another connection writes meanwhile (a webhook delivery stored while
    // the daemon waits on a plane, a standby replica).
    store.begin_batch().unwrap();
    store.append_event(event("vpn-2.1", 6)).unwrap();
    store.flush_batch().unwrap();
    let mut other = fixture.open();
    other.append_event(event("vpn-2.2", 6)).unwrap();
    drop(other);
    store.append_event(event("vpn-2.1", 7)).unwrap();
    store.end_batch(true).unwrap();
    let report = store.verify_event_chain().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        report.events_checked,
        7 + ringmaster::store::BATCH_MAX_WRITES as u64
    );
}
