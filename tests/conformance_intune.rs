//! The conformance suite against the Intune connector and its Graph simulator
//! (a real HTTP server on 127.0.0.1:0). Every check runs.

mod conformance;

use chrono::{DateTime, Utc};
use conformance::contract::{Recorder, Unchecked};
use conformance::{
    DeviceResults, Drift, Harness, HarnessOptions, LostAnswer, PlaneFault, TestGroup, TestGroups,
};
use ringmaster::model::Plane;
use ringmaster::planes::intune::simulator::{
    IntuneSimulator, LostRequest, SimulatorFault, SimulatorOptions,
};
use ringmaster::planes::intune::{ContentSource, IntuneConfig};
use ringmaster::planes::{ArtifactRef, Connector, ConnectorConfig, Secret, apispec};
use std::time::Duration;

const TENANT: &str = "8f3c2a1b-4d5e-4f60-9a7b-1c2d3e4f5a6b";
const CLIENT: &str = "2b7e1c9d-3a4f-4e5b-8c6d-7e8f9a0b1c2d";

struct IntuneHarness {
    simulator: IntuneSimulator,
    /// Every request and answer, checked against Graph's description when dropped.
    _recorder: Recorder,
    config: IntuneConfig,
    connector: Connector,
    _secret_directory: tempfile::TempDir,
}

/// What the connector sends outside Microsoft Graph.
const INTUNE_UNCHECKED: [Unchecked; 2] = [
    Unchecked {
        contains: "/oauth2/v2.0/token",
        reason: "Microsoft Entra's token endpoint (OAuth 2.0 client credentials), not part of Graph's description",
    },
    Unchecked {
        contains: "/blob/",
        reason: "Azure Blob Storage (the SAS upload of the content), not part of Graph's description",
    },
];

fn group(id: &str, devices: u32) -> TestGroup {
    TestGroup {
        id: id.into(),
        devices,
    }
}

fn groups() -> TestGroups {
    TestGroups {
        canary: group("0a1b2c3d-0000-4000-8000-00000000c1a7", 5),
        pilot: group("0a1b2c3d-0000-4000-8000-0000000091a7", 4),
        broad: group("0a1b2c3d-0000-4000-8000-00000000b70a", 3),
        extra: group("0a1b2c3d-0000-4000-8000-00000000e7a0", 2),
        excluded: group("0a1b2c3d-0000-4000-8000-00000000e8c1", 1),
        unknown: "0a1b2c3d-0000-4000-8000-0000000000ff".into(),
    }
}

impl Harness for IntuneHarness {
    const PLANE: Plane = Plane::Intune;
    /// A status query reads the groups' members, the tenant's managed
    /// devices (Intune id to Entra id) and the app's install-status report,
    /// whose pages hold 50 rows (two lists' worth at pages of 100).
    const STATUS_DEVICE_LISTS: u64 = 4;

