//! The plane simulators as a user meets them: `ringmaster simulate <plane>`
//! serving a plane's API and printing the daemon config that reaches it; a
//! daemon config's `planes:` section (validated at start, clear errors); and
//! `ringmaster demo --planes simulators`, the whole story over HTTP plus the
//! real `ansible-playbook`.

mod support;

use chrono::Utc;
use ringmaster::model::Plane;
use ringmaster::planes::{
    ArtifactRef, Connector, ConnectorConfig, ExecutionPlaneConnector as _, PublishRequest,
};
use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{TestRepo, ringmaster, stderr, stdout};

/// A `ringmaster simulate` child process and what its banner said.
struct Simulate {
    child: Child,
    banner: String,
    config: ConnectorConfig,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Simulate {
    /// Starts the simulator and reads its banner up to "Ctrl-C stops".
    fn start(plane: &str, secret_file: &Path, check_in_seconds: u32) -> Simulate {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
            .args([
                "simulate",
                plane,
                "--listen",
                "127.0.0.1:0",
                "--secret-file",
                secret_file.to_str().expect("utf-8 path"),
                "--check-in-seconds",
                &check_in_seconds.to_string(),
                "--success-rate",
                "1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ringmaster simulate runs");
        let out = child.stdout.take().expect("stdout");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let mut banner = String::new();
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no complete banner from simulate {plane}: {banner}"));
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Ctrl-C stops") {
                break;
            }
        }
        let yaml: String = banner
            .lines()
            .filter_map(|line| line.strip_prefix("    "))
            .collect::<Vec<_>>()
            .join("\n");
        #[derive(serde::Deserialize)]
        struct Entry {
            planes: BTreeMap<Plane, ConnectorConfig>,
        }
        let entry: Entry = serde_yaml::from_str(&yaml)
            .unwrap_or_else(|error| panic!("printed config does not parse: {error}\n{yaml}"));
        let config = entry.planes.into_values().next().expect("one plane");
        Simulate {
            child,
            banner,
            config,
            lines,
        }
    }

    /// SIGTERM, then the exit status and the rest of stdout.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = self.child.wait().expect("wait");
        // The reader thread may still hold lines the child wrote before it
        // exited: read until the pipe closes (the thread ends and drops its
        // sender), not only what has arrived so far.
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(30)) {
            rest.push(line);
        }
        (status, rest.join("\n"))
    }
}

fn sample_request(plane: Plane, groups: &[&str], artifact: ArtifactRef) -> PublishRequest {
    PublishRequest {
        correlation_id: "6a1e3c2b-9f4d-5e8a-b7c6-d5e4f3a2b1c0".into(),
        intent_id: "simulate-check".into(),
        application_id: "7zip".into(),
        application_name: "7-Zip".into(),
        version: "25.1.0".into(),
        plane,
        ring: "ring-0-lab".into(),
        artifact,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        exclusions: Vec::new(),
        expected_devices: 8,
        supersedes_version: None,
        sites: None,
    }
}

#[tokio::test]
async fn simulate_serves_every_plane_and_prints_a_config_that_reaches_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    for plane in ["intune", "jamf", "sccm", "landscape", "awx"] {
        let secret_file = dir.path().join(format!("{plane}.secret"));
        let simulate = Simulate::start(plane, &secret_file, 0);
        assert!(
            simulate
                .banner
                .contains("simulator listening on http://127.0.0.1:"),
            "{}",
            simulate.banner
        );
        // The sample's entitlements gave it groups.
        assert!(
            !simulate.banner.contains("groups: 0 "),
            "{}",
            simulate.banner
        );
        let secret = std::fs::read_to_string(&secret_file).expect("secret file written");
        assert!(secret.len() >= 32);
        assert!(
            !simulate.banner.contains(secret.trim()),
            "the secret is printed"
        );
        let connector: Connector = simulate.config.build().expect("the printed config builds");
        assert_eq!(connector.kind(), plane);
        // An authenticated round trip: the plane answers that it holds nothing
        // under an unknown correlation id.
        let held = connector
            .verify_idempotency("0f0e0d0c-0b0a-5908-8706-050403020100", Utc::now())
            .await
            .unwrap_or_else(|error| panic!("{plane}: {error}"));
        assert!(!held, "{plane}");
        let (status, rest) = simulate.stop();
        assert!(status.success(), "{plane}: {status:?}");
        assert!(rest.contains("simulator stopped"), "{plane}: {rest}");
    }
}

