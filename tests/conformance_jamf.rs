//! The conformance suite against the Jamf Pro connector and its simulator (a
//! real HTTP server on 127.0.0.1:0 speaking the Jamf Pro API's JSON and the
//! Classic API's XML).
//!
//! Every check of the suite applies to Jamf Pro and runs here; none is left
//! out. "App" is the package record (its `notes` carry the correlation id);
//! an "assignment" is one computer group in the scope of an enabled install
//! policy of the deployment. A lost answer on the app is the package create;
//! on an assignment change, the policy create (the last write of a publish,
//! and of an uninstall).

mod conformance;

use chrono::{DateTime, Utc};
use conformance::contract::Recorder;
use conformance::{
    DeviceResults, Drift, Harness, HarnessOptions, LostAnswer, PlaneFault, TestGroup, TestGroups,
};
use ringmaster::model::Plane;
use ringmaster::planes::jamf::simulator::{
    JamfSimulator, LostRequest, SimulatorFault, SimulatorOptions,
};
use ringmaster::planes::jamf::{JamfAuth, JamfConfig};
use ringmaster::planes::{ArtifactRef, Connector, ConnectorConfig, Secret, apispec};
use std::time::Duration;

const CLIENT: &str = "3f1c2a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b";

struct JamfHarness {
    simulator: JamfSimulator,
    /// Every request and answer, checked against Jamf's API when dropped.
    _recorder: Recorder,
    config: JamfConfig,
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
        canary: group("213", 5),
        pilot: group("214", 4),
        broad: group("215", 3),
        extra: group("216", 2),
        excluded: group("87", 1),
        unknown: "999".into(),
    }
}

impl Harness for JamfHarness {
    const PLANE: Plane = Plane::Jamf;
    /// A computer without the version after a check-in costs one policy-log
    /// request (the reason it failed).
    const STATUS_CALLS_PER_FAILURE: u64 = 1;

    async fn start(options: HarnessOptions) -> JamfHarness {
        let secret = format!("jamf-secret-{}", uuid::Uuid::new_v4().simple());
        let mut simulator_options = SimulatorOptions::new(CLIENT, Secret::new(secret.clone()));
        simulator_options.page_size = options.page_size;
        let simulator = JamfSimulator::new(simulator_options);
        let registered = groups();
        for (group, name) in [
            (&registered.canary, "FIN - Ring 1 Canary (macOS)"),
            (&registered.pilot, "FIN - Ring 2 Pilot (macOS)"),
            (&registered.broad, "FIN - Ring 2 Broad (macOS)"),
            (&registered.extra, "Extra Macs"),
            (&registered.excluded, "Excluded - Loaner Macs"),
        ] {
            simulator.add_group(&group.id, name, group.devices);
        }
        let upstream = simulator.start().await.expect("simulator");
        let recorder = Recorder::start(
            upstream,
            vec![apispec::jamf_pro(), apispec::jamf_classic()],
            &[],
        )
        .await;
        let address = recorder.address();
        let directory = tempfile::tempdir().expect("temp dir");
        let secret_file = directory.path().join("jamf-secret");
        std::fs::write(&secret_file, &secret).expect("secret file");
        let auth = JamfAuth::ClientCredentials {
            client_id: CLIENT.into(),
            client_secret_env: None,
            client_secret_file: Some(secret_file),
        };
        let mut config = JamfConfig::new(&format!("http://{address}"), auth);
        config.page_size = options.page_size;
        config.request_timeout = Duration::from_millis(1000);
        let connector = ConnectorConfig::Jamf(config.clone())
            .build()
            .expect("jamf connector");
        JamfHarness {
            simulator,
            _recorder: recorder,
            config,
            connector,
            _secret_directory: directory,
        }
    }

    fn connector(&self) -> Connector {
        self.connector.clone()
    }

    fn restarted_connector(&self) -> Connector {
        ConnectorConfig::Jamf(self.config.clone())
            .build()
            .expect("jamf connector")
    }

    fn budgeted_connector(&self, budget: ringmaster::planes::budget::BudgetConfig) -> Connector {
        let mut config = self.config.clone();
        config.budget = Some(budget);
        ConnectorConfig::Jamf(config)
            .build()
            .expect("jamf connector")
    }

    fn groups(&self) -> TestGroups {
        groups()
    }

    fn artifact(&self) -> ArtifactRef {
        ArtifactRef {
            id: "vpn-client-2.1.0-macos-pkg".into(),
            file: "VpnClient-2.1.0.pkg".into(),
            sha256: format!("sha256:{}", "ab".repeat(32)),
            install: "installer -pkg \"VpnClient-2.1.0.pkg\" -target /".into(),
            uninstall: "/Applications/Contoso VPN.app/Contents/Resources/uninstall.sh".into(),
            detection_type: "bundle_id".into(),
            detection_value: "com.contoso.vpn.client".into(),
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
                LostAnswer::AppCreation => LostRequest::PackageCreation,
                LostAnswer::AssignmentChange => LostRequest::PolicyCreation,
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
        self.simulator.package_ids(correlation_id).len()
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
        self.simulator.add_unrelated_packages(count);
        self.simulator.add_unrelated_policies(count);
    }

    async fn add_fleet_group(&self, devices: u32) -> TestGroup {
        self.simulator
            .add_group("400", "FIN - Fleet (macOS)", devices);
        group("400", devices)
    }

    async fn drift(&self, correlation_id: &str, drift: &Drift, _now: DateTime<Utc>) {
        match drift {
            Drift::AssignmentMissing { group } => {
                assert!(self.simulator.remove_scope(correlation_id, group) > 0);
            }
            Drift::ScopeWidened { extra_group } => {
                self.simulator.add_scope(correlation_id, extra_group);
            }
            Drift::VersionReverted {
                to_version,
                devices,
            } => {
                self.simulator
                    .revert_devices(correlation_id, to_version, *devices);
            }
        }
    }
}

conformance::conformance_suite!(jamf, JamfHarness);

// Cost and call budget (issue 17, `checks::scale`).
conformance::conformance_suite!(
    jamf_budget,
    JamfHarness,
    [
        status_query_costs_pages_not_devices,
        a_429_storm_slows_down_then_recovers_and_no_call_is_over_budget,
        a_halt_gets_through_when_status_calls_have_spent_their_share,
        status_queries_of_one_step_are_coalesced,
    ]
);
