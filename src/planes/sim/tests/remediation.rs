//! Each remediation does what it says, once: the replay is `applied: false`.

use super::*;
use crate::planes::sim::Drift;
use crate::planes::{ErrorClass, ErrorCode};

#[tokio::test]
async fn uninstall_is_idempotent_and_devices_report_removed() {
    let sim = fleet(5);
    sim.publish(&canary(), at(0)).await.unwrap();
    let status = contract_remediation_is_idempotent(
        &sim,
        CORRELATION,
        Remediation::Uninstall,
        at(MAX_DELAY_MINUTES),
    )
    .await;
    assert_eq!(sim.assignment_count(CORRELATION), 0);
    assert!(status.observed.assigned_groups.is_empty());
    assert_eq!(status.observed.assigned_devices, 0);
    let removed = sim
        .query_status(CORRELATION, at(2 * MAX_DELAY_MINUTES))
        .await
        .unwrap();
    assert_eq!(removed.observed.version, None, "{:?}", removed.observed);
    assert!(removed.observed.installed_versions.is_empty());
    let refused = sim
        .publish(&canary(), at(2 * MAX_DELAY_MINUTES))
        .await
        .expect_err("uninstalled");
    assert_eq!(refused.code, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn rollback_is_idempotent_and_devices_return_to_the_old_version() {
    let sim = fleet(5);
    sim.set_success_rate("vpn-client", "2.0.5", 1.0).unwrap();
    sim.publish(&canary(), at(0)).await.unwrap();
    let rollback = Remediation::Rollback {
        to_version: "2.0.5".into(),
        strategy: None,
    };
    contract_remediation_is_idempotent(&sim, CORRELATION, rollback, at(MAX_DELAY_MINUTES)).await;
    let after = sim
        .query_status(CORRELATION, at(2 * MAX_DELAY_MINUTES))
        .await
        .unwrap();
    assert_eq!(after.observed.version.as_deref(), Some("2.0.5"));
    assert_eq!(after.observed.installed_versions.get("2.0.5"), Some(&400));
    let canary = ring(&after, "ring-1-canary");
    assert_eq!(
        (canary.installed, canary.failed, canary.pending),
        (400, 0, 0),
        "counts follow the delivered version"
    );
    let refused = sim
        .publish(
            &request("ring-2-pilot", &[PILOT]),
            at(2 * MAX_DELAY_MINUTES),
        )
        .await
        .expect_err("rolled back");
    assert_eq!(refused.code, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn redeploy_restores_a_missing_assignment_and_is_idempotent() {
    let sim = fleet(5);
    sim.publish(&request("ring-0-lab", &[LAB]), at(0))
        .await
        .unwrap();
    sim.publish(&canary(), at(0)).await.unwrap();
    sim.inject_drift(
        CORRELATION,
        Drift::AssignmentMissing {
            group: CANARY.into(),
        },
        at(MAX_DELAY_MINUTES),
    )
    .unwrap();
    let fixed = contract_remediation_is_idempotent(
        &sim,
        CORRELATION,
        Remediation::Redeploy,
        at(MAX_DELAY_MINUTES),
    )
    .await;
    assert_eq!(
        fixed.observed.assigned_groups,
        vec![CANARY.to_string(), LAB.to_string()]
    );
    assert_eq!(sim.assignment_count(CORRELATION), 2);
}

#[tokio::test]
async fn ring_pin_is_idempotent_and_stops_later_rings() {
    let sim = fleet(5);
    sim.publish(&request("ring-0-lab", &[LAB]), at(0))
        .await
        .unwrap();
    sim.publish(&canary(), at(30)).await.unwrap();
    let pin = Remediation::RingPin {
        ring: "ring-0-lab".into(),
    };
    let status = contract_remediation_is_idempotent(&sim, CORRELATION, pin, at(60)).await;
    assert_eq!(
        status.observed.assigned_groups,
        vec![LAB.to_string()],
        "the later ring is unassigned"
    );
    assert_eq!(ring(&status, "ring-1-canary").targeted, 0);
    let refused = sim
        .publish(&request("ring-2-pilot", &[PILOT]), at(61))
        .await
        .expect_err("pinned");
    assert_eq!(
        (refused.class, refused.code),
        (ErrorClass::PolicyViolation, ErrorCode::RingPinned)
    );
    let replay = sim
        .publish(&request("ring-0-lab", &[LAB]), at(61))
        .await
        .expect("the pinned ring itself");
    assert!(!replay.created);
}
