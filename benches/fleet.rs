//! Fleet-scale run of the daemon (issue 17): the real daemon against the
//! five HTTP plane simulators, on simulated time.
//!
//! `cargo bench --bench fleet` (release), or in a debug build `cargo test
//! --bench fleet`. `FLEET_DEVICES` (200,000), `FLEET_ROLLOUTS` (2,000),
//! `FLEET_HOURS` (1, simulated), `FLEET_POLL_SECONDS` (60: the daemon's poll
//! and the wanted gate-check interval) and `FLEET_PLANES` (`intune,jamf,
//! sccm,landscape,awx`) override the defaults.
//!
//! What runs:
//!
//! - **the tenant**: a governed Git repository made from
//!   `ringmaster::synthetic` (config, principals, tenant policy) with
//!   `FLEET_ROLLOUTS` intents spread evenly over the planes, one application
//!   each (an MSI on Intune and Configuration Manager, a package on Jamf, a
//!   .deb on Landscape and through AWX), all ALLOW under the tenant's policy,
//!   and one entitlement per plane and ring whose `expected_devices` spread
//!   `FLEET_DEVICES` over the planes in the synthetic rings' proportions
//!   (8 : 40 : 200 : 1,500 : 6,000). Every intent of a plane targets the
//!   same ring groups, as applications of one business unit do.
//! - **the planes**: the five HTTP simulators (`planes::simulators`, each
//!   request screened against the vendor's description) in a child process
//!   (this same binary, `FLEET_ROLE=simulators`), with the entitlements'
//!   groups and devices registered; devices report when the bench says so
//!   (after every daemon step, at the step's simulated time, 99 % success).
//! - **the daemon**: `Daemon::open` + `Daemon::step(now)` in this process,
//!   exactly as `serve` and `demo` run it (store, judge, evidence branch,
//!   rollouts, gate pacing, reconciliation), with each plane's connector
//!   built from the configuration that reaches its simulator and the
//!   plane's *default* call budget. Each step is one poll; the clock moves
//!   `FLEET_POLL_SECONDS` a step.
//!
//! What it prints: per plane, requests per simulated hour against the
//! budget, the effective gate-check interval, the longest wait between two
//! answered gate checks of one rollout; the daemon's CPU time and peak RSS
//! (this process: the daemon and the bench's bookkeeping; the simulators'
//! CPU is printed apart); events and evidence records written, per second
//! of the daemon's steps.

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use ringmaster::daemon::Daemon;
use ringmaster::daemon::config::{DaemonConfig, RepoLocation, SiemSink};
use ringmaster::model::Plane;
use ringmaster::planes::budget::Priority;
use ringmaster::planes::simulators::{PlaneSimulator, SimulatedPlane};
use ringmaster::planes::{ConnectorConfig, Secret};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The simulated start: a Monday morning outside the sample's freezes.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()
}

/// The synthetic rings and their relative sizes.
const RINGS: [(&str, u64); 5] = [
    ("ring-0-lab", 8),
    ("ring-1-canary", 40),
    ("ring-2-pilot", 200),
    ("ring-3-department", 1_500),
    ("ring-4-global", 6_000),
];

/// One plane of the synthetic fleet: its segment and how its artifacts look.
struct Segment {
    kind: SimulatedPlane,
    boundary: &'static str,
    unit: &'static str,
    publisher: &'static str,
    strategy: &'static str,
}

const SEGMENTS: [Segment; 5] = [
    Segment {
        kind: SimulatedPlane::Intune,
        boundary: "acq-001",
        unit: "bu-finance",
        publisher: "synthetic-publisher-finance",
        strategy: "intune-supersedence",
    },
    Segment {
        kind: SimulatedPlane::Jamf,
        boundary: "acq-001",
        unit: "bu-hr",
        publisher: "synthetic-publisher-hr",
        strategy: "jamf-uninstall-policy",
    },
    Segment {
        kind: SimulatedPlane::Sccm,
        boundary: "acq-002",
        unit: "bu-engineering",
        publisher: "synthetic-publisher-engineering",
        strategy: "sccm-uninstall-deployment",
    },
    Segment {
        kind: SimulatedPlane::Landscape,
        boundary: "acq-001",
        unit: "bu-it",
        publisher: "synthetic-publisher-it",
        strategy: "landscape-remove-packages",
    },
    Segment {
        kind: SimulatedPlane::Awx,
        boundary: "acq-002",
        unit: "bu-engineering",
        publisher: "synthetic-publisher-engineering",
        strategy: "ansible-uninstall",
    },
];

