//! `ringmaster demo`: the whole story on the sample tenant, in well under a
//! minute, on the simulated fleet with an accelerated clock.
//!
//! It makes a temporary Git repository from the embedded sample, a temporary
//! signing key, and runs the real daemon step by step with simulated time:
//! an ALLOW intent rolls through every ring to Global; a REQUIRE_APPROVAL
//! intent waits until a CAB approval is committed, then proceeds; a bad
//! version fails its Canary gate and is rolled back; drift is injected after
//! completion and is detected and remediated; at the end the evidence branch
//! is verified. Every step of the story is checked, and a missing one is a
//! failed demo.

use crate::daemon::config::{DaemonConfig, RepoLocation, SiemSink};
use crate::daemon::planes::SimSettings;
use crate::daemon::rollout::IntentState;
use crate::daemon::{Daemon, DaemonError};
use crate::evidence::{VerifyingKey, generate_keypair, verify_branch};
use crate::model::{Plane, Snapshot};
use crate::orchestrator::Phase;
use crate::planes::ansible::AnsibleConfig;
use crate::planes::sim::Drift;
use crate::planes::simulators::{PlaneSimulator, SimulatedPlane};
use crate::planes::{ArtifactRef, ConnectorConfig, ExecutionPlaneConnector as _, PublishRequest};
use crate::store::{EventFilter, EventType, correlation_id_for};
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The intents the story follows (all in the sample tenant).
pub const ROLLS_TO_GLOBAL: &str = "chrome-131-finance";
pub const NEEDS_APPROVAL: &str = "osquery-6.0.0-it";
pub const BAD_VERSION: &str = "zoom-6.3.0-finance";

/// With `--planes simulators`, the intent whose exception is renewed mid-story,
/// so it rolls out on the real `ansible-playbook`.
pub const NEEDS_EXCEPTION: &str = "build-agent-2.8.0-engineering";
const EXCEPTION_PATH: &str = "exceptions/exc-2026-0044.yaml";
const EXCEPTION: &str = "# Renewal of exc-2026-0007 while the plugin SDK 2.0 migration finishes.
apiVersion: ringmaster.dev/v1
kind: Exception
exception_id: exc-2026-0044
artifact_id: fabrikam-build-agent-2.8.0-rhel9-rpm
artifact_sha256: \"sha256:04bd29d23c428411443359bf858babd953d3d76d6ec2bc417f965f58c5756176\"
exception_type: vulnerability
severity: high
details: >-
  CVE-2022-42003 (High, CVSS 7.5) in jackson-databind 2.13.2.2, pulled in by
  plugin SDK 1.x. Renewed for three months: the SDK 2.0 migration is in its
  last sprint.
cves:
  - CVE-2022-42003
compensating_controls:
  - The agent only deserializes job specs from the internal build controller over mTLS.
  - UNWRAP_SINGLE_VALUE_ARRAYS is disabled in the agent's ObjectMapper configuration.
  - Build hosts sit in the isolated build VLAN with no inbound access from user networks.
approved_by: grace
approved_at: \"2026-11-30T10:00:00Z\"
expiry: \"2027-03-01T00:00:00Z\"
owner: judy
";

/// The approval the demo commits mid-rollout: Dave approves osquery for IT.
const APPROVAL_PATH: &str = "approvals/cab-2026-0151.yaml";
const APPROVAL: &str = "apiVersion: ringmaster.dev/v1
kind: ApprovalRecord
approval_id: cab-2026-0151
deployment_intent_id: osquery-6.0.0-it
intent_sha256: \"{intent_sha256}\"
decision: approved
decided_by: dave
decided_at: 2026-12-01T16:00:00Z
expiry: 2027-06-01T00:00:00Z
justification: osquery 6 reviewed by SecOps; pilot devices monitored by the SOC.
";