    async fn start(options: HarnessOptions) -> IntuneHarness {
        let secret = format!("Qv8~intune-secret-{}", uuid::Uuid::new_v4().simple());
        let mut simulator_options =
            SimulatorOptions::new(TENANT, CLIENT, Secret::new(secret.clone()));
        simulator_options.page_size = options.page_size;
        let simulator = IntuneSimulator::new(simulator_options);
        let registered = groups();
        for group in [
            &registered.canary,
            &registered.pilot,
            &registered.broad,
            &registered.extra,
            &registered.excluded,
        ] {
            simulator.add_group(&group.id, group.devices);
        }
        let upstream = simulator.start().await.expect("simulator");
        let recorder = Recorder::start(
            upstream,
            vec![apispec::graph_beta(), apispec::graph_v1()],
            &INTUNE_UNCHECKED,
        )
        .await;
        let address = recorder.address();
        let directory = tempfile::tempdir().expect("temp dir");
        let secret_file = directory.path().join("intune-secret");
        std::fs::write(&secret_file, format!("{secret}\n")).expect("secret file");
        let mut config = IntuneConfig::new(TENANT, CLIENT, ContentSource::SimulatorPlaceholder);
        config.base_url = format!("http://{address}");
        config.token_url = format!("http://{address}");
        config.client_secret_file = Some(secret_file);
        config.request_timeout = Duration::from_millis(1000);
        config.upload_poll_interval = Duration::ZERO;
        let connector = ConnectorConfig::Intune(config.clone())
            .build()
            .expect("intune connector");
        IntuneHarness {
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
        ConnectorConfig::Intune(self.config.clone())
            .build()
            .expect("intune connector")
    }

    fn budgeted_connector(&self, budget: ringmaster::planes::budget::BudgetConfig) -> Connector {
        let mut config = self.config.clone();
        config.budget = Some(budget);
        ConnectorConfig::Intune(config)
            .build()
            .expect("intune connector")
    }

    fn groups(&self) -> TestGroups {
        groups()
    }

    fn artifact(&self) -> ArtifactRef {
        ArtifactRef {
            id: "vpn-client-2.1.0-win".into(),
            file: "VpnClient-2.1.0.intunewin".into(),
            sha256: format!("sha256:{}", "ab".repeat(32)),
            install: "msiexec /i VpnClient.msi /qn".into(),
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
                LostAnswer::AppCreation => LostRequest::AppCreation,
                LostAnswer::AssignmentChange => LostRequest::Assign,
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
        self.simulator.app_ids(correlation_id).len()
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
        let id = "0a1b2c3d-0000-4000-8000-0000000f1ee7";
        self.simulator.add_group(id, devices);
        group(id, devices)
    }

    async fn drift(&self, correlation_id: &str, drift: &Drift, now: DateTime<Utc>) {
        match drift {
            Drift::AssignmentMissing { group } => {
                assert!(self.simulator.remove_assignments(correlation_id, group) > 0);
            }
            Drift::ScopeWidened { extra_group } => {
                self.simulator
                    .add_assignment(correlation_id, extra_group, "required");
            }
            Drift::VersionReverted {
                to_version,
                devices,
            } => {
                self.simulator
                    .revert_devices(correlation_id, to_version, *devices, now);
            }
        }
    }
}

conformance::conformance_suite!(intune, IntuneHarness);

/// The conformance checks publish Win32 content; a `.pkg` becomes a
/// `macOSPkgApp`, whose body (and status) are checked against Graph's
/// description the same way when the harness is dropped.
#[tokio::test]
async fn macos_pkg_publish_and_status_fit_graphs_description() {
    use ringmaster::planes::ExecutionPlaneConnector as _;
    let harness = IntuneHarness::start(HarnessOptions::default()).await;
    let mut request = conformance::canary_request(&harness);
    request.artifact = ArtifactRef {
        id: "vpn-client-2.1.0-mac".into(),
        file: "VpnClient-2.1.0.pkg".into(),
        sha256: format!("sha256:{}", "cd".repeat(32)),
        install: "installer -pkg VpnClient-2.1.0.pkg -target /".into(),
        uninstall: "/usr/local/bin/vpn-uninstall".into(),
        detection_type: "bundle_id".into(),
        detection_value: "com.contoso.vpn".into(),
    };
    let Connector::Intune(connector) = harness.connector() else {
        panic!("an intune connector");
    };
    let published = connector
        .publish(&request, conformance::at(0))
        .await
        .expect("publish a macOSPkgApp");
    assert!(published.created);
    harness
        .report_devices(
            conformance::CORRELATION,
            DeviceResults {
                installed: 2,
                failed: 1,
            },
            conformance::at(5),
        )
        .await;
    let status = connector
        .query_status(conformance::CORRELATION, conformance::at(10))
        .await
        .expect("status");
    let ring = &status.rings[conformance::RING_1];
    assert_eq!((ring.installed, ring.failed), (2, 1));
}

// Cost and call budget (issue 17, `checks::scale`).
conformance::conformance_suite!(
    intune_budget,
    IntuneHarness,
    [
        status_query_costs_pages_not_devices,
        a_429_storm_slows_down_then_recovers_and_no_call_is_over_budget,
        a_halt_gets_through_when_status_calls_have_spent_their_share,
        status_queries_of_one_step_are_coalesced,
    ]
);
