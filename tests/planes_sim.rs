//! The sim plane against the connector contract (`docs/connectors.md`), seen from
//! outside the crate: idempotent publish under retries, races and lost responses;
//! error classes and retry-after; persistence across a reload and a killed
//! process; configuration. The sim's own behaviour (simulated time, success rates,
//! remediations, drift) is tested in `src/planes/sim/tests/`.
//!
//! `contract_publish_is_idempotent` only uses [`ExecutionPlaneConnector`]: it is
//! the part every plane's simulator must pass as well.

use chrono::{DateTime, TimeZone, Utc};
use ringmaster::model::Plane;
use ringmaster::planes::sim::{Fault, SimConfig, SimConnector};
use ringmaster::planes::{
    ArtifactRef, Connector, ConnectorConfig, DeploymentStatus, ErrorClass, ErrorCode,
    ExecutionPlaneConnector, PublishRequest, Remediation, RingStatus,
};
use std::time::Duration;

const CORRELATION: &str = "5f0c6e4e-8c1a-5b7e-9a4f-0d3c2b1a0f9e";
const LAB: &str = "grp-lab";
const CANARY: &str = "grp-canary";
const PILOT: &str = "grp-pilot";
const ROGUE: &str = "grp-rogue";
const MAX_DELAY_MINUTES: i64 = 120;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

fn at(minutes: i64) -> DateTime<Utc> {
    start() + chrono::Duration::minutes(minutes)
}

fn config(seed: u64) -> SimConfig {
    SimConfig {
        plane: Plane::Intune,
        seed,
        install_delay: (Duration::from_secs(10 * 60), Duration::from_secs(120 * 60)),
        default_success_rate: 0.9,
        state_file: None,
    }
}

fn fleet_with(config: SimConfig) -> SimConnector {
    let sim = SimConnector::new(config).expect("sim plane");
    for (group, devices) in [(LAB, 20), (CANARY, 400), (PILOT, 300), (ROGUE, 50)] {
        sim.add_group(group, devices).expect("group");
    }
    sim
}

fn fleet(seed: u64) -> SimConnector {
    fleet_with(config(seed))
}

fn request(ring: &str, groups: &[&str]) -> PublishRequest {
    PublishRequest {
        correlation_id: CORRELATION.into(),
        intent_id: "vpn-client-2.1".into(),
        application_id: "vpn-client".into(),
        application_name: "Contoso VPN Client".into(),
        version: "2.1.0".into(),
        plane: Plane::Intune,
        ring: ring.into(),
        artifact: ArtifactRef {
            id: "vpn-client-2.1.0-win".into(),
            file: "VpnClient-2.1.0.intunewin".into(),
            sha256: format!("sha256:{}", "ab".repeat(32)),
            install: "msiexec /i VpnClient.msi /qn".into(),
            uninstall: "msiexec /x {GUID} /qn".into(),
            detection_type: "msi_product_code".into(),
            detection_value: "{0D3C2B1A-0F9E-4A5B-8C7D-6E5F4A3B2C1D}".into(),
        },
        groups: groups.iter().map(|group| group.to_string()).collect(),
        exclusions: vec!["grp-kiosks".into()],
        expected_devices: 400,
        supersedes_version: Some("2.0.5".into()),
        sites: None,
    }
}

fn canary() -> PublishRequest {
    request("ring-1-canary", &[CANARY])
}

fn ring<'a>(status: &'a DeploymentStatus, ring: &str) -> &'a RingStatus {
    status.rings.get(ring).expect("ring in status")
}

// ---- contract helpers: nothing sim-specific below this line until the tests ----

async fn contract_publish_is_idempotent(
    connector: &impl ExecutionPlaneConnector,
    request: &PublishRequest,
) {
    let first = connector
        .publish(request, at(0))
        .await
        .expect("first publish");
    let replay = connector
        .publish(request, at(1))
        .await
        .expect("replayed publish");
    assert!(first.created, "the first publish creates");
    assert!(!replay.created, "a replay creates nothing");
    assert_eq!(
        first.external_id, replay.external_id,
        "a replay finds the same plane object"
    );
    assert!(
        connector
            .verify_idempotency(&request.correlation_id, at(1))
            .await
            .unwrap()
    );
}

// ---- idempotency ----

#[tokio::test]
async fn publish_twice_makes_one_app_and_one_assignment() {
    let sim = fleet(1);
    contract_publish_is_idempotent(&sim, &canary()).await;
    assert_eq!(sim.publish_calls(), 2);
    assert_eq!(sim.assignment_count(CORRELATION), 1);
}

