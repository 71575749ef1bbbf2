//! Benchmark: one orchestrator pass (`orchestrator::pass`, a `Tick` to every
//! run) over N active intents (default 10,000; `RINGMASTER_BENCH_INTENTS` to
//! change), under the sample tenant's config (five rings, two change freezes).
//!
//! The runs are a realistic mix reached by real events: most soaking in a ring
//! (a status query each), some about to start the next ring (gate passed:
//! change-freeze check, claim), some waiting for a scheduled start, some
//! retrying a publish, some paused by a freeze, held, awaiting CAB approval,
//! or finished; a few share a version another run rolled back.
//!
//! Run: `cargo bench --bench orchestrator`. Prints the time of one pass (the
//! runs are re-cloned before each measured pass, outside the timing).

use chrono::{DateTime, Duration, TimeZone, Utc};
use ringmaster::model::{Config, DeploymentIntent};
use ringmaster::orchestrator::{
    ConnectorFailure, Event, FailureClass, IntentRun, RolloutPlan, pass, step,
};
use ringmaster::policy::Decision;
use std::time::Instant;

const INTENT: &str = r#"
intent_id: template
application_id: vpn-client
version: "2.1.0"
artifact_hash: "sha256:aaaa"
target_scope: { acquisition_boundary: acq-001, business_unit: bu-finance,
                rings: [ring-0-lab, ring-1-canary, ring-2-pilot, ring-3-department, ring-4-global] }
rollback_plan: { strategy: intune-supersedence, rollback_version: "2.0.5", validated: true }
requested_by: alice
"#;

fn send(
    run: &mut IntentRun,
    event: Event,
    now: DateTime<Utc>,
) -> Vec<ringmaster::orchestrator::Effect> {
    let (next, effects) = step(run, &event, now);
    *run = next;
    effects
}

fn allow(approvals: &[&str]) -> Event {
    Event::Evaluated {
        decision: if approvals.is_empty() {
            Decision::RequireApproval
        } else {
            Decision::Allow
        },
        risk_score: 60,
        counted_approvals: approvals.iter().map(|id| id.to_string()).collect(),
        conditions: Vec::new(),
        emergency_override: false,
        waits_on: Vec::new(),
    }
}

/// From `Claiming` to soaking in `ring`.
fn start(run: &mut IntentRun, ring: &str, now: DateTime<Utc>) {
    let effects = send(run, Event::RingClaimed { ring: ring.into() }, now);
    let transition_id = effects
        .iter()
        .find_map(|effect| match effect {
            ringmaster::orchestrator::Effect::RecordEvidence { transition_id, .. } => {
                Some(transition_id.clone())
            }
            _ => None,
        })
        .expect("start record");
    send(run, Event::EvidenceCommitted { transition_id }, now);
    send(
        run,
        Event::PublishConfirmed {
            ring: ring.into(),
            external_id: "a".into(),
        },
        now,
    );
}

fn status(ring: &str, installed: u32, failed: u32, incidents: u32) -> Event {
    Event::StatusObserved {
        ring: ring.into(),
        targeted: 100,
        installed,
        failed,
        pending: 100 - installed - failed,
        incidents,
        first_install_at: None,
    }
}

