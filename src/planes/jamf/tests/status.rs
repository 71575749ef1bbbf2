//! How policy logs and inventory map into counts, and what remediation
//! leaves on the server.

use super::{CORRELATION, at, request, setup};
use crate::planes::{ExecutionPlaneConnector, Remediation};

#[tokio::test]
async fn logs_and_inventory_map_into_installed_failed_and_pending() {
    let setup = setup(2).await;
    let connector = &setup.connector;
    connector
        .publish(&request("ring-1", &["213"]), at(0))
        .await
        .expect("publish");
    // 213 has 5 Macs, 87 (excluded) shares none: 5 targeted.
    setup.simulator.report(CORRELATION, 2, 1, at(10));
    let status = connector
        .query_status(CORRELATION, at(10))
        .await
        .expect("status");
    let ring = &status.rings["ring-1"];
    assert_eq!(
        (ring.targeted, ring.installed, ring.failed, ring.pending),
        (5, 2, 1, 2),
        "{ring:?}"
    );
    assert_eq!(ring.failure_reasons.get("policy_failed"), Some(&1));
    assert_eq!(ring.first_install_at, Some(at(10)));
    assert_eq!(ring.last_report_at, Some(at(10)));

    // Reports after `now` do not count yet.
    let earlier = connector
        .query_status(CORRELATION, at(9))
        .await
        .expect("status");
    assert_eq!(earlier.rings["ring-1"].pending, 5);

    // A completed log whose computer runs another version is pending.
    setup.simulator.revert_devices(CORRELATION, "6.1.0", 1);
    let status = connector
        .query_status(CORRELATION, at(11))
        .await
        .expect("status");
    let ring = &status.rings["ring-1"];
    assert_eq!((ring.installed, ring.pending), (1, 3), "{ring:?}");
    assert_eq!(status.observed.installed_versions.get("6.1.0"), Some(&1));
    assert_eq!(status.observed.installed_versions.get("6.2.1"), Some(&1));
    assert_eq!(
        status.observed.version.as_deref(),
        Some("6.2.1"),
        "a tie goes to the delivered version"
    );
}

#[tokio::test]
async fn check_in_draws_per_deployment_rates_and_redeploy_reruns_failed_computers() {
    let setup = setup(100).await;
    let connector = &setup.connector;
    connector
        .publish(&request("ring-1", &["213"]), at(0))
        .await
        .expect("publish");
    setup.simulator.set_success_rate(CORRELATION, 0.0);
    assert_eq!(setup.simulator.check_in(at(5), 1.0), 5, "every Mac ran it");
    assert_eq!(setup.simulator.check_in(at(6), 1.0), 0, "once per computer");
    let status = connector
        .query_status(CORRELATION, at(7))
        .await
        .expect("status");
    assert_eq!(status.rings["ring-1"].failed, 5);

    let redeploy = connector
        .remediate(CORRELATION, &Remediation::Redeploy, at(8))
        .await
        .expect("redeploy");
    assert!(redeploy.applied, "{}", redeploy.detail);
    let status = connector
        .query_status(CORRELATION, at(9))
        .await
        .expect("status");
    assert_eq!(status.rings["ring-1"].pending, 5, "logs flushed");
    setup.simulator.set_success_rate(CORRELATION, 1.0);
    assert_eq!(setup.simulator.check_in(at(10), 0.0), 5);
    let status = connector
        .query_status(CORRELATION, at(11))
        .await
        .expect("status");
    assert_eq!(status.rings["ring-1"].installed, 5);
    let again = connector
        .remediate(CORRELATION, &Remediation::Redeploy, at(12))
        .await
        .expect("redeploy");
    assert!(!again.applied, "{}", again.detail);
}

#[tokio::test]
async fn uninstall_policy_removes_the_app_from_inventory_on_check_in() {
    let setup = setup(100).await;
    let connector = &setup.connector;
    connector
        .publish(&request("ring-1", &["213"]), at(0))
        .await
        .expect("publish");
    setup.simulator.check_in(at(5), 1.0);
    let status = connector
        .query_status(CORRELATION, at(6))
        .await
        .expect("status");
    assert_eq!(status.observed.installed_versions.get("6.2.1"), Some(&5));
    let uninstall = connector
        .remediate(CORRELATION, &Remediation::Uninstall, at(7))
        .await
        .expect("uninstall");
    assert!(uninstall.applied);
    let policies = setup.simulator.policy_ids(CORRELATION);
    assert_eq!(policies.len(), 1, "only the uninstall policy is left");
    let xml = setup.simulator.policy_xml(policies[0]).expect("policy");
    assert!(xml.contains("uninstall_gp.sh"), "{xml}");
    assert_eq!(setup.simulator.check_in(at(8), 1.0), 5);
    let status = connector
        .query_status(CORRELATION, at(9))
        .await
        .expect("status");
    assert!(status.observed.installed_versions.is_empty(), "{status:?}");
    assert!(status.observed.assigned_groups.is_empty());
}

#[tokio::test]
async fn rollback_repoints_ring_policies_and_counts_follow_the_earlier_version() {
    let setup = setup(2).await;
    let connector = &setup.connector;
    let mut previous = request("ring-1", &["213"]);
    previous.correlation_id = "0b6d3f7a-2c4e-5f81-a9b0-c1d2e3f40516".into();
    previous.version = "6.1.0".into();
    connector.publish(&previous, at(0)).await.expect("6.1.0");
    let previous_package = setup.simulator.package_ids(&previous.correlation_id)[0];
    setup.simulator.add_unrelated_packages(5);
    connector
        .publish(&request("ring-1", &["213"]), at(1))
        .await
        .expect("6.2.1");
    setup.simulator.check_in(at(5), 1.0);
    let status = connector
        .query_status(CORRELATION, at(6))
        .await
        .expect("status");
    assert_eq!(status.rings["ring-1"].installed, 5);

    let rollback = Remediation::Rollback {
        to_version: "6.1.0".into(),
        strategy: None,
    };
    let applied = connector
        .remediate(CORRELATION, &rollback, at(7))
        .await
        .expect("rollback");
    assert!(applied.applied, "{}", applied.detail);
    let ring_policy = setup.simulator.policy_ids(CORRELATION)[0];
    let policy = setup.simulator.policy(ring_policy).expect("policy");
    assert_eq!(policy.installed_package(), Some(previous_package));
    let status = connector
        .query_status(CORRELATION, at(8))
        .await
        .expect("status");
    assert_eq!(
        status.rings["ring-1"].pending, 5,
        "logs flushed: {status:?}"
    );
    setup.simulator.check_in(at(9), 1.0);
    let status = connector
        .query_status(CORRELATION, at(10))
        .await
        .expect("status");
    assert_eq!(status.rings["ring-1"].installed, 5, "{status:?}");
    assert_eq!(status.observed.installed_versions.get("6.1.0"), Some(&5));
    assert_eq!(status.observed.version.as_deref(), Some("6.1.0"));
}
