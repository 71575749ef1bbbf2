//! The connector against the simulator: the server-side correlation filter,
//! redeploy through the verify template, the token file, configuration.

use super::super::simulator::{AskOnLaunch, AwxSimulator, HostResult, JobProgress};
use super::super::{AwxConfig, AwxConnector, CorrelationLookup};
use crate::model::Plane;
use crate::planes::{
    ArtifactRef, ConnectorConfig, ErrorCode, ExecutionPlaneConnector, PublishRequest, Remediation,
};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

const TOKEN: &str = "awx-token-dGVzdCB0b2tlbiBvbmx5";
const CORRELATION: &str = "5f0c6e4e-8c1a-5b7e-9a4f-0d3c2b1a0f9e";

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

struct Plane1 {
    simulator: AwxSimulator,
    config: AwxConfig,
    connector: AwxConnector,
    _directory: tempfile::TempDir,
}

async fn plane(lookup: CorrelationLookup) -> Plane1 {
    let simulator = AwxSimulator::new(TOKEN, 2);
    simulator.set_job_progress(JobProgress::OnControl);
    for template in [21, 22, 23] {
        simulator.add_template(template, AskOnLaunch::all());
    }
    simulator.add_group("fab_eng_ring1_canary", &["c-1", "c-2", "c-3"]);
    simulator.add_group("fab_eng_kiosks", &["k-1"]);
    let address = simulator.start().await.expect("simulator");
    let directory = tempfile::tempdir().expect("temp dir");
    let token_file = directory.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token");
    let mut config = AwxConfig::new(&format!("http://{address}"), token_file, 1);
    config.install_template_id = 21;
    config.uninstall_template_id = 22;
    config.verify_template_id = 23;
    config.correlation_lookup = lookup;
    config.page_size = 2;
    config.request_timeout = Duration::from_millis(500);
    let connector = AwxConnector::new(&config).expect("connector");
    Plane1 {
        simulator,
        config,
        connector,
        _directory: directory,
    }
}

fn request(correlation_id: &str) -> PublishRequest {
    PublishRequest {
        correlation_id: correlation_id.into(),
        intent_id: "vpn-client-2.1".into(),
        application_id: "vpn-client".into(),
        application_name: "Contoso VPN Client".into(),
        version: "2.1.0".into(),
        plane: Plane::Ansible,
        ring: "ring-1".into(),
        artifact: ArtifactRef {
            id: "vpn-client-2.1.0-deb".into(),
            file: "vpn-client_2.1.0_amd64.deb".into(),
            sha256: format!("sha256:{}", "ab".repeat(32)),
            install: "apt-get install -y ./vpn-client.deb".into(),
            uninstall: "apt-get remove -y vpn-client".into(),
            detection_type: "package".into(),
            detection_value: "vpn-client".into(),
        },
        groups: vec!["fab_eng_ring1_canary".into()],
        exclusions: vec!["fab_eng_kiosks".into()],
        expected_devices: 3,
        supersedes_version: None,
        sites: None,
    }
}

#[tokio::test]
async fn the_lookup_finds_the_job_and_never_a_longer_correlation_id_without_filtering_on_extra_vars()
 {
    let plane = plane(CorrelationLookup::Scan).await;
    let longer = format!("{CORRELATION}-2");
    let other = plane
        .connector
        .publish(&request(&longer), at(0))
        .await
        .expect("the longer id");
    let first = plane
        .connector
        .publish(&request(CORRELATION), at(1))
        .await
        .expect("publish");
    assert!(first.created && other.created);
    assert_ne!(first.external_id, other.external_id);
    let replay = plane
        .connector
        .publish(&request(CORRELATION), at(2))
        .await
        .expect("replay");
    assert!(!replay.created);
    assert_eq!(replay.external_id, first.external_id);
    assert_eq!(plane.simulator.launches(), 2);
    let job = plane.simulator.jobs().pop().expect("job");
    assert_eq!(job.limit, "fab_eng_ring1_canary:!fab_eng_kiosks");
    assert_eq!(job.hosts, ["c-1", "c-2", "c-3"]);
    assert_eq!(job.extra_vars["ringmaster_version"], "2.1.0");
}

