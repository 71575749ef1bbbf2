//! Remediation and drift (`docs/connectors.md` sections 8 and 9): every action
//! applied once, then `applied: false`, also when its answer was lost; each
//! kind of drift shows in `observed`.

use super::assert_error;
use super::status::assert_counts_add_up;
use crate::conformance::{
    CORRELATION, DeviceResults, Drift, Harness, HarnessOptions, LostAnswer, PREVIOUS_VERSION,
    PlaneFault, RING_1, RING_2, VERSION, at, canary_request, pilot_request, previous_request,
};
use ringmaster::model::Plane;
use ringmaster::planes::{
    Connector, ErrorClass, ErrorCode, ExecutionPlaneConnector, Remediation, RemediationResult,
};

async fn remediate(
    connector: &Connector,
    remediation: &Remediation,
    minutes: i64,
) -> RemediationResult {
    connector
        .remediate(CORRELATION, remediation, at(minutes))
        .await
        .unwrap_or_else(|error| panic!("{}: {error}", remediation.name()))
}

/// Check 7: a pin removes the later ring's assignments once, then refuses it.
pub async fn ring_pin_is_idempotent_and_refuses_later_rings<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("ring 1");
    connector
        .publish(&pilot_request(&harness), at(60))
        .await
        .expect("ring 2");
    let pin = Remediation::RingPin {
        ring: RING_1.into(),
    };
    assert!(
        remediate(&connector, &pin, 70).await.applied,
        "the pin removes ring 2"
    );
    let replay = remediate(&connector, &pin, 71).await;
    assert!(!replay.applied, "pinned already: {}", replay.detail);
    assert_eq!(
        harness.assignment_count(CORRELATION).await,
        1,
        "ring 1's assignment stays"
    );
    let error = connector
        .publish(&pilot_request(&harness), at(72))
        .await
        .expect_err("pinned");
    assert_error(
        &error,
        ErrorClass::PolicyViolation,
        ErrorCode::RingPinned,
        "publish ring 2",
    );
    let status = connector
        .query_status(CORRELATION, at(73))
        .await
        .expect("status");
    assert_eq!(
        status
            .rings
            .get(RING_2)
            .expect("ring 2 was published")
            .targeted,
        0
    );
    assert_eq!(
        status.observed.assigned_groups,
        vec![harness.groups().canary.id]
    );
}

/// Devices on the deployment's version, as the plane observes them.
async fn installed_of(connector: &Connector, minutes: i64) -> u32 {
    let status = connector
        .query_status(CORRELATION, at(minutes))
        .await
        .expect("status");
    status
        .observed
        .installed_versions
        .get(VERSION)
        .copied()
        .unwrap_or(0)
}

/// Check 7, halt: every install assignment of every ring is withdrawn once
/// (a replay answers `applied: false`), devices that had not installed by
/// then never do — however many check in later — those that had keep the
/// version, and no ring of the deployment is assigned again
/// (`deployment_halted`).
pub async fn halt_stops_installs_on_the_plane<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("ring 1");
    connector
        .publish(&pilot_request(&harness), at(60))
        .await
        .expect("ring 2");
    assert!(harness.installs_still_owed(CORRELATION).await > 0);
    if H::DEVICES_REPORT_ON_DEMAND {
        harness
            .report_devices(
                CORRELATION,
                DeviceResults {
                    installed: 1,
                    failed: 0,
                },
                at(61),
            )
            .await;
    }
    let halt = remediate(&connector, &Remediation::Halt, 63).await;
    assert!(
        halt.applied,
        "the first halt changes the plane: {}",
        halt.detail
    );
    let installed_at_halt = installed_of(&connector, 63).await;
    if H::DEVICES_REPORT_ON_DEMAND && H::STATUS_OUTLIVES_ASSIGNMENTS {
        assert_eq!(installed_at_halt, 1, "the device that installed keeps it");
    }
    assert_eq!(
        harness.installs_still_owed(CORRELATION).await,
        0,
        "nothing on the plane would still install it"
    );
    let replay = remediate(&connector, &Remediation::Halt, 64).await;
    assert!(!replay.applied, "halted already: {}", replay.detail);
    // Every device checks in afterwards (or, for a plane whose devices
    // report by themselves, a week passes): none installs.
    if H::DEVICES_REPORT_ON_DEMAND {
        harness
            .report_devices(
                CORRELATION,
                DeviceResults {
                    installed: 10_000,
                    failed: 0,
                },
                at(65),
            )
            .await;
    }
    let week = 7 * 24 * 60;
    assert_eq!(
        installed_of(&connector, week).await,
        installed_at_halt,
        "no device installed the version after the halt"
    );
    for (name, request) in [
        ("ring 1", canary_request(&harness)),
        ("ring 2", pilot_request(&harness)),
    ] {
        let error = connector
            .publish(&request, at(week + 1))
            .await
            .expect_err("halted");
        assert_error(
            &error,
            ErrorClass::PolicyViolation,
            ErrorCode::DeploymentHalted,
            &format!("publish {name} after the halt"),
        );
    }
    assert_eq!(harness.installs_still_owed(CORRELATION).await, 0);
}

