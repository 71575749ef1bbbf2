//! The conformance suite against the Canonical Landscape connector and its
//! legacy API simulator (a real HTTP server on 127.0.0.1:0), twice: `landscape`
//! signs every request with the access key and secret key (HMAC-SHA256,
//! signature version 2); `landscape_rest_login` logs in through
//! `POST /api/v2/login` and sends the JWT.
//!
//! How the plane's objects are counted (Landscape has no app object and no
//! assignment, only activities; the simulator knows no correlation id, so the
//! harness names the package and version of each correlation id itself):
//! - `app_count`: 1 when the plane holds any `InstallPackages` activity of the
//!   correlation id's `package=version`, else 0. The "app" is the APT package
//!   version; a duplicate cannot show here, it shows in `assignment_count`.
//! - `assignment_count`: install activities of that package version that still
//!   hold (a child not cancelled, on a computer with no later removal of the
//!   package) — one per ring tag query. A second `InstallPackages` for the same
//!   tag is a second one.
//!
//! Left out:
//! - `landscape::expired_token_is_refreshed_once`: a signed request carries no
//!   token to expire (every request is signed afresh); the check runs in
//!   `landscape_rest_login`.
//! - in `landscape_rest_login`, every check but the ones about credentials and
//!   a replay: the rest is the same connector code behind another `Authorization`,
//!   already run by `landscape`.

mod conformance;

use chrono::{DateTime, Utc};
use conformance::contract::{Recorder, Unchecked};
use conformance::{
    CORRELATION, DeviceResults, Drift, Harness, HarnessOptions, LostAnswer, PREVIOUS_CORRELATION,
    PREVIOUS_VERSION, PlaneFault, TestGroup, TestGroups, VERSION,
};
use ringmaster::model::Plane;
use ringmaster::planes::landscape::simulator::{
    LandscapeSimulator, LostRequest, SimulatorFault, SimulatorOptions,
};
use ringmaster::planes::landscape::{LandscapeAuth, LandscapeConfig};
use ringmaster::planes::{ArtifactRef, Connector, ConnectorConfig, Secret, apispec};
use std::marker::PhantomData;
use std::time::Duration;

const PACKAGE: &str = "vpn-client";
const ACCESS_KEY: &str = "3OTS8UWJOH4XBSRMSOYQ";
const EMAIL: &str = "ringmaster-api@example.com";
const ACCOUNT: &str = "contoso";

/// How the harness's connector authenticates.
trait AuthMode {
    fn auth(secret_file: std::path::PathBuf) -> LandscapeAuth;
}

struct Signed;
struct RestLogin;

impl AuthMode for Signed {
    fn auth(secret_file: std::path::PathBuf) -> LandscapeAuth {
        LandscapeAuth::LegacyApi {
            access_key: ACCESS_KEY.into(),
            secret_key_env: None,
            secret_key_file: Some(secret_file),
        }
    }
}

impl AuthMode for RestLogin {
    fn auth(secret_file: std::path::PathBuf) -> LandscapeAuth {
        LandscapeAuth::RestLogin {
            email: EMAIL.into(),
            password_env: None,
            password_file: Some(secret_file),
            account: Some(ACCOUNT.into()),
        }
    }
}

struct LandscapeHarnessOf<Mode> {
    /// Every request, checked against Landscape's legacy API schema when dropped.
    _recorder: Recorder,
    simulator: LandscapeSimulator,
    config: LandscapeConfig,
    connector: Connector,
    _directory: tempfile::TempDir,
    _mode: PhantomData<Mode>,
}

type LandscapeHarness = LandscapeHarnessOf<Signed>;
type LandscapeLoginHarness = LandscapeHarnessOf<RestLogin>;

fn group(id: &str, devices: u32) -> TestGroup {
    TestGroup {
        id: id.into(),
        devices,
    }
}

fn groups() -> TestGroups {
    TestGroups {
        canary: group("ring-canary", 5),
        pilot: group("ring-pilot", 4),
        broad: group("ring-broad", 3),
        extra: group("extra-team", 2),
        excluded: group("kiosks", 1),
        unknown: "ring-unknown".into(),
    }
}

/// The package version each correlation id of the checks publishes.
fn version_of(correlation_id: &str) -> Option<&'static str> {
    match correlation_id {
        CORRELATION => Some(VERSION),
        PREVIOUS_CORRELATION => Some(PREVIOUS_VERSION),
        _ => None,
    }
}

impl<Mode: AuthMode> Harness for LandscapeHarnessOf<Mode> {
    const PLANE: Plane = Plane::Landscape;
    /// A status query reads the tagged computers and the deployment's
    /// activities, each page by page.
    const STATUS_DEVICE_LISTS: u64 = 2;

