//! The conformance suite against the AWX / Automation Controller connector and
//! its simulator (a real HTTP server on 127.0.0.1:0), with jobs that finish
//! only when the harness says so and every list in pages of two.
//!
//! On AWX a deployment is the jobs ringmaster launched for it: the "app" is
//! the first ring's publish job, an "assignment" is a ring group a publish
//! job installed and no later uninstall or pin job removed. The harness
//! counts both from the simulator's jobs. The token comes from a file; an
//! expired token is rotated there (as a sidecar would, one token issued by
//! the controller) and the connector picks it up with one retry.
//!
//! Left out:
//! - `drift_shows_in_observed_and_redeploy_repairs_it`: AWX holds no
//!   assignment someone could delete or widen behind ringmaster's back; the
//!   deployment is ringmaster's own launches, immutable job records. Drift
//!   on AWX is a host that lost the app, which the verify template (check
//!   mode) finds and redeploy repairs (unit tests in
//!   `src/planes/ansible/awx/tests.rs`).
//! - `reverted_version_shows_in_installed_versions`: AWX does not report
//!   what a host runs, only what jobs did to it; a version reverted outside
//!   ringmaster's jobs is invisible until a verify job reports the host
//!   changed (then it leaves `installed_versions`, tested in the unit tests).

mod conformance;

use chrono::{DateTime, Utc};
use conformance::contract::Recorder;
use conformance::{
    DeviceResults, Drift, Harness, HarnessOptions, LostAnswer, PlaneFault, TestGroup, TestGroups,
};
use ringmaster::model::Plane;
use ringmaster::planes::ansible::awx::simulator::{
    AskOnLaunch, AwxSimulator, HostResult, JobProgress, JobView, LostRequest, SimulatorFault,
};
use ringmaster::planes::ansible::awx::{AwxConfig, CorrelationLookup};
use ringmaster::planes::{ArtifactRef, Connector, ConnectorConfig, apispec};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

const INSTALL: u64 = 11;
const UNINSTALL: u64 = 12;
const VERIFY: u64 = 13;

struct AwxHarness {
    simulator: AwxSimulator,
    /// Every request and answer, checked against AWX's API when dropped.
    _recorder: Recorder,
    config: AwxConfig,
    connector: Connector,
    token_file: PathBuf,
    _directory: tempfile::TempDir,
}

fn group(id: &str, devices: u32) -> TestGroup {
    TestGroup {
        id: id.into(),
        devices,
    }
}

fn groups() -> TestGroups {
    TestGroups {
        canary: group("fab_eng_ring1_canary", 5),
        pilot: group("fab_eng_ring2_pilot", 4),
        broad: group("fab_eng_ring2_broad", 3),
        extra: group("fab_eng_extra", 2),
        excluded: group("fab_eng_kiosks", 1),
        unknown: "fab_eng_ring9_unknown".into(),
    }
}

