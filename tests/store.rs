//! The state store against real SQLite files in temporary directories: reopening,
//! refusing bad files, and a second raw connection trying to rewrite history.

use chrono::{DateTime, TimeZone, Utc};
use ringmaster::store::{
    ActionState, ChainBreakReason, CommitOutcome, EventFilter, EventOutcome, EventType,
    IntentUpsert, NewAction, NewEvent, SUPPORTED_SCHEMA_VERSION, Store, StoreError,
    correlation_id_for,
};
use rusqlite::Connection;
use serde_json::json;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 4, 10, 0, 0).unwrap() + chrono::Duration::minutes(minute.into())
}

fn database(directory: &TempDir) -> PathBuf {
    directory.path().join("ringmaster.db")
}

/// A second connection that bypasses the store, as an attacker or a careless
/// operator with the `sqlite3` shell would.
fn raw_connection(path: &Path) -> Connection {
    Connection::open(path).unwrap()
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
        risk_score: None,
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
        details: json!({"target_devices": 250, "successful_installs": 245, "minute": minute}),
    }
}

fn store_with_events(path: &Path, count: u32) -> Store {
    let mut store = Store::open(path).unwrap();
    for minute in 0..count {
        store.append_event(event("vpn-2.1", minute)).unwrap();
    }
    store
}

#[test]
fn migrations_apply_on_a_fresh_file_and_reopen_cleanly() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SUPPORTED_SCHEMA_VERSION);
    assert_eq!(store.path(), Some(path.as_path()));
    drop(store);

    let reopened = Store::open(&path).unwrap();
    assert_eq!(reopened.schema_version().unwrap(), SUPPORTED_SCHEMA_VERSION);
    let raw = raw_connection(&path);
    let applied: i64 = raw
        .query_row("SELECT count(*) FROM schema_migrations", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(applied, SUPPORTED_SCHEMA_VERSION);
    let journal_mode: String = raw.pragma_query_one(None, "journal_mode").unwrap();
    assert_eq!(journal_mode, "wal");
}

#[test]
fn database_from_a_newer_ringmaster_is_refused() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    drop(Store::open(&path).unwrap());
    let newer = SUPPORTED_SCHEMA_VERSION + 1;
    raw_connection(&path)
        .pragma_update(None, "user_version", newer)
        .unwrap();

    let error = Store::open(&path).unwrap_err();
    assert!(
        matches!(error, StoreError::NewerSchema { found, supported, .. }
            if found == newer && supported == SUPPORTED_SCHEMA_VERSION),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("upgrade ringmaster"), "{message}");
    // Refused before anything was written: the version is still the newer one.
    let version: i64 = raw_connection(&path)
        .pragma_query_one(None, "user_version")
        .unwrap();
    assert_eq!(version, newer);
}

#[test]
fn garbage_file_is_a_clear_corruption_error_naming_the_path() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    let garbage: Vec<u8> = (0..8192u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, garbage).unwrap();

    let error = Store::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("corrupt"), "{message}");
}

#[test]
fn damaged_page_is_caught_by_quick_check_at_open() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    drop(store_with_events(&path, 200));
    let mut bytes = std::fs::read(&path).unwrap();
    let page_size = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    assert!(bytes.len() > 8 * page_size, "expected a multi-page file");
    // Scribble over the middle of the file, leaving the header (page 1) intact.
    let start = bytes.len() / 2;
    for (offset, byte) in bytes[start..start + 2 * page_size].iter_mut().enumerate() {
        *byte = (offset * 37 % 251) as u8;
    }
    std::fs::write(&path, bytes).unwrap();

    let error = Store::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains(&path.display().to_string()));
}

#[test]
fn quick_check_runs_on_a_healthy_file() {
    let directory = TempDir::new().unwrap();
    let store = store_with_events(&database(&directory), 3);
    store.quick_check().unwrap();
}

#[test]
fn event_chain_is_contiguous_and_verifiable_across_reopen() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    drop(store_with_events(&path, 5));
    let mut store = Store::open(&path).unwrap();
    let sixth = store.append_event(event("vpn-2.1", 5)).unwrap();
    assert_eq!(sixth.seq, 6);

    let events = store.events(&EventFilter::default()).unwrap();
    let seqs: Vec<u64> = events.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    for pair in events.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    let report = store.verify_event_chain().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events_checked, 6);
    assert_eq!(report.last_verified_hash, Some(sixth.hash));
}