#[tokio::test]
async fn the_simulator_refuses_a_filter_on_extra_vars_as_awx_does() {
    let plane = plane(CorrelationLookup::Scan).await;
    let url = format!(
        "{}/api/v2/jobs/?job_template__in=21,22,23&extra_vars__icontains={CORRELATION}",
        plane.config.base_url
    );
    let answer = reqwest::Client::new()
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 403);
    let body: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(body["detail"], "Filtering on extra_vars is not allowed.");
}

#[tokio::test]
async fn redeploy_repairs_failed_hosts_then_finds_drift_with_the_verify_template() {
    let plane = plane(CorrelationLookup::Scan).await;
    let connector = &plane.connector;
    connector
        .publish(&request(CORRELATION), at(0))
        .await
        .expect("publish");
    plane.simulator.fail_host("c-2");
    assert_eq!(plane.simulator.check_in(at(10), 1.0), 3);
    let status = connector
        .query_status(CORRELATION, at(11))
        .await
        .expect("status");
    let ring = &status.rings["ring-1"];
    assert_eq!((ring.installed, ring.failed), (2, 1), "{ring:?}");
    assert_eq!(ring.failure_reasons.get("task_failed"), Some(&1));

    let redeploy = |minutes| connector.remediate(CORRELATION, &Remediation::Redeploy, at(minutes));
    let repair = redeploy(12).await.expect("redeploy");
    assert!(repair.applied, "{}", repair.detail);
    let job = plane.simulator.jobs().pop().expect("repair job");
    assert_eq!((job.template, job.limit.as_str()), (21, "c-2"));
    assert!(
        !redeploy(13).await.expect("replay").applied,
        "the repair runs"
    );

    plane.simulator.finish_job(
        job.id,
        at(20),
        &BTreeMap::from([("c-2".to_string(), HostResult::Ok)]),
    );
    let verify = redeploy(21).await.expect("verify");
    assert!(!verify.applied, "{}", verify.detail);
    let job = plane.simulator.jobs().pop().expect("verify job");
    assert_eq!((job.template, job.job_type.as_str()), (23, "check"));
    assert!(!redeploy(22).await.expect("replay").applied);
    assert_eq!(plane.simulator.launches(), 3, "one verify job");

    plane.simulator.drift_host("c-3");
    plane.simulator.check_in(at(30), 1.0);
    let status = connector
        .query_status(CORRELATION, at(31))
        .await
        .expect("status");
    assert_eq!(status.observed.installed_versions.get("2.1.0"), Some(&2));
    assert_eq!(status.rings["ring-1"].pending, 1, "{status:?}");
    let repair = redeploy(32).await.expect("redeploy the drifted host");
    assert!(repair.applied, "{}", repair.detail);
    assert_eq!(plane.simulator.jobs().pop().expect("job").limit, "c-3");
}

#[tokio::test]
async fn a_rotated_token_file_is_read_once_after_a_401() {
    let plane = plane(CorrelationLookup::Scan).await;
    plane.simulator.expire_tokens();
    let error = plane
        .connector
        .verify_idempotency(CORRELATION, at(0))
        .await
        .expect_err("expired");
    assert_eq!(error.code, ErrorCode::InvalidCredentials, "{error}");
    assert!(error.message.contains("token_file"), "{error}");
    let fresh = plane.simulator.issue_token();
    let path = plane.config.token_file.clone().expect("token file");
    std::fs::write(&path, &fresh).expect("rotate");
    let before = plane.simulator.api_requests();
    assert!(
        !plane
            .connector
            .verify_idempotency(CORRELATION, at(1))
            .await
            .expect("the rotated token")
    );
    assert_eq!(
        plane.simulator.api_requests() - before,
        2,
        "one 401, one retry"
    );
    let debug = format!("{:?}", plane.connector);
    assert!(!debug.contains(TOKEN) && !debug.contains(&fresh), "{debug}");
}

#[tokio::test]
async fn a_template_that_ignores_the_limit_is_an_error_naming_it() {
    let plane = plane(CorrelationLookup::Scan).await;
    plane.simulator.add_template(
        21,
        AskOnLaunch {
            variables: true,
            ..AskOnLaunch::default()
        },
    );
    let error = plane
        .connector
        .publish(&request(CORRELATION), at(0))
        .await
        .expect_err("limit ignored");
    assert_eq!(error.code, ErrorCode::InvalidRequest, "{error}");
    assert!(
        error.message.contains("limit") && error.message.contains("ask_"),
        "{error}"
    );
}