/// A group id of the plane's own form, for ring `ring`.
fn group_id(kind: SimulatedPlane, ring: usize) -> String {
    match kind {
        SimulatedPlane::Intune => format!("0a1b2c3d-0000-4000-8000-{ring:012}"),
        SimulatedPlane::Jamf => (5_000 + ring).to_string(),
        SimulatedPlane::Sccm => format!("FAB0{:04X}", 0x100 + ring),
        SimulatedPlane::Landscape => format!("fleet-ring-{ring}"),
        SimulatedPlane::Awx => format!("fleet_ring_{ring}"),
    }
}

fn sha(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

/// The artifact block of application `app` at `version` on `kind`.
fn artifact(kind: SimulatedPlane, app: &str, version: &str) -> String {
    let hash = sha(&format!("{app}-{version}-{}", kind.as_str()));
    let common = format!(
        "    sha256: \"{hash}\"\n    signature: {{signed: true, signer: Contoso Ltd, verified: true}}\n    provenance: {{source: internal-build, slsa_level: 3}}\n    sbom: {{format: cyclonedx, components: 42, cves: []}}\n"
    );
    let plane = kind.plane().as_str();
    let (file, install, uninstall, detection) = match kind {
        SimulatedPlane::Intune | SimulatedPlane::Sccm => (
            format!("{app}-{version}.msi"),
            format!("msiexec /i {app}-{version}.msi /qn"),
            format!("msiexec /x {app}-{version}.msi /qn"),
            format!(
                "{{type: file, value: 'C:\\Program Files\\{app}\\app.exe', version: \"{version}\"}}"
            ),
        ),
        SimulatedPlane::Jamf => (
            format!("{app}-{version}.pkg"),
            format!("installer -pkg {app}-{version}.pkg -target /"),
            format!("/bin/rm -rf /Applications/{app}.app"),
            format!("{{type: bundle_id, value: com.contoso.{app}, version: \"{version}\"}}"),
        ),
        SimulatedPlane::Landscape | SimulatedPlane::Awx => (
            format!("{app}_{version}_amd64.deb"),
            format!("apt-get install -y {app}={version}"),
            format!("apt-get remove -y {app}"),
            format!("{{type: package, value: {app}, version: \"{version}\"}}"),
        ),
    };
    format!(
        "  - id: {app}-{version}-{plane}\n    plane: {plane}\n    file: {file}\n{common}    install: {install}\n    uninstall: {uninstall}\n    detection: {detection}\n",
    )
}

fn os_matrix(kind: SimulatedPlane) -> &'static str {
    match kind {
        SimulatedPlane::Intune | SimulatedPlane::Sccm => "  - os: windows\n    arch: [x64]\n",
        SimulatedPlane::Jamf => "  - os: macos\n    arch: [arm64]\n",
        SimulatedPlane::Landscape | SimulatedPlane::Awx => "  - os: ubuntu\n    arch: [amd64]\n",
    }
}

