//! `activity_status` into counts: the table of the contract, and a ring
//! whose computers report every kind of outcome.

use super::super::wire::{Outcome, outcome_of};
use super::{CORRELATION, PACKAGE, VERSION, account, at, request};
use crate::planes::{ExecutionPlaneConnector, Remediation};

#[test]
fn activity_statuses_map_as_the_contract_says() {
    let table = [
        ("succeeded", Outcome::Succeeded),
        ("failed", Outcome::Failed),
        ("canceled", Outcome::Failed),
        ("undelivered", Outcome::Pending),
        ("unapproved", Outcome::Pending),
        ("delivered", Outcome::Pending),
        ("scheduled", Outcome::Pending),
        ("something-new", Outcome::Pending),
    ];
    for (status, expected) in table {
        assert_eq!(outcome_of(status), expected, "{status}");
    }
}

#[tokio::test]
async fn a_ring_counts_successes_failures_cancellations_and_silence() {
    let account = account().await;
    let connector = &account.connector;
    connector.publish(&request(), at(0)).await.expect("publish");
    // 6 canary computers, the kiosks excluded: 2 succeed, 1 fails.
    account.simulator.report(PACKAGE, 2, 1, at(10));
    let status = connector
        .query_status(CORRELATION, at(10))
        .await
        .expect("status");
    let ring = &status.rings["ring-1-canary"];
    assert_eq!(
        (ring.targeted, ring.installed, ring.failed, ring.pending),
        (6, 2, 1, 3),
        "{ring:?}"
    );
    assert_eq!(ring.failure_reasons.get("result_code_100"), Some(&1));
    assert_eq!(ring.first_install_at, Some(at(10)));
    assert_eq!(ring.last_report_at, Some(at(10)));

    // Asked before the reports were made, they do not count yet.
    let earlier = connector
        .query_status(CORRELATION, at(5))
        .await
        .expect("status");
    let ring = &earlier.rings["ring-1-canary"];
    assert_eq!(
        (ring.installed, ring.failed, ring.pending),
        (0, 0, 6),
        "{ring:?}"
    );

    // The redeploy pushes again to the failed computer only.
    let redeploy = connector
        .remediate(CORRELATION, &Remediation::Redeploy, at(11))
        .await
        .expect("redeploy");
    assert!(redeploy.applied, "{}", redeploy.detail);
    assert!(
        redeploy.detail.contains("1 failed computer"),
        "{}",
        redeploy.detail
    );
    let status = connector
        .query_status(CORRELATION, at(12))
        .await
        .expect("status");
    let ring = &status.rings["ring-1-canary"];
    assert_eq!(
        (ring.installed, ring.failed, ring.pending),
        (2, 0, 4),
        "{ring:?}"
    );

    // A pin at the only ring cancels nothing; an uninstall cancels what was
    // not delivered and removes the package.
    let uninstall = connector
        .remediate(CORRELATION, &Remediation::Uninstall, at(13))
        .await
        .expect("uninstall");
    assert!(uninstall.applied, "{}", uninstall.detail);
    account.simulator.check_in(at(20), 1.0);
    assert_eq!(account.simulator.computers_with_package(PACKAGE, None), 0);
    let status = connector
        .query_status(CORRELATION, at(21))
        .await
        .expect("status");
    assert!(status.observed.installed_versions.is_empty(), "{status:?}");
    assert_eq!(status.rings["ring-1-canary"].targeted, 0);
    assert_eq!(
        account.simulator.live_install_activities(PACKAGE, VERSION),
        0
    );
}

#[tokio::test]
async fn check_in_draws_the_same_failures_every_time() {
    let first = account().await;
    let second = account().await;
    for account in [&first, &second] {
        account
            .connector
            .publish(&request(), at(0))
            .await
            .expect("publish");
        assert_eq!(account.simulator.check_in(at(10), 0.5), 6);
        assert_eq!(account.simulator.check_in(at(11), 0.5), 0, "all final now");
    }
    let mut failed = Vec::new();
    for account in [&first, &second] {
        let status = account
            .connector
            .query_status(CORRELATION, at(12))
            .await
            .expect("status");
        failed.push(status.rings["ring-1-canary"].failed);
    }
    assert_eq!(failed[0], failed[1]);
    assert!(failed[0] > 0 && failed[0] < 6, "a share fails: {failed:?}");
}
