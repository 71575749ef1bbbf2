//! The mapping of every Graph `installState` into the contract's counts.

use super::*;
use crate::planes::ExecutionPlaneConnector;

#[tokio::test]
async fn every_install_state_maps_into_the_contract_counts() {
    let tenant = tenant().await;
    let published = tenant
        .connector
        .publish(&request("2.1.0", CORRELATION), at(0))
        .await
        .unwrap();
    let devices = tenant.simulator.group_devices(CANARY);
    let rows = [
        report("installed", "noAdditionalDetails", 0, "2.1.0"),
        report("failed", "seeInstallErrorCode", -2016345060, "2.1.0"),
        report("failed", "minimumDiskSpaceNotMet", 0, "2.1.0"),
        report("pendingInstall", "noAdditionalDetails", 0, "2.1.0"),
        report("notInstalled", "noAdditionalDetails", 0, "2.1.0"),
        report("unknown", "noAdditionalDetails", 0, "2.1.0"),
        report("installed", "noAdditionalDetails", 0, "2.0.5"),
        report("notApplicable", "platformNotApplicable", 0, "2.1.0"),
    ];
    for (minute, (device, row)) in (1..).zip(devices.iter().zip(&rows)) {
        assert!(tenant.simulator.set_device_status(
            &published.external_id,
            device,
            row,
            at(minute)
        ));
    }
    let status = tenant
        .connector
        .query_status(CORRELATION, at(30))
        .await
        .unwrap();
    let ring = &status.rings["ring-1"];
    assert_eq!(ring.targeted, 7, "notApplicable is not targeted: {ring:?}");
    assert_eq!(
        (ring.installed, ring.failed, ring.pending),
        (1, 2, 4),
        "{ring:?}"
    );
    let reasons: Vec<(&str, u32)> = ring
        .failure_reasons
        .iter()
        .map(|(key, count)| (key.as_str(), *count))
        .collect();
    assert_eq!(
        reasons,
        [("error_0x87d1041c", 1), ("minimumDiskSpaceNotMet", 1)]
    );
    assert_eq!(ring.first_install_at, Some(at(1)));
    assert_eq!(
        ring.last_report_at,
        Some(at(7)),
        "the notApplicable row does not count"
    );
    assert_eq!(status.observed.installed_versions.get("2.0.5"), Some(&1));
    assert_eq!(status.observed.installed_versions.get("2.1.0"), Some(&1));
    assert_eq!(
        status.observed.version.as_deref(),
        Some("2.1.0"),
        "a tie goes to the delivered version"
    );

    let earlier = tenant
        .connector
        .query_status(CORRELATION, at(4))
        .await
        .unwrap();
    let ring = &earlier.rings["ring-1"];
    assert_eq!(
        (ring.installed, ring.failed, ring.pending, ring.targeted),
        (1, 2, 5, 8),
        "rows after now are unseen"
    );
}

#[tokio::test]
async fn a_check_in_reports_every_targeted_device_once() {
    let tenant = tenant().await;
    tenant
        .connector
        .publish(&request("2.1.0", CORRELATION), at(0))
        .await
        .unwrap();
    assert_eq!(tenant.simulator.check_in(at(10), 0.75), 8);
    assert_eq!(
        tenant.simulator.check_in(at(20), 0.75),
        0,
        "final rows stay"
    );
    let status = tenant
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
    tenant
        .connector
        .remediate(CORRELATION, &crate::planes::Remediation::Uninstall, at(40))
        .await
        .unwrap();
    assert_eq!(
        tenant.simulator.check_in(at(50), 0.75),
        8,
        "uninstalled devices report"
    );
    let status = tenant
        .connector
        .query_status(CORRELATION, at(60))
        .await
        .unwrap();
    assert!(
        status.observed.installed_versions.is_empty(),
        "{:?}",
        status.observed
    );
}
