//! Fleet-scale run of the per-plane call budget (issue 17), on the five
//! HTTP planes, without the daemon (`benches/fleet.rs` runs the daemon):
//! `cargo bench --bench fleet_planes` (release), or in a debug build
//! `cargo test --bench fleet_planes`. What it costs per request is what the
//! connectors and the simulators cost, nothing else. `FLEET_DEVICES` (200,000), `FLEET_ROLLOUTS`
//! (2,000), `FLEET_HOURS` (1), `FLEET_GATE_MINUTES` (1), `FLEET_TICK_SECONDS`
//! (30), `FLEET_APPS_PER_RING` (4) and `FLEET_PLANES` (`intune,jamf,sccm,
//! landscape,awx`) override the defaults.
//!
//! What it drives, on simulated time: for each plane, its HTTP simulator on
//! 127.0.0.1 (`planes::simulators`) and the real connector built from the
//! configuration that reaches it — the shared send loop
//! (`planes::http_send`), the plane's default call budget (rate,
//! connections, priorities, back-off; no queueing, so a refused call is
//! retried on the simulated clock) and the coalesced status reads — with
//! the devices and rollouts spread evenly over the planes. Every rollout
//! publishes its ring (rings of `FLEET_APPS_PER_RING` applications share a
//! group, as several applications ride one ring), the devices report, and
//! then every tick (the daemon's poll) each plane's gate checks are asked
//! through the gate pacing (`planes::budget::pacing`): only the rollouts due
//! at the effective interval, longest-waiting first, all at the tick's
//! `now`, until the budget holds one back. Halfway, 1 % of the rollouts are
//! halted (urgent priority).
//!
//! What it does not drive: the daemon's event loop, store and evidence
//! writer — there are no events or evidence records per second here
//! (`benches/fleet.rs` runs the daemon against the same simulators).
//!
//! Prints per plane: requests per hour against the budget, gate checks
//! answered, the effective gate-check interval, the longest time a rollout
//! waited between two answered gate checks (and the longest past the
//! effective interval), reads answered by coalescing, the longest halt
//! delay; and the process's CPU time and peak RSS.

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use ringmaster::planes::budget::pacing::PlanePacing;
use ringmaster::planes::budget::{self, BudgetConfig, Priority};
use ringmaster::planes::simulators::{PlaneSimulator, SimulatedPlane};
use ringmaster::planes::{
    ArtifactRef, Connector, ConnectorConfig, ErrorCode, ExecutionPlaneConnector, PublishRequest,
    Remediation,
};
use std::collections::BTreeMap;
use std::time::Duration;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 0).unwrap()
}

fn correlation(plane: usize, rollout: u64) -> String {
    format!("00000000-0000-5000-8000-{plane:02}{rollout:010}")
}

/// A group id the plane accepts, for ring `ring`.
fn group_id(kind: SimulatedPlane, ring: u64) -> String {
    match kind {
        SimulatedPlane::Intune => format!("0a1b2c3d-0000-4000-8000-{ring:012}"),
        SimulatedPlane::Jamf => (1_000 + ring).to_string(),
        SimulatedPlane::Sccm => format!("PS1{ring:05X}"),
        SimulatedPlane::Landscape => format!("fleet-ring-{ring}"),
        SimulatedPlane::Awx => format!("fleet_ring_{ring}"),
    }
}

fn artifact(kind: SimulatedPlane, rollout: u64) -> ArtifactRef {
    let sha256 = format!("sha256:{}", "ab".repeat(32));
    let product = format!("{{0D3C2B1A-0F9E-4A5B-8C7D-{rollout:012}}}");
    match kind {
        SimulatedPlane::Intune => ArtifactRef {
            id: format!("app{rollout}-win"),
            file: format!("App{rollout}-1.0.0.intunewin"),
            sha256,
            install: format!("msiexec /i App{rollout}.msi /qn"),
            uninstall: format!("msiexec /x {product} /qn"),
            detection_type: "msi_product_code".into(),
            detection_value: product,
        },
        SimulatedPlane::Sccm => ArtifactRef {
            id: format!("app{rollout}-msi"),
            file: format!("App{rollout}-1.0.0.msi"),
            sha256,
            install: format!("msiexec /i \"App{rollout}-1.0.0.msi\" /qn /norestart"),
            uninstall: format!("msiexec /x {product} /qn"),
            detection_type: "msi_product_code".into(),
            detection_value: product,
        },
        SimulatedPlane::Jamf => ArtifactRef {
            id: format!("app{rollout}-pkg"),
            file: format!("App{rollout}-1.0.0.pkg"),
            sha256,
            install: format!("installer -pkg App{rollout}-1.0.0.pkg -target /"),
            uninstall: format!("/Applications/App{rollout}.app/uninstall.sh"),
            detection_type: "bundle_id".into(),
            detection_value: format!("com.example.app{rollout}"),
        },
        SimulatedPlane::Landscape => ArtifactRef {
            id: format!("app{rollout}-deb"),
            file: format!("app{rollout}_1.0.0_amd64.deb"),
            sha256,
            install: format!("apt-get install -y app{rollout}=1.0.0"),
            uninstall: format!("apt-get remove -y app{rollout}"),
            detection_type: "deb_package".into(),
            detection_value: format!("app{rollout}"),
        },
        SimulatedPlane::Awx => ArtifactRef {
            id: format!("app{rollout}-deb"),
            file: format!("app{rollout}_1.0.0_amd64.deb"),
            sha256,
            install: format!("apt-get install -y ./app{rollout}_1.0.0_amd64.deb"),
            uninstall: format!("apt-get remove -y app{rollout}"),
            detection_type: "package".into(),
            detection_value: format!("app{rollout}"),
        },
    }
}

