//! The conformance suite against the Configuration Manager connector and its
//! AdminService simulator (a real HTTP server on 127.0.0.1:0).
//!
//! Left out: `reverted_version_shows_in_installed_versions`. Configuration
//! Manager reports a deployment's compliance per device (`EnforcementState`),
//! not the version a device runs; that lives in hardware inventory, which the
//! reference does not cover, so a reverted device shows only as no longer
//! installed.

mod conformance;

use chrono::{DateTime, Utc};
use conformance::{
    DeviceResults, Drift, Harness, HarnessOptions, LostAnswer, PlaneFault, TestGroup, TestGroups,
};
use ringmaster::model::Plane;
use ringmaster::planes::sccm::simulator::{
    LostRequest, Paging, SccmSimulator, SimulatorFault, SimulatorOptions,
};
use ringmaster::planes::sccm::{SccmAuth, SccmConfig};
use ringmaster::planes::{ArtifactRef, Connector, ConnectorConfig, Secret};
use std::time::Duration;

const TENANT: &str = "8f3c2a1b-4d5e-4f60-9a7b-1c2d3e4f5a6b";
const CLIENT: &str = "5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";

struct SccmHarness {
    simulator: SccmSimulator,
    config: SccmConfig,
    connector: Connector,
    _secret_directory: tempfile::TempDir,
}

fn group(id: &str, devices: u32) -> TestGroup {
    TestGroup {
        id: id.into(),
        devices,
    }
}

fn groups() -> TestGroups {
    TestGroups {
        canary: group("PS1000C1", 5),
        pilot: group("PS1000B1", 4),
        broad: group("PS1000B2", 3),
        extra: group("PS1000E1", 2),
        excluded: group("PS1000E8", 1),
        unknown: "PS1000FF".into(),
    }
}

impl Harness for SccmHarness {
    const PLANE: Plane = Plane::Sccm;
    /// A status query reads the collection's members
    /// (`SMS_FullCollectionMembership`) and the deployment's asset details
    /// (`SMS_AppDeploymentAssetDetails`), each page by page.
    const STATUS_DEVICE_LISTS: u64 = 2;
    const STATUS_OUTLIVES_ASSIGNMENTS: bool = false;

    async fn start(options: HarnessOptions) -> SccmHarness {
        let secret = format!("Zx7~sccm-secret-{}", uuid::Uuid::new_v4().simple());
        let mut simulator_options =
            SimulatorOptions::new("PS1", TENANT, CLIENT, Secret::new(secret.clone()));
        simulator_options.page_size = options.page_size;
        simulator_options.paging = Paging::NextLink;
        let simulator = SccmSimulator::new(simulator_options);
        let registered = groups();
        for (group, name) in [
            (&registered.canary, "Ring Canary"),
            (&registered.pilot, "Ring Pilot"),
            (&registered.broad, "Ring Broad"),
            (&registered.extra, "Extra"),
            (&registered.excluded, "Kiosks"),
        ] {
            simulator.add_collection(&group.id, name, group.devices);
        }
        let address = simulator.start().await.expect("simulator");
        let directory = tempfile::tempdir().expect("temp dir");
        let secret_file = directory.path().join("sccm-secret");
        std::fs::write(&secret_file, &secret).expect("secret file");
        let auth = SccmAuth::EntraClientCredentials {
            token_url: format!("http://{address}"),
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            client_secret_env: None,
            client_secret_file: Some(secret_file),
            scope: "api://cmg-server-app/.default".into(),
        };
        let mut config = SccmConfig::new(
            &format!("http://{address}/AdminService"),
            auth,
            "\\\\fs01\\packages",
        );
        config.page_size = options.page_size;
        config.request_timeout = Duration::from_millis(1000);
        let connector = ConnectorConfig::Sccm(config.clone())
            .build()
            .expect("sccm connector");
        SccmHarness {
            simulator,
            config,
            connector,
            _secret_directory: directory,
        }
    }

    fn connector(&self) -> Connector {
        self.connector.clone()
    }

    fn restarted_connector(&self) -> Connector {
        ConnectorConfig::Sccm(self.config.clone())
            .build()
            .expect("sccm connector")
    }

    fn budgeted_connector(&self, budget: ringmaster::planes::budget::BudgetConfig) -> Connector {
        let mut config = self.config.clone();
        config.budget = Some(budget);
        ConnectorConfig::Sccm(config)
            .build()
            .expect("sccm connector")
    }

    fn groups(&self) -> TestGroups {
        groups()
    }

    fn artifact(&self) -> ArtifactRef {
        ArtifactRef {
            id: "vpn-client-2.1.0-win-msi".into(),
            file: "VpnClient-2.1.0.msi".into(),
            sha256: format!("sha256:{}", "ef".repeat(32)),
            install: "msiexec /i \"VpnClient-2.1.0.msi\" /qn /norestart".into(),
            uninstall: "msiexec /x {0D3C2B1A-0F9E-4A5B-8C7D-6E5F4A3B2C1D} /qn".into(),
            detection_type: "msi_product_code".into(),
            detection_value: "{0D3C2B1A-0F9E-4A5B-8C7D-6E5F4A3B2C1D}".into(),
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
            PlaneFault::ResponseLostAfterApply { on } => SimulatorFault::LoseAnswer(match on {
                LostAnswer::AppCreation => LostRequest::ApplicationCreation,
                LostAnswer::AssignmentChange => LostRequest::AssignmentCreation,
            }),
            PlaneFault::Rejected { status } => SimulatorFault::Reject { status },
            PlaneFault::TokenExpired => {
                self.simulator.expire_tokens();
                return;
            }
        };
        self.simulator.inject(simulator_fault);
    }

    async fn revoke_credentials(&self) {
        self.simulator.revoke_credentials();
    }

    async fn app_count(&self, correlation_id: &str) -> usize {
        self.simulator.application_ids(correlation_id).len()
    }

    async fn assignment_count(&self, correlation_id: &str) -> usize {
        self.simulator.install_assignment_count(correlation_id)
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
        self.simulator
            .report(correlation_id, results.installed, results.failed, now);
        now
    }

    async fn add_unrelated_apps(&self, count: usize) {
        self.simulator.add_unrelated_apps(count);
    }

    async fn add_fleet_group(&self, devices: u32) -> TestGroup {
        self.simulator.add_collection("PS1000F1", "Fleet", devices);
        group("PS1000F1", devices)
    }

    async fn drift(&self, correlation_id: &str, drift: &Drift, _now: DateTime<Utc>) {
        match drift {
            Drift::AssignmentMissing { group } => {
                assert!(self.simulator.remove_deployments(correlation_id, group) > 0);
            }
            Drift::ScopeWidened { extra_group } => {
                self.simulator.add_deployment(correlation_id, extra_group);
            }
            Drift::VersionReverted { .. } => {
                panic!("Configuration Manager reports compliance, not the version a device runs")
            }
        }
    }
}

conformance::conformance_suite!(
    sccm,
    SccmHarness,
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
        drift_shows_in_observed_and_redeploy_repairs_it,
        expired_token_is_refreshed_once,
        credentials_never_appear_in_errors_or_logs,
    ]
);

// Cost and call budget (issue 17, `checks::scale`).
conformance::conformance_suite!(
    sccm_budget,
    SccmHarness,
    [
        status_query_costs_pages_not_devices,
        a_429_storm_slows_down_then_recovers_and_no_call_is_over_budget,
        a_halt_gets_through_when_status_calls_have_spent_their_share,
        status_queries_of_one_step_are_coalesced,
    ]
);
