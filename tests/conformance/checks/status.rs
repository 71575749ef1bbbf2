//! Status (`docs/connectors.md` sections 6 to 8): counts right after publish,
//! device reports mapped into installed/failed/pending, lists followed across
//! every page.

use crate::conformance::{
    CORRELATION, DeviceResults, Harness, HarnessOptions, RING_1, VERSION, at, canary_request,
};
use ringmaster::planes::{DeploymentStatus, ExecutionPlaneConnector, RingStatus};

fn ring_1(status: &DeploymentStatus) -> &RingStatus {
    status.rings.get(RING_1).expect("ring 1 in the status")
}

/// The counts add up, and the failure reasons add up to the failures.
pub fn assert_counts_add_up(ring: &RingStatus) {
    assert_eq!(
        ring.installed + ring.failed + ring.pending,
        ring.targeted,
        "{ring:?}"
    );
    assert_eq!(
        ring.failure_reasons.values().sum::<u32>(),
        ring.failed,
        "{ring:?}"
    );
}

/// Check 6: right after publish every targeted device is pending, nothing has
/// reported, and `observed` shows the one assigned group.
pub async fn status_is_all_pending_right_after_publish<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("publish");
    let status = connector
        .query_status(CORRELATION, at(1))
        .await
        .expect("status");
    assert_eq!(status.correlation_id, CORRELATION);
    let ring = ring_1(&status);
    let canary = harness.groups().canary;
    assert_eq!(ring.targeted, canary.devices, "{ring:?}");
    assert_eq!(ring.pending, canary.devices, "{ring:?}");
    assert_eq!((ring.installed, ring.failed), (0, 0), "{ring:?}");
    assert_eq!((ring.first_install_at, ring.last_report_at), (None, None));
    assert_counts_add_up(ring);
    assert_eq!(status.observed.assigned_groups, vec![canary.id]);
    assert_eq!(status.observed.assigned_devices, canary.devices);
    assert_eq!(status.observed.version, None, "no device runs it yet");
}

/// Check 6: reports map into installed, failed (with reasons) and pending.
pub async fn status_maps_device_reports_into_counts<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("publish");
    let canary = harness.groups().canary;
    let results = DeviceResults {
        installed: 2,
        failed: 2,
    };
    let report_time = harness.report_devices(CORRELATION, results, at(30)).await;
    let status = connector
        .query_status(CORRELATION, report_time)
        .await
        .expect("status");
    let ring = ring_1(&status);
    assert_eq!(ring.targeted, canary.devices, "{ring:?}");
    assert_eq!((ring.installed, ring.failed), (2, 2), "{ring:?}");
    assert_eq!(ring.pending, canary.devices - 4, "{ring:?}");
    assert_counts_add_up(ring);
    assert!(
        ring.failure_reasons
            .keys()
            .all(|reason| !reason.contains(' ')),
        "{ring:?}"
    );
    let first = ring.first_install_at.expect("first install");
    let last = ring.last_report_at.expect("last report");
    assert!(first <= last && last <= report_time, "{ring:?}");
    assert_eq!(status.observed.installed_versions.get(VERSION), Some(&2));
    assert_eq!(status.observed.version.as_deref(), Some(VERSION));
}

/// Check 9: with pages of two, the app is found among unrelated apps on a later
/// page, and every device report of a five-device ring is counted.
pub async fn listing_follows_every_page<H: Harness>() {
    let harness = H::start(HarnessOptions { page_size: 2 }).await;
    harness.add_unrelated_apps(7).await;
    let connector = harness.connector();
    let request = canary_request(&harness);
    let first = connector.publish(&request, at(0)).await.expect("publish");
    harness.add_unrelated_apps(3).await;
    let restarted = harness.restarted_connector();
    let replay = restarted
        .publish(&request, at(1))
        .await
        .expect("replay after restart");
    assert!(!replay.created, "the app was found past the first page");
    assert_eq!(replay.external_id, first.external_id);
    assert_eq!(harness.app_count(CORRELATION).await, 1);
    let canary = harness.groups().canary;
    assert!(canary.devices > 4, "the canary group spans pages");
    let all = DeviceResults {
        installed: canary.devices,
        failed: 0,
    };
    let report_time = harness.report_devices(CORRELATION, all, at(30)).await;
    let status = restarted
        .query_status(CORRELATION, report_time)
        .await
        .expect("status");
    let ring = ring_1(&status);
    assert_eq!(
        (ring.targeted, ring.installed),
        (canary.devices, canary.devices),
        "{ring:?}"
    );
    assert_eq!(
        status.observed.installed_versions.get(VERSION),
        Some(&canary.devices)
    );
}