#[tokio::test]
async fn response_lost_after_apply_is_found_by_the_retry_without_a_second_assignment() {
    let sim = fleet(1);
    sim.inject_fault(Fault::ResponseLostAfterApply).unwrap();
    let lost = sim
        .publish(&canary(), at(0))
        .await
        .expect_err("the answer is lost");
    assert_eq!(lost.class, ErrorClass::Transient);
    assert_eq!(lost.code, ErrorCode::Timeout);
    assert!(
        sim.verify_idempotency(CORRELATION, at(0)).await.unwrap(),
        "it was applied"
    );
    let retry = sim.publish(&canary(), at(1)).await.expect("retry");
    assert!(!retry.created, "the retry finds what the lost call created");
    assert_eq!(
        sim.external_id(CORRELATION).as_deref(),
        Some(retry.external_id.as_str())
    );
    assert_eq!(sim.assignment_count(CORRELATION), 1);
    assert_eq!(sim.publish_calls(), 2);
}

#[tokio::test]
async fn concurrent_publishes_of_one_ring_assign_each_group_once() {
    let sim = fleet(1);
    let request = request("ring-1-canary", &[CANARY, PILOT]);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (sim, request) = (sim.clone(), request.clone());
        tasks.push(tokio::spawn(
            async move { sim.publish(&request, at(0)).await },
        ));
    }
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.unwrap().expect("publish").created);
    }
    assert_eq!(created, 1, "exactly one of the racing calls creates");
    assert_eq!(sim.assignment_count(CORRELATION), 2);
}

#[tokio::test]
async fn a_later_ring_adds_its_groups_to_the_same_app() {
    let sim = fleet(1);
    let first = sim
        .publish(&request("ring-0-lab", &[LAB]), at(0))
        .await
        .unwrap();
    let second = sim.publish(&canary(), at(60)).await.unwrap();
    assert!(second.created, "a new ring's assignment is created");
    assert_eq!(first.external_id, second.external_id);
    assert_eq!(sim.assignment_count(CORRELATION), 2);
    let status = sim.query_status(CORRELATION, at(60)).await.unwrap();
    assert_eq!(ring(&status, "ring-0-lab").targeted, 20);
    assert_eq!(ring(&status, "ring-1-canary").targeted, 400);
    assert_eq!(
        status.observed.assigned_groups,
        vec![CANARY.to_string(), LAB.to_string()]
    );
    assert_eq!(status.observed.assigned_devices, 420);
}

// ---- errors ----

#[tokio::test]
async fn rate_limit_is_transient_and_carries_retry_after() {
    let sim = fleet(1);
    sim.inject_fault(Fault::RateLimited {
        retry_after: Some(Duration::from_millis(2128)),
    })
    .unwrap();
    sim.inject_fault(Fault::RateLimited { retry_after: None })
        .unwrap();
    let with_header = sim.publish(&canary(), at(0)).await.expect_err("429");
    assert_eq!(
        (with_header.class, with_header.code),
        (ErrorClass::Transient, ErrorCode::RateLimit)
    );
    assert_eq!(with_header.retry_after, Some(Duration::from_millis(2128)));
    assert!(with_header.to_string().contains("retry after 2.128s"));
    let without_header = sim
        .publish(&canary(), at(0))
        .await
        .expect_err("429 without Retry-After");
    assert_eq!(without_header.code, ErrorCode::RateLimit);
    assert_eq!(without_header.retry_after, None);
    assert_eq!(
        sim.assignment_count(CORRELATION),
        0,
        "a throttled call applies nothing"
    );
    assert!(sim.publish(&canary(), at(1)).await.unwrap().created);
}

#[tokio::test]
async fn service_unavailable_and_timeout_are_transient_and_apply_nothing() {
    let sim = fleet(1);
    sim.inject_fault(Fault::ServiceUnavailable).unwrap();
    sim.inject_fault(Fault::Timeout).unwrap();
    let unavailable = sim.publish(&canary(), at(0)).await.expect_err("503");
    assert_eq!(
        (unavailable.class, unavailable.code),
        (ErrorClass::Transient, ErrorCode::ServiceUnavailable)
    );
    let timeout = sim.publish(&canary(), at(0)).await.expect_err("timeout");
    assert_eq!(
        (timeout.class, timeout.code),
        (ErrorClass::Transient, ErrorCode::Timeout)
    );
    assert!(!sim.verify_idempotency(CORRELATION, at(0)).await.unwrap());
    assert!(sim.publish(&canary(), at(1)).await.unwrap().created);
}

