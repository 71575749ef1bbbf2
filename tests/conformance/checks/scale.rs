//! Cost and call budget (issue 17). A status query costs pages, not devices. A ring of
//! [`FLEET_DEVICES`] devices is published, most of them report, and the
//! simulator counts the API requests one status query sends:
//! `ceil(devices / page size) × Harness::STATUS_DEVICE_LISTS +
//! STATUS_CALLS_FIXED + failed × Harness::STATUS_CALLS_PER_FAILURE` at most (a plane that reads a reason per
//! failed device, like Jamf's policy logs, pays that only for failures).
//!
//! The call budget (`planes::budget`, through the shared send loop
//! `planes::http_send`) is checked on every HTTP plane the same way: a 429
//! storm slows it down and it recovers, no window of the caller's clock
//! carries more requests than the budget, a halt gets through when gate
//! status has spent its share, and status queries of one step are coalesced.

use crate::conformance::checks::status::assert_counts_add_up;
use crate::conformance::{
    CORRELATION, DeviceResults, Harness, HarnessOptions, PlaneFault, RING_1, at, canary_request,
    request,
};
use chrono::{DateTime, Utc};
use ringmaster::planes::budget::{BudgetConfig, Priority, Window, with_priority};
use ringmaster::planes::{Connector, ErrorCode, ExecutionPlaneConnector, Remediation};
use std::time::Duration;

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
    let bound = pages * H::STATUS_DEVICE_LISTS
        + STATUS_CALLS_FIXED
        + u64::from(results.failed) * H::STATUS_CALLS_PER_FAILURE;
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

/// Requests per 60 s window of the budget the budget checks run with (small,
/// so a few status queries spend it).
pub const BUDGET_REQUESTS: u32 = 40;

/// The budget of the budget checks: [`BUDGET_REQUESTS`] per 60 s, five
/// connections, no queueing (a request without a slot fails at once as
/// `rate_limit`, so the checks step the caller's clock themselves).
pub fn check_budget() -> BudgetConfig {
    BudgetConfig {
        requests: BUDGET_REQUESTS,
        window_seconds: Duration::from_secs(60),
        concurrency: 5,
        max_queue_wait_seconds: Duration::ZERO,
        status_freshness_seconds: Duration::ZERO,
    }
}

fn window_of(connector: &Connector) -> Window {
    connector
        .transport()
        .expect("an HTTP plane has a send loop")
        .budget()
        .window()
}

/// Asserts no 60 s window of the caller's clock holds more than
/// [`BUDGET_REQUESTS`] of the requests the simulator counted.
fn assert_within_budget(log: &[(DateTime<Utc>, u64)]) {
    for (index, (start, _)) in log.iter().enumerate() {
        let within: u64 = log[index..]
            .iter()
            .take_while(|(when, _)| *when < *start + chrono::Duration::seconds(60))
            .map(|(_, requests)| requests)
            .sum();
        assert!(
            within <= u64::from(BUDGET_REQUESTS),
            "{within} requests reached the plane in the 60 s from {start}: {log:?}"
        );
    }
}

/// A 429 storm (six answers of 429 with `Retry-After: 10`) against gate
/// status queries: every 429 reaches the caller as `rate_limit`, the budget
/// slows down to a sixteenth, holds calls back while slow, recovers to the
/// configured rate, and no 60 s window of the caller's clock ever carries
/// more requests than the budget.
pub async fn a_429_storm_slows_down_then_recovers_and_no_call_is_over_budget<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    harness
        .connector()
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("publish");
    let connector = harness.budgeted_connector(check_budget());
    for _ in 0..6 {
        harness
            .inject(PlaneFault::RateLimited {
                retry_after: Some(Duration::from_secs(10)),
            })
            .await;
    }
    let mut log: Vec<(DateTime<Utc>, u64)> = Vec::new();
    let mut now = at(1);
    let (mut throttled, mut refused_by_budget, mut succeeded) = (0, 0, 0);
    let mut lowest = BUDGET_REQUESTS;
    for _ in 0..400 {
        let before = harness.api_requests().await;
        let result =
            with_priority(Priority::Status, connector.query_status(CORRELATION, now)).await;
        log.push((now, harness.api_requests().await - before));
        lowest = lowest.min(window_of(&connector).limit());
        match result {
            Ok(_) => {
                succeeded += 1;
                if window_of(&connector).limit() == BUDGET_REQUESTS && succeeded > 3 {
                    break;
                }
                now += chrono::Duration::seconds(20);
            }
            Err(error) => {
                assert_eq!(error.code, ErrorCode::RateLimit, "{error}");
                if error.message.contains("call budget") {
                    refused_by_budget += 1;
                } else {
                    throttled += 1;
                }
                let wait = error.retry_after.expect("a wait to honour");
                now += chrono::Duration::from_std(wait).expect("wait");
            }
        }
    }
    assert_eq!(throttled, 6, "every 429 of the storm reached the caller");
    assert!(
        lowest <= BUDGET_REQUESTS / 16 + 1,
        "slowed down to {lowest} requests a window"
    );
    assert!(refused_by_budget > 0, "the slowed budget held calls back");
    let window = window_of(&connector);
    assert_eq!(
        window.limit(),
        BUDGET_REQUESTS,
        "recovered to the configured rate: {log:?}"
    );
    assert_eq!(window.throttled_total, 6);
    assert_within_budget(&log);
    println!(
        "{:?} 429 storm: {} status calls ({} requests), {throttled} throttled, {refused_by_budget} held back by the budget, slowest {lowest} requests/60 s, recovered to {BUDGET_REQUESTS}",
        H::PLANE,
        log.len(),
        log.iter().map(|(_, sent)| sent).sum::<u64>()
    );
}

