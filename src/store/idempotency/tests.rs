//! Unit tests of the idempotency journal: every edge of the state machine.

use super::super::IntentUpsert;
use super::*;
use chrono::TimeZone;
use serde_json::json;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 4, 10, minute, 0).unwrap()
}

fn store_with_intent() -> Store {
    let mut store = Store::open_in_memory().unwrap();
    let intent = IntentUpsert {
        intent_id: "vpn-2.1".to_string(),
        application_id: "vpn-client".to_string(),
        acquisition_boundary: "corp".to_string(),
        business_unit: "bu-finance".to_string(),
        version: "2.1.0".to_string(),
        content_sha256: "00".repeat(32),
        state: "cab_approved".to_string(),
        state_json: json!({}),
        decision: Some("ALLOW".to_string()),
        risk_score: Some(20),
    };
    store.upsert_intent(&intent, at(0)).unwrap();
    store
}

fn publish() -> NewAction {
    NewAction {
        intent_id: "vpn-2.1".to_string(),
        plane: "intune".to_string(),
        ring: "ring-1".to_string(),
        action: "publish".to_string(),
        request: json!({"app": "vpn-client", "version": "2.1.0", "groups": ["g1"]}),
    }
}

#[test]
fn every_edge_of_the_state_machine_is_allowed_or_refused_as_documented() {
    use ActionState::{Confirmed, Failed, Planned, Sent};
    let all = [Planned, Sent, Confirmed, Failed];
    let allowed = [
        (Planned, Sent),
        (Sent, Confirmed),
        (Sent, Failed),
        (Failed, Sent),
    ];
    for from in all {
        for to in all {
            assert_eq!(
                from.can_transition_to(to),
                allowed.contains(&(from, to)),
                "{from} -> {to}"
            );
        }
    }
}

#[test]
fn key_is_correlation_plane_ring_action() {
    let key = action_key("vpn-2.1", "intune", "ring-1", "publish");
    assert_eq!(
        key,
        format!("{}:intune:ring-1:publish", correlation_id_for("vpn-2.1"))
    );
}

#[test]
fn plan_send_fail_resend_confirm() {
    let mut store = store_with_intent();
    let planned = store.plan_action(&publish(), at(1)).unwrap();
    assert_eq!(planned.state, ActionState::Planned);
    assert_eq!(planned.attempts, 0);
    let key = planned.key.clone();

    let sent = store.mark_sent(&key, at(2)).unwrap();
    assert_eq!((sent.state, sent.attempts), (ActionState::Sent, 1));

    let failed = store
        .mark_failed(&key, "HTTP 503 from Graph", Some(at(10)), at(3))
        .unwrap();
    assert_eq!(failed.state, ActionState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("HTTP 503 from Graph"));
    assert_eq!(failed.next_attempt_at, Some(at(10)));
    assert!(store.actions_due_for_retry(at(9)).unwrap().is_empty());
    assert_eq!(store.actions_due_for_retry(at(10)).unwrap().len(), 1);

    let resent = store.mark_sent(&key, at(10)).unwrap();
    assert_eq!((resent.state, resent.attempts), (ActionState::Sent, 2));
    assert_eq!(resent.next_attempt_at, None);

    let confirmed = store
        .mark_confirmed(&key, Some("intune-app-42"), at(11))
        .unwrap();
    assert_eq!(confirmed.state, ActionState::Confirmed);
    assert_eq!(confirmed.external_id.as_deref(), Some("intune-app-42"));
    assert_eq!(confirmed.planned_at, at(1));
    assert_eq!(confirmed.updated_at, at(11));
    assert_eq!(store.get_action(&key).unwrap(), Some(confirmed));
}