/// One template run per kind, at `now`.
fn templates(
    intent: &DeploymentIntent,
    config: &Config,
    now: DateTime<Utc>,
) -> Vec<(usize, IntentRun)> {
    let fresh = |edit: &dyn Fn(&mut DeploymentIntent)| {
        let mut intent = intent.clone();
        edit(&mut intent);
        IntentRun::new(&intent, RolloutPlan::resolve(&intent, config, &[]).unwrap())
    };
    let long_ago = now - Duration::hours(30);
    let mut soaking = fresh(&|_| {});
    send(&mut soaking, allow(&["cab-1"]), long_ago);
    start(&mut soaking, "ring-0-lab", long_ago);
    send(
        &mut soaking,
        status("ring-0-lab", 20, 0, 0),
        long_ago + Duration::hours(4),
    );
    start(&mut soaking, "ring-1-canary", long_ago + Duration::hours(4));
    send(
        &mut soaking,
        status("ring-1-canary", 5, 0, 0),
        long_ago + Duration::hours(5),
    );

    // Waiting for canary's scheduled start, which is due by the pass: the pass
    // checks the freezes and claims the ring.
    let mut between_rings = fresh(&|intent| {
        let window = ringmaster::model::RingWindow {
            start: Some(now - Duration::minutes(1)),
            duration_hours: 24.0,
        };
        intent.schedule.insert("ring-1-canary".into(), window);
    });
    send(&mut between_rings, allow(&["cab-1"]), long_ago);
    start(&mut between_rings, "ring-0-lab", long_ago);
    send(
        &mut between_rings,
        status("ring-0-lab", 20, 0, 0),
        long_ago + Duration::hours(4),
    );
    // Waiting for the reply to its claim of pilot.
    let mut claiming = soaking.clone();
    send(
        &mut claiming,
        status("ring-1-canary", 20, 0, 0),
        now - Duration::minutes(1),
    );
    // Its first ring is scheduled in two days.
    let mut scheduled = fresh(&|intent| {
        let window = ringmaster::model::RingWindow {
            start: Some(now + Duration::days(2)),
            duration_hours: 4.0,
        };
        intent.schedule.insert("ring-0-lab".into(), window);
    });
    send(&mut scheduled, allow(&["cab-1"]), long_ago);
    let mut retrying = fresh(&|_| {});
    send(&mut retrying, allow(&["cab-1"]), long_ago);
    let effects = send(
        &mut retrying,
        Event::RingClaimed {
            ring: "ring-0-lab".into(),
        },
        long_ago,
    );
    if let Some(ringmaster::orchestrator::Effect::RecordEvidence { transition_id, .. }) =
        effects.first()
    {
        send(
            &mut retrying,
            Event::EvidenceCommitted {
                transition_id: transition_id.clone(),
            },
            long_ago,
        );
    }
    let failure = ConnectorFailure {
        class: FailureClass::Transient,
        code: "429".into(),
        retry_after_seconds: Some(60),
    };
    send(
        &mut retrying,
        Event::PublishFailed {
            ring: "ring-0-lab".into(),
            error: failure,
        },
        now - Duration::minutes(5),
    );
    let mut paused = fresh(&|_| {});
    send(
        &mut paused,
        allow(&["cab-1"]),
        Utc.with_ymd_and_hms(2025, 12, 21, 0, 0, 0).unwrap(),
    );
    let mut held = soaking.clone();
    send(
        &mut held,
        Event::OperatorHold {
            reason: "look".into(),
            actor: "bob".into(),
        },
        now,
    );
    let mut awaiting = fresh(&|_| {});
    send(&mut awaiting, allow(&[]), long_ago);
    start(&mut awaiting, "ring-0-lab", long_ago);
    send(
        &mut awaiting,
        status("ring-0-lab", 20, 0, 0),
        long_ago + Duration::hours(4),
    );
    start(
        &mut awaiting,
        "ring-1-canary",
        long_ago + Duration::hours(4),
    );
    let early = long_ago + Duration::hours(5);
    send(&mut awaiting, status("ring-1-canary", 5, 0, 0), early);
    send(&mut awaiting, status("ring-1-canary", 20, 0, 0), now);
    let mut rolled_back = soaking.clone();
    send(&mut rolled_back, status("ring-1-canary", 10, 0, 3), now);
    send(&mut rolled_back, Event::RollbackConfirmed, now);
    // Shares its version with a rolled-back run: blocked in the pass.
    let mut blocked = between_rings.clone();
    blocked.version = "2.0.9".into();
    let mut blocker = rolled_back.clone();
    blocker.version = "2.0.9".into();

    vec![
        (45, soaking),
        (15, between_rings),
        (5, claiming),
        (5, scheduled),
        (10, retrying),
        (5, paused),
        (4, held),
        (4, awaiting),
        (5, rolled_back),
        (2, blocked),
        (0, blocker),
    ]
}

fn main() {
    let intents: usize = std::env::var("RINGMASTER_BENCH_INTENTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10_000);
    let config_path = concat!(env!("CARGO_MANIFEST_DIR"), "/sample-repo/ringmaster.yaml");
    let config: Config =
        serde_yaml::from_str(&std::fs::read_to_string(config_path).unwrap()).unwrap();
    let intent: DeploymentIntent = serde_yaml::from_str(INTENT).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 2, 2, 9, 0, 0).unwrap();
    let templates = templates(&intent, &config, now);
    let total_weight: usize = templates.iter().map(|(weight, _)| weight).sum();
    let mut runs = Vec::with_capacity(intents + 1);
    for index in 0..intents {
        let mut slot = index % total_weight;
        let template = templates
            .iter()
            .find(|(weight, _)| {
                let here = slot < *weight;
                slot = slot.saturating_sub(*weight);
                here
            })
            .map(|(_, run)| run)
            .unwrap();
        let mut run = template.clone();
        run.intent_id = format!("intent-{index:05}");
        if run.version != "2.0.9" {
            run.application_id = format!("app-{}", index % 700);
        }
        runs.push(run);
    }
    runs.push(templates.last().unwrap().1.clone());

    let mut timings = Vec::new();
    let mut effect_names = std::collections::BTreeMap::new();
    for _ in 0..15 {
        let mut working = runs.clone();
        let started = Instant::now();
        let effects = pass(&mut working, now);
        timings.push(started.elapsed());
        effect_names.clear();
        for (_, effect) in &effects {
            *effect_names.entry(effect.name()).or_insert(0) += 1;
        }
        std::hint::black_box(&working);
    }
    timings.sort();
    let median = timings[timings.len() / 2];
    println!(
        "orchestrator pass over {} intents: median {:.1} ms, min {:.1} ms, max {:.1} ms (target <= 200 ms)",
        runs.len(),
        median.as_secs_f64() * 1_000.0,
        timings[0].as_secs_f64() * 1_000.0,
        timings[timings.len() - 1].as_secs_f64() * 1_000.0,
    );
    let mut by_phase = std::collections::BTreeMap::new();
    for run in &runs {
        *by_phase.entry(run.phase.name()).or_insert(0) += 1;
    }
    println!("phases before the pass: {by_phase:?}");
    println!("effects of the pass: {effect_names:?}");
    let stored: usize = runs
        .iter()
        .map(|run| {
            serde_json::to_vec(run)
                .map(|bytes| bytes.len())
                .unwrap_or(0)
        })
        .sum();
    println!(
        "runs as stored (state_json): {:.1} MB for {} intents ({} bytes each on average)",
        stored as f64 / 1e6,
        runs.len(),
        stored / runs.len().max(1)
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status
            .lines()
            .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
        {
            println!(
                "process memory holding {} runs and a working copy: {line}",
                runs.len()
            );
        }
    }
}