/// Gate status queries spend their share of the window (75 %) until the
/// budget holds one back; a halt (urgent) still gets through at that
/// moment, within the budget.
pub async fn a_halt_gets_through_when_status_calls_have_spent_their_share<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    harness
        .connector()
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("publish");
    let connector = harness.budgeted_connector(check_budget());
    let now = at(5);
    let mut log = Vec::new();
    let mut step = 0;
    let refused = loop {
        // A millisecond apart: separate steps, so nothing is coalesced.
        let asked = now + chrono::Duration::milliseconds(step);
        step += 1;
        let before = harness.api_requests().await;
        let result =
            with_priority(Priority::Status, connector.query_status(CORRELATION, asked)).await;
        log.push((asked, harness.api_requests().await - before));
        if let Err(error) = result {
            break error;
        }
        assert!(step < 100, "the budget never held a status query back");
    };
    assert_eq!(refused.code, ErrorCode::RateLimit, "{refused}");
    assert!(refused.message.contains("call budget"), "{refused}");
    let asked = now + chrono::Duration::milliseconds(step);
    let before = harness.api_requests().await;
    let halt = with_priority(
        Priority::Urgent,
        connector.remediate(CORRELATION, &Remediation::Halt, asked),
    )
    .await
    .expect("the halt is not held back by status calls");
    log.push((asked, harness.api_requests().await - before));
    assert!(halt.applied, "{halt:?}");
    assert_eq!(harness.installs_still_owed(CORRELATION).await, 0);
    assert_within_budget(&log);
}

/// Coalesced status reads: two gate-status queries of one step (the same
/// `now`) asked at once cost the plane one query's requests (in-flight
/// dedupe); asked again in the same step they cost nothing; a write (a
/// redeploy) forgets what was kept, and a later step asks the plane again.
pub async fn status_queries_of_one_step_are_coalesced<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("publish");
    let report_time = harness
        .report_devices(
            CORRELATION,
            DeviceResults {
                installed: 3,
                failed: 1,
            },
            at(10),
        )
        .await;
    let now = report_time + chrono::Duration::minutes(1);
    let status =
        |asked| with_priority(Priority::Status, connector.query_status(CORRELATION, asked));

    let before = harness.api_requests().await;
    let alone = status(now).await.expect("status");
    let one_query = harness.api_requests().await - before;
    assert!(one_query > 0, "a status query asks the plane");

    let later = now + chrono::Duration::minutes(1);
    let before = harness.api_requests().await;
    let (first, second) = tokio::join!(status(later), status(later));
    let together = harness.api_requests().await - before;
    let (first, second) = (first.expect("status"), second.expect("status"));
    assert_eq!(first.rings, second.rings);
    assert!(
        together <= one_query,
        "two queries at once cost {together} requests; one costs {one_query}"
    );

    let before = harness.api_requests().await;
    let again = status(later).await.expect("status");
    assert_eq!(
        harness.api_requests().await - before,
        0,
        "the same step's query is answered from the kept reads"
    );
    assert_eq!(again.rings, first.rings, "the same answer");
    assert_eq!(alone.rings.len(), first.rings.len());

    let even_later = later + chrono::Duration::minutes(1);
    let before = harness.api_requests().await;
    status(even_later).await.expect("status");
    assert!(
        harness.api_requests().await - before > 0,
        "a later step asks the plane again"
    );
    println!(
        "{:?}: one status query {one_query} requests, two at once {together}, again in the same step 0",
        H::PLANE
    );
}
