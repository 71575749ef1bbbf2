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
            store: None,
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
            planes: SimSettings {
                seed: 11,
                install_delay: (
                    std::time::Duration::from_secs(300),
                    std::time::Duration::from_secs(3600),
                ),
                default_success_rate: 1.0,
            }
            .configs(&Plane::ALL),
            config_file: None,
            evidence_object_store: None,
            incidents: Default::default(),
            api: None,
            notifications: Vec::new(),
            git_credentials: Default::default(),
        };
        let daemon = Daemon::open(config).expect("daemon");
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
    // Counted by record file (`…/SSSSSSSS-<intent>.json`): a commit can
    // carry the records of many runs.
    let records = fleet
        .repo
        .git(&["ls-tree", "-r", "--name-only", "evidence"]);
    let chrome_records = records
        .lines()
        .filter(|path| path.ends_with(&format!("-{CHROME}.json")))
        .count();
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

/// A daemon opened the way `serve --config FILE` opens one: the settings
/// layered from the file's YAML, validated (a `type: sim` plane gets its plane
/// from its key and a state file in the state directory), the file kept for
/// reloads.
fn daemon_from_config_file(
    repo: &TestRepo,
    keys: &std::path::Path,
    state: &std::path::Path,
    config_file: &std::path::Path,
) -> Result<Daemon, ringmaster::daemon::DaemonError> {
    use ringmaster::daemon::config::RawConfig;
    let paths = ringmaster::evidence::generate_keypair(keys, None, true).expect("keygen");
    let mut config = RawConfig::from_file(config_file)
        .expect("config parses")
        .layered(RawConfig {
            repo: Some(repo.path.to_str().expect("utf-8").to_owned()),
            state: Some(state.to_path_buf()),
            key: Some(paths.secret_key),
            ..RawConfig::default()
        })
        .validate(None)
        .expect("config validates");
    config.config_file = Some(config_file.to_path_buf());
    Daemon::open(config)
}

/// A fast, reliable simulated fleet for one plane, as YAML.
fn sim_plane(plane: &str) -> String {
    format!(
        "  {plane}: {{type: sim, seed: 11, default_success_rate: 1.0, install_delay_seconds: [300, 3600]}}\n"
    )
}

