//! The connector conformance suite (`docs/connectors.md`, section 10): one set of
//! checks every connector runs against its plane's simulator.
//!
//! A plane provides a [`Harness`]: it starts the plane's simulator (a real HTTP
//! server on `127.0.0.1:0`, or the in-process `sim` fleet), hands out a
//! [`Connector`] pointed at it, and gives the checks the controls they need: inject
//! a [`PlaneFault`], count apps and assignments on the plane, make devices report
//! ([`DeviceResults`]), fill the plane with unrelated apps so lists span pages,
//! change the plane behind the connector's back ([`Drift`]).
//!
//! A test file then expands the checks for its plane:
//!
//! ```ignore
//! mod conformance;
//! conformance::conformance_suite!(intune, IntuneHarness);
//! // or only some checks, for a plane without tokens or pages:
//! conformance::conformance_suite!(sim, SimHarness, [publish_twice_creates_one_app_and_one_assignment]);
//! ```
//!
//! which makes a module named after the plane holding one `#[tokio::test]` per
//! check: `intune::publish_twice_creates_one_app_and_one_assignment`, ... Run one
//! plane with `cargo test --test conformance_intune`, one check everywhere with
//! `cargo test publish_twice`.
//!
//! The checks never sleep: time on the plane is the `now` they pass to the
//! connector, and an orchestrator's backoff is computed with
//! `orchestrator::next_attempt` and applied to that `now`.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

pub mod capture;
pub mod checks;
pub mod contract;

use chrono::{DateTime, TimeZone, Utc};
use ringmaster::model::Plane;
use ringmaster::planes::{ArtifactRef, Connector, PublishRequest};
use std::time::Duration;

pub use ringmaster::planes::sim::Drift;

/// How the simulator is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HarnessOptions {
    /// Items per page of every list the simulator answers. Small, so that every
    /// lookup has to follow the plane's paging.
    pub page_size: usize,
}

impl Default for HarnessOptions {
    fn default() -> HarnessOptions {
        HarnessOptions { page_size: 2 }
    }
}

/// Which request of a publish or a remediation loses its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostAnswer {
    /// The request that creates the app object.
    AppCreation,
    /// The request that creates or changes assignments (the last step of a
    /// publish; the whole change of an uninstall).
    AssignmentChange,
}

/// A failure the simulator produces on the plane's API (never on its token
/// endpoint, except [`PlaneFault::TokenExpired`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlaneFault {
    /// The next API request answers HTTP 429, with `Retry-After` when given.
    /// Nothing is applied.
    RateLimited { retry_after: Option<Duration> },
    /// The next `count` API requests answer `status` (500, 502, 503, 504).
    /// Nothing is applied.
    ServerErrors { status: u16, count: u32 },
    /// The next API request is answered only after the connector's timeout.
    /// Nothing is applied.
    SlowResponse,
    /// The named request is applied, then its answer never comes (the
    /// connector times out).
    ResponseLostAfterApply { on: LostAnswer },
    /// Every token issued so far expires now.
    TokenExpired,
    /// The next API request answers `status` (400, 403, 404, 409) with the
    /// plane's error body. Nothing is applied.
    Rejected { status: u16 },
}

/// What the devices of a deployment report: the first `installed` targeted
/// devices installed the delivered version, the next `failed` failed (with a
/// plane error code), the rest have not reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceResults {
    pub installed: u32,
    pub failed: u32,
}

/// A plane group of the simulator and its device count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestGroup {
    pub id: String,
    pub devices: u32,
}

/// The groups a harness registers on its simulator. They never share devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestGroups {
    /// Ring 1. At least 5 devices, so device lists span pages.
    pub canary: TestGroup,
    /// Ring 2, with `broad`.
    pub pilot: TestGroup,
    pub broad: TestGroup,
    /// Assigned only by drift (`Drift::ScopeWidened`).
    pub extra: TestGroup,
    /// Named in every request's exclusions.
    pub excluded: TestGroup,
    /// A well-formed id the plane does not hold.
    pub unknown: String,
}