fn text<'a>(job: &'a JobView, name: &str) -> &'a str {
    job.extra_vars
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn list(job: &JobView, name: &str) -> Vec<String> {
    job.extra_vars
        .get(name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

impl AwxHarness {
    fn jobs_of(&self, correlation_id: &str) -> Vec<JobView> {
        self.simulator
            .jobs()
            .into_iter()
            .filter(|job| text(job, "ringmaster_correlation_id") == correlation_id)
            .collect()
    }
}

impl Harness for AwxHarness {
    const PLANE: Plane = Plane::Ansible;
    /// A status query reads the ring's inventory group hosts and the host
    /// summaries of the deployment's finished job, each page by page.
    const STATUS_DEVICE_LISTS: u64 = 2;

    async fn start(options: HarnessOptions) -> AwxHarness {
        let token = format!("awx-token-{}", uuid::Uuid::new_v4().simple());
        let simulator = AwxSimulator::new(&token, options.page_size);
        simulator.set_job_progress(JobProgress::OnControl);
        for template in [INSTALL, UNINSTALL, VERIFY] {
            simulator.add_template(template, AskOnLaunch::all());
        }
        let registered = groups();
        for group in [
            &registered.canary,
            &registered.pilot,
            &registered.broad,
            &registered.extra,
            &registered.excluded,
        ] {
            let hosts: Vec<String> = (1..=group.devices)
                .map(|index| format!("{}-{index:02}", group.id.replace('_', "-")))
                .collect();
            let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
            simulator.add_group(&group.id, &hosts);
        }
        let upstream = simulator.start().await.expect("simulator");
        let recorder = Recorder::start(upstream, vec![apispec::awx()], &[]).await;
        let address = recorder.address();
        let directory = tempfile::tempdir().expect("temp dir");
        let token_file = directory.path().join("awx-token");
        std::fs::write(&token_file, &token).expect("token file");
        let mut config = AwxConfig::new(
            &format!("http://{address}"),
            token_file.clone(),
            simulator.inventory_id(),
        );
        config.install_template_id = INSTALL;
        config.uninstall_template_id = UNINSTALL;
        config.verify_template_id = VERIFY;
        config.correlation_lookup = CorrelationLookup::Scan;
        config.page_size = options.page_size;
        config.request_timeout = Duration::from_millis(500);
        let connector = ConnectorConfig::Awx(config.clone())
            .build()
            .expect("awx connector");
        AwxHarness {
            simulator,
            _recorder: recorder,
            config,
            connector,
            token_file,
            _directory: directory,
        }
    }

    fn connector(&self) -> Connector {
        self.connector.clone()
    }

    fn restarted_connector(&self) -> Connector {
        ConnectorConfig::Awx(self.config.clone())
            .build()
            .expect("awx connector")
    }

    fn budgeted_connector(&self, budget: ringmaster::planes::budget::BudgetConfig) -> Connector {
        let mut config = self.config.clone();
        config.budget = Some(budget);
        ConnectorConfig::Awx(config).build().expect("awx connector")
    }

    fn groups(&self) -> TestGroups {
        groups()
    }

    fn artifact(&self) -> ArtifactRef {
        ArtifactRef {
            id: "vpn-client-2.1.0-deb".into(),
            file: "vpn-client_2.1.0_amd64.deb".into(),
            sha256: format!("sha256:{}", "cd".repeat(32)),
            install: "apt-get install -y ./vpn-client_2.1.0_amd64.deb".into(),
            uninstall: "apt-get remove -y vpn-client".into(),
            detection_type: "package".into(),
            detection_value: "vpn-client".into(),
        }
    }

    async fn secrets(&self) -> Vec<String> {
        self.simulator.credentials()
    }

    async fn inject(&self, fault: PlaneFault) {
        let simulator_fault = match fault {
            PlaneFault::RateLimited { retry_after } => SimulatorFault::Throttle { retry_after },
            PlaneFault::ServerErrors { status, count } => {
                SimulatorFault::ServerErrors { status, count }
            }
            PlaneFault::SlowResponse => SimulatorFault::Slow,
            // A launch is both the app and the assignment on AWX.
            PlaneFault::ResponseLostAfterApply {
                on: LostAnswer::AppCreation | LostAnswer::AssignmentChange,
            } => SimulatorFault::LoseAnswer(LostRequest::Launch),
            PlaneFault::Rejected { status } => SimulatorFault::Reject { status },
            PlaneFault::TokenExpired => {
                self.simulator.expire_tokens();
                let fresh = self.simulator.issue_token();
                std::fs::write(&self.token_file, fresh).expect("rotated token");
                return;
            }
        };
        self.simulator.inject(simulator_fault);
    }

    async fn revoke_credentials(&self) {
        self.simulator.revoke_credentials();
    }

    async fn app_count(&self, correlation_id: &str) -> usize {
        let publishes: Vec<JobView> = self
            .jobs_of(correlation_id)
            .into_iter()
            .filter(|job| text(job, "ringmaster_action") == "publish")
            .collect();
        let Some(first) = publishes.first() else {
            return 0;
        };
        let ring = text(first, "ringmaster_ring");
        publishes
            .iter()
            .filter(|job| text(job, "ringmaster_ring") == ring)
            .count()
    }

    async fn assignment_count(&self, correlation_id: &str) -> usize {
        // (publish job, group) pairs no later uninstall-template job removed
        // and no later halt record withdrew (a halt cancels what has not
        // run: AWX then holds nothing that installs).
        let mut assigned: Vec<(u64, String)> = Vec::new();
        for job in self.jobs_of(correlation_id) {
            if text(&job, "ringmaster_action") == "halt" {
                assigned.clear();
            } else if job.template == INSTALL && text(&job, "ringmaster_action") == "publish" {
                for group in list(&job, "ringmaster_groups") {
                    assigned.push((job.id, group));
                }
            } else if job.template == UNINSTALL {
                let removed: Vec<&str> = job
                    .limit
                    .split(':')
                    .filter(|term| !term.starts_with('!'))
                    .collect();
                assigned.retain(|(_, group)| !removed.contains(&group.as_str()));
            }
        }
        assigned.len()
    }

    async fn api_requests(&self) -> u64 {
        self.simulator.api_requests()
    }

    async fn token_requests(&self) -> u64 {
        self.simulator.token_requests()
    }

    async fn report_devices(
        &self,
        correlation_id: &str,
        results: DeviceResults,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let jobs: Vec<JobView> = self
            .jobs_of(correlation_id)
            .into_iter()
            .filter(|job| job.template == INSTALL)
            .collect();
        let mut hosts: Vec<String> = jobs.iter().flat_map(|job| job.hosts.clone()).collect();
        hosts.sort();
        hosts.dedup();
        let installed = results.installed as usize;
        let failed = results.failed as usize;
        let outcomes: BTreeMap<String, HostResult> = hosts
            .into_iter()
            .enumerate()
            .filter(|(index, _)| *index < installed + failed)
            .map(|(index, host)| {
                let result = if index < installed {
                    HostResult::Ok
                } else {
                    HostResult::Failed
                };
                (host, result)
            })
            .collect();
        for job in &jobs {
            self.simulator.finish_job(job.id, now, &outcomes);
        }
        now
    }

    async fn add_unrelated_apps(&self, count: usize) {
        self.simulator.add_unrelated_jobs(count);
    }

    async fn add_fleet_group(&self, devices: u32) -> TestGroup {
        let hosts: Vec<String> = (1..=devices)
            .map(|index| format!("fleet-{index:05}"))
            .collect();
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        self.simulator.add_group("fleet", &hosts);
        group("fleet", devices)
    }

    async fn drift(&self, _correlation_id: &str, drift: &Drift, _now: DateTime<Utc>) {
        panic!("AWX holds ringmaster's launches as immutable jobs; {drift:?} cannot be made there")
    }
}

conformance::conformance_suite!(
    awx,
    AwxHarness,
    [
        publish_twice_creates_one_app_and_one_assignment,
        concurrent_publishes_create_one_app_and_one_assignment_per_group,
        a_later_ring_adds_its_groups_to_the_same_app,
        response_lost_after_assignment_is_found_by_the_retry,
        response_lost_after_app_creation_is_found_by_the_retry,
        rate_limit_with_retry_after_is_transient_and_honoured,
        rate_limit_without_retry_after_has_none,
        server_error_storm_backs_off_then_succeeds,
        slow_response_is_a_timeout_and_the_retry_completes,
        permanent_errors_are_not_retried,
        invalid_publishes_are_permanent,
        verify_idempotency_answers_from_the_plane,
        status_is_all_pending_right_after_publish,
        status_maps_device_reports_into_counts,
        listing_follows_every_page,
        ring_pin_is_idempotent_and_refuses_later_rings,
        halt_stops_installs_on_the_plane,
        redeploy_is_idempotent,
        rollback_is_idempotent,
        rollback_strategy_decides_what_the_plane_does,
        uninstall_is_idempotent_even_when_its_answer_is_lost,
        expired_token_is_refreshed_once,
        credentials_never_appear_in_errors_or_logs,
    ]
);

// Cost and call budget (issue 17, `checks::scale`).
conformance::conformance_suite!(
    awx_budget,
    AwxHarness,
    [
        status_query_costs_pages_not_devices,
        a_429_storm_slows_down_then_recovers_and_no_call_is_over_budget,
        a_halt_gets_through_when_status_calls_have_spent_their_share,
        status_queries_of_one_step_are_coalesced,
    ]
);