#[tokio::test]
async fn faults_hit_status_queries_too() {
    let sim = fleet(1);
    sim.publish(&canary(), at(0)).await.unwrap();
    sim.inject_fault(Fault::ServiceUnavailable).unwrap();
    let error = sim.query_status(CORRELATION, at(1)).await.expect_err("503");
    assert_eq!(error.code, ErrorCode::ServiceUnavailable);
    assert!(
        sim.query_status(CORRELATION, at(1)).await.is_ok(),
        "a fault is used once"
    );
}

#[tokio::test]
async fn malformed_publishes_are_permanent() {
    let sim = fleet(1);
    let mut cases: Vec<(&str, PublishRequest, ErrorCode)> = Vec::new();
    cases.push((
        "no groups",
        request("ring-1-canary", &[]),
        ErrorCode::InvalidRequest,
    ));
    cases.push((
        "unknown group",
        request("ring-1-canary", &["grp-nope"]),
        ErrorCode::ResourceNotFound,
    ));
    let mut other_plane = canary();
    other_plane.plane = Plane::Jamf;
    cases.push(("other plane", other_plane, ErrorCode::InvalidRequest));
    let mut bad_hash = canary();
    bad_hash.artifact.sha256 = "md5:abc".into();
    cases.push(("bad hash", bad_hash, ErrorCode::InvalidRequest));
    let mut excluded = canary();
    excluded.exclusions = vec![CANARY.into()];
    cases.push(("group also excluded", excluded, ErrorCode::InvalidRequest));
    for (name, request, code) in cases {
        let error = sim.publish(&request, at(0)).await.expect_err(name);
        assert_eq!(
            (error.class, error.code),
            (ErrorClass::Permanent, code),
            "{name}: {error}"
        );
    }
    assert!(
        !sim.verify_idempotency(CORRELATION, at(0)).await.unwrap(),
        "nothing was created"
    );
}

#[tokio::test]
async fn a_correlation_id_names_one_version() {
    let sim = fleet(1);
    sim.publish(&canary(), at(0)).await.unwrap();
    let mut next_version = canary();
    next_version.version = "2.2.0".into();
    let error = sim
        .publish(&next_version, at(1))
        .await
        .expect_err("another version");
    assert_eq!(
        (error.class, error.code),
        (ErrorClass::Permanent, ErrorCode::InvalidRequest)
    );
}

#[tokio::test]
async fn unknown_correlation_id_is_resource_not_found() {
    let sim = fleet(1);
    let status = sim
        .query_status("missing", at(0))
        .await
        .expect_err("unknown");
    assert_eq!(
        (status.class, status.code),
        (ErrorClass::Permanent, ErrorCode::ResourceNotFound)
    );
    let remediation = sim
        .remediate("missing", &Remediation::Redeploy, at(0))
        .await
        .expect_err("unknown");
    assert_eq!(remediation.code, ErrorCode::ResourceNotFound);
    assert!(!sim.verify_idempotency("missing", at(0)).await.unwrap());
}

#[tokio::test]
async fn a_remediation_whose_answer_is_lost_replays_as_not_applied() {
    let sim = fleet(5);
    sim.publish(&canary(), at(0)).await.unwrap();
    sim.inject_fault(Fault::ResponseLostAfterApply).unwrap();
    let lost = sim
        .remediate(CORRELATION, &Remediation::Uninstall, at(10))
        .await
        .expect_err("lost");
    assert_eq!(lost.code, ErrorCode::Timeout);
    let retry = sim
        .remediate(CORRELATION, &Remediation::Uninstall, at(11))
        .await
        .unwrap();
    assert!(!retry.applied, "{}", retry.detail);
}

// ---- handles, persistence, configuration ----

#[tokio::test]
async fn clones_share_one_fleet() {
    let sim = fleet(1);
    let daemon_handle = sim.clone();
    daemon_handle.publish(&canary(), at(0)).await.unwrap();
    assert_eq!(sim.publish_calls(), 1);
    assert_eq!(sim.assignment_count(CORRELATION), 1);
}