/// One plane's simulator and a connector pointed at it.
///
/// The checks run on one thread (`#[tokio::test]`), so the futures need not be
/// `Send`.
#[allow(async_fn_in_trait)]
pub trait Harness: Sized {
    const PLANE: Plane;

    /// Whether devices report only when [`Harness::report_devices`] says so.
    /// `false` for a plane whose devices report by themselves: the `sim`
    /// fleet (outcomes drawn from its seed, completing as time passes) and
    /// Ansible (hosts report during the run that installs).
    const DEVICES_REPORT_ON_DEMAND: bool = true;

    /// Whether the deployment's status still shows a device's install once
    /// the assignment it came through is withdrawn. `false` for
    /// Configuration Manager, whose per-device rows
    /// (`SMS_AppDeploymentAssetDetails`) belong to the deleted deployment.
    const STATUS_OUTLIVES_ASSIGNMENTS: bool = true;

    /// API requests a status query spends per failed device (reading why
    /// it failed), beyond the pages every device costs.
    const STATUS_CALLS_PER_FAILURE: u64 = 0;

    /// Device-sized lists a status query reads page by page (the devices of
    /// the target and their reports, when a plane keeps them apart): the
    /// cost check allows this many times the pages of one list.
    const STATUS_DEVICE_LISTS: u64 = 1;

    /// Starts the simulator (on `127.0.0.1:0` for an HTTP plane), registers
    /// [`Harness::groups`], and builds a connector through `ConnectorConfig`.
    /// The connector's HTTP timeout is short (a few hundred milliseconds), so a
    /// slow or lost answer costs the test little.
    async fn start(options: HarnessOptions) -> Self;

    /// The connector under test; clones share its client, cache and limits.
    fn connector(&self) -> Connector;

    /// A second connector built from the same configuration, sharing nothing
    /// with the first: what a restarted daemon holds.
    fn restarted_connector(&self) -> Connector;

    fn groups(&self) -> TestGroups;

    /// The artifact this plane publishes (an `.intunewin`, a `.pkg`, ...).
    fn artifact(&self) -> ArtifactRef;

    /// Every credential the connector holds or was issued (client secrets and
    /// the tokens the simulator handed out), to search for in errors and logs.
    async fn secrets(&self) -> Vec<String>;

    /// Queues a fault. Panics for a fault the plane cannot have (a token
    /// expiry on a plane without tokens): such a plane leaves the check out.
    async fn inject(&self, fault: PlaneFault);

    /// From now on the simulator refuses the connector's credentials.
    async fn revoke_credentials(&self);

    /// App objects on the plane whose correlation field holds `correlation_id`.
    async fn app_count(&self, correlation_id: &str) -> usize;

    /// Install assignments (to an included group) of those apps.
    async fn assignment_count(&self, correlation_id: &str) -> usize;

    /// What on the plane would still install the deployment on a device:
    /// its install assignments, on a plane where an assignment stands; on a
    /// plane whose install is a one-off delivery (Landscape's activities),
    /// the deliveries no device has acted on yet.
    async fn installs_still_owed(&self, correlation_id: &str) -> usize {
        self.assignment_count(correlation_id).await
    }

    /// API requests the simulator answered so far (token requests excluded).
    async fn api_requests(&self) -> u64;

    /// Token requests the simulator answered so far.
    async fn token_requests(&self) -> u64;

    /// Makes the deployment's targeted devices report at `now` (see
    /// [`DeviceResults`]); answers the time from which status shows it.
    async fn report_devices(
        &self,
        correlation_id: &str,
        results: DeviceResults,
        now: DateTime<Utc>,
    ) -> DateTime<Utc>;

    /// Creates `count` apps that ringmaster did not make, so app lists span pages.
    async fn add_unrelated_apps(&self, count: usize);

    /// Changes the plane behind the connector's back.
    async fn drift(&self, correlation_id: &str, drift: &Drift, now: DateTime<Utc>);

