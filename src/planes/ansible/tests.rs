//! Tests of the Ansible connector with the real `ansible-playbook` on local
//! hosts in a temp dir (2–3 hosts per group, so runs stay short), plus the pure
//! parts (report parsing, reason identifiers, inventory text, config checks).

use super::*;
use crate::planes::ArtifactRef;
use chrono::TimeZone;

const CORRELATION: &str = "9a1b2c3d-4e5f-5a6b-8c7d-0e1f2a3b4c5d";

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

fn inventory(canary_hosts: &[&str]) -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([
        (
            "ring_canary".to_string(),
            canary_hosts.iter().map(|host| host.to_string()).collect(),
        ),
        (
            "ring_pilot".to_string(),
            vec!["pilot-1".to_string(), "pilot-2".to_string()],
        ),
        ("kiosks".to_string(), vec!["kiosk-1".to_string()]),
    ])
}

fn config(work_dir: &std::path::Path, canary_hosts: &[&str]) -> AnsibleConfig {
    AnsibleConfig::new(work_dir, inventory(canary_hosts))
}

fn request(ring: &str, groups: &[&str]) -> PublishRequest {
    PublishRequest {
        correlation_id: CORRELATION.into(),
        intent_id: "agent-1.2".into(),
        application_id: "contoso-agent".into(),
        application_name: "Contoso Agent".into(),
        version: "1.2.3".into(),
        plane: Plane::Ansible,
        ring: ring.into(),
        artifact: ArtifactRef {
            id: "contoso-agent-1.2.3-deb".into(),
            file: "contoso-agent_1.2.3_amd64.deb".into(),
            sha256: format!("sha256:{}", "0f".repeat(32)),
            install: "apt-get install -y ./contoso-agent_1.2.3_amd64.deb".into(),
            uninstall: "apt-get remove -y contoso-agent".into(),
            detection_type: "package".into(),
            detection_value: "contoso-agent".into(),
        },
        groups: groups.iter().map(|group| group.to_string()).collect(),
        exclusions: vec!["kiosks".into()],
        expected_devices: 2,
        supersedes_version: None,
        sites: None,
    }
}

fn installed_file(connector: &AnsibleConnector, host: &str) -> PathBuf {
    connector
        .host_dir(host)
        .join("installed")
        .join("contoso-agent.json")
}

#[tokio::test]
async fn status_maps_installed_failed_and_not_yet_run_hosts() {
    let work_dir = tempfile::tempdir().unwrap();
    let connector = AnsibleConnector::new(&config(work_dir.path(), &["c-1", "c-2"])).unwrap();
    std::fs::create_dir_all(connector.host_dir("c-2")).unwrap();
    std::fs::write(connector.host_dir("c-2").join("fault"), "Disk full!\n").unwrap();
    let published = connector
        .publish(&request("ring-1", &["ring_canary"]), at(0))
        .await
        .expect("publish");
    assert!(published.created);

    // A host joins the group after the run: it has not been run on yet.
    let grown = AnsibleConnector::new(&config(work_dir.path(), &["c-1", "c-2", "c-3"])).unwrap();
    let status = grown.query_status(CORRELATION, at(5)).await.unwrap();
    let ring = &status.rings["ring-1"];
    assert_eq!(
        (ring.targeted, ring.installed, ring.failed, ring.pending),
        (3, 1, 1, 1),
        "{ring:?}"
    );
    assert_eq!(ring.failure_reasons.get("disk_full"), Some(&1), "{ring:?}");
    assert_eq!(ring.first_install_at, Some(at(0)));
    assert_eq!(status.observed.installed_versions.get("1.2.3"), Some(&1));
    assert_eq!(status.observed.version.as_deref(), Some("1.2.3"));
    let recorded = std::fs::read_to_string(installed_file(&connector, "c-1")).unwrap();
    assert!(recorded.contains("\"version\": \"1.2.3\""), "{recorded}");
}

#[tokio::test]
async fn rerun_reads_the_finished_run_instead_of_running_again() {
    let work_dir = tempfile::tempdir().unwrap();
    let config = config(work_dir.path(), &["c-1", "c-2"]);
    let connector = AnsibleConnector::new(&config).unwrap();
    let ring_1 = request("ring-1", &["ring_canary"]);
    connector.publish(&ring_1, at(0)).await.unwrap();
    assert_eq!(connector.runs_started(), 1);
    let folder = work_dir
        .path()
        .join("runs")
        .join(format!("{CORRELATION}--ring-1--install"));
    for file in ["inventory.ini", "install.yml", "result.json", "rc"] {
        assert!(folder.join(file).is_file(), "{file} in the run folder");
    }

    let restarted = AnsibleConnector::new(&config).unwrap();
    let replay = restarted.publish(&ring_1, at(1)).await.unwrap();
    assert!(!replay.created);
    assert_eq!(restarted.runs_started(), 0, "the earlier result was read");

    // A crash before the result was written: the retry runs it.
    std::fs::remove_file(folder.join("result.json")).unwrap();
    let retried = AnsibleConnector::new(&config).unwrap();
    retried.publish(&ring_1, at(2)).await.unwrap();
    assert_eq!(retried.runs_started(), 1);
    assert!(folder.join("result.json").is_file());
}