#[test]
fn two_stores_on_one_file_append_to_one_contiguous_chain() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    drop(Store::open(&path).unwrap());
    let writers: Vec<_> = ["vpn-2.1", "zoom-5.0"]
        .into_iter()
        .map(|intent_id| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&path).unwrap();
                for minute in 0..25 {
                    store.append_event(event(intent_id, minute)).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let report = Store::open(&path).unwrap().verify_event_chain().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events_checked, 50);
}

#[test]
fn events_refuse_update_and_delete() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    let store = store_with_events(&path, 3);
    let raw = raw_connection(&path);

    let update = raw.execute("UPDATE events SET actor = 'mallory' WHERE seq = 2", []);
    let message = update.unwrap_err().to_string();
    assert!(message.contains("events are append-only"), "{message}");
    let delete = raw.execute("DELETE FROM events WHERE seq = 3", []);
    let message = delete.unwrap_err().to_string();
    assert!(message.contains("events are append-only"), "{message}");
    let delete_all = raw.execute("DELETE FROM events", []);
    assert!(delete_all.is_err());

    assert_eq!(store.events(&EventFilter::default()).unwrap().len(), 3);
    assert!(store.verify_event_chain().unwrap().is_intact());
}

#[test]
fn tampered_event_is_detected_by_verify_event_chain() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    let store = store_with_events(&path, 4);
    let raw = raw_connection(&path);
    raw.execute_batch(
        "DROP TRIGGER events_refuse_update;
         UPDATE events SET details = '{\"minute\":1,\"successful_installs\":250,\"target_devices\":250}'
         WHERE seq = 2;",
    )
    .unwrap();

    let report = store.verify_event_chain().unwrap();
    assert!(!report.is_intact());
    assert!(!report.append_only_triggers_present);
    let first_break = report.first_break.expect("a break");
    assert_eq!(first_break.seq, 2);
    assert!(
        matches!(first_break.reason, ChainBreakReason::HashMismatch { .. }),
        "{first_break}"
    );
    assert_eq!(report.events_checked, 1);
    assert_eq!(report.last_verified_seq, Some(1));
}

#[test]
fn deleted_event_is_detected_by_verify_event_chain() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    let store = store_with_events(&path, 4);
    raw_connection(&path)
        .execute_batch("DROP TRIGGER events_refuse_delete; DELETE FROM events WHERE seq = 3;")
        .unwrap();

    let first_break = store
        .verify_event_chain()
        .unwrap()
        .first_break
        .expect("a break");
    assert_eq!(first_break.seq, 3);
    assert_eq!(
        first_break.reason,
        ChainBreakReason::SequenceGap {
            expected: 3,
            found: 4
        }
    );
}

#[test]
fn reordered_events_are_detected_by_verify_event_chain() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    let store = store_with_events(&path, 4);
    raw_connection(&path)
        .execute_batch(
            "DROP TRIGGER events_refuse_update;
             UPDATE events SET seq = -2 WHERE seq = 2;
             UPDATE events SET seq = 2 WHERE seq = 3;
             UPDATE events SET seq = 3 WHERE seq = -2;",
        )
        .unwrap();

    let first_break = store
        .verify_event_chain()
        .unwrap()
        .first_break
        .expect("a break");
    assert_eq!(first_break.seq, 2);
    assert!(
        matches!(
            first_break.reason,
            ChainBreakReason::PrevHashMismatch { .. }
        ),
        "{first_break}"
    );
}

#[test]
fn correlation_id_is_stable_across_reopen() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    let first = Store::open(&path)
        .unwrap()
        .upsert_intent(&vpn_intent("vpn-2.1"), at(1))
        .unwrap();
    let mut reopened = Store::open(&path).unwrap();
    let read = reopened.get_intent("vpn-2.1").unwrap().unwrap();
    assert_eq!(read.correlation_id, first.correlation_id);
    assert_eq!(read.correlation_id, correlation_id_for("vpn-2.1"));
    // A re-evaluation after the restart keeps it too.
    let updated = reopened
        .upsert_intent(&vpn_intent("vpn-2.1"), at(2))
        .unwrap();
    assert_eq!(updated.correlation_id, first.correlation_id);
}

#[test]
fn ring_claim_conflicts_and_idempotent_reclaim_hold_across_reopen() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    {
        let mut store = Store::open(&path).unwrap();
        store.upsert_intent(&vpn_intent("vpn-2.1"), at(0)).unwrap();
        store.upsert_intent(&vpn_intent("vpn-2.2"), at(0)).unwrap();
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
    }
    let mut store = Store::open(&path).unwrap();
    store
        .claim_ring(
            "vpn-2.1",
            "vpn-client",
            "corp",
            "bu-finance",
            "ring-1",
            at(2),
        )
        .unwrap();
    let error = store
        .claim_ring(
            "vpn-2.2",
            "vpn-client",
            "corp",
            "bu-finance",
            "ring-1",
            at(2),
        )
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::RingBusy { holder_intent_id, .. } if holder_intent_id == "vpn-2.1"),
        "{error}"
    );
    let active = store
        .active_changes_for("vpn-client", "corp", "bu-finance")
        .unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(
        (active[0].intent_id.as_str(), active[0].ring.as_str()),
        ("vpn-2.1", "ring-1")
    );
}

