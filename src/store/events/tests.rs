//! Unit tests of the event log on an in-memory store. Tampering through a second
//! connection needs a file and lives in `tests/store.rs`.

use super::*;
use chrono::TimeZone;
use serde_json::json;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 4, 10, minute, 0).unwrap()
}

fn ring_started(intent_id: &str, minute: u32) -> NewEvent {
    NewEvent {
        correlation_id: super::super::correlation_id_for(intent_id),
        intent_id: Some(intent_id.to_string()),
        event_type: EventType::RingStarted,
        timestamp: at(minute),
        actor: "ringmaster".to_string(),
        actor_role: "control-plane".to_string(),
        execution_plane: Some("intune".to_string()),
        ring: Some("ring-1-canary".to_string()),
        outcome: EventOutcome::Pending,
        details: json!({"target_devices": 250, "artifact": {"sha256": "ab", "name": "vpn.msi"}}),
    }
}

#[test]
fn events_are_numbered_from_one_and_linked_to_their_predecessor() {
    let mut store = Store::open_in_memory().unwrap();
    let first = store.append_event(ring_started("vpn-2.1", 1)).unwrap();
    let second = store.append_event(ring_started("vpn-2.1", 2)).unwrap();
    assert_eq!((first.seq, second.seq), (1, 2));
    assert_eq!(first.prev_hash, GENESIS_PREV_HASH);
    assert_eq!(second.prev_hash, first.hash);
    assert_ne!(first.event_id, second.event_id);
    assert_eq!(first.hash.len(), 64);
}

#[test]
fn appended_event_reads_back_identically() {
    let mut store = Store::open_in_memory().unwrap();
    let appended = store.append_event(ring_started("vpn-2.1", 1)).unwrap();
    let read = store.events(&EventFilter::default()).unwrap();
    assert_eq!(read, vec![appended.clone()]);
    assert_eq!(store.last_event().unwrap(), Some(appended));
}

#[test]
fn hash_is_the_documented_canonical_serialisation() {
    let mut store = Store::open_in_memory().unwrap();
    let event = store.append_event(ring_started("vpn-2.1", 1)).unwrap();
    // Recompute from the printed JSON alone, as an auditor would.
    let printed = serde_json::to_value(&event).unwrap();
    let mut hashed = printed.as_object().unwrap().clone();
    hashed.remove("hash");
    let text = canonical_json(&Value::Object(hashed));
    assert!(
        text.starts_with(r#"{"actor":"ringmaster","actor_role":"control-plane","correlation_id":"#)
    );
    assert!(text.contains(r#""timestamp":"2026-01-04T10:01:00.000000Z""#));
    use sha2::{Digest, Sha256};
    assert_eq!(hex::encode(Sha256::digest(text.as_bytes())), event.hash);
}

#[test]
fn key_order_of_details_does_not_change_the_hash_input() {
    let mut store = Store::open_in_memory().unwrap();
    let mut event = ring_started("vpn-2.1", 1);
    event.details = serde_json::from_str(r#"{"b": 1, "a": 2}"#).unwrap();
    let stored = store.append_event(event).unwrap();
    let raw: String = store
        .connection
        .query_row(
            "SELECT details FROM events WHERE seq = 1",
            super::super::db::params![],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(raw, r#"{"a":2,"b":1}"#);
    assert!(store.verify_event_chain().unwrap().is_intact());
    assert_eq!(stored.details, json!({"a": 2, "b": 1}));
}

#[test]
fn filter_narrows_by_intent_correlation_since_and_limit() {
    let mut store = Store::open_in_memory().unwrap();
    for minute in 0..3 {
        store.append_event(ring_started("vpn-2.1", minute)).unwrap();
        store
            .append_event(ring_started("zoom-5.0", minute))
            .unwrap();
    }
    let seqs = |filter: EventFilter| -> Vec<u64> {
        store
            .events(&filter)
            .unwrap()
            .iter()
            .map(|event| event.seq)
            .collect()
    };
    assert_eq!(seqs(EventFilter::default()), vec![1, 2, 3, 4, 5, 6]);
    let vpn = EventFilter {
        intent_id: Some("vpn-2.1".to_string()),
        ..Default::default()
    };
    assert_eq!(seqs(vpn.clone()), vec![1, 3, 5]);
    let zoom_correlation = super::super::correlation_id_for("zoom-5.0");
    let zoom = EventFilter {
        correlation_id: Some(zoom_correlation),
        ..Default::default()
    };
    assert_eq!(seqs(zoom), vec![2, 4, 6]);
    assert_eq!(
        seqs(EventFilter {
            since_seq: Some(4),
            ..Default::default()
        }),
        vec![5, 6]
    );
    assert_eq!(
        seqs(EventFilter {
            limit: Some(2),
            ..vpn.clone()
        }),
        vec![1, 3]
    );
    assert_eq!(
        seqs(EventFilter {
            since_seq: Some(1),
            limit: Some(1),
            ..vpn
        }),
        vec![3]
    );
}

#[test]
fn empty_log_verifies_as_intact() {
    let store = Store::open_in_memory().unwrap();
    let report = store.verify_event_chain().unwrap();
    assert!(report.is_intact());
    assert_eq!(report.events_checked, 0);
    assert_eq!(report.last_verified_seq, None);
}

#[test]
fn insert_out_of_order_is_refused_by_the_trigger() {
    let mut store = Store::open_in_memory().unwrap();
    store.append_event(ring_started("vpn-2.1", 1)).unwrap();
    let skipped = store.connection.execute(
        "INSERT INTO events (seq, event_id, correlation_id, event_type, timestamp, actor,
             actor_role, outcome, details, prev_hash, hash)
         SELECT 5, 'x', correlation_id, event_type, timestamp, actor, actor_role, outcome,
             details, hash, hash FROM events WHERE seq = 1",
        super::super::db::params![],
    );
    let message = skipped.unwrap_err().to_string();
    assert!(
        message.contains("appended at the end of the chain"),
        "{message}"
    );
}

#[test]
fn event_type_and_outcome_text_round_trips() {
    for event_type in EventType::ALL {
        assert_eq!(
            EventType::from_stored(event_type.as_str()),
            Some(event_type)
        );
        assert_eq!(
            serde_json::to_value(event_type).unwrap(),
            json!(event_type.as_str())
        );
    }
    assert_eq!(EventType::from_stored("deployment_started"), None);
    assert_eq!(EventOutcome::from_stored("info"), Some(EventOutcome::Info));
    assert_eq!(EventOutcome::from_stored("maybe"), None);
}
