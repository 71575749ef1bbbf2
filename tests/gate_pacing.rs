//! Gate pacing (issue 17): the daemon paces gate checks from what its
//! active rollouts cost now (the rings they are in), and `plan` says in
//! advance when the budget could not serve the worst case — every intent
//! in its last ring at once ("Intune status every 2 min, not 30 s: …
//! calls/h needed, … available"). The status page and the metric carry
//! both: the effective interval now, and the worst case.
//!
//! The tenant is `ringmaster::synthetic`'s (intents on Intune and
//! Configuration Manager whose rings have 8, 40, 200, 1,500 and 6,000
//! devices): with 40 intents, 30 of them on Intune, a check of every Intune
//! rollout in its last ring (7,748 devices: 78 pages + 6) every 30 s needs
//! 30 × 84 × 120 = 302,400 calls an hour; the default Intune budget gives
//! gate status 75 % of 1,000 requests / 20 s, and a step's checks are one
//! burst, so 750 a burst, 120 bursts an hour: 90,000 — every 2 min in the
//! worst case. In their first ring (8 devices, 7 calls) the same rollouts
//! need 25,200 an hour: every 30 s, as scheduled. With 4 intents the
//! budget serves even the worst case and `plan` says nothing.

use ringmaster::daemon::Daemon;
use ringmaster::daemon::config::{DaemonConfig, RepoLocation, SiemSink};
use ringmaster::daemon::planes::SimSettings;
use ringmaster::model::Plane;
use ringmaster::planes::simulators::{PlaneSimulator, SimulatedPlane};
use std::path::Path;
use std::process::Command;

fn tenant(dir: &Path, intents: usize) {
    ringmaster::synthetic::write(dir, intents).expect("synthetic tenant");
    ringmaster::source::commit::init_and_commit_all(dir, "synthetic tenant").expect("commit");
}

/// An Intune intent of the synthetic tenant.
const INTUNE_INTENT: &str = "synthetic-app-00000-finance";

fn plan(repo: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .arg("plan")
        .arg(repo)
        .arg(INTUNE_INTENT)
        .output()
        .expect("run ringmaster plan");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "plan failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn plan_says_when_the_budget_cannot_serve_the_gate_checks() {
    let busy = tempfile::tempdir().expect("temp dir");
    tenant(busy.path(), 40);
    let out = plan(busy.path());
    assert!(
        out.contains(
            "gate checks, worst case (every intent of this revision on the plane rolling out at once, each in its last ring; default call budget): Intune status every 2 min, not 30 s: 302,400 calls/h needed, 90,000 available"
        ),
        "{out}"
    );

    let quiet = tempfile::tempdir().expect("temp dir");
    tenant(quiet.path(), 4);
    let out = plan(quiet.path());
    assert!(!out.contains("gate checks"), "{out}");
}

