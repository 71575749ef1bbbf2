//! Rollouts on real Git repositories and the simulated fleet, with injected
//! time: the daemon's `step` is called with a clock the test moves.

mod support;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use ringmaster::daemon::Daemon;
use ringmaster::daemon::config::{DaemonConfig, RepoLocation, SiemSink};
use ringmaster::daemon::planes::SimSettings;
use ringmaster::daemon::rollout::IntentState;
use ringmaster::model::Plane;
use ringmaster::orchestrator::Phase;
use ringmaster::planes::sim::{Drift, Fault, SimConnector};
use ringmaster::store::{EventFilter, EventType, correlation_id_for};
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use support::{TestRepo, ringmaster, stderr, stdout};

const CHROME: &str = "chrome-131-finance";

struct Fleet {
    repo: TestRepo,
    _keys: tempfile::TempDir,
    _state: tempfile::TempDir,
    daemon: Daemon,
    now: DateTime<Utc>,
}

impl Fleet {
    fn new() -> Fleet {
        let repo = TestRepo::sample();
        let keys = tempfile::tempdir().expect("keys");
        let paths =
            ringmaster::evidence::generate_keypair(keys.path(), None, false).expect("keygen");
        let state = tempfile::tempdir().expect("state");
        let config = DaemonConfig {
            repo: RepoLocation::Local(repo.path.clone()),
            state_dir: state.path().to_path_buf(),
            key: paths.secret_key,
            key_password: None,
            branch: "main".into(),
            evidence_branch: "evidence".into(),
            poll_interval: std::time::Duration::from_secs(30),
            siem: SiemSink::Off,
            evidence_remote: None,
            listen: None,
            github: None,
            planes: Default::default(),
            evidence_object_store: None,
            incidents: Default::default(),
            notifications: Vec::new(),
            git_credentials: Default::default(),
        };
        let settings = SimSettings {
            seed: 11,
            install_delay: (
                std::time::Duration::from_secs(300),
                std::time::Duration::from_secs(3600),
            ),
            default_success_rate: 1.0,
        };
        let daemon = Daemon::open(config)
            .expect("daemon")
            .with_fleet(settings, false);
        Fleet {
            repo,
            _keys: keys,
            _state: state,
            daemon,
            now: Utc
                .with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
                .single()
                .expect("date"),
        }
    }

    async fn step(&mut self) {
        self.daemon.step(self.now).await.expect("step");
    }

    /// Steps every `step_hours` until `done` holds or `max_hours` pass.
    async fn run_until(
        &mut self,
        max_hours: i64,
        step_hours: i64,
        done: impl Fn(&Fleet) -> bool,
    ) -> bool {
        let limit = self.now + Duration::hours(max_hours);
        loop {
            self.step().await;
            if done(self) {
                return true;
            }
            if self.now >= limit {
                return false;
            }
            self.now += Duration::hours(step_hours);
        }
    }

    fn phase(&self, intent: &str) -> Option<Phase> {
        let record = self.daemon.store().get_intent(intent).expect("store")?;
        IntentState::from_record(&record).run.map(|run| run.phase)
    }

    fn sim(&self, plane: Plane) -> SimConnector {
        self.daemon
            .planes()
            .and_then(|p| p.sim(plane))
            .cloned()
            .expect("simulated plane")
    }

    fn events(&self, intent: &str, event_type: EventType) -> usize {
        self.daemon
            .store()
            .events(&EventFilter {
                intent_id: Some(intent.into()),
                ..EventFilter::default()
            })
            .expect("events")
            .iter()
            .filter(|e| e.event_type == event_type)
            .count()
    }
}

fn completed(intent: &'static str) -> impl Fn(&Fleet) -> bool {
    move |fleet| matches!(fleet.phase(intent), Some(Phase::Completed))
}

