//! Fleet-scale run of the per-plane call budget (issue 17):
//! `cargo bench --bench fleet` (`FLEET_DEVICES`, `FLEET_ROLLOUTS`,
//! `FLEET_HOURS`, `FLEET_GATE_MINUTES` override the defaults).
//!
//! What it drives: the Jamf Pro connector — its real HTTP client, the
//! shared `PlaneBudget` (rate, 5 connections, priorities, back-off) and the
//! paged status query — against the Jamf HTTP simulator on 127.0.0.1, on
//! simulated time. Jamf's share of the fleet: 200,000 devices and
//! 2,000 rollouts across five planes is 40,000 devices and 400 rollouts per
//! plane. Every rollout publishes its ring (100 devices), most devices report,
//! and each rollout asks for a gate check every `FLEET_GATE_MINUTES`; a few
//! rollouts are halted mid-run (urgent priority). A call the budget refuses
//! is retried when its `retry_after` says, on the simulated clock, as the
//! orchestrator's backoff would.
//!
//! What it does not drive: the daemon's event loop, store and evidence (so
//! no events or evidence records per second here — `benches/evidence.rs`
//! measures the writer), and the four other planes (their connectors do not
//! go through the budget yet).
//!
//! Prints: requests per hour against the budget, the longest gate-check
//! delay (wanted time to answered time), the effective gate-check interval
//! the budget can serve, CPU time and peak RSS of the process.

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use ringmaster::model::Plane;
use ringmaster::planes::budget::{self, BudgetConfig, GateInterval, Priority};
use ringmaster::planes::jamf::simulator::{JamfSimulator, SimulatorOptions};
use ringmaster::planes::jamf::{JamfAuth, JamfConfig, JamfConnector};
use ringmaster::planes::{
    ArtifactRef, ErrorCode, ExecutionPlaneConnector, PublishRequest, Remediation, Secret,
};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// A gate check: when it is due, when it was wanted, which rollout.
type GateCheck = (DateTime<Utc>, DateTime<Utc>, u64);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 0).unwrap()
}

fn correlation(rollout: u64) -> String {
    format!("00000000-0000-5000-8000-{rollout:012}")
}

fn request(rollout: u64, group: u64, devices: u32) -> PublishRequest {
    PublishRequest {
        correlation_id: correlation(rollout),
        intent_id: format!("app-{rollout}-1.0"),
        application_id: format!("app-{rollout}"),
        application_name: format!("App {rollout}"),
        version: "1.0.0".into(),
        plane: Plane::Jamf,
        ring: "ring-1".into(),
        artifact: ArtifactRef {
            id: format!("app-{rollout}-pkg"),
            file: format!("App{rollout}-1.0.0.pkg"),
            sha256: format!("sha256:{}", "ab".repeat(32)),
            install: format!("installer -pkg App{rollout}-1.0.0.pkg -target /"),
            uninstall: format!("/Applications/App{rollout}.app/uninstall.sh"),
            detection_type: "bundle_id".into(),
            detection_value: format!("com.example.app{rollout}"),
        },
        groups: vec![group.to_string()],
        exclusions: vec![],
        expected_devices: devices,
        supersedes_version: None,
        sites: None,
    }
}