#[test]
fn illegal_transitions_are_errors_and_change_nothing() {
    let mut store = store_with_intent();
    let key = store.plan_action(&publish(), at(1)).unwrap().key;
    let illegal =
        |result: Result<Action, StoreError>, from: ActionState, to: ActionState| match result
            .unwrap_err()
        {
            StoreError::IllegalActionTransition {
                from: found_from,
                to: found_to,
                ..
            } => {
                assert_eq!((found_from, found_to), (from, to));
            }
            other => panic!("expected IllegalActionTransition, got {other}"),
        };
    illegal(
        store.mark_confirmed(&key, Some("x"), at(2)),
        ActionState::Planned,
        ActionState::Confirmed,
    );
    illegal(
        store.mark_failed(&key, "e", None, at(2)),
        ActionState::Planned,
        ActionState::Failed,
    );
    store.mark_sent(&key, at(2)).unwrap();
    illegal(
        store.mark_sent(&key, at(3)),
        ActionState::Sent,
        ActionState::Sent,
    );
    store.mark_confirmed(&key, None, at(3)).unwrap();
    illegal(
        store.mark_sent(&key, at(4)),
        ActionState::Confirmed,
        ActionState::Sent,
    );
    illegal(
        store.mark_failed(&key, "late", None, at(4)),
        ActionState::Confirmed,
        ActionState::Failed,
    );
    illegal(
        store.mark_confirmed(&key, Some("y"), at(4)),
        ActionState::Confirmed,
        ActionState::Confirmed,
    );
    let unchanged = store.get_action(&key).unwrap().unwrap();
    assert_eq!(
        (unchanged.state, unchanged.attempts, unchanged.updated_at),
        (ActionState::Confirmed, 1, at(3))
    );
}

#[test]
fn plan_action_is_idempotent_for_the_same_request() {
    let mut store = store_with_intent();
    let planned = store.plan_action(&publish(), at(1)).unwrap();
    store.mark_sent(&planned.key, at(2)).unwrap();
    let again = store.plan_action(&publish(), at(3)).unwrap();
    assert_eq!(again.state, ActionState::Sent);
    assert_eq!(again.planned_at, at(1));
    let mut reordered = publish();
    reordered.request = json!({"groups": ["g1"], "version": "2.1.0", "app": "vpn-client"});
    assert_eq!(
        store.plan_action(&reordered, at(4)).unwrap().key,
        planned.key
    );
}

#[test]
fn plan_action_refuses_a_different_request_under_the_same_key() {
    let mut store = store_with_intent();
    store.plan_action(&publish(), at(1)).unwrap();
    let mut changed = publish();
    changed.request = json!({"app": "vpn-client", "version": "2.2.0", "groups": ["g1"]});
    let error = store.plan_action(&changed, at(2)).unwrap_err();
    assert!(
        matches!(error, StoreError::ActionRequestMismatch { .. }),
        "{error}"
    );
}

#[test]
fn unknown_key_and_unknown_intent_are_errors() {
    let mut store = store_with_intent();
    let error = store.mark_sent("nope", at(1)).unwrap_err();
    assert!(
        matches!(error, StoreError::ActionNotFound { .. }),
        "{error}"
    );
    let mut orphan = publish();
    orphan.intent_id = "ghost".to_string();
    let error = store.plan_action(&orphan, at(1)).unwrap_err();
    assert!(
        matches!(error, StoreError::IntentNotFound { .. }),
        "{error}"
    );
}

#[test]
fn pending_actions_are_planned_or_sent_in_planning_order() {
    let mut store = store_with_intent();
    let first = store.plan_action(&publish(), at(1)).unwrap();
    let mut assign = publish();
    assign.action = "assign".to_string();
    let second = store.plan_action(&assign, at(2)).unwrap();
    let mut rollback = publish();
    rollback.action = "rollback".to_string();
    let third = store.plan_action(&rollback, at(3)).unwrap();
    store.mark_sent(&first.key, at(4)).unwrap();
    store.mark_sent(&third.key, at(4)).unwrap();
    store.mark_confirmed(&third.key, None, at(5)).unwrap();
    let pending: Vec<String> = store
        .pending_actions()
        .unwrap()
        .into_iter()
        .map(|action| action.key)
        .collect();
    assert_eq!(pending, vec![first.key, second.key]);
}