#[test]
fn configuration_errors_name_the_field_and_the_fix() {
    let directory = tempfile::tempdir().expect("temp dir");
    let token_file = directory.path().join("token");
    std::fs::write(&token_file, "awx-token-value").expect("token");
    let base = || {
        let mut config = AwxConfig::new("https://controller.example.com", token_file.clone(), 3);
        config.install_template_id = 11;
        config.uninstall_template_id = 12;
        config.verify_template_id = 13;
        config
    };
    AwxConnector::new(&base()).expect("the valid configuration");
    let check = |change: &dyn Fn(&mut AwxConfig), expected: &str| {
        let mut config = base();
        change(&mut config);
        let error = AwxConnector::new(&config).expect_err(expected).to_string();
        assert!(
            error.contains(expected),
            "{error:?} should contain {expected:?}"
        );
    };
    check(
        &|config| config.base_url = "http://controller.example.com".into(),
        "plain http",
    );
    check(
        &|config| config.base_url = "controller".into(),
        "is not an http(s) URL",
    );
    check(
        &|config| config.inventory_id = 0,
        "inventory_id must be above zero",
    );
    check(
        &|config| config.verify_template_id = 11,
        "three different templates",
    );
    check(
        &|config| config.page_size = 0,
        "page_size must be above zero",
    );
    check(
        &|config| config.token_env = Some("RINGMASTER_TEST_UNSET_AWX_TOKEN".into()),
        "exactly one of token_env and token_file",
    );
    check(
        &|config| {
            config.token_file = None;
            config.token_env = Some("RINGMASTER_TEST_UNSET_AWX_TOKEN".into());
        },
        "RINGMASTER_TEST_UNSET_AWX_TOKEN (token_env) is not set",
    );
    check(
        &|config| config.token_file = Some("/nonexistent/awx".into()),
        "cannot read token_file",
    );
}

#[test]
fn the_tagged_yaml_form_builds_an_awx_connector() {
    let directory = tempfile::tempdir().expect("temp dir");
    let token_file = directory.path().join("token");
    std::fs::write(&token_file, "awx-token-value").expect("token");
    let yaml = format!(
        "type: awx\nbase_url: https://controller.example.com\ntoken_file: {}\ninventory_id: 3\n\
         install_template_id: 11\nuninstall_template_id: 12\nverify_template_id: 13\n\
         correlation_lookup: scan\nrequest_timeout_seconds: 10\n",
        token_file.display()
    );
    let config: ConnectorConfig = serde_yaml::from_str(&yaml).expect("yaml");
    assert_eq!(config.plane(), Plane::Ansible);
    let connector = config.build().expect("connector");
    assert_eq!(
        (connector.kind(), connector.plane()),
        ("awx", Plane::Ansible)
    );
    assert!(!format!("{connector:?}").contains("awx-token-value"));
    let unknown = yaml.replace("inventory_id", "inventory");
    assert!(serde_yaml::from_str::<ConnectorConfig>(&unknown).is_err());
}

#[test]
fn check_in_fails_a_deterministic_share_of_hosts() {
    let run = || {
        let simulator = AwxSimulator::new(TOKEN, 2);
        simulator.set_job_progress(JobProgress::OnControl);
        let hosts: Vec<String> = (0..200).map(|index| format!("h-{index:03}")).collect();
        let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
        simulator.add_group("fleet", &names);
        simulator.add_template(1, AskOnLaunch::all());
        simulator
    };
    let (first, second) = (run(), run());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for simulator in [&first, &second] {
        runtime.block_on(async {
            let address = simulator.start().await.expect("simulator");
            let client = super::super::AwxClient::new(
                &format!("http://{address}"),
                crate::planes::Secret::new(TOKEN),
                Duration::from_secs(5),
            )
            .expect("client");
            let mut launch = super::launch_request();
            launch.limit = "fleet".into();
            client.launch(1, &launch).await.expect("launch");
        });
    }
    assert_eq!(first.check_in(at(5), 0.8), 200);
    assert_eq!(second.check_in(at(5), 0.8), 200);
    assert_eq!(first.check_in(at(6), 0.8), 0, "nothing left running");
    let failed = |simulator: &AwxSimulator| simulator.jobs()[0].status.clone();
    assert_eq!(failed(&first), "failed");
    assert_eq!(first.jobs(), second.jobs(), "the same draws");
}
