//! The conformance suite against the Ansible connector driving the real
//! `ansible-playbook` on `ansible_connection=local` hosts whose installed
//! software is a state directory in a temp dir. No simulator: the plane is real.
//!
//! Left out, because they describe an HTTP plane a local process is not:
//! - the fault checks (`response_lost_*`, `rate_limit_*`,
//!   `server_error_storm_*`, `slow_response_*`, `permanent_errors_are_not_retried`,
//!   `expired_token_is_refreshed_once`, `credentials_never_appear_*`,
//!   `uninstall_is_idempotent_even_when_its_answer_is_lost`): there is no API to
//!   throttle, no answer to lose and no credential; a run that dies half-way is
//!   completed by the rerun finding (or not finding) its `result.json`, tested in
//!   `src/planes/ansible/tests.rs`.
//! - `listing_follows_every_page`: there are no pages; the record of a
//!   deployment is one file named by its correlation id.
//! - `status_is_all_pending_right_after_publish`, `status_maps_device_reports_into_counts`,
//!   `reverted_version_shows_in_installed_versions`: a publish runs the
//!   playbook to the end, so hosts report during the publish, not later when a
//!   harness says so. The mapping of ok / failed / unreachable / not run is
//!   tested with real runs (a faulty host, an unreachable host) in the unit tests.
//! - `drift_shows_in_observed_and_redeploy_repairs_it`: assignments are
//!   ringmaster's own inventory, not a plane object someone can change behind
//!   its back; drift on Ansible is a host that lost the app, which
//!   `verify.yml --check --diff` finds and redeploy repairs (unit tests).

mod conformance;

use chrono::{DateTime, Utc};
use conformance::{
    DeviceResults, Drift, Harness, HarnessOptions, PlaneFault, TestGroup, TestGroups,
};
use ringmaster::model::Plane;
use ringmaster::planes::ansible::{AnsibleConfig, AnsibleConnector};
use ringmaster::planes::{ArtifactRef, Connector, ConnectorConfig, ExecutionPlaneConnector};
use std::collections::BTreeMap;

struct AnsibleHarness {
    config: AnsibleConfig,
    connector: Connector,
    counter: AnsibleConnector,
    _work_dir: tempfile::TempDir,
}

fn group(id: &str, devices: u32) -> TestGroup {
    TestGroup {
        id: id.into(),
        devices,
    }
}

fn groups() -> TestGroups {
    TestGroups {
        canary: group("ring_canary", 3),
        pilot: group("ring_pilot", 2),
        broad: group("ring_broad", 2),
        extra: group("extra", 2),
        excluded: group("kiosks", 1),
        unknown: "ring_unknown".into(),
    }
}

fn build(config: &AnsibleConfig) -> Connector {
    ConnectorConfig::Ansible(config.clone())
        .build()
        .expect("ansible connector")
}

impl Harness for AnsibleHarness {
    const PLANE: Plane = Plane::Ansible;
    const DEVICES_REPORT_ON_DEMAND: bool = false;

    async fn start(_options: HarnessOptions) -> AnsibleHarness {
        let work_dir = tempfile::tempdir().expect("temp dir");
        let registered = groups();
        let mut inventory = BTreeMap::new();
        for group in [
            &registered.canary,
            &registered.pilot,
            &registered.broad,
            &registered.extra,
            &registered.excluded,
        ] {
            let hosts = (1..=group.devices)
                .map(|index| format!("{}-{index}", group.id.replace('_', "-")))
                .collect();
            inventory.insert(group.id.clone(), hosts);
        }
        let config = AnsibleConfig::new(work_dir.path(), inventory);
        let connector = build(&config);
        let counter = AnsibleConnector::new(&config).expect("ansible connector");
        AnsibleHarness {
            config,
            connector,
            counter,
            _work_dir: work_dir,
        }
    }

    fn connector(&self) -> Connector {
        self.connector.clone()
    }

    fn restarted_connector(&self) -> Connector {
        build(&self.config)
    }

    fn groups(&self) -> TestGroups {
        groups()
    }

    fn artifact(&self) -> ArtifactRef {
        ArtifactRef {
            id: "vpn-client-2.1.0-deb".into(),
            file: "vpn-client_2.1.0_amd64.deb".into(),
            sha256: format!("sha256:{}", "ab".repeat(32)),
            install: "apt-get install -y ./vpn-client_2.1.0_amd64.deb".into(),
            uninstall: "apt-get remove -y vpn-client".into(),
            detection_type: "package".into(),
            detection_value: "vpn-client".into(),
        }
    }

    async fn secrets(&self) -> Vec<String> {
        Vec::new()
    }

    async fn inject(&self, fault: PlaneFault) {
        panic!("a local ansible-playbook has no API fault {fault:?}")
    }

    async fn revoke_credentials(&self) {
        panic!("a local ansible-playbook has no credentials")
    }

    async fn app_count(&self, correlation_id: &str) -> usize {
        let known = self
            .counter
            .verify_idempotency(correlation_id, conformance::at(0))
            .await
            .expect("verify");
        usize::from(known)
    }

    async fn assignment_count(&self, correlation_id: &str) -> usize {
        match self
            .counter
            .query_status(correlation_id, conformance::at(0))
            .await
        {
            Ok(status) => status.observed.assigned_groups.len(),
            Err(_) => 0,
        }
    }

    async fn api_requests(&self) -> u64 {
        self.counter.runs_started()
    }

    async fn token_requests(&self) -> u64 {
        0
    }

    async fn report_devices(
        &self,
        _correlation_id: &str,
        _results: DeviceResults,
        _now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        panic!("hosts report during the ansible run, not when a harness says so")
    }

    async fn add_unrelated_apps(&self, _count: usize) {
        panic!("the ansible plane has no app list to page through")
    }

    async fn drift(&self, _correlation_id: &str, drift: &Drift, _now: DateTime<Utc>) {
        panic!("assignments are ringmaster's own inventory; {drift:?} cannot happen behind it")
    }
}

conformance::conformance_suite!(
    ansible,
    AnsibleHarness,
    [
        publish_twice_creates_one_app_and_one_assignment,
        concurrent_publishes_create_one_app_and_one_assignment_per_group,
        a_later_ring_adds_its_groups_to_the_same_app,
        invalid_publishes_are_permanent,
        verify_idempotency_answers_from_the_plane,
        ring_pin_is_idempotent_and_refuses_later_rings,
        halt_stops_installs_on_the_plane,
        redeploy_is_idempotent,
        rollback_is_idempotent,
        rollback_strategy_decides_what_the_plane_does,
    ]
);