/// What the daemon's connectors talk to in the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DemoPlanes {
    /// The in-process simulated fleet (`planes::sim`) for every plane.
    #[default]
    Fleet,
    /// The real connectors over HTTP to each plane's simulator on
    /// 127.0.0.1, and the real `ansible-playbook` on local hosts.
    Simulators,
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub seed: u64,
    /// Simulated hours per step.
    pub step_hours: i64,
    /// Keep the temporary repository and state here instead of deleting them.
    pub keep: Option<PathBuf>,
    pub planes: DemoPlanes,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seed: 7,
            step_hours: 2,
            keep: None,
            planes: DemoPlanes::Fleet,
        }
    }
}

/// The share of installs that succeed on the simulators, as on the fleet.
const SIMULATOR_SUCCESS_RATE: f64 = 0.999;
/// The bad build's share of successful installs.
const BAD_BUILD_SUCCESS_RATE: f64 = 0.35;
/// Devices per group on a plane simulator: the entitlements' full counts
/// (6,500 in a Global ring) cost every status query thousands of rows over
/// HTTP, so the demo's planes are lab-sized; `ringmaster simulate` registers
/// the full counts.
const SIMULATOR_GROUP_CAP: u32 = 150;
/// Hosts per inventory group in the demo's Ansible lab (real runs, so small).
const ANSIBLE_LAB_HOSTS: u32 = 3;

/// The HTTP simulators of a demo run, started and registered.
struct Simulators {
    running: Vec<PlaneSimulator>,
}

