//! Every `EnforcementState` mapped into the contract's counts, and a ring
//! whose membership is still being evaluated.

use super::*;
use crate::planes::ExecutionPlaneConnector;

#[tokio::test]
async fn every_enforcement_state_maps_into_the_contract_counts() {
    let site = site().await;
    site.connector
        .publish(&request("4.2.0", CORRELATION), at(0))
        .await
        .unwrap();
    let deployment = install_deployment(&site, CORRELATION);
    let assignment_id = deployment["AssignmentID"].as_i64().unwrap();
    let ring_collection = deployment["TargetCollectionID"].as_str().unwrap();
    let devices = site.simulator.members(ring_collection);
    assert_eq!(
        devices.len(),
        8,
        "canary minus kiosks (which share no device)"
    );
    for (minute, (device, state)) in (1..).zip(devices.iter().zip([10, 6, 11, 14, 2, 7, 0])) {
        site.simulator
            .set_enforcement_state(assignment_id, *device, state, at(minute));
    }
    let status = site
        .connector
        .query_status(CORRELATION, at(30))
        .await
        .unwrap();
    let ring = &status.rings["ring-1"];
    assert_eq!(
        (ring.targeted, ring.installed, ring.failed, ring.pending),
        (8, 1, 3, 4),
        "{ring:?}"
    );
    let reasons: Vec<&str> = ring.failure_reasons.keys().map(String::as_str).collect();
    assert_eq!(
        reasons,
        ["download_failed", "general_failure", "install_failed"]
    );
    assert_eq!(
        (ring.first_install_at, ring.last_report_at),
        (Some(at(1)), Some(at(7)))
    );
    assert_eq!(status.observed.installed_versions.get("4.2.0"), Some(&1));
    assert_eq!(status.observed.assigned_groups, [CANARY]);

    let earlier = site
        .connector
        .query_status(CORRELATION, at(2))
        .await
        .unwrap();
    let ring = &earlier.rings["ring-1"];
    assert_eq!(
        (ring.installed, ring.failed, ring.pending),
        (1, 1, 6),
        "rows after now are unseen"
    );
}

#[tokio::test]
async fn a_lagging_membership_counts_the_summarized_targets_as_pending() {
    let site = site().await;
    site.connector
        .publish(&request("4.2.0", CORRELATION), at(0))
        .await
        .unwrap();
    let ring_collection = install_deployment(&site, CORRELATION)["TargetCollectionID"]
        .as_str()
        .unwrap()
        .to_string();
    site.simulator.lag_membership(&ring_collection, 3);
    site.simulator.report(CORRELATION, 2, 0, at(5));
    let status = site
        .connector
        .query_status(CORRELATION, at(10))
        .await
        .unwrap();
    let ring = &status.rings["ring-1"];
    assert_eq!(
        (ring.targeted, ring.installed, ring.pending),
        (8, 2, 6),
        "{ring:?}"
    );
}

#[tokio::test]
async fn a_check_in_reports_every_targeted_device_once() {
    let site = site().await;
    site.connector
        .publish(&request("4.2.0", CORRELATION), at(0))
        .await
        .unwrap();
    assert_eq!(site.simulator.check_in(at(10), 0.75), 8);
    assert_eq!(site.simulator.check_in(at(20), 0.75), 0, "final rows stay");
    let status = site
        .connector
        .query_status(CORRELATION, at(30))
        .await
        .unwrap();
    let ring = &status.rings["ring-1"];
    assert_eq!(ring.installed + ring.failed, 8, "{ring:?}");
    assert!(
        ring.installed > 0 && ring.failed > 0,
        "a 75 % fleet of 8 has both: {ring:?}"
    );
}