    /// A connector like [`Harness::connector`] (sharing nothing with it)
    /// whose call budget is `budget`, for the budget checks
    /// (`checks::scale`). A plane without an HTTP send loop leaves this
    /// unimplemented.
    fn budgeted_connector(&self, budget: ringmaster::planes::budget::BudgetConfig) -> Connector {
        panic!(
            "{:?} does not run the budget checks ({budget:?})",
            Self::PLANE
        )
    }

    /// Registers a group of `devices` new devices (sharing none with
    /// [`Harness::groups`]) for the cost checks (`checks::scale`). A plane
    /// that does not run them leaves this unimplemented.
    async fn add_fleet_group(&self, devices: u32) -> TestGroup {
        panic!(
            "{:?} does not run the cost checks ({devices} devices)",
            Self::PLANE
        )
    }
}

/// The correlation id most checks publish under.
pub const CORRELATION: &str = "5f0c6e4e-8c1a-5b7e-9a4f-0d3c2b1a0f9e";
/// The correlation id of the version the deployment supersedes.
pub const PREVIOUS_CORRELATION: &str = "0b6d3f7a-2c4e-5f81-a9b0-c1d2e3f40516";
pub const VERSION: &str = "2.1.0";
pub const PREVIOUS_VERSION: &str = "2.0.5";
pub const RING_1: &str = "ring-1-canary";
pub const RING_2: &str = "ring-2-pilot";

/// The checks' clock: minutes after 2026-01-05 09:00 UTC.
pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

/// A publish request of `VERSION` for the harness's plane.
pub fn request<H: Harness>(harness: &H, ring: &str, groups: &[&TestGroup]) -> PublishRequest {
    PublishRequest {
        correlation_id: CORRELATION.into(),
        intent_id: "vpn-client-2.1".into(),
        application_id: "vpn-client".into(),
        application_name: "Contoso VPN Client".into(),
        version: VERSION.into(),
        plane: H::PLANE,
        ring: ring.into(),
        artifact: harness.artifact(),
        groups: groups.iter().map(|group| group.id.clone()).collect(),
        exclusions: vec![harness.groups().excluded.id],
        expected_devices: groups.iter().map(|group| group.devices).sum(),
        supersedes_version: None,
        sites: None,
    }
}

/// Ring 1 of `VERSION` to the canary group.
pub fn canary_request<H: Harness>(harness: &H) -> PublishRequest {
    let groups = harness.groups();
    request(harness, RING_1, &[&groups.canary])
}

/// Ring 2 of `VERSION` to the pilot and broad groups.
pub fn pilot_request<H: Harness>(harness: &H) -> PublishRequest {
    let groups = harness.groups();
    request(harness, RING_2, &[&groups.pilot, &groups.broad])
}

/// `PREVIOUS_VERSION` of the same application to the canary group, under its own
/// intent: what was deployed before `VERSION`.
pub fn previous_request<H: Harness>(harness: &H) -> PublishRequest {
    let mut previous = canary_request(harness);
    previous.correlation_id = PREVIOUS_CORRELATION.into();
    previous.intent_id = "vpn-client-2.0".into();
    previous.version = PREVIOUS_VERSION.into();
    previous
}

/// Expands the checks into one `#[tokio::test]` each, in a module named after
/// the plane. Without a list, every check of [`checks`] runs.
macro_rules! conformance_suite {
    ($plane:ident, $harness:ty) => {
        $crate::conformance::conformance_suite!(
            $plane,
            $harness,
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
                reverted_version_shows_in_installed_versions,
                expired_token_is_refreshed_once,
                credentials_never_appear_in_errors_or_logs,
            ]
        );
    };
    ($plane:ident, $harness:ty, [$($check:ident),* $(,)?]) => {
        mod $plane {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    $crate::conformance::checks::$check::<$harness>().await;
                }
            )*
        }
    };
}
pub(crate) use conformance_suite;
