//! Store figures on both backends: events appended per second (each append
//! one write transaction: writer lock, fencing check, chain link) and the
//! time to verify the chain. Prints one line per backend.
//!
//!   cargo bench --bench store            # 2,000 events
//!   STORE_BENCH_EVENTS=10000 cargo bench --bench store

#[path = "../tests/support/postgres.rs"]
mod postgres;

use chrono::{TimeZone, Utc};
use ringmaster::store::{EventOutcome, EventType, NewEvent, Store, StoreLocation};
use std::time::Instant;

fn event(minute: i64) -> NewEvent {
    NewEvent {
        correlation_id: "bench".to_string(),
        intent_id: Some("vpn-2.1".to_string()),
        event_type: EventType::RingCompleted,
        timestamp: Utc.with_ymd_and_hms(2026, 1, 4, 10, 0, 0).unwrap()
            + chrono::Duration::minutes(minute),
        actor: "ringmaster".to_string(),
        actor_role: "control-plane".to_string(),
        execution_plane: Some("jamf".to_string()),
        ring: Some("ring-1".to_string()),
        outcome: EventOutcome::Success,
        details: serde_json::json!({"gate": {"verdict": "pass"}, "minute": minute}),
    }
}

fn measure(name: &str, location: &StoreLocation, count: i64, leader: bool) {
    let mut store = Store::open_location(location).expect("open");
    if leader {
        store
            .try_lead("bench", chrono::Duration::seconds(60), Utc::now())
            .expect("lead");
    }
    let started = Instant::now();
    for minute in 0..count {
        store.append_event(event(minute)).expect("append");
    }
    let elapsed = started.elapsed();
    let verify = Instant::now();
    let report = store.verify_event_chain().expect("verify");
    assert!(report.is_intact());
    println!(
        "{name:<26} {count} appends in {:.2} s = {:.0} events/s; verify_event_chain {:.0} ms",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        verify.elapsed().as_secs_f64() * 1000.0
    );
}

fn main() {
    let count: i64 = std::env::var("STORE_BENCH_EVENTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(2_000);
    let directory = tempfile::tempdir().expect("temp dir");
    for leader in [false, true] {
        let suffix = if leader { " (fenced)" } else { "" };
        let sqlite = StoreLocation::Sqlite(directory.path().join(format!("bench-{leader}.db")));
        measure(
            &format!("sqlite (WAL, FULL){suffix}"),
            &sqlite,
            count,
            leader,
        );
        let url = postgres::fresh_database();
        measure(
            &format!("postgresql (fsync off){suffix}"),
            &StoreLocation::Postgres(url),
            count,
            leader,
        );
    }
}