#[test]
fn pending_actions_survive_reopen() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    let (sent_key, planned_key) = {
        let mut store = Store::open(&path).unwrap();
        store.upsert_intent(&vpn_intent("vpn-2.1"), at(0)).unwrap();
        let action = |name: &str| NewAction {
            intent_id: "vpn-2.1".to_string(),
            plane: "intune".to_string(),
            ring: "ring-1".to_string(),
            action: name.to_string(),
            request: json!({"group": "g-ring-1"}),
        };
        let sent = store.plan_action(&action("publish"), at(1)).unwrap();
        store.mark_sent(&sent.key, at(2)).unwrap();
        let planned = store.plan_action(&action("assign"), at(3)).unwrap();
        let done = store.plan_action(&action("notify"), at(4)).unwrap();
        store.mark_sent(&done.key, at(5)).unwrap();
        store.mark_confirmed(&done.key, Some("n-1"), at(6)).unwrap();
        (sent.key, planned.key)
        // The store is dropped here without any shutdown step: a crash.
    };
    let mut store = Store::open(&path).unwrap();
    let pending = store.pending_actions().unwrap();
    let summary: Vec<(&str, ActionState, u32)> = pending
        .iter()
        .map(|action| (action.key.as_str(), action.state, action.attempts))
        .collect();
    assert_eq!(
        summary,
        vec![
            (sent_key.as_str(), ActionState::Sent, 1),
            (planned_key.as_str(), ActionState::Planned, 0)
        ]
    );
    store
        .mark_confirmed(&sent_key, Some("intune-app-7"), at(7))
        .unwrap();
    assert_eq!(store.pending_actions().unwrap().len(), 1);
}

#[test]
fn duplicate_webhook_delivery_is_detected_across_reopen() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    let payload = json!({"action": "submitted", "review": {"state": "approved"}});
    assert!(
        Store::open(&path)
            .unwrap()
            .record_delivery("delivery-1", "pull_request_review", &payload, at(1))
            .unwrap()
    );

    let mut store = Store::open(&path).unwrap();
    assert!(
        !store
            .record_delivery("delivery-1", "pull_request_review", &payload, at(2))
            .unwrap()
    );
    assert_eq!(store.unprocessed_deliveries().unwrap().len(), 1);
    store.mark_delivery_processed("delivery-1", at(3)).unwrap();
    drop(store);
    assert!(
        Store::open(&path)
            .unwrap()
            .unprocessed_deliveries()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn processed_commits_and_evidence_head_survive_reopen() {
    let directory = TempDir::new().unwrap();
    let path = database(&directory);
    {
        let mut store = Store::open(&path).unwrap();
        store
            .record_commit("main", "c0ffee", CommitOutcome::Ok, &json!([]), at(1))
            .unwrap();
        store
            .set_evidence_head(7, &"cd".repeat(32), "e71d3c", at(2))
            .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(
        store
            .last_processed_commit("main")
            .unwrap()
            .unwrap()
            .commit_sha,
        "c0ffee"
    );
    assert!(store.is_commit_processed("main", "c0ffee").unwrap());
    let head = store.evidence_head().unwrap().unwrap();
    assert_eq!(
        (head.sequence, head.evidence_commit_sha.as_str()),
        (7, "e71d3c")
    );
    let error = store.set_evidence_head(6, "x", "y", at(3)).unwrap_err();
    assert!(
        matches!(error, StoreError::EvidenceHeadRegression { .. }),
        "{error}"
    );
}

#[test]
fn events_print_as_json_with_the_hashed_timestamp_text() {
    let directory = TempDir::new().unwrap();
    let store = store_with_events(&database(&directory), 1);
    let printed = serde_json::to_value(store.last_event().unwrap().unwrap()).unwrap();
    assert_eq!(printed["timestamp"], json!("2026-01-04T10:00:00.000000Z"));
    assert_eq!(printed["event_type"], json!("ring_completed"));
    assert_eq!(printed["outcome"], json!("success"));
    assert_eq!(printed["seq"], json!(1));
}
