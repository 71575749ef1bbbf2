//! The conformance suite against the in-process `sim` plane: proves the suite
//! itself on the connector the contract was first written for.
//!
//! The sim has no tokens, no secrets, no pages, no HTTP requests to count and
//! draws device outcomes from its seed, so the checks about those are left out
//! (the sim's own tests cover its status model, `src/planes/sim/tests/`).

mod conformance;

use chrono::{DateTime, Utc};
use conformance::{
    DeviceResults, Drift, Harness, HarnessOptions, LostAnswer, PlaneFault, TestGroup, TestGroups,
};
use ringmaster::model::Plane;
use ringmaster::planes::sim::{Fault, SimConfig, SimConnector};
use ringmaster::planes::{ArtifactRef, Connector};

struct SimHarness {
    sim: SimConnector,
}

fn group(id: &str, devices: u32) -> TestGroup {
    TestGroup {
        id: id.into(),
        devices,
    }
}

impl Harness for SimHarness {
    const PLANE: Plane = Plane::Intune;
    const DEVICES_REPORT_ON_DEMAND: bool = false;

    async fn start(_options: HarnessOptions) -> SimHarness {
        let sim = SimConnector::new(SimConfig::for_plane(Plane::Intune)).expect("sim connector");
        let harness = SimHarness { sim };
        let groups = harness.groups();
        for registered in [
            groups.canary,
            groups.pilot,
            groups.broad,
            groups.extra,
            groups.excluded,
        ] {
            harness
                .sim
                .add_group(&registered.id, registered.devices)
                .expect("group");
        }
        harness
    }

    fn connector(&self) -> Connector {
        Connector::Sim(self.sim.clone())
    }

    /// The sim's fleet is the plane: a restarted daemon opens the same one.
    fn restarted_connector(&self) -> Connector {
        Connector::Sim(self.sim.clone())
    }

    fn groups(&self) -> TestGroups {
        TestGroups {
            canary: group("grp-canary", 5),
            pilot: group("grp-pilot", 4),
            broad: group("grp-broad", 3),
            extra: group("grp-extra", 2),
            excluded: group("grp-kiosks", 1),
            unknown: "grp-nowhere".into(),
        }
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
        panic!("the sim plane holds no credentials")
    }

    async fn inject(&self, fault: PlaneFault) {
        let faults = match fault {
            PlaneFault::RateLimited { retry_after } => vec![Fault::RateLimited { retry_after }],
            PlaneFault::ServerErrors { count, .. } => {
                (0..count).map(|_| Fault::ServiceUnavailable).collect()
            }
            PlaneFault::SlowResponse => vec![Fault::Timeout],
            // The sim applies a whole call at once: any lost answer loses all of it.
            PlaneFault::ResponseLostAfterApply {
                on: LostAnswer::AppCreation | LostAnswer::AssignmentChange,
            } => vec![Fault::ResponseLostAfterApply],
            PlaneFault::TokenExpired | PlaneFault::Rejected { .. } => {
                panic!("the sim plane has no tokens and no HTTP answers: {fault:?}")
            }
        };
        for queued in faults {
            self.sim.inject_fault(queued).expect("fault");
        }
    }

    async fn revoke_credentials(&self) {
        panic!("the sim plane holds no credentials")
    }

    async fn app_count(&self, correlation_id: &str) -> usize {
        usize::from(self.sim.external_id(correlation_id).is_some())
    }

    async fn assignment_count(&self, correlation_id: &str) -> usize {
        self.sim.assignment_count(correlation_id)
    }

    async fn api_requests(&self) -> u64 {
        panic!("the sim plane answers no HTTP requests")
    }

    async fn token_requests(&self) -> u64 {
        panic!("the sim plane has no tokens")
    }

    async fn report_devices(
        &self,
        _correlation_id: &str,
        _results: DeviceResults,
        _now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        panic!("the sim plane draws device outcomes from its seed")
    }

    async fn add_unrelated_apps(&self, _count: usize) {
        panic!("the sim plane has no pages")
    }

    async fn drift(&self, correlation_id: &str, drift: &Drift, now: DateTime<Utc>) {
        self.sim
            .inject_drift(correlation_id, drift.clone(), now)
            .expect("drift");
    }
}

conformance::conformance_suite!(
    sim,
    SimHarness,
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
        invalid_publishes_are_permanent,
        verify_idempotency_answers_from_the_plane,
        status_is_all_pending_right_after_publish,
        ring_pin_is_idempotent_and_refuses_later_rings,
        halt_stops_installs_on_the_plane,
        redeploy_is_idempotent,
        rollback_is_idempotent,
        rollback_strategy_decides_what_the_plane_does,
        uninstall_is_idempotent_even_when_its_answer_is_lost,
        drift_shows_in_observed_and_redeploy_repairs_it,
    ]
);