#[tokio::test]
async fn excluded_hosts_are_left_out_of_the_inventory() {
    let work_dir = tempfile::tempdir().unwrap();
    let connector = AnsibleConnector::new(&config(work_dir.path(), &["c-1", "kiosk-1"])).unwrap();
    connector
        .publish(&request("ring-1", &["ring_canary"]), at(0))
        .await
        .unwrap();
    assert!(installed_file(&connector, "c-1").is_file());
    assert!(!installed_file(&connector, "kiosk-1").exists());
    let status = connector.query_status(CORRELATION, at(1)).await.unwrap();
    assert_eq!(status.rings["ring-1"].targeted, 1);
}

#[tokio::test]
async fn redeploy_repairs_a_host_that_lost_the_app() {
    let work_dir = tempfile::tempdir().unwrap();
    let connector = AnsibleConnector::new(&config(work_dir.path(), &["c-1", "c-2"])).unwrap();
    connector
        .publish(&request("ring-1", &["ring_canary"]), at(0))
        .await
        .unwrap();
    std::fs::remove_file(installed_file(&connector, "c-2")).unwrap();
    let drifted = connector.query_status(CORRELATION, at(1)).await.unwrap();
    let ring = &drifted.rings["ring-1"];
    assert_eq!((ring.installed, ring.pending), (1, 1), "{ring:?}");

    let repaired = connector
        .remediate(CORRELATION, &Remediation::Redeploy, at(2))
        .await
        .unwrap();
    assert!(repaired.applied, "{}", repaired.detail);
    assert!(installed_file(&connector, "c-2").is_file());
    let status = connector.query_status(CORRELATION, at(3)).await.unwrap();
    assert_eq!(status.rings["ring-1"].installed, 2);
    let again = connector
        .remediate(CORRELATION, &Remediation::Redeploy, at(4))
        .await
        .unwrap();
    assert!(!again.applied, "{}", again.detail);
}

#[tokio::test]
async fn uninstall_removes_the_app_from_every_host_once() {
    let work_dir = tempfile::tempdir().unwrap();
    let connector = AnsibleConnector::new(&config(work_dir.path(), &["c-1", "c-2"])).unwrap();
    connector
        .publish(&request("ring-1", &["ring_canary"]), at(0))
        .await
        .unwrap();
    connector
        .publish(&request("ring-2", &["ring_pilot"]), at(10))
        .await
        .unwrap();
    let first = connector
        .remediate(CORRELATION, &Remediation::Uninstall, at(20))
        .await
        .unwrap();
    assert!(first.applied);
    for host in ["c-1", "c-2", "pilot-1", "pilot-2"] {
        assert!(!installed_file(&connector, host).exists(), "{host}");
    }
    let replay = connector
        .remediate(CORRELATION, &Remediation::Uninstall, at(21))
        .await
        .unwrap();
    assert!(!replay.applied);
    let status = connector.query_status(CORRELATION, at(22)).await.unwrap();
    assert!(status.observed.assigned_groups.is_empty());
    assert!(status.observed.installed_versions.is_empty());
}

#[tokio::test]
async fn playbook_dir_overrides_the_shipped_playbooks() {
    let work_dir = tempfile::tempdir().unwrap();
    let playbooks = work_dir.path().join("playbooks");
    std::fs::create_dir_all(&playbooks).unwrap();
    let marked = client::Playbook::Install.file_name().to_string();
    let install = include_str!("playbooks/install.yml").to_string()
        + "\n    - name: Mark the override\n      ansible.builtin.copy:\n        dest: \"{{ ringmaster_host_dir }}/override\"\n        content: \"yes\\n\"\n        mode: \"0644\"\n";
    std::fs::write(playbooks.join(&marked), install).unwrap();
    std::fs::write(
        playbooks.join("uninstall.yml"),
        include_str!("playbooks/uninstall.yml"),
    )
    .unwrap();
    std::fs::write(
        playbooks.join("verify.yml"),
        include_str!("playbooks/verify.yml"),
    )
    .unwrap();
    let mut config = config(work_dir.path(), &["c-1"]);
    config.playbook_dir = Some(playbooks);
    let connector = AnsibleConnector::new(&config).unwrap();
    connector
        .publish(&request("ring-1", &["ring_canary"]), at(0))
        .await
        .unwrap();
    assert!(connector.host_dir("c-1").join("override").is_file());
    assert!(installed_file(&connector, "c-1").is_file());
}

#[tokio::test]
async fn a_missing_program_is_a_permanent_error_naming_the_fix() {
    let work_dir = tempfile::tempdir().unwrap();
    let mut config = config(work_dir.path(), &["c-1"]);
    config.ansible_playbook = work_dir.path().join("no-such-ansible-playbook");
    let connector = AnsibleConnector::new(&config).unwrap();
    let error = connector
        .publish(&request("ring-1", &["ring_canary"]), at(0))
        .await
        .expect_err("no program");
    assert_eq!(error.code, ErrorCode::InvalidRequest, "{error}");
    assert!(error.message.contains("ansible-core"), "{error}");
}