/// Check 7: a redeploy of a plane as published changes nothing the second time.
pub async fn redeploy_is_idempotent<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("publish");
    remediate(&connector, &Remediation::Redeploy, 10).await;
    let replay = remediate(&connector, &Remediation::Redeploy, 11).await;
    assert!(!replay.applied, "{}", replay.detail);
    assert_eq!(harness.assignment_count(CORRELATION).await, 1);
}

/// Check 7: a rollback to the version deployed before applies once; counts then
/// follow that version and later rings are refused.
pub async fn rollback_is_idempotent<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    connector
        .publish(&previous_request(&harness), at(0))
        .await
        .expect("previous version");
    let mut request = canary_request(&harness);
    request.supersedes_version = Some(PREVIOUS_VERSION.into());
    connector
        .publish(&request, at(60))
        .await
        .expect("new version");
    let rollback = Remediation::Rollback {
        to_version: PREVIOUS_VERSION.into(),
        strategy: None,
    };
    let first = remediate(&connector, &rollback, 70).await;
    assert!(first.applied, "{}", first.detail);
    let replay = remediate(&connector, &rollback, 71).await;
    assert!(!replay.applied, "{}", replay.detail);
    let status = connector
        .query_status(CORRELATION, at(72))
        .await
        .expect("status");
    let ring = status.rings.get(RING_1).expect("ring 1");
    assert_eq!(ring.targeted, harness.groups().canary.devices, "{ring:?}");
    assert_counts_add_up(ring);
    let error = connector
        .publish(&pilot_request(&harness), at(73))
        .await
        .expect_err("rolled back");
    assert_error(
        &error,
        ErrorClass::Permanent,
        ErrorCode::InvalidRequest,
        "publish ring 2",
    );
}

/// The plane's own rollback strategy that removes the version, if it has one.
fn removing_strategy(plane: Plane) -> Option<&'static str> {
    match plane {
        Plane::Jamf => Some("jamf-uninstall-policy"),
        Plane::Sccm => Some("sccm-uninstall-deployment"),
        Plane::Landscape => Some("landscape-remove-packages"),
        Plane::Ansible => Some("ansible-uninstall"),
        Plane::Intune => None,
    }
}

/// Section 9, rollback strategy: the intent's `rollback_plan.strategy`
/// reaches the connector and decides what the plane does. Another plane's
/// strategy is refused and changes nothing; the plane's removing strategy
/// (an uninstall policy, an uninstall deployment, `RemovePackages`, the
/// uninstall playbook) leaves nothing that installs the version and refuses
/// later rings; a delivering one (`intune-supersedence`,
/// `redeploy-previous`) keeps assignments delivering the previous version.
pub async fn rollback_strategy_decides_what_the_plane_does<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    connector
        .publish(&previous_request(&harness), at(0))
        .await
        .expect("previous version");
    let mut request = canary_request(&harness);
    request.supersedes_version = Some(PREVIOUS_VERSION.into());
    connector
        .publish(&request, at(60))
        .await
        .expect("new version");
    let owed = harness.installs_still_owed(CORRELATION).await;
    assert!(owed > 0);
    let foreign = if H::PLANE == Plane::Jamf {
        "sccm-uninstall-deployment"
    } else {
        "jamf-uninstall-policy"
    };
    let rollback = |strategy: &str| Remediation::Rollback {
        to_version: PREVIOUS_VERSION.into(),
        strategy: Some(strategy.to_owned()),
    };
    let error = connector
        .remediate(CORRELATION, &rollback(foreign), at(65))
        .await
        .expect_err("another plane's strategy");
    assert_error(
        &error,
        ErrorClass::Permanent,
        ErrorCode::InvalidRequest,
        "rollback by another plane's strategy",
    );
    assert_eq!(
        harness.installs_still_owed(CORRELATION).await,
        owed,
        "a refused strategy changes nothing"
    );
    match removing_strategy(H::PLANE) {
        Some(strategy) => {
            let first = remediate(&connector, &rollback(strategy), 70).await;
            assert!(first.applied, "{}", first.detail);
            assert_eq!(first.action, rollback(strategy));
            let replay = remediate(&connector, &rollback(strategy), 71).await;
            assert!(!replay.applied, "{}", replay.detail);
            assert_eq!(
                harness.installs_still_owed(CORRELATION).await,
                0,
                "{strategy} leaves nothing that installs {VERSION}"
            );
            assert_eq!(
                harness.assignment_count(CORRELATION).await,
                0,
                "{strategy} leaves no install assignment"
            );
        }
        None => {
            let first = remediate(&connector, &rollback("intune-supersedence"), 70).await;
            assert!(first.applied, "{}", first.detail);
            let replay = remediate(&connector, &rollback("redeploy-previous"), 71).await;
            assert!(!replay.applied, "{}", replay.detail);
            let status = connector
                .query_status(CORRELATION, at(72))
                .await
                .expect("status");
            assert!(
                !status.observed.assigned_groups.is_empty(),
                "supersedence keeps the ring assigned, delivering {PREVIOUS_VERSION}"
            );
        }
    }
    let error = connector
        .publish(&pilot_request(&harness), at(73))
        .await
        .expect_err("rolled back");
    assert_eq!(error.class, ErrorClass::Permanent, "{error}");
}