impl Simulators {
    /// Starts every plane's simulator on 127.0.0.1:0, registers the sample's
    /// groups, and answers the connector configuration of each plane (the
    /// secrets in files under `root/secrets`), Ansible on a local lab included.
    async fn start(
        snapshot: &Snapshot,
        root: &Path,
    ) -> Result<(Simulators, BTreeMap<Plane, ConnectorConfig>), DemoError> {
        let secrets = root.join("secrets");
        std::fs::create_dir_all(&secrets).map_err(setup_error)?;
        std::fs::create_dir_all(root.join("state")).map_err(setup_error)?;
        let mut running = Vec::new();
        let mut planes = BTreeMap::new();
        // The Ansible plane runs for real on a local lab, not on AWX.
        for kind in SimulatedPlane::ALL
            .into_iter()
            .filter(|kind| *kind != SimulatedPlane::Awx)
        {
            let simulator = PlaneSimulator::with_random_secret(kind);
            simulator.register_capped(
                snapshot.entitlements.values().map(|rule| &rule.value),
                SIMULATOR_GROUP_CAP,
            );
            let address = simulator
                .start(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(setup_error)?;
            let secret_file = secrets.join(format!("{}.secret", kind.as_str()));
            simulator.write_secret(&secret_file).map_err(setup_error)?;
            planes.insert(
                kind.plane(),
                simulator.connector_config(address, &secret_file, &root.join("state")),
            );
            running.push(simulator);
        }
        planes.insert(
            Plane::Ansible,
            ansible_lab(snapshot, &root.join("ansible"))?,
        );
        seed_previous_versions(snapshot, &planes, start_time() - Duration::days(30)).await?;
        Ok((Simulators { running }, planes))
    }

    fn get(&self, kind: SimulatedPlane) -> Option<&PlaneSimulator> {
        self.running.iter().find(|s| s.kind() == kind)
    }

    /// Devices report what they did since the last step.
    fn check_in(&self, now: DateTime<Utc>) -> usize {
        self.running
            .iter()
            .map(|simulator| simulator.check_in(now, SIMULATOR_SUCCESS_RATE))
            .sum()
    }
}

/// What earlier rollouts left on the plane simulators: the version each
/// intent would roll back to, still installed on the devices its first ring's
/// entitlement excludes (the loaner Macs, the kiosks). A rollback assigns
/// that version again, so the plane must hold it, as a real tenant would.
/// Published through the real connectors, each under the correlation id of
/// the earlier intent `<intent>-previous`.
async fn seed_previous_versions(
    snapshot: &Snapshot,
    planes: &BTreeMap<Plane, ConnectorConfig>,
    now: DateTime<Utc>,
) -> Result<usize, DemoError> {
    let mut seeded = 0;
    for intent in snapshot.intents.values() {
        let Some(previous) = intent
            .rollback_plan
            .as_ref()
            .and_then(|plan| plan.rollback_version.clone())
        else {
            continue;
        };
        let Some(current) = snapshot.artifact_of(intent) else {
            continue;
        };
        let plane = current.plane;
        let Some(config) = planes.get(&plane).filter(|_| plane != Plane::Ansible) else {
            continue;
        };
        let Some(artifact) = snapshot
            .versions
            .get(&(intent.application_id.clone(), previous.clone()))
            .and_then(|version| version.artifacts.iter().find(|a| a.plane == plane))
        else {
            continue;
        };
        let scope = &intent.target_scope;
        let Some(first_ring) = scope.rings.first() else {
            continue;
        };
        let Some(excluded) = snapshot
            .entitlement_for(
                plane,
                first_ring,
                &scope.acquisition_boundary,
                &scope.business_unit,
            )
            .and_then(|rule| rule.exclusions.first().cloned())
        else {
            continue;
        };
        let Some(application) = snapshot.applications.get(&intent.application_id) else {
            continue;
        };
        let earlier = format!("{}-previous", intent.intent_id);
        let request = PublishRequest {
            correlation_id: correlation_id_for(&earlier),
            intent_id: earlier,
            application_id: intent.application_id.clone(),
            application_name: application.name.clone(),
            version: previous,
            plane,
            ring: first_ring.clone(),
            artifact: ArtifactRef::from(artifact),
            groups: vec![excluded.id.clone()],
            exclusions: Vec::new(),
            expected_devices: 0,
            supersedes_version: None,
            sites: None,
        };
        let connector = config.build().map_err(setup_error)?;
        connector
            .publish(&request, now)
            .await
            .map_err(|error| setup_error(format!("seed {}: {error}", request.intent_id)))?;
        seeded += 1;
    }
    Ok(seeded)
}

/// The Ansible plane of the demo: the real `ansible-playbook` on a small lab
/// of `ansible_connection=local` hosts, a few per inventory group the sample's
/// entitlements name.
fn ansible_lab(snapshot: &Snapshot, work_dir: &Path) -> Result<ConnectorConfig, DemoError> {
    let program = which_ansible_playbook().ok_or_else(|| {
        setup_error(
            "--planes simulators runs the real ansible-playbook, which is not on PATH: \
             install it with `pip install ansible-core` (scripts/test.sh does)",
        )
    })?;
    let mut inventory: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in snapshot
        .entitlements
        .values()
        .filter(|rule| rule.plane == Plane::Ansible)
    {
        for group in rule.groups.iter().chain(&rule.exclusions) {
            inventory.entry(group.id.clone()).or_insert_with(|| {
                (1..=ANSIBLE_LAB_HOSTS)
                    .map(|n| format!("{}-{n:02}", group.id.replace('_', "-")))
                    .collect()
            });
        }
    }
    let mut config = AnsibleConfig::new(work_dir, inventory);
    config.ansible_playbook = program;
    Ok(ConnectorConfig::Ansible(config))
}

fn which_ansible_playbook() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("ansible-playbook"))
        .find(|candidate| candidate.is_file())
}

/// One intent's line in the live view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentLine {
    pub intent_id: String,
    pub decision: String,
    pub phase: String,
    pub ring: Option<String>,
    pub rings_done: usize,
    pub rings_total: usize,
    pub installed: u32,
    pub targeted: u32,
}

/// What the live view shows after each step.
#[derive(Debug, Clone, Serialize)]
pub struct Frame {
    pub at: DateTime<Utc>,
    pub hours: i64,
    pub intents: Vec<IntentLine>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub simulated_hours: i64,
    pub steps: usize,
    pub evidence_records: u64,
    pub events: usize,
    pub checks: Vec<Check>,
    pub intents: Vec<IntentLine>,
    pub repository: Option<PathBuf>,
}

impl DemoReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo setup: {0}")]
    Setup(String),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

fn setup_error(error: impl std::fmt::Display) -> DemoError {
    DemoError::Setup(error.to_string())
}

/// The demo's simulated start: after the sample's expired exception, before
/// the year-end freeze, so every rule of the sample tenant shows.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
        .single()
        .expect("valid date")
}