/// The tenant's files: `synthetic`'s config, principals and policy, and the
/// fleet's entitlements, applications and intents. Answers the files and
/// the devices registered per plane.
fn tenant(
    kinds: &[SimulatedPlane],
    rollouts: u64,
    devices: u64,
) -> (Vec<(String, String)>, BTreeMap<SimulatedPlane, u64>) {
    let mut files: Vec<(String, String)> = ringmaster::synthetic::files(0)
        .into_iter()
        .filter(|(path, _)| !path.starts_with("entitlements/"))
        .collect();
    let segments: Vec<&Segment> = SEGMENTS
        .iter()
        .filter(|segment| kinds.contains(&segment.kind))
        .collect();
    let per_plane = devices / segments.len().max(1) as u64;
    let weight: u64 = RINGS.iter().map(|(_, weight)| weight).sum();
    let mut registered = BTreeMap::new();
    for segment in &segments {
        let plane = segment.kind.plane().as_str();
        for (index, (ring, share)) in RINGS.iter().enumerate() {
            let count = (per_plane * share / weight).max(1);
            *registered.entry(segment.kind).or_insert(0) += count;
            let id = format!("fleet-{}-{ring}", segment.kind.as_str());
            files.push((
                format!("entitlements/{id}.yaml"),
                format!(
                    "apiVersion: ringmaster.dev/v1\nkind: EntitlementRule\nid: {id}\nplane: {plane}\nring: {ring}\nscope:\n  acquisition_boundary: {}\n  business_unit: {}\ngroups:\n  - id: \"{}\"\n    name: FLEET {} {ring}\nexpected_devices: {count}\n",
                    segment.boundary,
                    segment.unit,
                    group_id(segment.kind, index),
                    segment.kind.as_str(),
                ),
            ));
        }
    }
    let rings: Vec<&str> = RINGS.iter().map(|(ring, _)| *ring).collect();
    for index in 0..rollouts {
        let segment = segments[(index as usize) % segments.len()];
        let kind = segment.kind;
        let app = format!("fleet-{}-{index:05}", kind.as_str());
        files.push((
            format!("apps/{app}/app.yaml"),
            format!(
                "apiVersion: ringmaster.dev/v1\nkind: Application\nid: {app}\nname: Fleet application {index}\nowner: alice\ncategory: productivity\nsupport_tier: tier-3\nlicensing: site\nplanes: [{}]\nallowed_scope:\n  acquisition_boundaries: [acq-001, acq-002]\n  business_units: [\"*\"]\n",
                kind.plane().as_str()
            ),
        ));
        for version in ["1.0.0", "1.1.0"] {
            files.push((
                format!("apps/{app}/{version}.yaml"),
                format!(
                    "apiVersion: ringmaster.dev/v1\nkind: ApplicationVersion\napplication_id: {app}\nversion: \"{version}\"\nos_matrix:\n{}artifacts:\n{}",
                    os_matrix(kind),
                    artifact(kind, &app, version)
                ),
            ));
        }
        files.push((
            format!("intents/{app}.yaml"),
            format!(
                "apiVersion: ringmaster.dev/v1\nkind: DeploymentIntent\nintent_id: {app}\napplication_id: {app}\nversion: \"1.1.0\"\nartifact_hash: \"{}\"\ntarget_scope:\n  acquisition_boundary: {}\n  business_unit: {}\n  rings: [{}]\nrollback_plan:\n  strategy: {}\n  rollback_version: \"1.0.0\"\n  validated: true\nrequested_by: {}\n",
                sha(&format!("{app}-1.1.0-{}", kind.as_str())),
                segment.boundary,
                segment.unit,
                rings.join(", "),
                segment.strategy,
                segment.publisher,
            ),
        ));
    }
    (files, registered)
}

fn write_files(dir: &Path, files: &[(String, String)]) {
    for (relative, text) in files {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("dir");
        std::fs::write(path, text).expect("write");
    }
}

/// CPU seconds (user + system) and peak RSS (MiB) of process `pid` (`self`).
fn process_figures(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
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
    ((ticks(11) + ticks(12)) / 100.0, peak_kib / 1024.0)
}

fn kinds_from_env() -> Vec<SimulatedPlane> {
    std::env::var("FLEET_PLANES")
        .unwrap_or_else(|_| "intune,jamf,sccm,landscape,awx".into())
        .split(',')
        .filter_map(|name| {
            SimulatedPlane::ALL
                .into_iter()
                .find(|kind| kind.as_str() == name.trim())
        })
        .collect()
}