    async fn start(options: HarnessOptions) -> LandscapeHarnessOf<Mode> {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let secret_key = format!("Zx7~landscape-secret-{unique}");
        let password = format!("Pw9~landscape-password-{unique}");
        let mut simulator_options = SimulatorOptions::new(ACCESS_KEY, Secret::new(&secret_key))
            .with_login(EMAIL, Secret::new(&password), ACCOUNT);
        simulator_options.page_size = options.page_size;
        let simulator = LandscapeSimulator::new(simulator_options);
        let registered = groups();
        for group in [
            &registered.canary,
            &registered.pilot,
            &registered.broad,
            &registered.extra,
            &registered.excluded,
        ] {
            simulator.add_tag(&group.id, group.devices);
        }
        let upstream = simulator.start().await.expect("simulator");
        let recorder = Recorder::start(
            upstream,
            vec![apispec::landscape()],
            &[Unchecked {
                contains: "/api/v2/login",
                reason: "the REST API's login (JSON body), not part of the legacy API's schema",
            }],
        )
        .await;
        let address = recorder.address();
        let directory = tempfile::tempdir().expect("temp dir");
        let secret_file = directory.path().join("landscape-secret");
        let login = std::any::type_name::<Mode>().ends_with("RestLogin");
        std::fs::write(&secret_file, if login { &password } else { &secret_key })
            .expect("secret file");
        let mut config = LandscapeConfig::new(
            &format!("http://{address}"),
            Mode::auth(secret_file),
            directory.path().join("landscape-journal.sqlite"),
        );
        config.page_size = options.page_size;
        config.request_timeout = Duration::from_millis(500);
        let connector = ConnectorConfig::Landscape(config.clone())
            .build()
            .expect("landscape connector");
        LandscapeHarnessOf {
            simulator,
            _recorder: recorder,
            config,
            connector,
            _directory: directory,
            _mode: PhantomData,
        }
    }

    fn connector(&self) -> Connector {
        self.connector.clone()
    }

    /// Shares only the journal file with the first connector.
    fn restarted_connector(&self) -> Connector {
        ConnectorConfig::Landscape(self.config.clone())
            .build()
            .expect("landscape connector")
    }

    fn budgeted_connector(&self, budget: ringmaster::planes::budget::BudgetConfig) -> Connector {
        let mut config = self.config.clone();
        config.budget = Some(budget);
        ConnectorConfig::Landscape(config)
            .build()
            .expect("landscape connector")
    }

    fn groups(&self) -> TestGroups {
        groups()
    }

    fn artifact(&self) -> ArtifactRef {
        ArtifactRef {
            id: "vpn-client-2.1.0-deb".into(),
            file: "vpn-client_2.1.0_amd64.deb".into(),
            sha256: format!("sha256:{}", "ab".repeat(32)),
            install: "apt-get install -y vpn-client=2.1.0".into(),
            uninstall: "apt-get remove -y vpn-client".into(),
            detection_type: "deb_package".into(),
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
            PlaneFault::ResponseLostAfterApply { on } => SimulatorFault::LoseAnswer(match on {
                LostAnswer::AppCreation => LostRequest::InstallPackages,
                LostAnswer::AssignmentChange => LostRequest::AnyPackageChange,
            }),
            PlaneFault::Rejected { status } => SimulatorFault::Reject { status },
            PlaneFault::TokenExpired => {
                // Signed requests hold no token: nothing expires.
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
        version_of(correlation_id).map_or(0, |version| {
            self.simulator.install_activities(PACKAGE, version).min(1)
        })
    }

    async fn assignment_count(&self, correlation_id: &str) -> usize {
        version_of(correlation_id).map_or(0, |version| {
            self.simulator.live_install_activities(PACKAGE, version)
        })
    }

    async fn installs_still_owed(&self, correlation_id: &str) -> usize {
        version_of(correlation_id).map_or(0, |version| {
            self.simulator.undelivered_installs(PACKAGE, version)
        })
    }

    async fn api_requests(&self) -> u64 {
        self.simulator.api_requests()
    }

    async fn token_requests(&self) -> u64 {
        self.simulator.token_requests()
    }

    async fn report_devices(
        &self,
        _correlation_id: &str,
        results: DeviceResults,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        self.simulator
            .report(PACKAGE, results.installed, results.failed, now);
        now
    }

    async fn add_unrelated_apps(&self, count: usize) {
        self.simulator.add_unrelated_activities(count);
    }

    async fn add_fleet_group(&self, devices: u32) -> TestGroup {
        self.simulator.add_tag("fleet", devices);
        group("fleet", devices)
    }

    async fn drift(&self, correlation_id: &str, drift: &Drift, _now: DateTime<Utc>) {
        let version = version_of(correlation_id).expect("a correlation id of the checks");
        match drift {
            Drift::AssignmentMissing { group } => {
                // Someone removed the package from the tag's computers.
                self.simulator
                    .run_package_change(&format!("tag:{group}"), PACKAGE, None, true)
                    .expect("removal");
            }
            Drift::ScopeWidened { extra_group } => {
                self.simulator
                    .run_package_change(
                        &format!("tag:{extra_group}"),
                        PACKAGE,
                        Some(version),
                        false,
                    )
                    .expect("install");
            }
            Drift::VersionReverted {
                to_version,
                devices,
            } => {
                let reverted = self.simulator.revert_version(PACKAGE, to_version, *devices);
                assert_eq!(reverted, *devices as usize, "computers running {PACKAGE}");
            }
        }
    }
}

conformance::conformance_suite!(
    landscape,
    LandscapeHarness,
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
        credentials_never_appear_in_errors_or_logs,
    ]
);

conformance::conformance_suite!(
    landscape_rest_login,
    LandscapeLoginHarness,
    [
        publish_twice_creates_one_app_and_one_assignment,
        expired_token_is_refreshed_once,
        credentials_never_appear_in_errors_or_logs,
    ]
);

// Cost and call budget (issue 17, `checks::scale`).
conformance::conformance_suite!(
    landscape_budget,
    LandscapeHarness,
    [
        status_query_costs_pages_not_devices,
        a_429_storm_slows_down_then_recovers_and_no_call_is_over_budget,
        a_halt_gets_through_when_status_calls_have_spent_their_share,
        status_queries_of_one_step_are_coalesced,
    ]
);
