//! Cost (issue 17): a status query costs pages, not devices. A ring of
//! [`FLEET_DEVICES`] devices is published, most of them report, and the
//! simulator counts the API requests one status query sends:
//! `ceil(devices / page size) + STATUS_CALLS_FIXED + failed ×
//! Harness::STATUS_CALLS_PER_FAILURE` at most (a plane that reads a reason per
//! failed device, like Jamf's policy logs, pays that only for failures).

use crate::conformance::checks::status::assert_counts_add_up;
use crate::conformance::{
    CORRELATION, DeviceResults, Harness, HarnessOptions, RING_1, at, request,
};
use ringmaster::planes::ExecutionPlaneConnector;

/// The ring of the example: 6,500 devices.
pub const FLEET_DEVICES: u32 = 6_500;
/// Items per page the simulator serves and the connector asks for.
pub const FLEET_PAGE_SIZE: usize = 100;
/// Requests a status query may send whatever the ring's size: finding the
/// deployment, its assignments and its groups.
pub const STATUS_CALLS_FIXED: u64 = 16;

/// The requests one status query of a [`FLEET_DEVICES`]-device ring sent, and
/// the bound it must stay within. Printed, so `cargo test -- --nocapture`
/// shows the figure.
pub async fn status_query_costs_pages_not_devices<H: Harness>() {
    let harness = H::start(HarnessOptions {
        page_size: FLEET_PAGE_SIZE,
    })
    .await;
    let fleet = harness.add_fleet_group(FLEET_DEVICES).await;
    let connector = harness.connector();
    connector
        .publish(&request(&harness, RING_1, &[&fleet]), at(0))
        .await
        .expect("publish");
    let results = DeviceResults {
        installed: 6_000,
        failed: 20,
    };
    let report_time = harness.report_devices(CORRELATION, results, at(30)).await;
    let before = harness.api_requests().await;
    let status = connector
        .query_status(CORRELATION, report_time)
        .await
        .expect("status");
    let calls = harness.api_requests().await - before;
    let ring = status.rings.get(RING_1).expect("ring 1 in the status");
    assert_eq!(ring.targeted, FLEET_DEVICES, "{ring:?}");
    assert_eq!((ring.installed, ring.failed), (6_000, 20), "{ring:?}");
    assert_counts_add_up(ring);
    let pages = u64::from(FLEET_DEVICES).div_ceil(FLEET_PAGE_SIZE as u64);
    let bound =
        pages + STATUS_CALLS_FIXED + u64::from(results.failed) * H::STATUS_CALLS_PER_FAILURE;
    println!(
        "{:?}: one status query of a {FLEET_DEVICES}-device ring ({} installed, {} failed, pages of {FLEET_PAGE_SIZE}): {calls} API requests (bound {bound})",
        H::PLANE,
        results.installed,
        results.failed
    );
    assert!(
        calls <= bound,
        "{calls} requests for one status query of {FLEET_DEVICES} devices; at most {bound}"
    );
}