fn lines(daemon: &Daemon) -> Vec<IntentLine> {
    let Ok(records) = daemon.store().list_intents() else {
        return Vec::new();
    };
    records
        .iter()
        .map(|record| {
            let state = IntentState::from_record(record);
            let run = state.run.as_ref();
            let (phase, ring) = match run.map(|r| &r.phase) {
                None => ("blocked".to_owned(), None),
                Some(Phase::AwaitingApproval { ring, requirement }) => (
                    match requirement {
                        crate::orchestrator::Requirement::CabApproval => "awaiting_cab",
                        crate::orchestrator::Requirement::Exception => "awaiting_exception",
                        crate::orchestrator::Requirement::PolicyVerdict => "blocked_by_policy",
                        crate::orchestrator::Requirement::ActiveChange => "blocked",
                    }
                    .to_owned(),
                    Some(ring.clone()),
                ),
                Some(phase) => (
                    phase.name().to_owned(),
                    match phase {
                        Phase::RingInProgress { ring }
                        | Phase::RingCompleted { ring }
                        | Phase::RingStarting { ring, .. }
                        | Phase::AwaitingApproval { ring, .. }
                        | Phase::Paused { ring, .. } => Some(ring.clone()),
                        _ => None,
                    },
                ),
            };
            let (installed, targeted) = run
                .and_then(|r| r.rings.iter().rev().find_map(|p| p.observed()))
                .map(|o| (o.installed, o.targeted))
                .unwrap_or((0, 0));
            IntentLine {
                intent_id: record.intent_id.clone(),
                decision: record.decision.clone().unwrap_or_default(),
                phase,
                ring,
                rings_done: run
                    .map(|r| {
                        r.rings
                            .iter()
                            .filter(|p| p.completed_at().is_some())
                            .count()
                    })
                    .unwrap_or(0),
                rings_total: run.map(|r| r.rings.len()).unwrap_or(0),
                installed,
                targeted,
            }
        })
        .collect()
}

/// A fresh SSH signing key for `principal`, listed in its `signing_keys`
/// in the sample written at `repo_dir`.
fn demo_signing_key(repo_dir: &Path, principal: &str) -> Result<ssh_key::PrivateKey, DemoError> {
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .map_err(setup_error)?;
    let public = key.public_key().to_openssh().map_err(setup_error)?;
    let path = repo_dir
        .join("principals")
        .join(format!("{principal}.yaml"));
    let text = std::fs::read_to_string(&path).map_err(setup_error)?;
    let listed = text.replacen(
        "roles:\n",
        &format!("signing_keys:\n  - \"{public}\"\nroles:\n"),
        1,
    );
    std::fs::write(&path, listed).map_err(setup_error)?;
    Ok(key)
}

fn phase_of(daemon: &Daemon, intent_id: &str) -> Option<Phase> {
    let record = daemon.store().get_intent(intent_id).ok()??;
    IntentState::from_record(&record).run.map(|r| r.phase)
}

