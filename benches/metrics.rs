//! `/metrics` at scale (a plain `harness = false` binary that prints
//! figures): a real SQLite state store holding N intents (default 10,000),
//! each a completed five-ring rollout (the demo's stored state as a
//! template), with ten events each (ring starts and completions with their
//! gates) plus drift, remediation and rollback events; then the real HTTP
//! server's `GET /metrics`, timed over R rounds, and the response size.
//!
//! `cargo bench --bench metrics`; environment: `RINGMASTER_BENCH_INTENTS`
//! (default 10000), `RINGMASTER_BENCH_APPLICATIONS` (default 500),
//! `RINGMASTER_BENCH_BUSINESS_UNITS` (default 6), `RINGMASTER_BENCH_ROUNDS`
//! (default 20).

use ringmaster::api::{self, ApiServer};
use ringmaster::metrics::approvals::ApprovalSource;
use ringmaster::store::Store;
use rusqlite::{Connection, params};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn environment_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

const RINGS: [&str; 5] = [
    "ring-0-lab",
    "ring-1-canary",
    "ring-2-pilot",
    "ring-3-department",
    "ring-4-global",
];
const PLANES: [&str; 5] = ["intune", "jamf", "sccm", "landscape", "ansible"];

/// Fills the store in one transaction (hashes are placeholders that keep
/// the chain's shape; the metrics never verify the chain).
fn fill(path: &std::path::Path, intents: usize, applications: usize, units: usize) -> usize {
    let template: serde_json::Value =
        serde_json::from_str(include_str!("data/completed_intent_state.json")).expect("template");
    let mut connection = Connection::open(path).expect("open");
    let transaction = connection.transaction().expect("transaction");
    let mut seq: i64 = 0;
    {
        let mut intent = transaction
            .prepare(
                "INSERT INTO intents (intent_id, correlation_id, application_id,
                   acquisition_boundary, business_unit, version, content_sha256, state,
                   state_json, decision, risk_score, updated_at)
                 VALUES (?1, ?2, ?3, 'corp', ?4, ?5, 'sha', 'completed', ?6, 'ALLOW', 40, ?7)",
            )
            .expect("prepare");
        let mut event = transaction
            .prepare(
                "INSERT INTO events (seq, event_id, correlation_id, intent_id, event_type,
                   timestamp, actor, actor_role, execution_plane, ring, outcome, details,
                   prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'ringmaster', 'control-plane', ?7, ?8, ?9,
                   ?10, ?11, ?12)",
            )
            .expect("prepare");
        let mut append = |intent_id: &str,
                          kind: &str,
                          plane: &str,
                          ring: Option<&str>,
                          outcome: &str,
                          details: serde_json::Value| {
            seq += 1;
            let previous = if seq == 1 {
                ringmaster::store::GENESIS_PREV_HASH.to_owned()
            } else {
                format!("{:064x}", seq - 1)
            };
            event
                .execute(params![
                    seq,
                    format!("event-{seq}"),
                    format!("correlation-{intent_id}"),
                    intent_id,
                    kind,
                    format!("2026-11-{:02}T10:00:00.000000Z", 1 + seq % 28),
                    plane,
                    ring,
                    outcome,
                    details.to_string(),
                    previous,
                    format!("{seq:064x}"),
                ])
                .expect("event");
        };
        for index in 0..intents {
            let application = format!("app-{:04}", index % applications);
            let unit = format!("bu-{}", (index / applications) % units);
            let intent_id = format!("{application}-{index}");
            let plane = PLANES[index % PLANES.len()];
            let mut state = template.clone();
            state["run"]["intent_id"] = intent_id.clone().into();
            state["run"]["application_id"] = application.clone().into();
            intent
                .execute(params![
                    intent_id,
                    format!("correlation-{intent_id}"),
                    application,
                    unit,
                    format!("1.{index}"),
                    state.to_string(),
                    format!("2026-11-{:02}T10:00:00.000000Z", 1 + index % 28),
                ])
                .expect("intent");
            for ring in RINGS {
                append(
                    &intent_id,
                    "ring_started",
                    plane,
                    Some(ring),
                    "success",
                    serde_json::json!({"kind": "ring_started"}),
                );
                append(
                    &intent_id,
                    "ring_completed",
                    plane,
                    Some(ring),
                    "success",
                    serde_json::json!({
                        "kind": "ring_completed",
                        "gate": {"verdict": "pass", "success_rate": 0.99, "reporting_devices": 100,
                                 "time_to_compliance_hours": 0.5 + (index % 40) as f64, "soak_complete": true, "reasons": []}
                    }),
                );
            }
            if index % 20 == 0 {
                append(
                    &intent_id,
                    "drift_detected",
                    plane,
                    None,
                    "failure",
                    serde_json::json!({"drift_type": "version_mismatch"}),
                );
                append(
                    &intent_id,
                    "remediation_result",
                    plane,
                    None,
                    "success",
                    serde_json::json!({"remediation_result": "success"}),
                );
            }
            if index % 50 == 0 {
                append(
                    &intent_id,
                    "rollback_executed",
                    plane,
                    None,
                    "success",
                    serde_json::json!({"kind": "rolled_back"}),
                );
            }
        }
    }
    transaction.commit().expect("commit");
    seq as usize
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let intents = environment_number("RINGMASTER_BENCH_INTENTS", 10_000);
    let applications = environment_number("RINGMASTER_BENCH_APPLICATIONS", 500);
    let units = environment_number("RINGMASTER_BENCH_BUSINESS_UNITS", 6);
    let rounds = environment_number("RINGMASTER_BENCH_ROUNDS", 20);
    let dir = tempfile::tempdir().expect("temp dir");
    // RINGMASTER_BENCH_DB keeps the filled store there (for sqlite3 .timer).
    let database = std::env::var_os("RINGMASTER_BENCH_DB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("ringmaster.db"));
    drop(Store::open(&database).expect("store"));
    let started = Instant::now();
    let events = fill(&database, intents, applications, units);
    println!(
        "store: {intents} intents, {applications} applications, {units} business units, {events} events (filled in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    // Where a scrape's time goes (one collection, outside the server).
    {
        let store = Store::open(&database).expect("store");
        let started = Instant::now();
        let rows = store.telemetry_rows().expect("telemetry rows");
        let telemetry = started.elapsed();
        let started = Instant::now();
        let rollouts = store.rollout_rows().expect("rollout rows");
        let rollout = started.elapsed();
        let observation = ringmaster::metrics::Observation {
            now: chrono::Utc::now(),
            rollouts,
            rows,
            evidence_head: None,
            approvals: Vec::new(),
            previous_collect_seconds: 0.0,
        };
        let started = Instant::now();
        let text = ringmaster::metrics::render(&observation);
        let render = started.elapsed();
        println!(
            "one collection: event-log aggregates {:.1} ms, rollouts {:.1} ms, render {:.1} ms ({} bytes)",
            telemetry.as_secs_f64() * 1000.0,
            rollout.as_secs_f64() * 1000.0,
            render.as_secs_f64() * 1000.0,
            text.len()
        );
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let state = api::metrics::MetricsState::new(
            Store::open(&database).expect("store"),
            ApprovalSource::new(dir.path().join("no-repo"), "main".into()),
            Arc::new(chrono::Utc::now),
        );
        let server = ApiServer::start("127.0.0.1:0", api::metrics::routes(Arc::new(state)))
            .await
            .expect("server");
        let url = format!("http://{}/metrics", server.local_addr);
        let client = reqwest::Client::new();
        let mut times = Vec::new();
        let mut size = 0;
        let mut series = 0;
        for _ in 0..rounds {
            let started = Instant::now();
            let body = client.get(&url).send().await.expect("GET").text().await.expect("body");
            times.push(started.elapsed());
            size = body.len();
            series = body.lines().filter(|line| !line.starts_with('#')).count();
        }
        times.sort();
        println!(
            "GET /metrics over {rounds} rounds: {size} bytes, {series} series; p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            percentile(&times, 0.5).as_secs_f64() * 1000.0,
            percentile(&times, 0.95).as_secs_f64() * 1000.0,
            times.last().expect("a round").as_secs_f64() * 1000.0,
        );
        server.shutdown().await.expect("shutdown");
    });
}