/// Peak resident set (VmHWM) in MiB, and CPU seconds (user + system).
fn process_figures() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| -> f64 {
        fields
            .get(index)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (1-based; 11 and 12 after ')').
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    (peak_kib / 1024.0, cpu)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let devices = env("FLEET_DEVICES", 40_000);
    let rollouts = env("FLEET_ROLLOUTS", 400).max(1);
    let hours = env("FLEET_HOURS", 2);
    let gate_minutes = env("FLEET_GATE_MINUTES", 15).max(1);
    let per_rollout = u32::try_from(devices / rollouts).unwrap_or(u32::MAX).max(1);
    let page_size = 100;

    let secret = "fleet-bench-secret".to_string();
    let mut options = SimulatorOptions::new("fleet-bench", Secret::new(secret.clone()));
    options.page_size = page_size;
    let simulator = JamfSimulator::new(options);
    for rollout in 0..rollouts {
        simulator.add_group(
            &(1_000 + rollout).to_string(),
            &format!("Fleet ring {rollout}"),
            per_rollout,
        );
    }
    let address = simulator.start().await.expect("simulator");
    let directory = tempfile::tempdir().expect("temp dir");
    let secret_file = directory.path().join("secret");
    std::fs::write(&secret_file, &secret).expect("secret");
    let mut config = JamfConfig::new(
        &format!("http://{address}"),
        JamfAuth::ClientCredentials {
            client_id: "fleet-bench".into(),
            client_secret_env: None,
            client_secret_file: Some(secret_file),
        },
    );
    config.page_size = page_size;
    let budget_config = BudgetConfig {
        max_queue_wait_seconds: Duration::ZERO,
        ..config.call_budget()
    };
    config.budget = Some(budget_config);
    let connector = JamfConnector::new(&config).expect("connector");
    let wall = std::time::Instant::now();

    // Publish every rollout's ring through the budget (publish priority).
    let mut now = start();
    let mut publish_requests = 0u64;
    for rollout in 0..rollouts {
        let publish = request(rollout, 1_000 + rollout, per_rollout);
        loop {
            let before = simulator.api_requests();
            let result =
                budget::with_priority(Priority::Publish, connector.publish(&publish, now)).await;
            publish_requests += simulator.api_requests() - before;
            match result {
                Ok(_) => break,
                Err(error) if error.code == ErrorCode::RateLimit => {
                    let wait = error.retry_after.unwrap_or(Duration::from_secs(1));
                    now += ChronoDuration::from_std(wait).expect("wait");
                }
                Err(error) => panic!("publish {rollout}: {error}"),
            }
        }
    }
    let published_at = now;
    // 95 % install, 1 % fail, the rest have not reported.
    let installed = per_rollout * 95 / 100;
    let failed = per_rollout / 100;
    for rollout in 0..rollouts {
        simulator.report(&correlation(rollout), installed, failed, published_at);
    }

    // Gate checks on simulated time: (due, wanted, rollout).
    let interval = ChronoDuration::minutes(i64::try_from(gate_minutes).unwrap_or(15));
    let end = published_at + ChronoDuration::hours(i64::try_from(hours).unwrap_or(2));
    let mut queue: BinaryHeap<Reverse<GateCheck>> = (0..rollouts)
        .map(|rollout| Reverse((published_at, published_at, rollout)))
        .collect();
    let halted: Vec<u64> = (0..rollouts).step_by(100).collect();
    let mut halts_done = 0usize;
    let mut longest_delay = ChronoDuration::zero();
    let mut longest_halt_delay = ChronoDuration::zero();
    let mut checks = 0u64;
    let mut refusals = 0u64;
    let mut status_requests = 0u64;
    let mut hourly: std::collections::BTreeMap<i64, u64> = Default::default();
    while let Some(Reverse((due, wanted, rollout))) = queue.pop() {
        if due >= end {
            break;
        }
        // Halfway, the halted rollouts' halts arrive (urgent).
        if halts_done < halted.len() && due >= published_at + (end - published_at) / 2 {
            let halt_wanted = due;
            for target in halted.iter().skip(halts_done) {
                let mut at = halt_wanted;
                loop {
                    let before = simulator.api_requests();
                    let result = budget::with_priority(
                        Priority::Urgent,
                        connector.remediate(&correlation(*target), &Remediation::Halt, at),
                    )
                    .await;
                    let sent = simulator.api_requests() - before;
                    *hourly.entry((at - published_at).num_hours()).or_default() += sent;
                    match result {
                        Ok(_) => break,
                        Err(error) if error.code == ErrorCode::RateLimit => {
                            at += ChronoDuration::from_std(
                                error.retry_after.unwrap_or(Duration::from_secs(1)),
                            )
                            .expect("wait");
                        }
                        Err(error) => panic!("halt {target}: {error}"),
                    }
                }
                longest_halt_delay = longest_halt_delay.max(at - halt_wanted);
                halts_done += 1;
            }
        }
        let before = simulator.api_requests();
        let result = budget::with_priority(
            Priority::Status,
            connector.query_status(&correlation(rollout), due),
        )
        .await;
        let sent = simulator.api_requests() - before;
        status_requests += sent;
        *hourly.entry((due - published_at).num_hours()).or_default() += sent;
        match result {
            Ok(_) => {
                checks += 1;
                longest_delay = longest_delay.max(due - wanted);
                let next = wanted + interval;
                queue.push(Reverse((next.max(due), next, rollout)));
            }
            Err(error) if error.code == ErrorCode::RateLimit => {
                refusals += 1;
                let wait = error.retry_after.unwrap_or(Duration::from_secs(1));
                let retry = due + ChronoDuration::from_std(wait).expect("wait");
                queue.push(Reverse((retry, wanted, rollout)));
            }
            Err(error) => panic!("status {rollout}: {error}"),
        }
    }
    let elapsed = wall.elapsed();
    let (peak_mib, cpu) = process_figures();
    let calls_per_check = budget::status_calls(u64::from(per_rollout), page_size as u64);
    let gate = GateInterval::compute(
        "Jamf",
        &budget_config,
        calls_per_check * rollouts,
        Duration::from_secs(gate_minutes * 60),
    );
    let window = connector.budget().window();
    println!(
        "fleet bench: Jamf plane, {devices} devices in {rollouts} rollouts of {per_rollout}, pages of {page_size}, gate check wanted every {gate_minutes} min, {hours} h simulated"
    );
    println!(
        "  budget: {} requests / {} s, {} connections = {:.0} requests/h (gate status share {:.0}/h)",
        budget_config.requests,
        budget_config.window_seconds.as_secs(),
        budget_config.concurrency,
        budget_config.per_hour(),
        budget_config.per_hour() * Priority::Status.share()
    );
    println!(
        "  publish: {publish_requests} requests for {rollouts} rings, done at +{} min simulated",
        (published_at - start()).num_minutes()
    );
    for (hour, requests) in &hourly {
        println!(
            "  hour {hour}: {requests} requests ({:.0} % of the budget)",
            *requests as f64 * 100.0 / budget_config.per_hour()
        );
    }
    println!(
        "  gate checks answered: {checks} ({status_requests} status requests, {:.1} per check; {refusals} calls held back by the budget and retried)",
        status_requests as f64 / checks.max(1) as f64
    );
    println!(
        "  longest gate-check delay: {} s; halts: {halts_done}, longest halt delay {} s",
        longest_delay.num_seconds(),
        longest_halt_delay.num_seconds()
    );
    println!("  effective interval: {}", gate.sentence());
    println!(
        "  budget counters: sent {}, refused {}, throttled {}; limit now {} / window",
        window.sent_total,
        window.refused_total,
        window.throttled_total,
        window.limit()
    );
    println!(
        "  process: {:.1} s wall, {cpu:.1} s CPU, peak RSS {peak_mib:.0} MiB (simulator and connector in one process)",
        elapsed.as_secs_f64()
    );
}