/// The daemon against the Intune HTTP simulator (its default call budget)
/// for 30 Intune rollouts in their first ring: every rollout is checked at
/// every step (30 s), though the worst case `plan` says is every 2 min —
/// before issue 17's fix the daemon paced from that worst case, and each
/// rollout waited 2 min. The metric and the status page say both figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_paces_from_the_rings_rollouts_are_in_and_shows_it_beside_the_worst_case() {
    let directory = tempfile::tempdir().expect("temp dir");
    let repo = directory.path().join("tenant");
    tenant(&repo, 40);
    let keys = ringmaster::evidence::generate_keypair(&directory.path().join("keys"), None, true)
        .expect("key");

    // The Intune simulator, with the tenant's groups registered.
    let repository = ringmaster::source::GovernedRepo::open(&repo).expect("repository");
    let head = repository.resolve("HEAD").expect("HEAD");
    let (snapshot, _) = ringmaster::model::load(&repository.entries_at(head).expect("entries"));
    let simulator = PlaneSimulator::with_random_secret(SimulatedPlane::Intune);
    simulator.register(snapshot.entitlements.values().map(|rule| &rule.value));
    let address = simulator
        .start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the Intune simulator");
    let secret = directory.path().join("intune.secret");
    simulator.write_secret(&secret).expect("secret");
    let mut planes = SimSettings::default().configs(&Plane::ALL);
    planes.insert(
        Plane::Intune,
        simulator.connector_config(address, &secret, directory.path()),
    );

    let config = DaemonConfig {
        repo: RepoLocation::Local(repo.clone()),
        state_dir: directory.path().join("state"),
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
    let mut daemon = Daemon::open(config).expect("daemon");
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-30T08:00:00Z")
        .expect("time")
        .to_utc();
    let mut now = start;
    let intune_budget = |daemon: &Daemon| {
        daemon
            .planes()
            .and_then(|planes| planes.connector(Plane::Intune))
            .and_then(|connector| connector.transport())
            .expect("Intune's HTTP connector")
            .budget()
            .window()
    };
    let mut refused = Vec::new();
    for _ in 0..5 {
        daemon.step(now).await.expect("a step");
        refused.push(intune_budget(&daemon).refused_total);
        simulator.check_in(now, 1.0);
        now += chrono::Duration::seconds(30);
    }
    let now = now - chrono::Duration::seconds(30);

    let pacing = daemon.gate_pacing();
    let intune = pacing.get("intune").expect("Intune's pacing");
    assert_eq!(intune.active(), 30, "every Intune rollout asks");
    assert!(
        intune.answered() >= 30 * 3,
        "checked at every step once soaking: {} answers",
        intune.answered()
    );
    assert_eq!(
        intune.longest_delay(now),
        std::time::Duration::from_secs(30),
        "no rollout waited longer than a step"
    );
    assert_eq!(intune.effective(), std::time::Duration::from_secs(30));
    // The gate checks (from the second step) were never refused by the
    // budget (the first step's publishes are its own burst).
    assert!(
        refused.windows(2).all(|pair| pair[0] == pair[1]),
        "refused by the budget after the first step: {refused:?}"
    );

    // The metric: wanted 30 s; effective 30 s on Intune now; in the worst
    // case every 2 min on Intune and on Configuration Manager (10 intents ×
    // 84 calls × 120 = 100,800 needed, 27,000 available).
    let mut buffer = Vec::new();
    prometheus::Encoder::encode(
        &prometheus::TextEncoder::new(),
        &ringmaster::metrics::runtime::gather(),
        &mut buffer,
    )
    .expect("metrics text");
    let metrics = String::from_utf8(buffer).expect("UTF-8");
    for line in [
        "ringmaster_plane_gate_check_interval_seconds{interval=\"wanted\",plane=\"intune\"} 30",
        "ringmaster_plane_gate_check_interval_seconds{interval=\"effective\",plane=\"intune\"} 30",
        "ringmaster_plane_gate_check_interval_seconds{interval=\"worst_case\",plane=\"intune\"} 120",
        "ringmaster_plane_gate_check_interval_seconds{interval=\"worst_case\",plane=\"sccm\"} 120",
    ] {
        assert!(
            metrics.lines().any(|found| found == line),
            "no {line} in\n{metrics}"
        );
    }

    // The status page, rendered from what the daemon's store and last step hold.
    let store = ringmaster::store::Store::open_existing(
        &directory.path().join("state").join("ringmaster.db"),
    )
    .expect("the daemon's store");
    let state = ringmaster::api::status_page::StatusPageState {
        store: std::sync::Mutex::new(store),
        evidence: None,
        clock: std::sync::Arc::new(move || now),
    };
    let view = ringmaster::api::status_page::StatusView::read(&state, 30).expect("view");
    let html = ringmaster::api::status_page::render(&view);
    let needed = (intune.demand().ceil() as u64) * 120;
    let expected = format!(
        "<li class=\"ok\" data-plane=\"Intune\"><span class=\"now\">now, 30 rollouts checking: Intune status every 30 s as scheduled: {} calls/h needed, 90,000 available</span><br><span class=\"worst-case\">if every intent reaches its last ring: Intune status every 2 min, not 30 s: 302,400 calls/h needed, 90,000 available</span></li>",
        thousands(needed)
    );
    assert!(html.contains(&expected), "no {expected} in {html}");
    assert!(
        html.contains("<span class=\"worst-case\">if every intent reaches its last ring: Configuration Manager status every 2 min, not 30 s: 100,800 calls/h needed, 27,000 available</span>"),
        "{html}"
    );
}

fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