#[tokio::test(flavor = "multi_thread")]
async fn full_rollout_reaches_global_with_a_signed_record_per_ring() {
    let mut fleet = Fleet::new();
    assert!(
        fleet.run_until(24 * 20, 2, completed(CHROME)).await,
        "chrome completes"
    );
    let started: Vec<_> = fleet
        .daemon
        .store()
        .events(&EventFilter {
            intent_id: Some(CHROME.into()),
            ..EventFilter::default()
        })
        .expect("events")
        .into_iter()
        .filter(|e| e.event_type == EventType::RingStarted)
        .map(|e| (e.ring.clone(), e.details.clone()))
        .collect();
    assert_eq!(started.len(), 5, "{started:#?}");
    // Five ring completions and one for the rollout as a whole.
    assert_eq!(fleet.events(CHROME, EventType::RingCompleted), 6);
    let subjects = fleet.repo.git(&["log", "--format=%s", "evidence"]);
    let chrome_records = subjects.lines().filter(|s| s.contains(CHROME)).count();
    assert!(
        chrome_records > 5,
        "a decision and at least one record per ring: {chrome_records}"
    );
    // One assignment per ring group, no duplicates.
    let sim = fleet.sim(Plane::Intune);
    assert_eq!(sim.assignment_count(&correlation_id_for(CHROME)), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_canary_gate_rolls_back_by_the_plan() {
    let mut fleet = Fleet::new();
    fleet.step().await;
    fleet
        .sim(Plane::Intune)
        .set_success_rate("google-chrome", "131.0.6778", 0.2)
        .expect("rate");
    let rolled_back = fleet
        .run_until(24 * 5, 2, |f| {
            matches!(f.phase(CHROME), Some(Phase::RolledBack { .. }))
        })
        .await;
    assert!(
        rolled_back,
        "chrome rolls back, now {:?}",
        fleet.phase(CHROME)
    );
    assert!(fleet.events(CHROME, EventType::RollbackExecuted) >= 1);
    // The bad version is never promoted past the failed ring.
    assert_eq!(
        fleet.events(CHROME, EventType::RingCompleted),
        1,
        "only the lab ring completed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_stops_promotion_until_resume() {
    let mut fleet = Fleet::new();
    fleet.step().await;
    fleet
        .daemon
        .store_mut()
        .request_operator_action(
            CHROME,
            "hold",
            "investigating a helpdesk spike",
            "olivia",
            fleet.now,
        )
        .expect("hold");
    fleet.now += Duration::hours(1);
    fleet.step().await;
    assert!(
        matches!(fleet.phase(CHROME), Some(Phase::Held { .. })),
        "{:?}",
        fleet.phase(CHROME)
    );
    fleet.run_until(72, 4, |_| false).await;
    assert!(
        matches!(fleet.phase(CHROME), Some(Phase::Held { .. })),
        "still held three days later"
    );
    assert!(fleet.events(CHROME, EventType::OperatorAction) >= 1);
    fleet
        .daemon
        .store_mut()
        .request_operator_action(CHROME, "resume", "spike unrelated", "olivia", fleet.now)
        .expect("resume");
    let done = fleet.run_until(24 * 20, 4, completed(CHROME)).await;
    assert!(
        done,
        "chrome completes after resume: {:?}",
        fleet.phase(CHROME)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_after_completion_is_detected_and_remediated() {
    let mut fleet = Fleet::new();
    assert!(fleet.run_until(24 * 20, 4, completed(CHROME)).await);
    let group = {
        let snapshot = fleet.daemon.snapshot().expect("snapshot");
        snapshot
            .entitlement_for(Plane::Intune, "ring-3-department", "acq-001", "bu-finance")
            .expect("entitlement")
            .groups[0]
            .id
            .clone()
    };
    let sim = fleet.sim(Plane::Intune);
    sim.inject_drift(
        &correlation_id_for(CHROME),
        Drift::AssignmentMissing { group },
        fleet.now,
    )
    .expect("drift");
    fleet.now += Duration::hours(2);
    fleet.step().await;
    assert!(
        fleet.events(CHROME, EventType::DriftDetected) >= 1,
        "drift detected"
    );
    assert!(
        fleet.events(CHROME, EventType::RemediationResult) >= 1,
        "remediated (chrome's policy is auto)"
    );
    assert_eq!(
        sim.assignment_count(&correlation_id_for(CHROME)),
        5,
        "the assignment is back"
    );
    // Reconciling again finds nothing new.
    let before = fleet.events(CHROME, EventType::DriftDetected);
    fleet.now += Duration::hours(2);
    fleet.step().await;
    assert_eq!(fleet.events(CHROME, EventType::DriftDetected), before);
}

fn lab_group(fleet: &Fleet, ring: &str) -> String {
    let snapshot = fleet.daemon.snapshot().expect("snapshot");
    snapshot
        .entitlement_for(Plane::Intune, ring, "acq-001", "bu-finance")
        .expect("entitlement")
        .groups[0]
        .id
        .clone()
}

fn remediation_results(fleet: &Fleet, intent: &str) -> Vec<String> {
    fleet
        .daemon
        .store()
        .events(&EventFilter {
            intent_id: Some(intent.into()),
            ..EventFilter::default()
        })
        .expect("events")
        .into_iter()
        .filter(|e| e.event_type == EventType::RemediationResult)
        .filter_map(|e| {
            e.details
                .get("remediation_result")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn remediation_during_a_hold_does_nothing_until_resumed() {
    let mut fleet = Fleet::new();
    assert!(fleet.run_until(24 * 20, 4, completed(CHROME)).await);
    fleet
        .daemon
        .store_mut()
        .request_operator_action(
            CHROME,
            "hold",
            "change window for the finance close",
            "olivia",
            fleet.now,
        )
        .expect("hold");
    fleet.now += Duration::hours(1);
    fleet.step().await;
    assert!(
        matches!(fleet.phase(CHROME), Some(Phase::Held { .. })),
        "{:?}",
        fleet.phase(CHROME)
    );
    let sim = fleet.sim(Plane::Intune);
    let group = lab_group(&fleet, "ring-3-department");
    sim.inject_drift(
        &correlation_id_for(CHROME),
        Drift::AssignmentMissing { group },
        fleet.now,
    )
    .expect("drift");
    for _ in 0..3 {
        fleet.now += Duration::hours(2);
        fleet.step().await;
    }
    assert!(
        fleet.events(CHROME, EventType::DriftDetected) >= 1,
        "the drift is recorded"
    );
    assert_eq!(
        sim.assignment_count(&correlation_id_for(CHROME)),
        4,
        "nothing is remediated while the rollout is held"
    );
    assert_eq!(
        remediation_results(&fleet, CHROME),
        ["deferred"],
        "deferred once, said once"
    );
    fleet
        .daemon
        .store_mut()
        .request_operator_action(CHROME, "resume", "close is over", "olivia", fleet.now)
        .expect("resume");
    fleet.now += Duration::hours(2);
    fleet.step().await;
    assert_eq!(
        sim.assignment_count(&correlation_id_for(CHROME)),
        5,
        "remediated after the hold"
    );
    assert_eq!(remediation_results(&fleet, CHROME), ["deferred", "success"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn evidence_push_failure_blocks_publishing() {
    let mut fleet = Fleet::new();
    chrome_alone_on_intune(&fleet);
    // An evidence remote that cannot be reached (no repository there yet).
    let remote = tempfile::tempdir().expect("remote");
    let bare = remote.path().join("evidence.git");
    fleet.daemon.config.evidence_remote = Some(bare.to_str().expect("utf-8").to_owned());
    for _ in 0..3 {
        let _ = fleet.daemon.step(fleet.now).await;
        fleet.now += Duration::minutes(30);
    }
    let sim = fleet.sim(Plane::Intune);
    assert_eq!(
        sim.publish_calls(),
        0,
        "nothing is published while evidence cannot be pushed"
    );
    let blocked = fleet
        .daemon
        .store()
        .events(&EventFilter {
            intent_id: Some(CHROME.into()),
            ..EventFilter::default()
        })
        .expect("events")
        .into_iter()
        .filter(|e| e.event_type == EventType::PublishBlocked)
        .filter(|e| e.details.get("kind").and_then(|k| k.as_str()) == Some("evidence_not_pushed"))
        .count();
    assert!(blocked >= 1, "a publish_blocked event says why");
    // The remote is back: the ring is published.
    let created = Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&bare)
        .status();
    assert!(created.expect("git").success());
    for _ in 0..4 {
        fleet.now += Duration::minutes(30);
        fleet.step().await;
    }
    assert_eq!(
        sim.publish_calls(),
        1,
        "published once the record is on the remote"
    );
    let pushed = Command::new("git")
        .arg("--git-dir")
        .arg(&bare)
        .args(["log", "--format=%s", "evidence"])
        .output()
        .expect("git log");
    assert!(
        String::from_utf8_lossy(&pushed.stdout).lines().count() >= 2,
        "the records reached the remote"
    );
}

/// Leaves chrome as the only intent on Intune, so a fault queued for the
/// next Intune publish is chrome's.
fn chrome_alone_on_intune(fleet: &Fleet) {
    for other in [
        "intents/vpn-6.2.1-finance.yaml",
        "intents/benefits-3.4.2-hr.yaml",
        "approvals/cab-2026-0142.yaml",
    ] {
        std::fs::remove_file(fleet.repo.path.join(other)).expect("rm");
    }
    fleet.repo.commit_all("only chrome on intune");
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_is_honoured() {
    let mut fleet = Fleet::new();
    chrome_alone_on_intune(&fleet);
    fleet.step().await;
    let sim = fleet.sim(Plane::Intune);
    assert_eq!(sim.publish_calls(), 1, "the lab ring is published");
    // The canary publish will be throttled for three hours.
    sim.inject_publish_fault(Fault::RateLimited {
        retry_after: Some(std::time::Duration::from_secs(3 * 3600)),
    })
    .expect("fault");
    let mut calls = Vec::new();
    for _ in 0..16 {
        fleet.now += Duration::hours(1);
        fleet.step().await;
        calls.push((fleet.now, sim.publish_calls()));
    }
    let throttled = calls
        .iter()
        .find(|(_, n)| *n == 2)
        .map(|(at, _)| *at)
        .expect("canary publish tried");
    let retried = calls
        .iter()
        .find(|(_, n)| *n == 3)
        .map(|(at, _)| *at)
        .unwrap_or_else(|| panic!("retried: {calls:?}"));
    assert!(
        retried - throttled >= Duration::hours(3),
        "retried {} after the 429",
        retried - throttled
    );
    assert!(
        retried - throttled <= Duration::hours(5),
        "but not much later: {}",
        retried - throttled
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_budget_exhausted_fails_the_rollout_with_an_event() {
    let mut fleet = Fleet::new();
    chrome_alone_on_intune(&fleet);
    fleet.step().await;
    assert!(
        fleet
            .run_until(24, 1, |f| f.events(CHROME, EventType::RingCompleted) >= 1)
            .await
    );
    let sim = fleet.sim(Plane::Intune);
    for _ in 0..40 {
        sim.inject_publish_fault(Fault::ServiceUnavailable)
            .expect("fault");
    }
    let ended = fleet
        .run_until(24 * 5, 1, |f| {
            matches!(
                f.phase(CHROME),
                Some(Phase::Failed { .. } | Phase::Held { .. })
            )
        })
        .await;
    assert!(
        ended,
        "gave up instead of retrying forever: {:?}",
        fleet.phase(CHROME)
    );
}

#[test]
fn kill_during_a_ring_leaves_every_assignment_exactly_once() {
    let repo = TestRepo::sample();
    let keys = tempfile::tempdir().expect("keys");
    assert!(
        ringmaster(
            &["keygen", "--out", keys.path().to_str().expect("utf-8")],
            keys.path()
        )
        .status
        .success()
    );
    let state = tempfile::tempdir().expect("state");
    let args = [
        "serve",
        "--repo",
        repo.path.to_str().expect("utf-8"),
        "--state",
        state.path().to_str().expect("utf-8"),
        "--key",
        keys.path()
            .join("ringmaster.key")
            .to_str()
            .expect("utf-8")
            .to_owned()
            .leak(),
        "--once",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(args)
        .env("RINGMASTER_TEST_PAUSE_AT", "after-publish")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pipe = child.stderr.take().expect("stderr");
    let paused = BufReader::new(pipe)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("RINGMASTER-PAUSED-AT after-publish"));
    assert!(paused, "reached a publish");
    child.kill().expect("kill -9");
    child.wait().expect("reaped");

    // Restart twice: the interrupted publish is finished, nothing is repeated.
    for _ in 0..2 {
        let output = ringmaster(&args, &repo.path);
        assert!(
            output.status.success(),
            "{}{}",
            stdout(&output),
            stderr(&output)
        );
    }
    let mut total = 0;
    for plane in ["intune", "jamf", "sccm", "landscape", "ansible"] {
        let file = state.path().join(format!("sim-{plane}.json"));
        if !file.exists() {
            continue;
        }
        let sim = SimConnector::load(&file).expect("fleet state");
        let store =
            ringmaster::store::Store::open(&state.path().join("ringmaster.db")).expect("store");
        for record in store.list_intents().expect("intents") {
            let count = sim.assignment_count(&record.correlation_id);
            let lab_only = usize::from(count > 0);
            assert!(
                count <= 1,
                "{} has {count} assignments on {plane} after one ring",
                record.intent_id
            );
            total += lab_only;
        }
    }
    assert!(total >= 5, "the lab rings were published: {total}");
    let store = ringmaster::store::Store::open(&state.path().join("ringmaster.db")).expect("store");
    let events = store.events(&EventFilter::default()).expect("events");
    let sequences: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        sequences,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    assert!(
        store
            .verify_event_chain()
            .expect("chain")
            .first_break
            .is_none()
    );
}