#[tokio::test]
async fn simulated_devices_check_in_on_the_wall_clock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let simulate = Simulate::start("sccm", &dir.path().join("sccm.secret"), 1);
    let connector = simulate.config.build().expect("config builds");
    let artifact = ArtifactRef {
        id: "7zip-25.1.0-msi".into(),
        file: "7z2501-x64.msi".into(),
        sha256: format!("sha256:{}", "ab".repeat(32)),
        install: "msiexec /i 7z2501-x64.msi /qn".into(),
        uninstall: "msiexec /x {23170F69-40C1-2702-2501-000001000000} /qn".into(),
        detection_type: "msi_product_code".into(),
        detection_value: "{23170F69-40C1-2702-2501-000001000000}".into(),
    };
    // FAB0001A is the sample's Lab collection for Engineering (8 devices).
    let request = sample_request(Plane::Sccm, &["FAB0001A"], artifact);
    let published = connector
        .publish(&request, Utc::now())
        .await
        .expect("publish");
    assert!(published.created);
    let mut installed = 0;
    for _ in 0..100 {
        let status = connector
            .query_status(&request.correlation_id, Utc::now())
            .await
            .expect("status");
        let ring = &status.rings["ring-0-lab"];
        assert_eq!(ring.targeted, 8);
        installed = ring.installed;
        if installed == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(installed, 8, "devices never reported");
    let (status, rest) = simulate.stop();
    assert!(status.success());
    assert!(rest.contains("device report(s)"), "{rest}");
}

fn serve_once(repo: &TestRepo, config: &Path) -> std::process::Output {
    let keys = tempfile::tempdir().expect("keys");
    let output = ringmaster(
        &["keygen", "--out", keys.path().to_str().expect("utf-8")],
        keys.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let state = tempfile::tempdir().expect("state");
    ringmaster(
        &[
            "serve",
            "--repo",
            repo.path.to_str().expect("utf-8"),
            "--state",
            state.path().to_str().expect("utf-8"),
            "--key",
            keys.path().join("ringmaster.key").to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
            "--once",
        ],
        &repo.path,
    )
}

#[test]
fn a_plane_configured_with_another_planes_connector_is_refused_by_name() {
    let repo = TestRepo::sample();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("daemon.yaml");
    std::fs::write(
        &config,
        "planes:\n  jamf:\n    type: sim\n    plane: intune\n",
    )
    .expect("write");
    let output = serve_once(&repo, &config);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(message.contains("planes.jamf"), "{message}");
    assert!(message.contains("drives plane intune"), "{message}");
}

#[test]
fn a_bad_planes_section_names_the_file_and_line() {
    let repo = TestRepo::sample();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("daemon.yaml");
    std::fs::write(
        &config,
        "poll_seconds: 30\nplanes:\n  intune:\n    type: intune\n    tenant_id: t\n    client_id: c\n    colour: blue\n",
    )
    .expect("write");
    let output = serve_once(&repo, &config);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("daemon.yaml"), "{message}");
    assert!(message.contains("line"), "{message}");
}

#[test]
fn a_connector_that_cannot_be_built_stops_the_daemon_at_start_naming_the_plane() {
    let repo = TestRepo::sample();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("daemon.yaml");
    let missing = dir.path().join("no-such-secret");
    std::fs::write(
        &config,
        format!(
            "planes:\n  sccm:\n    type: sccm\n    base_url: http://127.0.0.1:9/AdminService\n    content_location: '\\\\fs01\\packages'\n    auth:\n      type: entra_client_credentials\n      tenant_id: 8f3c2a1b-4d5e-4f60-9a7b-1c2d3e4f5a6b\n      client_id: 5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f\n      client_secret_file: {}\n      scope: api://cmg/.default\n",
            missing.display()
        ),
    )
    .expect("write");
    let output = serve_once(&repo, &config);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(message.contains("plane sccm"), "{message}");
    assert!(message.contains("no-such-secret"), "{message}");
}

#[test]
fn demo_through_the_plane_simulators_completes_the_story() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = ringmaster(
        &[
            "demo",
            "--planes",
            "simulators",
            "--json",
            "--keep",
            dir.path().join("demo").to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", stderr(&output)));
    let checks = report["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 7);
    for check in checks {
        assert_eq!(check["passed"], true, "{check}");
    }
    assert!(output.status.success());
    // The planes were the simulators: each connector's secret is in a file,
    // and the Landscape journal recorded the activities it started.
    for plane in ["intune", "jamf", "sccm", "landscape"] {
        assert!(
            dir.path()
                .join(format!("demo/secrets/{plane}.secret"))
                .is_file(),
            "{plane}"
        );
    }
    let journal =
        rusqlite::Connection::open(dir.path().join("demo/state/landscape-journal.sqlite"))
            .expect("journal");
    let tables: i64 = journal
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |row| row.get(0),
        )
        .expect("tables");
    assert!(tables > 0);
}