#[test]
fn parse_report_maps_stats_to_outcomes() {
    let document = r#"{"plays": [{"play": {"name": "p", "id": "1"}, "tasks": [
        {"task": {"name": "t", "id": "2"}, "hosts": {
            "b": {"failed": true, "msg": "exit code 1603", "action": "fail"}}}]}],
      "stats": {
        "a": {"ok": 2, "changed": 1, "failures": 0, "unreachable": 0},
        "b": {"ok": 1, "changed": 0, "failures": 1, "unreachable": 0},
        "c": {"ok": 0, "changed": 0, "failures": 0, "unreachable": 1}}}"#;
    let report = parse_report(&format!("[WARNING]: noise\n{document}\n")).unwrap();
    assert_eq!(report.hosts["a"], HostOutcome::Ok { changed: true });
    assert_eq!(
        report.hosts["b"],
        HostOutcome::Failed {
            reason: "exit_code_1603".into()
        }
    );
    assert_eq!(report.hosts["c"], HostOutcome::Unreachable);
    assert!(parse_report("ERROR! the playbook could not be found").is_err());
}

#[test]
fn identifiers_from_failure_messages() {
    fn check(message: &str, expected: &str) {
        assert_eq!(identifier(message), expected, "{message:?}");
    }
    check("Disk full!", "disk_full");
    check("exit code 1603", "exit_code_1603");
    check("", "task_failed");
    check("!!!", "task_failed");
    check("  leading  spaces", "leading_spaces");
}

#[test]
fn config_errors_name_the_fix() {
    let work_dir = tempfile::tempdir().unwrap();
    let empty = AnsibleConfig::new(work_dir.path(), BTreeMap::new());
    assert!(matches!(
        AnsibleConnector::new(&empty),
        Err(AnsibleConfigError::EmptyInventory)
    ));
    let bad_host = AnsibleConfig::new(
        work_dir.path(),
        BTreeMap::from([("g".to_string(), vec!["../etc".to_string()])]),
    );
    let error = AnsibleConnector::new(&bad_host).unwrap_err();
    assert!(error.to_string().contains("../etc"), "{error}");
    let mut missing = config(work_dir.path(), &["c-1"]);
    missing.playbook_dir = Some(work_dir.path().to_path_buf());
    let error = AnsibleConnector::new(&missing).unwrap_err();
    assert!(error.to_string().contains("install.yml"), "{error}");
}

#[test]
fn config_reads_from_tagged_json() {
    let json = r#"{"type": "ansible", "work_dir": "/var/lib/ringmaster/ansible",
        "inventory": {"ring_canary": ["host-1", "host-2"]}}"#;
    let config: crate::planes::ConnectorConfig = serde_json::from_str(json).unwrap();
    assert_eq!(config.plane(), Plane::Ansible);
    let crate::planes::ConnectorConfig::Ansible(ansible) = config else {
        panic!("not ansible");
    };
    assert_eq!(ansible.ansible_playbook, PathBuf::from("ansible-playbook"));
    assert_eq!(ansible.run_timeout_seconds, 600);
}

#[tokio::test]
async fn a_run_past_its_timeout_is_stopped_and_the_retry_completes_it() {
    let work_dir = tempfile::tempdir().unwrap();
    let hanging = work_dir.path().join("hanging");
    std::fs::create_dir_all(&hanging).unwrap();
    let wait_forever = "- name: hang\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: Wait for a file nobody writes\n      ansible.builtin.wait_for:\n        path: /nonexistent/ringmaster-never\n        timeout: 120\n";
    for playbook in ["install.yml", "uninstall.yml", "verify.yml"] {
        std::fs::write(hanging.join(playbook), wait_forever).unwrap();
    }
    let normal = config(work_dir.path(), &["c-1"]);
    let mut stuck = normal.clone();
    stuck.playbook_dir = Some(hanging);
    stuck.run_timeout_seconds = 1;
    let ring_1 = request("ring-1", &["ring_canary"]);
    let error = AnsibleConnector::new(&stuck)
        .unwrap()
        .publish(&ring_1, at(0))
        .await
        .expect_err("stopped");
    assert_eq!(error.code, ErrorCode::Timeout, "{error}");
    assert!(error.is_retryable());

    let connector = AnsibleConnector::new(&normal).unwrap();
    assert!(
        connector
            .verify_idempotency(CORRELATION, at(1))
            .await
            .unwrap()
    );
    let retry = connector.publish(&ring_1, at(2)).await.expect("retry");
    assert!(!retry.created, "the ring was recorded by the stopped call");
    assert_eq!(connector.runs_started(), 1, "the unfinished run ran again");
    assert!(installed_file(&connector, "c-1").is_file());
}