/// The child: every plane's simulator with the repository's groups, served
/// until stdin closes; `check_in <rfc3339>` makes the devices report.
fn simulators_main() {
    let repo = PathBuf::from(std::env::var("FLEET_REPO").expect("FLEET_REPO"));
    let work = PathBuf::from(std::env::var("FLEET_WORK").expect("FLEET_WORK"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let repository = ringmaster::source::GovernedRepo::open(&repo).expect("repository");
    let head = repository.resolve("HEAD").expect("HEAD");
    let entries = repository.entries_at(head).expect("entries");
    let (snapshot, _) = ringmaster::model::load(&entries);
    let mut simulators = Vec::new();
    let stdout = std::io::stdout();
    for kind in kinds_from_env() {
        let simulator = PlaneSimulator::with_random_secret(kind);
        let (groups, devices) =
            simulator.register(snapshot.entitlements.values().map(|rule| &rule.value));
        let address = runtime
            .block_on(simulator.start("127.0.0.1:0".parse().expect("address")))
            .expect("simulator");
        let secret = work.join(format!("{}.secret", kind.as_str()));
        simulator.write_secret(&secret).expect("secret");
        writeln!(
            stdout.lock(),
            "plane {} {address} {} {groups} {devices}",
            kind.as_str(),
            secret.display()
        )
        .expect("stdout");
        simulators.push(simulator);
    }
    writeln!(stdout.lock(), "ready").expect("stdout");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(at) = line.strip_prefix("check_in ") {
            let at: DateTime<Utc> = at.parse().expect("a time");
            let reports: usize = simulators
                .iter()
                .map(|simulator| simulator.check_in(at, 0.99))
                .sum();
            writeln!(stdout.lock(), "checked {reports}").expect("stdout");
        } else if line == "quit" {
            break;
        }
    }
}

/// The simulators' process, as the daemon's side sees it.
struct Simulators {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Simulators {
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("simulators' stdout");
        assert!(!line.is_empty(), "the simulators' process ended");
        line.trim_end().to_string()
    }

    fn check_in(&mut self, at: DateTime<Utc>) -> u64 {
        writeln!(self.stdin, "check_in {}", at.to_rfc3339()).expect("simulators' stdin");
        let line = self.line();
        line.strip_prefix("checked ")
            .and_then(|count| count.parse().ok())
            .expect("checked <n>")
    }
}

#[derive(Default)]
struct PlaneFigures {
    /// Budget requests sent at the start of each simulated hour.
    hourly: BTreeMap<i64, u64>,
}

fn main() {
    if std::env::var("FLEET_ROLE").as_deref() == Ok("simulators") {
        simulators_main();
        return;
    }
    let devices = env("FLEET_DEVICES", 200_000);
    let rollouts = env("FLEET_ROLLOUTS", 2_000).max(1);
    let hours = env("FLEET_HOURS", 1).max(1);
    let poll = env("FLEET_POLL_SECONDS", 60).max(1);
    let kinds = kinds_from_env();
    assert!(!kinds.is_empty(), "FLEET_PLANES names no plane");
    let directory = tempfile::tempdir().expect("temp dir");
    let repo = directory.path().join("tenant");
    let work = directory.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");

    // The tenant, committed.
    let (files, expected) = tenant(&kinds, rollouts, devices);
    write_files(&repo, &files);
    ringmaster::source::commit::init_and_commit_all(&repo, "Fleet tenant").expect("commit");

    // The simulators, in a child process of their own.
    let mut child = Command::new(std::env::current_exe().expect("this binary"))
        .env("FLEET_ROLE", "simulators")
        .env("FLEET_REPO", &repo)
        .env("FLEET_WORK", &work)
        .env(
            "FLEET_PLANES",
            kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(","),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the simulators' process");
    let mut simulators = Simulators {
        stdin: child.stdin.take().expect("stdin"),
        stdout: BufReader::new(child.stdout.take().expect("stdout")),
        child,
    };
    let simulators_pid = simulators.child.id().to_string();
    let mut planes: BTreeMap<Plane, ConnectorConfig> = BTreeMap::new();
    let mut registered: BTreeMap<SimulatedPlane, (u64, u64)> = BTreeMap::new();
    loop {
        let line = simulators.line();
        if line == "ready" {
            break;
        }
        let parts: Vec<&str> = line.split(' ').collect();
        let ["plane", name, address, secret_file, groups, devices] = parts[..] else {
            panic!("unexpected line from the simulators: {line}");
        };
        let kind = SimulatedPlane::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .expect("a plane");
        let secret = std::fs::read_to_string(secret_file).expect("secret");
        // The configuration that reaches the simulator (its defaults: the
        // plane's documented call budget).
        let config = PlaneSimulator::new(kind, Secret::new(secret.trim_end())).connector_config(
            address.parse().expect("address"),
            Path::new(secret_file),
            &work,
        );
        planes.insert(kind.plane(), config);
        registered.insert(
            kind,
            (
                groups.parse().expect("groups"),
                devices.parse().expect("devices"),
            ),
        );
    }

    // The daemon.
    let keys = ringmaster::evidence::generate_keypair(&directory.path().join("keys"), None, true)
        .expect("signing key");
    let config = DaemonConfig {
        repo: RepoLocation::Local(repo.clone()),
        state_dir: directory.path().join("state"),
        store: None,
        key: keys.secret_key.clone(),
        key_password: None,
        branch: "main".into(),
        evidence_branch: "evidence".into(),
        poll_interval: Duration::from_secs(poll),
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _context = runtime.enter();
    let mut daemon = Daemon::open(config).expect("daemon");
    let (cpu_before, _) = process_figures("self");
    let wall = Instant::now();
    let mut in_steps = Duration::ZERO;
    let mut longest_step = Duration::ZERO;
    let mut first_step = Duration::ZERO;
    let mut figures: BTreeMap<Plane, PlaneFigures> = BTreeMap::new();
    let sent = |daemon: &Daemon, plane: Plane| -> u64 {
        daemon
            .planes()
            .and_then(|planes| planes.connector(plane))
            .and_then(|connector| connector.transport())
            .map_or(0, |transport| transport.budget().window().sent_total)
    };
    let end = start() + ChronoDuration::hours(i64::try_from(hours).unwrap_or(1));
    let step = ChronoDuration::seconds(i64::try_from(poll).unwrap_or(60));
    let mut now = start();
    let mut steps = 0u64;
    let mut reports = 0u64;
    while now < end {
        let hour = (now - start()).num_hours();
        for kind in &kinds {
            let count = sent(&daemon, kind.plane());
            figures
                .entry(kind.plane())
                .or_default()
                .hourly
                .entry(hour)
                .or_insert(count);
        }
        let began = Instant::now();
        let report = runtime.block_on(daemon.step(now)).expect("daemon step");
        let took = began.elapsed();
        if steps == 0 {
            first_step = took;
        }
        in_steps += took;
        longest_step = longest_step.max(took);
        steps += 1;
        let _ = report;
        reports += simulators.check_in(now);
        if steps.is_multiple_of(10) {
            eprintln!(
                "fleet bench: step {steps} at +{} min, {:.1} s in steps so far",
                (now - start()).num_minutes(),
                in_steps.as_secs_f64()
            );
        }
        now += step;
    }
    let elapsed = wall.elapsed();
    let (cpu_after, peak_mib) = process_figures("self");
    let (simulators_cpu, simulators_peak) = process_figures(&simulators_pid);
    let events = daemon
        .store()
        .last_event()
        .expect("events")
        .map_or(0, |event| event.seq);
    let records = daemon
        .store()
        .evidence_head()
        .expect("evidence head")
        .map_or(0, |head| head.sequence);
    let pacing = daemon.gate_pacing();

    println!(
        "fleet bench (daemon): {devices} devices wanted, {rollouts} rollouts over {} planes; {hours} h simulated in {steps} daemon steps of {poll} s (the poll, and the wanted gate-check interval)",
        kinds.len()
    );
    for kind in &kinds {
        let plane = kind.plane();
        let (groups, devices) = registered.get(kind).copied().unwrap_or_default();
        let budget = ringmaster::plan::default_budget(plane).expect("a budget");
        let per_hour = budget.per_hour();
        let total = sent(&daemon, plane);
        println!(
            "{} ({}): {devices} devices in {groups} groups on its simulator (entitlements ask {}); budget {} requests / {} s, {} connections = {per_hour:.0}/h, gate status share {:.0}/h",
            kind.as_str(),
            plane.as_str(),
            expected.get(kind).copied().unwrap_or_default(),
            budget.requests,
            budget.window_seconds.as_secs(),
            budget.concurrency,
            per_hour * Priority::Status.share()
        );
        if let Some(figures) = figures.get(&plane) {
            let marks: Vec<(i64, u64)> = figures.hourly.iter().map(|(h, s)| (*h, *s)).collect();
            for (position, (hour, at_start)) in marks.iter().enumerate() {
                let next = marks.get(position + 1).map_or(total, |(_, sent)| *sent);
                let requests = next - at_start;
                println!(
                    "  hour {hour}: {requests} requests ({:.0} % of the budget's {per_hour:.0})",
                    requests as f64 * 100.0 / per_hour
                );
            }
        }
        if let Some(window) = daemon
            .planes()
            .and_then(|planes| planes.connector(plane))
            .and_then(|connector| connector.transport())
            .map(|transport| (transport.budget().window(), transport.coalesced_total()))
        {
            println!(
                "  budget counters: sent {}, refused {}, throttled {}; reads answered by coalescing {}",
                window.0.sent_total, window.0.refused_total, window.0.throttled_total, window.1
            );
        }
        match pacing.get(plane.as_str()) {
            Some(gate) => {
                let active = gate.active();
                let live = gate.live(ringmaster::plan::plane_name(plane));
                println!(
                    "  gate checks answered: {} ({:.1} requests a check on average); at the end, {active} rollouts asking, {:.0} requests a check of every one: effective gate-check interval {} s (wanted {} s; {} calls/h needed, {} available)",
                    gate.answered(),
                    gate.cost().unwrap_or(0.0),
                    gate.demand(),
                    live.effective_seconds,
                    live.wanted_seconds,
                    live.needed_per_hour,
                    live.available_per_hour
                );
                println!(
                    "  longest wait between two answered checks of one rollout: {} s; longest gate-check delay (with the waits still open at the end): {} s; {:.1} checks per rollout-hour",
                    gate.longest_wait().as_secs(),
                    gate.longest_delay(end - step).as_secs(),
                    gate.answered() as f64 / active.max(1) as f64 / hours as f64
                );
                if let Some(worst) = daemon.snapshot().and_then(|snapshot| {
                    ringmaster::plan::gate_check_every(snapshot, plane, Duration::from_secs(poll))
                }) {
                    println!(
                        "  plan's worst case (every intent in its last ring at once): {}",
                        worst.sentence()
                    );
                }
            }
            None => println!("  no gate check paced on this plane"),
        }
    }
    let daemon_cpu = cpu_after - cpu_before;
    println!(
        "daemon: {:.1} s wall ({:.1} s in steps; first step {:.1} s, longest {:.1} s), {daemon_cpu:.1} s CPU, peak RSS {peak_mib:.0} MiB (this process: the daemon and the bench's bookkeeping)",
        elapsed.as_secs_f64(),
        in_steps.as_secs_f64(),
        first_step.as_secs_f64(),
        longest_step.as_secs_f64()
    );
    let seconds = in_steps.as_secs_f64().max(0.001);
    println!(
        "daemon: {events} events ({:.0}/s of steps), {records} evidence records ({:.0}/s of steps)",
        events as f64 / seconds,
        records as f64 / seconds
    );
    println!(
        "simulators (child process): {simulators_cpu:.1} s CPU, peak RSS {simulators_peak:.0} MiB, {reports} device reports"
    );
    drop(simulators.stdin);
    let _ = simulators.child.wait();
}