#[tokio::test]
async fn persisted_state_survives_a_reload() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("intune-sim.json");
    let sim = fleet_with(SimConfig {
        state_file: Some(path.clone()),
        ..config(11)
    });
    sim.set_success_rate("vpn-client", "2.1.0", 0.5).unwrap();
    sim.publish(&canary(), at(0)).await.unwrap();
    sim.inject_fault(Fault::ServiceUnavailable).unwrap();
    let before = sim.clone();
    drop(sim);

    let reloaded = SimConnector::load(&path).expect("reload");
    assert_eq!(reloaded.publish_calls(), 1);
    assert_eq!(reloaded.assignment_count(CORRELATION), 1);
    let fault = reloaded
        .query_status(CORRELATION, at(1))
        .await
        .expect_err("the queued fault survived");
    assert_eq!(fault.code, ErrorCode::ServiceUnavailable);
    before
        .query_status(CORRELATION, at(1))
        .await
        .expect_err("same queue in the first handle");
    let expected = before
        .query_status(CORRELATION, at(MAX_DELAY_MINUTES))
        .await
        .unwrap();
    assert_eq!(
        reloaded
            .query_status(CORRELATION, at(MAX_DELAY_MINUTES))
            .await
            .unwrap(),
        expected
    );
    assert!(
        !reloaded.publish(&canary(), at(2)).await.unwrap().created,
        "the reloaded plane knows the deployment"
    );

    let reopened = SimConnector::new(SimConfig {
        state_file: Some(path.clone()),
        ..config(99)
    })
    .unwrap();
    assert_eq!(
        reopened.assignment_count(CORRELATION),
        1,
        "an existing state file wins over the config"
    );
    assert_eq!(reopened.publish_calls(), 2);
}

#[test]
fn a_state_file_of_another_plane_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("sim.json");
    SimConnector::new(SimConfig {
        state_file: Some(path.clone()),
        ..config(1)
    })
    .unwrap();
    let jamf = SimConfig {
        plane: Plane::Jamf,
        state_file: Some(path),
        ..config(1)
    };
    assert!(SimConnector::new(jamf).is_err());
}

#[tokio::test]
async fn connector_config_builds_a_sim_from_tagged_json() {
    let json = serde_json::json!({
        "type": "sim", "plane": "jamf", "seed": 7,
        "install_delay_seconds": [60, 600], "default_success_rate": 0.95
    });
    let config: ConnectorConfig = serde_json::from_value(json).expect("config");
    assert_eq!(config.plane(), Plane::Jamf);
    let connector = config.build().expect("build");
    assert_eq!((connector.kind(), connector.plane()), ("sim", Plane::Jamf));
    let Connector::Sim(sim) = &connector else {
        panic!("a sim configuration builds a sim connector");
    };
    sim.add_group("jamf-smart-group-12", 10).unwrap();
    let mut jamf_request = request("ring-1-canary", &["jamf-smart-group-12"]);
    jamf_request.plane = Plane::Jamf;
    contract_publish_is_idempotent(&connector, &jamf_request).await;
    let status = connector.query_status(CORRELATION, at(10)).await.unwrap();
    assert_eq!(
        ring(&status, "ring-1-canary").installed + ring(&status, "ring-1-canary").failed,
        10,
        "all report within 10 min"
    );

    let unknown_field = serde_json::json!({"type": "sim", "plane": "jamf", "sede": 7});
    assert!(serde_json::from_value::<ConnectorConfig>(unknown_field).is_err());
    let bad_rate = serde_json::json!({"type": "sim", "plane": "jamf", "default_success_rate": 1.5});
    let error = serde_json::from_value::<ConnectorConfig>(bad_rate)
        .unwrap()
        .build()
        .expect_err("rate above 1");
    assert!(
        error.to_string().contains("default_success_rate 1.5"),
        "{error}"
    );
}

/// Set in the child process of the crash test: the state file it publishes into.
const CHILD_STATE_FILE: &str = "RINGMASTER_SIM_CRASH_CHILD_STATE_FILE";
const CHILD_PUBLISHED: &str = "sim-child: published";

/// Runs twice: as the test, which starts this same test binary as a child daemon,
/// waits for it to say it published, kills it (SIGKILL, no shutdown), and reopens
/// the state file; and as that child, which publishes and then waits to be killed.
#[tokio::test]
async fn a_killed_process_leaves_a_fleet_the_restart_finds() {
    if let Some(path) = std::env::var_os(CHILD_STATE_FILE) {
        let sim = fleet_with(SimConfig {
            state_file: Some(path.into()),
            ..config(21)
        });
        sim.publish(&canary(), at(0)).await.expect("child publish");
        println!("{CHILD_PUBLISHED}");
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .expect("wait for the parent");
        return;
    }
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("intune-sim.json");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_process_leaves_a_fleet_the_restart_finds",
            "--nocapture",
        ])
        .env(CHILD_STATE_FILE, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let published = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(CHILD_PUBLISHED));
    child.kill().expect("kill the child");
    child.wait().unwrap();
    assert!(published, "the child never said it published");

    let restarted = SimConnector::load(&path).expect("the state file is whole");
    assert!(
        restarted
            .verify_idempotency(CORRELATION, at(1))
            .await
            .unwrap()
    );
    let replay = restarted.publish(&canary(), at(1)).await.unwrap();
    assert!(
        !replay.created,
        "the restart finds what the killed process created"
    );
    assert_eq!(restarted.assignment_count(CORRELATION), 1);
}