fn request(
    kind: SimulatedPlane,
    plane_index: usize,
    rollout: u64,
    group: String,
    devices: u32,
) -> PublishRequest {
    PublishRequest {
        correlation_id: correlation(plane_index, rollout),
        intent_id: format!("app{rollout}-1.0"),
        application_id: format!("app{rollout}"),
        application_name: format!("App {rollout}"),
        version: "1.0.0".into(),
        plane: kind.plane(),
        ring: "ring-1".into(),
        artifact: artifact(kind, rollout),
        groups: vec![group],
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
    (peak_kib / 1024.0, (ticks(11) + ticks(12)) / 100.0)
}

/// The connector's budget as the bench runs it: the plane's default, no
/// queueing (a refused call is retried on the simulated clock).
fn with_bench_budget(config: ConnectorConfig) -> ConnectorConfig {
    let unqueued = |budget: BudgetConfig| {
        Some(BudgetConfig {
            max_queue_wait_seconds: Duration::ZERO,
            ..budget
        })
    };
    match config {
        ConnectorConfig::Intune(mut config) => {
            config.budget = unqueued(config.call_budget());
            ConnectorConfig::Intune(config)
        }
        ConnectorConfig::Jamf(mut config) => {
            config.budget = unqueued(config.call_budget());
            ConnectorConfig::Jamf(config)
        }
        ConnectorConfig::Sccm(mut config) => {
            config.budget = unqueued(config.call_budget());
            ConnectorConfig::Sccm(config)
        }
        ConnectorConfig::Landscape(mut config) => {
            config.budget = unqueued(config.call_budget());
            ConnectorConfig::Landscape(config)
        }
        ConnectorConfig::Awx(mut config) => {
            config.budget = unqueued(config.call_budget());
            ConnectorConfig::Awx(config)
        }
        other => other,
    }
}

/// One plane of the fleet.
struct FleetPlane {
    kind: SimulatedPlane,
    simulator: PlaneSimulator,
    connector: Connector,
    budget: BudgetConfig,
    rollouts: Vec<String>,
    pacing: PlanePacing,
    /// Requests sent (the budget's count) at the start of each hour.
    hourly: BTreeMap<i64, u64>,
    checks: u64,
    held_back: u64,
    failures: BTreeMap<String, u64>,
    longest_gap: ChronoDuration,
    longest_halt_delay: ChronoDuration,
    publish_requests: u64,
}

impl FleetPlane {
    fn sent(&self) -> u64 {
        self.connector
            .transport()
            .map_or(0, |transport| transport.budget().window().sent_total)
    }
}

/// Runs `call` until the budget lets it through, stepping the clock by the
/// wait it names; answers the result and when it got through.
async fn until_admitted<T, F, Fut>(
    mut at: DateTime<Utc>,
    mut call: F,
) -> (Result<T, ringmaster::planes::ConnectorError>, DateTime<Utc>)
where
    F: FnMut(DateTime<Utc>) -> Fut,
    Fut: std::future::Future<Output = Result<T, ringmaster::planes::ConnectorError>>,
{
    loop {
        match call(at).await {
            Err(error) if error.code == ErrorCode::RateLimit => {
                let wait = error.retry_after.unwrap_or(Duration::from_secs(1));
                at += ChronoDuration::from_std(wait).expect("wait");
            }
            other => return (other, at),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let devices = env("FLEET_DEVICES", 200_000);
    let rollouts = env("FLEET_ROLLOUTS", 2_000).max(1);
    let hours = env("FLEET_HOURS", 1).max(1);
    let gate_minutes = env("FLEET_GATE_MINUTES", 1).max(1);
    let tick_seconds = env("FLEET_TICK_SECONDS", 30).max(1);
    let apps_per_ring = env("FLEET_APPS_PER_RING", 4).max(1);
    let kinds: Vec<SimulatedPlane> = std::env::var("FLEET_PLANES")
        .unwrap_or_else(|_| "intune,jamf,sccm,landscape,awx".into())
        .split(',')
        .filter_map(|name| {
            SimulatedPlane::ALL
                .into_iter()
                .find(|kind| kind.as_str() == name.trim())
        })
        .collect();
    let plane_count = kinds.len().max(1) as u64;
    let per_plane_rollouts = (rollouts / plane_count).max(1);
    let rings = per_plane_rollouts.div_ceil(apps_per_ring);
    let per_ring = u32::try_from(devices / plane_count / rings).unwrap_or(u32::MAX);
    let wanted = Duration::from_secs(gate_minutes * 60);
    let directory = tempfile::tempdir().expect("temp dir");
    let wall = std::time::Instant::now();

    let mut planes: Vec<FleetPlane> = Vec::new();
    for (index, kind) in kinds.iter().copied().enumerate() {
        let simulator = PlaneSimulator::with_random_secret(kind);
        for ring in 0..rings {
            simulator.add_group(
                &group_id(kind, ring),
                &format!("Fleet ring {ring}"),
                per_ring,
            );
        }
        let address = simulator
            .start("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("simulator");
        let work = directory.path().join(kind.as_str());
        std::fs::create_dir_all(&work).expect("work dir");
        let secret_file = work.join("secret");
        simulator.write_secret(&secret_file).expect("secret");
        let config = with_bench_budget(simulator.connector_config(address, &secret_file, &work));
        let connector = config.build().expect("connector");
        let budget = *connector
            .transport()
            .expect("an HTTP plane")
            .budget()
            .config();
        let pacing = PlanePacing::new(wanted, budget.per_hour() * Priority::Status.share());
        let rollouts = (0..per_plane_rollouts)
            .map(|rollout| correlation(index, rollout))
            .collect();
        planes.push(FleetPlane {
            kind,
            simulator,
            connector,
            budget,
            rollouts,
            pacing,
            hourly: BTreeMap::new(),
            checks: 0,
            held_back: 0,
            failures: BTreeMap::new(),
            longest_gap: ChronoDuration::zero(),
            longest_halt_delay: ChronoDuration::zero(),
            publish_requests: 0,
        });
    }

    // Publish every rollout's ring through the budget (publish priority).
    let mut published_at = start();
    for (index, plane) in planes.iter_mut().enumerate() {
        let mut now = start();
        let before = plane.sent();
        for rollout in 0..per_plane_rollouts {
            let publish = request(
                plane.kind,
                index,
                rollout,
                group_id(plane.kind, rollout / apps_per_ring),
                per_ring,
            );
            let connector = plane.connector.clone();
            let (result, at) = until_admitted(now, |at| {
                let (connector, publish) = (connector.clone(), publish.clone());
                async move {
                    budget::with_priority(Priority::Publish, connector.publish(&publish, at)).await
                }
            })
            .await;
            now = at;
            if let Err(error) = result {
                panic!("{} publish {rollout}: {error}", plane.kind.as_str());
            }
        }
        plane.publish_requests = plane.sent() - before;
        published_at = published_at.max(now);
    }
    let publish_done = published_at;
    for plane in &planes {
        plane.simulator.check_in(publish_done, 0.99);
    }

    // Gate checks, tick by tick, through the pacing.
    let end = publish_done + ChronoDuration::hours(i64::try_from(hours).unwrap_or(1));
    let halfway = publish_done + (end - publish_done) / 2;
    let tick = ChronoDuration::seconds(i64::try_from(tick_seconds).unwrap_or(30));
    let mut halted = false;
    let mut now = publish_done;
    while now < end {
        for plane in &mut planes {
            let hour = (now - publish_done).num_hours();
            let sent = plane.sent();
            plane.hourly.entry(hour).or_insert(sent);
        }
        if !halted && now >= halfway {
            halted = true;
            for (index, plane) in planes.iter_mut().enumerate() {
                for rollout in (0..per_plane_rollouts).step_by(100) {
                    let id = correlation(index, rollout);
                    let connector = plane.connector.clone();
                    let (result, at) = until_admitted(now, |at| {
                        let (connector, id) = (connector.clone(), id.clone());
                        async move {
                            budget::with_priority(
                                Priority::Urgent,
                                connector.remediate(&id, &Remediation::Halt, at),
                            )
                            .await
                        }
                    })
                    .await;
                    if let Err(error) = result {
                        *plane
                            .failures
                            .entry(format!("halt: {}", error.code))
                            .or_default() += 1;
                    }
                    plane.longest_halt_delay = plane.longest_halt_delay.max(at - now);
                    plane.pacing.forget(&id);
                    plane.rollouts.retain(|active| *active != id);
                }
            }
        }
        for plane in &mut planes {
            // The pacing grants this tick's share of the budget to the
            // rollouts waiting longest, at what each one's check costs.
            plane.pacing.begin_step(now);
            let rollouts = plane.rollouts.clone();
            let order: Vec<String> = rollouts
                .into_iter()
                .filter(|id| plane.pacing.due(id, "active", None, now))
                .collect();
            for id in order {
                let before = plane.sent();
                let result =
                    budget::with_priority(Priority::Status, plane.connector.query_status(&id, now))
                        .await;
                let spent = plane.sent() - before;
                match result {
                    Ok(_) => {
                        plane.checks += 1;
                        if let Some(last) = plane.pacing.last_checked(&id) {
                            plane.longest_gap = plane.longest_gap.max(now - last);
                        }
                        plane.pacing.checked(&id, now, spent);
                    }
                    Err(error) if error.code == ErrorCode::RateLimit => {
                        // The budget is spent for this tick: the rest keep
                        // their age and come first at the next.
                        plane.held_back += 1;
                        break;
                    }
                    Err(error) => {
                        *plane
                            .failures
                            .entry(format!("status: {}", error.code))
                            .or_default() += 1;
                    }
                }
            }
        }
        now += tick;
    }

    let elapsed = wall.elapsed();
    let (peak_mib, cpu) = process_figures();
    let requests: u64 = planes.iter().map(FleetPlane::sent).sum();
    println!(
        "fleet bench: {devices} devices, {rollouts} rollouts over {} planes ({per_plane_rollouts} rollouts and {} devices each, rings of {per_ring} devices shared by {apps_per_ring} applications), gate check wanted every {gate_minutes} min, tick {tick_seconds} s, {hours} h simulated after publishing (done at +{} min)",
        planes.len(),
        u64::from(per_ring) * rings,
        (publish_done - start()).num_minutes()
    );
    for plane in &planes {
        let total = plane.sent();
        let per_hour = plane.budget.per_hour();
        println!(
            "{}: budget {} requests / {} s, {} connections = {per_hour:.0}/h (gate status share {:.0}/h)",
            plane.kind.as_str(),
            plane.budget.requests,
            plane.budget.window_seconds.as_secs(),
            plane.budget.concurrency,
            per_hour * Priority::Status.share()
        );
        println!(
            "  publish: {} requests for {per_plane_rollouts} rollouts",
            plane.publish_requests
        );
        let marks: Vec<(i64, u64)> = plane.hourly.iter().map(|(h, s)| (*h, *s)).collect();
        for (position, (hour, at_start)) in marks.iter().enumerate() {
            let next = marks
                .get(position + 1)
                .map_or(total, |(_, requests)| *requests);
            let requests = next - at_start;
            println!(
                "  hour {hour}: {requests} requests ({:.0} % of the budget)",
                requests as f64 * 100.0 / per_hour
            );
        }
        let active = plane.pacing.active();
        let effective = plane.pacing.effective();
        println!(
            "  gate checks answered: {} ({:.1} requests a check on average; {} calls held back by the budget and asked again at a later tick)",
            plane.checks,
            plane.pacing.cost().unwrap_or(0.0),
            plane.held_back
        );
        println!(
            "  effective gate-check interval for {active} rollouts: {} s (wanted {} s); longest wait between two answered checks of one rollout: {} s ({} s past the effective interval)",
            effective.as_secs(),
            wanted.as_secs(),
            plane.longest_gap.num_seconds(),
            (plane.longest_gap.num_seconds() - effective.as_secs() as i64).max(0)
        );
        let window = plane
            .connector
            .transport()
            .map(|transport| (transport.budget().window(), transport.coalesced_total()));
        if let Some((window, coalesced)) = window {
            println!(
                "  reads answered by coalescing: {coalesced}; budget counters: sent {}, refused {}, throttled {}",
                window.sent_total, window.refused_total, window.throttled_total
            );
        }
        println!(
            "  halts: longest delay {} s; failures: {:?}",
            plane.longest_halt_delay.num_seconds(),
            plane.failures
        );
    }
    println!(
        "process: {:.1} s wall, {cpu:.1} s CPU, peak RSS {peak_mib:.0} MiB (simulators and connectors in one process; no daemon, store or evidence: events and evidence records per second are not measured here); {requests} requests, {:.0} µs CPU a request (connector and simulator together)",
        elapsed.as_secs_f64(),
        cpu * 1e6 / requests.max(1) as f64
    );
}