#[test]
fn serve_refuses_a_plane_without_a_connector_naming_it() {
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
    let key = keys.path().join("ringmaster.key");
    let state = tempfile::tempdir().expect("state");
    let serve = |config: Option<&std::path::Path>| {
        let mut args = vec![
            "serve".to_owned(),
            "--repo".into(),
            repo.path.to_str().expect("utf-8").into(),
            "--state".into(),
            state.path().to_str().expect("utf-8").into(),
            "--key".into(),
            key.to_str().expect("utf-8").into(),
            "--once".into(),
        ];
        if let Some(config) = config {
            args.extend(["--config".into(), config.to_str().expect("utf-8").into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ringmaster(&args, &repo.path)
    };
    // No planes configured at all: nothing runs on a silent simulation.
    let output = serve(None);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(message.contains("intune"), "{message}");
    assert!(
        message.contains("type: sim"),
        "names the way to simulate it: {message}"
    );
    assert!(
        !state.path().join("sim-intune.json").exists(),
        "no fleet was made up"
    );
    // Four planes configured: the fifth is named.
    let config = keys.path().join("daemon.yaml");
    let four: String = ["intune", "jamf", "sccm", "ansible"]
        .iter()
        .map(|p| sim_plane(p))
        .collect();
    std::fs::write(&config, format!("planes:\n{four}")).expect("config");
    let output = serve(Some(&config));
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(message.contains("plane landscape"), "{message}");
    assert!(!message.contains("intune"), "{message}");
    // All five, explicitly: it starts.
    std::fs::write(
        &config,
        format!("planes:\n{four}{}", sim_plane("landscape")),
    )
    .expect("config");
    let output = serve(Some(&config));
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
}

/// The evidence branch's commit count and its last record's sequence.
fn evidence_commits_and_sequence(repo: &std::path::Path) -> (u64, u64) {
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args(args)
            .current_dir(repo)
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}: {}", stderr(&output));
        stdout(&output).trim().to_owned()
    };
    let commits = git(&["rev-list", "--count", "evidence"]);
    let sequence = git(&[
        "log",
        "-1",
        "--format=%(trailers:key=Evidence-Sequence,valueonly)",
        "evidence",
    ]);
    (
        commits.parse().expect("a count"),
        sequence.parse().expect("a sequence"),
    )
}

/// Every run of a tenant finishing its lab soak in the same pass asks for a
/// `ring_completed` record, then an event and its next ring's claim: the
/// records still go out in batches (a few commits for the whole pass), not
/// one commit per run because each run's next effect waits for its record.
#[test]
fn runs_completing_a_ring_in_one_pass_share_evidence_commits() {
    let dir = tempfile::tempdir().expect("dir");
    let repo = dir.path().join("governed");
    let keys = dir.path().join("keys");
    let state = dir.path().join("state");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    let generated = ringmaster(&["generate", &path(&repo), "--intents", "60"], dir.path());
    assert!(generated.status.success(), "{}", stderr(&generated));
    let keygen = ringmaster(&["keygen", "--out", &path(&keys)], dir.path());
    assert!(keygen.status.success(), "{}", stderr(&keygen));
    let config = keys.join("daemon.yaml");
    let planes: String = Plane::ALL.iter().map(|p| sim_plane(p.as_str())).collect();
    std::fs::write(&config, format!("planes:\n{planes}")).expect("config");
    let serve = |now: &str| {
        let output = ringmaster(
            &[
                "serve",
                "--repo",
                &path(&repo),
                "--state",
                &path(&state),
                "--key",
                &path(&keys.join("ringmaster.key")),
                "--config",
                &path(&config),
                "--once",
                "--now",
                now,
            ],
            dir.path(),
        );
        assert!(
            output.status.success(),
            "serve --once at {now}: {}",
            stderr(&output)
        );
    };
    // The decisions and the lab rings' starts.
    serve("2026-12-01T09:00:00Z");
    let (commits_before, records_before) = evidence_commits_and_sequence(&repo);
    // After the lab soak: every run's lab gate passes, its ring_completed
    // record, event and canary claim, then the canary starts.
    serve("2026-12-01T13:30:00Z");
    let (commits_after, records_after) = evidence_commits_and_sequence(&repo);
    let records = records_after - records_before;
    let commits = commits_after - commits_before;
    assert!(
        records >= 120,
        "every run completed its lab ring and started its canary: {records} records"
    );
    assert!(
        commits <= 4,
        "{records} records of one pass in {commits} commits: a run's next effect wrote the batch early"
    );
    let verify = ringmaster(
        &[
            "verify",
            &path(&repo),
            "--public-key",
            &path(&keys.join("ringmaster.pub")),
            "--state",
            &path(&state),
        ],
        dir.path(),
    );
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_type_sim_plane_rolls_out_to_global_and_is_marked_simulated_everywhere() {
    let repo = TestRepo::sample();
    let keys = tempfile::tempdir().expect("keys");
    let state = tempfile::tempdir().expect("state");
    let config = keys.path().join("daemon.yaml");
    let planes: String = ["intune", "jamf", "sccm", "landscape", "ansible"]
        .iter()
        .map(|p| sim_plane(p))
        .collect();
    std::fs::write(&config, format!("planes:\n{planes}")).expect("config");
    let mut daemon =
        daemon_from_config_file(&repo, keys.path(), state.path(), &config).expect("daemon opens");
    let mut now = Utc
        .with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
        .single()
        .expect("date");
    let phase = |daemon: &Daemon| {
        let record = daemon.store().get_intent(CHROME).expect("store")?;
        IntentState::from_record(&record).run.map(|run| run.phase)
    };
    for _ in 0..(24 * 20 / 2) {
        daemon.step(now).await.expect("step");
        if matches!(phase(&daemon), Some(Phase::Completed)) {
            break;
        }
        now += Duration::hours(2);
    }
    assert!(
        matches!(phase(&daemon), Some(Phase::Completed)),
        "{:?}",
        phase(&daemon)
    );
    // The groups came from the entitlements: one assignment per ring.
    let sim = daemon
        .planes()
        .and_then(|p| p.sim(Plane::Intune))
        .expect("sim")
        .clone();
    assert_eq!(sim.assignment_count(&correlation_id_for(CHROME)), 5);
    assert!(
        state.path().join("sim-intune.json").exists(),
        "the fleet is kept in the state directory"
    );

    // Every evidence record of an intent on the plane says it was simulated.
    let files = repo.git(&["ls-tree", "-r", "--name-only", "evidence"]);
    let mut chrome_packs = 0;
    let mut simulated_packs = 0;
    for file in files.lines().filter(|f| f.ends_with(".json")) {
        let pack: serde_json::Value =
            serde_json::from_str(&repo.git(&["show", &format!("evidence:{file}")])).expect("pack");
        if pack["body"]["plane_mode"] == "simulated" {
            simulated_packs += 1;
        }
        if pack["intent_id"] == CHROME {
            chrome_packs += 1;
            assert_eq!(
                pack["body"]["plane_mode"], "simulated",
                "{file}: {}",
                pack["body"]
            );
        }
    }
    assert!(
        chrome_packs > 6,
        "a decision and the ring records: {chrome_packs}"
    );
    // So does every event about a plane.
    let events = daemon
        .store()
        .events(&EventFilter {
            intent_id: Some(CHROME.into()),
            ..EventFilter::default()
        })
        .expect("events");
    let on_plane: Vec<_> = events
        .iter()
        .filter(|e| e.execution_plane.is_some())
        .collect();
    assert!(!on_plane.is_empty());
    for event in on_plane {
        assert_eq!(
            event.details["plane_mode"], "simulated",
            "{:?}",
            event.event_type
        );
    }
    drop(daemon);
    // `status` says it, and `verify` counts the simulated records.
    let output = ringmaster(
        &["status", "--state", state.path().to_str().expect("utf-8")],
        &repo.path,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    let chrome_line = table
        .lines()
        .find(|l| l.starts_with(CHROME))
        .expect("chrome listed");
    assert!(chrome_line.contains("intune (SIMULATED)"), "{table}");
    let output = ringmaster(
        &[
            "status",
            "--state",
            state.path().to_str().expect("utf-8"),
            "--format",
            "json",
        ],
        &repo.path,
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let chrome = report
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["intent_id"] == CHROME)
        .expect("chrome");
    assert_eq!(chrome["plane_mode"], "simulated");
    let public = keys.path().join("ringmaster.pub");
    let output = ringmaster(
        &[
            "verify",
            repo.path.to_str().expect("utf-8"),
            "--public-key",
            public.to_str().expect("utf-8"),
        ],
        &repo.path,
    );
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let said = stdout(&output);
    assert!(
        said.contains(&format!("{simulated_packs} of them from simulated planes")),
        "{simulated_packs} simulated records: {said}"
    );
}

const OSQUERY: &str = "osquery-5.12.1-it";

/// An osquery 5.12.1 rollout on Landscape that policy allows (low risk, a
/// halt plan), replacing the sample's 6.0.0 intent.
const OSQUERY_INTENT: &str = r#"apiVersion: ringmaster.dev/v1
kind: DeploymentIntent
intent_id: osquery-5.12.1-it
application_id: osquery
version: "5.12.1"
artifact_hash: "sha256:75ad12bc47525c71e07c5d55b159f44f9e0d975db8cccd2d14b58a9a762deb40"
target_scope:
  acquisition_boundary: acq-001
  business_unit: bu-it
  rings: [ring-0-lab, ring-1-canary, ring-2-pilot, ring-3-department, ring-4-global]
rollback_plan:
  strategy: halt
  validated: true
  validation_date: "2026-11-24T10:00:00Z"
requested_by: bob
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_plane_added_to_ringmaster_yaml_while_running_holds_then_rolls_out_once_configured() {
    let repo = TestRepo::sample();
    // The tenant starts without Landscape.
    let aside = tempfile::tempdir().expect("aside");
    let landscape_files: Vec<String> = repo
        .git(&[
            "ls-files",
            "apps/osquery",
            "entitlements",
            "intents/osquery-6.0.0-it.yaml",
        ])
        .lines()
        .filter(|f| {
            f.starts_with("apps/osquery") || f.contains("landscape") || f.contains("osquery")
        })
        .map(str::to_owned)
        .collect();
    for file in &landscape_files {
        let target = aside.path().join(file);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::rename(repo.path.join(file), target).expect("move aside");
    }
    repo.edit("ringmaster.yaml", "  - landscape\n", "");
    repo.commit_all("no Landscape yet");
    let keys = tempfile::tempdir().expect("keys");
    let state = tempfile::tempdir().expect("state");
    let config = keys.path().join("daemon.yaml");
    let four: String = ["intune", "jamf", "sccm", "ansible"]
        .iter()
        .map(|p| sim_plane(p))
        .collect();
    std::fs::write(&config, format!("planes:\n{four}")).expect("config");
    let mut daemon =
        daemon_from_config_file(&repo, keys.path(), state.path(), &config).expect("daemon opens");
    let mut now = Utc
        .with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
        .single()
        .expect("date");
    daemon.step(now).await.expect("step");

    // Landscape arrives in ringmaster.yaml, with an osquery rollout on it,
    // while the daemon has no connector for it: the rollout holds, and says why.
    for file in landscape_files
        .iter()
        .filter(|f| !f.starts_with("intents/"))
    {
        let target = repo.path.join(file);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::rename(aside.path().join(file), target).expect("restore");
    }
    repo.edit("ringmaster.yaml", "  - sccm\n", "  - sccm\n  - landscape\n");
    repo.write("intents/osquery-5.12.1-it.yaml", OSQUERY_INTENT);
    repo.commit_all("Landscape, and osquery on it");
    let phase = |daemon: &Daemon| {
        let record = daemon.store().get_intent(OSQUERY).expect("store")?;
        IntentState::from_record(&record).run.map(|run| run.phase)
    };
    now += Duration::hours(1);
    daemon.step(now).await.expect("step");
    match phase(&daemon) {
        Some(Phase::Held { cause, reason, .. }) => {
            assert_eq!(cause, ringmaster::orchestrator::HoldCause::PlaneUnavailable);
            assert!(reason.contains("no connector"), "{reason}");
        }
        other => panic!("osquery holds for its plane: {other:?}"),
    }
    let blocked = daemon
        .store()
        .events(&EventFilter {
            intent_id: Some(OSQUERY.into()),
            ..EventFilter::default()
        })
        .expect("events")
        .into_iter()
        .filter(|e| e.event_type == EventType::PublishBlocked)
        .any(|e| {
            e.details
                .to_string()
                .contains("plane landscape has no connector")
        });
    assert!(blocked, "an event names the plane");

    // The operator adds the connector to the config file: picked up without a
    // restart, and the rollout goes on to Global by itself.
    std::fs::write(
        &config,
        format!("planes:\n{four}{}", sim_plane("landscape")),
    )
    .expect("config");
    for _ in 0..(24 * 20 / 2) {
        now += Duration::hours(2);
        daemon.step(now).await.expect("step");
        if matches!(phase(&daemon), Some(Phase::Completed)) {
            break;
        }
    }
    assert!(
        matches!(phase(&daemon), Some(Phase::Completed)),
        "{:?}",
        phase(&daemon)
    );
    let landscape = daemon
        .planes()
        .and_then(|p| p.sim(Plane::Landscape))
        .expect("sim")
        .clone();
    assert_eq!(
        landscape.assignment_count(&correlation_id_for(OSQUERY)),
        5,
        "one assignment per ring"
    );
    let reconfigured = daemon
        .store()
        .events(&EventFilter {
            correlation_id: Some("planes:config".into()),
            ..EventFilter::default()
        })
        .expect("events");
    assert_eq!(reconfigured.len(), 1, "{reconfigured:?}");
    assert_eq!(
        reconfigured[0].details["planes"],
        serde_json::json!(["landscape"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_incident_fails_the_canary_gate_and_rolls_back() {
    let mut fleet = Fleet::new();
    let in_canary = fleet
        .run_until(24 * 3, 1, |f| {
            matches!(f.phase(CHROME), Some(Phase::RingInProgress { ring }) if ring == "ring-1-canary")
        })
        .await;
    assert!(in_canary, "{:?}", fleet.phase(CHROME));
    // Alertmanager's webhook notification (version 4) as it reaches
    // `POST /webhooks/alertmanager`: a firing alert about Chrome in
    // Finance's canary ring, and a resolved one for the lab ring (no count).
    let at = fleet.now.to_rfc3339();
    let alert = |fingerprint: &str, ring: &str, status: &str| {
        serde_json::json!({
            "status": status,
            "labels": {"alertname": "ChromeCrashLoop", "severity": "critical",
                       "ringmaster_app": "google-chrome", "ringmaster_ring": ring,
                       "business_unit": "bu-finance"},
            "annotations": {"summary": "Chrome crashes at start on canary devices"},
            "startsAt": at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.local/graph", "fingerprint": fingerprint
        })
    };
    let notification = serde_json::json!({
        "version": "4", "groupKey": "{}:{alertname=\"ChromeCrashLoop\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "ringmaster", "groupLabels": {"alertname": "ChromeCrashLoop"},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager.local",
        "alerts": [alert("5e1c0ld", "ring-0-lab", "resolved"), alert("9f2a0c1d", "ring-1-canary", "firing")]
    });
    let now = fleet.now;
    let parsed = ringmaster::api::incidents::alertmanager_reports(
        &serde_json::to_vec(&notification).expect("json"),
        now,
    )
    .expect("a valid Alertmanager notification");
    assert_eq!(parsed.reports.len(), 2);
    let store = fleet.daemon.store_mut();
    for report in &parsed.reports {
        store.record_incident(report, now).expect("incident");
    }
    let rolled_back = fleet
        .run_until(6, 1, |f| {
            matches!(f.phase(CHROME), Some(Phase::RolledBack { .. }))
        })
        .await;
    assert!(
        rolled_back,
        "the open incident fails the gate: {:?}",
        fleet.phase(CHROME)
    );
    let gate = fleet
        .daemon
        .store()
        .events(&EventFilter {
            intent_id: Some(CHROME.into()),
            ..EventFilter::default()
        })
        .expect("events")
        .into_iter()
        .find(|e| e.event_type == EventType::GateEvaluated && e.details["kind"] == "gate_failed")
        .expect("a failed gate");
    assert_eq!(gate.ring.as_deref(), Some("ring-1-canary"));
    assert!(
        gate.details["gate"]["reasons"][0]
            .as_str()
            .expect("reason")
            .contains("1 open incident"),
        "{}",
        gate.details
    );
    assert_eq!(
        fleet.events(CHROME, EventType::RingCompleted),
        1,
        "only the lab ring completed"
    );
}

/// Chrome 132 in the repository, and the intent `chrome-131-finance` moved
/// to it under the same id (rolling back to 131).
fn chrome_132_under_the_same_intent_id(fleet: &Fleet) {
    let v131 = fleet.repo.read("apps/google-chrome/131.0.6778.yaml");
    let old_hash = "sha256:ef5a7b00ad6c60fe40edb8e5f33b19d5a49056ca8ba594bdb62f8c39091e2bfe";
    let new_hash = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let v132 = v131
        .replace("131.0.6778", "132.0.6834")
        .replace(old_hash, new_hash);
    fleet
        .repo
        .write("apps/google-chrome/132.0.6834.yaml", &v132);
    fleet
        .repo
        .edit(
            "intents/chrome-131-finance.yaml",
            "version: \"131.0.6778\"",
            "version: \"132.0.6834\"",
        )
        .edit("intents/chrome-131-finance.yaml", old_hash, new_hash)
        .edit(
            "intents/chrome-131-finance.yaml",
            "rollback_version: \"130.0.6723\"",
            "rollback_version: \"131.0.6778\"",
        );
    fleet.repo.commit_all("chrome 132 under the same intent id");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_intent_id_reused_with_a_new_version_rolls_out_as_a_new_run() {
    let mut fleet = Fleet::new();
    assert!(
        fleet.run_until(24 * 20, 4, completed(CHROME)).await,
        "chrome 131 completes: {:?}",
        fleet.phase(CHROME)
    );
    chrome_132_under_the_same_intent_id(&fleet);
    let done = fleet
        .run_until(24 * 20, 4, |f| {
            let record = f.daemon.store().get_intent(CHROME).expect("store");
            record
                .map(|r| IntentState::from_record(&r))
                .and_then(|s| s.run)
                .is_some_and(|run| run.version == "132.0.6834" && run.phase == Phase::Completed)
        })
        .await;
    let run = fleet
        .daemon
        .store()
        .get_intent(CHROME)
        .expect("store")
        .map(|r| IntentState::from_record(&r))
        .and_then(|s| s.run)
        .expect("a run");
    assert!(
        done,
        "chrome 132 completes under the reused id: {:?} (generation {})",
        run.phase, run.generation
    );
    assert_eq!(run.generation, 2, "the second run of the intent id");
    // Its own deployment on the plane, one assignment per ring, beside the
    // first run's (which 132 supersedes on the devices).
    let sim = fleet.sim(Plane::Intune);
    let second = ringmaster::daemon::performer::plane_correlation_id(&run);
    assert_ne!(second, correlation_id_for(CHROME));
    assert_eq!(sim.assignment_count(&second), 5);
    // Its records have ids of their own: no record of the first run was
    // taken for one of the second.
    let second_run_records = fleet.repo.git(&[
        "grep",
        "-l",
        "chrome-131-finance/run-2/",
        "evidence",
        "--",
        ".",
    ]);
    assert!(
        second_run_records.lines().count() >= 5,
        "records of the second run: {second_run_records}"
    );
    // Every publish of the second run went out (none refused as a changed request).
    let refused = fleet
        .daemon
        .store()
        .events(&EventFilter {
            intent_id: Some(CHROME.into()),
            ..EventFilter::default()
        })
        .expect("events")
        .into_iter()
        .filter(|e| e.details.to_string().contains("request_changed"))
        .count();
    assert_eq!(refused, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_survives_a_503_storm() {
    let mut fleet = Fleet::new();
    chrome_alone_on_intune(&fleet);
    fleet.step().await;
    let sim = fleet.sim(Plane::Intune);
    sim.set_success_rate("google-chrome", "131.0.6778", 0.2)
        .expect("rate");
    // Every rollback call answers 503 five times over before one goes through.
    for _ in 0..5 {
        sim.inject_remediate_fault(Fault::ServiceUnavailable)
            .expect("fault");
    }
    let ended = fleet
        .run_until(24 * 8, 1, |f| {
            matches!(
                f.phase(CHROME),
                Some(Phase::RolledBack { .. }) | Some(Phase::Failed { .. })
            )
        })
        .await;
    assert!(ended, "{:?}", fleet.phase(CHROME));
    assert!(
        matches!(fleet.phase(CHROME), Some(Phase::RolledBack { .. })),
        "the storm passes and the rollback completes: {:?}",
        fleet.phase(CHROME)
    );
    let retries = fleet
        .daemon
        .store()
        .events(&EventFilter {
            intent_id: Some(CHROME.into()),
            ..EventFilter::default()
        })
        .expect("events")
        .into_iter()
        .filter(|e| e.details["kind"] == "rollback_retry")
        .count();
    assert_eq!(retries, 5, "one retry per 503");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deny_from_a_change_in_flight_waits_then_proceeds() {
    let mut fleet = Fleet::new();
    chrome_alone_on_intune(&fleet);
    // Chrome's intent covers the lab and canary rings only.
    let intent = "intents/chrome-131-finance.yaml";
    fleet.repo.edit(
        intent,
        "    - ring-2-pilot\n    - ring-3-department\n    - ring-4-global\n",
        "",
    );
    fleet.repo.commit_all("chrome to lab and canary");
    let in_lab = fleet
        .run_until(24, 1, |f| {
            matches!(f.phase(CHROME), Some(Phase::RingInProgress { .. }))
        })
        .await;
    assert!(in_lab, "{:?}", fleet.phase(CHROME));
    // While it is in flight, a second intent of the application for the
    // later rings: no ring in common, but one active change at a time.
    let later = "chrome-131-finance-wide";
    let text = fleet
        .repo
        .read(intent)
        .replace(
            "intent_id: chrome-131-finance",
            &format!("intent_id: {later}"),
        )
        .replace(
            "    - ring-0-lab\n    - ring-1-canary\n",
            "    - ring-2-pilot\n    - ring-3-department\n    - ring-4-global\n",
        );
    fleet.repo.write(&format!("intents/{later}.yaml"), &text);
    fleet.repo.commit_all("chrome to the later rings");
    fleet.step().await;
    let blocked = fleet
        .daemon
        .store()
        .get_intent(later)
        .expect("store")
        .expect("known");
    assert_eq!(blocked.decision.as_deref(), Some("DENY"));
    assert_eq!(blocked.state, "blocked", "it waits, it does not fail");
    let waits_on = IntentState::from_record(&blocked)
        .evaluation
        .expect("evaluation")
        .waits_on;
    assert_eq!(waits_on, [CHROME]);
    // The first change ends; the second is judged again and rolls out.
    let done = fleet
        .run_until(24 * 20, 2, |f| {
            matches!(f.phase(CHROME), Some(Phase::Completed))
                && matches!(f.phase(later), Some(Phase::Completed))
        })
        .await;
    assert!(done, "{:?} / {:?}", fleet.phase(CHROME), fleet.phase(later));
    let record = fleet
        .daemon
        .store()
        .get_intent(later)
        .expect("store")
        .expect("known");
    assert_eq!(record.decision.as_deref(), Some("ALLOW"));
    // Both verdicts are on the evidence branch.
    let subjects = fleet.repo.git(&["log", "--format=%s", "evidence"]);
    let decisions = subjects
        .lines()
        .filter(|s| s.contains(later) && s.contains("decision"))
        .count();
    assert!(decisions >= 2, "{subjects}");
}

/// A new intent superseding Chrome 131 while its rollout is in flight:
/// 131's run ends `superseded`, its assignments are withdrawn from the plane
/// (halt, recorded) and the superseding intent rolls out on its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_superseded_run_has_its_assignments_withdrawn_when_the_new_intent_takes_over() {
    let mut fleet = Fleet::new();
    chrome_alone_on_intune(&fleet);
    let old = correlation_id_for(CHROME);
    let canary_live = fleet
        .run_until(24 * 10, 1, |f| {
            f.sim(Plane::Intune).assignment_count(&old) >= 2
        })
        .await;
    assert!(
        canary_live,
        "131 reaches its canary ring: {:?}",
        fleet.phase(CHROME)
    );
    // Chrome 132 as a new intent that supersedes 131.
    let v131 = fleet.repo.read("apps/google-chrome/131.0.6778.yaml");
    let old_hash = "sha256:ef5a7b00ad6c60fe40edb8e5f33b19d5a49056ca8ba594bdb62f8c39091e2bfe";
    let new_hash = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    fleet.repo.write(
        "apps/google-chrome/132.0.6834.yaml",
        &v131
            .replace("131.0.6778", "132.0.6834")
            .replace(old_hash, new_hash),
    );
    let intent = fleet
        .repo
        .read("intents/chrome-131-finance.yaml")
        .replace(
            "intent_id: chrome-131-finance",
            "intent_id: chrome-132-finance",
        )
        .replace("version: \"131.0.6778\"", "version: \"132.0.6834\"")
        .replace(old_hash, new_hash)
        .replace(
            "rollback_version: \"130.0.6723\"",
            "rollback_version: \"131.0.6778\"",
        )
        .replace(
            "requested_by: alice",
            "requested_by: alice\nsupersedes: chrome-131-finance",
        );
    fleet.repo.write("intents/chrome-132-finance.yaml", &intent);
    fleet.repo.commit_all("chrome 132 supersedes 131");
    let new = correlation_id_for("chrome-132-finance");
    let taken_over = fleet
        .run_until(24 * 10, 1, |f| {
            matches!(f.phase(CHROME), Some(Phase::Superseded { .. }))
                && f.sim(Plane::Intune).assignment_count(&new) >= 1
        })
        .await;
    assert!(
        taken_over,
        "131 superseded ({:?}) and 132 published ({:?})",
        fleet.phase(CHROME),
        fleet.phase("chrome-132-finance")
    );
    let sim = fleet.sim(Plane::Intune);
    assert_eq!(
        sim.assignment_count(&old),
        0,
        "the superseded run's assignments are withdrawn"
    );
    // Later passes (reconciliation included) never put them back, and the
    // halt was carried out once, recorded.
    fleet.run_until(24 * 3, 6, |_| false).await;
    assert_eq!(fleet.sim(Plane::Intune).assignment_count(&old), 0);
    let halts: Vec<_> = fleet
        .daemon
        .store()
        .events(&EventFilter {
            intent_id: Some(CHROME.into()),
            ..EventFilter::default()
        })
        .expect("events")
        .into_iter()
        .filter(|e| e.details["kind"] == "halted_on_plane")
        .collect();
    assert_eq!(halts.len(), 1, "{halts:?}");
    assert_eq!(halts[0].details["applied"], true);
    let journal = fleet
        .daemon
        .store()
        .get_action(&ringmaster::store::action_key(
            CHROME,
            "intune",
            &halts[0].details["rings"]
                .as_array()
                .expect("rings")
                .iter()
                .filter_map(|ring| ring.as_str())
                .collect::<Vec<_>>()
                .join(","),
            "remediate:halt",
        ))
        .expect("journal")
        .expect("the halt is journalled");
    assert_eq!(journal.state, ringmaster::store::ActionState::Confirmed);
    assert!(
        fleet.sim(Plane::Intune).assignment_count(&new) >= 1,
        "132 keeps rolling out"
    );
    assert!(
        fleet
            .daemon
            .store()
            .verify_event_chain()
            .expect("chain")
            .first_break
            .is_none()
    );
}

/// A publish the plane's circuit breaker refuses never left: the journal
/// keeps it `planned` (never `sent`, no attempt counted) with why and when,
/// and it goes out once the plane may be called again.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_refused_by_an_open_breaker_is_journalled_as_not_sent() {
    use ringmaster::store::ActionState;
    let mut fleet = Fleet::new();
    fleet.step().await;
    let sim = fleet.sim(Plane::Intune);
    let lab_publishes = sim.publish_calls();
    assert!(lab_publishes >= 2, "several runs publish on Intune");
    // The next Intune publish is throttled for three hours: the plane's
    // breaker opens that long, and every other run's publish to Intune in
    // the same pass is refused without a call.
    sim.inject_publish_fault(Fault::RateLimited {
        retry_after: Some(std::time::Duration::from_secs(3 * 3600)),
    })
    .expect("fault");
    while sim.publish_calls() == lab_publishes {
        assert!(
            fleet.now
                < Utc
                    .with_ymd_and_hms(2026, 12, 20, 0, 0, 0)
                    .single()
                    .expect("date")
        );
        fleet.now += Duration::hours(24);
        fleet.step().await;
    }
    assert_eq!(
        sim.publish_calls(),
        lab_publishes + 1,
        "one publish reached Intune"
    );
    let intune_publishes = |fleet: &Fleet| -> Vec<ringmaster::store::Action> {
        fleet
            .daemon
            .store()
            .pending_actions()
            .expect("journal")
            .into_iter()
            .filter(|action| action.plane == "intune" && action.action == "publish")
            .collect()
    };
    let pending = intune_publishes(&fleet);
    assert!(
        !pending.is_empty(),
        "other runs had Intune publishes to make"
    );
    for action in &pending {
        assert_eq!(action.state, ActionState::Planned, "{action:?}");
        assert_eq!(action.attempts, 0, "never sent: {action:?}");
        let why = action.last_error.as_deref().unwrap_or_default();
        assert!(
            why.starts_with("not sent:") && why.contains("circuit breaker"),
            "{why}"
        );
        assert!(action.next_attempt_at.is_some_and(|at| at > fleet.now));
    }
    // Once the plane may be called again they go out, each once.
    let refused: Vec<String> = pending.iter().map(|action| action.key.clone()).collect();
    fleet.now += Duration::hours(4);
    fleet.step().await;
    fleet.now += Duration::hours(1);
    fleet.step().await;
    for key in &refused {
        let action = fleet
            .daemon
            .store()
            .get_action(key)
            .expect("journal")
            .expect("entry");
        assert_eq!(action.state, ActionState::Confirmed, "{action:?}");
        assert_eq!(action.attempts, 1, "sent exactly once: {action:?}");
    }
}

// --- kill -9 matrix ------------------------------------------------------
//
// The daemon as a separate process (`serve --once --now T`), killed with
// SIGKILL at chosen points (`RINGMASTER_TEST_PAUSE_AT`) or at random, then
// restarted. After the restarts: every deployment holds exactly one
// assignment per group it was published to (none lost, none doubled), no
// journal entry is left in flight, the event chain has no gap and verifies,
// and `ringmaster verify --state` accepts the evidence branch.

/// One tenant, one state directory, one fast simulated fleet, for a daemon
/// run as a child process.
struct Child {
    repo: TestRepo,
    keys: tempfile::TempDir,
    state: tempfile::TempDir,
    config: std::path::PathBuf,
}

fn at_hours(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
        .single()
        .expect("date")
        + Duration::hours(hours)
}

impl Child {
    fn new() -> Child {
        Child::on(TestRepo::sample())
    }

    fn on(repo: TestRepo) -> Child {
        let keys = tempfile::tempdir().expect("keys");
        ringmaster::evidence::generate_keypair(keys.path(), None, false).expect("keygen");
        let state = tempfile::tempdir().expect("state");
        let config = keys.path().join("daemon.yaml");
        let mut yaml = String::from("planes:\n");
        for plane in ["intune", "jamf", "sccm", "landscape", "ansible"] {
            yaml.push_str(&sim_plane(plane));
        }
        std::fs::write(&config, yaml).expect("config");
        Child {
            repo,
            keys,
            state,
            config,
        }
    }

    fn command(&self, now: DateTime<Utc>) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringmaster"));
        command
            .arg("serve")
            .arg("--repo")
            .arg(&self.repo.path)
            .arg("--state")
            .arg(self.state.path())
            .arg("--key")
            .arg(self.keys.path().join("ringmaster.key"))
            .arg("--config")
            .arg(&self.config)
            .arg("--once")
            .arg("--now")
            .arg(now.to_rfc3339())
            .current_dir(&self.repo.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command
    }

    /// A run to the end; it must succeed.
    fn run(&self, now: DateTime<Utc>) {
        let output = self.command(now).output().expect("serve runs");
        assert!(
            output.status.success(),
            "serve --once at {now}: {}{}",
            stdout(&output),
            stderr(&output)
        );
    }

    /// A run killed with SIGKILL as soon as it reaches `point`; false when it
    /// ended without reaching it.
    fn kill_at(&self, now: DateTime<Utc>, point: &str) -> bool {
        let mut child = self
            .command(now)
            .env("RINGMASTER_TEST_PAUSE_AT", point)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let pipe = child.stderr.take().expect("stderr");
        // `point@N` stops the N-th time the point is reached.
        let name = point.split('@').next().unwrap_or(point);
        // `any` stops at whichever point comes.
        let marker = match name {
            "any" => "RINGMASTER-PAUSED-AT ".to_string(),
            name => format!("RINGMASTER-PAUSED-AT {name}"),
        };
        let paused = BufReader::new(pipe)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains(&marker));
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
        paused
    }

    fn store(&self) -> ringmaster::store::Store {
        ringmaster::store::Store::open_existing(&self.state.path().join("ringmaster.db"))
            .expect("store")
    }

    fn sim(&self, plane: &str) -> Option<SimConnector> {
        let file = self.state.path().join(format!("sim-{plane}.json"));
        file.exists()
            .then(|| SimConnector::load(&file).expect("fleet state"))
    }

    /// The invariants every crash must leave intact; answers how many
    /// assignments the planes hold.
    fn check(&self) -> usize {
        use ringmaster::store::ActionState;
        let store = self.store();
        let journal: Vec<ringmaster::store::Action> = store.actions().expect("journal");
        assert!(
            journal
                .iter()
                .all(|action| action.state != ActionState::Sent),
            "nothing left in flight: {:?}",
            journal
                .iter()
                .filter(|action| action.state == ActionState::Sent)
                .collect::<Vec<_>>()
        );
        let mut total = 0;
        for plane in ["intune", "jamf", "sccm", "landscape", "ansible"] {
            let Some(sim) = self.sim(plane) else {
                continue;
            };
            for record in store.list_intents().expect("intents") {
                // The groups its confirmed publishes on this plane named.
                let mut groups: Vec<String> = journal
                    .iter()
                    .filter(|action| {
                        action.intent_id == record.intent_id
                            && action.plane == plane
                            && action.action == "publish"
                            && action.state == ActionState::Confirmed
                    })
                    .flat_map(|action| {
                        action.request["groups"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|group| group.as_str().map(str::to_owned))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                groups.sort();
                groups.dedup();
                let held = sim.assignment_count(&record.correlation_id);
                assert_eq!(
                    held,
                    groups.len(),
                    "{} on {plane}: one assignment per group published ({groups:?})",
                    record.intent_id
                );
                total += held;
            }
        }
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
        let verify = ringmaster(
            &[
                "verify",
                self.repo.path.to_str().expect("utf-8"),
                "--public-key",
                self.keys
                    .path()
                    .join("ringmaster.pub")
                    .to_str()
                    .expect("utf-8"),
                "--state",
                self.state.path().to_str().expect("utf-8"),
            ],
            &self.repo.path,
        );
        assert!(
            verify.status.success(),
            "verify --state: {}{}",
            stdout(&verify),
            stderr(&verify)
        );
        total
    }
}

/// Kill at every pause point of a rollout (decision record committed,
/// ring-start record committed, publish journalled but not called, publish
/// answered but not journalled), restart, and carry the rollout on.
#[test]
fn kill_at_every_pause_point_of_a_rollout_then_restart_leaves_one_assignment_per_ring() {
    for point in [
        "after-evidence-append",
        "after-record-append",
        "before-publish",
        "after-publish",
    ] {
        let child = Child::new();
        assert!(child.kill_at(at_hours(0), point), "reached {point}");
        child.run(at_hours(0));
        child.run(at_hours(0));
        let lab = child.check();
        assert!(lab >= 5, "{point}: the lab rings were published ({lab})");
        // The next ring starts on its own, once.
        child.run(at_hours(5));
        child.run(at_hours(6));
        let canary = child.check();
        assert!(canary > lab, "{point}: the canary rings were published");
    }
}

/// Kill at every pause point of a drift remediation (drift record
/// committed, remediation journalled but not called, remediation answered
/// but not journalled), restart: the drift is repaired exactly once.
#[test]
fn kill_at_every_pause_point_of_a_remediation_then_restart_repairs_once() {
    for point in [
        "after-drift-record",
        "before-remediation",
        "after-remediation",
    ] {
        let child = Child::new();
        child.run(at_hours(0));
        let published = child.check();
        // Someone deletes Chrome's lab assignment (Intune, remediation: auto).
        let intune = child.sim("intune").expect("intune fleet");
        let correlation = correlation_id_for(CHROME);
        let store = child.store();
        let group = store
            .actions()
            .expect("journal")
            .into_iter()
            .find(|action| {
                action.intent_id == CHROME && action.plane == "intune" && action.action == "publish"
            })
            .and_then(|action| action.request["groups"][0].as_str().map(str::to_owned))
            .expect("chrome's lab group");
        drop(store);
        intune
            .inject_drift(
                &correlation,
                Drift::AssignmentMissing { group },
                at_hours(1),
            )
            .expect("drift");
        assert!(child.kill_at(at_hours(1), point), "reached {point}");
        child.run(at_hours(1));
        child.run(at_hours(1));
        assert_eq!(
            child.check(),
            published,
            "{point}: the lost assignment is back, once"
        );
        let remediations = child
            .store()
            .actions()
            .expect("journal")
            .into_iter()
            .filter(|action| action.intent_id == CHROME && action.action.starts_with("remediate:"))
            .count();
        assert_eq!(remediations, 1, "{point}: one remediation journalled");
    }
}

/// 30 SIGKILLs at random moments of a first start (uniform over the time a
/// whole first start takes here, measured on a copy), then a clean run: it
/// finishes by itself, with nothing lost or repeated.
#[test]
fn thirty_random_kills_during_a_first_start_then_a_clean_run_converges() {
    // A first start with enough work to be cut 30 times: 20 intents judged,
    // recorded and published to their lab rings on five planes.
    let calibration = Child::on(TestRepo::generated(20));
    calibration.run(at_hours(0));
    let child = Child::on(TestRepo::generated(20));
    // Each kill lands at a random place of the work still to do: the N-th
    // pause point reached, whichever it is (`any@N`, N from 1 to 4). A
    // xorshift with a fixed seed: the same places every run. Each restart
    // comes six minutes after the last (past the daemon's back-off after
    // an interrupted pass), all before the lab rings' soak ends at 5 h.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut landed = 0;
    let mut attempts = 0;
    let mut now = at_hours(0);
    while landed < 30 && attempts < 40 {
        attempts += 1;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let nth = 1 + seed % 4;
        if child.kill_at(now, &format!("any@{nth}")) {
            landed += 1;
        }
        now += Duration::minutes(6);
    }
    eprintln!("kills that landed mid-run: {landed} in {attempts} starts");
    assert_eq!(landed, 30, "30 kills landed during the first start");
    // The daemon finishes on its own: more starts, nothing done twice.
    child.run(now);
    child.run(now + Duration::minutes(6));
    calibration.run(now + Duration::minutes(6));
    let published = child.check();
    assert!(
        published >= 20,
        "the lab rings were published ({published})"
    );
    assert_eq!(
        published,
        calibration.check(),
        "the same assignments as a first start never killed"
    );
    for hour in [24, 48, 72, 96] {
        child.run(at_hours(hour));
    }
    assert!(child.check() > published, "and the rollouts go on");
}

/// The snapshot the daemon drives rollouts with keeps no file's text (a
/// position is found again from the commit's blob, as for `validate`), yet
/// it is the snapshot `model::load` gives for the last good commit, and a
/// position asked of it is exactly the one a loaded text gives.
#[tokio::test(flavor = "multi_thread")]
async fn the_good_snapshot_is_the_last_good_commit_loaded_with_its_positions() {
    let mut fleet = Fleet::new();
    fleet.step().await;
    let good = fleet
        .daemon
        .store()
        .last_good_commit("main")
        .expect("store")
        .expect("a good commit");
    let governed = ringmaster::source::GovernedRepo::open(&fleet.repo.path).expect("open");
    let commit = git2::Oid::from_str(&good.commit_sha).expect("sha");
    let (expected, _) = ringmaster::model::load(&governed.entries_at(commit).expect("entries"));
    let snapshot = fleet.daemon.snapshot().expect("snapshot");
    assert_eq!(format!("{snapshot:?}"), format!("{expected:?}"));
    let intent = snapshot.intents.get(CHROME).expect("chrome");
    let wanted = expected.intents.get(CHROME).expect("chrome");
    for pointer in ["/intent_id", "/target_scope", ""] {
        let position = intent.position(pointer);
        assert!(position.line > 0, "{pointer}: {position:?}");
        assert_eq!(position, wanted.position(pointer), "{pointer}");
    }
}