/// Runs the story; `on_frame` renders progress after every step.
pub async fn run(
    options: &DemoOptions,
    on_frame: &mut dyn FnMut(&Frame),
) -> Result<DemoReport, DemoError> {
    let temporary = tempfile::Builder::new()
        .prefix("ringmaster-demo-")
        .tempdir()
        .map_err(setup_error)?;
    let root = options
        .keep
        .clone()
        .unwrap_or_else(|| temporary.path().to_path_buf());
    let repo_dir = root.join("contoso");
    let state_dir = root.join("state");
    let key_dir = root.join("keys");
    crate::sample::write_to(&repo_dir).map_err(setup_error)?;
    // Dave and Grace sign what they commit (a record counts when its
    // decider signed the commit that wrote it): their keys are listed in
    // the first commit, the daemon's root of authority.
    let dave_key = demo_signing_key(&repo_dir, "dave")?;
    let grace_key = demo_signing_key(&repo_dir, "grace")?;
    crate::source::commit::init_and_commit_all(
        &repo_dir,
        "Contoso governed repository (sample tenant)",
    )
    .map_err(setup_error)?;
    let keys = generate_keypair(&key_dir, None, true).map_err(setup_error)?;
    let fleet = SimSettings {
        seed: options.seed,
        install_delay: (
            std::time::Duration::from_secs(5 * 60),
            std::time::Duration::from_secs(90 * 60),
        ),
        default_success_rate: 0.995,
    };
    // Every plane explicitly: the simulated fleet (`type: sim`, marked
    // simulated everywhere), or the plane simulators over HTTP.
    let (simulators, planes) = match options.planes {
        DemoPlanes::Fleet => (None, fleet.configs(&crate::model::Plane::ALL)),
        DemoPlanes::Simulators => {
            let repository = crate::source::GovernedRepo::open(&repo_dir).map_err(setup_error)?;
            let head = repository.resolve("HEAD").map_err(setup_error)?;
            let entries = repository.entries_at(head).map_err(setup_error)?;
            let (snapshot, _) = crate::model::load(&entries);
            let (simulators, planes) = Simulators::start(&snapshot, &root).await?;
            (Some(simulators), planes)
        }
    };
    let config = DaemonConfig {
        repo: RepoLocation::Local(repo_dir.clone()),
        state_dir,
        store: None,
        key: keys.secret_key.clone(),
        key_password: None,
        branch: "main".into(),
        evidence_branch: "evidence".into(),
        poll_interval: std::time::Duration::from_secs(30),
        siem: SiemSink::Off,
        evidence_remote: None,
        listen: None,
        github: None,
        planes,
        config_file: None,
        evidence_object_store: None,
        incidents: Default::default(),
        api: None,
        notifications: Vec::new(),
        git_credentials: Default::default(),
    };
    let mut daemon = Daemon::open(config)?;

    let start = start_time();
    let step = Duration::hours(options.step_hours.max(1));
    // The CAB meets half a day after the intent starts waiting for it.
    let mut approval_at: Option<DateTime<Utc>> = None;
    let give_up = start + Duration::days(40);
    let mut now = start;
    let mut steps = 0;
    let mut approval_committed = false;
    let mut waited_for_approval = false;
    let mut drift_injected = false;
    let mut bad_version_set = false;
    let mut exception_renewed = false;
    loop {
        let report = daemon.step(now).await?;
        steps += 1;
        let mut notes = Vec::new();
        for commit in &report.commits {
            notes.push(format!(
                "processed commit {} ({} decision record(s))",
                &commit.commit[..10],
                commit.records.len()
            ));
        }
        if !bad_version_set && let Some(sim) = daemon.planes().and_then(|p| p.sim(Plane::Jamf)) {
            sim.set_success_rate("zoom-macos", "6.3.0", BAD_BUILD_SUCCESS_RATE)
                .map_err(setup_error)?;
            bad_version_set = true;
            notes.push("zoom-macos 6.3.0 is a bad build: 35% of installs succeed".into());
        }
        let bad_version_in_canary = matches!(
            phase_of(&daemon, BAD_VERSION),
            Some(Phase::RingInProgress { ring } | Phase::RingStarting { ring, .. })
                if ring == "ring-1-canary"
        );
        if !bad_version_set
            && bad_version_in_canary
            && let Some(jamf) = simulators
                .as_ref()
                .and_then(|s| s.get(SimulatedPlane::Jamf))
                .and_then(PlaneSimulator::jamf)
        {
            jamf.set_success_rate(&correlation_id_for(BAD_VERSION), BAD_BUILD_SUCCESS_RATE);
            bad_version_set = true;
            notes.push("zoom-macos 6.3.0 is a bad build: 35% of installs succeed".into());
        }
        if let Some(simulators) = &simulators {
            let reports = simulators.check_in(now);
            if reports > 0 {
                notes.push(format!(
                    "devices on the plane simulators sent {reports} report(s)"
                ));
            }
        }
        if matches!(
            phase_of(&daemon, NEEDS_APPROVAL),
            Some(Phase::AwaitingApproval { .. })
        ) && !waited_for_approval
        {
            waited_for_approval = true;
            approval_at = Some(now + Duration::hours(12));
            notes.push(format!(
                "{NEEDS_APPROVAL} waits for CAB approval before ring-2-pilot"
            ));
        }
        // On the simulators, Grace renews the build agent's exception the
        // morning the story starts, and it rolls out on the real Ansible.
        if simulators.is_some() && !exception_renewed && now >= start + Duration::hours(2) {
            let repository = git2::Repository::open(&repo_dir).map_err(setup_error)?;
            crate::source::commit::commit_files_signed(
                &repository,
                "main",
                &[(EXCEPTION_PATH, EXCEPTION.as_bytes())],
                "Security: renew the jackson-databind exception for build-agent 2.8.0 (exc-2026-0044)",
                &grace_key,
            )
            .map_err(setup_error)?;
            exception_renewed = true;
            notes.push(format!(
                "grace commits exception exc-2026-0044: {NEEDS_EXCEPTION} may roll out (real ansible-playbook)"
            ));
        }
        if !approval_committed && approval_at.is_some_and(|at| now >= at) {
            let repository = git2::Repository::open(&repo_dir).map_err(setup_error)?;
            // Dave approves the intent as it is: its digest goes in the record.
            let snapshot = daemon
                .snapshot()
                .ok_or_else(|| setup_error("no snapshot"))?;
            let intent = snapshot
                .intents
                .get(NEEDS_APPROVAL)
                .ok_or_else(|| setup_error("the sample has no osquery intent"))?;
            let approval = APPROVAL.replace(
                "{intent_sha256}",
                &crate::model::digest::intent_sha256(snapshot, intent),
            );
            crate::source::commit::commit_files_signed(
                &repository,
                "main",
                &[(APPROVAL_PATH, approval.as_bytes())],
                "CAB: approve osquery 6.0.0 for IT (cab-2026-0151)",
                &dave_key,
            )
            .map_err(setup_error)?;
            approval_committed = true;
            notes.push("dave commits CAB approval cab-2026-0151 for osquery-6.0.0-it".into());
        }
        if !drift_injected && matches!(phase_of(&daemon, ROLLS_TO_GLOBAL), Some(Phase::Completed)) {
            let snapshot = daemon
                .snapshot()
                .ok_or_else(|| setup_error("no snapshot"))?;
            let group = snapshot
                .entitlement_for(Plane::Intune, "ring-4-global", "acq-001", "bu-finance")
                .and_then(|rule| rule.groups.first().map(|g| g.id.clone()))
                .ok_or_else(|| setup_error("no global entitlement for chrome"))?;
            if let Some(intune) = simulators
                .as_ref()
                .and_then(|s| s.get(SimulatedPlane::Intune))
                .and_then(PlaneSimulator::intune)
            {
                let removed =
                    intune.remove_assignments(&correlation_id_for(ROLLS_TO_GLOBAL), &group);
                drift_injected = removed > 0;
                notes.push(format!(
                    "drift: someone deleted chrome's Intune assignment to {group} in Graph"
                ));
            } else if let Some(sim) = daemon.planes().and_then(|p| p.sim(Plane::Intune)) {
                sim.inject_drift(
                    &correlation_id_for(ROLLS_TO_GLOBAL),
                    Drift::AssignmentMissing {
                        group: group.clone(),
                    },
                    now,
                )
                .map_err(setup_error)?;
                drift_injected = true;
                notes.push(format!(
                    "drift: someone deleted chrome's Intune assignment to {group}"
                ));
            }
        }
        if let Some(reconcile) = &report.reconcile
            && reconcile.drifts > 0
        {
            notes.push(format!(
                "reconciler: {} drift(s), {} remediated, {} ticket(s)",
                reconcile.drifts, reconcile.remediated, reconcile.tickets
            ));
        }
        on_frame(&Frame {
            at: now,
            hours: (now - start).num_hours(),
            intents: lines(&daemon),
            notes,
        });
        let settled = lines(&daemon).iter().all(|line| {
            matches!(
                line.phase.as_str(),
                "completed"
                    | "rolled_back"
                    | "failed"
                    | "blocked"
                    | "superseded"
                    | "awaiting_exception"
                    | "blocked_by_policy"
            )
        });
        let remediated = drift_remediated(&daemon);
        if (settled && drift_injected && remediated) || now >= give_up {
            break;
        }
        now += step;
    }

    // The story's checks.
    let events = daemon
        .store()
        .events(&EventFilter::default())
        .map_err(setup_error)?;
    let mut checks = Vec::new();
    let global = phase_of(&daemon, ROLLS_TO_GLOBAL);
    checks.push(Check {
        name: "allow_intent_reaches_global",
        passed: matches!(global, Some(Phase::Completed)),
        detail: format!(
            "{ROLLS_TO_GLOBAL}: {}",
            global.as_ref().map(|p| p.name()).unwrap_or("no run")
        ),
    });
    let approved = phase_of(&daemon, NEEDS_APPROVAL);
    checks.push(Check {
        name: "approval_intent_waits_then_proceeds",
        passed: waited_for_approval
            && approval_committed
            && matches!(approved, Some(Phase::Completed)),
        detail: format!(
            "{NEEDS_APPROVAL}: waited={waited_for_approval}, now {}",
            approved.as_ref().map(|p| p.name()).unwrap_or("no run")
        ),
    });
    let bad = phase_of(&daemon, BAD_VERSION);
    let gate_failed = events.iter().any(|e| {
        e.intent_id.as_deref() == Some(BAD_VERSION) && e.event_type == EventType::RollbackExecuted
    });
    checks.push(Check {
        name: "bad_version_fails_canary_and_rolls_back",
        passed: matches!(bad, Some(Phase::RolledBack { .. })) && gate_failed,
        detail: format!(
            "{BAD_VERSION}: {}",
            bad.as_ref().map(|p| p.name()).unwrap_or("no run")
        ),
    });
    let drifts = events
        .iter()
        .filter(|e| e.event_type == EventType::DriftDetected)
        .count();
    checks.push(Check {
        name: "drift_detected_and_remediated",
        passed: drift_injected && drift_remediated(&daemon),
        detail: format!("{drifts} drift event(s)"),
    });
    let public = VerifyingKey::load(&keys.public_key).map_err(setup_error)?;
    let verify = verify_branch(&repo_dir, "evidence", &public, None).map_err(setup_error)?;
    checks.push(Check {
        name: "evidence_verifies",
        passed: verify.ok,
        detail: match &verify.first_failure {
            None => format!("{} signed record(s) verified", verify.records_checked),
            Some(failure) => failure.to_string(),
        },
    });
    if simulators.is_some() {
        let built = phase_of(&daemon, NEEDS_EXCEPTION);
        let runs = std::fs::read_dir(root.join("ansible").join("runs"))
            .map(|entries| entries.count())
            .unwrap_or(0);
        checks.push(Check {
            name: "renewed_exception_rolls_out_on_real_ansible",
            passed: exception_renewed && matches!(built, Some(Phase::Completed)) && runs > 0,
            detail: format!(
                "{NEEDS_EXCEPTION}: {}; {runs} ansible-playbook run(s)",
                built.as_ref().map(|p| p.name()).unwrap_or("no run")
            ),
        });
    }
    let chain = daemon.store().verify_event_chain().map_err(setup_error)?;
    checks.push(Check {
        name: "event_log_intact",
        passed: chain.first_break.is_none(),
        detail: format!("{} event(s) in the hash chain", chain.events_checked),
    });
    Ok(DemoReport {
        simulated_hours: (now - start).num_hours(),
        steps,
        evidence_records: verify.records_checked,
        events: events.len(),
        checks,
        intents: lines(&daemon),
        repository: options.keep.as_ref().map(|_| repo_dir),
    })
}

fn drift_remediated(daemon: &Daemon) -> bool {
    let Ok(events) = daemon.store().events(&EventFilter {
        intent_id: Some(ROLLS_TO_GLOBAL.into()),
        ..EventFilter::default()
    }) else {
        return false;
    };
    events.iter().any(|e| {
        e.event_type == EventType::RemediationResult
            && e.details.get("remediation_result").and_then(|v| v.as_str()) == Some("success")
    })
}