/// Checks 2 and 7: an uninstall whose answer is lost was applied; the retry
/// answers `applied: false`; publishing the correlation id again is refused.
pub async fn uninstall_is_idempotent_even_when_its_answer_is_lost<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("publish");
    harness
        .inject(PlaneFault::ResponseLostAfterApply {
            on: LostAnswer::AssignmentChange,
        })
        .await;
    let lost = connector
        .remediate(CORRELATION, &Remediation::Uninstall, at(10))
        .await
        .expect_err("the answer is lost");
    assert!(lost.is_retryable(), "{lost}");
    let retry = remediate(&connector, &Remediation::Uninstall, 11).await;
    assert!(
        !retry.applied,
        "the lost call was applied: {}",
        retry.detail
    );
    assert_eq!(harness.assignment_count(CORRELATION).await, 0);
    let status = connector
        .query_status(CORRELATION, at(12))
        .await
        .expect("status");
    assert!(
        status.observed.assigned_groups.is_empty(),
        "{:?}",
        status.observed
    );
    let error = connector
        .publish(&canary_request(&harness), at(13))
        .await
        .expect_err("again");
    assert_error(
        &error,
        ErrorClass::Permanent,
        ErrorCode::InvalidRequest,
        "publish again",
    );
}

/// Check 8: a deleted assignment and a widened scope show in `observed`; a
/// redeploy puts the plane back as published, once.
pub async fn drift_shows_in_observed_and_redeploy_repairs_it<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    let groups = harness.groups();
    connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("publish");
    let widened = Drift::ScopeWidened {
        extra_group: groups.extra.id.clone(),
    };
    harness.drift(CORRELATION, &widened, at(5)).await;
    let status = connector
        .query_status(CORRELATION, at(6))
        .await
        .expect("status");
    let mut both = vec![groups.canary.id.clone(), groups.extra.id.clone()];
    both.sort();
    assert_eq!(status.observed.assigned_groups, both);
    assert_eq!(
        status.observed.assigned_devices,
        groups.canary.devices + groups.extra.devices
    );

    let missing = Drift::AssignmentMissing {
        group: groups.canary.id.clone(),
    };
    harness.drift(CORRELATION, &missing, at(7)).await;
    let status = connector
        .query_status(CORRELATION, at(8))
        .await
        .expect("status");
    assert_eq!(
        status.observed.assigned_groups,
        vec![groups.extra.id.clone()]
    );

    let repaired = remediate(&connector, &Remediation::Redeploy, 9).await;
    assert!(repaired.applied, "{}", repaired.detail);
    let status = connector
        .query_status(CORRELATION, at(10))
        .await
        .expect("status");
    assert_eq!(
        status.observed.assigned_groups,
        vec![groups.canary.id.clone()]
    );
    assert!(
        !remediate(&connector, &Remediation::Redeploy, 11)
            .await
            .applied
    );
}

/// Check 8: devices reverted to another version show in `installed_versions`
/// and count as pending for the ring.
pub async fn reverted_version_shows_in_installed_versions<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("publish");
    let canary = harness.groups().canary;
    let all = DeviceResults {
        installed: canary.devices,
        failed: 0,
    };
    let reported = harness.report_devices(CORRELATION, all, at(30)).await;
    let reverted = Drift::VersionReverted {
        to_version: PREVIOUS_VERSION.into(),
        devices: 2,
    };
    harness.drift(CORRELATION, &reverted, reported).await;
    let status = connector
        .query_status(CORRELATION, reported)
        .await
        .expect("status");
    let observed = &status.observed;
    assert_eq!(
        observed.installed_versions.get(PREVIOUS_VERSION),
        Some(&2),
        "{observed:?}"
    );
    assert_eq!(
        observed.installed_versions.get(VERSION),
        Some(&(canary.devices - 2))
    );
    assert_eq!(observed.version.as_deref(), Some(VERSION));
    let ring = status.rings.get(RING_1).expect("ring 1");
    assert_eq!(
        (ring.installed, ring.pending),
        (canary.devices - 2, 2),
        "{ring:?}"
    );
}
