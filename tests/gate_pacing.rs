//! Gate pacing is said in advance (issue 17): when a plane's call budget
//! cannot serve a gate check of every rollout at every poll, `plan`, the
//! daemon's status page and its metric all carry the plane's effective
//! gate-check interval ("Intune status every 1 min, not 30 s: … calls/h
//! needed, … available").
//!
//! The tenant is `ringmaster::synthetic`'s (intents on Intune and
//! Configuration Manager whose largest ring has 6,000 devices): with 40
//! intents, 30 of them on Intune, a gate check of every Intune rollout
//! every 30 s needs 30 × (60 pages + 6) × 120 = 237,600 calls an hour; the
//! default Intune budget gives gate status 75 % of 1,000 requests / 20 s,
//! 135,000 an hour, so the checks come every minute. With 4 intents the
//! budget serves the schedule and nothing is slowed.

use ringmaster::daemon::Daemon;
use ringmaster::daemon::config::{DaemonConfig, RepoLocation, SiemSink};
use ringmaster::daemon::planes::SimSettings;
use ringmaster::model::Plane;
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
            "gate checks: Intune status every 1 min, not 30 s: 237,600 calls/h needed, 135,000 available"
        ),
        "{out}"
    );

    let quiet = tempfile::tempdir().expect("temp dir");
    tenant(quiet.path(), 4);
    let out = plan(quiet.path());
    assert!(!out.contains("gate checks:"), "{out}");
}

#[tokio::test]
async fn the_daemon_shows_the_effective_interval_on_its_status_page_and_metric() {
    let directory = tempfile::tempdir().expect("temp dir");
    let repo = directory.path().join("tenant");
    tenant(&repo, 40);
    let keys = ringmaster::evidence::generate_keypair(&directory.path().join("keys"), None, true)
        .expect("key");
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
        planes: SimSettings::default().configs(&Plane::ALL),
        config_file: None,
        evidence_object_store: None,
        incidents: Default::default(),
        api: None,
        notifications: Vec::new(),
        git_credentials: Default::default(),
    };
    let mut daemon = Daemon::open(config).expect("daemon");
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-30T08:00:00Z")
        .expect("time")
        .to_utc();
    daemon.step(now).await.expect("a step");

    // The metric: wanted 30 s, effective 60 s on Intune; Configuration
    // Manager (10 intents × 66 calls × 120 = 79,200 needed, 27,000
    // available) every 90 s.
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
        "ringmaster_plane_gate_check_interval_seconds{interval=\"effective\",plane=\"intune\"} 60",
        "ringmaster_plane_gate_check_interval_seconds{interval=\"effective\",plane=\"sccm\"} 90",
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
    assert!(
        html.contains(
            "<li class=\"wait\" data-plane=\"Intune\">Intune status every 1 min, not 30 s: 237,600 calls/h needed, 135,000 available</li>"
        ),
        "{html}"
    );
    assert!(
        html.contains("data-plane=\"Configuration Manager\">Configuration Manager status every 90 s, not 30 s: 79,200 calls/h needed, 27,000 available</li>"),
        "{html}"
    );
}
